/* punch: fallocate for the guest of test-nvme-guest.sh, whose busybox has
 * no punch-hole or zero-range: punch|zero OFFSET LENGTH FILE. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int mode, fd;

    if (argc != 5) {
        fprintf(stderr, "usage: punch punch|zero OFFSET LENGTH FILE\n");
        return 2;
    }
    mode = strcmp(argv[1], "punch") == 0
               ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
               : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    fd = open(argv[4], O_RDWR);
    if (fd < 0 || fallocate(fd, mode, atoll(argv[2]), atoll(argv[3])) < 0 ||
        fsync(fd) < 0) {
        perror(argv[4]);
        return 1;
    }
    return close(fd) == 0 ? 0 : 1;
}
