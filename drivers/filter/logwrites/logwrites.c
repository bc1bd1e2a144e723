/*
 * The logwrites filter, a test tool (as QEMU's blklogwrites): between a
 * format and its file, it appends every write, zero write, discard,
 * truncate and flush that reaches the file to a log (logwrites.h), in
 * order of completion, before the request returns. Requests are
 * serialised so the log order is the order the file saw. Replaying the
 * log (tests/tools/replay-writes.py) rebuilds the image as a power cut
 * could have left it. Not for production: every request waits for the log.
 */
#include "logwrites.h"

#include "core/bd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct logw_state {
    int fd;                     /* the log, O_APPEND; -1 until open */
    bool lock_init;
    pthread_mutex_t lock;       /* one request at a time, file and log */
    unsigned long errors;       /* failed appends, for log-once */
};

static const char *const logw_options[] = { "log", NULL };

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Append one record (and a write's data). s->lock held. A request whose
 * record is lost fails: a log that lies is worse than an error. */
static int append(struct bd_node *n, enum logw_type type, unsigned flags,
                  uint64_t off, uint64_t len, const void *data)
{
    struct logw_state *s = n->state;
    uint8_t rec[LOGW_RECORD_SIZE];
    int r;

    put_le32(rec, type);
    put_le32(rec + 4, flags);
    put_le64(rec + 8, off);
    put_le64(rec + 16, len);
    r = write_all(s->fd, rec, sizeof(rec));
    if (r == 0 && data)
        r = write_all(s->fd, data, (size_t)len);
    if (r < 0) {
        if (!s->errors++)
            log_err("%s: cannot append to the write log: %s", n->name,
                    strerror(-r));
        return -EIO;
    }
    return 0;
}

/* A new log gets its header; an old one must be ours, and is appended to. */
static int log_start(struct bd_node *n, const char *path, struct bd_err *err)
{
    struct logw_state *s = n->state;
    uint8_t hdr[LOGW_HEADER_SIZE] = { 0 };
    struct stat st;

    if (fstat(s->fd, &st) != 0)
        return bd_err_set(err, errno, "%s: %s", path, strerror(errno));
    if (st.st_size == 0) {
        memcpy(hdr, LOGW_MAGIC, 8);
        put_le32(hdr + 8, LOGW_VERSION);
        int r = write_all(s->fd, hdr, sizeof(hdr));
        if (r < 0)
            return bd_err_set(err, -r, "%s: cannot write the log header: %s",
                              path, strerror(-r));
        return 0;
    }
    if (pread(s->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
        memcmp(hdr, LOGW_MAGIC, 8) != 0 || hdr[8] != LOGW_VERSION)
        return bd_err_set(err, EINVAL, "%s: not a logwrites log; give a new "
                          "file or an empty one for log=", path);
    return 0;
}

/* ---- callbacks ---- */

static int logw_open(struct bd_node *n, const struct bd_opts *o,
                     struct bd_err *err)
{
    struct logw_state *s = n->state;
    const char *path = bd_opts_get(o, "log");

    s->fd = -1;
    if (!path || !*path)
        return bd_err_set(err, EINVAL, "%s: the logwrites filter needs "
                          "log=FILE, where it appends what reaches the file",
                          n->name);
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return bd_err_set(err, ENOMEM, "out of memory");
    s->lock_init = true;
    s->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0)
        return bd_err_set(err, errno, "%s: cannot open the write log: %s",
                          path, strerror(errno));
    return log_start(n, path, err);
}

static void logw_close(struct bd_node *n)
{
    struct logw_state *s = n->state;

    if (s->fd >= 0)
        close(s->fd);
    if (s->lock_init)
        pthread_mutex_destroy(&s->lock);
}

static int logw_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                       uint64_t off, unsigned flags)
{
    struct logw_state *s = n->state;

    pthread_mutex_lock(&s->lock);
    int r = bd_pwrite(n->file, buf, len, off, flags);
    if (r == 0)
        r = append(n, LOGW_WRITE, flags, off, len, buf);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int logw_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                              unsigned flags)
{
    struct logw_state *s = n->state;

    pthread_mutex_lock(&s->lock);
    int r = bd_pwrite_zeroes(n->file, len, off, flags);
    if (r == 0)
        r = append(n, LOGW_ZEROES, flags, off, len, NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int logw_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct logw_state *s = n->state;

    pthread_mutex_lock(&s->lock);
    int r = bd_discard(n->file, len, off);
    if (r == 0)
        r = append(n, LOGW_DISCARD, 0, off, len, NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* The file is flushed here, under the lock, so that the record stands for
 * exactly the requests before it; core's own flush of the file afterwards
 * finds nothing left to do. */
static int logw_flush(struct bd_node *n)
{
    struct logw_state *s = n->state;

    pthread_mutex_lock(&s->lock);
    int r = bd_flush(n->file);
    if (r == 0)
        r = append(n, LOGW_FLUSH, 0, 0, 0, NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int logw_truncate(struct bd_node *n, uint64_t size,
                         enum bd_prealloc prealloc, struct bd_err *err)
{
    struct logw_state *s = n->state;

    pthread_mutex_lock(&s->lock);
    int r = bd_truncate(n->file, size, prealloc, err);
    if (r == 0)
        r = append(n, LOGW_TRUNCATE, 0, size, 0, NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void logw_info(struct bd_node *n, struct bd_info *info)
{
    (void)n;
    bd_info_add(info, "filter", "logwrites");
}

const struct bd_driver bd_drv_logwrites = {
    .name = "logwrites",
    .kind = BD_FILTER,
    .options = logw_options,
    .state_size = sizeof(struct logw_state),
    .parallel = true,
    .open = logw_open,
    .close = logw_close,
    .pwrite = logw_pwrite,
    .pwrite_zeroes = logw_pwrite_zeroes,
    .discard = logw_discard,
    .flush = logw_flush,
    .truncate = logw_truncate,
    .info = logw_info,
};
