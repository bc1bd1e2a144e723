/*
 * qcow2 zeroes and discard: whole clusters (or subclusters) get the zero
 * flag or lose their host cluster in the L2 table, unaligned edges are
 * written as zero bytes through write.c. Exclusive io_lock keeps requests
 * that mapped a cluster from landing in it after it is freed.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <stdlib.h>

enum zmode {
    Z_ZERO_KEEP,      /* zero flag, keep our own host cluster */
    Z_ZERO_UNMAP,     /* zero flag, free the host cluster */
    Z_UNALLOC,        /* entry cleared: backing (or zeroes) shows through */
};

/*
 * Change whole clusters (or whole subclusters with extended L2) of
 * [off, off+len), within one L2 table. Caller holds alloc_lock.
 */
static int zero_range(struct qcow2_state *s, uint64_t off, uint64_t len,
                      enum zmode mode, uint64_t *done)
{
    uint64_t cs = s->cluster_size;
    uint64_t c0 = off >> s->cluster_bits;
    uint64_t table_end = ((c0 >> s->l2_bits) + 1) << (s->l2_bits + s->cluster_bits);
    uint64_t end = off + len < table_end ? off + len : table_end;
    struct qcow2_release_list rel = { 0 };
    uint64_t idx;
    uint8_t *t;
    int ret;

    pthread_mutex_lock(&s->meta_lock);
    /* nothing to do where the range already reads as asked: above all, do
     * not allocate L2 tables to discard what was never written (mkfs
     * discards whole devices) */
    struct qcow2_extent cur;
    ret = qcow2_map_locked(s, s->l1, s->l1_entries, off, end - off, &cur);
    if (ret < 0)
        goto out_unlock;
    if (cur.len == end - off &&
        ((cur.type == QCOW2_UNALLOC &&
          (mode == Z_UNALLOC || !s->node->backing)) ||
         (cur.type == QCOW2_ZERO && mode != Z_UNALLOC && !cur.host))) {
        *done = end - off;
        goto out_unlock;
    }
    ret = qcow2_l2_for_write(s, off, &t, &idx);
    if (ret < 0)
        goto out_unlock;
    for (uint64_t g = off & ~(cs - 1); g < end; g += cs, idx++) {
        uint64_t entry = qcow2_l2_get(s, t, idx);
        uint64_t bitmap = qcow2_l2_get_bitmap(s, t, idx);
        uint64_t a = off > g ? off - g : 0;
        uint64_t b = end < g + cs ? end - g : cs;
        struct qcow2_extent e;
        bool full = a == 0 && b == cs;

        if (qcow2_l2_decode(s, entry, bitmap, g, &e) < 0) {
            ret = -EIO;
            goto out_unlock;
        }
        enum qcow2_old_kind k = qcow2_kind_of(s, &e, entry);
        bool keep = mode == Z_ZERO_KEEP && k == QCOW2_OLD_REUSE;
        if (s->ext_l2 && !full && e.type != QCOW2_COMPRESSED) {
            uint64_t m = qcow2_sc_mask((unsigned)(a >> s->sc_bits),
                                 (unsigned)(b >> s->sc_bits));
            uint64_t al = (bitmap & 0xffffffffull) & ~m;
            uint64_t ze = (bitmap >> 32) & ~m;
            if (mode != Z_UNALLOC)
                ze |= m;
            qcow2_l2_set(s, t, idx, entry, al | (ze << 32));
            continue;
        }
        if (!full)
            continue;       /* partial compressed cluster: caller writes */
        if (!keep) {
            ret = qcow2_release_old(s, &rel, &e, entry);
            if (ret < 0)
                goto out_unlock;
        }
        uint64_t nentry = keep ? (entry & (QCOW2_L2_OFFSET_MASK |
                                           QCOW2_OFLAG_COPIED)) : 0;
        if (s->ext_l2) {
            qcow2_l2_set(s, t, idx, nentry,
                         mode == Z_UNALLOC ? 0 : 0xffffffff00000000ull);
        } else {
            if (mode != Z_UNALLOC)
                nentry |= QCOW2_OFLAG_ZERO;
            qcow2_l2_set(s, t, idx, nentry, 0);
        }
    }
    qcow2_cache_mark_dirty(&s->l2c, s->l1[c0 >> s->l2_bits] & QCOW2_L1_OFFSET_MASK);
    ret = qcow2_release_all(s, &rel);
    *done = end - off;

out_unlock:
    pthread_mutex_unlock(&s->meta_lock);
    free(rel.off);
    return ret;
}

/*
 * Shrink: the whole clusters of [off, end) (off cluster aligned, end the
 * old size rounded up) lose their host clusters; a cluster a snapshot
 * still uses keeps its other references. Caller holds io_lock exclusively
 * and alloc_lock.
 */
int qcow2_unmap_tail(struct qcow2_state *s, uint64_t off, uint64_t end)
{
    while (off < end) {
        uint64_t done = 0;
        int ret = zero_range(s, off, end - off, Z_UNALLOC, &done);
        if (ret < 0)
            return ret;
        off += done;
    }
    return 0;
}

static int write_zero_bytes(struct qcow2_state *s, uint64_t len, uint64_t off)
{
    uint64_t chunk = len < (1u << 20) ? len : (1u << 20);
    uint8_t *z = calloc(1, chunk);
    int ret = 0;

    if (!z)
        return -ENOMEM;
    pthread_rwlock_rdlock(&s->io_lock);
    while (len && ret == 0) {
        uint64_t n = len < chunk ? len : chunk;
        ret = qcow2_write(s, z, n, off, 0);
        off += n;
        len -= n;
    }
    pthread_rwlock_unlock(&s->io_lock);
    free(z);
    return ret;
}

/* Apply mode to the aligned middle of [off, off+len); the unaligned edges
 * get zero bytes written when write_edges is set. */
static int zero_or_discard(struct qcow2_state *s, uint64_t len, uint64_t off,
                           enum zmode mode, bool write_edges)
{
    uint64_t g = s->cluster_size;
    uint64_t a = bd_align_up(off, g);
    uint64_t b = bd_align_down(off + len, g);
    int ret = 0;

    if (a >= b) {
        return write_edges ? write_zero_bytes(s, len, off) : 0;
    }
    if (write_edges && a > off) {
        ret = write_zero_bytes(s, a - off, off);
        if (ret < 0)
            return ret;
    }
    ret = qcow2_begin_writes(s);
    if (ret < 0)
        return ret;
    qcow2_bitmaps_mark(s, a, b - a);
    /* exclusive: requests that mapped these clusters finish first */
    pthread_rwlock_wrlock(&s->io_lock);
    for (uint64_t pos = a; pos < b;) {
        uint64_t done = 0;
        pthread_mutex_lock(&s->alloc_lock);
        ret = zero_range(s, pos, b - pos, mode, &done);
        pthread_mutex_unlock(&s->alloc_lock);
        if (ret < 0)
            break;
        pos += done;
    }
    pthread_rwlock_unlock(&s->io_lock);
    if (ret < 0)
        return ret;
    if (write_edges && off + len > b)
        return write_zero_bytes(s, off + len - b, b);
    return 0;
}

int qcow2_write_zeroes(struct qcow2_state *s, uint64_t len, uint64_t off,
                       unsigned flags)
{
    bool unmap = flags & BD_REQ_MAY_UNMAP;

    if (s->data_raw)        /* the data file must read as zeroes on its own */
        return write_zero_bytes(s, len, off);
    if (s->h.version >= 3 || s->ext_l2)
        return zero_or_discard(s, len, off, unmap ? Z_ZERO_UNMAP : Z_ZERO_KEEP,
                               true);
    if (!s->node->backing && unmap)
        return zero_or_discard(s, len, off, Z_UNALLOC, true);
    return write_zero_bytes(s, len, off);
}

int qcow2_discard_range(struct qcow2_state *s, uint64_t len, uint64_t off)
{
    if (s->data_raw)
        return 0;
    if (!s->node->backing)
        return zero_or_discard(s, len, off, Z_UNALLOC, false);
    if (s->h.version >= 3)
        return zero_or_discard(s, len, off, Z_ZERO_UNMAP, false);
    /* v2 with a backing file cannot say "zero": write zeroes instead */
    return write_zero_bytes(s, len, off);
}
