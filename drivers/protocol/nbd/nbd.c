/*
 * The nbd protocol driver: an NBD export, through libnbd, as a block node.
 * It keeps a small pool of connections (more than one only when the server
 * advertises multi-conn), bounds every wait with a timeout, and reconnects
 * a dropped connection with a bounded retry. URI parsing is in target.c.
 */
#include "nbd.h"
#include "overflow.h"

#include <libnbd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NBD_DEFAULT_MAX_TRANSFER (32u << 20)    /* what servers must accept */
#define NBD_STATUS_CHUNK (1u << 30)             /* block status/trim/zero */
#define NBD_DROPPED (-ENOTCONN)                 /* internal: conn is gone */

struct nbd_conn {
    struct nbd_handle *h;           /* NULL: to be (re)connected */
    bool busy;                      /* owned by one thread right now */
    uint64_t dirty_seq;             /* last unflushed write it acknowledged */
};

struct nbd_state {
    struct nbdt target;             /* owns the strings conf points into */
    struct nbd_conf conf;
    char *display;                  /* URI for messages, without secrets */

    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cv;
    bool pool_init;
    struct nbd_conn conns[NBD_MAX_CONNS];
    unsigned nconns;                /* connections in the pool */

    /* What the server said on the first connection. */
    int64_t size;
    bool read_only, can_flush, can_fua, can_trim, can_zero, can_fast_zero;
    bool can_multi_conn, has_allocation, tls_negotiated;
    uint32_t bs_min, bs_pref, bs_max;

    /* Acknowledged writes vs. flushes, to report writes a drop may lose. */
    atomic_uint_fast64_t write_seq;
    atomic_uint_fast64_t flushed_seq;
    atomic_bool lost_writes;
    atomic_bool down;               /* the last reconnect gave up */
    atomic_ulong drops;
};

static const char *const nbd_schemes[] = {
    "nbd", "nbds", "nbd+unix", "nbds+unix", NULL,
};

static const char *const nbd_options[] = {
    "server.type", "server.host", "server.port", "server.path", "export",
    "tls", "tls-certificates", "tls-psk-file", "tls-username",
    "tls-verify-peer", "connect-timeout", "timeout", "reconnect-retries",
    "connections", "filename", NULL,
};

/* ---- time ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- connecting ---------------------------------------------------------- */

static bool is_gone(struct nbd_handle *h)
{
    return nbd_aio_is_dead(h) || nbd_aio_is_closed(h);
}

/* libnbd's message without the API function's name in front. */
static const char *nbd_msg(const char *msg)
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
    msg = msg ? nbd_msg(msg) : strerror(e);
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
    if (strstr(msg, "TLS") || strstr(msg, "tls") || strstr(msg, "PSK") ||
        strstr(msg, "certificate"))
        return bd_err_set(err, e, "%s: TLS failed: %s", s->display, msg);
    return bd_err_set(err, e, "%s: cannot connect: %s", s->display, msg);
}

static int set_tls(struct nbd_state *s, struct nbd_handle *h, struct bd_err *err)
{
    const struct nbd_conf *c = &s->conf;
    if (!c->tls)
        return nbd_set_tls(h, LIBNBD_TLS_DISABLE) == -1 ? -EIO : 0;
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
                          nbd_msg(nbd_get_error()));
    return 0;
}

/* One connection attempt, bounded by timeout_ms. */
static int conn_open(struct nbd_state *s, unsigned timeout_ms,
                     struct nbd_handle **out, struct bd_err *err)
{
    const struct nbd_conf *c = &s->conf;
    struct nbd_handle *h = nbd_create();
    int64_t deadline = now_ms() + timeout_ms;
    int r;

    if (!h)
        return bd_err_set(err, ENOMEM, "%s: %s", s->display,
                          nbd_msg(nbd_get_error()));
    if (nbd_set_export_name(h, c->export) == -1 ||
        nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        nbd_set_pread_initialize(h, false) == -1) {
        r = bd_err_set(err, EIO, "%s: %s", s->display, nbd_msg(nbd_get_error()));
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

static void conn_close(struct nbd_handle *h)
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

/* Server facts from the first connection; all of them are untrusted. */
static int read_server_facts(struct bd_node *n, struct nbd_handle *h,
                             struct bd_err *err)
{
    struct nbd_state *s = n->state;
    int64_t min, pref, max;

    s->size = nbd_get_size(h);
    if (s->size < 0)
        return bd_err_set(err, EIO, "%s: the server did not give the export "
                          "size: %s", s->display, nbd_msg(nbd_get_error()));
    s->read_only = nbd_is_read_only(h) == 1;
    s->can_flush = nbd_can_flush(h) == 1;
    s->can_fua = nbd_can_fua(h) == 1;
    s->can_trim = nbd_can_trim(h) == 1;
    s->can_zero = nbd_can_zero(h) == 1;
    s->can_fast_zero = nbd_can_fast_zero(h) == 1;
    s->can_multi_conn = nbd_can_multi_conn(h) == 1;
    s->has_allocation =
        nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    s->tls_negotiated = nbd_get_tls_negotiated(h) == 1;

    min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    pref = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED);
    max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    if (min <= 0)
        min = 1;
    if (min > 65536 || !bd_is_pow2((uint64_t)min))
        return bd_err_set(err, EPROTO, "%s: the server advertises a minimum "
                          "block size of %lld bytes; NBD allows a power of two "
                          "up to 64 KiB", s->display, (long long)min);
    if (pref <= 0 || !bd_is_pow2((uint64_t)pref) || pref < min ||
        pref > (32 << 20))
        pref = min > 4096 ? min : 4096;
    if (max <= 0 || max > NBD_DEFAULT_MAX_TRANSFER)
        max = NBD_DEFAULT_MAX_TRANSFER;
    max = (int64_t)bd_align_down((uint64_t)max, (uint64_t)min);
    if (max < min)
        return bd_err_set(err, EPROTO, "%s: the server's maximum block size is "
                          "below its minimum block size", s->display);
    s->bs_min = (uint32_t)min;
    s->bs_pref = (uint32_t)pref;
    s->bs_max = (uint32_t)max;
    return 0;
}

/* Open more connections when the server says they are coherent. A server
 * at its client limit (qemu-nbd --shared) stops answering rather than
 * refusing, so extra connections get a short timeout. */
static void grow_pool(struct nbd_state *s, unsigned want)
{
    unsigned t = s->conf.connect_timeout_ms < 1500 ? s->conf.connect_timeout_ms
                                                   : 1500;
    if (!s->can_multi_conn)
        return;
    while (s->nconns < want) {
        struct bd_err e = {0};
        struct nbd_handle *h;
        if (conn_open(s, t, &h, &e) < 0) {
            log_debug("nbd", "%s: extra connection refused (%s); using %u",
                      s->display, e.msg, s->nconns);
            return;
        }
        s->conns[s->nconns++].h = h;
    }
}

/* ---- the pool -------------------------------------------------------------- */

static struct nbd_conn *conn_get(struct nbd_state *s)
{
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        for (unsigned i = 0; i < s->nconns; i++) {
            if (!s->conns[i].busy) {
                s->conns[i].busy = true;
                pthread_mutex_unlock(&s->pool_lock);
                return &s->conns[i];
            }
        }
        pthread_cond_wait(&s->pool_cv, &s->pool_lock);
    }
}

static void conn_put(struct nbd_state *s, struct nbd_conn *c)
{
    pthread_mutex_lock(&s->pool_lock);
    c->busy = false;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_lock);
}

/* The connection died: forget it, and remember unflushed writes it had. */
static void conn_drop(struct nbd_state *s, struct nbd_conn *c, const char *why)
{
    unsigned long k = atomic_fetch_add(&s->drops, 1) + 1;
    bool lost = s->can_flush && c->dirty_seq > atomic_load(&s->flushed_seq);

    if (k == 1 || (k & (k - 1)) == 0)
        log_warn("%s: connection lost (%s); reconnecting (%lu so far)",
                 s->display, why, k);
    if (lost && !atomic_exchange(&s->lost_writes, true))
        log_warn("%s: the lost connection had unflushed writes; the next "
                 "flush reports an i/o error", s->display);
    c->dirty_seq = 0;
    nbd_close(c->h);
    c->h = NULL;
}

/* Reconnect c: up to reconnect-retries tries with a growing pause, or one
 * quick try when the server was already found down. */
static int conn_revive(struct nbd_state *s, struct nbd_conn *c)
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
        if (conn_open(s, s->conf.connect_timeout_ms, &h, &e) < 0)
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
        c->h = h;
        if (atomic_exchange(&s->down, false))
            log_info("%s: reconnected", s->display);
        return 0;
    }
    if (!atomic_exchange(&s->down, true))
        log_err("cannot reconnect: %s", e.msg);
    return -EIO;
}

/* ---- requests ---------------------------------------------------------------- */

enum nbd_op { OP_READ, OP_WRITE, OP_ZERO, OP_TRIM, OP_FLUSH, OP_STATUS };

struct nbd_req {
    enum nbd_op op;
    void *buf;
    uint64_t len, off;
    uint32_t flags;                 /* LIBNBD_CMD_FLAG_* */
    /* OP_STATUS result */
    bool got_extent;
    uint32_t ext_len, ext_flags;
};

static int extent_cb(void *opaque, const char *ctx, uint64_t off,
                     uint32_t *entries, size_t nr, int *error)
{
    struct nbd_req *r = opaque;
    (void)off;
    (void)error;
    if (strcmp(ctx, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0 || nr < 2 ||
        r->got_extent)
        return 0;
    r->got_extent = true;
    r->ext_len = entries[0];
    r->ext_flags = entries[1];
    return 0;
}

static int64_t issue(struct nbd_handle *h, struct nbd_req *r)
{
    switch (r->op) {
    case OP_READ:
        return nbd_aio_pread(h, r->buf, r->len, r->off, NBD_NULL_COMPLETION,
                             r->flags);
    case OP_WRITE:
        return nbd_aio_pwrite(h, r->buf, r->len, r->off, NBD_NULL_COMPLETION,
                              r->flags);
    case OP_ZERO:
        return nbd_aio_zero(h, r->len, r->off, NBD_NULL_COMPLETION, r->flags);
    case OP_TRIM:
        return nbd_aio_trim(h, r->len, r->off, NBD_NULL_COMPLETION, r->flags);
    case OP_FLUSH:
        return nbd_aio_flush(h, NBD_NULL_COMPLETION, r->flags);
    case OP_STATUS: {
        nbd_extent_callback cb = {.callback = extent_cb, .user_data = r};
        r->got_extent = false;
        return nbd_aio_block_status(h, r->len, r->off, cb, NBD_NULL_COMPLETION,
                                    r->flags);
    }
    }
    return -1;
}

/* Send one request on c and wait for it, at most timeout ms. NBD_DROPPED
 * when the connection is gone (the request may be retried elsewhere). */
static int run_on(struct nbd_state *s, struct nbd_conn *c, struct nbd_req *r)
{
    int64_t deadline = now_ms() + s->conf.timeout_ms;
    int64_t cookie = issue(c->h, r);
    int e;

    if (cookie == -1)
        goto failed;
    for (;;) {
        int done = nbd_aio_command_completed(c->h, (uint64_t)cookie);
        if (done == 1)
            return 0;
        if (done == -1)
            goto failed;
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            /* The buffer may still be written into: the handle must go. */
            log_err("%s: no reply within %u s (timeout); dropping the "
                    "connection", s->display, s->conf.timeout_ms / 1000);
            conn_drop(s, c, "timeout");
            return -ETIMEDOUT;
        }
        if (nbd_poll(c->h, (int)left) == -1)
            goto failed;
    }

failed:
    e = nbd_get_errno();
    if (is_gone(c->h) || e == ESHUTDOWN) {
        conn_drop(s, c, nbd_get_error() ? nbd_msg(nbd_get_error())
                                        : strerror(e ? e : EIO));
        return NBD_DROPPED;
    }
    log_debug("nbd", "%s: %s", s->display, nbd_msg(nbd_get_error()));
    return -(e ? e : EIO);
}

/* Run r on some connection; one retry on a fresh connection if it drops. */
static int run(struct nbd_state *s, struct nbd_req *r)
{
    struct nbd_conn *c = conn_get(s);
    int ret = -EIO;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (!c->h && (ret = conn_revive(s, c)) < 0)
            break;
        ret = run_on(s, c, r);
        if (ret != NBD_DROPPED)
            break;
        ret = -EIO;
    }
    if (ret == 0 && (r->op == OP_WRITE || r->op == OP_ZERO || r->op == OP_TRIM) &&
        !(r->flags & LIBNBD_CMD_FLAG_FUA))
        c->dirty_seq = atomic_fetch_add(&s->write_seq, 1) + 1;
    conn_put(s, c);
    return ret;
}

/* ---- driver callbacks -------------------------------------------------------- */

static int nbd_parse_uri(const char *uri, struct bd_opts *o, struct bd_err *err)
{
    struct nbdt t = {0};
    int r = nbdt_parse(uri, &t, err);
    for (int k = 0; r == 0 && k < NBDT_NKEYS; k++) {
        if (t.v[k])
            r = bd_opts_set(o, nbdt_keys[k], t.v[k]);
    }
    nbdt_free(&t);
    return r;
}

/* Options win over what "filename=<uri>" says. */
static int collect_target(const struct bd_opts *o, struct nbdt *t,
                          struct bd_err *err)
{
    const char *fn = bd_opts_get(o, "filename");
    int r;

    if (fn && *fn && (r = nbdt_parse(fn, t, err)) < 0)
        return r;
    for (int k = 0; k < NBDT_NKEYS; k++) {
        const char *v = bd_opts_get(o, nbdt_keys[k]);
        if (v && (r = nbdt_set(t, (enum nbdt_key)k, v)) < 0)
            return r;
    }
    return 0;
}

static int nbd_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    struct nbd_state *s = n->state;
    struct nbd_handle *h;
    int r;

    if ((r = collect_target(o, &s->target, err)) < 0 ||
        (r = nbdt_conf(&s->target, &s->conf, err)) < 0)
        return r;
    s->display = nbdt_display(&s->conf);
    if (!s->display)
        return bd_err_set(err, ENOMEM, "nbd: out of memory");
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    s->pool_init = true;

    if ((r = conn_open(s, s->conf.connect_timeout_ms, &h, err)) < 0)
        return r;
    s->conns[0].h = h;
    s->nconns = 1;
    if ((r = read_server_facts(n, h, err)) < 0)
        return r;
    if (s->read_only && !n->flags.read_only)
        return bd_err_set(err, EROFS, "%s: the NBD export is read-only; mount "
                          "with -r", s->display);
    grow_pool(s, s->conf.conns);
    log_debug("nbd", "%s: size %lld, block sizes %u/%u/%u, %u connection(s)",
              s->display, (long long)s->size, s->bs_min, s->bs_pref,
              s->bs_max, s->nconns);
    return 0;
}

static void nbd_close_node(struct bd_node *n)
{
    struct nbd_state *s = n->state;
    for (unsigned i = 0; i < s->nconns; i++) {
        if (s->conns[i].h)
            conn_close(s->conns[i].h);
        s->conns[i].h = NULL;
    }
    if (s->pool_init) {
        pthread_cond_destroy(&s->pool_cv);
        pthread_mutex_destroy(&s->pool_lock);
    }
    free(s->display);
    nbdt_free(&s->target);
}

static void nbd_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct nbd_state *s = n->state;
    lim->request_alignment = s->bs_min;
    lim->opt_transfer = s->bs_pref;
    lim->max_transfer = s->bs_max;
}

static int64_t nbd_size(struct bd_node *n)
{
    struct nbd_state *s = n->state;
    return s->size;
}

static int nbd_pread_cb(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct nbd_req r = {.op = OP_READ, .buf = buf, .len = len, .off = off};
    return run(n->state, &r);
}

static int do_flush(struct nbd_state *s)
{
    if (!s->can_flush)
        return 0;
    /* With multi-conn a flush on one connection covers all of them. */
    uint64_t upto = atomic_load(&s->write_seq);
    struct nbd_req r = {.op = OP_FLUSH};
    int ret = run(s, &r);
    if (ret == 0) {
        uint64_t cur = atomic_load(&s->flushed_seq);
        while (cur < upto &&
               !atomic_compare_exchange_weak(&s->flushed_seq, &cur, upto))
            ;
    }
    return ret;
}

/* FUA where the server has it, else a flush after the write. */
static int fua_flag(struct nbd_state *s, unsigned flags)
{
    return (flags & BD_REQ_FUA) && s->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
}

static int after_write(struct nbd_state *s, unsigned flags, int ret)
{
    if (ret == 0 && (flags & BD_REQ_FUA) && !s->can_fua)
        ret = do_flush(s);
    return ret;
}

static int nbd_pwrite_cb(struct bd_node *n, const void *buf, uint64_t len,
                         uint64_t off, unsigned flags)
{
    struct nbd_state *s = n->state;
    struct nbd_req r = {.op = OP_WRITE, .buf = (void *)buf, .len = len,
                        .off = off, .flags = (uint32_t)fua_flag(s, flags)};
    return after_write(s, flags, run(s, &r));
}

static int nbd_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                             unsigned flags)
{
    struct nbd_state *s = n->state;
    uint32_t f = (uint32_t)fua_flag(s, flags);
    int ret = 0;

    if (!s->can_zero)
        return -ENOTSUP;
    if (flags & BD_REQ_NO_FALLBACK) {
        if (!s->can_fast_zero)
            return -ENOTSUP;
        f |= LIBNBD_CMD_FLAG_FAST_ZERO;
    }
    if (!(flags & BD_REQ_MAY_UNMAP))
        f |= LIBNBD_CMD_FLAG_NO_HOLE;
    while (ret == 0 && len > 0) {
        uint64_t chunk = len < NBD_STATUS_CHUNK ? len : NBD_STATUS_CHUNK;
        struct nbd_req r = {.op = OP_ZERO, .len = chunk, .off = off, .flags = f};
        ret = run(s, &r);
        len -= chunk;
        off += chunk;
    }
    return after_write(s, flags, ret);
}

static int nbd_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct nbd_state *s = n->state;
    int ret = 0;

    if (!s->can_trim)
        return -ENOTSUP;
    while (ret == 0 && len > 0) {
        uint64_t chunk = len < NBD_STATUS_CHUNK ? len : NBD_STATUS_CHUNK;
        struct nbd_req r = {.op = OP_TRIM, .len = chunk, .off = off};
        ret = run(s, &r);
        len -= chunk;
        off += chunk;
    }
    return ret;
}

static int nbd_flush_cb(struct bd_node *n)
{
    struct nbd_state *s = n->state;
    int ret = do_flush(s);
    if (atomic_exchange(&s->lost_writes, false)) {
        log_err("%s: writes acknowledged before a lost connection may not be "
                "on the server; reporting an i/o error to fsync", s->display);
        return -EIO;
    }
    return ret;
}

static int nbd_block_status_cb(struct bd_node *n, uint64_t off, uint64_t len,
                               uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct nbd_state *s = n->state;
    uint64_t chunk = len < NBD_STATUS_CHUNK ? len : NBD_STATUS_CHUNK;
    struct nbd_req r = {.op = OP_STATUS, .off = off,
                        .flags = LIBNBD_CMD_FLAG_REQ_ONE};
    int ret;

    (void)map;
    if (!s->has_allocation) {
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        return 0;
    }
    r.len = bd_align_down(chunk, s->bs_min);
    if (r.len == 0)
        r.len = chunk;
    ret = run(s, &r);
    if (ret < 0)
        return ret;
    if (!r.got_extent || r.ext_len == 0) {
        /* A server that says nothing useful: all data is always right. */
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        return 0;
    }
    *pnum = r.ext_len < len ? r.ext_len : len;
    /* Protocol nodes decide their content: always ALLOCATED. */
    if (r.ext_flags & LIBNBD_STATE_ZERO)
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED |
                  (r.ext_flags & LIBNBD_STATE_HOLE ? 0 : BD_STATUS_DATA);
    else
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
    return 0;
}

static void nbd_info_cb(struct bd_node *n, struct bd_info *info)
{
    struct nbd_state *s = n->state;
    const struct nbd_conf *c = &s->conf;

    if (c->is_unix)
        bd_info_add(info, "server", "unix:%s", c->path);
    else if (strchr(c->host, ':'))
        bd_info_add(info, "server", "[%s]:%s", c->host, c->port);
    else
        bd_info_add(info, "server", "%s:%s", c->host, c->port);
    bd_info_add(info, "export", "'%s'", c->export);
    bd_info_add(info, "block size", "minimum %u, preferred %u, maximum %u",
                s->bs_min, s->bs_pref, s->bs_max);
    bd_info_add(info, "tls", "%s", !s->tls_negotiated ? "off"
                : c->tls_psk ? "psk" : "x509");
    bd_info_add(info, "connections", "%u%s", s->nconns,
                s->can_multi_conn ? " (multi-conn)" : "");
    bd_info_add(info, "server features", "%s%s%s%s%s%s%s",
                s->read_only ? "read-only" : "writable",
                s->can_flush ? ", flush" : "", s->can_fua ? ", fua" : "",
                s->can_trim ? ", trim" : "", s->can_zero ? ", zero" : "",
                s->can_fast_zero ? ", fast-zero" : "",
                s->has_allocation ? ", base:allocation" : "");
}

const struct bd_driver bd_drv_nbd = {
    .name = "nbd",
    .kind = BD_PROTOCOL,
    .schemes = nbd_schemes,
    .options = nbd_options,
    .state_size = sizeof(struct nbd_state),
    .parallel = true,
    .parse_uri = nbd_parse_uri,
    .open = nbd_open,
    .close = nbd_close_node,
    .limits = nbd_limits,
    .size = nbd_size,
    .pread = nbd_pread_cb,
    .pwrite = nbd_pwrite_cb,
    .pwrite_zeroes = nbd_pwrite_zeroes,
    .discard = nbd_discard,
    .flush = nbd_flush_cb,
    .block_status = nbd_block_status_cb,
    .info = nbd_info_cb,
};
