/*
 * qcow2 guest I/O: reads (coalescing contiguous host ranges, decompressing,
 * falling through to the backing), writes in place or with allocation and
 * copy-on-write, zeroes, discard and block status. Lock order: alloc_lock,
 * then meta_lock; meta_lock is never held across data I/O of the guest.
 */
#include "qcow2.h"
#include "overflow.h"

#include <stdlib.h>
#include <string.h>

static int check_overlap(struct qcow2_state *s, uint64_t host, uint64_t len);

static uint64_t known_size(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void grow_known(uint64_t *p, uint64_t end)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (end > cur &&
           !__atomic_compare_exchange_n(p, &cur, end, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
}

static uint64_t *size_of_data(struct qcow2_state *s)
{
    return s->data_node ? &s->data_size : &s->file_size;
}

/* Read host data; bytes past the known end of the file read as zeroes. */
static int read_host(struct qcow2_state *s, void *buf, uint64_t len,
                     uint64_t host)
{
    uint64_t end = known_size(size_of_data(s));
    uint64_t n = host >= end ? 0 : (end - host < len ? end - host : len);
    int ret = 0;

    if (n)
        ret = bd_pread(s->data, buf, n, host);
    if (n < len)
        memset((uint8_t *)buf + n, 0, len - n);
    return ret;
}

static int read_backing(struct qcow2_state *s, void *buf, uint64_t len,
                        uint64_t off)
{
    struct bd_node *b = s->node->backing;
    uint64_t n = 0;
    int ret = 0;

    if (b && off < s->backing_size)
        n = s->backing_size - off < len ? s->backing_size - off : len;
    if (n)
        ret = bd_pread(b, buf, n, off);
    if (n < len)
        memset((uint8_t *)buf + n, 0, len - n);
    return ret;
}

static int read_compressed(struct qcow2_state *s, const struct qcow2_extent *e,
                           uint8_t *out)
{
    uint64_t fsize = known_size(&s->file_size);
    uint64_t csize = e->csize;
    uint8_t *cbuf;
    int ret;

    if (e->host >= fsize) {
        if (!s->io_errors++)
            log_err("%s: compressed cluster at %llu lies beyond the end of "
                    "the file", s->node->name, (unsigned long long)e->host);
        return -EIO;
    }
    if (csize > fsize - e->host)
        csize = fsize - e->host;
    cbuf = malloc(csize);
    if (!cbuf)
        return -ENOMEM;
    ret = bd_pread(s->node->file, cbuf, csize, e->host);
    if (ret == 0) {
        ret = qcow2_decompress(s->h.compression_type, cbuf, csize, out,
                               s->cluster_size);
        if (ret == -EIO && !s->io_errors++)
            log_err("%s: compressed cluster at %llu does not decompress",
                    s->node->name, (unsigned long long)e->host);
    }
    free(cbuf);
    return ret;
}

/* Compressed clusters of one request, decompressed after the walk, by the
 * calling thread and (for several) a helper thread in parallel. */
struct cjob {
    struct qcow2_extent e;
    uint8_t *dst;
    uint64_t skip;              /* bytes of the cluster before dst's part */
};

struct cjobs {
    struct qcow2_state *s;
    struct cjob *v;
    size_t n, cap;
    size_t first, end;          /* slice for one thread */
    int ret;
};

static int cjob_add(struct cjobs *j, const struct qcow2_extent *e, uint8_t *dst,
                    uint64_t skip)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 16;
        struct cjob *v = realloc(j->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        j->v = v;
        j->cap = cap;
    }
    j->v[j->n].e = *e;
    j->v[j->n].dst = dst;
    j->v[j->n].skip = skip;
    j->n++;
    return 0;
}

static void *cjobs_run(void *arg)
{
    struct cjobs *j = arg;
    uint8_t *cl = malloc(j->s->cluster_size);

    j->ret = cl ? 0 : -ENOMEM;
    for (size_t i = j->first; i < j->end && j->ret == 0; i++) {
        struct cjob *c = &j->v[i];
        j->ret = read_compressed(j->s, &c->e, cl);
        if (j->ret == 0)
            memcpy(c->dst, cl + c->skip, c->e.len);
    }
    free(cl);
    return NULL;
}

static int cjobs_finish(struct cjobs *j)
{
    struct cjobs half;
    pthread_t t;
    bool helper = false;

    if (!j->n)
        return 0;
    j->first = 0;
    j->end = j->n;
    if (j->n >= 4) {
        half = *j;
        half.first = j->n / 2;
        j->end = j->n / 2;
        helper = pthread_create(&t, NULL, cjobs_run, &half) == 0;
        if (!helper)
            j->end = j->n;
    }
    cjobs_run(j);
    if (helper) {
        pthread_join(t, NULL);
        if (j->ret == 0)
            j->ret = half.ret;
    }
    return j->ret;
}

int qcow2_read(struct qcow2_state *s, void *buf, uint64_t len, uint64_t off)
{
    uint8_t *p = buf;
    uint8_t *pend_buf = NULL;
    uint64_t pend_host = 0, pend_len = 0;
    struct cjobs cj = { .s = s };
    int ret = 0;

    /* guest bytes past the virtual size (a snapshot's own size) are zero */
    if (off >= s->size) {
        memset(buf, 0, len);
        return 0;
    }
    if (len > s->size - off) {
        memset(p + (s->size - off), 0, len - (s->size - off));
        len = s->size - off;
    }
    while (len) {
        struct qcow2_extent e;
        ret = qcow2_map(s, off, len, &e);
        if (ret < 0)
            break;
        if (e.type == QCOW2_NORMAL && pend_len &&
            pend_host + pend_len == e.host && pend_buf + pend_len == p) {
            pend_len += e.len;
        } else {
            if (pend_len) {
                ret = read_host(s, pend_buf, pend_len, pend_host);
                pend_len = 0;
                if (ret < 0)
                    break;
            }
            switch (e.type) {
            case QCOW2_NORMAL:
                pend_buf = p;
                pend_host = e.host;
                pend_len = e.len;
                break;
            case QCOW2_ZERO:
                memset(p, 0, e.len);
                break;
            case QCOW2_UNALLOC:
                ret = read_backing(s, p, e.len, off);
                break;
            case QCOW2_COMPRESSED:
                ret = cjob_add(&cj, &e, p, off - e.coff);
                break;
            }
            if (ret < 0)
                break;
        }
        p += e.len;
        off += e.len;
        len -= e.len;
    }
    if (ret == 0 && pend_len)
        ret = read_host(s, pend_buf, pend_len, pend_host);
    if (ret == 0)
        ret = cjobs_finish(&cj);
    free(cj.v);
    return ret;
}

/* ---- header fields patched in place ------------------------------------ */

int qcow2_header_write_u64(struct qcow2_state *s, uint64_t field_off,
                           uint64_t val)
{
    uint8_t b[8];
    int ret;

    bd_put_be64(b, val);
    ret = bd_pwrite(s->node->file, b, 8, field_off, 0);
    if (ret < 0)
        return ret;
    return bd_flush(s->node->file);
}

/* Before the first change: clear autoclear bits we do not maintain, and
 * mark the image dirty (v3). Caller holds alloc_lock. */
static int prepare_write(struct qcow2_state *s)
{
    int ret;

    if (s->writes_started)
        return 0;
    if (s->read_only)
        return -EROFS;
    if (s->h.version >= 3) {
        uint64_t keep = s->h.autoclear & QCOW2_AUTOCLEAR_DATA_RAW;
        /* bitmaps we can keep up to date stay valid, as with QEMU */
        if ((s->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS) &&
            (!s->x.has_bitmaps || qcow2_bitmaps_load(s) == 0))
            keep |= QCOW2_AUTOCLEAR_BITMAPS;
        if (keep != s->h.autoclear) {
            bool bitmaps = s->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS;
            ret = qcow2_header_write_u64(s, 88, keep);
            if (ret < 0)
                return ret;
            s->h.autoclear = keep;
            /* the bitmaps are now inconsistent for everyone (the spec's
             * rule for programs that do not update them): their clusters
             * would only leak */
            if (bitmaps) {
                pthread_mutex_lock(&s->meta_lock);
                ret = qcow2_free_bitmaps(s);
                pthread_mutex_unlock(&s->meta_lock);
                if (ret < 0)
                    return ret;
            }
        }
        /* the dirty bit doubles as an "open for writing" mark: after a
         * crash the next read-write open rebuilds the refcounts, so leaked
         * clusters do not survive (QEMU does the same on a dirty image) */
        if (!(s->h.incompat & QCOW2_INCOMPAT_DIRTY)) {
            ret = qcow2_header_write_u64(s, 72,
                                         s->h.incompat | QCOW2_INCOMPAT_DIRTY);
            if (ret < 0)
                return ret;
            s->h.incompat |= QCOW2_INCOMPAT_DIRTY;
        }
    }
    __atomic_store_n(&s->writes_started, true, __ATOMIC_RELEASE);
    return 0;
}

/* ---- allocating writes ------------------------------------------------- */

enum old_kind {
    K_REUSE,      /* host cluster of our own (refcount 1): write into it */
    K_FRESH,      /* no host cluster: other subclusters keep their state */
    K_FULLCOW,    /* compressed or shared: new cluster, whole-cluster COW */
};

static enum old_kind kind_of(const struct qcow2_state *s,
                             const struct qcow2_extent *e, uint64_t entry)
{
    if (e->type == QCOW2_COMPRESSED)
        return K_FULLCOW;
    uint64_t host = entry & QCOW2_L2_OFFSET_MASK;
    bool has_host = host || (s->data_node && (entry & QCOW2_OFLAG_COPIED));
    if (!has_host)
        return K_FRESH;
    if (entry & QCOW2_OFLAG_COPIED)
        return K_REUSE;
    return K_FULLCOW;
}

static uint64_t sc_mask(unsigned a, unsigned b)
{
    /* bits a..b-1 set, 0 <= a < b <= 32 */
    uint64_t m = (b >= 32 ? 0xffffffffull : ((1ull << b) - 1));
    return m & ~((1ull << a) - 1);
}

struct release_list {
    uint64_t *off;
    size_t n, cap;
};

static int release_add(struct release_list *r, uint64_t off)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        uint64_t *p = realloc(r->off, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        r->off = p;
        r->cap = cap;
    }
    r->off[r->n++] = off;
    return 0;
}

/* Clusters an old entry holds a reference to (compressed data may span two) */
static int release_old(struct qcow2_state *s, struct release_list *r,
                       const struct qcow2_extent *e, uint64_t entry)
{
    int ret = 0;

    if (e->type == QCOW2_COMPRESSED) {
        uint64_t first = e->host & ~(s->cluster_size - 1);
        uint64_t last = (e->host + e->csize - 1) & ~(s->cluster_size - 1);
        for (uint64_t c = first; c <= last && ret == 0; c += s->cluster_size)
            ret = release_add(r, c);
        return ret;
    }
    uint64_t host = entry & QCOW2_L2_OFFSET_MASK;
    if (host && !s->data_node)
        ret = release_add(r, host);
    return ret;
}

/* After the L2 changes hit the disk, drop the old references. */
static int release_all(struct qcow2_state *s, struct release_list *r)
{
    int ret = 0;

    if (r->n) {
        ret = qcow2_meta_flush(s, true);
        for (size_t i = 0; i < r->n && ret == 0; i++)
            ret = qcow2_release_cluster(s, r->off[i]);
    }
    free(r->off);
    r->off = NULL;
    r->n = r->cap = 0;
    return ret;
}

#define MAX_ALLOC_BYTES (4u << 20)

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
    struct release_list rel = { 0 };
    enum old_kind k0, klast;
    uint64_t idx, host, n = 0;
    uint8_t *t;
    int ret;

    *done = 0;
    if (want > table_left)
        want = table_left;
    if (want > max_n)
        want = max_n;

    pthread_mutex_lock(&s->meta_lock);
    ret = qcow2_l2_for_write(s, off, &t, &idx);
    if (ret < 0)
        goto out_unlock;
    /* classify the clusters of the run */
    klast = K_FRESH;
    k0 = K_FRESH;
    for (n = 0; n < want; n++) {
        struct qcow2_extent e;
        uint64_t entry = qcow2_l2_get(s, t, idx + n);
        uint64_t g = (c0 + n) << s->cluster_bits;
        ret = qcow2_l2_decode(s, entry, qcow2_l2_get_bitmap(s, t, idx + n),
                              n ? g : off, &e);
        if (ret < 0) {
            ret = -EIO;
            goto out_unlock;
        }
        enum old_kind k = kind_of(s, &e, entry);
        if (n == 0) {
            if (k == K_REUSE && !s->ext_l2 && e.type == QCOW2_NORMAL) {
                ret = 0;        /* became allocated: the caller writes in place */
                goto out_unlock;
            }
            k0 = k;
            if (k == K_REUSE && s->ext_l2 && len > e.len) {
                /* stay inside the run of unallocated (or zero) subclusters:
                 * rounding into an allocated one would copy it back over
                 * a concurrent in-place write */
                len = e.len;
                want = 1;
            }
        } else if (k == K_REUSE || k0 == K_REUSE) {
            break;
        }
        klast = k;
        if (k == K_REUSE) {
            n = 1;
            break;
        }
    }

    uint64_t cl_start = c0 << s->cluster_bits;
    uint64_t cl_end = cl_start + n * cs;
    if (k0 == K_REUSE) {
        host = qcow2_l2_get(s, t, idx) & QCOW2_L2_OFFSET_MASK;
        ret = check_overlap(s, host, s->cluster_size);
        if (ret < 0)
            goto out_unlock;
    } else if (s->data_node) {
        host = cl_start;        /* external data file: host = guest offset */
    } else {
        ret = qcow2_alloc_clusters(s, n, &host);
        if (ret < 0)
            goto out_unlock;
    }
    pthread_mutex_unlock(&s->meta_lock);

    /* data: guest range [ws, we) lands at host + (ws - cl_start) */
    uint64_t end = off + len < cl_end ? off + len : cl_end;
    uint64_t gh = (s->ext_l2 && k0 != K_FULLCOW) ? s->sc_size : cs;
    uint64_t gt = (s->ext_l2 && klast != K_FULLCOW) ? s->sc_size : cs;
    uint64_t ws = bd_align_down(off, gh);
    uint64_t we = bd_align_up(end, gt);
    if (we > cl_end)
        we = cl_end;
    if (ws == off && we == end) {
        ret = bd_pwrite(s->data, buf, we - ws, host + (ws - cl_start), 0);
    } else {
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
            ret = bd_pwrite(s->data, b, we - ws, host + (ws - cl_start), 0);
        }
        free(b);
    }
    if (ret < 0)
        return ret;     /* allocated clusters leak: acceptable, not corrupt */
    grow_known(size_of_data(s), host + (we - cl_start));

    /* metadata: point the entries at the new data */
    pthread_mutex_lock(&s->meta_lock);
    ret = qcow2_l2_for_write(s, off, &t, &idx);
    if (ret < 0)
        goto out_unlock;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t g = cl_start + i * cs;
        uint64_t entry = qcow2_l2_get(s, t, idx + i);
        uint64_t bitmap = qcow2_l2_get_bitmap(s, t, idx + i);
        struct qcow2_extent e;
        uint64_t a = ws > g ? ws - g : 0;
        uint64_t b = we < g + cs ? we - g : cs;

        if (qcow2_l2_decode(s, entry, bitmap, g, &e) < 0) {
            ret = -EIO;
            goto out_unlock;
        }
        enum old_kind k = kind_of(s, &e, entry);
        if (k == K_FULLCOW) {
            ret = release_old(s, &rel, &e, entry);
            if (ret < 0)
                goto out_unlock;
        }
        uint64_t nbitmap = 0;
        if (s->ext_l2) {
            if (k == K_FULLCOW) {
                nbitmap = 0xffffffffull;
            } else {
                uint64_t m = sc_mask((unsigned)(a >> s->sc_bits),
                                     (unsigned)(b >> s->sc_bits));
                uint64_t al = (bitmap & 0xffffffffull) | m;
                uint64_t ze = (bitmap >> 32) & ~m;
                nbitmap = al | (ze << 32);
            }
        }
        qcow2_l2_set(s, t, idx + i, (host + i * cs) | QCOW2_OFLAG_COPIED,
                     nbitmap);
    }
    qcow2_cache_mark_dirty(&s->l2c, s->l1[(off >> s->cluster_bits) >> s->l2_bits]
                                        & QCOW2_L1_OFFSET_MASK);
    ret = release_all(s, &rel);
    if (ret == 0)
        *done = end - off;

out_unlock:
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
    if (ret < 0 || kind_of(s, &e, entry) != K_FRESH ||
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
    grow_known(&s->file_size, host + (uint64_t)n);
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

int qcow2_write(struct qcow2_state *s, const void *buf, uint64_t len,
                uint64_t off, unsigned flags)
{
    const uint8_t *p = buf;
    int ret;

    if (!__atomic_load_n(&s->writes_started, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&s->alloc_lock);
        ret = prepare_write(s);
        pthread_mutex_unlock(&s->alloc_lock);
        if (ret < 0)
            return ret;
    }
    qcow2_bitmaps_mark(s, off, len);
    while (len) {
        struct qcow2_extent e;
        ret = qcow2_map(s, off, len, &e);
        if (ret < 0)
            return ret;
        if (e.type == QCOW2_NORMAL && e.copied) {
            ret = check_overlap(s, e.host, e.len);
            if (ret == 0)
                ret = bd_pwrite(s->data, p, e.len, e.host, 0);
            if (ret < 0)
                return ret;
            grow_known(size_of_data(s), e.host + e.len);
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

/* ---- zeroes and discard ------------------------------------------------ */

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
    struct release_list rel = { 0 };
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
        enum old_kind k = kind_of(s, &e, entry);
        bool keep = mode == Z_ZERO_KEEP && k == K_REUSE;
        if (s->ext_l2 && !full && e.type != QCOW2_COMPRESSED) {
            uint64_t m = sc_mask((unsigned)(a >> s->sc_bits),
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
            ret = release_old(s, &rel, &e, entry);
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
    ret = release_all(s, &rel);
    *done = end - off;

out_unlock:
    pthread_mutex_unlock(&s->meta_lock);
    free(rel.off);
    return ret;
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
    if (!__atomic_load_n(&s->writes_started, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&s->alloc_lock);
        ret = prepare_write(s);
        pthread_mutex_unlock(&s->alloc_lock);
        if (ret < 0)
            return ret;
    }
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

/* ---- block status ------------------------------------------------------- */

int qcow2_status(struct qcow2_state *s, uint64_t off, uint64_t len,
                 uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct qcow2_extent e;
    int ret;

    if (off >= s->size) {
        *pnum = len;
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        return 0;
    }
    if (len > s->size - off)
        len = s->size - off;
    ret = qcow2_map(s, off, len, &e);
    if (ret < 0)
        return ret;
    *pnum = e.len;
    *map = 0;
    switch (e.type) {
    case QCOW2_UNALLOC:
        *status = 0;
        break;
    case QCOW2_ZERO:
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        break;
    case QCOW2_NORMAL:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        if (!s->data_node) {
            *status |= BD_STATUS_OFFSET;
            *map = e.host;
        }
        break;
    case QCOW2_COMPRESSED:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        break;
    }
    return 0;
}

/* ---- resize ------------------------------------------------------------- */

static int grow_l1(struct qcow2_state *s, uint64_t entries)
{
    uint64_t cs = s->cluster_size;
    uint64_t bytes = bd_align_up(entries * 8, cs);
    uint64_t old_off = s->l1_off;
    uint64_t old_bytes = bd_align_up((uint64_t)s->l1_entries * 8, cs);
    uint64_t off;
    int ret;

    if (bytes > QCOW2_MAX_L1_BYTES)
        return -EFBIG;
    /* everything the current L1 names must be on disk first */
    ret = qcow2_meta_flush(s, true);
    if (ret < 0)
        return ret;
    ret = qcow2_alloc_clusters(s, bytes / cs, &off);
    if (ret < 0)
        return ret;
    uint64_t *l1 = calloc(bytes / 8, sizeof(uint64_t));
    uint8_t *raw = calloc(1, bytes);
    if (!l1 || !raw) {
        free(l1);
        free(raw);
        return -ENOMEM;
    }
    memcpy(l1, s->l1, (size_t)s->l1_entries * 8);
    for (uint64_t i = 0; i < s->l1_entries; i++)
        bd_put_be64(raw + i * 8, l1[i]);
    /* refcounts of the new table, then the table, then the header */
    ret = qcow2_refcounts_stable(s);
    if (ret == 0)
        ret = bd_pwrite(s->node->file, raw, bytes, off, 0);
    if (ret == 0)
        ret = bd_flush(s->node->file);
    if (ret == 0) {
        uint8_t h[12];
        bd_put_be32(h, (uint32_t)entries);
        bd_put_be64(h + 4, off);
        ret = bd_pwrite(s->node->file, h, sizeof(h), 36, 0);
    }
    if (ret == 0)
        ret = bd_flush(s->node->file);
    free(raw);
    if (ret < 0) {
        free(l1);
        return ret;
    }
    grow_known(&s->file_size, off + bytes);
    free(s->l1);
    s->l1 = l1;
    s->l1_entries = (uint32_t)entries;
    s->l1_off = off;
    s->h.l1_entries = (uint32_t)entries;
    s->h.l1_off = off;
    if (old_bytes)
        for (uint64_t c = 0; c < old_bytes && ret == 0; c += cs)
            ret = qcow2_release_cluster(s, old_off + c);
    return ret;
}

int qcow2_resize(struct qcow2_state *s, uint64_t size, struct bd_err *err)
{
    const char *name = s->node->name;
    uint64_t per_l1 = s->cluster_size << s->l2_bits;
    int ret;

    if (s->read_only)
        return bd_err_set(err, EROFS, "%s: read-only", name);
    if (size > (1ull << 62))
        return bd_err_set(err, EFBIG, "%s: size too large", name);
    /* as QEMU: the bitmap tables are sized for the disk */
    if (s->x.has_bitmaps && s->x.nb_bitmaps &&
        (s->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS))
        return bd_err_set(err, ENOTSUP, "%s: cannot resize an image with "
                          "persistent bitmaps; remove them with qemu-img "
                          "bitmap --remove first", name);
    pthread_mutex_lock(&s->alloc_lock);
    ret = prepare_write(s);
    if (ret < 0) {
        pthread_mutex_unlock(&s->alloc_lock);
        return bd_err_set(err, -ret, "%s: %s", name, strerror(-ret));
    }
    if (size < s->size) {
        /* shrink only over unallocated space */
        for (uint64_t pos = size; pos < s->size;) {
            struct qcow2_extent e;
            ret = qcow2_map(s, pos, s->size - pos, &e);
            if (ret < 0)
                goto out_unlock;
            if (e.type != QCOW2_UNALLOC) {
                ret = bd_err_set(err, ENOTSUP,
                                 "%s: cannot shrink to %llu bytes: data is "
                                 "allocated beyond that", name,
                                 (unsigned long long)size);
                goto out_unlock;
            }
            pos += e.len;
        }
    }
    pthread_mutex_lock(&s->meta_lock);
    uint64_t need = (size + per_l1 - 1) / per_l1;
    if (need > s->l1_entries)
        ret = grow_l1(s, need);
    if (ret == 0)
        ret = qcow2_header_write_u64(s, 24, size);
    if (ret == 0) {
        s->h.size = size;
        s->size = size;
    }
    pthread_mutex_unlock(&s->meta_lock);
    if (ret < 0)
        ret = bd_err_set(err, -ret, "%s: cannot resize: %s", name,
                         strerror(-ret));
out_unlock:
    pthread_mutex_unlock(&s->alloc_lock);
    return ret;
}
