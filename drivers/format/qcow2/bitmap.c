/*
 * qcow2 persistent dirty bitmaps, kept up to date as QEMU does: enabled
 * consistent bitmaps are loaded and marked in_use before the first write,
 * tracked in memory while open and stored back (new clusters) on close.
 * Bitmaps we cannot handle are dropped by the caller (qcow2_free_bitmaps);
 * the clusters bitmaps own are listed here for that and for the rebuild.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define BME_IN_USE      (1u << 0)
#define BME_AUTO        (1u << 1)
#define BME_EXTRA_COMPAT (1u << 2)
#define BME_TYPE_DIRTY  1u
#define BME_MAX_NAME    1023u
#define BME_MAX_TSIZE   (1u << 24)
#define BME_MAX_DIR     (64u << 20)
#define BME_MAX_BITS_BYTES (512ull << 20)   /* all tracked bitmaps together */
#define BME_TE_OFFSET_MASK 0x00fffffffffffe00ull
#define BME_TE_RESERVED    0xff000000000001feull

struct qcow2_bitmap {
    uint8_t *bits;            /* bit i: granule i, little-endian bit order */
    uint64_t nbits;
    uint32_t gran_bits;
    uint64_t entry_pos;       /* byte offset of the entry in the directory */
    uint64_t toff;            /* old table, freed after the new one is in */
    uint32_t tsize;
    uint64_t *old_data;       /* old data clusters (0 = none) */
};

struct qcow2_bitmaps {
    uint8_t *dir;             /* the directory as on disk */
    uint64_t dir_size;
    uint64_t dir_off;
    struct qcow2_bitmap *v;
    uint32_t n;
};

static void bitmaps_free(struct qcow2_bitmaps *b)
{
    if (!b)
        return;
    for (uint32_t i = 0; i < b->n; i++) {
        free(b->v[i].bits);
        free(b->v[i].old_data);
    }
    free(b->v);
    free(b->dir);
    free(b);
}

void qcow2_bitmaps_free(struct qcow2_state *s)
{
    bitmaps_free(s->bm);
    s->bm = NULL;
}

static bool cluster_ok(const struct qcow2_state *s, uint64_t off, uint64_t len)
{
    if (off % s->cluster_size || !off)
        return false;
    if (!ovf_range_ok(off, len, s->file_size))
        return false;
    for (uint64_t c = off; c < off + len; c += s->cluster_size)
        if (qcow2_is_metadata(s, c >> s->cluster_bits))
            return false;
    return true;
}

/* Read a bitmap's table and data into memory (bm->bits already sized). */
static int load_one(struct qcow2_state *s, struct qcow2_bitmap *bm)
{
    uint64_t cs = s->cluster_size;
    uint64_t bytes = (bm->nbits + 7) / 8;
    uint8_t *tab = malloc((size_t)bm->tsize * 8);
    uint8_t *buf = malloc(cs);
    int ret = 0;

    bm->old_data = calloc(bm->tsize, sizeof(uint64_t));
    if (!tab || !buf || !bm->old_data) {
        ret = -ENOMEM;
        goto out;
    }
    ret = bd_pread(s->node->file, tab, (uint64_t)bm->tsize * 8, bm->toff);
    for (uint32_t j = 0; ret == 0 && j < bm->tsize; j++) {
        uint64_t e = bd_be64(tab + (uint64_t)j * 8);
        uint64_t d = e & BME_TE_OFFSET_MASK;
        uint64_t at = (uint64_t)j * cs;
        uint64_t n = bytes - at < cs ? bytes - at : cs;
        if (e & BME_TE_RESERVED) {
            ret = -EINVAL;
        } else if (!d) {
            if (e & 1)
                memset(bm->bits + at, 0xff, n);
        } else if (!cluster_ok(s, d, cs)) {
            ret = -EINVAL;
        } else {
            bm->old_data[j] = d;
            ret = bd_pread(s->node->file, buf, cs, d);
            if (ret == 0)
                memcpy(bm->bits + at, buf, n);
        }
    }
out:
    free(tab);
    free(buf);
    return ret;
}

/* Check one directory entry at dir[pos]; *len gets its padded length,
 * *track whether it is one we keep up to date. */
static int parse_entry(struct qcow2_state *s, const struct qcow2_bitmaps *b,
                       uint64_t pos, uint64_t *len, bool *track)
{
    const uint8_t *e = b->dir + pos;
    uint32_t tsize, flags, extra;
    uint16_t name;
    uint8_t gb;

    if (b->dir_size - pos < 24)
        return -EINVAL;
    tsize = bd_be32(e + 8);
    flags = bd_be32(e + 12);
    gb = e[17];
    name = bd_be16(e + 18);
    extra = bd_be32(e + 20);
    *len = bd_align_up(24 + (uint64_t)extra + name, 8);
    if (*len > b->dir_size - pos || name == 0 || name > BME_MAX_NAME)
        return -EINVAL;
    if ((flags & ~(BME_IN_USE | BME_AUTO | BME_EXTRA_COMPAT)) ||
        e[16] != BME_TYPE_DIRTY || gb < 9 || gb > 31 ||
        (extra && !(flags & BME_EXTRA_COMPAT)) || tsize > BME_MAX_TSIZE)
        return -ENOTSUP;
    if (tsize && !cluster_ok(s, bd_be64(e), (uint64_t)tsize * 8))
        return -EINVAL;
    /* QEMU's rule: granules covering the disk, cs * 8 granules a cluster */
    uint64_t nbits = (s->size + (1ull << gb) - 1) >> gb;
    uint64_t per = s->cluster_size * 8;
    if ((nbits + per - 1) / per != tsize)
        return -EINVAL;
    /* an empty disk has nothing to track (and no table to write) */
    *track = (flags & BME_AUTO) && !(flags & BME_IN_USE) && tsize;
    return 0;
}

static int read_dir(struct qcow2_state *s, struct qcow2_bitmaps *b)
{
    b->dir_size = s->x.bitmap_dir_size;
    b->dir_off = s->x.bitmap_dir_off;
    if (!s->x.bitmaps_ext_off || !b->dir_size || b->dir_size > BME_MAX_DIR ||
        !s->x.nb_bitmaps || s->x.nb_bitmaps > 65535 ||
        !cluster_ok(s, b->dir_off, b->dir_size))
        return -EINVAL;
    b->dir = malloc(b->dir_size);
    b->v = calloc(s->x.nb_bitmaps, sizeof(*b->v));
    if (!b->dir || !b->v)
        return -ENOMEM;
    return bd_pread(s->node->file, b->dir, b->dir_size, b->dir_off);
}

static int load_all(struct qcow2_state *s, struct qcow2_bitmaps *b)
{
    uint64_t total = 0, pos = 0;
    int ret = read_dir(s, b);

    for (uint32_t i = 0; ret == 0 && i < s->x.nb_bitmaps; i++) {
        uint64_t len;
        bool track;
        ret = parse_entry(s, b, pos, &len, &track);
        if (ret < 0)
            break;
        if (track) {
            struct qcow2_bitmap *bm = &b->v[b->n++];
            const uint8_t *e = b->dir + pos;
            bm->gran_bits = e[17];
            bm->nbits = (s->size + (1ull << bm->gran_bits) - 1) >> bm->gran_bits;
            bm->toff = bd_be64(e);
            bm->tsize = bd_be32(e + 8);
            bm->entry_pos = pos;
            uint64_t bytes = (bm->nbits + 7) / 8;
            total += bytes;
            if (total > BME_MAX_BITS_BYTES)
                return -EFBIG;
            bm->bits = calloc(1, bytes ? bytes : 1);
            if (!bm->bits)
                return -ENOMEM;
            ret = load_one(s, bm);
        }
        pos += len;
    }
    return ret;
}

/* Set in_use on the tracked entries, in place: a flags field never crosses
 * a sector, and any mix of old and new flags after a crash is valid
 * (in_use only makes QEMU distrust a bitmap). */
static int mark_in_use(struct qcow2_state *s, struct qcow2_bitmaps *b)
{
    int ret;

    for (uint32_t i = 0; i < b->n; i++) {
        uint8_t *f = b->dir + b->v[i].entry_pos + 12;
        bd_put_be32(f, bd_be32(f) | BME_IN_USE);
        ret = bd_pwrite(s->node->file, f, 4, b->dir_off + b->v[i].entry_pos + 12,
                        0);
        if (ret < 0)
            return ret;
    }
    return bd_flush(s->node->file);
}

int qcow2_bitmaps_load(struct qcow2_state *s)
{
    struct qcow2_bitmaps *b = NULL;
    int ret;

    if (s->data_node)
        ret = -ENOTSUP;
    else if (!(b = calloc(1, sizeof(*b))))
        ret = -ENOMEM;
    else if ((ret = load_all(s, b)) == 0 && b->n)
        ret = mark_in_use(s, b);
    if (ret < 0) {
        log_warn("%s: cannot keep the persistent bitmaps up to date (%s); "
                 "they are dropped", s->node->name,
                 ret == -ENOTSUP ? "unsupported bitmap" :
                 ret == -EINVAL ? "malformed bitmap directory" :
                 strerror(-ret));
        bitmaps_free(b);
        return ret;
    }
    if (!b->n) {
        bitmaps_free(b);
        return 0;
    }
    s->bm = b;
    return 0;
}

static void set_bits(uint8_t *p, uint64_t a, uint64_t z)
{
    /* whole bytes plainly ORed in with atomics: workers race on neighbours */
    while (a <= z && (a & 7)) {
        __atomic_fetch_or(&p[a >> 3], (uint8_t)(1u << (a & 7)), __ATOMIC_RELAXED);
        a++;
    }
    while (a + 7 <= z) {
        __atomic_store_n(&p[a >> 3], (uint8_t)0xff, __ATOMIC_RELAXED);
        a += 8;
    }
    while (a <= z) {
        __atomic_fetch_or(&p[a >> 3], (uint8_t)(1u << (a & 7)), __ATOMIC_RELAXED);
        a++;
    }
}

void qcow2_bitmaps_mark(struct qcow2_state *s, uint64_t off, uint64_t len)
{
    struct qcow2_bitmaps *b = s->bm;

    if (!b || !len)
        return;
    for (uint32_t i = 0; i < b->n; i++) {
        struct qcow2_bitmap *bm = &b->v[i];
        uint64_t a = off >> bm->gran_bits;
        uint64_t z = (off + len - 1) >> bm->gran_bits;
        if (z >= bm->nbits)
            z = bm->nbits - 1;
        if (a <= z)
            set_bits(bm->bits, a, z);
    }
}

static bool all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static void grow_file(struct qcow2_state *s, uint64_t end)
{
    if (end > s->file_size)
        s->file_size = end;
}

/* New data clusters and table for one bitmap; *toff gets the table. */
static int store_one(struct qcow2_state *s, struct qcow2_bitmap *bm,
                     uint64_t *toff)
{
    uint64_t cs = s->cluster_size;
    uint64_t bytes = (bm->nbits + 7) / 8;
    uint64_t tbytes = bd_align_up((uint64_t)bm->tsize * 8, cs);
    uint8_t *tab = calloc(1, tbytes);
    uint8_t *buf = malloc(cs);
    int ret = 0;

    if (!tab || !buf) {
        ret = -ENOMEM;
        goto out;
    }
    for (uint32_t j = 0; ret == 0 && j < bm->tsize; j++) {
        uint64_t at = (uint64_t)j * cs, d;
        uint64_t n = bytes - at < cs ? bytes - at : cs;
        if (all_zero(bm->bits + at, n))
            continue;
        memset(buf, 0, cs);
        memcpy(buf, bm->bits + at, n);
        ret = qcow2_alloc_clusters(s, 1, &d);
        if (ret == 0)
            ret = bd_pwrite(s->node->file, buf, cs, d, 0);
        if (ret == 0) {
            grow_file(s, d + cs);
            bd_put_be64(tab + (uint64_t)j * 8, d);
        }
    }
    if (ret == 0)
        ret = qcow2_alloc_clusters(s, tbytes / cs, toff);
    if (ret == 0)
        ret = bd_pwrite(s->node->file, tab, tbytes, *toff, 0);
    if (ret == 0)
        grow_file(s, *toff + tbytes);
out:
    free(tab);
    free(buf);
    return ret;
}

static int release_range(struct qcow2_state *s, uint64_t off, uint64_t len)
{
    int ret = 0;

    for (uint64_t c = 0; c < len && ret == 0; c += s->cluster_size)
        ret = qcow2_release_cluster(s, off + c);
    return ret;
}

/* The old directory, tables and data: nothing on disk names them now. */
static int release_old(struct qcow2_state *s, struct qcow2_bitmaps *b)
{
    int ret = release_range(s, b->dir_off, b->dir_size);

    for (uint32_t i = 0; ret == 0 && i < b->n; i++) {
        struct qcow2_bitmap *bm = &b->v[i];
        ret = release_range(s, bm->toff, (uint64_t)bm->tsize * 8);
        for (uint32_t j = 0; ret == 0 && j < bm->tsize; j++)
            if (bm->old_data[j])
                ret = qcow2_release_cluster(s, bm->old_data[j]);
    }
    return ret;
}

/*
 * Data and tables to new clusters, refcounts and flush, then a new
 * directory (flush), then the extension points at it (flush); only then
 * the old clusters are freed. A crash before the switch leaves the old
 * directory with the bitmaps in_use (inconsistent, as QEMU would leave
 * them) and leaks; after it, the new directory is complete.
 */
int qcow2_bitmaps_store(struct qcow2_state *s)
{
    struct qcow2_bitmaps *b = s->bm;
    uint64_t cs = s->cluster_size, doff;
    uint8_t *dir;
    int ret = 0;

    if (!b)
        return 0;
    dir = malloc(b->dir_size);
    if (!dir)
        return -ENOMEM;
    memcpy(dir, b->dir, b->dir_size);
    for (uint32_t i = 0; ret == 0 && i < b->n; i++) {
        uint64_t toff;
        uint8_t *e = dir + b->v[i].entry_pos;
        ret = store_one(s, &b->v[i], &toff);
        if (ret == 0) {
            bd_put_be64(e, toff);
            bd_put_be32(e + 12, bd_be32(e + 12) & ~BME_IN_USE);
        }
    }
    uint64_t dbytes = bd_align_up(b->dir_size, cs);
    if (ret == 0)
        ret = qcow2_alloc_clusters(s, dbytes / cs, &doff);
    if (ret == 0) {
        uint8_t *pad = calloc(1, dbytes);
        if (!pad) {
            ret = -ENOMEM;
        } else {
            memcpy(pad, dir, b->dir_size);
            ret = bd_pwrite(s->node->file, pad, dbytes, doff, 0);
            free(pad);
            grow_file(s, doff + dbytes);
        }
    }
    if (ret == 0)
        ret = qcow2_meta_flush(s, true);
    if (ret == 0) {
        /* dir_off is 8 bytes, 8-aligned: one sector, old or new */
        uint8_t v[8];
        bd_put_be64(v, doff);
        ret = bd_pwrite(s->node->file, v, 8, s->x.bitmaps_ext_off + 16, 0);
    }
    if (ret == 0)
        ret = bd_flush(s->node->file);
    if (ret == 0) {
        s->x.bitmap_dir_off = doff;
        ret = release_old(s, b);
    }
    free(dir);
    qcow2_bitmaps_free(s);
    return ret;
}

/* ---- persistent bitmaps: the clusters they own ----------------------------- */

static int collect(struct qcow2_state *s, uint64_t off, uint64_t bytes,
                   uint64_t **v, size_t *n, size_t *cap)
{
    uint64_t cs = s->cluster_size;

    if (!bytes)
        return 0;
    if (off % cs || !ovf_range_ok(off, bytes, s->file_size))
        return -EINVAL;
    for (uint64_t c = off; c < off + bytes; c += cs) {
        if (qcow2_is_metadata(s, c >> s->cluster_bits))
            return -EINVAL;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            uint64_t *p = realloc(*v, nc * sizeof(**v));
            if (!p)
                return -ENOMEM;
            *v = p;
            *cap = nc;
        }
        (*v)[(*n)++] = c;
    }
    return 0;
}

int qcow2_bitmap_clusters(struct qcow2_state *s, uint64_t **out, size_t *out_n)
{
    uint64_t dsize = s->x.bitmap_dir_size, doff = s->x.bitmap_dir_off;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    uint8_t *dir = NULL, *tab = NULL;
    int ret;

    *out = NULL;
    *out_n = 0;
    if (!s->x.has_bitmaps || !dsize)
        return 0;
    if (dsize > (64u << 20) || s->x.nb_bitmaps > 65535 || s->data_node)
        return -EINVAL;
    ret = collect(s, doff, dsize, &v, &n, &cap);
    if (ret < 0)
        goto out;
    dir = malloc(dsize);
    if (!dir) {
        ret = -ENOMEM;
        goto out;
    }
    ret = bd_pread(s->node->file, dir, dsize, doff);
    for (uint64_t pos = 0, i = 0; ret == 0 && i < s->x.nb_bitmaps; i++) {
        if (dsize - pos < 24) {
            ret = -EINVAL;
            break;
        }
        const uint8_t *e = dir + pos;
        uint64_t toff = bd_be64(e);
        uint64_t tsize = bd_be32(e + 8);
        uint64_t len = 24 + (uint64_t)bd_be32(e + 20) + bd_be16(e + 18);
        if (tsize > (1u << 24) || len > dsize - pos) {
            ret = -EINVAL;
            break;
        }
        pos += bd_align_up(len, 8);
        if (pos > dsize)
            pos = dsize;
        ret = collect(s, toff, tsize * 8, &v, &n, &cap);
        if (ret < 0 || !tsize)
            continue;
        free(tab);
        tab = malloc(tsize * 8);
        if (!tab) {
            ret = -ENOMEM;
            break;
        }
        ret = bd_pread(s->node->file, tab, tsize * 8, toff);
        for (uint64_t j = 0; ret == 0 && j < tsize; j++) {
            uint64_t d = bd_be64(tab + j * 8) & 0x00fffffffffffe00ull;
            if (d)
                ret = collect(s, d, 1, &v, &n, &cap);
        }
    }
out:
    free(dir);
    free(tab);
    if (ret < 0) {
        free(v);
        return ret;
    }
    *out = v;
    *out_n = n;
    return 0;
}

int qcow2_free_bitmaps(struct qcow2_state *s)
{
    uint64_t *v;
    size_t n;
    int ret;

    if (!s->x.has_bitmaps || !s->x.bitmap_dir_size || s->data_node)
        return 0;
    ret = qcow2_bitmap_clusters(s, &v, &n);
    /* only a fully understood directory is freed */
    for (size_t i = 0; ret == 0 && i < n; i++) {
        uint64_t rc;
        ret = qcow2_refcount_get(s, v[i] >> s->cluster_bits, &rc);
        if (ret == 0 && rc)
            ret = qcow2_release_cluster(s, v[i]);
    }
    if (ret == 0)
        free(v);
    if (ret < 0)
        log_warn("%s: could not free the clusters of the persistent bitmaps: "
                 "%s", s->node->name, strerror(-ret));
    return 0;
}
