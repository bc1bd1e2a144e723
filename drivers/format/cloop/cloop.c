/*
 * cloop format driver, read-only: compressed-loop images of Knoppix and
 * create_compressed_fs. The disk is n_blocks blocks of block_size bytes,
 * each stored compressed at the offsets of the index (index.c); blocks are
 * expanded through a small shared cache (cache.c) on whichever FUSE thread
 * asks, so parallel readers expand different blocks at once.
 */
#include "cloop.h"

#include <stdlib.h>
#include <string.h>

#define CLOOP_CACHE_DEFAULT (32u << 20)

struct cloop_state {
    struct cloop_index ix;
    struct cloop_cache cache;
    struct cloop_zeroes zeroes;
    bool zeroes_init;
};

static const char *const cloop_options[] = { "cache-size", NULL };

/* ---- probe ------------------------------------------------------------- */

static int cloop_probe(const uint8_t *head, size_t len)
{
    if (len >= CLOOP_HEAD_SIZE && cloop_head_version(head))
        return 100;
    /* a small V4 image with its header at the end, all inside head */
    if (len >= CLOOP_HEAD_SIZE &&
        cloop_head_version(head + len - CLOOP_HEAD_SIZE) == 4)
        return 90;
    return 0;
}

static int cloop_probe_tail(const uint8_t *tail, size_t len)
{
    if (len >= CLOOP_HEAD_SIZE &&
        cloop_head_version(tail + len - CLOOP_HEAD_SIZE) == 4)
        return 90;
    return 0;
}

/* ---- open/close -------------------------------------------------------- */

static void cloop_close(struct bd_node *n)
{
    struct cloop_state *s = n->state;

    cloop_cache_destroy(&s->cache);
    cloop_index_free(&s->ix);
    if (s->zeroes_init)
        cloop_zero_destroy(&s->zeroes);
}

static int cloop_open(struct bd_node *n, const struct bd_opts *o,
                      struct bd_err *err)
{
    struct cloop_state *s = n->state;
    uint64_t cache_max;
    int ret;

    ret = bd_opts_get_size(o, "cache-size", CLOOP_CACHE_DEFAULT, &cache_max,
                           err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = cloop_index_load(n->file, n->name, &s->ix, err);
    if (ret < 0)
        return ret;
    for (unsigned c = 0; c < CLOOP_N_CODECS; c++) {
        if ((s->ix.codecs_seen & 1u << c) && !cloop_codec_built(c))
            log_warn("%s: some blocks use %s compression, which this "
                     "imgfuse was built without; reading them fails",
                     n->name, cloop_codec_name(c));
    }
    ret = cloop_cache_init(&s->cache, n->file, &s->ix, cache_max, n->name);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: no memory for the block cache",
                          n->name);
    ret = cloop_zero_init(&s->zeroes);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: %s", n->name, strerror(-ret));
    s->zeroes_init = true;
    return 0;
}

static int64_t cloop_size(struct bd_node *n)
{
    struct cloop_state *s = n->state;

    return (int64_t)((uint64_t)s->ix.n_blocks * s->ix.block_size);
}

static void cloop_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct cloop_state *s = n->state;

    lim->request_alignment = 1;
    lim->opt_transfer = s->ix.block_size;
}

/* ---- I/O --------------------------------------------------------------- */

struct read_ctx {
    struct cloop_state *s;
    uint8_t *buf;
};

static int read_block(void *arg, uint64_t block, uint32_t in_block,
                      uint32_t chunk, uint64_t done)
{
    struct read_ctx *r = arg;
    struct cloop_ref ref;
    int ret;

    ret = cloop_cache_get(&r->s->cache, (uint32_t)block, &ref);
    if (ret < 0)
        return ret;
    memcpy(r->buf + done, ref.buf + in_block, chunk);
    cloop_cache_put(&r->s->cache, &ref);
    return 0;
}

static int cloop_pread(struct bd_node *n, void *buf, uint64_t len,
                       uint64_t off)
{
    struct read_ctx r = { .s = n->state, .buf = buf };
    uint32_t bs = r.s->ix.block_size;

    /* a request over several blocks: the read-ahead threads expand the
     * later ones while this thread does the first */
    if (len > 0 && off / bs != (off + len - 1) / bs)
        cloop_cache_prefetch(&r.s->cache, (uint32_t)(off / bs + 1),
                             (uint32_t)((off + len - 1) / bs));
    return bd_for_each_block(off, len, r.s->ix.block_size, read_block, &r);
}

/* Every block is stored, compressed: data, never a hole. */
/* Blocks of zeroes read as holes (QEMU's cloop reports every block as
 * data); the rest is data. One run of like blocks per call, at most
 * ZERO_RUN of them, so a call stays cheap. */
#define ZERO_RUN 256u

static int cloop_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                              uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct cloop_state *s = n->state;
    uint32_t bs = s->ix.block_size;
    uint64_t first = off / bs, last = (off + len - 1) / bs, b;
    int zero, z;

    (void)map;
    zero = cloop_block_is_zero(&s->zeroes, &s->cache, (uint32_t)first);
    if (zero < 0)
        return zero;
    for (b = first + 1; b <= last && b - first < ZERO_RUN; b++) {
        z = cloop_block_is_zero(&s->zeroes, &s->cache, (uint32_t)b);
        if (z < 0)
            return z;
        if (z != zero)
            break;
    }
    *pnum = (b * bs < off + len ? b * bs : off + len) - off;
    *status = (zero ? BD_STATUS_ZERO : BD_STATUS_DATA) | BD_STATUS_ALLOCATED;
    return 0;
}

/* ---- info -------------------------------------------------------------- */

static void cloop_info(struct bd_node *n, struct bd_info *info)
{
    struct cloop_state *s = n->state;
    char codecs[64] = "";

    for (unsigned c = 0; c < CLOOP_N_CODECS; c++) {
        if (!(s->ix.codecs_seen & 1u << c))
            continue;
        if (codecs[0])
            strcat(codecs, ",");
        strcat(codecs, cloop_codec_name(c));
    }
    bd_info_add(info, "cloop version", "%u.0", s->ix.version);
    bd_info_add(info, "header", "%s", s->ix.footer ? "end" : "start");
    bd_info_add(info, "block size", "%u", s->ix.block_size);
    bd_info_add(info, "blocks", "%u", s->ix.n_blocks);
    bd_info_add(info, "compression", "%s", codecs);
}

const struct bd_driver bd_drv_cloop = {
    .name = "cloop",
    .kind = BD_FORMAT,
    .options = cloop_options,
    .state_size = sizeof(struct cloop_state),
    .parallel = true,
    .read_only = true,
    .probe = cloop_probe,
    .probe_tail = cloop_probe_tail,
    .open = cloop_open,
    .close = cloop_close,
    .limits = cloop_limits,
    .size = cloop_size,
    .pread = cloop_pread,
    .block_status = cloop_block_status,
    .info = cloop_info,
};
