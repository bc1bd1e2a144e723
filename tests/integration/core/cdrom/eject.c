/* eject DEVICE: open the CD-ROM drive's tray, as eject(1) does; the
 * guest of test-host-cdrom.sh has no eject(1). Built static by the test. */
#include <fcntl.h>
#include <linux/cdrom.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: eject DEVICE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_NONBLOCK);
    if (fd < 0 || ioctl(fd, CDROMEJECT, 0) != 0) {
        perror(argv[1]);
        return 1;
    }
    close(fd);
    return 0;
}
