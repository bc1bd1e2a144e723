/*
 * Reading a format's table of 32-bit entries (a block map, a catalog, a
 * BAT) from a child into native order. What the entries mean and whether
 * they are valid is the driver's, checked over the decoded array.
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
