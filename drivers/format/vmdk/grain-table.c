/*
 * Grain directory and grain tables of a hosted sparse extent (VMDK4 and
 * COWD): reading the directories, the bounded table cache, entry lookup and
 * what an entry means, and for writers new tables and entries written to
 * both copies. Grain data is neither read nor written here.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GT_CACHE_BYTES (32u << 20)      /* tables kept before eviction */

int vmdk_gd_read(struct vmdk_sparse *s, uint64_t off, uint32_t **out,
                 const char *what, struct bd_err *err)
{
    size_t bytes = (size_t)s->gd_entries * 4;
    uint8_t *raw;
    uint32_t *d;
    int ret;

    d = calloc(s->gd_entries ? s->gd_entries : 1, sizeof(*d));
    if (!d)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->name);
    *out = d;
    if (!bytes)
        return 0;
    if (!ovf_range_ok(off, bytes, s->file_size))
        return bd_err_set(err, EINVAL, "%s: %s at offset %" PRIu64
                          " lies beyond the end of the file", s->name, what, off);
    raw = malloc(bytes);
    if (!raw)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->name);
    ret = bd_pread(s->file, raw, bytes, off);
    if (ret < 0) {
        free(raw);
        return bd_err_set(err, -ret, "%s: reading the %s: %s", s->name, what,
                          strerror(-ret));
    }
    for (uint32_t i = 0; i < s->gd_entries; i++)
        d[i] = bd_le32(raw + (size_t)i * 4);
    free(raw);
    return 0;
}

void vmdk_gt_evict(struct vmdk_sparse *s)
{
    for (uint32_t i = 0; i < s->gd_entries; i++) {
        free(s->gt[i]);
        s->gt[i] = NULL;
    }
    s->gt_loaded = 0;
}

/* The table for directory entry gi; *t = NULL when none is allocated. */
int vmdk_gt_get(struct vmdk_sparse *s, uint32_t gi, uint32_t **t)
{
    uint8_t *raw;
    uint32_t *tbl;
    uint64_t off;
    int ret;

    *t = s->gt[gi];
    if (*t || s->keep_tables || s->gd[gi] == 0)
        return 0;
    if (s->gt_loaded * s->gtes * 4 >= GT_CACHE_BYTES)
        vmdk_gt_evict(s);
    off = (uint64_t)s->gd[gi] * BD_SECTOR;
    tbl = malloc((size_t)s->gtes * 4);
    raw = malloc((size_t)s->gtes * 4);
    if (!tbl || !raw) {
        free(tbl);
        free(raw);
        return -ENOMEM;
    }
    ret = vmdk_sparse_file_read(s, raw, (uint64_t)s->gtes * 4, off, "grain table");
    if (ret < 0) {
        free(tbl);
        free(raw);
        return ret;
    }
    bool empty = true;
    for (uint32_t i = 0; i < s->gtes; i++) {
        tbl[i] = bd_le32(raw + (size_t)i * 4);
        empty = empty && tbl[i] == 0;
    }
    free(raw);
    s->gt_empty[gi] = empty;
    s->gt[gi] = tbl;
    s->gt_loaded++;
    *t = tbl;
    return 0;
}

int vmdk_gt_entry(struct vmdk_sparse *s, uint64_t g, uint32_t *gte)
{
    uint32_t *t;
    int ret;

    if (g / s->gtes >= s->gd_entries) {
        *gte = 0;       /* COWD: a directory shorter than the capacity */
        return 0;
    }
    ret = vmdk_gt_get(s, (uint32_t)(g / s->gtes), &t);

    if (ret < 0)
        return ret;
    *gte = t ? t[g % s->gtes] : 0;
    return 0;
}

enum vmdk_grain_state vmdk_gte_state(const struct vmdk_sparse *s, uint32_t gte)
{
    if (gte == 0)
        return VMDK_GRAIN_UNALLOCATED;
    if (gte == 1 && s->zero_grain)
        return VMDK_GRAIN_ZERO;
    return s->compressed ? VMDK_GRAIN_COMPRESSED : VMDK_GRAIN_DATA;
}

static int put_le32_at(struct vmdk_sparse *s, uint64_t off, uint32_t v)
{
    uint8_t b[4];

    bd_put_le32(b, v);
    return vmdk_sparse_file_write(s, b, 4, off);
}

/* Make a zeroed grain table for directory entry gi (and its redundant copy). */
static int alloc_table(struct vmdk_sparse *s, uint32_t gi)
{
    uint32_t *t = calloc(s->gtes, sizeof(*t));
    uint64_t off, roff = 0;
    int ret;

    if (!t)
        return -ENOMEM;
    if (s->keep_tables) {
        /* stream tail: written out at flush */
        s->gt[gi] = t;
        s->gd[gi] = UINT32_MAX;     /* placeholder until the tail is written */
        s->dirty = true;
        return 0;
    }
    /* new space from extending the file reads as zeroes */
    if ((ret = vmdk_sparse_alloc(s, s->gt_bytes, &off)) < 0)
        goto out_free;
    if (s->rgd && (ret = vmdk_sparse_alloc(s, s->gt_bytes, &roff)) < 0)
        goto out_free;
    if ((ret = vmdk_sparse_file_extend(s, s->alloc_off)) < 0)
        goto out_free;
    /* tables first, then the directories point at them */
    if (s->rgd) {
        if ((ret = put_le32_at(s, s->rgd_off + (uint64_t)gi * 4,
                               (uint32_t)(roff / BD_SECTOR))) < 0)
            goto out_free;
        s->rgd[gi] = (uint32_t)(roff / BD_SECTOR);
    }
    if ((ret = put_le32_at(s, s->gd_off + (uint64_t)gi * 4,
                           (uint32_t)(off / BD_SECTOR))) < 0)
        goto out_free;
    s->gd[gi] = (uint32_t)(off / BD_SECTOR);
    if (s->gt_loaded * s->gtes * 4 >= GT_CACHE_BYTES)
        vmdk_gt_evict(s);
    s->gt[gi] = t;
    s->gt_loaded++;
    return 0;

out_free:
    free(t);
    return ret;
}

int vmdk_gt_set(struct vmdk_sparse *s, uint64_t g, uint32_t val)
{
    uint32_t gi = (uint32_t)(g / s->gtes), ei = (uint32_t)(g % s->gtes);
    uint32_t *t;
    int ret;

    if ((ret = vmdk_gt_get(s, gi, &t)) < 0)
        return ret;
    if (!t) {
        if ((ret = alloc_table(s, gi)) < 0)
            return ret;
        t = s->gt[gi];
    }
    t[ei] = val;
    s->gt_empty[gi] = 0;
    if (s->keep_tables) {
        s->dirty = true;
        return 0;
    }
    if (s->rgd && s->rgd[gi]) {
        uint64_t roff = (uint64_t)s->rgd[gi] * BD_SECTOR + (uint64_t)ei * 4;
        ret = ovf_range_ok(roff, 4, s->file_size)
              ? put_le32_at(s, roff, val)
              : vmdk_sparse_eio(s, "redundant grain table", roff);
        if (ret < 0)
            return ret;
    }
    return put_le32_at(s, (uint64_t)s->gd[gi] * BD_SECTOR + (uint64_t)ei * 4, val);
}
