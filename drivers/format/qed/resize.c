/*
 * qed resize (growable mounts): grow only, as QEMU's qed does; a shrink is
 * refused by name. The new space reads as zeroes whatever the tables held
 * past the old end: L1 entries wholly past it and L2 entries of the table
 * holding it are cleared, and the tail of a partly used last cluster is
 * zeroed, before the header's image size (the commit point) is written.
 */
#include "qed.h"
#include "core/overflow.h"

#include <string.h>

/* Clear what the tables say about guest bytes [old, end of the table
 * range); the caller holds alloc_lock and has marked the image dirty. */
static int qed_clear_past(struct qed_state *s, uint64_t old)
{
    uint64_t cs = s->h.cluster_size, blk = (old + cs - 1) / cs, e;
    uint32_t l1i = (uint32_t)(blk >> s->table_bits);
    uint32_t l2i = (uint32_t)(blk & (s->table_entries - 1));
    uint8_t zero[8] = { 0 };
    int r;

    if (old % cs) {
        /* the last cluster: its bytes past the old end become guest bytes */
        r = qed_entry_get(s, old / cs, &e);
        if (r < 0)
            return r;
        if (e > QED_ZERO && qed_data_off_ok(s, e)) {
            r = bd_pwrite_zeroes(s->n->file, cs - old % cs, e + old % cs, 0);
            if (r < 0)
                return r;
        }
    }
    if (l1i >= s->table_entries)
        return 0;
    if (l2i && __atomic_load_n(&s->l1[l1i], __ATOMIC_ACQUIRE)) {
        bool any = false;

        for (uint32_t i = l2i; i < s->table_entries && !any; i++) {
            r = qed_entry_get(s, ((uint64_t)l1i << s->table_bits) + i, &e);
            if (r < 0)
                return r;
            any = e != QED_UNALLOCATED;
        }
        if (any) {
            r = qed_entries_set(s, blk, s->table_entries - l2i, 0, 0);
            if (r < 0)
                return r;
        }
        l1i++;
    }
    for (; l1i < s->table_entries; l1i++) {
        if (__atomic_load_n(&s->l1[l1i], __ATOMIC_ACQUIRE) == 0)
            continue;
        r = bd_pwrite(s->n->file, zero, 8, s->h.l1_off + 8 * (uint64_t)l1i, 0);
        if (r < 0)
            return r;
        __atomic_store_n(&s->l1[l1i], 0, __ATOMIC_RELEASE);
    }
    return 0;
}

int qed_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                 struct bd_err *err)
{
    struct qed_state *s = n->state;
    uint64_t entries = s->table_entries, max_size;
    uint8_t b[QED_HEADER_BYTES];
    int r;

    (void)prealloc;
    if (size == s->h.image_size)
        return 0;
    if (size < s->h.image_size)
        return bd_err_set(err, ENOTSUP, "%s: cannot shrink from %llu to %llu "
                          "bytes: qed images only grow (as with QEMU)",
                          n->name, (unsigned long long)s->h.image_size,
                          (unsigned long long)size);
    if (ovf_mul_u64(entries * entries, s->h.cluster_size, &max_size))
        max_size = UINT64_MAX;
    if (size % BD_SECTOR || size > max_size || size > (uint64_t)INT64_MAX)
        return bd_err_set(err, EINVAL, "%s: cannot grow to %llu bytes: a qed size "
                          "is a multiple of 512 up to %llu with these tables",
                          n->name, (unsigned long long)size,
                          (unsigned long long)max_size);
    pthread_mutex_lock(&s->alloc_lock);
    r = qed_mark_dirty(s);
    if (r == 0)
        r = qed_clear_past(s, s->h.image_size);
    if (r == 0)
        r = bd_flush(n->file);
    if (r == 0) {
        struct qed_header h = s->h;

        h.image_size = size;
        qed_header_encode(&h, b);
        r = bd_pwrite(n->file, b, sizeof(b), 0, 0);
        if (r == 0)
            r = bd_flush(n->file);
        if (r == 0)
            __atomic_store_n(&s->h.image_size, size, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&s->alloc_lock);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot grow to %llu bytes: %s", n->name,
                          (unsigned long long)size, strerror(-r));
    return 0;
}
