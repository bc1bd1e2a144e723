/*
 * qcow2 guest writes: in place into clusters of our own, allocating runs of
 * new clusters with copy-on-write of the parts a request does not cover,
 * and compress=on writes; then flush. Zeroes and discard are zero.c's, and
 * the header update before the first write is header-write.c's. Lock
 * order: alloc_lock, then meta_lock; meta_lock is never held across data
 * I/O of the guest.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

/* A damaged L2 entry must not make a guest write land on the header or a
 * table: refuse it (QEMU's overlap check does the same). */
static int check_overlap(struct qcow2_state *s, uint64_t host, uint64_t len)
{
    if (s->data_node)
        return 0;
    uint64_t last = (host + len - 1) >> s->cluster_bits;
    for (uint64_t c = host >> s->cluster_bits; c <= last; c++) {
        if (qcow2_is_metadata(s, c)) {
            if (!s->io_errors++)
                log_err("%s: corrupt image: a data cluster overlaps metadata "
                        "at %llu; write refused (qemu-img check -r all)",
                        s->node->name, (unsigned long long)(c << s->cluster_bits));
            return -EIO;
        }
    }
    return 0;
}

#define MAX_ALLOC_BYTES (4u << 20)

/* One allocating step: a run of clusters in one L2 table. */
struct alloc_run {
    uint64_t off, end;            /* guest bytes from the request */
    uint64_t ws, we;              /* guest bytes written, with COW */
    uint64_t cl_start;            /* guest offset of the first cluster */
    uint64_t n;                   /* clusters in the run */
    uint64_t host;                /* host offset of the first cluster */
    enum qcow2_old_kind k0, klast; /* how the first and last are replaced */
};

/*
 * Classify the clusters from r->off on (at most want, entries from idx of
 * the L2 table t): a run of clusters that all get new host clusters, or one
 * cluster of our own. Returns 1 when the first cluster turned writable in
 * place meanwhile. meta_lock held.
 */
static int alloc_plan(struct qcow2_state *s, const uint8_t *t, uint64_t idx,
                      uint64_t len, uint64_t want, struct alloc_run *r)
{
    uint64_t c0 = r->off >> s->cluster_bits;
    uint64_t n;

    r->k0 = r->klast = QCOW2_OLD_FRESH;
    for (n = 0; n < want; n++) {
        struct qcow2_extent e;
        uint64_t entry = qcow2_l2_get(s, t, idx + n);
        uint64_t g = (c0 + n) << s->cluster_bits;
        if (qcow2_l2_decode(s, entry, qcow2_l2_get_bitmap(s, t, idx + n),
                            n ? g : r->off, &e) < 0)
            return -EIO;
        enum qcow2_old_kind k = qcow2_kind_of(s, &e, entry);
        if (n == 0) {
            if (k == QCOW2_OLD_REUSE && !s->ext_l2 && e.type == QCOW2_NORMAL)
                return 1;       /* became allocated: the caller writes in place */
            r->k0 = k;
            if (k == QCOW2_OLD_REUSE && s->ext_l2 && len > e.len) {
                /* stay inside the run of unallocated (or zero) subclusters:
                 * rounding into an allocated one would copy it back over
                 * a concurrent in-place write */
                len = e.len;
                want = 1;
            }
        } else if (k == QCOW2_OLD_REUSE || r->k0 == QCOW2_OLD_REUSE) {
            break;
        }
        r->klast = k;
        if (k == QCOW2_OLD_REUSE) {
            n = 1;
            break;
        }
    }
    r->n = n;
    r->cl_start = c0 << s->cluster_bits;
    uint64_t cl_end = r->cl_start + n * s->cluster_size;
    r->end = r->off + len < cl_end ? r->off + len : cl_end;
    return 0;
}

/* The host clusters of the run: our own, the external data file's (host =
 * guest offset), or newly allocated ones. meta_lock held. */
static int alloc_host(struct qcow2_state *s, const uint8_t *t, uint64_t idx,
                      struct alloc_run *r)
{
    if (r->k0 == QCOW2_OLD_REUSE) {
        r->host = qcow2_l2_get(s, t, idx) & QCOW2_L2_OFFSET_MASK;
        return check_overlap(s, r->host, s->cluster_size);
    }
    if (s->data_node) {
        r->host = r->cl_start;
        return 0;
    }
    return qcow2_alloc_clusters(s, r->n, &r->host);
}

/* Write the request's bytes of the run, rounded out to whole clusters (or
 * subclusters) with the uncovered parts copied from the current contents:
 * guest [ws, we) lands at host + (ws - cl_start). No lock held. */
static int alloc_write_data(struct qcow2_state *s, const uint8_t *buf,
                            struct alloc_run *r)
{
    uint64_t cs = s->cluster_size;
    uint64_t off = r->off, end = r->end;
    uint64_t cl_end = r->cl_start + r->n * cs;
    uint64_t gh = (s->ext_l2 && r->k0 != QCOW2_OLD_FULLCOW) ? s->sc_size : cs;
    uint64_t gt = (s->ext_l2 && r->klast != QCOW2_OLD_FULLCOW) ? s->sc_size : cs;
    uint64_t ws = bd_align_down(off, gh);
    uint64_t we = bd_align_up(end, gt);
    int ret;

    if (we > cl_end)
        we = cl_end;
    r->ws = ws;
    r->we = we;
    if (ws == off && we == end)
        return qcow2_write_data(s, buf, we - ws, r->host + (ws - r->cl_start),
                                ws);
    uint8_t *b = malloc(we - ws);
    if (!b)
        return -ENOMEM;
    ret = 0;
    if (off > ws)
        ret = qcow2_read(s, b, off - ws, ws);
    if (ret == 0 && we > end)
        ret = qcow2_read(s, b + (end - ws), we - end, end);
    if (ret == 0) {
        memcpy(b + (off - ws), buf, end - off);
        ret = qcow2_write_data(s, b, we - ws, r->host + (ws - r->cl_start), ws);
    }
    free(b);
    return ret;
}

/* Point the run's L2 entries at the new data; the references the replaced
 * entries held go to rel. meta_lock held. */
static int alloc_point(struct qcow2_state *s, const struct alloc_run *r,
                       struct qcow2_release_list *rel)
{
    uint64_t cs = s->cluster_size;
    uint64_t idx;
    uint8_t *t;
    int ret = qcow2_l2_for_write(s, r->off, &t, &idx);

    if (ret < 0)
        return ret;
    for (uint64_t i = 0; i < r->n; i++) {
        uint64_t g = r->cl_start + i * cs;
        uint64_t entry = qcow2_l2_get(s, t, idx + i);
        uint64_t bitmap = qcow2_l2_get_bitmap(s, t, idx + i);
        struct qcow2_extent e;
        uint64_t a = r->ws > g ? r->ws - g : 0;
        uint64_t b = r->we < g + cs ? r->we - g : cs;

        if (qcow2_l2_decode(s, entry, bitmap, g, &e) < 0)
            return -EIO;
        enum qcow2_old_kind k = qcow2_kind_of(s, &e, entry);
        if (k == QCOW2_OLD_FULLCOW) {
            ret = qcow2_release_old(s, rel, &e, entry);
            if (ret < 0)
                return ret;
        }
        uint64_t nbitmap = 0;
        if (s->ext_l2) {
            if (k == QCOW2_OLD_FULLCOW) {
                nbitmap = 0xffffffffull;
            } else {
                uint64_t m = qcow2_sc_mask((unsigned)(a >> s->sc_bits),
                                           (unsigned)(b >> s->sc_bits));
                uint64_t al = (bitmap & 0xffffffffull) | m;
                uint64_t ze = (bitmap >> 32) & ~m;
                nbitmap = al | (ze << 32);
            }
        }
        qcow2_l2_set(s, t, idx + i, (r->host + i * cs) | QCOW2_OFLAG_COPIED,
                     nbitmap);
    }
    qcow2_cache_mark_dirty(&s->l2c,
                           s->l1[(r->off >> s->cluster_bits) >> s->l2_bits] &
                               QCOW2_L1_OFFSET_MASK);
    return 0;
}

/*
 * One allocating step at guest off (not in place): picks a run of clusters
 * in one L2 table, writes data with copy-on-write of the uncovered parts,
 * then points the L2 entries at it. *done gets the guest bytes consumed
 * (0 when the cluster turned writable in place meanwhile). alloc_lock held.
 */
static int alloc_write(struct qcow2_state *s, const uint8_t *buf, uint64_t len,
                       uint64_t off, uint64_t *done)
{
    uint64_t cs = s->cluster_size;
    uint64_t c0 = off >> s->cluster_bits;
    uint64_t table_left = s->l2_entries - (c0 & (s->l2_entries - 1));
    uint64_t want = (((off & (cs - 1)) + len + cs - 1) >> s->cluster_bits);
    uint64_t max_n = MAX_ALLOC_BYTES / cs ? MAX_ALLOC_BYTES / cs : 1;
    struct qcow2_release_list rel = { 0 };
    struct alloc_run r = { .off = off };
    uint64_t idx;
    uint8_t *t;
    int ret;

    *done = 0;
    if (want > table_left)
        want = table_left;
    if (want > max_n)
        want = max_n;

    pthread_mutex_lock(&s->meta_lock);
    ret = qcow2_l2_for_write(s, off, &t, &idx);
    if (ret == 0)
        ret = alloc_plan(s, t, idx, len, want, &r);
    if (ret == 0)
        ret = alloc_host(s, t, idx, &r);
    pthread_mutex_unlock(&s->meta_lock);
    if (ret != 0)
        return ret < 0 ? ret : 0;

    ret = alloc_write_data(s, buf, &r);
    if (ret < 0)
        return ret;     /* allocated clusters leak: acceptable, not corrupt */
    qcow2_grow_known(qcow2_data_end(s), r.host + (r.we - r.cl_start));

    pthread_mutex_lock(&s->meta_lock);
    ret = alloc_point(s, &r, &rel);
    if (ret == 0)
        ret = qcow2_release_all(s, &rel);
    if (ret == 0)
        *done = r.end - off;
    pthread_mutex_unlock(&s->meta_lock);
    free(rel.off);
    return ret;
}

/*
 * compress=on: one whole guest cluster that has no host cluster yet is
 * stored compressed, packed after the previous compressed data (every
 * host cluster it touches gains a reference, as the spec counts them).
 * Returns 1 when written compressed, 0 when the caller must write it the
 * normal way (not compressible, or the cluster has data meanwhile).
 */
static int compressed_write(struct qcow2_state *s, const uint8_t *buf,
                            uint64_t off)
{
    uint64_t cs = s->cluster_size;
    uint8_t *c = malloc(cs);
    struct qcow2_extent e;
    uint64_t idx, host, entry;
    uint8_t *t;
    int ret;

    if (!c)
        return -ENOMEM;
    ssize_t n = qcow2_compress(s->h.compression_type, buf, cs, c, cs - 512);
    if (n < 0) {
        free(c);
        return n == -ENOSPC ? 0 : (int)n;
    }
    pthread_mutex_lock(&s->alloc_lock);
    pthread_mutex_lock(&s->meta_lock);
    ret = qcow2_l2_for_write(s, off, &t, &idx);
    if (ret < 0)
        goto out_unlock;
    entry = qcow2_l2_get(s, t, idx);
    ret = qcow2_l2_decode(s, entry, qcow2_l2_get_bitmap(s, t, idx), off, &e);
    if (ret < 0 || qcow2_kind_of(s, &e, entry) != QCOW2_OLD_FRESH ||
        (s->ext_l2 && qcow2_l2_get_bitmap(s, t, idx))) {
        ret = ret < 0 ? -EIO : 0;
        goto out_unlock;
    }
    if (s->cpack_off && s->cpack_off + (uint64_t)n <= s->cpack_end) {
        host = s->cpack_off;
        ret = qcow2_refcount_update(s, host & ~(cs - 1), 1, 1);
    } else {
        /* n < cs: one more cluster is enough; when it follows the packing
         * cluster the data may straddle both (the spec allows it) */
        uint64_t fresh;
        ret = qcow2_alloc_clusters(s, 1, &fresh);
        if (ret < 0)
            goto out_unlock;
        host = fresh;
        if (s->cpack_off && fresh == s->cpack_end) {
            host = s->cpack_off;
            ret = qcow2_refcount_update(s, host & ~(cs - 1), 1, 1);
        }
        s->cpack_end = fresh + cs;
    }
    if (ret < 0)
        goto out_unlock;
    s->cpack_off = bd_align_up(host + (uint64_t)n, 512);
    if (s->cpack_off >= s->cpack_end)
        s->cpack_off = 0;
    /* data before the L2 entry; the meta lock keeps the packing order */
    ret = bd_pwrite(s->node->file, c, (uint64_t)n, host, 0);
    if (ret < 0)
        goto out_unlock;
    qcow2_grow_known(&s->file_size, host + (uint64_t)n);
    unsigned x = 62 - (s->cluster_bits - 8);
    uint64_t nsec = ((host + (uint64_t)n - 1) >> 9) - (host >> 9);
    ret = qcow2_l2_for_write(s, off, &t, &idx);
    if (ret < 0)
        goto out_unlock;
    qcow2_l2_set(s, t, idx, QCOW2_OFLAG_COMPRESSED | (nsec << x) | host, 0);
    qcow2_cache_mark_dirty(&s->l2c, s->l1[(off >> s->cluster_bits) >> s->l2_bits]
                                        & QCOW2_L1_OFFSET_MASK);
    ret = 1;

out_unlock:
    pthread_mutex_unlock(&s->meta_lock);
    pthread_mutex_unlock(&s->alloc_lock);
    free(c);
    return ret;
}

int qcow2_write(struct qcow2_state *s, const void *buf, uint64_t len,
                uint64_t off, unsigned flags)
{
    const uint8_t *p = buf;
    int ret;

    ret = qcow2_begin_writes(s);
    if (ret < 0)
        return ret;
    qcow2_bitmaps_mark(s, off, len);
    while (len) {
        struct qcow2_extent e;
        ret = qcow2_map(s, off, len, &e);
        if (ret < 0)
            return ret;
        if (e.type == QCOW2_NORMAL && e.copied) {
            ret = check_overlap(s, e.host, e.len);
            if (ret == 0)
                ret = qcow2_write_data(s, p, e.len, e.host, off);
            if (ret < 0)
                return ret;
            qcow2_grow_known(qcow2_data_end(s), e.host + e.len);
            p += e.len;
            off += e.len;
            len -= e.len;
            continue;
        }
        uint64_t done;
        if (s->compress_writes && !s->data_node &&
            !(off & (s->cluster_size - 1)) && len >= s->cluster_size &&
            (e.type == QCOW2_UNALLOC || e.type == QCOW2_ZERO)) {
            ret = compressed_write(s, p, off);
            if (ret < 0)
                return ret;
            if (ret == 1) {
                p += s->cluster_size;
                off += s->cluster_size;
                len -= s->cluster_size;
                continue;
            }
        }
        pthread_mutex_lock(&s->alloc_lock);
        ret = alloc_write(s, p, len, off, &done);
        pthread_mutex_unlock(&s->alloc_lock);
        if (ret < 0)
            return ret;
        p += done;
        off += done;
        len -= done;
    }
    if (flags & BD_REQ_FUA)
        return qcow2_flush_all(s);
    return 0;
}

int qcow2_flush_all(struct qcow2_state *s)
{
    int ret;

    if (s->read_only)
        return 0;
    pthread_mutex_lock(&s->meta_lock);
    ret = qcow2_meta_flush(s, false);
    pthread_mutex_unlock(&s->meta_lock);
    if (ret < 0)
        return ret;
    /* the last flush orders nothing: lookups need not wait for it */
    ret = bd_flush(s->node->file);
    if (ret == 0 && s->data_node)
        ret = bd_flush(s->data_node);
    return ret;
}
