/*
 * qed: QEMU Enhanced Disk images, read-write, with backing files. This file
 * decodes and validates the header, opens and closes images and keeps the
 * need-check flag: set and flushed before the first metadata change,
 * cleared at flush and clean close; an image found with it set is checked
 * (and its leaks repaired) before a read-write mount.
 */
#include "qed.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

/* ---- header ------------------------------------------------------------ */

static void qed_header_decode(const uint8_t *b, struct qed_header *h)
{
    h->magic = bd_le32(b);
    h->cluster_size = bd_le32(b + 4);
    h->table_size = bd_le32(b + 8);
    h->header_size = bd_le32(b + 12);
    h->features = bd_le64(b + 16);
    h->compat_features = bd_le64(b + 24);
    h->autoclear_features = bd_le64(b + 32);
    h->l1_off = bd_le64(b + 40);
    h->image_size = bd_le64(b + 48);
    h->backing_off = bd_le32(b + 56);
    h->backing_len = bd_le32(b + 60);
}

void qed_header_encode(const struct qed_header *h, uint8_t *b)
{
    bd_put_le32(b, h->magic);
    bd_put_le32(b + 4, h->cluster_size);
    bd_put_le32(b + 8, h->table_size);
    bd_put_le32(b + 12, h->header_size);
    bd_put_le64(b + 16, h->features);
    bd_put_le64(b + 24, h->compat_features);
    bd_put_le64(b + 32, h->autoclear_features);
    bd_put_le64(b + 40, h->l1_off);
    bd_put_le64(b + 48, h->image_size);
    bd_put_le32(b + 56, h->backing_off);
    bd_put_le32(b + 60, h->backing_len);
}

static int qed_header_write(struct qed_state *s)
{
    uint8_t b[QED_HEADER_BYTES];

    qed_header_encode(&s->h, b);
    return bd_pwrite(s->n->file, b, sizeof(b), 0, 0);
}

int qed_mark_dirty(struct qed_state *s)
{
    int r;

    if (s->need_check_set)
        return 0;
    s->h.features |= QED_F_NEED_CHECK;
    r = qed_header_write(s);
    if (r == 0)
        r = bd_flush(s->n->file);
    if (r < 0) {
        s->h.features &= ~(uint64_t)QED_F_NEED_CHECK;
        return r;
    }
    s->need_check_set = true;
    return 0;
}

/* Everything written so far is on disk: the tables are consistent again. */
static int qed_mark_clean(struct qed_state *s)
{
    int r;

    if (!s->need_check_set)
        return 0;
    r = bd_flush(s->n->file);
    if (r < 0)
        return r;
    s->h.features &= ~(uint64_t)QED_F_NEED_CHECK;
    r = qed_header_write(s);
    if (r < 0) {
        s->h.features |= QED_F_NEED_CHECK;
        return r;
    }
    s->need_check_set = false;
    return 0;
}

static int qed_check_header(struct bd_node *n, uint64_t fsize, struct bd_err *err)
{
    struct qed_state *s = n->state;
    const struct qed_header *h = &s->h;
    uint64_t max_size, entries;

    if (h->magic != QED_MAGIC)
        return bd_err_set(err, EINVAL, "%s: not a qed image (bad magic)", n->name);
    if (!bd_is_pow2(h->cluster_size) || h->cluster_size < QED_MIN_CLUSTER ||
        h->cluster_size > QED_MAX_CLUSTER)
        return bd_err_set(err, EINVAL, "%s: invalid qed cluster size %u (a power "
                          "of 2 from 4 KiB to 64 MiB expected)", n->name,
                          h->cluster_size);
    if (!bd_is_pow2(h->table_size) || h->table_size > QED_MAX_TABLE_SIZE)
        return bd_err_set(err, EINVAL, "%s: invalid qed table size %u (a power "
                          "of 2 from 1 to 16 expected)", n->name, h->table_size);
    if ((uint64_t)h->cluster_size * h->table_size > QED_MAX_TABLE_BYTES)
        return bd_err_set(err, ENOTSUP, "%s: qed tables of %llu bytes are not "
                          "supported (at most %u)", n->name,
                          (unsigned long long)h->cluster_size * h->table_size,
                          QED_MAX_TABLE_BYTES);
    if (h->features & ~(uint64_t)QED_F_KNOWN)
        return bd_err_set(err, ENOTSUP, "%s: qed image uses unknown features "
                          "0x%llx", n->name,
                          (unsigned long long)(h->features & ~(uint64_t)QED_F_KNOWN));
    if (h->header_size == 0 ||
        (uint64_t)h->header_size * h->cluster_size > fsize)
        return bd_err_set(err, EINVAL, "%s: invalid qed header size of %u clusters",
                          n->name, h->header_size);
    if (h->l1_off % h->cluster_size || h->l1_off < s->header_bytes ||
        !ovf_range_ok(h->l1_off, s->table_bytes, fsize))
        return bd_err_set(err, EINVAL, "%s: qed L1 table offset %llu is unaligned, "
                          "in the header or beyond the end of the file", n->name,
                          (unsigned long long)h->l1_off);
    entries = s->table_entries;
    if (ovf_mul_u64(entries * entries, h->cluster_size, &max_size))
        max_size = UINT64_MAX;
    if (h->image_size % BD_SECTOR || h->image_size > max_size ||
        h->image_size > (uint64_t)INT64_MAX)
        return bd_err_set(err, EINVAL, "%s: invalid qed image size %llu (a multiple "
                          "of 512 up to %llu expected)", n->name,
                          (unsigned long long)h->image_size,
                          (unsigned long long)max_size);
    if ((h->features & QED_F_BACKING_FILE) &&
        (h->backing_len == 0 || h->backing_len > QED_MAX_BACKING_NAME ||
         !ovf_range_ok(h->backing_off, h->backing_len, s->header_bytes)))
        return bd_err_set(err, EINVAL, "%s: qed backing file name (%u bytes at %u) "
                          "is empty, too long or outside the header", n->name,
                          h->backing_len, h->backing_off);
    return 0;
}

/* ---- open and close ---------------------------------------------------- */

static int qed_load_l1(struct bd_node *n, struct bd_err *err)
{
    struct qed_state *s = n->state;
    uint8_t *raw = malloc(s->table_bytes);
    int r;

    s->l1 = calloc(s->table_entries, sizeof(*s->l1));
    s->l2 = calloc(s->table_entries, sizeof(*s->l2));
    if (!raw || !s->l1 || !s->l2) {
        free(raw);
        return bd_err_set(err, ENOMEM, "%s: no memory for the qed tables", n->name);
    }
    r = bd_pread(n->file, raw, s->table_bytes, s->h.l1_off);
    if (r < 0) {
        free(raw);
        return bd_err_set(err, -r, "%s: cannot read the qed L1 table: %s", n->name,
                          strerror(-r));
    }
    for (uint32_t i = 0; i < s->table_entries; i++)
        s->l1[i] = bd_le64(raw + 8 * (size_t)i);
    free(raw);
    return 0;
}

static int qed_read_backing_name(struct bd_node *n, struct bd_err *err)
{
    struct qed_state *s = n->state;
    int r;

    s->backing_name = calloc(1, s->h.backing_len + 1);
    if (!s->backing_name)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    r = bd_pread(n->file, s->backing_name, s->h.backing_len, s->h.backing_off);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the qed backing file name: %s",
                          n->name, strerror(-r));
    if (strlen(s->backing_name) != s->h.backing_len)
        return bd_err_set(err, EINVAL, "%s: qed backing file name holds a NUL byte",
                          n->name);
    return 0;
}

/*
 * The flag says a writer stopped between changing tables and flushing them
 * (QED_F_NEED_CHECK, spec "Consistency checking"). Read-write: check and
 * repair now, as QEMU does, so writes start from consistent tables.
 * Read-only: the tables are read as they are, with a warning.
 */
static int qed_open_need_check(struct bd_node *n, struct bd_err *err)
{
    struct qed_state *s = n->state;
    struct bd_check res = { 0 };
    int r;

    if (s->read_only) {
        log_warn("%s: the qed image needs a consistency check (it was not closed "
                 "cleanly); reading it as it is: mount it read-write or run "
                 "'imgfuse check -r leaks' to repair it", n->name);
        return 0;
    }
    r = qed_check_run(s, BD_CHECK_FIX_LEAKS | BD_CHECK_FIX_ERRORS, &res, err);
    if (r < 0)
        return r;
    if (res.corruptions)
        return bd_err_set(err, EUCLEAN, "%s: the qed image needs a check and has "
                          "%llu errors that cannot be repaired; mount it read-only "
                          "to copy the data out", n->name,
                          (unsigned long long)res.corruptions);
    s->open_fixed = res;
    if (res.leaks_fixed || res.corruptions_fixed)
        log_info("%s: qed consistency check repaired %llu leaks and %llu errors",
                 n->name, (unsigned long long)res.leaks_fixed,
                 (unsigned long long)res.corruptions_fixed);
    s->need_check_set = true;
    r = qed_mark_clean(s);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot clear the qed need-check flag: %s",
                          n->name, strerror(-r));
    return 0;
}

static int qed_open_backing(struct bd_node *n, struct bd_err *err)
{
    struct qed_state *s = n->state;
    const char *fmt = (s->h.features & QED_F_BACKING_NO_PROBE) ? "raw" : NULL;
    int64_t bs;
    int r;

    r = bd_open_backing(n, s->backing_name, fmt, err);
    if (r < 0 || !n->backing)
        return r;
    bs = bd_size(n->backing);
    if (bs < 0)
        return bd_err_set(err, (int)-bs, "%s: backing file '%s': %s", n->name,
                          s->backing_name, strerror((int)-bs));
    s->backing_size = (uint64_t)bs;
    return 0;
}

static int qed_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    struct qed_state *s = n->state;
    uint8_t raw[QED_HEADER_BYTES];
    int64_t fsize;
    int r;

    (void)o;
    s->n = n;
    s->read_only = n->flags.read_only;
    fsize = bd_size(n->file);
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    if (fsize < (int64_t)QED_HEADER_BYTES)
        return bd_err_set(err, EINVAL, "%s: file is too small to be a qed image",
                          n->name);
    r = bd_pread(n->file, raw, sizeof(raw), 0);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the qed header: %s", n->name,
                          strerror(-r));
    qed_header_decode(raw, &s->h);
    if (bd_is_pow2(s->h.cluster_size) && s->h.cluster_size >= QED_MIN_CLUSTER &&
        s->h.cluster_size <= QED_MAX_CLUSTER && bd_is_pow2(s->h.table_size) &&
        s->h.table_size <= QED_MAX_TABLE_SIZE) {
        s->cluster_bits = (uint32_t)__builtin_ctz(s->h.cluster_size);
        s->table_bytes = (uint64_t)s->h.cluster_size * s->h.table_size;
        s->table_entries = (uint32_t)(s->table_bytes / 8);
        s->table_bits = (uint32_t)__builtin_ctz(s->table_entries);
        s->header_bytes = (uint64_t)s->h.header_size * s->h.cluster_size;
    }
    r = qed_check_header(n, (uint64_t)fsize, err);
    if (r < 0)
        return r;
    if (pthread_mutex_init(&s->alloc_lock, NULL))
        return bd_err_set(err, ENOMEM, "%s: cannot create locks", n->name);
    if (pthread_mutex_init(&s->l2_lock, NULL)) {
        pthread_mutex_destroy(&s->alloc_lock);
        return bd_err_set(err, ENOMEM, "%s: cannot create locks", n->name);
    }
    s->locks_ready = true;
    s->file_end = bd_align_up((uint64_t)fsize, s->h.cluster_size);
    r = qed_load_l1(n, err);
    if (r < 0)
        return r;
    if (s->h.features & QED_F_BACKING_FILE) {
        r = qed_read_backing_name(n, err);
        if (r < 0)
            return r;
    }
    if (!s->read_only && s->h.autoclear_features) {
        /* unknown autoclear bits are dropped by whoever writes (spec) */
        s->h.autoclear_features = 0;
        r = qed_header_write(s);
        if (r < 0)
            return bd_err_set(err, -r, "%s: cannot write the qed header: %s",
                              n->name, strerror(-r));
    }
    if (s->h.features & QED_F_NEED_CHECK) {
        r = qed_open_need_check(n, err);
        if (r < 0)
            return r;
    }
    if (s->backing_name)
        return qed_open_backing(n, err);
    return 0;
}

static void qed_close(struct bd_node *n)
{
    struct qed_state *s = n->state;
    int r;

    if (s->locks_ready && !s->read_only) {
        pthread_mutex_lock(&s->alloc_lock);
        r = qed_mark_clean(s);
        pthread_mutex_unlock(&s->alloc_lock);
        if (r < 0)
            log_err("%s: cannot clear the qed need-check flag at close: %s (the "
                    "next open checks the image)", n->name, strerror(-r));
    }
    if (s->l2)
        qed_tables_free_l2(s);
    free(s->l2);
    free(s->l1);
    free(s->backing_name);
    if (s->locks_ready) {
        pthread_mutex_destroy(&s->alloc_lock);
        pthread_mutex_destroy(&s->l2_lock);
        s->locks_ready = false;
    }
}

static int qed_flush(struct bd_node *n)
{
    struct qed_state *s = n->state;
    int r;

    if (s->read_only)
        return 0;
    pthread_mutex_lock(&s->alloc_lock);
    r = qed_mark_clean(s);
    pthread_mutex_unlock(&s->alloc_lock);
    return r;
}

/* ---- small callbacks ---------------------------------------------------- */

static int qed_probe(const uint8_t *head, size_t len)
{
    if (len >= QED_HEADER_BYTES && bd_le32(head) == QED_MAGIC)
        return 100;
    return 0;
}

static void qed_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct qed_state *s = n->state;

    lim->request_alignment = BD_SECTOR;
    lim->opt_transfer = s->h.cluster_size;
}

static int64_t qed_size(struct bd_node *n)
{
    struct qed_state *s = n->state;

    return (int64_t)s->h.image_size;
}

static void qed_info(struct bd_node *n, struct bd_info *info)
{
    struct qed_state *s = n->state;

    bd_info_add(info, "cluster size", "%u", s->h.cluster_size);
    bd_info_add(info, "table size", "%u", s->h.table_size);
    if (s->backing_name)
        bd_info_add(info, "backing file", "%s", s->backing_name);
    if (s->h.features & QED_F_BACKING_NO_PROBE)
        bd_info_add(info, "backing file format", "raw");
    bd_info_add(info, "need check", "%s",
                (s->h.features & QED_F_NEED_CHECK) ? "yes" : "no");
}

static const char *const qed_options[] = { NULL };

const struct bd_driver bd_drv_qed = {
    .name = "qed",
    .kind = BD_FORMAT,
    .options = qed_options,
    .state_size = sizeof(struct qed_state),
    .parallel = true,
    .probe = qed_probe,
    .open = qed_open,
    .close = qed_close,
    .limits = qed_limits,
    .size = qed_size,
    .pread = qed_pread,
    .pwrite = qed_pwrite,
    .pwrite_zeroes = qed_pwrite_zeroes,
    .discard = qed_discard,
    .flush = qed_flush,
    .block_status = qed_block_status,
    .info = qed_info,
    .check = qed_check,
    .truncate = qed_truncate,
    .create = &qed_create_ops,
};
