/*
 * qcow2 host cluster management: reading and changing refcounts, finding
 * free clusters, creating refcount blocks and growing the refcount table.
 * Everything here runs with meta_lock held. New refcount blocks and tables
 * are written and flushed before anything points at them; plain refcount
 * changes stay in the refcount cache until qcow2_refcounts_stable().
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

uint64_t qcow2_rb_read(const struct qcow2_state *s, const uint8_t *b,
                       uint64_t i)
{
    switch (s->refcount_order) {
    case 0: case 1: case 2: {
        unsigned per = 8u >> s->refcount_order;
        unsigned shift = (unsigned)(i % per) << s->refcount_order;
        return (b[i / per] >> shift) & ((1u << (1u << s->refcount_order)) - 1);
    }
    case 3: return b[i];
    case 4: return bd_be16(b + i * 2);
    case 5: return bd_be32(b + i * 4);
    default: return bd_be64(b + i * 8);
    }
}

void qcow2_rb_write(const struct qcow2_state *s, uint8_t *b, uint64_t i,
                    uint64_t v)
{
    switch (s->refcount_order) {
    case 0: case 1: case 2: {
        unsigned per = 8u >> s->refcount_order;
        unsigned shift = (unsigned)(i % per) << s->refcount_order;
        unsigned mask = ((1u << (1u << s->refcount_order)) - 1) << shift;
        b[i / per] = (uint8_t)((b[i / per] & ~mask) | ((unsigned)v << shift));
        break;
    }
    case 3: b[i] = (uint8_t)v; break;
    case 4: bd_put_be16(b + i * 2, (uint16_t)v); break;
    case 5: bd_put_be32(b + i * 4, (uint32_t)v); break;
    default: bd_put_be64(b + i * 8, v); break;
    }
}

/* The refcount block for block index bi, or NULL in *blk when none. */
static int load_block(struct qcow2_state *s, uint64_t bi, uint8_t **blk,
                      uint64_t *blk_off)
{
    *blk = NULL;
    *blk_off = 0;
    if (bi >= s->reftable_entries)
        return 0;
    uint64_t e = s->reftable[bi];
    uint64_t off = e & QCOW2_REFTABLE_OFFSET_MASK;
    if (!off)
        return 0;
    if ((e & 0x1ff) || off % s->cluster_size) {
        if (!s->io_errors++)
            log_err("%s: refcount table entry %llu is corrupt", s->node->name,
                    (unsigned long long)bi);
        return -EIO;
    }
    *blk_off = off;
    return qcow2_cache_get(&s->rbc, off, false, blk);
}

int qcow2_refcount_get(struct qcow2_state *s, uint64_t cluster, uint64_t *rc)
{
    uint8_t *blk;
    uint64_t boff;
    int ret = load_block(s, cluster >> s->rb_bits, &blk, &boff);

    *rc = 0;
    if (ret < 0)
        return ret;
    if (blk)
        *rc = qcow2_rb_read(s, blk, cluster & (s->rb_entries - 1));
    return 0;
}

static int write_reftable_entry(struct qcow2_state *s, uint64_t bi)
{
    uint8_t b[8];

    bd_put_be64(b, s->reftable[bi]);
    return bd_pwrite(s->node->file, b, 8, s->reftable_off + bi * 8, 0);
}

static void grow_file_size(struct qcow2_state *s, uint64_t end)
{
    if (end > s->file_size)
        s->file_size = end;
}

/*
 * Replace the refcount table by a larger one placed after everything the
 * old one covers, together with the refcount blocks that describe the new
 * table and themselves. New table and blocks are flushed before the header
 * points at them; the old table is freed afterwards.
 */
static int grow_reftable(struct qcow2_state *s, uint64_t need_bi)
{
    uint64_t cs = s->cluster_size;
    uint64_t cover_end = s->reftable_entries << s->rb_bits;
    uint64_t fe = (s->file_size + cs - 1) / cs;
    uint64_t p = cover_end > fe ? cover_end : fe;
    uint64_t entries = s->reftable_entries + s->reftable_entries / 2 + 1;
    uint64_t k, m, first_b, last_b;
    int ret;

    if (entries < need_bi + 1)
        entries = need_bi + 1;
    for (;;) {
        k = (entries * 8 + cs - 1) / cs;
        m = 0;
        for (;;) {
            first_b = p >> s->rb_bits;
            last_b = (p + k + m - 1) >> s->rb_bits;
            if (last_b - first_b + 1 == m)
                break;
            m = last_b - first_b + 1;
        }
        if (entries > last_b)
            break;
        entries = last_b + 1;
    }
    entries = k * cs / 8;
    if (k * cs > QCOW2_MAX_REFTABLE_BYTES ||
        ((p + k + m) << s->cluster_bits) >= QCOW2_MAX_HOST_OFFSET)
        return -ENOSPC;

    uint8_t *table = calloc(1, k * cs);
    uint8_t *blk = malloc(cs);
    if (!table || !blk) {
        ret = -ENOMEM;
        goto out_free;
    }
    for (uint64_t i = 0; i < s->reftable_entries; i++)
        bd_put_be64(table + i * 8, s->reftable[i]);
    for (uint64_t b = first_b; b <= last_b; b++) {
        uint64_t boff = (p + k + (b - first_b)) << s->cluster_bits;
        bd_put_be64(table + b * 8, boff);
        memset(blk, 0, cs);
        for (uint64_t c = p; c < p + k + m; c++) {
            if ((c >> s->rb_bits) == b)
                qcow2_rb_write(s, blk, c & (s->rb_entries - 1), 1);
        }
        qcow2_cache_discard(&s->rbc, boff);
        ret = bd_pwrite(s->node->file, blk, cs, boff, 0);
        if (ret < 0)
            goto out_free;
        grow_file_size(s, boff + cs);
    }
    ret = bd_pwrite(s->node->file, table, k * cs, p << s->cluster_bits, 0);
    if (ret < 0)
        goto out_free;
    grow_file_size(s, (p + k) << s->cluster_bits);
    ret = bd_flush(s->node->file);
    if (ret < 0)
        goto out_free;

    uint8_t hdr[12];
    bd_put_be64(hdr, p << s->cluster_bits);
    bd_put_be32(hdr + 8, (uint32_t)k);
    ret = bd_pwrite(s->node->file, hdr, sizeof(hdr), 48, 0);
    if (ret < 0)
        goto out_free;
    ret = bd_flush(s->node->file);
    if (ret < 0)
        goto out_free;

    uint64_t *native = calloc(entries, sizeof(uint64_t));
    if (!native) {
        ret = -ENOMEM;
        goto out_free;
    }
    for (uint64_t i = 0; i < entries; i++)
        native[i] = bd_be64(table + i * 8);
    uint64_t old_off = s->reftable_off;
    uint64_t old_clusters = (s->reftable_entries * 8 + cs - 1) / cs;
    free(s->reftable);
    s->reftable = native;
    s->reftable_entries = entries;
    s->reftable_off = p << s->cluster_bits;
    s->h.reftable_off = s->reftable_off;
    s->h.reftable_clusters = (uint32_t)k;
    ret = qcow2_refcount_update(s, old_off, old_clusters, -1);

out_free:
    free(table);
    free(blk);
    return ret;
}

/* Make sure refcount block bi exists; a new one describes itself and sits
 * at the first cluster it covers (free by definition: all its refcounts
 * are zero). */
static int ensure_block(struct qcow2_state *s, uint64_t bi)
{
    int ret;

    if (bi >= s->reftable_entries) {
        ret = grow_reftable(s, bi);
        if (ret < 0)
            return ret;
    }
    if (s->reftable[bi] & QCOW2_REFTABLE_OFFSET_MASK)
        return 0;
    uint64_t c0 = bi << s->rb_bits;
    uint64_t off = c0 << s->cluster_bits;
    if (c0 == 0 || off >= QCOW2_MAX_HOST_OFFSET)
        return c0 == 0 ? -EIO : -ENOSPC;
    uint8_t *blk;
    ret = qcow2_cache_get(&s->rbc, off, true, &blk);
    if (ret < 0)
        return ret;
    qcow2_rb_write(s, blk, 0, 1);
    ret = bd_pwrite(s->node->file, blk, s->cluster_size, off, 0);
    if (ret < 0) {
        qcow2_cache_discard(&s->rbc, off);
        return ret;
    }
    grow_file_size(s, off + s->cluster_size);
    ret = bd_flush(s->node->file);
    if (ret < 0)
        return ret;
    s->reftable[bi] = off;
    return write_reftable_entry(s, bi);
}

int qcow2_refcount_update(struct qcow2_state *s, uint64_t off, uint64_t count,
                          int delta)
{
    uint64_t c = off >> s->cluster_bits;
    int ret;

    for (uint64_t i = 0; i < count; i++, c++) {
        uint64_t bi = c >> s->rb_bits;
        uint8_t *blk;
        uint64_t boff;

        if (delta > 0) {
            ret = ensure_block(s, bi);
            if (ret < 0)
                return ret;
        }
        ret = load_block(s, bi, &blk, &boff);
        if (ret < 0)
            return ret;
        if (!blk)
            return -EIO;        /* decrement of a cluster nobody counted */
        uint64_t j = c & (s->rb_entries - 1);
        uint64_t v = qcow2_rb_read(s, blk, j);
        if (delta > 0 && v == s->refcount_max)
            return -ERANGE;
        if (delta < 0 && v == 0) {
            if (!s->io_errors++)
                log_err("%s: refcount of cluster %llu would drop below zero",
                        s->node->name, (unsigned long long)c);
            return -EIO;
        }
        qcow2_rb_write(s, blk, j, delta > 0 ? v + 1 : v - 1);
        qcow2_cache_mark_dirty(&s->rbc, boff);
        if (delta < 0 && v == 1 && c < s->free_hint)
            s->free_hint = c;
    }
    return 0;
}

static bool in_range(uint64_t c, uint64_t off, uint64_t bytes, uint32_t cb)
{
    uint64_t first = off >> cb;
    uint64_t last = (off + bytes + (1ull << cb) - 1) >> cb;
    return bytes && c >= first && c < last;
}

/* A free refcount on a cluster the header says is metadata means a damaged
 * image: never hand such a cluster out, or a write would destroy it. */
bool qcow2_is_metadata(const struct qcow2_state *s, uint64_t c)
{
    uint32_t cb = s->cluster_bits;

    if (c == 0)
        return true;
    if (s->x.crypt_len && in_range(c, s->x.crypt_off, s->x.crypt_len, cb))
        return true;
    if (in_range(c, s->h.l1_off, (uint64_t)s->h.l1_entries * 8, cb) ||
        in_range(c, s->reftable_off, s->reftable_entries * 8, cb))
        return true;
    for (uint32_t i = 0; i < s->nb_snapshots; i++)
        if (in_range(c, s->snapshots[i].l1_off,
                     (uint64_t)s->snapshots[i].l1_entries * 8, cb))
            return true;
    uint64_t table = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++)
        table += s->snapshots[i].entry_len;
    return in_range(c, s->h.snapshots_off, table, cb);
}

int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t count, uint64_t *off)
{
    uint64_t i = s->free_hint, run_start = i, run = 0;
    uint64_t first_free = UINT64_MAX;
    int ret;

    if (count == 0)
        return -EINVAL;
    while (run < count) {
        if ((i + 1) << s->cluster_bits > QCOW2_MAX_HOST_OFFSET)
            return -ENOSPC;
        uint64_t bi = i >> s->rb_bits;
        if (bi >= s->reftable_entries ||
            !(s->reftable[bi] & QCOW2_REFTABLE_OFFSET_MASK)) {
            ret = ensure_block(s, bi);
            if (ret < 0)
                return ret;
            run = 0;
        }
        uint8_t *blk;
        uint64_t boff;
        ret = load_block(s, bi, &blk, &boff);
        if (ret < 0)
            return ret;
        if (!blk)
            return -EIO;
        uint64_t end = (bi + 1) << s->rb_bits;
        for (; i < end && run < count; i++) {
            if (qcow2_rb_read(s, blk, i & (s->rb_entries - 1)) == 0 &&
                !qcow2_is_metadata(s, i)) {
                if (first_free == UINT64_MAX)
                    first_free = i;
                if (run++ == 0)
                    run_start = i;
            } else {
                run = 0;
            }
        }
    }
    ret = qcow2_refcount_update(s, run_start << s->cluster_bits, count, 1);
    if (ret < 0)
        return ret;
    s->free_hint = first_free < run_start ? first_free : run_start + count;
    *off = run_start << s->cluster_bits;
    return 0;
}

int qcow2_refcounts_stable(struct qcow2_state *s)
{
    int ret;

    if (!s->rbc.nb_dirty || s->lazy_refcounts)
        return 0;
    ret = qcow2_cache_writeback(&s->rbc);
    if (ret < 0)
        return ret;
    return bd_flush(s->node->file);
}
