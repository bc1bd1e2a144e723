/*
 * The file under a hosted sparse extent: reads checked against its size,
 * writes that grow it, the append point where new grains and tables go, and
 * the one log line an extent gets for corruption. The format itself (tables,
 * grains, streams) is known only to the other sparse files.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>

/* True the first time only: parallel readers may fail at once. */
bool vmdk_sparse_first_warning(struct vmdk_sparse *s)
{
    return __atomic_fetch_add(&s->io_warned, 1, __ATOMIC_RELAXED) == 0;
}

int vmdk_sparse_eio(struct vmdk_sparse *s, const char *what, uint64_t off)
{
    if (vmdk_sparse_first_warning(s))
        log_err("%s: %s at offset %" PRIu64 " is beyond the end of the file "
                "or corrupt", s->name, what, off);
    return -EIO;
}

int vmdk_sparse_file_read(struct vmdk_sparse *s, void *buf, uint64_t len,
                          uint64_t off, const char *what)
{
    if (!ovf_range_ok(off, len, s->file_size))
        return vmdk_sparse_eio(s, what, off);
    return bd_pread(s->file, buf, len, off);
}

/* Write, first extending the file: protocol nodes under a format do not
 * grow on their own. */
int vmdk_sparse_file_extend(struct vmdk_sparse *s, uint64_t end)
{
    struct bd_err e = {0};
    int ret;

    if (end <= s->file_size)
        return 0;
    ret = bd_truncate(s->file, end, BD_PREALLOC_OFF, &e);
    if (ret < 0)
        return ret;
    s->file_size = end;
    return 0;
}

int vmdk_sparse_file_write(struct vmdk_sparse *s, const void *buf, uint64_t len,
                           uint64_t off)
{
    int ret = vmdk_sparse_file_extend(s, off + len);

    return ret < 0 ? ret : bd_pwrite(s->file, buf, len, off, 0);
}

/* Append space for len bytes; fails when the sector number would not fit
 * in a 32-bit table entry. */
int vmdk_sparse_alloc(struct vmdk_sparse *s, uint64_t len, uint64_t *off)
{
    uint64_t end;

    if (ovf_add_u64(s->alloc_off, len, &end) ||
        end / BD_SECTOR > UINT32_MAX)
        return -EFBIG;
    *off = s->alloc_off;
    s->alloc_off = bd_align_up(end, BD_SECTOR);
    return 0;
}
