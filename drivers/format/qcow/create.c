/*
 * qcow (version 1) image creation, laid out as qemu-img lays it out: the
 * header, the backing file name, then an empty L1 table padded to whole
 * sectors. 4 KiB clusters and 512-entry L2 tables, or over a backing file
 * 512-byte clusters and 4096-entry L2 tables. No encryption.
 */
#include "qcow.h"

#include <stdlib.h>
#include <string.h>

static const char *const qcow_create_options[] = {
    "backing_file", "backing_fmt", NULL,
};

/* The backing file must open (with backing_fmt, when given); its size is
 * the image's when none was given. */
static int check_backing(struct bd_node *file, const char *name, const char *fmt,
                         uint64_t *size, struct bd_err *err)
{
    struct bd_node *b = NULL;
    int64_t bsize;
    int r;

    r = bd_open_image_related(file, name, fmt, &b, err);
    if (r < 0) {
        bd_err_prefix(err, "backing file '%s'", name);
        return r;
    }
    bsize = bd_size(b);
    bd_node_close(b);
    if (bsize < 0)
        return bd_err_set(err, (int)-bsize, "backing file '%s': %s", name,
                          strerror((int)-bsize));
    if (*size == 0)
        *size = (uint64_t)bsize;
    return 0;
}

static int qcow_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                       struct bd_err *err)
{
    const char *backing = bd_opts_get(o, "backing_file");
    const char *fmt = bd_opts_get(o, "backing_fmt");
    struct qcow_header h = { .magic = QCOW_MAGIC, .version = QCOW_VERSION };
    uint64_t hsize = QCOW_HEADER_SIZE, l1_entries, l1_bytes;
    size_t blen = backing ? strlen(backing) : 0;
    unsigned shift;
    uint8_t *buf;
    int r;

    if (fmt && !backing)
        return bd_err_set(err, EINVAL, "backing_fmt needs backing_file");
    if (backing && (blen == 0 || blen > QCOW_MAX_BACKING_NAME))
        return bd_err_set(err, EINVAL, "qcow backing file names are 1 to %u "
                          "bytes long", QCOW_MAX_BACKING_NAME);
    if (backing) {
        r = check_backing(file, backing, fmt, &size, err);
        if (r < 0)
            return r;
    }
    if (size == 0)
        return bd_err_set(err, EINVAL, "a qcow image cannot be empty: give a "
                          "size");
    size = bd_align_up(size, BD_SECTOR);
    if (size > QCOW_MAX_SIZE)
        return bd_err_set(err, EFBIG, "disk size %llu is too large for qcow (at "
                          "most %llu)", (unsigned long long)size,
                          (unsigned long long)QCOW_MAX_SIZE);
    if (backing) {
        /* sector-sized clusters: a partial write copies little from the
         * backing file */
        h.cluster_bits = 9;
        h.l2_bits = 12;
        h.backing_off = QCOW_HEADER_SIZE;
        h.backing_len = (uint32_t)blen;
        hsize = bd_align_up(QCOW_HEADER_SIZE + blen, 8);
    } else {
        h.cluster_bits = 12;
        h.l2_bits = 9;
    }
    h.size = size;
    h.l1_off = hsize;
    shift = h.cluster_bits + h.l2_bits;
    l1_entries = (size + (1ull << shift) - 1) >> shift;
    if (l1_entries > QCOW_MAX_L1_ENTRIES)
        return bd_err_set(err, EFBIG, "disk size %llu is too large for qcow",
                          (unsigned long long)size);
    l1_bytes = bd_align_up(l1_entries * 8, BD_SECTOR);

    buf = calloc(1, hsize + l1_bytes);
    if (!buf)
        return bd_err_set(err, ENOMEM, "no memory for the qcow L1 table");
    qcow_header_encode(&h, buf);
    if (backing)
        memcpy(buf + QCOW_HEADER_SIZE, backing, blen);
    r = bd_truncate(file, hsize + l1_bytes, BD_PREALLOC_OFF, err);
    if (r == 0)
        r = bd_pwrite(file, buf, hsize + l1_bytes, 0, 0);
    free(buf);
    if (r < 0 && !err->errnum)
        bd_err_set(err, -r, "cannot write the qcow header: %s", strerror(-r));
    return r;
}

const struct bd_create_ops qcow_create_ops = {
    .options = qcow_create_options,
    .create = qcow_create,
};
