/*
 * dmg (Apple UDIF) format driver, read-only: maps guest offsets to chunks
 * (map.c), reads raw chunks straight from the file and takes compressed
 * ones from the decoded-chunk cache (cache.c). No write support.
 */
#include "dmg.h"

#include <stdlib.h>
#include <string.h>

#define DMG_CACHE_DEFAULT (64u << 20)

struct dmg_state {
    struct dmg_map map;
    struct dmg_cache cache;
};

static const char *const dmg_options[] = { "cache-size", NULL };

/* ---- probe ------------------------------------------------------------- */

/*
 * The koly trailer sits at the end of the file and the data fork has no
 * magic, so the head alone rarely identifies a dmg. We recognise an
 * encrypted image (to give the clear error) and a file short enough that
 * its trailer is inside the head we were given.
 */
static int dmg_probe(const uint8_t *head, size_t len)
{
    if (len >= 8 && memcmp(head, "encrcdsa", 8) == 0)
        return 100;
    if (len >= DMG_KOLY_SIZE &&
        memcmp(head + len - DMG_KOLY_SIZE, "koly", 4) == 0 &&
        bd_be32(head + len - DMG_KOLY_SIZE + 8) == DMG_KOLY_SIZE)
        return 90;
    return 0;
}

/* The trailer proper: the last 512 bytes of a larger file (or "cdsaencr"
 * ending an encrypted one). */
static int dmg_probe_tail(const uint8_t *tail, size_t len)
{
    if (len >= 8 && memcmp(tail + len - 8, "cdsaencr", 8) == 0)
        return 100;
    if (len == DMG_KOLY_SIZE && memcmp(tail, "koly", 4) == 0 &&
        bd_be32(tail + 8) == DMG_KOLY_SIZE)
        return 90;
    return 0;
}

/* ---- open/close -------------------------------------------------------- */

static void dmg_close(struct bd_node *n)
{
    struct dmg_state *s = n->state;

    dmg_cache_destroy(&s->cache);
    dmg_map_free(&s->map);
}

static int dmg_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    struct dmg_state *s = n->state;
    uint64_t cache_max;
    int ret;

    ret = bd_opts_get_size(o, "cache-size", DMG_CACHE_DEFAULT, &cache_max,
                           err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = dmg_map_load(n->file, n->name, &s->map, err);
    if (ret < 0)
        return ret;
    dmg_cache_init(&s->cache, n->file, &s->map, cache_max, n->name);
    return 0;
}

static int64_t dmg_size(struct bd_node *n)
{
    struct dmg_state *s = n->state;

    return (int64_t)s->map.size;
}

static void dmg_limits(struct bd_node *n, struct bd_limits *lim)
{
    (void)n;
    lim->request_alignment = 1;
    lim->opt_transfer = 1u << 20;
}

/* ---- I/O --------------------------------------------------------------- */

static int dmg_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct dmg_state *s = n->state;
    const struct dmg_map *m = &s->map;
    uint8_t *p = buf;
    size_t first, last;

    if (len == 0)
        return 0;
    /* a request over several compressed chunks: expand them in parallel */
    first = dmg_map_find(m, off);
    last = dmg_map_find(m, off + len - 1);
    if (last > first && first < m->n_chunks)
        dmg_cache_prefetch(&s->cache, first + 1, last);
    while (len > 0) {
        size_t i = dmg_map_find(m, off);
        const struct dmg_chunk *c = i < m->n_chunks ? &m->chunks[i] : NULL;
        uint64_t piece, in;
        struct dmg_ref ref;
        int ret;

        if (!c || c->off > off) {
            /* not described by any blkx table: reads as zeroes */
            piece = (c ? c->off : m->size) - off;
            piece = piece < len ? piece : len;
            memset(p, 0, piece);
            goto next;
        }
        in = off - c->off;
        piece = c->len - in < len ? c->len - in : len;
        switch (c->type) {
        case DMG_CHUNK_ZERO:
        case DMG_CHUNK_IGNORE:
            memset(p, 0, piece);
            break;
        case DMG_CHUNK_RAW:
            ret = bd_pread(n->file, p, piece, c->src_off + in);
            if (ret < 0)
                return ret;
            break;
        default:
            ret = dmg_cache_get(&s->cache, i, &ref);
            if (ret < 0)
                return ret;
            memcpy(p, ref.buf + in, piece);
            dmg_cache_put(&s->cache, &ref);
            break;
        }
next:
        p += piece;
        off += piece;
        len -= piece;
    }
    return 0;
}

static unsigned dmg_chunk_status(const struct dmg_chunk *c)
{
    switch (c->type) {
    case DMG_CHUNK_ZERO:   return BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
    case DMG_CHUNK_IGNORE: return BD_STATUS_ZERO;
    default:               return BD_STATUS_DATA | BD_STATUS_ALLOCATED;
    }
}

static int dmg_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                            uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct dmg_state *s = n->state;
    const struct dmg_map *m = &s->map;
    size_t i = dmg_map_find(m, off);
    const struct dmg_chunk *c = i < m->n_chunks ? &m->chunks[i] : NULL;
    uint64_t end;

    if (!c || c->off > off) {
        end = c ? c->off : m->size;
        *status = BD_STATUS_ZERO;
    } else {
        *status = dmg_chunk_status(c);
        if (c->type == DMG_CHUNK_RAW) {
            *status |= BD_STATUS_OFFSET;
            *map = c->src_off + (off - c->off);
        }
        end = c->off + c->len;
        /* extend over following chunks in the same state (not raw: its
         * file offset would have to be contiguous too) */
        while (c->type != DMG_CHUNK_RAW && ++i < m->n_chunks &&
               m->chunks[i].off == end &&
               dmg_chunk_status(&m->chunks[i]) == *status &&
               end - off < len) {
            end += m->chunks[i].len;
        }
    }
    *pnum = end - off < len ? end - off : len;
    return 0;
}

/* ---- info -------------------------------------------------------------- */

static void dmg_info(struct bd_node *n, struct bd_info *info)
{
    struct dmg_state *s = n->state;
    static const uint32_t types[] = {
        DMG_CHUNK_ZERO, DMG_CHUNK_RAW, DMG_CHUNK_IGNORE, DMG_CHUNK_ADC,
        DMG_CHUNK_ZLIB, DMG_CHUNK_BZIP2, DMG_CHUNK_LZFSE, DMG_CHUNK_LZMA,
    };
    char codecs[128] = "";

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (!(s->map.types_seen & 1u << dmg_type_bit(types[i])))
            continue;
        if (codecs[0])
            strcat(codecs, ",");
        strcat(codecs, dmg_type_name(types[i]));
    }
    bd_info_add(info, "partitions", "%u", s->map.n_tables);
    bd_info_add(info, "chunks", "%zu", s->map.n_chunks);
    bd_info_add(info, "chunk types", "%s", codecs);
    bd_info_add(info, "data fork offset", "%llu",
                (unsigned long long)s->map.data_fork_off);
}

const struct bd_driver bd_drv_dmg = {
    .name = "dmg",
    .kind = BD_FORMAT,
    .options = dmg_options,
    .state_size = sizeof(struct dmg_state),
    .parallel = true,
    .read_only = true,
    .probe = dmg_probe,
    .probe_tail = dmg_probe_tail,
    .open = dmg_open,
    .close = dmg_close,
    .limits = dmg_limits,
    .size = dmg_size,
    .pread = dmg_pread,
    .block_status = dmg_block_status,
    .info = dmg_info,
};
