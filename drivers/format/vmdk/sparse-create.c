/*
 * Laying out one new, empty hosted sparse extent: the KDMV header, the
 * embedded descriptor and both grain directories with their tables
 * preallocated, or for streamOptimized an empty tail (written by stream.c).
 * Choosing subformats and extents and writing descriptors is create.c's job.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

int vmdk_sparse_create(struct bd_node *file, const struct vmdk_sparse_create *c,
                       struct bd_err *err)
{
    const uint64_t grain_sec = 128, gtes = 512;
    uint64_t cap_sec = c->capacity / BD_SECTOR;
    uint64_t grains = (cap_sec + grain_sec - 1) / grain_sec;
    uint64_t gt_count = (grains + gtes - 1) / gtes;
    uint64_t gd_sec = (gt_count * 4 + BD_SECTOR - 1) / BD_SECTOR;
    uint64_t gt_sec = gtes * 4 / BD_SECTOR;
    size_t dlen = c->desc ? strlen(c->desc) : 0;
    uint64_t desc_sec = c->desc ? 20 : 0, rgd_sec, gd_off, overhead;
    uint8_t h[512] = {0};
    uint8_t *dir = NULL;
    int ret;

    if (c->capacity > (2ull << 40))
        return bd_err_set(err, EFBIG, "a vmdk sparse extent holds at most 2 TiB; "
                          "use subformat=twoGbMaxExtentSparse or a flat subformat");
    if (dlen > desc_sec * BD_SECTOR)
        desc_sec = (dlen + BD_SECTOR - 1) / BD_SECTOR;
    rgd_sec = 1 + desc_sec;
    if (c->stream) {
        gd_off = VMDK4_GD_AT_END;
        overhead = bd_align_up(1 + desc_sec, grain_sec);
    } else {
        gd_off = rgd_sec + gd_sec + gt_count * gt_sec;
        overhead = bd_align_up(gd_off + gd_sec + gt_count * gt_sec, grain_sec);
    }

    bd_put_le32(h, VMDK4_MAGIC);
    bd_put_le32(h + 4, c->stream ? 3 : c->zeroed_grain ? 2 : 1);
    bd_put_le32(h + 8, VMDK4_FLAG_NL_DETECT |
                (c->stream ? VMDK4_FLAG_COMPRESSED | VMDK4_FLAG_MARKERS
                           : VMDK4_FLAG_RGD) |
                (c->zeroed_grain && !c->stream ? VMDK4_FLAG_ZERO_GRAIN : 0));
    bd_put_le64(h + 12, cap_sec);
    bd_put_le64(h + 20, grain_sec);
    bd_put_le64(h + 28, desc_sec ? 1 : 0);
    bd_put_le64(h + 36, desc_sec);
    bd_put_le32(h + 44, (uint32_t)gtes);
    bd_put_le64(h + 48, c->stream ? 0 : rgd_sec);
    bd_put_le64(h + 56, gd_off);
    bd_put_le64(h + 64, overhead);
    h[73] = '\n';
    h[74] = ' ';
    h[75] = '\r';
    h[76] = '\n';
    bd_put_le16(h + 77, c->stream ? VMDK4_COMPRESS_DEFLATE : 0);

    if ((ret = bd_truncate(file, overhead * BD_SECTOR, BD_PREALLOC_OFF, err)) < 0)
        return ret;
    if ((ret = bd_pwrite(file, h, sizeof(h), 0, 0)) < 0)
        goto out_io;
    if (dlen && (ret = bd_pwrite(file, c->desc, dlen, BD_SECTOR, 0)) < 0)
        goto out_io;
    if (c->stream) {
        /* an empty stream: directory, footer and end marker after the header */
        struct vmdk_sparse *s = NULL;
        if ((ret = vmdk_sparse_new_stream(file, h, overhead * BD_SECTOR, &s, err)) < 0)
            return ret;
        s->dirty = true;
        ret = vmdk_sparse_close(s);
        if (ret < 0)
            goto out_io;
        return 0;
    }
    dir = calloc(gd_sec ? gd_sec : 1, BD_SECTOR);
    if (!dir)
        return bd_err_set(err, ENOMEM, "out of memory");
    for (int copy = 0; copy < 2; copy++) {
        uint64_t base = copy ? gd_off : rgd_sec;
        for (uint64_t i = 0; i < gt_count; i++)
            bd_put_le32(dir + i * 4, (uint32_t)(base + gd_sec + i * gt_sec));
        ret = bd_pwrite(file, dir, gd_sec * BD_SECTOR, base * BD_SECTOR, 0);
        if (ret < 0)
            goto out_io;
    }
    free(dir);
    return 0;

out_io:
    free(dir);
    return bd_err_set(err, -ret, "writing the sparse extent: %s", strerror(-ret));
}
