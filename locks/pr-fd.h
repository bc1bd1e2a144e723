/*
 * A SCSI device's fd as a pr_dev (locks/pr.h): PERSISTENT RESERVE IN/OUT
 * by SG_IO, which needs CAP_SYS_RAWIO, or through QEMU's qemu-pr-helper,
 * which holds that capability for us: its socket protocol (QEMU
 * docs/interop/pr-helper.rst) is spoken here. Deciding what to send is
 * pr.c's.
 */
#ifndef IMGFUSE_PR_FD_H
#define IMGFUSE_PR_FD_H

#include "pr.h"

#define PR_HELPER_CDB_LEN 16u
#define PR_HELPER_SENSE_LEN 96u

struct pr_fd {
    int fd;                     /* the device; O_RDWR for PR OUT */
    int sock;                   /* helper connection, -1 for SG_IO */
    struct pr_dev dev;          /* what pr.c's calls take */
};

/*
 * Make p send through helper (a socket path) when it is not NULL, else by
 * SG_IO, which is refused with a message naming --pr-helper when the
 * process lacks CAP_SYS_RAWIO. fd and name are borrowed while p is used.
 * 0 or -errno with err filled (a helper that cannot be reached or does not
 * speak the protocol).
 */
int pr_fd_open(struct pr_fd *p, int fd, const char *name, const char *helper,
               struct bd_err *err);
void pr_fd_close(struct pr_fd *p);

/* Whether this process has CAP_SYS_RAWIO in its effective set. */
bool pr_have_rawio(void);

/* Decode fixed (0x70/0x71) or descriptor (0x72/0x73) sense data into rep's
 * key, asc and ascq; anything else leaves them 0. */
void pr_sense_decode(const uint8_t *sense, size_t len, struct pr_reply *rep);

#endif
