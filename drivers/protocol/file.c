/*
 * Local POSIX storage: regular files (file), block devices (host_device)
 * and CD-ROM drives (host_cdrom). pread/pwrite from the calling worker, or
 * io_uring rings from a per-node pool; fallocate for zeroes and discard,
 * SEEK_DATA/SEEK_HOLE for block status, OFD permission locks at open.
 */
#include "config.h"
#include "core/bd.h"
#include "core/overflow.h"
#include "locks/lease.h"
#include "locks/ofd.h"
#include "locks/pr-fd.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/cdrom.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#if HAVE_LIBURING
#include <liburing.h>
#endif

#define FILE_RINGS 8

enum file_type { FT_FILE, FT_DEVICE, FT_CDROM };

struct file_state {
    int fd;
    enum file_type type;
    enum ofd_kind lock_kind;
    struct lease *lease;            /* --lease: across hosts; NULL = none */
    _Atomic int64_t size;
    _Atomic uint64_t ra_last;       /* end of the last read (stream hint) */
    _Atomic uint64_t ra_front;      /* readahead asked for up to here */
    uint32_t dio_align, dio_mem_align, blksize;
    bool direct;
    pthread_mutex_t seek_lock;      /* lseek moves the shared offset */
    struct pr_conf pr;              /* --pr on a SCSI device */
    struct pr_fd prfd;
    bool pr_open, pr_held;
    char *pr_helper;                /* pr-helper=: its socket, or NULL */
#if HAVE_LIBURING
    bool use_uring;
    pthread_mutex_t ring_lock;
    pthread_cond_t ring_free;
    struct io_uring rings[FILE_RINGS];
    bool ring_busy[FILE_RINGS];
    unsigned nrings;
#endif
};

static const char *const file_options[] = {
    "filename", "locking", "aio", "cache", "x-check-cache-dropped",
    PR_OPTIONS, "pr-helper", NULL,
};
static const char *const file_create_options[] = { "nocow", NULL };

/* ---- I/O engines ---- */

static int posix_rw(int fd, bool write, void *buf, uint64_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = write ? pwrite(fd, p, len, (off_t)off)
                          : pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            if (write)
                return -EIO;
            memset(p, 0, len);      /* past EOF reads as zeroes */
            return 0;
        }
        p += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

#if HAVE_LIBURING
static struct io_uring *ring_get(struct file_state *s, unsigned *idx)
{
    pthread_mutex_lock(&s->ring_lock);
    for (;;) {
        for (unsigned i = 0; i < s->nrings; i++) {
            if (!s->ring_busy[i]) {
                s->ring_busy[i] = true;
                pthread_mutex_unlock(&s->ring_lock);
                *idx = i;
                return &s->rings[i];
            }
        }
        pthread_cond_wait(&s->ring_free, &s->ring_lock);
    }
}

static void ring_put(struct file_state *s, unsigned idx)
{
    pthread_mutex_lock(&s->ring_lock);
    s->ring_busy[idx] = false;
    pthread_cond_signal(&s->ring_free);
    pthread_mutex_unlock(&s->ring_lock);
}

static int uring_rw(struct file_state *s, bool write, void *buf, uint64_t len,
                    uint64_t off)
{
    unsigned idx;
    struct io_uring *ring = ring_get(s, &idx);
    uint8_t *p = buf;
    int r = 0;
    while (len) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        struct io_uring_cqe *cqe;
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        if (write)
            io_uring_prep_write(sqe, s->fd, p, chunk, off);
        else
            io_uring_prep_read(sqe, s->fd, p, chunk, off);
        r = io_uring_submit_and_wait(ring, 1);
        if (r < 0)
            break;
        r = io_uring_wait_cqe(ring, &cqe);
        if (r < 0)
            break;
        int res = cqe->res;
        io_uring_cqe_seen(ring, cqe);
        if (res == -EINTR || res == -EAGAIN)
            continue;
        if (res < 0) {
            r = res;
            break;
        }
        if (res == 0) {
            if (write) {
                r = -EIO;
            } else {
                memset(p, 0, len);
                r = 0;
            }
            break;
        }
        p += res;
        off += (uint64_t)res;
        len -= (uint64_t)res;
        r = 0;
    }
    ring_put(s, idx);
    return r;
}
#endif

/* FUSE workers take a stream's requests in parallel and read them out of
 * order, which the host's readahead on the image file takes for random
 * reads. Reads near the last one are a stream: ask the host for the next
 * FILE_RA bytes ahead of it, one window at a time. */
#define FILE_RA (8u << 20)

static void stream_hint(struct file_state *s, uint64_t off, uint64_t len)
{
    uint64_t end = off + len, last = atomic_load(&s->ra_last);
    uint64_t front = atomic_load(&s->ra_front);

    if (off + FILE_RA < last || off > last + FILE_RA) {
        atomic_store(&s->ra_last, end);     /* not a stream (yet) */
        return;
    }
    if (end > last)
        atomic_store(&s->ra_last, end);
    if (front > end + FILE_RA / 2 && front <= end + 2 * (uint64_t)FILE_RA)
        return;                             /* far enough ahead already */
    uint64_t from = front > end && front <= end + 2 * (uint64_t)FILE_RA
                        ? front : end;
    if (!atomic_compare_exchange_strong(&s->ra_front, &front, end + FILE_RA))
        return;                             /* another worker does it */
    (void)posix_fadvise(s->fd, (off_t)from, (off_t)(end + FILE_RA - from),
                        POSIX_FADV_WILLNEED);
}

static int file_rw(struct bd_node *n, bool write, void *buf, uint64_t len,
                   uint64_t off)
{
    struct file_state *s = n->state;
    if (write && lease_revoked(s->lease))
        return -EIO;                /* the lease manager took it away */
    int r;
#if HAVE_LIBURING
    if (s->use_uring)
        r = uring_rw(s, write, buf, len, off);
    else
#endif
        r = posix_rw(s->fd, write, buf, len, off);
    /* after the read: the reader's own data is not queued behind it */
    if (!write && !s->direct && r == 0)
        stream_hint(s, off, len);
    return r;
}

/* ---- open ---- */

static int64_t device_size(int fd)
{
    uint64_t sz;
    if (ioctl(fd, BLKGETSIZE64, &sz) != 0)
        return -errno;
    return (int64_t)sz;
}

static int open_error(struct bd_node *n, int e, bool rw, struct bd_err *err)
{
    switch (e) {
    case ENOENT:
        return bd_err_set(err, e, "%s: no such file; check the path", n->filename);
    case EACCES:
    case EPERM:
    case EROFS:
        if (rw)
            return bd_err_set(err, e, "%s: cannot open for writing (%s); mount "
                              "it read-only with -r", n->filename, strerror(e));
        return bd_err_set(err, e, "%s: cannot open: %s", n->filename, strerror(e));
    case EISDIR:
        return bd_err_set(err, e, "%s: is a directory; give a disk image file",
                          n->filename);
    case ENOMEDIUM:
        return bd_err_set(err, e, "%s: no medium in the drive; insert a disc",
                          n->filename);
    case EINVAL:
        return bd_err_set(err, e, "%s: cannot open with O_DIRECT here; use "
                          "--cache=writeback", n->filename);
    default:
        return bd_err_set(err, e, "%s: cannot open: %s", n->filename, strerror(e));
    }
}

static void probe_dio_alignment(struct file_state *s)
{
    s->dio_align = 512;
    s->dio_mem_align = 4096;
#ifdef STATX_DIOALIGN
    struct statx stx;
    if (statx(s->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
        (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
        s->dio_align = stx.stx_dio_offset_align;
        s->dio_mem_align = stx.stx_dio_mem_align > 0 ? stx.stx_dio_mem_align : 512;
        return;
    }
#endif
    /* No statx answer: find the smallest read O_DIRECT accepts. */
    void *buf;
    if (posix_memalign(&buf, 4096, 4096) != 0)
        return;
    for (uint32_t a = 512; a <= 4096; a *= 2) {
        if (pread(s->fd, buf, a, 0) >= 0) {
            s->dio_align = a;
            break;
        }
    }
    free(buf);
}

/* --pr=exclusive: a persistent reservation on a SCSI device (locks/pr.c),
 * by SG_IO or through qemu-pr-helper (pr-helper=SOCKET). */
static int pr_open(struct bd_node *n, const struct bd_opts *o,
                   enum file_type type, struct bd_err *err)
{
    struct file_state *s = n->state;
    const char *helper = bd_opts_get(o, "pr-helper");
    int r = pr_conf_parse(o, n->filename, n->flags.read_only, &s->pr, err);

    if (r == 0 && helper && !(s->pr_helper = strdup(helper)))
        r = bd_err_set(err, ENOMEM, "%s: out of memory", n->filename);
    if (r < 0 || !s->pr.on)
        return r;
    if (type != FT_DEVICE)
        return bd_err_set(err, ENOTSUP, "%s: --pr needs a SCSI device or an "
                          "iscsi:// LUN, not a regular file", n->filename);
    if ((r = pr_fd_open(&s->prfd, s->fd, n->filename, helper, err)) < 0)
        return r;
    s->pr_open = true;
    r = pr_acquire(&s->prfd.dev, &s->pr, err);
    s->pr_held = r == 0;
    return r;
}

static int open_common(struct bd_node *n, const struct bd_opts *o,
                       enum file_type type, struct bd_err *err)
{
    struct file_state *s = n->state;
    static const char *const locking_modes[] = { "auto", "on", "off", NULL };
    static const char *const aio_modes[] = { "default", "threads", "io_uring", NULL };
    int r;

    s->fd = -1;
    pthread_mutex_init(&s->seek_lock, NULL);
    if (!n->filename)
        return bd_err_set(err, EINVAL, "the %s driver needs filename=", n->drv->name);
    int lk = bd_opts_get_enum(o, "locking", locking_modes, n->flags.locking, err);
    if (lk < 0)
        return lk;
    n->flags.locking = (enum bd_locking)lk;
    int aio = bd_opts_get_enum(o, "aio", aio_modes, n->flags.aio, err);
    if (aio < 0)
        return aio;
    (void)bd_opts_get(o, "cache");
    (void)bd_opts_get(o, "x-check-cache-dropped");

    if (type == FT_CDROM && !n->flags.read_only)
        return bd_err_set(err, EROFS, "%s: CD-ROM drives are read-only; mount "
                          "with -r", n->filename);
    bool rw = !n->flags.read_only;
    int flags = (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    if (n->flags.cache == BD_CACHE_NONE)
        flags |= O_DIRECT;
    if (type == FT_CDROM)
        flags |= O_NONBLOCK;
    s->fd = open(n->filename, flags);
    if (s->fd < 0)
        return open_error(n, errno, rw, err);
    s->type = type;
    s->direct = n->flags.cache == BD_CACHE_NONE;

    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return bd_err_set(err, errno, "%s: %s", n->filename, strerror(errno));
    if (type == FT_FILE && !S_ISREG(st.st_mode))
        return bd_err_set(err, EINVAL, "%s: not a regular file; use the "
                          "host_device driver for devices", n->filename);
    if (type != FT_FILE && !S_ISBLK(st.st_mode))
        return bd_err_set(err, EINVAL, "%s: not a block device", n->filename);
    if (type == FT_CDROM) {
        int status = ioctl(s->fd, CDROM_DRIVE_STATUS, CDSL_CURRENT);
        if (status >= 0 && status != CDS_DISC_OK)
            return bd_err_set(err, ENOMEDIUM, "%s: no medium in the drive; "
                              "insert a disc and try again", n->filename);
    }
    s->blksize = (uint32_t)st.st_blksize;
    if (type == FT_FILE) {
        s->size = st.st_size;
        if (s->direct)
            probe_dio_alignment(s);
    } else {
        int64_t sz = device_size(s->fd);
        if (sz < 0)
            return bd_err_set(err, (int)-sz, "%s: cannot read the device size: %s",
                              n->filename, strerror((int)-sz));
        if (sz == 0 && type == FT_CDROM)
            return bd_err_set(err, ENOMEDIUM, "%s: no medium in the drive; insert "
                              "a disc and try again", n->filename);
        s->size = sz;
        int lbs = 512;
        if (ioctl(s->fd, BLKSSZGET, &lbs) != 0 || lbs <= 0)
            lbs = 512;
        s->dio_align = (uint32_t)lbs;
        s->dio_mem_align = (uint32_t)lbs;
    }

    if (!n->flags.force_share && n->flags.locking != BD_LOCKING_OFF) {
        r = ofd_lock_apply(s->fd, n->filename, n->perm, n->shared,
                           n->flags.locking, &s->lock_kind, err);
        if (r < 0)
            return r;
    }
    if ((r = pr_open(n, o, type, err)) < 0)
        return r;
    /* a lease is asked for on read-write mounts only; the read-only layers
     * under a writer take it shared (libvirt gives them none) */
    if (n->flags.lease) {
        enum lease_mode mode = LEASE_SHARED;
        if ((n->perm & BD_PERM_WRITE) && !(n->shared & BD_PERM_WRITE))
            mode = LEASE_EXCLUSIVE;
        r = lease_acquire(n->flags.lease, n->filename, s->fd, mode, &s->lease,
                          err);
        if (r < 0)
            return r;
    }

#if HAVE_LIBURING
    if (aio == BD_AIO_IO_URING) {
        pthread_mutex_init(&s->ring_lock, NULL);
        pthread_cond_init(&s->ring_free, NULL);
        for (unsigned i = 0; i < FILE_RINGS; i++) {
            r = io_uring_queue_init(4, &s->rings[i], 0);
            if (r < 0) {
                if (i == 0)
                    return bd_err_set(err, -r, "%s: io_uring is not available "
                                      "(%s); use --aio=threads", n->filename,
                                      strerror(-r));
                break;
            }
            s->nrings++;
        }
        s->use_uring = true;
    }
#else
    if (aio == BD_AIO_IO_URING)
        return bd_err_set(err, ENOTSUP, "this imgfuse was built without "
                          "liburing; use --aio=threads");
#endif
    return 0;
}

static int file_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    return open_common(n, o, FT_FILE, err);
}

static int hdev_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    return open_common(n, o, FT_DEVICE, err);
}

static int cdrom_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    return open_common(n, o, FT_CDROM, err);
}

static void file_close(struct bd_node *n)
{
    struct file_state *s = n->state;
#if HAVE_LIBURING
    for (unsigned i = 0; i < s->nrings; i++)
        io_uring_queue_exit(&s->rings[i]);
    if (s->use_uring) {
        pthread_mutex_destroy(&s->ring_lock);
        pthread_cond_destroy(&s->ring_free);
    }
#endif
    if (s->pr_held)
        pr_release(&s->prfd.dev, &s->pr);
    if (s->pr_open)
        pr_fd_close(&s->prfd);
    free(s->pr_helper);
    lease_release(s->lease);
    if (s->fd >= 0) {
        ofd_lock_release(s->fd, s->lock_kind);
        close(s->fd);
    }
    pthread_mutex_destroy(&s->seek_lock);
}

/* ---- callbacks ---- */

static void file_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct file_state *s = n->state;
    lim->request_alignment = 1;
    if (s->direct || s->type != FT_FILE)
        lim->request_alignment = s->dio_align;
    lim->mem_alignment = s->direct ? s->dio_mem_align : 0;
    lim->opt_transfer = s->blksize;
    lim->max_transfer = 0;
}

static int64_t file_size(struct bd_node *n)
{
    struct file_state *s = n->state;
    return s->size;
}

static int file_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    return file_rw(n, false, buf, len, off);
}

static int file_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                       uint64_t off, unsigned flags)
{
    struct file_state *s = n->state;
    int r = file_rw(n, true, (void *)buf, len, off);
    if (r == 0 && (flags & BD_REQ_FUA) && fdatasync(s->fd) != 0)
        r = -errno;
    return r;
}

static int file_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                              unsigned flags)
{
    struct file_state *s = n->state;
    int r;
    if (s->type == FT_CDROM)
        return -EROFS;
    if (lease_revoked(s->lease))
        return -EIO;
    if (flags & BD_REQ_MAY_UNMAP) {
        r = fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)off, (off_t)len);
        if (r == 0)
            goto done;
    }
    r = fallocate(s->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)len);
    if (r != 0 && s->type == FT_DEVICE) {
        uint64_t range[2] = { off, len };
        r = ioctl(s->fd, BLKZEROOUT, range);
    }
    if (r != 0)
        return errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL
                   ? -ENOTSUP : -errno;
done:
    if ((flags & BD_REQ_FUA) && fdatasync(s->fd) != 0)
        return -errno;
    return 0;
}

static int file_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct file_state *s = n->state;
    if (lease_revoked(s->lease))
        return -EIO;
    int r;
    if (s->type == FT_DEVICE) {
        uint64_t range[2] = { off, len };
        r = ioctl(s->fd, BLKDISCARD, range);
    } else {
        r = fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)off, (off_t)len);
    }
    if (r != 0)
        return errno == EOPNOTSUPP || errno == ENOTTY ? -ENOTSUP : -errno;
    return 0;
}

static int file_flush(struct bd_node *n)
{
    struct file_state *s = n->state;
    return fdatasync(s->fd) == 0 ? 0 : -errno;
}

static int file_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                             uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct file_state *s = n->state;
    *map = off;
    if (s->type != FT_FILE) {
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        return 0;
    }
    pthread_mutex_lock(&s->seek_lock);
    off_t data = lseek(s->fd, (off_t)off, SEEK_DATA);
    int e = errno;
    off_t hole = data >= 0 ? lseek(s->fd, data, SEEK_HOLE) : -1;
    pthread_mutex_unlock(&s->seek_lock);
    if (data < 0) {
        if (e == ENXIO) {               /* a hole up to the end of the file */
            *pnum = len;
            *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
            return 0;
        }
        *pnum = len;                    /* no SEEK_DATA: all data */
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        return 0;
    }
    if ((uint64_t)data > off) {
        uint64_t h = (uint64_t)data - off;
        *pnum = h < len ? h : len;
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        return 0;
    }
    uint64_t d = hole > data ? (uint64_t)hole - off : len;
    *pnum = d < len ? d : len;
    *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
    return 0;
}

static int full_prealloc(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[65536];
    uint64_t first = from;
    while (from < to) {
        uint64_t chunk = to - from < sizeof(zeros) ? to - from : sizeof(zeros);
        int r = posix_rw(fd, true, (void *)zeros, chunk, from);
        if (r < 0)
            return r;
        from += chunk;
        bd_progress("preallocating", "B", from - first, to - first);
    }
    return 0;
}

static int file_map_fd(struct bd_node *n, uint64_t off, uint64_t len, int *fd,
                       uint64_t *fd_off)
{
    struct file_state *s = n->state;
    (void)len;
    /* splice from an O_DIRECT descriptor would bypass our alignment */
    if (s->direct || s->type == FT_CDROM)
        return -ENOTSUP;
    *fd = s->fd;
    *fd_off = off;
    return 0;
}

static int file_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                         struct bd_err *err)
{
    struct file_state *s = n->state;
    uint64_t old = (uint64_t)s->size;
    if (lease_revoked(s->lease))
        return bd_err_set(err, EIO, "%s: the lease was revoked; the image is "
                          "read-only now", n->filename);
    if (s->type != FT_FILE) {
        if (size <= old)
            return 0;
        return bd_err_set(err, ENOSPC, "%s: a device cannot grow beyond its "
                          "%" PRIu64 " bytes", n->filename, old);
    }
    if (size > INT64_MAX)
        return bd_err_set(err, EFBIG, "%s: size too large", n->filename);
    if (size > old && prealloc == BD_PREALLOC_FALLOC) {
        if (fallocate(s->fd, 0, (off_t)old, (off_t)(size - old)) != 0)
            return bd_err_set(err, errno, "%s: cannot preallocate %" PRIu64
                              " bytes: %s", n->filename, size - old,
                              strerror(errno));
    } else if (size > old && prealloc == BD_PREALLOC_FULL) {
        int r = full_prealloc(s->fd, old, size);
        if (r < 0)
            return bd_err_set(err, -r, "%s: cannot write %" PRIu64 " bytes of "
                              "zeroes: %s", n->filename, size - old, strerror(-r));
    }
    if (ftruncate(s->fd, (off_t)size) != 0)
        return bd_err_set(err, errno, "%s: cannot resize to %" PRIu64 " bytes: %s",
                          n->filename, size, strerror(errno));
    s->size = (int64_t)size;
    return 0;
}

static int64_t file_allocated_size(struct bd_node *n)
{
    struct file_state *s = n->state;
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return -errno;
    return s->type == FT_FILE ? (int64_t)st.st_blocks * 512 : s->size;
}

static void file_info(struct bd_node *n, struct bd_info *info)
{
    struct file_state *s = n->state;
    unsigned hold = 0, unshare = 0;
    char buf[128];
    bd_info_add(info, "protocol", "%s", n->drv->name);
    bd_info_add(info, "filename", "%s", n->filename);
    if (s->type != FT_FILE)
        bd_info_add(info, "logical-block-size", "%u", s->dio_align);
    if (ofd_lock_probe(s->fd, &hold, &unshare) == 0) {
        bd_info_add(info, "locks-held-by-others", "%s",
                    hold ? ofd_perm_list(hold, buf, sizeof(buf)) : "none");
        bd_info_add(info, "locks-unshared-by-others", "%s",
                    unshare ? ofd_perm_list(unshare, buf, sizeof(buf)) : "none");
    }
    if (s->type == FT_DEVICE && (s->pr_helper || pr_have_rawio())) {
        struct pr_fd p;
        struct bd_err e = {0};
        if (pr_fd_open(&p, s->fd, n->filename, s->pr_helper, &e) == 0) {
            pr_info(&p.dev, info);
            pr_fd_close(&p);
        }
    }
}

static int file_create_file(const char *filename, const struct bd_opts *o,
                            struct bd_err *err)
{
    bool nocow = false;
    int r = bd_opts_get_bool(o, "nocow", false, &nocow, err);
    if (r == -EINVAL)
        return r;
    int fd = open(filename, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            return bd_err_set(err, EEXIST, "%s: already exists; remove it first "
                              "or pick another name", filename);
        return bd_err_set(err, errno, "%s: cannot create: %s", filename,
                          strerror(errno));
    }
    if (nocow) {
        /* btrfs only; elsewhere the flag does not exist and that is fine. */
        int attr = 0;
        if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
            attr |= FS_NOCOW_FL;
            (void)ioctl(fd, FS_IOC_SETFLAGS, &attr);
        }
    }
    close(fd);
    return 0;
}

static int file_remove_file(const char *filename, const struct bd_opts *o,
                            struct bd_err *err)
{
    (void)o;
    if (unlink(filename) != 0)
        return bd_err_set(err, errno, "%s: cannot remove: %s", filename,
                          strerror(errno));
    return 0;
}

static const struct bd_files_ops file_files_ops = {
    .options = file_create_options,
    .create_file = file_create_file,
    .remove_file = file_remove_file,
};

const struct bd_driver bd_drv_file = {
    .name = "file",
    .kind = BD_PROTOCOL,
    .options = file_options,
    .state_size = sizeof(struct file_state),
    .parallel = true,
    .open = file_open,
    .close = file_close,
    .limits = file_limits,
    .size = file_size,
    .pread = file_pread,
    .pwrite = file_pwrite,
    .pwrite_zeroes = file_pwrite_zeroes,
    .discard = file_discard,
    .flush = file_flush,
    .block_status = file_block_status,
    .map_fd = file_map_fd,
    .truncate = file_truncate,
    .allocated_size = file_allocated_size,
    .info = file_info,
    .files = &file_files_ops,
};

const struct bd_driver bd_drv_host_device = {
    .name = "host_device",
    .kind = BD_PROTOCOL,
    .options = file_options,
    .state_size = sizeof(struct file_state),
    .parallel = true,
    .open = hdev_open,
    .close = file_close,
    .limits = file_limits,
    .size = file_size,
    .pread = file_pread,
    .pwrite = file_pwrite,
    .pwrite_zeroes = file_pwrite_zeroes,
    .discard = file_discard,
    .flush = file_flush,
    .block_status = file_block_status,
    .map_fd = file_map_fd,
    .truncate = file_truncate,
    .allocated_size = file_allocated_size,
    .info = file_info,
};

const struct bd_driver bd_drv_host_cdrom = {
    .name = "host_cdrom",
    .kind = BD_PROTOCOL,
    .options = file_options,
    .state_size = sizeof(struct file_state),
    .parallel = true,
    .open = cdrom_open,
    .close = file_close,
    .limits = file_limits,
    .size = file_size,
    .pread = file_pread,
    .block_status = file_block_status,
    .allocated_size = file_allocated_size,
    .info = file_info,
};
