/*
 * PR IN/OUT on a SCSI device fd (locks/pr-fd.h): SG_IO, or a connection to
 * qemu-pr-helper carrying the CDB, the fd (SCM_RIGHTS) and the parameter
 * list, and bringing back status, sense and payload. One command at a time
 * per connection, as the helper wants; callers serialize.
 */
#include "pr-fd.h"

#include <scsi/sg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define CAP_SYS_RAWIO_BIT 17
#define PR_TIMEOUT_S 30

void pr_sense_decode(const uint8_t *sense, size_t len, struct pr_reply *rep)
{
    uint8_t code = len ? sense[0] & 0x7f : 0;

    if ((code == 0x70 || code == 0x71) && len >= 14) {
        rep->sense_key = sense[2] & 0x0f;
        rep->asc = sense[12];
        rep->ascq = sense[13];
    } else if ((code == 0x72 || code == 0x73) && len >= 4) {
        rep->sense_key = sense[1] & 0x0f;
        rep->asc = sense[2];
        rep->ascq = sense[3];
    }
}

bool pr_have_rawio(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    bool have = false;

    if (!f)
        return false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long eff;
        if (sscanf(line, "CapEff: %llx", &eff) == 1) {
            have = (eff >> CAP_SYS_RAWIO_BIT) & 1;
            break;
        }
    }
    fclose(f);
    return have;
}

/* ---- SG_IO ---------------------------------------------------------------- */

static int sgio_run(void *ctx, const uint8_t *cdb, uint8_t *buf, uint32_t len,
                    struct pr_reply *rep)
{
    const struct pr_fd *p = ctx;
    uint8_t sense[PR_HELPER_SENSE_LEN] = {0};
    bool out = cdb[0] == 0x5f;
    struct sg_io_hdr h = {
        .interface_id = 'S',
        .dxfer_direction = out ? SG_DXFER_TO_DEV : SG_DXFER_FROM_DEV,
        .cmd_len = PR_CDB_LEN,
        .mx_sb_len = sizeof(sense),
        .dxfer_len = len,
        .dxferp = buf,
        .cmdp = (unsigned char *)cdb,
        .sbp = sense,
        .timeout = PR_TIMEOUT_S * 1000,
    };

    if (ioctl(p->fd, SG_IO, &h) < 0)
        /* not a SCSI device (loop, nvme, virtio-blk): no PR here */
        return errno == ENOTTY || errno == EINVAL ? -ENOTSUP : -errno;
    if (h.host_status || (h.driver_status & 0x07 && !h.status))
        return -EIO;
    rep->status = h.status;
    if (h.status == PR_STATUS_CHECK)
        pr_sense_decode(sense, h.sb_len_wr, rep);
    if (!out && h.status == PR_STATUS_GOOD)
        rep->len = h.resid > 0 && (uint32_t)h.resid <= len
                   ? len - (uint32_t)h.resid : len;
    return 0;
}

/* ---- qemu-pr-helper --------------------------------------------------------- */

static int full_io(int sock, void *buf, size_t len, bool send_)
{
    uint8_t *b = buf;

    while (len) {
        ssize_t n = send_ ? send(sock, b, len, MSG_NOSIGNAL)
                          : recv(sock, b, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        if (n == 0)
            return -ECONNRESET;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The CDB, padded to 16 bytes, with the device fd attached. */
static int send_cdb(int sock, int fd, const uint8_t *cdb)
{
    uint8_t cdb16[PR_HELPER_CDB_LEN] = {0};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = cdb16, .iov_len = sizeof(cdb16)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c;
    ssize_t n;

    memcpy(cdb16, cdb, PR_CDB_LEN);
    memset(&ctl, 0, sizeof(ctl));
    c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    do {
        n = sendmsg(sock, &m, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    /* the fd went with the first bytes; the rest is plain data */
    return (size_t)n < sizeof(cdb16)
           ? full_io(sock, cdb16 + n, sizeof(cdb16) - (size_t)n, true) : 0;
}

static int helper_exchange(struct pr_fd *p, const uint8_t *cdb, uint8_t *buf,
                           uint32_t len, struct pr_reply *rep)
{
    uint8_t head[8], sense[PR_HELPER_SENSE_LEN];
    bool out = cdb[0] == 0x5f;
    uint32_t size;
    int r;

    if ((r = send_cdb(p->sock, p->fd, cdb)) < 0 ||
        (out && (r = full_io(p->sock, buf, len, true)) < 0) ||
        (r = full_io(p->sock, head, sizeof(head), false)) < 0 ||
        (r = full_io(p->sock, sense, sizeof(sense), false)) < 0)
        return r;
    rep->status = (uint8_t)bd_be32(head);
    size = bd_be32(head + 4);
    if (bd_be32(head) > 0xff || (out ? size != 0 : size > len))
        return -EPROTO;         /* not the protocol: the stream is lost */
    if (size && (r = full_io(p->sock, buf, size, false)) < 0)
        return r;
    if (rep->status == PR_STATUS_CHECK)
        pr_sense_decode(sense, sizeof(sense), rep);
    rep->len = size;
    return 0;
}

/* A failed exchange leaves the stream out of step: drop the connection,
 * and later commands fail at once instead of reading garbage. */
static int helper_run(void *ctx, const uint8_t *cdb, uint8_t *buf,
                      uint32_t len, struct pr_reply *rep)
{
    struct pr_fd *p = ctx;
    int r;

    if (p->sock < 0)
        return -ENOTCONN;
    if ((r = helper_exchange(p, cdb, buf, len, rep)) < 0) {
        log_warn("%s: qemu-pr-helper connection lost: %s", p->dev.name,
                 strerror(-r));
        close(p->sock);
        p->sock = -1;
    }
    return r;
}

static int helper_connect(struct pr_fd *p, const char *path,
                          struct bd_err *err)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = PR_TIMEOUT_S};
    uint8_t features[4], none[4] = {0};
    int r;

    if (strlen(path) >= sizeof(a.sun_path))
        return bd_err_set(err, ENAMETOOLONG, "%s: --pr-helper=%s: the socket "
                          "path is too long", p->dev.name, path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    p->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->sock < 0)
        return bd_err_set(err, errno, "%s: socket: %s", p->dev.name,
                          strerror(errno));
    setsockopt(p->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(p->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(p->sock, (struct sockaddr *)&a, sizeof(a)) < 0)
        return bd_err_set(err, errno, "%s: cannot reach qemu-pr-helper at "
                          "%s: %s; is it running (qemu-pr-helper -k %s)?",
                          p->dev.name, path, strerror(errno), path);
    /* features: the helper offers, we ask for none (none are defined) */
    if ((r = full_io(p->sock, features, sizeof(features), false)) < 0 ||
        (r = full_io(p->sock, none, sizeof(none), true)) < 0)
        return bd_err_set(err, -r, "%s: %s does not speak the pr-helper "
                          "protocol: %s", p->dev.name, path, strerror(-r));
    log_debug("pr", "%s: qemu-pr-helper at %s offers features 0x%08x",
              p->dev.name, path, bd_be32(features));
    return 0;
}

int pr_fd_open(struct pr_fd *p, int fd, const char *name, const char *helper,
               struct bd_err *err)
{
    int r;

    p->fd = fd;
    p->sock = -1;
    p->dev = (struct pr_dev){.run = sgio_run, .ctx = p, .name = name};
    if (helper) {
        p->dev.run = helper_run;
        if ((r = helper_connect(p, helper, err)) < 0) {
            pr_fd_close(p);
            return r;
        }
        return 0;
    }
    if (!pr_have_rawio())
        return bd_err_set(err, EPERM, "%s: persistent reservations on a SCSI "
                          "device need CAP_SYS_RAWIO (SG_IO); run "
                          "qemu-pr-helper and give its socket with "
                          "--pr-helper=SOCKET", name);
    return 0;
}

void pr_fd_close(struct pr_fd *p)
{
    if (p->sock >= 0)
        close(p->sock);
    p->sock = -1;
}
