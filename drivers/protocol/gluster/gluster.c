/*
 * The gluster protocol driver: a file on a GlusterFS volume, through gfapi,
 * as a block node. Connecting (with a time limit), I/O, holes and resizing
 * are here; URI and option parsing are in target.c. gfapi is thread-safe,
 * so the node is parallel.
 *
 * Closing: glfs_fini() takes about 10 s in gluster 10 (upstream issues
 * #1962/#2606). Close first makes the data durable (fdatasync, then
 * glfs_close), then runs glfs_fini() in a detached thread and waits for it
 * at most GL_FINI_WAIT_MS. If it has not finished by then, close returns
 * anyway: nothing is left to write, and the process is about to exit,
 * which ends that thread and its connections.
 */
#include "gluster.h"

#include <glusterfs/api/glfs.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define GL_FINI_WAIT_MS 1000
#define GL_CONNECT_TIMEOUT_S 30
#define GL_MAX_TRANSFER (1u << 20)

static const char *const gl_schemes[] = {
    "gluster", "gluster+tcp", "gluster+unix", "gluster+rdma", NULL,
};

static const char *const gl_options[] = {
    "volume", "path", "server.0.type", "server.0.host", "server.0.port",
    "server.0.path", "server.0.socket", "debug", "logfile", "connect-timeout",
    "timeout", "filename", NULL,
};

struct gl_state {
    struct glt t;
    char *display;
    char *server;                   /* gluster://host:port/volume, for siblings */
    char *canon;                    /* the volume's canonical path of the file */
    glfs_t *fs;
    glfs_fd_t *fd;
    bool fs_busy;                   /* an init thread still owns fs */
    unsigned connect_timeout_s;
    unsigned timeout_s;             /* brick ping-timeout, 0 = gluster's */
    _Atomic int64_t size;
    atomic_bool dirty;              /* written since the last flush */
    atomic_bool no_zerofill, no_discard, no_seek;
    atomic_uint lost;               /* I/O failures for a lost connection */
};

/* ---- glfs_init / glfs_fini with a time limit ------------------------------ */

/* Shared by the caller and a helper thread; the last one out frees it. */
struct gl_job {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    glfs_t *fs;
    bool fini;                      /* glfs_fini, else glfs_init */
    bool done;
    int ret, errnum;
    int refs;
};

static void job_put(struct gl_job *j)
{
    pthread_mutex_lock(&j->lock);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->lock);
    if (last) {
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->lock);
        free(j);
    }
}

static void *job_main(void *arg)
{
    struct gl_job *j = arg;
    errno = 0;
    int r = j->fini ? glfs_fini(j->fs) : glfs_init(j->fs);
    int e = errno;
    pthread_mutex_lock(&j->lock);
    j->ret = r;
    j->errnum = e;
    j->done = true;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
    job_put(j);
    return NULL;
}

/* Run glfs_init or glfs_fini on fs in a thread; 0 when it finished within
 * ms (its result in *ret and *errnum), -ETIMEDOUT when it is still running. */
static int run_limited(glfs_t *fs, bool fini, unsigned ms, int *ret, int *errnum)
{
    struct gl_job *j = calloc(1, sizeof(*j));
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_t th;
    struct timespec ts;
    int r = 0;

    if (!j)
        return -ENOMEM;
    pthread_mutex_init(&j->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    j->fs = fs;
    j->fini = fini;
    j->refs = 2;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &ta, job_main, j) != 0) {
        pthread_attr_destroy(&ta);
        j->refs = 1;
        job_put(j);
        return -EAGAIN;
    }
    pthread_attr_destroy(&ta);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->lock);
    while (!j->done && r == 0)
        r = pthread_cond_timedwait(&j->cond, &j->lock, &ts);
    if (j->done) {
        *ret = j->ret;
        *errnum = j->errnum;
        r = 0;
    } else {
        r = -ETIMEDOUT;
    }
    pthread_mutex_unlock(&j->lock);
    job_put(j);
    return r;
}

static void fs_release(struct gl_state *s)
{
    int ret, e;
    if (!s->fs || s->fs_busy)
        return;         /* an init that never returned still owns it */
    if (run_limited(s->fs, true, GL_FINI_WAIT_MS, &ret, &e) == -ETIMEDOUT)
        log_debug("gluster", "%s: glfs_fini still running after %u ms; "
                  "leaving it to finish or to process exit", s->display,
                  GL_FINI_WAIT_MS);
    s->fs = NULL;
}

/* ---- open ---------------------------------------------------------------- */

static int gl_parse_uri(const char *uri, struct bd_opts *o, struct bd_err *err)
{
    struct glt t = { .debug = -1 };
    char *display = NULL;
    int r = glt_parse_uri(uri, &t, err);

    if (r == 0 && t.srv[0].type == GLT_RDMA)
        t.srv[0].type = GLT_TCP;    /* see try_server(): rdma is tcp here */
    if (r == 0 && !(display = glt_display(&t)))
        r = -ENOMEM;
    if (r == 0)
        r = bd_opts_set(o, "filename", display);
    if (r == 0)
        r = glt_to_opts(&t, o);
    free(display);
    glt_free(&t);
    return r;
}

/* One glfs object for server i. gfapi's own fail-over keeps the first
 * server's transport (a unix server after a tcp one is never tried), so
 * each server gets its own attempt. 0, or a positive errno in *e. */
static int try_server(struct gl_state *s, unsigned i, int *e, struct bd_err *err)
{
    const struct glt *t = &s->t;
    const struct glt_server *sv = &t->srv[i];
    int ret = 0, r;

    s->fs = glfs_new(t->volume);
    if (!s->fs)
        return bd_err_set(err, errno ? errno : ENOMEM, "%s: cannot set up a "
                          "gluster client: %s", s->display,
                          strerror(errno ? errno : ENOMEM));
    /* gluster dropped rdma; the volfile server speaks tcp (as in qemu) */
    if (sv->type == GLT_UNIX)
        r = glfs_set_volfile_server(s->fs, "unix", sv->path, 0);
    else
        r = glfs_set_volfile_server(s->fs, "tcp", sv->host, sv->port);
    if (r < 0)
        return bd_err_set(err, errno ? errno : EINVAL, "%s: gluster does "
                          "not take server %u (%s): %s", s->display, i,
                          sv->type == GLT_UNIX ? sv->path : sv->host,
                          strerror(errno ? errno : EINVAL));
    if (glfs_set_logging(s->fs, t->logfile ? t->logfile : "/dev/null",
                         t->debug >= 0 ? t->debug : GLT_DEFAULT_DEBUG) < 0)
        return bd_err_set(err, errno ? errno : EINVAL, "%s: cannot open the "
                          "gluster log file '%s': %s", s->display,
                          t->logfile ? t->logfile : "/dev/null",
                          strerror(errno ? errno : EINVAL));
    /* A brick that stops answering (rather than closing the connection)
     * is given up after the client's ping-timeout; in-flight requests then
     * fail instead of waiting for the 30-minute frame timeout. */
    if (s->timeout_s) {
        char v[16];
        snprintf(v, sizeof(v), "%u", s->timeout_s);
        if (glfs_set_xlator_option(s->fs, "*-client-*", "ping-timeout", v) < 0)
            return bd_err_set(err, EINVAL, "%s: gluster does not take "
                              "timeout=%u", s->display, s->timeout_s);
    }
    r = run_limited(s->fs, false, s->connect_timeout_s * 1000, &ret, e);
    if (r == -ETIMEDOUT) {
        s->fs_busy = true;      /* the init thread still uses fs */
        if (sv->type == GLT_UNIX)
            return bd_err_set(err, ETIMEDOUT, "%s: no answer from the gluster "
                              "server at unix:%s within %u s; is glusterd "
                              "running?", s->display, sv->path,
                              s->connect_timeout_s);
        return bd_err_set(err, ETIMEDOUT, "%s: no answer from the gluster "
                          "server %s:%d within %u s; is glusterd running?",
                          s->display, sv->host, sv->port, s->connect_timeout_s);
    }
    if (r < 0)
        return bd_err_set(err, -r, "%s: %s", s->display, strerror(-r));
    if (ret != 0 && *e == 0)
        *e = EIO;
    return 0;
}

/* Try the servers in order. A server that does not answer in time is
 * skipped; its glfs object stays with the thread still in glfs_init. */
static int connect_volume(struct gl_state *s, struct bd_err *err)
{
    const struct glt *t = &s->t;
    struct bd_err slow = { 0 };
    bool no_volume = false;
    int e = 0, r;

    for (unsigned i = 0; i < t->nsrv; i++) {
        struct bd_err one = { 0 };
        int ei = 0;
        if ((r = try_server(s, i, &ei, &one)) < 0) {
            if (r != -ETIMEDOUT) {
                bd_err_set(err, one.errnum, "%s", one.msg);
                return r;
            }
            bd_err_set(&slow, one.errnum, "%s", one.msg);
            s->fs = NULL;
            s->fs_busy = false;
            continue;
        }
        if (ei == 0)
            return 0;
        log_debug("gluster", "%s: server %u: glfs_init: %s", s->display, i,
                  strerror(ei));
        /* gfapi says little: ENOTCONN when no server answered, ENOENT or
         * EINVAL when glusterd has no such (started) volume. */
        no_volume |= ei == ENOENT || ei == EINVAL || ei == ENODATA;
        e = ei;
        fs_release(s);
    }
    if (no_volume)
        return bd_err_set(err, ENOENT, "%s: the gluster server has no started "
                          "volume '%s' (gluster volume info lists them)",
                          s->display, t->volume);
    if (slow.errnum)
        return bd_err_set(err, slow.errnum, "%s", slow.msg);
    return bd_err_set(err, e, "%s: cannot reach the gluster server%s: %s; is "
                      "glusterd running and the volume started?", s->display,
                      t->nsrv > 1 ? "s" : "", strerror(e));
}

/* Timeouts from the options (not part of a struct glt). */
static int timeouts_from_opts(struct gl_state *s, const struct bd_opts *o,
                              struct bd_err *err)
{
    const char *v;

    if ((v = bd_opts_get(o, "connect-timeout"))) {
        char *end;
        unsigned long x = strtoul(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || x < 1 || x > 3600)
            return bd_err_set(err, EINVAL, "gluster option connect-timeout="
                              "'%s': expected seconds from 1 to 3600", v);
        s->connect_timeout_s = (unsigned)x;
    }
    if ((v = bd_opts_get(o, "timeout"))) {
        char *end;
        unsigned long x = strtoul(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || x < 1 || x > 3600)
            return bd_err_set(err, EINVAL, "gluster option timeout='%s': "
                              "expected seconds from 1 to 3600", v);
        s->timeout_s = (unsigned)x;
    }
    return 0;
}

/* Connect to the volume s->t names. */
static int volume_start(struct gl_state *s, struct bd_err *err)
{
    const struct glt_server *sv = &s->t.srv[0];
    int r;

    for (unsigned i = 0; i < s->t.nsrv; i++) {
        if (s->t.srv[i].type == GLT_RDMA) {
            log_warn("gluster: the rdma transport is gone from gluster; "
                     "using tcp for server %u", i);
            s->t.srv[i].type = GLT_TCP;
        }
    }
    if (!(s->display = glt_display(&s->t)))
        return bd_err_set(err, ENOMEM, "gluster: out of memory");
    if (sv->type == GLT_UNIX)
        r = asprintf(&s->server, "gluster+unix://%s/%s", sv->path,
                     s->t.volume);
    else
        r = asprintf(&s->server, strchr(sv->host, ':') ? "gluster://[%s]:%d/%s"
                     : "gluster://%s:%d/%s", sv->host, sv->port, s->t.volume);
    if (r < 0) {
        s->server = NULL;
        return bd_err_set(err, ENOMEM, "gluster: out of memory");
    }
    return connect_volume(s, err);
}

/* The volume's canonical form of an absolute path; -ENOENT when missing. */
static int canonical(struct gl_state *s, const char *path, char **out)
{
    char buf[PATH_MAX + 1];

    errno = 0;
    if (!glfs_realpath(s->fs, path, buf))
        return -(errno ? errno : EIO);
    *out = strdup(buf);
    return *out ? 0 : -ENOMEM;
}

static int gl_open(struct bd_node *n, const struct bd_opts *o,
                   struct bd_err *err)
{
    struct gl_state *s = n->state;
    struct stat st;
    char *abs;
    int r;

    s->t.debug = -1;
    s->connect_timeout_s = GL_CONNECT_TIMEOUT_S;
    if ((r = glt_from_opts(o, &s->t, err)) < 0 ||
        (r = timeouts_from_opts(s, o, err)) < 0 ||
        (r = volume_start(s, err)) < 0)
        return r;

    s->fd = glfs_open(s->fs, s->t.path, n->flags.read_only ? O_RDONLY : O_RDWR);
    if (!s->fd) {
        int e = errno ? errno : EIO;
        if (e == ENOENT)
            return bd_err_set(err, ENOENT, "%s: no file '%s' on gluster volume "
                              "'%s'", s->display, s->t.path, s->t.volume);
        if (e == EACCES || e == EPERM || e == EROFS)
            return bd_err_set(err, e, "%s: %s%s", s->display, strerror(e),
                              n->flags.read_only ? "" : "; mount with -r");
        return bd_err_set(err, e, "%s: cannot open '%s': %s", s->display,
                          s->t.path, strerror(e));
    }
    if (glfs_fstat(s->fd, &st) < 0)
        return bd_err_set(err, errno ? errno : EIO, "%s: cannot stat: %s",
                          s->display, strerror(errno ? errno : EIO));
    if (!S_ISREG(st.st_mode))
        return bd_err_set(err, EINVAL, "%s: not a regular file", s->display);
    atomic_store(&s->size, (int64_t)st.st_size);
    /* names stored in the image are resolved against this (core) */
    if (asprintf(&abs, "/%s", s->t.path) < 0)
        return bd_err_set(err, ENOMEM, "gluster: out of memory");
    if (canonical(s, abs, &s->canon) < 0)
        s->canon = abs;
    else
        free(abs);
    log_debug("gluster", "%s: size %lld", s->display, (long long)st.st_size);
    return 0;
}

static int gl_flush(struct bd_node *n);

static void gl_close(struct bd_node *n)
{
    struct gl_state *s = n->state;

    if (s->fd) {
        if (atomic_load(&s->dirty) && gl_flush(n) < 0)
            log_err("%s: flushing before close failed", s->display);
        if (glfs_close(s->fd) < 0)
            log_err("%s: close failed: %s", s->display, strerror(errno));
        s->fd = NULL;
    }
    fs_release(s);
    free(s->display);
    free(s->server);
    free(s->canon);
    glt_free(&s->t);
}

/* ---- I/O ------------------------------------------------------------------- */

/* errno of a failed gfapi call as the program should see it: a lost
 * connection (brick or server gone) is EIO, logged once per node. */
static int io_err(struct gl_state *s, const char *what)
{
    int e = errno ? errno : EIO;
    switch (e) {
    case ENOTCONN: case ECONNRESET: case ECONNREFUSED: case ESHUTDOWN:
    case EPIPE: case ETIMEDOUT: case EHOSTUNREACH: case ENETUNREACH:
        if (atomic_fetch_add(&s->lost, 1) == 0)
            log_err("%s: %s failed: %s; the gluster volume is not reachable, "
                    "failing I/O with EIO", s->display, what, strerror(e));
        return -EIO;
    default:
        return -e;
    }
}

static void gl_limits(struct bd_node *n, struct bd_limits *lim)
{
    (void)n;
    lim->request_alignment = 1;
    lim->max_transfer = GL_MAX_TRANSFER;
}

static int64_t gl_size(struct bd_node *n)
{
    struct gl_state *s = n->state;
    return atomic_load(&s->size);
}

static int gl_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct gl_state *s = n->state;
    uint8_t *b = buf;

    while (len > 0) {
        ssize_t got = glfs_pread(s->fd, b, len, (off_t)off, 0, NULL);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return io_err(s, "read");
        }
        if (got == 0) {             /* past a shrunken end: zeroes */
            memset(b, 0, len);
            return 0;
        }
        b += got, off += (uint64_t)got, len -= (uint64_t)got;
    }
    return 0;
}

static void grow_size(struct gl_state *s, uint64_t end)
{
    int64_t cur = atomic_load(&s->size);
    while ((int64_t)end > cur &&
           !atomic_compare_exchange_weak(&s->size, &cur, (int64_t)end))
        ;
}

static int gl_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                     uint64_t off, unsigned flags)
{
    struct gl_state *s = n->state;
    const uint8_t *b = buf;
    uint64_t end = off + len;

    atomic_store(&s->dirty, true);
    while (len > 0) {
        ssize_t put = glfs_pwrite(s->fd, b, len, (off_t)off, 0, NULL, NULL);
        if (put < 0) {
            if (errno == EINTR)
                continue;
            return io_err(s, "write");
        }
        if (put == 0)
            return -EIO;
        b += put, off += (uint64_t)put, len -= (uint64_t)put;
    }
    grow_size(s, end);
    if (flags & BD_REQ_FUA)
        return glfs_fdatasync(s->fd, NULL, NULL) < 0 ? io_err(s, "flush") : 0;
    return 0;
}

static bool is_unsupported(int e)
{
    return e == ENOTSUP || e == EOPNOTSUPP || e == ENOSYS;
}

static int gl_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                            unsigned flags)
{
    struct gl_state *s = n->state;

    if (atomic_load(&s->no_zerofill))
        return -ENOTSUP;
    atomic_store(&s->dirty, true);
    if (glfs_zerofill(s->fd, (off_t)off, (off_t)len) < 0) {
        int e = errno ? errno : EIO;
        if (is_unsupported(e)) {
            atomic_store(&s->no_zerofill, true);
            log_debug("gluster", "%s: no zerofill on this volume", s->display);
            return -ENOTSUP;
        }
        return io_err(s, "zero-fill");
    }
    grow_size(s, off + len);
    if (flags & BD_REQ_FUA)
        return glfs_fdatasync(s->fd, NULL, NULL) < 0 ? io_err(s, "flush") : 0;
    return 0;
}

static int gl_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct gl_state *s = n->state;

    if (atomic_load(&s->no_discard))
        return -ENOTSUP;
    atomic_store(&s->dirty, true);
    if (glfs_discard(s->fd, (off_t)off, (size_t)len) < 0) {
        int e = errno ? errno : EIO;
        if (is_unsupported(e)) {
            atomic_store(&s->no_discard, true);
            return -ENOTSUP;
        }
        return io_err(s, "discard");
    }
    return 0;
}

static int gl_flush(struct bd_node *n)
{
    struct gl_state *s = n->state;

    if (!s->fd || n->flags.read_only)
        return 0;
    atomic_store(&s->dirty, false);
    if (glfs_fdatasync(s->fd, NULL, NULL) < 0) {
        atomic_store(&s->dirty, true);
        return io_err(s, "flush");
    }
    return 0;
}

/* Holes through glfs_lseek(SEEK_DATA/SEEK_HOLE): the result is returned,
 * not read back from the fd's offset, so concurrent calls are fine. */
static int gl_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                           uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct gl_state *s = n->state;
    off_t data, hole;

    *map = off;
    *pnum = len;
    *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
    if (atomic_load(&s->no_seek))
        return 0;
    data = glfs_lseek(s->fd, (off_t)off, SEEK_DATA);
    if (data < 0) {
        int e = errno;
        if (e == ENXIO) {               /* a hole up to the end */
            *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
            return 0;
        }
        if (is_unsupported(e) || e == EINVAL) {
            atomic_store(&s->no_seek, true);
            return 0;
        }
        return io_err(s, "seek");
    }
    if ((uint64_t)data > off) {
        uint64_t h = (uint64_t)data - off;
        *pnum = h < len ? h : len;
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        return 0;
    }
    hole = glfs_lseek(s->fd, data, SEEK_HOLE);
    if (hole > data) {
        uint64_t d = (uint64_t)hole - off;
        *pnum = d < len ? d : len;
    }
    return 0;
}

static int gl_truncate(struct bd_node *n, uint64_t size,
                       enum bd_prealloc prealloc, struct bd_err *err)
{
    struct gl_state *s = n->state;
    int64_t old = atomic_load(&s->size);

    if (size > INT64_MAX)
        return bd_err_set(err, EFBIG, "%s: size too large", s->display);
    if (prealloc != BD_PREALLOC_OFF && prealloc != BD_PREALLOC_FALLOC)
        return bd_err_set(err, ENOTSUP, "%s: gluster supports preallocation "
                          "off and falloc only", s->display);
    if (glfs_ftruncate(s->fd, (off_t)size, NULL, NULL) < 0)
        return bd_err_set(err, errno ? errno : EIO, "%s: cannot resize to %llu "
                          "bytes: %s", s->display, (unsigned long long)size,
                          strerror(errno ? errno : EIO));
    if (prealloc == BD_PREALLOC_FALLOC && size > (uint64_t)old &&
        glfs_fallocate(s->fd, 0, (off_t)old, (size_t)(size - (uint64_t)old)) < 0)
        return bd_err_set(err, errno ? errno : EIO, "%s: cannot preallocate: "
                          "%s", s->display, strerror(errno ? errno : EIO));
    atomic_store(&s->size, (int64_t)size);
    atomic_store(&s->dirty, true);
    return 0;
}

static int64_t gl_allocated_size(struct bd_node *n)
{
    struct gl_state *s = n->state;
    struct stat st;
    if (glfs_fstat(s->fd, &st) < 0)
        return -(errno ? errno : EIO);
    return (int64_t)st.st_blocks * 512;
}

static void gl_info(struct bd_node *n, struct bd_info *info)
{
    struct gl_state *s = n->state;

    for (unsigned i = 0; i < s->t.nsrv; i++) {
        const struct glt_server *sv = &s->t.srv[i];
        char key[32];
        snprintf(key, sizeof(key), s->t.nsrv > 1 ? "server %u" : "server", i);
        if (sv->type == GLT_UNIX)
            bd_info_add(info, key, "unix:%s", sv->path);
        else if (strchr(sv->host, ':'))
            bd_info_add(info, key, "tcp:[%s]:%d", sv->host, sv->port);
        else
            bd_info_add(info, key, "tcp:%s:%d", sv->host, sv->port);
    }
    bd_info_add(info, "volume", "%s", s->t.volume);
    bd_info_add(info, "path", "/%s", s->t.path);
    bd_info_add(info, "block size", "1 (byte-granular), transfers up to %u",
                GL_MAX_TRANSFER);
}

/* ---- creating and removing files ------------------------------------------ */

/* A connection (no file open) for create_file/remove_file: from the
 * options sibling() filled when o has them, else from the URI. */
static int uri_volume(const char *uri, const struct bd_opts *o,
                      struct gl_state *s, struct bd_err *err)
{
    int r;

    s->t.debug = -1;
    s->connect_timeout_s = GL_CONNECT_TIMEOUT_S;
    if (o && bd_opts_has(o, "volume")) {
        if ((r = glt_from_opts(o, &s->t, err)) < 0 ||
            (r = timeouts_from_opts(s, o, err)) < 0)
            return r;
        return volume_start(s, err);
    }
    if (!strstr(uri, "://"))
        return bd_err_set(err, EINVAL, "%s: give the new file as a URI "
                          "gluster://HOST[:PORT]/VOLUME/PATH", uri);
    r = glt_parse_uri(uri, &s->t, err);
    if (r == 0 && s->t.srv[0].type == GLT_RDMA)
        s->t.srv[0].type = GLT_TCP;
    return r < 0 ? r : volume_start(s, err);
}

static int gl_create_file(const char *filename, const struct bd_opts *o,
                          struct bd_err *err)
{
    struct gl_state s = { 0 };
    glfs_fd_t *fd;
    int r;

    if ((r = uri_volume(filename, o, &s, err)) < 0)
        goto out;
    /* O_EXCL: the volume refuses an existing file, with no race */
    fd = glfs_creat(s.fs, s.t.path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (!fd) {
        int e = errno ? errno : EIO;
        if (e == EEXIST)
            r = bd_err_set(err, EEXIST, "%s: already exists; imgfuse create "
                           "never overwrites: remove it first or pick another "
                           "name", s.display);
        else
            r = bd_err_set(err, e, "%s: cannot create '%s' on volume '%s': %s",
                           s.display, s.t.path, s.t.volume, strerror(e));
    } else if (glfs_close(fd) < 0) {
        r = bd_err_set(err, errno ? errno : EIO, "%s: %s", s.display,
                       strerror(errno ? errno : EIO));
    }
out:
    fs_release(&s);
    free(s.display);
    free(s.server);
    glt_free(&s.t);
    return r;
}

static int gl_remove_file(const char *filename, const struct bd_opts *o,
                          struct bd_err *err)
{
    struct gl_state s = { 0 };
    int r;

    if ((r = uri_volume(filename, o, &s, err)) == 0 &&
        glfs_unlink(s.fs, s.t.path) < 0)
        r = bd_err_set(err, errno ? errno : EIO, "%s: cannot remove the "
                       "half-made file: %s", s.display,
                       strerror(errno ? errno : EIO));
    fs_release(&s);
    free(s.display);
    free(s.server);
    glt_free(&s.t);
    return r;
}

/* ---- names stored in images: paths on the same volume ---------------------- */

static void gl_remote_where(struct bd_node *n, const char **server,
                            const char **path)
{
    struct gl_state *s = n->state;
    *server = s->server;
    *path = s->canon;
}

static int gl_remote_realpath(struct bd_node *n, const char *path, char **out,
                              struct bd_err *err)
{
    struct gl_state *s = n->state;
    int r = canonical(s, path, out);

    if (r < 0 && r != -ENOENT)
        return bd_err_set(err, -r, "cannot look up '%s' on volume '%s': %s",
                          path, s->t.volume, strerror(-r));
    return r;
}

static int gl_sibling(struct bd_node *n, const char *path, struct bd_opts *o,
                      struct bd_err *err)
{
    struct gl_state *s = n->state;
    struct glt t = s->t;
    char *display = NULL, v[16];
    int r;

    while (*path == '/')
        path++;
    t.path = (char *)path;          /* borrowed for the two calls below */
    r = glt_to_opts(&t, o);
    if (r == 0 && !(display = glt_display(&t)))
        r = -ENOMEM;
    if (r == 0)
        r = bd_opts_set(o, "filename", display);
    free(display);
    if (r == 0 && s->t.logfile)
        r = bd_opts_set(o, "logfile", s->t.logfile);
    if (r == 0 && s->t.debug >= 0) {
        snprintf(v, sizeof(v), "%d", s->t.debug);
        r = bd_opts_set(o, "debug", v);
    }
    if (r == 0) {
        snprintf(v, sizeof(v), "%u", s->connect_timeout_s);
        r = bd_opts_set(o, "connect-timeout", v);
    }
    if (r == 0 && s->timeout_s) {
        snprintf(v, sizeof(v), "%u", s->timeout_s);
        r = bd_opts_set(o, "timeout", v);
    }
    return r < 0 ? bd_err_set(err, ENOMEM, "gluster: out of memory") : 0;
}

static const struct bd_uri_ops gluster_uri_ops = {
    .schemes = gl_schemes,
    .parse = gl_parse_uri,
};

static const struct bd_files_ops gluster_files_ops = {
    .create_file = gl_create_file,
    .remove_file = gl_remove_file,
};

static const struct bd_remote_ops gluster_remote_ops = {
    .where = gl_remote_where,
    .realpath = gl_remote_realpath,
    .sibling = gl_sibling,
};

const struct bd_driver bd_drv_gluster = {
    .name = "gluster",
    .kind = BD_PROTOCOL,
    .options = gl_options,
    .state_size = sizeof(struct gl_state),
    .parallel = true,
    .open = gl_open,
    .close = gl_close,
    .limits = gl_limits,
    .size = gl_size,
    .pread = gl_pread,
    .pwrite = gl_pwrite,
    .pwrite_zeroes = gl_pwrite_zeroes,
    .discard = gl_discard,
    .flush = gl_flush,
    .block_status = gl_block_status,
    .truncate = gl_truncate,
    .allocated_size = gl_allocated_size,
    .info = gl_info,
    .uri = &gluster_uri_ops,
    .files = &gluster_files_ops,
    .remote = &gluster_remote_ops,
};
