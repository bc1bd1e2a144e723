/*
 * Guest writes to a hosted sparse extent: in place into allocated grains,
 * new grains appended with what the grain read as before around the new
 * bytes, and zeroes as zeroed-grain entries where the header allows. Stream
 * extents go to stream.c; table updates are grain-table.c's.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

/* Write into a grain that has no data yet: a whole new grain at the end. */
static int write_new_grain(struct vmdk_sparse *s, const uint8_t *p, uint64_t n,
                           uint64_t off, enum vmdk_grain_state st,
                           const struct vmdk_fill *fill)
{
    uint64_t g = off / s->grain, in = off % s->grain, foff;
    int ret;

    if (n == s->grain) {
        if (vmdk_is_zero(p, n) && (st == VMDK_GRAIN_ZERO || !fill->backing))
            return 0;
        if ((ret = vmdk_sparse_alloc(s, s->grain, &foff)) < 0)
            return ret;
        if ((ret = vmdk_sparse_file_write(s, p, n, foff)) < 0)
            return ret;
        return vmdk_gt_set(s, g, (uint32_t)(foff / BD_SECTOR));
    }
    if (!s->scratch && !(s->scratch = malloc(s->grain)))
        return -ENOMEM;
    if (st == VMDK_GRAIN_ZERO)
        memset(s->scratch, 0, s->grain);
    else if ((ret = vmdk_fill_read(fill, s->scratch, s->grain, g * s->grain)) < 0)
        return ret;
    memcpy(s->scratch + in, p, n);
    if ((ret = vmdk_sparse_alloc(s, s->grain, &foff)) < 0)
        return ret;
    if ((ret = vmdk_sparse_file_write(s, s->scratch, s->grain, foff)) < 0)
        return ret;
    return vmdk_gt_set(s, g, (uint32_t)(foff / BD_SECTOR));
}

int vmdk_sparse_pwrite(struct vmdk_sparse *s, const void *buf, uint64_t len,
                       uint64_t off, const struct vmdk_fill *fill)
{
    const uint8_t *p = buf;

    if (s->cowd)
        return -EROFS;
    if (!ovf_range_ok(off, len, s->capacity))
        return -EIO;    /* descriptor extent larger than the sparse file */
    while (len) {
        uint64_t in = off % s->grain, n = s->grain - in;
        enum vmdk_grain_state st;
        uint64_t foff, run;
        int ret;

        if (n > len)
            n = len;
        if (s->compressed) {
            ret = vmdk_stream_write(s, p, n, off, fill);
        } else {
            if ((ret = vmdk_sparse_status(s, off, len, &run, &st, &foff)) < 0)
                return ret;
            if (st == VMDK_GRAIN_DATA) {
                n = run;    /* contiguous allocated grains: one write */
                /* a grain inside the metadata would overwrite it */
                ret = ovf_range_ok(foff, n, s->file_size) && foff >= s->overhead
                      ? bd_pwrite(s->file, p, n, foff, 0)
                      : vmdk_sparse_eio(s, "grain", foff);
            } else {
                ret = write_new_grain(s, p, n, off, st, fill);
            }
        }
        if (ret < 0)
            return ret;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Zeroes: whole grains become zeroed-grain entries (header version 2+) or
 * stay unallocated when nothing shows through; the rest are written. */
int vmdk_sparse_pwrite_zeroes(struct vmdk_sparse *s, uint64_t len, uint64_t off,
                              const struct vmdk_fill *fill)
{
    uint8_t *zero = NULL;
    int ret = 0;

    if (s->cowd || s->compressed)
        return -ENOTSUP;
    if (!ovf_range_ok(off, len, s->capacity))
        return -EIO;
    while (len && ret == 0) {
        uint64_t in = off % s->grain, n = s->grain - in;
        uint32_t gte;

        if (n > len)
            n = len;
        if ((ret = vmdk_gt_entry(s, off / s->grain, &gte)) < 0)
            break;
        enum vmdk_grain_state st = vmdk_gte_state(s, gte);
        if (st == VMDK_GRAIN_ZERO || (st == VMDK_GRAIN_UNALLOCATED && !fill->backing)) {
            /* reads as zeroes already */
        } else if (n == s->grain && s->zero_grain) {
            ret = vmdk_gt_set(s, off / s->grain, 1);
        } else if (st == VMDK_GRAIN_DATA) {
            uint64_t foff = (uint64_t)gte * BD_SECTOR + in;
            ret = ovf_range_ok(foff, n, s->file_size) && foff >= s->overhead
                  ? bd_pwrite_zeroes(s->file, n, foff, 0)
                  : vmdk_sparse_eio(s, "grain", foff);
        } else {
            if (!zero && !(zero = calloc(1, s->grain))) {
                ret = -ENOMEM;
                break;
            }
            ret = vmdk_sparse_pwrite(s, zero, n, off, fill);
        }
        off += n;
        len -= n;
    }
    free(zero);
    return ret;
}
