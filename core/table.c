/*
 * Reading a format's fixed metadata from its child: the header at offset 0
 * and tables of 32-bit entries (a block map, a catalog, a BAT) into native
 * order. What the fields and entries mean and whether they are valid is
 * the driver's, checked over the decoded data.
 */
#include "core/bd.h"
#include "core/overflow.h"
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int bd_read_u32_table(struct bd_node *file, uint64_t off, uint32_t count,
                      bool big_endian, uint32_t **out, const char *name,
                      const char *what, struct bd_err *err)
{
    uint64_t bytes = (uint64_t)count * 4;
    int64_t fsize = bd_size(file);
    uint32_t *t;
    int r;

    /* bound memory by the file, whatever count the image claims */
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          name, strerror((int)-fsize));
    if (!ovf_range_ok(off, bytes, (uint64_t)fsize) ||
        (size_t)bytes != bytes)
        return bd_err_set(err, EINVAL, "%s: the %s (%" PRIu32 " entries at "
                          "offset %" PRIu64 ") lies beyond the end of the file",
                          name, what, count, off);
    t = malloc(bytes ? (size_t)bytes : 4);
    if (!t)
        return bd_err_set(err, ENOMEM, "%s: no memory for the %s", name, what);
    r = bd_pread(file, t, bytes, off);
    if (r < 0) {
        free(t);
        return bd_err_set(err, -r, "%s: cannot read the %s: %s", name, what,
                          strerror(-r));
    }
    /* decode in place: each entry is read before it is overwritten */
    for (uint32_t i = 0; i < count; i++)
        t[i] = big_endian ? bd_be32(&t[i]) : bd_le32(&t[i]);
    *out = t;
    return 0;
}

int bd_read_image_header(struct bd_node *file, const char *name,
                         const char *fmt, void *buf, size_t len,
                         uint64_t *fsize, struct bd_err *err)
{
    int64_t size = bd_size(file);
    int r;

    if (size < 0)
        return bd_err_set(err, (int)-size, "%s: cannot get the file size: %s",
                          name, strerror((int)-size));
    if ((uint64_t)size < len)
        return bd_err_set(err, EINVAL, "%s: file is too small to be a %s "
                          "image (%lld bytes)", name, fmt, (long long)size);
    r = bd_pread(file, buf, len, 0);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the %s header: %s", name,
                          fmt, strerror(-r));
    *fsize = (uint64_t)size;
    return 0;
}
