/*
 * NBD connections: connecting with a timeout and a readable error, and
 * running requests from many threads at once over a small pool of libnbd
 * handles, each request bounded by a timeout, with a bounded reconnect when
 * a connection drops. What the requests mean is nbd.c's business.
 */
#include "nbd.h"

#include <fcntl.h>
#include <libnbd.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NBD_DROPPED (-ENOTCONN)     /* internal: the connection is gone */
#define POLL_SLICE_MS 500           /* re-check deadlines at least this often */
#define NBD_SPLIT_MIN (256u << 10)  /* reads and writes from 512 KiB up */
#define NBD_SPLIT_MAX 8u            /* are sent as up to 8 requests at once */

/* ---- time ---------------------------------------------------------------- */

int64_t nbdc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(void)
{
    return nbdc_now_ms();
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void abstime_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* ---- connecting ---------------------------------------------------------- */

static bool is_gone(struct nbd_handle *h)
{
    return nbd_aio_is_dead(h) || nbd_aio_is_closed(h);
}

const char *nbdc_msg(const char *msg)
{
    const char *colon;
    if (!msg)
        return "unknown error";
    colon = strstr(msg, ": ");
    if (strncmp(msg, "nbd_", 4) == 0 && colon)
        return colon + 2;
    return msg;
}

/* Turn libnbd's error after a failed connect into a sentence. */
static int explain_connect(struct nbd_state *s, int e, const char *msg,
                           struct bd_err *err)
{
    const struct nbd_conf *c = &s->conf;
    if (e == 0)
        e = EIO;
    msg = msg ? nbdc_msg(msg) : strerror(e);
    if (e == ECONNREFUSED)
        return bd_err_set(err, e, "%s: connection refused; is the NBD server "
                          "running?", s->display);
    if (strstr(msg, "no export named"))
        return bd_err_set(err, ENOENT, "%s: the server has no export named "
                          "'%s'", s->display, c->export);
    if (strstr(msg, "requires TLS") || strstr(msg, "server requires"))
        return bd_err_set(err, EACCES, "%s: the server requires TLS; use "
                          "nbds:// with tls-certificates or tls-psk-file",
                          s->display);
    if (strstr(msg, "server refused TLS"))
        return bd_err_set(err, EPROTONOSUPPORT, "%s: the server does not offer "
                          "TLS; use nbd:// instead of nbds://", s->display);
    if (c->is_unix && (e == ENOENT || e == ENOTSOCK) && strstr(msg, "connect"))
        return bd_err_set(err, e, "%s: no socket at %s; is the NBD server "
                          "running?", s->display, c->path);
    if (e == EHOSTUNREACH || e == ENETUNREACH)
        return bd_err_set(err, e, "%s: %s", s->display, strerror(e));
    if (strstr(msg, "certificate verification"))
        return bd_err_set(err, e, "%s: TLS failed: %s; does %s hold the CA "
                          "that signed the server's certificate, and does the "
                          "host name match it?", s->display, msg,
                          c->tls_certs ? c->tls_certs : "the certificate "
                          "directory");
    if (c->tls_psk && strstr(msg, "gnutls_handshake"))
        return bd_err_set(err, e, "%s: TLS failed: %s; check the PSK identity "
                          "('%s') and key in %s", s->display, msg,
                          c->tls_user ? c->tls_user : "your login name",
                          c->tls_psk);
    if (strstr(msg, "TLS") || strstr(msg, "tls") || strstr(msg, "PSK") ||
        strstr(msg, "certificate"))
        return bd_err_set(err, e, "%s: TLS failed: %s", s->display, msg);
    return bd_err_set(err, e, "%s: cannot connect: %s", s->display, msg);
}

static int set_tls(struct nbd_state *s, struct nbd_handle *h, struct bd_err *err)
{
    const struct nbd_conf *c = &s->conf;
    struct stat st;

    if (!c->tls)
        return nbd_set_tls(h, LIBNBD_TLS_DISABLE) == -1 ? -EIO : 0;
    /* libnbd quietly falls back to other credentials when these are
     * missing; a name the user gave must exist. */
    if (c->tls_certs && (stat(c->tls_certs, &st) != 0 || !S_ISDIR(st.st_mode)))
        return bd_err_set(err, ENOENT, "%s: tls-certificates %s is not a "
                          "directory", s->display, c->tls_certs);
    if (c->tls_psk && access(c->tls_psk, R_OK) != 0)
        return bd_err_set(err, errno, "%s: tls-psk-file %s: %s", s->display,
                          c->tls_psk, strerror(errno));
    if (!nbd_supports_tls(h))
        return bd_err_set(err, ENOTSUP, "%s: this libnbd was built without "
                          "TLS support", s->display);
    if (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) == -1 ||
        (c->tls_certs && nbd_set_tls_certificates(h, c->tls_certs) == -1) ||
        (c->tls_psk && nbd_set_tls_psk_file(h, c->tls_psk) == -1) ||
        (c->tls_user && nbd_set_tls_username(h, c->tls_user) == -1) ||
        (c->tls_verify >= 0 && nbd_set_tls_verify_peer(h, c->tls_verify) == -1))
        return bd_err_set(err, nbd_get_errno() ? nbd_get_errno() : EINVAL,
                          "%s: TLS settings: %s", s->display,
                          nbdc_msg(nbd_get_error()));
    return 0;
}

int nbdc_connect(struct nbd_state *s, unsigned timeout_ms,
                 struct nbd_handle **out, struct bd_err *err)
{
    const struct nbd_conf *c = &s->conf;
    struct nbd_handle *h = nbd_create();
    int64_t deadline = now_ms() + timeout_ms;
    int r;

    if (!h)
        return bd_err_set(err, ENOMEM, "%s: %s", s->display,
                          nbdc_msg(nbd_get_error()));
    if (nbd_set_export_name(h, c->export) == -1 ||
        nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        nbd_set_pread_initialize(h, false) == -1) {
        r = bd_err_set(err, EIO, "%s: %s", s->display,
                       nbdc_msg(nbd_get_error()));
        goto out_close;
    }
    if ((r = set_tls(s, h, err)) < 0)
        goto out_close;

    r = c->is_unix ? nbd_aio_connect_unix(h, c->path)
                   : nbd_aio_connect_tcp(h, c->host, c->port);
    while (r != -1 && !nbd_aio_is_ready(h)) {
        int64_t left = deadline - now_ms();
        if (is_gone(h)) {
            r = -1;
            break;
        }
        if (left <= 0) {
            r = bd_err_set(err, ETIMEDOUT, "%s: no answer from the NBD server "
                           "within %.1f s (connect-timeout)", s->display,
                           timeout_ms / 1000.0);
            goto out_close;
        }
        r = nbd_poll(h, (int)left);
    }
    if (r == -1) {
        r = explain_connect(s, nbd_get_errno(), nbd_get_error(), err);
        goto out_close;
    }
    *out = h;
    return 0;

out_close:
    nbd_close(h);
    return r;
}

static void disconnect(struct nbd_handle *h)
{
    /* Ask politely, but never wait long for a server that does not answer. */
    if (nbd_aio_is_ready(h) && nbd_aio_disconnect(h, 0) == 0) {
        int64_t deadline = now_ms() + 1000;
        while (!is_gone(h) && now_ms() < deadline) {
            if (nbd_poll(h, 100) == -1)
                break;
        }
    }
    nbd_close(h);
}

int nbdc_init(struct nbd_conn *c, struct nbd_handle *h)
{
    pthread_condattr_t ca;

    if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->h = h;
    c->ready = true;
    return 0;
}

void nbdc_fini(struct nbd_conn *c)
{
    if (c->h)
        disconnect(c->h);
    c->h = NULL;
    if (!c->ready)
        return;
    close(c->wake[0]);
    close(c->wake[1]);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->lock);
    c->ready = false;
}

/* ---- connection state ---------------------------------------------------- */

/* h failed: retire it (callers hold a use of it, so it stays allocated),
 * and remember whether acknowledged writes may be lost with it. */
static void mark_dead(struct nbd_state *s, struct nbd_conn *c,
                      struct nbd_handle *h, const char *why)
{
    bool first = false, lost = false;

    pthread_mutex_lock(&c->lock);
    if (c->h == h && !c->dead) {
        c->dead = true;
        first = true;
        lost = s->can_flush && c->dirty_seq > atomic_load(&s->flushed_seq);
        c->dirty_seq = 0;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->lock);
    if (!first)
        return;
    /* The server may have restarted and lost its cache: the journal has
     * every write since the last flush, on any connection. */
    if (nbdj_enabled(&s->journal)) {
        if (nbdj_dropped(&s->journal))
            log_debug("nbd", "%s: unflushed writes will be replayed",
                      s->display);
        lost = false;
    }

    unsigned long k = atomic_fetch_add(&s->drops, 1) + 1;
    if ((k & (k - 1)) == 0)
        log_warn("%s: connection lost (%s); reconnecting (%lu so far)",
                 s->display, why, k);
    if (lost && !atomic_exchange(&s->lost_writes, true))
        log_warn("%s: the lost connection had unflushed writes; the next "
                 "flush reports an i/o error", s->display);
}

/* A fresh handle: reconnect-retries more tries with a growing pause, or
 * one quick try when the server was already found down. */
static int revive(struct nbd_state *s, struct nbd_handle **out)
{
    unsigned tries = atomic_load(&s->down) ? 1 : s->conf.retries + 1;
    unsigned pause = 100;
    struct bd_err e = {0};

    for (unsigned i = 0; i < tries; i++) {
        struct nbd_handle *h;
        if (i > 0) {
            sleep_ms(pause);
            pause *= 2;
        }
        bd_err_clear(&e);
        if (nbdc_connect(s, s->conf.connect_timeout_ms, &h, &e) < 0)
            continue;
        /* A different export behind the same name is not ours any more. */
        if (nbd_get_size(h) != s->size) {
            log_err("%s: after reconnecting the export size is %lld, not "
                    "%lld; giving up on it", s->display,
                    (long long)nbd_get_size(h), (long long)s->size);
            nbd_close(h);
            atomic_store(&s->down, true);
            return -EIO;
        }
        if (atomic_exchange(&s->down, false))
            log_info("%s: reconnected", s->display);
        *out = h;
        return 0;
    }
    if (!atomic_exchange(&s->down, true))
        log_err("cannot reconnect: %s", e.msg);
    return -EIO;
}

/* Take a use of c's handle, (re)connecting it first when needed. */
static int enter(struct nbd_state *s, struct nbd_conn *c, struct nbd_handle **out)
{
    pthread_mutex_lock(&c->lock);
    while (!c->h || c->dead) {
        struct nbd_handle *old, *h = NULL;
        int r;
        if (c->connecting || (c->dead && c->users > 0)) {
            pthread_cond_wait(&c->cv, &c->lock);
            continue;
        }
        old = c->h;
        c->h = NULL;
        c->dead = false;
        c->connecting = true;
        pthread_mutex_unlock(&c->lock);
        if (old)
            nbd_close(old);
        r = revive(s, &h);
        pthread_mutex_lock(&c->lock);
        c->connecting = false;
        c->h = h;
        pthread_cond_broadcast(&c->cv);
        if (r < 0) {
            pthread_mutex_unlock(&c->lock);
            return r;
        }
    }
    __atomic_add_fetch(&c->users, 1, __ATOMIC_RELAXED);  /* pick() peeks */
    *out = c->h;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void leave(struct nbd_conn *c)
{
    pthread_mutex_lock(&c->lock);
    if (__atomic_sub_fetch(&c->users, 1, __ATOMIC_RELAXED) == 0 && c->dead)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->lock);
}

static struct nbd_conn *pick(struct nbd_state *s)
{
    struct nbd_conn *best = &s->conns[0];
    /* Racy reads are fine: this only spreads load. */
    for (unsigned i = 1; i < s->nconns; i++) {
        if (__atomic_load_n(&s->conns[i].users, __ATOMIC_RELAXED) <
            __atomic_load_n(&best->users, __ATOMIC_RELAXED))
            best = &s->conns[i];
    }
    return best;
}

/* ---- requests -------------------------------------------------------------- */

static int done_cb(void *opaque, int *error)
{
    struct nbd_req *r = opaque;
    struct nbd_conn *c = r->conn;
    pthread_mutex_lock(&c->lock);
    r->err = *error;
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&c->lock);
    return 1;                       /* retire the command */
}

static int extent_cb(void *opaque, const char *ctx, uint64_t off,
                     uint32_t *entries, size_t nr, int *error)
{
    struct nbd_req *r = opaque;
    (void)off;
    (void)error;
    /* Only the first reply for our context counts (a buggy server may
     * send more); it stops at a zero-length extent. */
    if (strcmp(ctx, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || r->nr_ext || !r->ext)
        return 0;
    for (size_t i = 0; i + 1 < nr && r->nr_ext < NBD_EXTENTS_MAX; i += 2) {
        if (entries[i] == 0)
            break;
        r->ext[r->nr_ext].len = entries[i];
        r->ext[r->nr_ext].flags = entries[i + 1];
        r->nr_ext++;
    }
    return 0;
}

static int64_t issue(struct nbd_handle *h, struct nbd_req *r)
{
    nbd_completion_callback done = {.callback = done_cb, .user_data = r};

    switch (r->op) {
    case NBD_OP_READ:
        return nbd_aio_pread(h, r->buf, r->len, r->off, done, r->flags);
    case NBD_OP_WRITE:
        return nbd_aio_pwrite(h, r->buf, r->len, r->off, done, r->flags);
    case NBD_OP_ZERO:
        return nbd_aio_zero(h, r->len, r->off, done, r->flags);
    case NBD_OP_TRIM:
        return nbd_aio_trim(h, r->len, r->off, done, r->flags);
    case NBD_OP_FLUSH:
        return nbd_aio_flush(h, done, r->flags);
    case NBD_OP_STATUS: {
        nbd_extent_callback ext = {.callback = extent_cb, .user_data = r};
        return nbd_aio_block_status(h, r->len, r->off, ext, done, r->flags);
    }
    }
    return -1;
}

/* Wait for the socket (or the wake pipe) and move libnbd along: what
 * nbd_poll does, plus the pipe. <0 when the connection failed. */
static int poll_once(struct nbd_conn *c, struct nbd_handle *h, int timeout)
{
    struct pollfd p[2];
    int fd = nbd_aio_get_fd(h);
    unsigned dir;
    char junk[64];

    if (fd < 0)
        return -1;
    dir = nbd_aio_get_direction(h);
    p[0] = (struct pollfd){.fd = fd};
    if (dir & LIBNBD_AIO_DIRECTION_READ)
        p[0].events |= POLLIN;
    if (dir & LIBNBD_AIO_DIRECTION_WRITE)
        p[0].events |= POLLOUT;
    p[1] = (struct pollfd){.fd = c->wake[0], .events = POLLIN};
    if (poll(p, 2, timeout) < 0)
        return errno == EINTR ? 0 : -1;
    if (p[1].revents & POLLIN) {
        while (read(c->wake[0], junk, sizeof(junk)) > 0)
            ;
    }
    if (!p[0].revents)
        return 0;
    /* Another thread may have changed the direction meanwhile. */
    dir = nbd_aio_get_direction(h);
    if ((dir & LIBNBD_AIO_DIRECTION_READ) &&
        (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
        return nbd_aio_notify_read(h) == -1 ? -1 : 1;
    if ((dir & LIBNBD_AIO_DIRECTION_WRITE) &&
        (p[0].revents & (POLLOUT | POLLHUP | POLLERR)))
        return nbd_aio_notify_write(h) == -1 ? -1 : 1;
    if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
        return -1;
    return 0;
}

/* Let another waiter drive the connection now that this poller leaves. */
static void hand_off(struct nbd_conn *c, struct nbd_req *self)
{
    for (struct nbd_req *w = c->waiters; w; w = w->next) {
        if (w != self && !w->done) {
            pthread_cond_signal(&w->cv);
            return;
        }
    }
}

/* Wait until r is done. A waiter that finds no poller becomes it and polls
 * until its own request is done, then hands the role on; the others sleep
 * on their own condition variable until the poller's completion callback
 * wakes them. On timeout the socket is shut down, which makes libnbd
 * complete every command on it with an error, so no reply can land in
 * r->buf later. */
static int wait_done(struct nbd_state *s, struct nbd_conn *c,
                     struct nbd_handle *h, int fd, struct nbd_req *r,
                     int64_t deadline)
{
    bool timed_out = false;

    pthread_mutex_lock(&c->lock);
    r->next = c->waiters;
    c->waiters = r;
    while (!r->done) {
        int64_t left = deadline - now_ms();
        if (left <= 0 && !timed_out) {
            timed_out = true;
            pthread_mutex_unlock(&c->lock);
            log_err("%s: no reply within %u s (timeout); dropping the "
                    "connection", s->display, s->conf.timeout_ms / 1000);
            mark_dead(s, c, h, "timeout");
            /* A server that hangs will not answer a reconnect either: try
             * once per request until it does, not reconnect-retries times. */
            atomic_store(&s->down, true);
            shutdown(fd, SHUT_RDWR);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        if (c->polling) {
            struct timespec ts;
            abstime_in(&ts, left > 0 && left < POLL_SLICE_MS ? left : POLL_SLICE_MS);
            pthread_cond_timedwait(&r->cv, &c->lock, &ts);
            continue;
        }
        c->polling = true;
        while (!r->done) {
            int pr;
            left = deadline - now_ms();
            if (left <= 0 && !timed_out)
                break;
            pthread_mutex_unlock(&c->lock);
            pr = poll_once(c, h, left > 0 && left < POLL_SLICE_MS ? (int)left
                                                                : POLL_SLICE_MS);
            if (pr < 0 && !is_gone(h)) {
                /* A poll failure libnbd did not see: end the socket so
                 * that it does, and fails the commands on it. */
                shutdown(fd, SHUT_RDWR);
            }
            pthread_mutex_lock(&c->lock);
        }
        c->polling = false;
        hand_off(c, r);
    }
    for (struct nbd_req **p = &c->waiters; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    int err = r->err;
    pthread_mutex_unlock(&c->lock);
    if (timed_out)
        return -ETIMEDOUT;
    return err ? -err : 0;
}

static bool is_write(const struct nbd_req *r)
{
    return r->op == NBD_OP_WRITE || r->op == NBD_OP_ZERO || r->op == NBD_OP_TRIM;
}

/* Issue the n requests of a batch on c, then wait for every one that was
 * issued (they point into the caller's buffer). NBD_DROPPED when the
 * connection went away, so that the batch may be retried elsewhere. */
static int run_batch(struct nbd_state *s, struct nbd_conn *c,
                     struct nbd_handle *h, struct nbd_req *rs, unsigned n)
{
    int64_t deadline = now_ms() + s->conf.timeout_ms;
    unsigned issued = 0;
    int ret = 0, fd;
    bool dropped = false;

    for (; issued < n; issued++) {
        struct nbd_req *r = &rs[issued];
        r->conn = c;
        r->done = false;
        r->err = 0;
        r->nr_ext = 0;
        r->next = NULL;
        if (issue(h, r) == -1) {
            int e = nbd_get_errno();
            if (is_gone(h)) {
                mark_dead(s, c, h, nbdc_msg(nbd_get_error()));
                dropped = true;
            } else {
                log_debug("nbd", "%s: %s", s->display,
                          nbdc_msg(nbd_get_error()));
                ret = -(e ? e : EIO);
            }
            break;
        }
    }
    /* A poller waiting only to read must learn that libnbd now also
     * wants to write (a request too big for the socket buffer). */
    if (issued && (nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE)) {
        pthread_mutex_lock(&c->lock);
        if (c->polling && write(c->wake[1], "", 1) < 0) {
            /* a full pipe already wakes it */
        }
        pthread_mutex_unlock(&c->lock);
    }

    fd = nbd_aio_get_fd(h);
    for (unsigned i = 0; i < issued; i++) {
        int r = wait_done(s, c, h, fd, &rs[i], deadline);
        if (r == -ETIMEDOUT) {
            /* The socket is shut down: the rest complete at once. */
            deadline = now_ms() + s->conf.timeout_ms;
            ret = r;
        } else if (r < 0 && (is_gone(h) || r == -ESHUTDOWN)) {
            mark_dead(s, c, h, r == -ESHUTDOWN ? "the server is shutting down"
                                               : strerror(-r));
            dropped = true;
        } else if (r < 0 && ret == 0) {
            ret = r;
        } else if (r == 0 && is_write(&rs[i]) &&
                   !(rs[i].flags & LIBNBD_CMD_FLAG_FUA)) {
            uint64_t seq = atomic_fetch_add(&s->write_seq, 1) + 1;
            pthread_mutex_lock(&c->lock);
            if (c->h == h && !c->dead && seq > c->dirty_seq)
                c->dirty_seq = seq;
            pthread_mutex_unlock(&c->lock);
        }
    }
    if (ret == -ETIMEDOUT)
        return ret;
    return dropped ? NBD_DROPPED : ret;
}

/* Split a large read or write into up to NBD_SPLIT_MAX requests sent at
 * once: servers work on them in parallel, and the reply to one overlaps
 * the transfer of the next. */
static unsigned split(const struct nbd_state *s, struct nbd_req *r,
                      struct nbd_req *sub)
{
    uint64_t chunk;
    unsigned n = 0;

    if ((r->op != NBD_OP_READ && r->op != NBD_OP_WRITE) ||
        r->len < 2 * NBD_SPLIT_MIN)
        return 0;
    chunk = (r->len + NBD_SPLIT_MAX - 1) / NBD_SPLIT_MAX;
    if (chunk < NBD_SPLIT_MIN)
        chunk = NBD_SPLIT_MIN;
    chunk = (chunk + s->bs_min - 1) / s->bs_min * s->bs_min;
    for (uint64_t done = 0; done < r->len && n < NBD_SPLIT_MAX; done += chunk) {
        sub[n] = *r;
        sub[n].buf = (char *)r->buf + done;
        sub[n].off = r->off + done;
        sub[n].len = r->len - done < chunk ? r->len - done : chunk;
        n++;
    }
    return n;
}

int nbdc_run(struct nbd_state *s, struct nbd_req *r)
{
    struct nbd_req sub[NBD_SPLIT_MAX];
    struct nbd_req *rs = r;
    unsigned n = split(s, r, sub);
    pthread_condattr_t ca;
    int ret = -EIO;

    if (n > 0)
        rs = sub;
    else
        n = 1;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (unsigned i = 0; i < n; i++)
        pthread_cond_init(&rs[i].cv, &ca);
    pthread_condattr_destroy(&ca);
    /* One retry on a fresh connection: NBD requests are idempotent. */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct nbd_conn *c = pick(s);
        struct nbd_handle *h;
        ret = enter(s, c, &h);
        if (ret < 0)
            break;
        ret = run_batch(s, c, h, rs, n);
        leave(c);
        if (ret != NBD_DROPPED)
            break;
        ret = -EIO;
    }
    for (unsigned i = 0; i < n; i++)
        pthread_cond_destroy(&rs[i].cv);
    return ret;
}
