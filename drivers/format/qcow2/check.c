/*
 * qcow2 refcount rebuild: after a crash with lazy refcounts (dirty bit set)
 * the refcounts are recomputed from the active and snapshot L1/L2 tables
 * and written as a new refcount table and blocks at the end of the file;
 * the header is switched over and the dirty bit cleared, each step flushed.
 */
#include "qcow2.h"
#include "overflow.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct counts {
    uint32_t *c;
    uint64_t n;
};

static int add(struct qcow2_state *s, struct counts *k, uint64_t off,
               uint64_t nclusters, struct bd_err *err)
{
    uint64_t first = off >> s->cluster_bits;

    for (uint64_t i = first; i < first + nclusters; i++) {
        if (i >= k->n)
            return bd_err_set(err, EIO,
                              "%s: metadata points beyond the end of the file "
                              "(cluster %" PRIu64 "); repair it with qemu-img "
                              "check -r all", s->node->name, i);
        if (k->c[i] == UINT32_MAX || k->c[i] >= s->refcount_max)
            return bd_err_set(err, EIO, "%s: refcount overflow at cluster %"
                              PRIu64, s->node->name, i);
        k->c[i]++;
    }
    return 0;
}

static int add_l1(struct qcow2_state *s, struct counts *k, const uint64_t *l1,
                  uint32_t l1_entries, uint64_t l1_off, uint8_t *t,
                  struct bd_err *err)
{
    uint64_t cs = s->cluster_size;
    int ret;

    if (l1_entries) {
        ret = add(s, k, l1_off, ((uint64_t)l1_entries * 8 + cs - 1) / cs, err);
        if (ret < 0)
            return ret;
    }
    for (uint32_t i = 0; i < l1_entries; i++) {
        uint64_t l2 = l1[i] & QCOW2_L1_OFFSET_MASK;
        if (!l2)
            continue;
        if (l2 % cs)
            return bd_err_set(err, EIO, "%s: misaligned L2 table offset",
                              s->node->name);
        ret = add(s, k, l2, 1, err);
        if (ret < 0)
            return ret;
        ret = bd_pread(s->node->file, t, cs, l2);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: cannot read an L2 table: %s",
                              s->node->name, strerror(-ret));
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = qcow2_l2_get(s, t, j);
            if (e & QCOW2_OFLAG_COMPRESSED) {
                struct qcow2_extent x;
                qcow2_l2_decode(s, e, 0, 0, &x);
                uint64_t a = x.host & ~(cs - 1);
                uint64_t b = (x.host + x.csize - 1) & ~(cs - 1);
                ret = add(s, k, a, (b - a) / cs + 1, err);
            } else {
                uint64_t host = e & QCOW2_L2_OFFSET_MASK;
                ret = (host && !s->data_node) ? add(s, k, host, 1, err) : 0;
            }
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

static int count_all(struct qcow2_state *s, struct counts *k, struct bd_err *err)
{
    uint64_t cs = s->cluster_size;
    uint8_t *t = malloc(cs);
    int ret;

    if (!t)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
    ret = add(s, k, 0, 1, err);
    if (ret == 0)
        ret = add_l1(s, k, s->l1, s->l1_entries, s->l1_off, t, err);
    uint64_t table = 0;
    for (uint32_t i = 0; i < s->nb_snapshots && ret == 0; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        uint64_t *l1 = calloc(sn->l1_entries ? sn->l1_entries : 1, 8);
        uint8_t *raw = malloc((uint64_t)sn->l1_entries * 8 + 1);
        table += sn->entry_len;
        if (!l1 || !raw) {
            ret = bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
        } else {
            ret = bd_pread(s->node->file, raw, (uint64_t)sn->l1_entries * 8,
                           sn->l1_off);
            if (ret < 0)
                ret = bd_err_set(err, -ret, "%s: cannot read a snapshot L1 "
                                 "table", s->node->name);
            for (uint32_t j = 0; ret == 0 && j < sn->l1_entries; j++)
                l1[j] = bd_be64(raw + j * 8);
            if (ret == 0)
                ret = add_l1(s, k, l1, sn->l1_entries, sn->l1_off, t, err);
        }
        free(l1);
        free(raw);
    }
    if (ret == 0 && table)
        ret = add(s, k, s->h.snapshots_off, (table + cs - 1) / cs, err);
    free(t);
    return ret;
}

int qcow2_rebuild_refcounts(struct qcow2_state *s, struct bd_err *err)
{
    uint64_t cs = s->cluster_size;
    struct counts k = { 0 };
    uint8_t *buf = NULL, *table = NULL;
    int ret;

    /* consistent bitmaps (autoclear bit set) own clusters too; a damaged
     * directory we cannot count is left to qemu-img check */
    uint64_t *bmv = NULL;
    size_t bmn = 0;
    if (s->x.has_bitmaps && (s->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS) &&
        qcow2_bitmap_clusters(s, &bmv, &bmn) < 0)
        return bd_err_set(err, ENOTSUP,
                          "%s: cannot rebuild the refcounts of an image with "
                          "damaged persistent bitmaps; repair it with qemu-img "
                          "check -r all",
                          s->node->name);
    bool was_dirty = s->h.incompat & QCOW2_INCOMPAT_DIRTY;
    uint64_t p = (s->file_size + cs - 1) / cs;
    uint64_t nk = 1, nm = 1;
    for (int it = 0; it < 64; it++) {
        uint64_t m2 = (p + nk + nm + s->rb_entries - 1) / s->rb_entries;
        uint64_t k2 = (m2 * 8 + cs - 1) / cs;
        if (m2 == nm && k2 == nk)
            break;
        nm = m2;
        nk = k2;
    }
    if (nk * cs > QCOW2_MAX_REFTABLE_BYTES) {
        free(bmv);
        return bd_err_set(err, EFBIG, "%s: image too large to rebuild its "
                          "refcounts", s->node->name);
    }
    k.n = p + nk + nm;
    k.c = calloc(k.n, sizeof(*k.c));
    buf = malloc(cs);
    table = calloc(nk, cs);
    if (!k.c || !buf || !table) {
        ret = bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
        goto out_free;
    }
    ret = count_all(s, &k, err);
    for (size_t i = 0; ret == 0 && i < bmn; i++)
        ret = add(s, &k, bmv[i], 1, err);
    if (ret < 0)
        goto out_free;
    for (uint64_t i = p; i < k.n; i++)
        k.c[i] = 1;
    for (uint64_t b = 0; b < nm; b++) {
        uint64_t boff = (p + nk + b) * cs;
        memset(buf, 0, cs);
        for (uint64_t j = 0; j < s->rb_entries; j++) {
            uint64_t c = b * s->rb_entries + j;
            if (c >= k.n)
                break;
            if (k.c[c])
                qcow2_rb_write(s, buf, j, k.c[c]);
        }
        bd_put_be64(table + b * 8, boff);
        ret = bd_pwrite(s->node->file, buf, cs, boff, 0);
        if (ret < 0)
            goto out_io;
    }
    ret = bd_pwrite(s->node->file, table, nk * cs, p * cs, 0);
    if (ret < 0)
        goto out_io;
    ret = bd_flush(s->node->file);
    if (ret < 0)
        goto out_io;
    uint8_t hdr[12];
    bd_put_be64(hdr, p * cs);
    bd_put_be32(hdr + 8, (uint32_t)nk);
    ret = bd_pwrite(s->node->file, hdr, sizeof(hdr), 48, 0);
    if (ret < 0)
        goto out_io;
    ret = bd_flush(s->node->file);
    if (ret < 0)
        goto out_io;
    ret = qcow2_header_write_u64(s, 72, s->h.incompat & ~QCOW2_INCOMPAT_DIRTY);
    if (ret < 0)
        goto out_io;
    s->h.incompat &= ~QCOW2_INCOMPAT_DIRTY;

    uint64_t entries = nk * cs / 8;
    uint64_t *rt = calloc(entries, sizeof(uint64_t));
    if (!rt) {
        ret = bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
        goto out_free;
    }
    for (uint64_t i = 0; i < entries; i++)
        rt[i] = bd_be64(table + i * 8);
    free(s->reftable);
    s->reftable = rt;
    s->reftable_entries = entries;
    s->reftable_off = p * cs;
    s->h.reftable_off = p * cs;
    s->h.reftable_clusters = (uint32_t)nk;
    s->file_size = k.n * cs;
    s->free_hint = 0;
    if (was_dirty)
        log_info("%s: image was not closed cleanly; refcounts rebuilt",
                 s->node->name);
    ret = 0;
    goto out_free;

out_io:
    ret = bd_err_set(err, -ret, "%s: cannot write rebuilt refcounts: %s",
                     s->node->name, strerror(-ret));
out_free:
    free(bmv);
    free(k.c);
    free(buf);
    free(table);
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

/* ---- imgfuse check ----------------------------------------------------- */

/*
 * The check computes, from every piece of metadata, how many references
 * each host cluster of the file has, and compares that with the stored
 * refcounts. Pointers that lead outside the file or are misaligned are
 * corruptions; with BD_CHECK_FIX_ERRORS they are dropped (written as
 * unallocated) before any refcount changes. Refcounts are then corrected
 * in place, block by block, or by a full rebuild when the refcount
 * structure itself is damaged.
 */
struct ck {
    struct qcow2_state *s;
    unsigned fix;
    uint64_t n;                   /* clusters in the file */
    uint32_t *ref;                /* computed, saturating at UINT32_MAX */
    uint8_t *meta;                /* CK_FIXED, CK_L2: what a cluster holds */
    uint8_t *t;                   /* one cluster of scratch space */
    uint64_t corrupt, corrupt_fixed, leaks, leaks_fixed;
    bool need_rebuild;            /* a repair only a rebuild can do */
    bool wrote;
};

#define CK_FIXED 1                /* header, L1, refcount, snapshot tables */
#define CK_L2    2                /* an L2 table of the active layer */
#define CK_SEEN  4                /* pointed at by the L1 table being walked */

/* Note what the clusters of [off, off+bytes) hold (ranges outside the
 * file are ignored here and counted as corruptions by ck_add). */
static void ck_mark(struct ck *k, uint64_t off, uint64_t bytes, uint8_t what)
{
    uint32_t cb = k->s->cluster_bits;

    if (!bytes || !ovf_range_ok(off, bytes, k->n << cb))
        return;
    for (uint64_t c = off >> cb; c <= (off + bytes - 1) >> cb; c++)
        k->meta[c] |= what;
}

/* Does [off, off+bytes) touch a cluster holding metadata of kind mask? */
static bool ck_is_meta(const struct ck *k, uint64_t off, uint64_t bytes,
                       uint8_t mask)
{
    uint32_t cb = k->s->cluster_bits;

    for (uint64_t c = off >> cb; c <= (off + bytes - 1) >> cb; c++)
        if (k->meta[c] & mask)
            return true;
    return false;
}

/* Count one reference to every cluster of [off, off+bytes); a range
 * outside the file is a corruption. */
static void ck_add(struct ck *k, uint64_t off, uint64_t bytes)
{
    uint32_t cb = k->s->cluster_bits;

    if (!bytes)
        return;
    if (!ovf_range_ok(off, bytes, k->n << cb)) {
        k->corrupt++;
        return;
    }
    for (uint64_t c = off >> cb; c <= (off + bytes - 1) >> cb; c++)
        if (k->ref[c] != UINT32_MAX)
            k->ref[c]++;
}

/* A host cluster pointer: aligned and inside the file. */
static bool ck_ptr_ok(const struct ck *k, uint64_t off)
{
    return off % k->s->cluster_size == 0 &&
           off < (k->n << k->s->cluster_bits);
}

static int ck_write(struct ck *k, const void *buf, uint64_t len, uint64_t off)
{
    int ret = bd_pwrite(k->s->node->file, buf, len, off, 0);
    k->wrote = true;
    return ret;
}

/* Walk one L2 table at l2 (already counted); fix bad entries when asked. */
static int ck_l2(struct ck *k, uint64_t l2)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    bool dirty = false;
    int ret = bd_pread(s->node->file, k->t, cs, l2);

    if (ret < 0)
        return ret;
    for (uint64_t j = 0; j < s->l2_entries; j++) {
        uint64_t e = qcow2_l2_get(s, k->t, j);
        bool bad = false;
        if (e & QCOW2_OFLAG_COMPRESSED) {
            struct qcow2_extent x;
            if (e & QCOW2_OFLAG_COPIED) {
                /* never set for compressed clusters */
                k->corrupt++;
                if (k->fix & BD_CHECK_FIX_ERRORS) {
                    e &= ~QCOW2_OFLAG_COPIED;
                    qcow2_l2_set(s, k->t, j, e,
                                 qcow2_l2_get_bitmap(s, k->t, j));
                    dirty = true;
                    k->corrupt_fixed++;
                }
            }
            if (qcow2_l2_decode(s, e, 0, 0, &x) < 0 || !x.csize ||
                !ovf_range_ok(x.host, x.csize, k->n << s->cluster_bits) ||
                ck_is_meta(k, x.host, x.csize, CK_FIXED | CK_L2)) {
                bad = true;
            } else {
                uint64_t a = x.host & ~(cs - 1);
                ck_add(k, a, x.host + x.csize - a);
            }
        } else {
            if (e & QCOW2_L2_RESERVED_MASK) {
                k->corrupt++;
                if (k->fix & BD_CHECK_FIX_ERRORS) {
                    e &= ~QCOW2_L2_RESERVED_MASK;
                    qcow2_l2_set(s, k->t, j, e,
                                 qcow2_l2_get_bitmap(s, k->t, j));
                    dirty = true;
                    k->corrupt_fixed++;
                }
            }
            uint64_t host = e & QCOW2_L2_OFFSET_MASK;
            if (!host || s->data_node)
                continue;
            if (!ck_ptr_ok(k, host) ||
                ck_is_meta(k, host, cs, CK_FIXED | CK_L2))
                bad = true;
            else
                ck_add(k, host, cs);
        }
        if (!bad)
            continue;
        k->corrupt++;
        if (k->fix & BD_CHECK_FIX_ERRORS) {
            qcow2_l2_set(s, k->t, j, 0, 0);
            dirty = true;
            k->corrupt_fixed++;
        }
    }
    if (dirty) {
        qcow2_cache_discard(&s->l2c, l2);
        ret = ck_write(k, k->t, cs, l2);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* One L1 table (active when active, else a snapshot's, l1 in native order);
 * fixes update l1[] and the table on disk at l1_off. */
static int ck_l1(struct ck *k, uint64_t *l1, uint32_t entries, uint64_t l1_off)
{
    int ret = 0;

    ck_add(k, l1_off, (uint64_t)entries * 8);
    for (uint32_t i = 0; i < entries; i++) {
        if (l1[i] & QCOW2_L1_RESERVED_MASK) {
            k->corrupt++;
            if (k->fix & BD_CHECK_FIX_ERRORS) {
                uint8_t b[8];
                l1[i] &= ~QCOW2_L1_RESERVED_MASK;
                bd_put_be64(b, l1[i]);
                ret = ck_write(k, b, 8, l1_off + (uint64_t)i * 8);
                if (ret < 0)
                    return ret;
                k->corrupt_fixed++;
            }
        }
        uint64_t l2 = l1[i] & QCOW2_L1_OFFSET_MASK;
        if (!l2)
            continue;
        /* one L1 table names an L2 table once: a repeat would be walked
         * again and again (a hostile image could make that endless) */
        if (!ck_ptr_ok(k, l2) ||
            ck_is_meta(k, l2, k->s->cluster_size, CK_FIXED | CK_SEEN)) {
            k->corrupt++;
            if (k->fix & BD_CHECK_FIX_ERRORS) {
                uint8_t z[8] = { 0 };
                l1[i] = 0;
                ret = ck_write(k, z, 8, l1_off + (uint64_t)i * 8);
                if (ret < 0)
                    return ret;
                k->corrupt_fixed++;
            }
            continue;
        }
        k->meta[l2 >> k->s->cluster_bits] |= CK_SEEN;
        ck_add(k, l2, k->s->cluster_size);
        ret = ck_l2(k, l2);
        if (ret < 0)
            break;
    }
    for (uint32_t i = 0; i < entries; i++) {
        uint64_t l2 = l1[i] & QCOW2_L1_OFFSET_MASK;
        if (l2 && ck_ptr_ok(k, l2))
            k->meta[l2 >> k->s->cluster_bits] &= (uint8_t)~CK_SEEN;
    }
    return ret;
}

/* Persistent bitmaps: directory, bitmap tables and their data clusters. */
static void ck_bitmaps(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t dsize = s->x.bitmap_dir_size, doff = s->x.bitmap_dir_off;

    if (!s->x.has_bitmaps || !dsize)
        return;
    if (dsize > (64u << 20) || s->x.nb_bitmaps > 65535 ||
        !ck_ptr_ok(k, doff) ||
        !ovf_range_ok(doff, dsize, k->n << s->cluster_bits)) {
        k->corrupt++;
        return;
    }
    ck_add(k, doff, dsize);
    uint8_t *dir = malloc(dsize);
    if (!dir || bd_pread(s->node->file, dir, dsize, doff) < 0) {
        free(dir);
        k->corrupt++;
        return;
    }
    /* tables may not add up to more than the file: no endless rereading */
    uint64_t budget = k->n << s->cluster_bits;
    for (uint64_t pos = 0, i = 0; i < s->x.nb_bitmaps; i++) {
        if (dsize - pos < 24) {
            k->corrupt++;
            break;
        }
        const uint8_t *e = dir + pos;
        uint64_t toff = bd_be64(e);
        uint64_t tsize = bd_be32(e + 8);
        uint64_t len = 24 + (uint64_t)bd_be32(e + 20) + bd_be16(e + 18);
        if (tsize > (1u << 24) || len > dsize - pos) {
            k->corrupt++;
            break;
        }
        pos += bd_align_up(len, 8);
        if (pos > dsize)
            pos = dsize;
        if (!tsize)
            continue;
        if (!ck_ptr_ok(k, toff) ||
            !ovf_range_ok(toff, tsize * 8, k->n << s->cluster_bits) ||
            tsize * 8 > budget) {
            k->corrupt++;
            continue;
        }
        budget -= tsize * 8;
        ck_add(k, toff, tsize * 8);
        uint8_t *tab = malloc(tsize * 8);
        if (!tab || bd_pread(s->node->file, tab, tsize * 8, toff) < 0) {
            free(tab);
            k->corrupt++;
            continue;
        }
        for (uint64_t j = 0; j < tsize; j++) {
            uint64_t d = bd_be64(tab + j * 8) & QCOW2_L1_OFFSET_MASK;
            if (!d)
                continue;
            if (ck_ptr_ok(k, d))
                ck_add(k, d, s->cluster_size);
            else
                k->corrupt++;
        }
        free(tab);
    }
    free(dir);
}

static int ck_count(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    int ret;

    /* where metadata lives, so that data pointers into it are caught */
    uint64_t table = 0;
    ck_mark(k, 0, cs, CK_FIXED);
    ck_mark(k, s->l1_off, (uint64_t)s->l1_entries * 8, CK_FIXED);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        ck_mark(k, s->snapshots[i].l1_off,
                (uint64_t)s->snapshots[i].l1_entries * 8, CK_FIXED);
        table += s->snapshots[i].entry_len;
    }
    if (s->nb_snapshots)
        ck_mark(k, s->h.snapshots_off, table, CK_FIXED);
    ck_mark(k, s->reftable_off, s->reftable_entries * 8, CK_FIXED);
    for (uint64_t bi = 0; bi < s->reftable_entries; bi++) {
        uint64_t e = s->reftable[bi];
        if (e && !(e & 0x1ff) && ck_ptr_ok(k, e))
            ck_mark(k, e, cs, CK_FIXED);
    }
    for (uint32_t i = 0; i < s->l1_entries; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1_OFFSET_MASK;
        if (l2 && ck_ptr_ok(k, l2) && !ck_is_meta(k, l2, cs, CK_FIXED))
            ck_mark(k, l2, cs, CK_L2);
    }

    ck_add(k, 0, cs);
    ret = ck_l1(k, s->l1, s->l1_entries, s->l1_off);
    if (ret < 0)
        return ret;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        uint64_t bytes = (uint64_t)sn->l1_entries * 8;
        if (!bytes)
            continue;
        if (!ck_ptr_ok(k, sn->l1_off) ||
            !ovf_range_ok(sn->l1_off, bytes, k->n << s->cluster_bits) ||
            bytes > QCOW2_MAX_L1_BYTES) {
            k->corrupt++;
            continue;
        }
        uint64_t *l1 = calloc(sn->l1_entries, 8);
        uint8_t *raw = malloc(bytes);
        ret = l1 && raw ? 0 : -ENOMEM;
        if (ret == 0)
            ret = bd_pread(s->node->file, raw, bytes, sn->l1_off);
        for (uint32_t j = 0; ret == 0 && j < sn->l1_entries; j++)
            l1[j] = bd_be64(raw + (uint64_t)j * 8);
        if (ret == 0)
            ret = ck_l1(k, l1, sn->l1_entries, sn->l1_off);
        free(l1);
        free(raw);
        if (ret < 0)
            return ret;
    }
    if (s->nb_snapshots)
        ck_add(k, s->h.snapshots_off, table);
    ck_add(k, s->reftable_off, s->reftable_entries * 8);
    for (uint64_t bi = 0; bi < s->reftable_entries; bi++) {
        uint64_t e = s->reftable[bi];
        uint64_t off = e & QCOW2_REFTABLE_OFFSET_MASK;
        if (!e)
            continue;
        if ((e & 0x1ff) || !ck_ptr_ok(k, off)) {
            k->corrupt++;
            k->need_rebuild = true;
            continue;
        }
        ck_add(k, off, cs);
    }
    ck_bitmaps(k);
    return 0;
}

/* Compare computed and stored refcounts, correcting them in place when
 * asked and possible. */
static int ck_compare(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    bool fix_leaks = k->fix & BD_CHECK_FIX_LEAKS;
    bool fix_err = k->fix & BD_CHECK_FIX_ERRORS;
    int ret;

    for (uint64_t bi = 0; (bi << s->rb_bits) < k->n; bi++) {
        uint64_t first = bi << s->rb_bits;
        uint64_t e = bi < s->reftable_entries ? s->reftable[bi] : 0;
        uint64_t off = e & QCOW2_REFTABLE_OFFSET_MASK;
        bool have = off && !(e & 0x1ff) && ck_ptr_ok(k, off);
        bool dirty = false;

        if (e && !have) {
            /* a damaged block: every used cluster it covers is unaccounted */
            for (uint64_t j = 0; j < s->rb_entries && first + j < k->n; j++)
                if (k->ref[first + j])
                    k->corrupt++;
            continue;
        }
        if (have) {
            ret = bd_pread(s->node->file, k->t, cs, off);
            if (ret < 0)
                return ret;
        }
        for (uint64_t j = 0; j < s->rb_entries && first + j < k->n; j++) {
            uint64_t c = first + j;
            uint64_t want = k->ref[c];
            uint64_t got = 0;
            if (have) {
                uint8_t *b = k->t;
                switch (s->refcount_order) {
                case 0: case 1: case 2: {
                    unsigned per = 8u >> s->refcount_order;
                    unsigned sh = (unsigned)(j % per) << s->refcount_order;
                    got = (b[j / per] >> sh) &
                          ((1u << (1u << s->refcount_order)) - 1);
                    break;
                }
                case 3: got = b[j]; break;
                case 4: got = bd_be16(b + j * 2); break;
                case 5: got = bd_be32(b + j * 4); break;
                default: got = bd_be64(b + j * 8); break;
                }
            }
            if (got == want)
                continue;
            if (want > s->refcount_max) {
                k->corrupt++;     /* more references than a refcount holds */
                continue;
            }
            if (got > want) {
                k->leaks++;
                if (!(fix_leaks || fix_err))
                    continue;
                qcow2_rb_write(s, k->t, j, want);
                dirty = true;
                k->leaks_fixed++;
            } else {
                k->corrupt++;
                if (!fix_err)
                    continue;
                if (!have) {
                    k->need_rebuild = true;
                    continue;
                }
                qcow2_rb_write(s, k->t, j, want);
                dirty = true;
                k->corrupt_fixed++;
            }
        }
        if (dirty) {
            qcow2_cache_discard(&s->rbc, off);
            ret = ck_write(k, k->t, cs, off);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

/* The stored refcount of cluster c through the cache; false when its
 * refcount block is damaged (counted as such already). */
static bool ck_rc(struct ck *k, uint64_t c, uint64_t *rc)
{
    struct qcow2_state *s = k->s;
    uint64_t bi = c >> s->rb_bits;

    *rc = 0;
    if (bi < s->reftable_entries) {
        uint64_t e = s->reftable[bi];
        uint64_t off = e & QCOW2_REFTABLE_OFFSET_MASK;
        if (e && ((e & 0x1ff) || off % s->cluster_size ||
                  off >= s->file_size))
            return false;
    }
    return qcow2_refcount_get(s, c, rc) == 0;
}

/* OFLAG_COPIED of the active tables must say "refcount is exactly 1",
 * judged against the stored refcounts once the repairs asked for are done
 * (as qemu-img check does). */
static int ck_copied(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    bool fix = k->fix & BD_CHECK_FIX_ERRORS;
    int ret;

    for (uint32_t i = 0; i < s->l1_entries; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1_OFFSET_MASK;
        uint64_t rc;
        if (!l2 || !ck_ptr_ok(k, l2))
            continue;
        uint64_t c = l2 >> s->cluster_bits;
        if (ck_rc(k, c, &rc) &&
            (rc == 1) != !!(s->l1[i] & QCOW2_OFLAG_COPIED)) {
            k->corrupt++;
            if (fix) {
                uint8_t b[8];
                s->l1[i] ^= QCOW2_OFLAG_COPIED;
                bd_put_be64(b, s->l1[i]);
                ret = ck_write(k, b, 8, s->l1_off + (uint64_t)i * 8);
                if (ret < 0)
                    return ret;
                k->corrupt_fixed++;
            }
        }
        ret = bd_pread(s->node->file, k->t, cs, l2);
        if (ret < 0)
            return ret;
        bool dirty = false;
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = qcow2_l2_get(s, k->t, j);
            uint64_t host = e & QCOW2_L2_OFFSET_MASK;
            if ((e & QCOW2_OFLAG_COMPRESSED) || !host || s->data_node ||
                !ck_ptr_ok(k, host))
                continue;
            c = host >> s->cluster_bits;
            if (!ck_rc(k, c, &rc) ||
                (rc == 1) == !!(e & QCOW2_OFLAG_COPIED))
                continue;
            k->corrupt++;
            if (fix) {
                qcow2_l2_set(s, k->t, j, e ^ QCOW2_OFLAG_COPIED,
                             qcow2_l2_get_bitmap(s, k->t, j));
                dirty = true;
                k->corrupt_fixed++;
            }
        }
        if (dirty) {
            qcow2_cache_discard(&s->l2c, l2);
            ret = ck_write(k, k->t, cs, l2);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

int qcow2_check(struct bd_node *n, unsigned fix, struct bd_check *res,
                struct bd_err *err)
{
    struct qcow2_state *s = n->state;
    uint64_t cs = s->cluster_size;
    struct ck k = { .s = s, .fix = s->read_only ? 0 : fix };
    int ret;

    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&s->meta_lock);
    if (!s->read_only) {
        ret = qcow2_meta_flush(s, true);
        if (ret < 0) {
            ret = bd_err_set(err, -ret, "%s: cannot write metadata: %s",
                             n->name, strerror(-ret));
            goto out;
        }
    }
    k.n = (s->file_size + cs - 1) / cs;
    k.ref = calloc(k.n ? k.n : 1, sizeof(*k.ref));
    k.meta = calloc(k.n ? k.n : 1, 1);
    k.t = malloc(cs);
    if (!k.ref || !k.meta || !k.t) {
        ret = bd_err_set(err, ENOMEM, "%s: out of memory for the check",
                         n->name);
        goto out;
    }
    ret = ck_count(&k);
    if (ret == 0 && k.wrote)
        ret = bd_flush(n->file);  /* dropped pointers before refcounts */
    if (ret == 0)
        ret = ck_compare(&k);
    if (ret == 0 && k.need_rebuild && (k.fix & BD_CHECK_FIX_ERRORS)) {
        /* the refcount structure itself is damaged: start afresh */
        ret = bd_flush(n->file);
        if (ret == 0)
            ret = qcow2_rebuild_refcounts(s, err);
        if (ret < 0)
            goto out;
        k.corrupt_fixed = k.corrupt;
        k.leaks_fixed = k.leaks;
        k.wrote = true;
    } else if (ret == 0 && k.wrote) {
        ret = bd_flush(n->file);
    }
    if (ret == 0)
        ret = ck_copied(&k);
    if (ret == 0 && k.wrote)
        ret = bd_flush(n->file);
    if (ret < 0) {
        ret = bd_err_set(err, -ret, "%s: check failed: %s", n->name,
                         strerror(-ret));
        goto out;
    }
    if (k.wrote)
        s->free_hint = 0;
    res->corruptions = k.corrupt - k.corrupt_fixed;
    res->corruptions_fixed = k.corrupt_fixed;
    res->leaks = k.leaks - k.leaks_fixed;
    res->leaks_fixed = k.leaks_fixed;
out:
    pthread_mutex_unlock(&s->meta_lock);
    free(k.ref);
    free(k.meta);
    free(k.t);
    return ret;
}
