/*
 * qcow2 virtual size changes: growing (with a larger L1 table written
 * before the header points at it) and shrinking as qemu-img resize
 * --shrink does: the clusters past the new end and the L2 tables wholly
 * past it are freed, then the header gets the new size. Every step
 * writes pointers before it drops refcounts, so a crash mid-shrink
 * leaves leaked clusters at worst. Data is never moved.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

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
    qcow2_grow_known(&s->file_size, off + bytes);
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

static bool shrink_refused(struct qcow2_state *s, uint64_t size)
{
    /* an external data file is addressed by guest offset: keep it whole */
    if (!s->data_node)
        return false;
    for (uint64_t pos = size; pos < s->size;) {
        struct qcow2_extent e;
        if (qcow2_map(s, pos, s->size - pos, &e) < 0 || e.type != QCOW2_UNALLOC)
            return true;
        pos += e.len;
    }
    return false;
}

/* alloc_lock and io_lock (exclusive) held */
static int shrink(struct qcow2_state *s, uint64_t size, struct bd_err *err)
{
    const char *name = s->node->name;
    uint64_t cs = s->cluster_size;
    uint64_t per_l1 = cs << s->l2_bits;
    int ret;

    if (shrink_refused(s, size))
        return bd_err_set(err, ENOTSUP, "%s: cannot shrink to %llu bytes: "
                          "data is allocated beyond that in the external "
                          "data file", name, (unsigned long long)size);
    ret = qcow2_unmap_tail(s, bd_align_up(size, cs), bd_align_up(s->size, cs));
    if (ret == 0) {
        pthread_mutex_lock(&s->meta_lock);
        ret = qcow2_drop_l2_tables(s, (uint32_t)((size + per_l1 - 1) / per_l1));
        if (ret == 0)
            ret = qcow2_meta_flush(s, true);
        pthread_mutex_unlock(&s->meta_lock);
    }
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: cannot shrink to %llu bytes: %s",
                          name, (unsigned long long)size, strerror(-ret));
    return 0;
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
    ret = qcow2_prepare_write(s);
    if (ret < 0) {
        pthread_mutex_unlock(&s->alloc_lock);
        return bd_err_set(err, -ret, "%s: %s", name, strerror(-ret));
    }
    if (size < s->size) {
        ret = shrink(s, size, err);
        if (ret < 0)
            goto out_unlock;
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
