/*
 * qed create: a header cluster (with the backing file name after the
 * header, as QEMU writes it), an empty L1 table, nothing else. cluster_size
 * 4K..64K and table_size 1..16, powers of 2, as QEMU's create accepts.
 */
#include "qed.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

#define QED_CREATE_MAX_CLUSTER  (64u << 10)
#define QED_DEFAULT_CLUSTER     (64u << 10)
#define QED_DEFAULT_TABLE_SIZE  4u

static int qed_create_params(const struct bd_opts *o, uint64_t *cs, uint64_t *ts,
                             struct bd_err *err)
{
    int r;

    r = bd_opts_get_size(o, "cluster_size", QED_DEFAULT_CLUSTER, cs, err);
    if (r < 0 && r != -ENOENT)
        return r;
    if (!bd_is_pow2(*cs) || *cs < QED_MIN_CLUSTER || *cs > QED_CREATE_MAX_CLUSTER)
        return bd_err_set(err, EINVAL, "qed cluster_size %llu is not a power of 2 "
                          "from 4K to 64K", (unsigned long long)*cs);
    r = bd_opts_get_size(o, "table_size", QED_DEFAULT_TABLE_SIZE, ts, err);
    if (r < 0 && r != -ENOENT)
        return r;
    if (!bd_is_pow2(*ts) || *ts > QED_MAX_TABLE_SIZE)
        return bd_err_set(err, EINVAL, "qed table_size %llu is not a power of 2 "
                          "from 1 to 16", (unsigned long long)*ts);
    return 0;
}

static int qed_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                      struct bd_err *err)
{
    const char *backing = bd_opts_get(o, "backing_file");
    const char *bfmt = bd_opts_get(o, "backing_fmt");
    struct qed_header h = { .magic = QED_MAGIC, .header_size = 1 };
    uint64_t cs, ts, entries, max, blen = backing ? strlen(backing) : 0;
    uint8_t *hc;
    int r;

    r = qed_create_params(o, &cs, &ts, err);
    if (r < 0)
        return r;
    if (bfmt && !backing)
        return bd_err_set(err, EINVAL, "backing_fmt needs backing_file");
    if (blen > cs - QED_HEADER_BYTES || blen > QED_MAX_BACKING_NAME)
        return bd_err_set(err, EINVAL, "backing file name is too long for a qed "
                          "header (at most %llu bytes)",
                          (unsigned long long)(cs - QED_HEADER_BYTES));
    entries = cs * ts / 8;
    if (ovf_mul_u64(entries * entries, cs, &max))
        max = UINT64_MAX;
    size = bd_align_up(size, BD_SECTOR);
    if (size > max)
        return bd_err_set(err, EFBIG, "size %llu is too large for qed with "
                          "cluster_size %llu and table_size %llu (at most %llu)",
                          (unsigned long long)size, (unsigned long long)cs,
                          (unsigned long long)ts, (unsigned long long)max);
    h.cluster_size = (uint32_t)cs;
    h.table_size = (uint32_t)ts;
    h.l1_off = cs;
    h.image_size = size;
    if (backing) {
        h.features |= QED_F_BACKING_FILE;
        h.backing_off = QED_HEADER_BYTES;
        h.backing_len = (uint32_t)blen;
        /* the spec's only way to name a format: raw, never probed */
        if (bfmt && strcmp(bfmt, "raw") == 0)
            h.features |= QED_F_BACKING_NO_PROBE;
    }
    hc = calloc(1, cs);
    if (!hc)
        return bd_err_set(err, ENOMEM, "out of memory");
    qed_header_encode(&h, hc);
    if (backing)
        memcpy(hc + QED_HEADER_BYTES, backing, blen);
    r = bd_truncate(file, cs + cs * ts, BD_PREALLOC_OFF, err);
    if (r == 0)
        r = bd_pwrite(file, hc, cs, 0, 0);
    free(hc);
    if (r < 0 && !err->errnum)
        bd_err_set(err, -r, "cannot write the qed header: %s", strerror(-r));
    return r;
}

static const char *const qed_create_options[] = {
    "backing_file", "backing_fmt", "cluster_size", "table_size", NULL
};

const struct bd_create_ops qed_create_ops = {
    .options = qed_create_options,
    .create = qed_create,
};
