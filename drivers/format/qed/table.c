/*
 * qed tables: the L1 table (in memory from open) and the L2 tables (read on
 * first use and kept: they are at most 8 bytes per cluster of data), entry
 * lookup for readers without locks, and cluster allocation at the end of
 * the file. QED keeps no reference counts: a cluster, once handed out,
 * stays where it is.
 */
#include "qed.h"
#include "core/overflow.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

bool qed_data_off_ok(const struct qed_state *s, uint64_t off)
{
    uint64_t end = __atomic_load_n(&s->file_end, __ATOMIC_ACQUIRE);

    return off % s->h.cluster_size == 0 && off >= s->header_bytes &&
           (off < s->h.l1_off || off >= s->h.l1_off + s->table_bytes) &&
           ovf_range_ok(off, s->h.cluster_size, end);
}

static bool qed_table_off_ok(const struct qed_state *s, uint64_t off)
{
    uint64_t end = __atomic_load_n(&s->file_end, __ATOMIC_ACQUIRE);

    return off % s->h.cluster_size == 0 && off >= s->header_bytes &&
           (off + s->table_bytes <= s->h.l1_off ||
            off >= s->h.l1_off + s->table_bytes) &&
           ovf_range_ok(off, s->table_bytes, end);
}

void qed_log_bad_entry(struct qed_state *s, uint64_t blk, uint64_t entry)
{
    if (__atomic_fetch_add(&s->bad_entries, 1, __ATOMIC_RELAXED) == 0)
        log_err("%s: qed table entry for cluster %llu holds an invalid offset "
                "0x%llx; run 'imgfuse check' (further errors not logged)",
                s->n->name, (unsigned long long)blk, (unsigned long long)entry);
}

static int qed_l2_load(struct qed_state *s, uint32_t l1i, uint64_t **out)
{
    uint64_t l1e = __atomic_load_n(&s->l1[l1i], __ATOMIC_ACQUIRE);
    uint64_t *t;
    uint8_t *raw;
    int r = 0;

    pthread_mutex_lock(&s->l2_lock);
    t = __atomic_load_n(&s->l2[l1i], __ATOMIC_ACQUIRE);
    if (t)
        goto out_unlock;
    if (!qed_table_off_ok(s, l1e)) {
        qed_log_bad_entry(s, (uint64_t)l1i << s->table_bits, l1e);
        r = -EIO;
        goto out_unlock;
    }
    t = malloc(s->table_bytes);
    raw = malloc(s->table_bytes);
    if (!t || !raw) {
        free(t);
        free(raw);
        r = -ENOMEM;
        goto out_unlock;
    }
    r = bd_pread(s->n->file, raw, s->table_bytes, l1e);
    if (r == 0) {
        for (uint32_t i = 0; i < s->table_entries; i++)
            t[i] = bd_le64(raw + 8 * (size_t)i);
        __atomic_store_n(&s->l2[l1i], t, __ATOMIC_RELEASE);
    } else {
        free(t);
    }
    free(raw);
out_unlock:
    pthread_mutex_unlock(&s->l2_lock);
    *out = t;
    return r;
}

int qed_entry_get(struct qed_state *s, uint64_t blk, uint64_t *entry)
{
    uint32_t l1i = (uint32_t)(blk >> s->table_bits);
    uint32_t l2i = (uint32_t)(blk & (s->table_entries - 1));
    uint64_t *t;
    int r;

    if (__atomic_load_n(&s->l1[l1i], __ATOMIC_ACQUIRE) == 0) {
        *entry = QED_UNALLOCATED;
        return 0;
    }
    t = __atomic_load_n(&s->l2[l1i], __ATOMIC_ACQUIRE);
    if (!t) {
        r = qed_l2_load(s, l1i, &t);
        if (r < 0)
            return r;
    }
    *entry = __atomic_load_n(&t[l2i], __ATOMIC_ACQUIRE);
    return 0;
}

uint64_t qed_alloc(struct qed_state *s, uint64_t len)
{
    uint64_t off = s->file_end;

    __atomic_store_n(&s->file_end, off + len, __ATOMIC_RELEASE);
    return off;
}

/*
 * A new L2 table holding only entries [l2i, l2i + n): written whole before
 * the L1 entry that makes it reachable, so a crash in between leaves a
 * leak at the end of the file, never an L1 entry pointing at garbage.
 */
static int qed_l2_new(struct qed_state *s, uint32_t l1i, uint32_t l2i,
                      uint32_t n, uint64_t val, uint64_t step)
{
    uint64_t *t = calloc(s->table_entries, sizeof(*t));
    uint8_t *raw = calloc(1, s->table_bytes), le[8];
    uint64_t off;
    int r;

    if (!t || !raw) {
        free(t);
        free(raw);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        t[l2i + i] = val + i * step;
        bd_put_le64(raw + 8 * (size_t)(l2i + i), val + i * step);
    }
    off = qed_alloc(s, s->table_bytes);
    r = bd_pwrite(s->n->file, raw, s->table_bytes, off, 0);
    free(raw);
    if (r == 0) {
        bd_put_le64(le, off);
        r = bd_pwrite(s->n->file, le, 8, s->h.l1_off + 8 * (uint64_t)l1i, 0);
    }
    if (r < 0) {
        free(t);
        return r;
    }
    /* readers see the table before the L1 entry that leads to it */
    pthread_mutex_lock(&s->l2_lock);
    free(s->l2[l1i]);
    __atomic_store_n(&s->l2[l1i], t, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->l2_lock);
    __atomic_store_n(&s->l1[l1i], off, __ATOMIC_RELEASE);
    return 0;
}

int qed_entries_set(struct qed_state *s, uint64_t blk, uint32_t n, uint64_t val,
                    uint64_t step)
{
    uint32_t l1i = (uint32_t)(blk >> s->table_bits);
    uint32_t l2i = (uint32_t)(blk & (s->table_entries - 1));
    uint64_t l1e = __atomic_load_n(&s->l1[l1i], __ATOMIC_ACQUIRE), *t;
    uint8_t *le;
    int r;

    assert(n >= 1 && l2i + n <= s->table_entries);
    if (l1e == 0)
        return qed_l2_new(s, l1i, l2i, n, val, step);
    t = __atomic_load_n(&s->l2[l1i], __ATOMIC_ACQUIRE);
    if (!t) {
        r = qed_l2_load(s, l1i, &t);
        if (r < 0)
            return r;
    }
    le = malloc(8 * (size_t)n);
    if (!le)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        bd_put_le64(le + 8 * (size_t)i, val + i * step);
    r = bd_pwrite(s->n->file, le, 8 * (uint64_t)n, l1e + 8 * (uint64_t)l2i, 0);
    free(le);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < n; i++)
        __atomic_store_n(&t[l2i + i], val + i * step, __ATOMIC_RELEASE);
    return 0;
}

int qed_entry_set(struct qed_state *s, uint64_t blk, uint64_t val)
{
    return qed_entries_set(s, blk, 1, val, 0);
}

void qed_tables_free_l2(struct qed_state *s)
{
    for (uint32_t i = 0; i < s->table_entries; i++) {
        free(s->l2[i]);
        s->l2[i] = NULL;
    }
}
