/*
 * norawio PROGRAM ARGS...: run PROGRAM without CAP_SYS_RAWIO (dropped from
 * the bounding set, so root's exec does not get it back, and from the
 * current sets), as an unprivileged imgfuse would be: SG_IO reservations
 * are then out of reach and qemu-pr-helper has to do them.
 */
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    unsigned bit = CAP_SYS_RAWIO;

    if (argc < 2)
        return 2;
    if (prctl(PR_CAPBSET_DROP, CAP_SYS_RAWIO, 0, 0, 0) != 0 ||
        syscall(SYS_capget, &h, d) != 0) {
        perror("norawio");
        return 1;
    }
    d[bit / 32].effective &= ~(1u << (bit % 32));
    d[bit / 32].permitted &= ~(1u << (bit % 32));
    d[bit / 32].inheritable &= ~(1u << (bit % 32));
    if (syscall(SYS_capset, &h, d) != 0) {
        perror("norawio: capset");
        return 1;
    }
    execvp(argv[1], argv + 1);
    perror("norawio: exec");
    return 127;
}
