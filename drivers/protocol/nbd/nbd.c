/*
 * The nbd protocol driver: an NBD export, through libnbd, as a block node.
 * This file maps block-node calls to NBD requests and checks what the server
 * advertises; connections, timeouts and reconnecting are in conn.c, the
 * replay journal in journal.c and URI parsing in target.c.
 */
#include "nbd.h"
#include "core/overflow.h"

#include <libnbd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBD_DEFAULT_MAX_TRANSFER (32u << 20)    /* what servers must accept */
#define NBD_CHUNK (1u << 30)                    /* block status, trim, zero */

static const char *const nbd_schemes[] = {
    "nbd", "nbds", "nbd+unix", "nbds+unix", NULL,
};

static const char *const nbd_options[] = {
    "server.type", "server.host", "server.port", "server.path", "export",
    "tls", "tls-certificates", "tls-psk-file", "tls-username",
    "tls-verify-peer", "connect-timeout", "timeout", "reconnect-retries",
    "connections", "replay-buffer", "filename", NULL,
};

/* Server facts from the first connection; all of them are untrusted. */
static int read_server_facts(struct bd_node *n, struct nbd_handle *h,
                             struct bd_err *err)
{
    struct nbd_state *s = n->state;
    int64_t min, pref, max;

    s->size = nbd_get_size(h);
    if (s->size < 0)
        return bd_err_set(err, EIO, "%s: the server did not give the export "
                          "size: %s", s->display, nbdc_msg(nbd_get_error()));
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
        if (nbdc_connect(s, t, &h, &e) < 0) {
            log_debug("nbd", "%s: extra connection refused (%s); using %u",
                      s->display, e.msg, s->nconns);
            return;
        }
        if (nbdc_init(&s->conns[s->nconns], h) < 0) {
            nbd_close(h);
            return;
        }
        s->nconns++;
    }
}

/* ---- driver callbacks -------------------------------------------------------- */

/* The parts become options; "filename" gets the URI without credentials,
 * which core uses to name the node. */
static int nbd_parse_uri(const char *uri, struct bd_opts *o, struct bd_err *err)
{
    struct nbdt t = {0};
    struct nbd_conf c;
    char *display = NULL;
    int r = nbdt_parse(uri, &t, err);

    if (r == 0)
        r = nbdt_conf(&t, &c, err);
    if (r == 0 && !(display = nbdt_display(&c)))
        r = -ENOMEM;
    if (r == 0)
        r = bd_opts_set(o, "filename", display);
    for (int k = 0; r == 0 && k < NBDT_NKEYS; k++) {
        if (t.v[k])
            r = bd_opts_set(o, nbdt_keys[k], t.v[k]);
    }
    free(display);
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
    pthread_mutex_init(&s->ext_lock, NULL);
    s->ext_lock_init = true;
    nbdj_init(&s->journal, s->conf.replay_bytes);
    if ((r = nbdc_connect(s, s->conf.connect_timeout_ms, &h, err)) < 0)
        return r;
    if ((r = nbdc_init(&s->conns[0], h)) < 0) {
        nbd_close(h);
        return bd_err_set(err, -r, "nbd: %s", strerror(-r));
    }
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
    for (unsigned i = 0; i < s->nconns; i++)
        nbdc_fini(&s->conns[i]);
    if (s->ext_lock_init)
        pthread_mutex_destroy(&s->ext_lock);
    nbdj_fini(&s->journal);
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

/* A flush covers every write acknowledged before it was sent (with
 * multi-conn, on every connection), and empties the journal that far. */
static int do_flush(struct nbd_state *s)
{
    uint64_t upto, mark;
    int ret;

    if (!s->can_flush)
        return 0;
    if ((ret = nbdj_replay(s)) < 0)
        return ret;
    upto = atomic_load(&s->write_seq);
    mark = nbdj_mark(&s->journal);
    struct nbd_req r = {.op = NBD_OP_FLUSH};
    ret = nbdc_run(s, &r);
    /* A flush that succeeded only on a new connection says nothing about
     * writes the old one carried: replay them (which flushes again). */
    if (ret == 0 && atomic_load(&s->journal.need_replay))
        ret = nbdj_replay(s);
    if (ret == 0) {
        uint64_t cur = atomic_load(&s->flushed_seq);
        while (cur < upto &&
               !atomic_compare_exchange_weak(&s->flushed_seq, &cur, upto))
            ;
        nbdj_flushed(&s->journal, mark);
    }
    return ret;
}

/* Writes, zeroes and trims: replay what a lost connection may have lost
 * first, keep a copy of each acknowledged one until a flush, and drop the
 * cached block status before and after. */
static int run_write(struct nbd_state *s, struct nbd_req *r)
{
    bool journal = s->can_flush && nbdj_enabled(&s->journal);
    bool full = false;
    int ret;

    if ((ret = nbdj_replay(s)) < 0)
        return ret;
    if (journal)
        nbdj_enter(&s->journal);
    atomic_fetch_add(&s->writes_in_flight, 1);
    atomic_fetch_add(&s->change_gen, 1);
    ret = nbdc_run(s, r);
    atomic_fetch_add(&s->change_gen, 1);
    atomic_fetch_sub(&s->writes_in_flight, 1);
    if (journal) {
        /* Without memory for the copy, a flush gives the same safety. */
        if (ret == 0)
            full = nbdj_add(&s->journal, r) < 0 || nbdj_full(&s->journal);
        nbdj_leave(&s->journal);
    }
    if (full)
        do_flush(s);        /* a failure leaves the entries for later */
    return ret;
}

/* Reads and block status: after a replay, not before it, when the
 * connection dropped under them. */
static int run_read(struct nbd_state *s, struct nbd_req *r)
{
    int ret = nbdj_replay(s);
    if (ret == 0)
        ret = nbdc_run(s, r);
    if (ret == 0 && atomic_load(&s->journal.need_replay)) {
        ret = nbdj_replay(s);
        if (ret == 0)
            ret = nbdc_run(s, r);
    }
    return ret;
}

static int nbd_pread_cb(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct nbd_req r = {.op = NBD_OP_READ, .buf = buf, .len = len, .off = off};
    return run_read(n->state, &r);
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
    struct nbd_req r = {.op = NBD_OP_WRITE, .buf = (void *)buf, .len = len,
                        .off = off, .flags = (uint32_t)fua_flag(s, flags)};
    return after_write(s, flags, run_write(s, &r));
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
        uint64_t chunk = len < NBD_CHUNK ? len : NBD_CHUNK;
        struct nbd_req r = {.op = NBD_OP_ZERO, .len = chunk, .off = off, .flags = f};
        ret = run_write(s, &r);
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
        uint64_t chunk = len < NBD_CHUNK ? len : NBD_CHUNK;
        struct nbd_req r = {.op = NBD_OP_TRIM, .len = chunk, .off = off};
        ret = run_write(s, &r);
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

/* Status for len bytes from an offset inside an extent with these flags
 * that ends rem bytes later. */
static void map_extent(const struct nbd_state *s, uint32_t flags, uint64_t rem,
                       uint64_t len, uint64_t *pnum, unsigned *status)
{
    *pnum = rem < len ? rem : len;
    /* Protocol nodes decide their content: always ALLOCATED. */
    if (flags & LIBNBD_STATE_ZERO)
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED |
                  (flags & LIBNBD_STATE_HOLE ? 0 : BD_STATUS_DATA);
    else
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
    /* Extents must follow the block size; a server that splits a block
     * gets that block called data, which is always right. */
    if (*pnum % s->bs_min) {
        if (*pnum > s->bs_min) {
            *pnum = bd_align_down(*pnum, s->bs_min);
        } else {
            *pnum = len < s->bs_min ? len : s->bs_min;
            *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        }
    }
}

/* Answer from the last reply when it covers off and nothing changed. */
static bool cached_status(struct nbd_state *s, uint64_t off, uint64_t len,
                          uint64_t *pnum, unsigned *status)
{
    bool hit = false;
    pthread_mutex_lock(&s->ext_lock);
    if (s->ext_n && s->ext_gen == atomic_load(&s->change_gen) &&
        nbdc_now_ms() - s->ext_time_ms < 1000 && off >= s->ext_start) {
        uint64_t at = s->ext_start;
        for (unsigned i = 0; i < s->ext_n; i++) {
            uint64_t end = at + s->ext[i].len;
            if (off < end) {
                map_extent(s, s->ext[i].flags, end - off, len, pnum, status);
                hit = true;
                break;
            }
            at = end;
        }
    }
    pthread_mutex_unlock(&s->ext_lock);
    return hit;
}

static int nbd_block_status_cb(struct bd_node *n, uint64_t off, uint64_t len,
                               uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct nbd_state *s = n->state;
    uint64_t chunk = len < NBD_CHUNK ? len : NBD_CHUNK;
    struct nbd_extent ext[NBD_EXTENTS_MAX];
    struct nbd_req r = {.op = NBD_OP_STATUS, .off = off, .ext = ext};
    uint64_t gen;
    int ret;

    (void)map;
    if (!s->has_allocation) {
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        return 0;
    }
    if ((ret = nbdj_replay(s)) < 0)
        return ret;
    if (cached_status(s, off, len, pnum, status))
        return 0;
    r.len = bd_align_down(chunk, s->bs_min);
    if (r.len == 0)
        r.len = chunk;
    gen = atomic_load(&s->change_gen);
    ret = run_read(s, &r);
    if (ret < 0)
        return ret;
    if (r.nr_ext == 0) {
        /* A server that says nothing useful: all data is always right. */
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        return 0;
    }
    map_extent(s, ext[0].flags, ext[0].len, len, pnum, status);
    pthread_mutex_lock(&s->ext_lock);
    if (gen == atomic_load(&s->change_gen) &&
        atomic_load(&s->writes_in_flight) == 0) {
        s->ext_start = off;
        s->ext_n = r.nr_ext;
        memcpy(s->ext, ext, r.nr_ext * sizeof(*ext));
        s->ext_gen = gen;
        s->ext_time_ms = nbdc_now_ms();
    }
    pthread_mutex_unlock(&s->ext_lock);
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

static const struct bd_uri_ops nbd_uri_ops = {
    .schemes = nbd_schemes,
    .parse = nbd_parse_uri,
};

const struct bd_driver bd_drv_nbd = {
    .name = "nbd",
    .kind = BD_PROTOCOL,
    .options = nbd_options,
    .state_size = sizeof(struct nbd_state),
    .parallel = true,
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
    .uri = &nbd_uri_ops,
};
