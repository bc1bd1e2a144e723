/*
 * dmg (Apple UDIF) format driver, read-only: maps guest offsets to chunks
 * (map.c), reads raw chunks straight from the file and expands compressed
 * ones through a small locked cache of decoded chunks, because reads arrive
 * in 4 KiB-1 MiB pieces and a chunk is typically 1 MiB. No write support.
 */
#include "dmg.h"
#include "overflow.h"

#include <stdlib.h>
#include <string.h>

#define DMG_CACHE_SLOTS 32
#define DMG_CACHE_DEFAULT (64u << 20)

struct dmg_slot {
    size_t chunk;               /* chunk index; SIZE_MAX when empty */
    uint8_t *buf;
    size_t len;
    unsigned users;             /* readers copying out of buf right now */
    uint64_t stamp;             /* LRU clock */
};

struct dmg_state {
    struct dmg_map map;
    pthread_mutex_t lock;       /* protects slots, clock, cache_bytes */
    bool lock_ready;
    struct dmg_slot slots[DMG_CACHE_SLOTS];
    uint64_t clock;
    uint64_t cache_bytes, cache_max;
    unsigned long bad_chunks;   /* for log-once */
};

/* A decoded chunk held by one reader: a cache slot or a private buffer. */
struct dmg_ref {
    struct dmg_slot *slot;
    uint8_t *buf;
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

/* ---- open/close -------------------------------------------------------- */

static void dmg_close(struct bd_node *n)
{
    struct dmg_state *s = n->state;

    for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++)
        free(s->slots[i].buf);
    if (s->lock_ready)
        pthread_mutex_destroy(&s->lock);
    dmg_map_free(&s->map);
}

static int dmg_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    struct dmg_state *s = n->state;
    int ret;

    ret = bd_opts_get_size(o, "cache-size", DMG_CACHE_DEFAULT, &s->cache_max,
                           err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    pthread_mutex_init(&s->lock, NULL);
    s->lock_ready = true;
    for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++)
        s->slots[i].chunk = SIZE_MAX;
    return dmg_map_load(n->file, n->name, &s->map, err);
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

/* ---- decoded chunk cache ----------------------------------------------- */

static void dmg_log_bad_chunk(struct bd_node *n, const struct dmg_chunk *c,
                              int ret)
{
    struct dmg_state *s = n->state;

    if (__atomic_fetch_add(&s->bad_chunks, 1, __ATOMIC_RELAXED) == 0)
        log_err("%s: %s chunk at disk offset %llu (file offset %llu) %s",
                n->name, dmg_type_name(c->type), (unsigned long long)c->off,
                (unsigned long long)c->src_off,
                ret == -EIO ? "is corrupt or does not expand to its size"
                            : strerror(-ret));
}

static int dmg_decode_chunk(struct bd_node *n, const struct dmg_chunk *c,
                            uint8_t **out)
{
    uint8_t *src, *dst;
    int ret;

    src = malloc(c->src_len ? c->src_len : 1);
    dst = malloc(c->len);
    if (!src || !dst) {
        ret = -ENOMEM;
        goto out_free;
    }
    ret = bd_pread(n->file, src, c->src_len, c->src_off);
    if (ret < 0)
        goto out_free;
    ret = dmg_decode(c->type, src, c->src_len, dst, c->len);
    if (ret < 0) {
        dmg_log_bad_chunk(n, c, ret);
        goto out_free;
    }
    free(src);
    *out = dst;
    return 0;
out_free:
    free(src);
    free(dst);
    return ret;
}

/* Make room for len bytes in a free slot; NULL if every slot is busy. */
static struct dmg_slot *dmg_cache_victim(struct dmg_state *s, size_t len)
{
    if (len > s->cache_max)
        return NULL;
    for (;;) {
        struct dmg_slot *lru = NULL, *empty = NULL;

        for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++) {
            struct dmg_slot *sl = &s->slots[i];

            if (sl->chunk == SIZE_MAX)
                empty = sl;
            else if (!sl->users && (!lru || sl->stamp < lru->stamp))
                lru = sl;
        }
        if (empty && s->cache_bytes + len <= s->cache_max)
            return empty;
        if (!lru)
            return NULL;
        free(lru->buf);
        s->cache_bytes -= lru->len;
        lru->buf = NULL;
        lru->len = 0;
        lru->chunk = SIZE_MAX;
    }
}

static struct dmg_slot *dmg_cache_lookup(struct dmg_state *s, size_t idx)
{
    for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++) {
        struct dmg_slot *sl = &s->slots[i];

        if (sl->chunk == idx) {
            sl->users++;
            sl->stamp = ++s->clock;
            return sl;
        }
    }
    return NULL;
}

/* Decoding happens outside the lock, so workers expand different chunks in
 * parallel; two racing on the same chunk both decode and one copy wins. */
static int dmg_chunk_get(struct bd_node *n, size_t idx, struct dmg_ref *ref)
{
    struct dmg_state *s = n->state;
    const struct dmg_chunk *c = &s->map.chunks[idx];
    struct dmg_slot *sl;
    uint8_t *buf;
    int ret;

    pthread_mutex_lock(&s->lock);
    sl = dmg_cache_lookup(s, idx);
    pthread_mutex_unlock(&s->lock);
    if (sl) {
        *ref = (struct dmg_ref){ .slot = sl, .buf = sl->buf };
        return 0;
    }
    ret = dmg_decode_chunk(n, c, &buf);
    if (ret < 0)
        return ret;
    pthread_mutex_lock(&s->lock);
    sl = dmg_cache_lookup(s, idx);
    if (sl) {
        free(buf);
    } else {
        sl = dmg_cache_victim(s, c->len);
        if (sl) {
            sl->chunk = idx;
            sl->buf = buf;
            sl->len = c->len;
            sl->users = 1;
            sl->stamp = ++s->clock;
            s->cache_bytes += c->len;
        }
    }
    pthread_mutex_unlock(&s->lock);
    *ref = (struct dmg_ref){ .slot = sl, .buf = sl ? sl->buf : buf };
    return 0;
}

static void dmg_chunk_put(struct bd_node *n, struct dmg_ref *ref)
{
    struct dmg_state *s = n->state;

    if (!ref->slot) {
        free(ref->buf);
        return;
    }
    pthread_mutex_lock(&s->lock);
    ref->slot->users--;
    pthread_mutex_unlock(&s->lock);
}

/* ---- I/O --------------------------------------------------------------- */

static int dmg_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct dmg_state *s = n->state;
    const struct dmg_map *m = &s->map;
    uint8_t *p = buf;

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
            ret = dmg_chunk_get(n, i, &ref);
            if (ret < 0)
                return ret;
            memcpy(p, ref.buf + in, piece);
            dmg_chunk_put(n, &ref);
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
    .open = dmg_open,
    .close = dmg_close,
    .limits = dmg_limits,
    .size = dmg_size,
    .pread = dmg_pread,
    .block_status = dmg_block_status,
    .info = dmg_info,
};
