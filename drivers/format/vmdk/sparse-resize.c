/*
 * Growing a hosted VMDK4 sparse extent. The directory gets one entry per
 * new grain table's span; the new entries are 0 (no table yet: tables are
 * allocated on first write). While the new entries fit the directory's
 * last sector they are written in place, else a copy of the directory (and
 * of the redundant one) goes to the end of the file. Entries, tables and
 * grain bytes past the old end are cleared first, so stale or hostile
 * content never shows in the new space. The header sector, written last,
 * switches capacity and directory offsets at once: a crash before it leaves
 * the old image with at most unused space at the end.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

#define GROW_MAX_GD_ENTRIES     (1u << 22)      /* as open accepts */

/* Table entries and grain bytes past the old capacity read as zeroes. */
static int clear_past(struct vmdk_sparse *s)
{
    uint64_t cap = s->capacity, g = cap / s->grain;
    uint64_t end = (uint64_t)s->gd_entries * s->gtes;
    uint32_t gte;
    int ret;

    if (cap % s->grain) {
        ret = vmdk_gt_entry(s, g, &gte);
        if (ret < 0)
            return ret;
        if (vmdk_gte_state(s, gte) == VMDK_GRAIN_DATA) {
            uint64_t in = cap % s->grain, off = (uint64_t)gte * BD_SECTOR + in;

            if (!ovf_range_ok(off, s->grain - in, s->file_size))
                return vmdk_sparse_eio(s, "grain", off);
            ret = bd_pwrite_zeroes(s->file, s->grain - in, off, 0);
            if (ret < 0)
                return ret;
        }
        g++;
    }
    for (; g < end; g++) {
        ret = vmdk_gt_entry(s, g, &gte);
        if (ret < 0)
            return ret;
        if (gte && (ret = vmdk_gt_set(s, g, 0)) < 0)
            return ret;
    }
    return 0;
}

/* Grow the in-memory arrays indexed by directory entry to n entries. */
static int grow_arrays(struct vmdk_sparse *s, uint32_t n)
{
    uint32_t old = s->gd_entries;
    uint32_t *gd = realloc(s->gd, n * sizeof(*gd)), *rgd;
    uint32_t **gt;
    uint8_t *ge;

    if (!gd)
        return -ENOMEM;
    s->gd = gd;
    memset(gd + old, 0, (n - old) * sizeof(*gd));
    if (s->rgd) {
        rgd = realloc(s->rgd, n * sizeof(*rgd));
        if (!rgd)
            return -ENOMEM;
        s->rgd = rgd;
        memset(rgd + old, 0, (n - old) * sizeof(*rgd));
    }
    gt = realloc(s->gt, n * sizeof(*gt));
    if (!gt)
        return -ENOMEM;
    s->gt = gt;
    memset(gt + old, 0, (n - old) * sizeof(*gt));
    ge = realloc(s->gt_empty, n);
    if (!ge)
        return -ENOMEM;
    s->gt_empty = ge;
    memset(ge + old, 0, n - old);
    return 0;
}

/* Write directory dir (n entries) for the new size: in place at *off when
 * it fits the sectors the old one had, else at the end of the file. */
static int put_dir(struct vmdk_sparse *s, const uint32_t *dir, uint32_t n,
                   uint64_t *off)
{
    uint64_t bytes = bd_align_up((uint64_t)n * 4, BD_SECTOR);
    uint64_t room = bd_align_up((uint64_t)s->gd_entries * 4, BD_SECTOR);
    uint8_t *b = calloc(1, bytes);
    int ret;

    if (!b)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        bd_put_le32(b + 4 * (size_t)i, dir[i]);
    if (bytes > room) {
        ret = vmdk_sparse_alloc(s, bytes, off);
        if (ret == 0)
            ret = vmdk_sparse_file_write(s, b, bytes, *off);
    } else {
        ret = vmdk_sparse_file_write(s, b, bytes, *off);
    }
    free(b);
    return ret;
}

int vmdk_sparse_grow(struct vmdk_sparse *s, uint64_t new_cap)
{
    uint64_t n = new_cap / s->gt_span + (new_cap % s->gt_span != 0);
    uint64_t gd_off = s->gd_off, rgd_off = s->rgd_off;
    uint32_t old_n = s->gd_entries;
    uint8_t h[BD_SECTOR];
    int ret;

    if (s->cowd || s->compressed || s->gd_at_end || s->keep_tables)
        return -ENOTSUP;
    if (new_cap <= s->capacity)
        return new_cap == s->capacity ? 0 : -EINVAL;
    if (n > GROW_MAX_GD_ENTRIES || new_cap / BD_SECTOR > (UINT64_MAX >> 12))
        return -EFBIG;
    ret = clear_past(s);
    if (ret < 0)
        return ret;
    if (n > old_n) {
        ret = grow_arrays(s, (uint32_t)n);
        if (ret < 0)
            return ret;
        ret = put_dir(s, s->gd, (uint32_t)n, &gd_off);
        if (ret == 0 && s->rgd)
            ret = put_dir(s, s->rgd, (uint32_t)n, &rgd_off);
        if (ret < 0)
            return ret;
    }
    ret = bd_flush(s->file);
    if (ret < 0)
        return ret;
    memcpy(h, s->header, BD_SECTOR);
    bd_put_le64(h + 12, new_cap / BD_SECTOR);
    bd_put_le64(h + 56, gd_off / BD_SECTOR);
    if (s->rgd)
        bd_put_le64(h + 48, rgd_off / BD_SECTOR);
    ret = vmdk_sparse_file_write(s, h, BD_SECTOR, 0);
    if (ret == 0)
        ret = bd_flush(s->file);
    if (ret < 0)
        return ret;
    memcpy(s->header, h, BD_SECTOR);
    s->capacity = new_cap;
    s->gd_entries = (uint32_t)n;
    s->gd_off = gd_off;
    s->rgd_off = rgd_off;
    return 0;
}
