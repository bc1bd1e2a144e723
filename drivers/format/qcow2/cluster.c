/*
 * qcow2 guest-to-host mapping: decoding L2 entries (standard and extended),
 * walking L1 -> L2 through the cache (block status is its answer), preparing
 * L2 tables for modification (allocation and copy-on-write of shared
 * tables), and writing metadata back in crash-safe order, references of
 * replaced entries dropped last. Guest data I/O is not done here.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

static int corrupt(struct qcow2_state *s, const char *what, uint64_t off)
{
    if (!s->io_errors++)
        log_err("%s: corrupt image: %s (guest offset %llu); check it with "
                "qemu-img check", s->node->name, what, (unsigned long long)off);
    return -EIO;
}

int qcow2_l2_decode(const struct qcow2_state *s, uint64_t entry,
                    uint64_t bitmap, uint64_t off, struct qcow2_extent *e)
{
    uint64_t in_cl = off & (s->cluster_size - 1);

    memset(e, 0, sizeof(*e));
    e->len = s->cluster_size - in_cl;
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        unsigned x = 62 - (s->cluster_bits - 8);
        uint64_t host = entry & ((1ull << x) - 1);
        uint64_t nsec = (entry >> x) & ((1ull << (62 - x)) - 1);
        e->type = QCOW2_COMPRESSED;
        e->host = host;
        e->csize = (nsec + 1) * 512 - (host & 511);
        e->coff = off - in_cl;
        if (s->data_node)
            return -EIO;        /* no compression with external data files */
        return 0;
    }
    if (entry & QCOW2_L2_RESERVED_MASK)
        return -EIO;
    uint64_t host = entry & QCOW2_L2_OFFSET_MASK;
    bool copied = entry & QCOW2_OFLAG_COPIED;
    if (host % s->cluster_size)
        return -EIO;
    bool has_host = host || (s->data_node && copied);
    e->copied = copied;

    if (!s->ext_l2) {
        if ((entry & QCOW2_OFLAG_ZERO) && s->h.version >= 3) {
            e->type = QCOW2_ZERO;
            e->host = has_host ? host : 0;
            return 0;
        }
        if (!has_host) {
            e->type = QCOW2_UNALLOC;
            return 0;
        }
        e->type = QCOW2_NORMAL;
        e->host = host + in_cl;
        return 0;
    }

    if (entry & QCOW2_OFLAG_ZERO)
        return -EIO;
    uint32_t alloc = (uint32_t)bitmap, zero = (uint32_t)(bitmap >> 32);
    if (alloc & zero)
        return -EIO;
    if (alloc && !has_host)
        return -EIO;
    unsigned sc = (unsigned)(in_cl >> s->sc_bits);
    unsigned state = ((alloc >> sc) & 1) ? 2 : ((zero >> sc) & 1) ? 1 : 0;
    unsigned end = sc + 1;
    while (end < 32) {
        unsigned st = ((alloc >> end) & 1) ? 2 : ((zero >> end) & 1) ? 1 : 0;
        if (st != state)
            break;
        end++;
    }
    e->len = ((uint64_t)end << s->sc_bits) - in_cl;
    if (state == 2) {
        e->type = QCOW2_NORMAL;
        e->host = host + in_cl;
    } else if (state == 1) {
        e->type = QCOW2_ZERO;
        e->host = has_host ? host : 0;
    } else {
        e->type = QCOW2_UNALLOC;
        e->host = has_host ? host : 0;
    }
    return 0;
}

static bool can_merge(const struct qcow2_extent *a, const struct qcow2_extent *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case QCOW2_UNALLOC:
    case QCOW2_ZERO:
        return true;
    case QCOW2_NORMAL:
        return b->host == a->host + a->len && a->copied == b->copied;
    default:
        return false;
    }
}

int qcow2_map_locked(struct qcow2_state *s, const uint64_t *l1,
                     uint32_t l1_entries, uint64_t off, uint64_t len,
                     struct qcow2_extent *e)
{
    uint64_t cluster = off >> s->cluster_bits;
    uint64_t l1i = cluster >> s->l2_bits;
    uint64_t l2i = cluster & (s->l2_entries - 1);
    uint64_t table_end = (l1i + 1) << (s->l2_bits + s->cluster_bits);
    uint8_t *t;
    int ret;

    if (len > table_end - off)
        len = table_end - off;
    if (l1i >= l1_entries) {
        memset(e, 0, sizeof(*e));
        e->type = QCOW2_UNALLOC;
        e->len = len;
        return 0;
    }
    uint64_t l1e = l1[l1i];
    uint64_t l2off = l1e & QCOW2_L1_OFFSET_MASK;
    if ((l1e & QCOW2_L1_RESERVED_MASK) || l2off % s->cluster_size)
        return corrupt(s, "invalid L1 entry", off);
    if (!l2off) {
        memset(e, 0, sizeof(*e));
        e->type = QCOW2_UNALLOC;
        e->len = len;
        return 0;
    }
    ret = qcow2_cache_get(&s->l2c, l2off, false, &t);
    if (ret < 0)
        return ret == -EIO ? corrupt(s, "L2 table beyond the end of the file",
                                     off) : ret;
    ret = qcow2_l2_decode(s, qcow2_l2_get(s, t, l2i),
                          qcow2_l2_get_bitmap(s, t, l2i), off, e);
    if (ret < 0)
        return corrupt(s, "invalid L2 entry", off);
    uint64_t pos = off + e->len;
    while (e->len < len && e->type != QCOW2_COMPRESSED) {
        struct qcow2_extent nx;
        uint64_t i = (pos >> s->cluster_bits) & (s->l2_entries - 1);
        if (qcow2_l2_decode(s, qcow2_l2_get(s, t, i),
                            qcow2_l2_get_bitmap(s, t, i), pos, &nx) < 0)
            break;              /* reported when the caller gets there */
        if (!can_merge(e, &nx))
            break;
        e->len += nx.len;
        pos += nx.len;
    }
    if (e->len > len)
        e->len = len;
    return 0;
}

int qcow2_map(struct qcow2_state *s, uint64_t off, uint64_t len,
              struct qcow2_extent *e)
{
    pthread_mutex_lock(&s->meta_lock);
    /* s->l1 is replaced when a resize grows it: read it under the lock */
    int ret = qcow2_map_locked(s, s->l1, s->l1_entries, off, len, e);
    pthread_mutex_unlock(&s->meta_lock);
    return ret;
}

static void l1_mark_dirty(struct qcow2_state *s, uint32_t i)
{
    if (s->l1_dirty_lo > s->l1_dirty_hi) {
        s->l1_dirty_lo = s->l1_dirty_hi = i;
        return;
    }
    if (i < s->l1_dirty_lo)
        s->l1_dirty_lo = i;
    if (i > s->l1_dirty_hi)
        s->l1_dirty_hi = i;
}

int qcow2_l1_writeback(struct qcow2_state *s)
{
    if (s->l1_dirty_lo > s->l1_dirty_hi)
        return 0;
    uint32_t n = s->l1_dirty_hi - s->l1_dirty_lo + 1;
    uint8_t *b = malloc((size_t)n * 8);
    if (!b)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        bd_put_be64(b + i * 8, s->l1[s->l1_dirty_lo + i]);
    int ret = bd_pwrite(s->node->file, b, (uint64_t)n * 8,
                        s->l1_off + (uint64_t)s->l1_dirty_lo * 8, 0);
    free(b);
    if (ret < 0)
        return ret;
    s->l1_dirty_lo = 1;
    s->l1_dirty_hi = 0;
    return 0;
}

int qcow2_meta_flush(struct qcow2_state *s, bool flush_file)
{
    bool need_flush = false;
    int ret;

    /* refcounts before the tables that use the clusters they count */
    ret = qcow2_refcounts_stable(s);
    if (ret < 0)
        return ret;
    if (s->l2c.nb_dirty) {
        ret = qcow2_cache_writeback(&s->l2c);
        if (ret < 0)
            return ret;
        need_flush = true;
    }
    /* new L2 tables before the L1 entries that point at them */
    if (s->l1_dirty_lo <= s->l1_dirty_hi) {
        if (need_flush) {
            ret = bd_flush(s->node->file);
            if (ret < 0)
                return ret;
        }
        ret = qcow2_l1_writeback(s);
        if (ret < 0)
            return ret;
    }
    if (s->rbc.nb_dirty) {
        /* lazy refcounts: written whenever, the dirty bit covers them */
        ret = qcow2_cache_writeback(&s->rbc);
        if (ret < 0)
            return ret;
    }
    if (flush_file) {
        ret = bd_flush(s->node->file);
        if (ret < 0)
            return ret;
        if (s->data_node) {
            ret = bd_flush(s->data_node);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

/* Free one cluster whose last reference was just removed from metadata
 * that is already on disk. */
static int release_cluster(struct qcow2_state *s, uint64_t off,
                           struct qcow2_cache *c)
{
    uint64_t rc;
    int ret = qcow2_refcount_update(s, off, 1, -1);

    if (ret < 0)
        return ret;
    ret = qcow2_refcount_get(s, off >> s->cluster_bits, &rc);
    if (ret == 0 && rc == 0 && c)
        qcow2_cache_discard(c, off);
    return ret;
}

int qcow2_l2_for_write(struct qcow2_state *s, uint64_t off, uint8_t **table,
                       uint64_t *index)
{
    uint64_t cluster = off >> s->cluster_bits;
    uint64_t l1i = cluster >> s->l2_bits;
    uint64_t cs = s->cluster_size;
    uint8_t *t, *copy = NULL;
    uint64_t newoff;
    int ret;

    *index = cluster & (s->l2_entries - 1);
    if (l1i >= s->l1_entries)
        return -EIO;
    uint64_t l1e = s->l1[l1i];
    uint64_t old = l1e & QCOW2_L1_OFFSET_MASK;
    if ((l1e & QCOW2_L1_RESERVED_MASK) || old % cs)
        return corrupt(s, "invalid L1 entry", off);
    if (old && (l1e & QCOW2_OFLAG_COPIED))
        return qcow2_cache_get(&s->l2c, old, false, table);

    if (old) {
        /* shared with a snapshot: copy, dropping the COPIED flags */
        ret = qcow2_cache_get(&s->l2c, old, false, &t);
        if (ret < 0)
            return ret;
        copy = malloc(cs);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, t, cs);
        for (uint64_t i = 0; i < s->l2_entries; i++) {
            uint8_t *p = copy + i * s->l2_entry_bytes;
            bd_put_be64(p, bd_be64(p) & ~QCOW2_OFLAG_COPIED);
        }
    }
    ret = qcow2_alloc_clusters(s, 1, &newoff);
    if (ret < 0)
        goto out_free;
    ret = qcow2_cache_get(&s->l2c, newoff, true, &t);
    if (ret < 0)
        goto out_free;
    if (copy)
        memcpy(t, copy, cs);
    qcow2_cache_mark_dirty(&s->l2c, newoff);
    s->l1[l1i] = newoff | QCOW2_OFLAG_COPIED;
    l1_mark_dirty(s, (uint32_t)l1i);
    if (old) {
        /* the old table loses a reference only once the L1 is on disk */
        ret = qcow2_meta_flush(s, true);
        if (ret < 0)
            goto out_free;
        ret = release_cluster(s, old, &s->l2c);
        if (ret < 0)
            goto out_free;
    }
    ret = qcow2_cache_get(&s->l2c, newoff, false, table);

out_free:
    free(copy);
    return ret;
}

int qcow2_release_cluster(struct qcow2_state *s, uint64_t off)
{
    return release_cluster(s, off, &s->l2c);
}

/*
 * Shrink: the L1 entries from `from` on are cleared and written (after the
 * L2 tables, with a flush) before the tables lose their reference, so a
 * crash in between leaks clusters but never leaves a freed table in use.
 * A table a snapshot shares only loses our reference. meta_lock held.
 */
int qcow2_drop_l2_tables(struct qcow2_state *s, uint32_t from)
{
    uint64_t *old;
    uint32_t n = 0;
    int ret;

    if (from >= s->l1_entries)
        return 0;
    old = calloc(s->l1_entries - from, sizeof(*old));
    if (!old)
        return -ENOMEM;
    for (uint32_t i = from; i < s->l1_entries; i++) {
        uint64_t l2off = s->l1[i] & QCOW2_L1_OFFSET_MASK;
        if (!l2off)
            continue;
        old[n++] = l2off;
        s->l1[i] = 0;
        l1_mark_dirty(s, i);
    }
    ret = n ? qcow2_meta_flush(s, true) : 0;
    for (uint32_t i = 0; i < n && ret == 0; i++) {
        qcow2_cache_discard(&s->l2c, old[i]);
        ret = release_cluster(s, old[i], NULL);
    }
    free(old);
    return ret;
}

/* ---- dropping the references of replaced entries --------------------- */

static int release_add(struct qcow2_release_list *r, uint64_t off)
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

int qcow2_release_old(struct qcow2_state *s, struct qcow2_release_list *r,
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

int qcow2_release_all(struct qcow2_state *s, struct qcow2_release_list *r)
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
        if (!s->data_node && !s->crypt) {
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
