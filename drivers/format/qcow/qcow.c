/*
 * qcow (version 1): header decoding and checks, the L1 table, the backing
 * file, open/close, probe, info and the ops table. Reads and writes are in
 * io.c, image creation in create.c, AES encryption in crypt.c.
 */
#include "qcow.h"

#include <stdlib.h>
#include <string.h>

/* ---- on-disk header ------------------------------------------------------ */

void qcow_header_decode(const uint8_t *b, struct qcow_header *h)
{
    h->magic = bd_be32(b);
    h->version = bd_be32(b + 4);
    h->backing_off = bd_be64(b + 8);
    h->backing_len = bd_be32(b + 16);
    h->mtime = bd_be32(b + 20);
    h->size = bd_be64(b + 24);
    h->cluster_bits = b[32];
    h->l2_bits = b[33];
    /* two bytes of padding at 34 */
    h->crypt_method = bd_be32(b + 36);
    h->l1_off = bd_be64(b + 40);
}

void qcow_header_encode(const struct qcow_header *h, uint8_t *b)
{
    memset(b, 0, QCOW_HEADER_SIZE);
    bd_put_be32(b, h->magic);
    bd_put_be32(b + 4, h->version);
    bd_put_be64(b + 8, h->backing_off);
    bd_put_be32(b + 16, h->backing_len);
    bd_put_be32(b + 20, h->mtime);
    bd_put_be64(b + 24, h->size);
    b[32] = h->cluster_bits;
    b[33] = h->l2_bits;
    bd_put_be32(b + 36, h->crypt_method);
    bd_put_be64(b + 40, h->l1_off);
}

/* ---- open ---------------------------------------------------------------- */

static int qcow_check_header(struct bd_node *n, struct bd_err *err)
{
    const struct qcow_header *h = &((struct qcow_state *)n->state)->h;

    if (h->magic != QCOW_MAGIC)
        return bd_err_set(err, EINVAL, "%s: not a qcow image (bad magic)",
                          n->name);
    if (h->version != QCOW_VERSION)
        return bd_err_set(err, ENOTSUP, "%s: qcow version %u is not supported "
                          "by the qcow driver (versions 2 and 3 are qcow2)",
                          n->name, h->version);
    if (h->crypt_method != QCOW_CRYPT_NONE && h->crypt_method != QCOW_CRYPT_AES)
        return bd_err_set(err, ENOTSUP, "%s: unknown qcow encryption method %u",
                          n->name, h->crypt_method);
    if (h->size <= 1)
        return bd_err_set(err, EINVAL, "%s: qcow image size %llu is too small",
                          n->name, (unsigned long long)h->size);
    if (h->size > QCOW_MAX_SIZE)
        return bd_err_set(err, EFBIG, "%s: qcow image size %llu is too large "
                          "(at most %llu supported)", n->name,
                          (unsigned long long)h->size,
                          (unsigned long long)QCOW_MAX_SIZE);
    if (h->cluster_bits < QCOW_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW_MAX_CLUSTER_BITS)
        return bd_err_set(err, EINVAL, "%s: invalid qcow cluster_bits %u (9 to "
                          "16 expected: clusters of 512 bytes to 64 KiB)",
                          n->name, h->cluster_bits);
    if (h->l2_bits < QCOW_MIN_L2_BITS || h->l2_bits > QCOW_MAX_L2_BITS)
        return bd_err_set(err, EINVAL, "%s: invalid qcow l2_bits %u (6 to 13 "
                          "expected: L2 tables of 512 bytes to 64 KiB)",
                          n->name, h->l2_bits);
    return 0;
}

static int qcow_load_l1(struct bd_node *n, struct bd_err *err)
{
    struct qcow_state *s = n->state;
    unsigned shift = s->h.cluster_bits + s->h.l2_bits;
    uint64_t entries = (s->h.size + (1ull << shift) - 1) >> shift;
    uint8_t *raw;
    int r;

    if (entries > QCOW_MAX_L1_ENTRIES)
        return bd_err_set(err, EFBIG, "%s: qcow L1 table of %llu entries is too "
                          "large (at most %u supported)", n->name,
                          (unsigned long long)entries, QCOW_MAX_L1_ENTRIES);
    if (s->h.l1_off < QCOW_HEADER_SIZE ||
        !ovf_range_ok(s->h.l1_off, entries * 8, s->file_size))
        return bd_err_set(err, EINVAL, "%s: qcow L1 table (%llu entries at offset "
                          "%llu) overlaps the header or lies beyond the end of "
                          "the file", n->name, (unsigned long long)entries,
                          (unsigned long long)s->h.l1_off);
    s->l1_entries = entries;
    s->l1 = calloc(entries, 8);
    raw = malloc(entries * 8);
    if (!s->l1 || !raw) {
        free(raw);
        return bd_err_set(err, ENOMEM, "%s: no memory for the qcow L1 table",
                          n->name);
    }
    r = bd_pread(n->file, raw, entries * 8, s->h.l1_off);
    if (r < 0) {
        free(raw);
        return bd_err_set(err, -r, "%s: cannot read the qcow L1 table: %s",
                          n->name, strerror(-r));
    }
    for (uint64_t i = 0; i < entries; i++)
        s->l1[i] = bd_be64(raw + 8 * i);
    free(raw);
    return 0;
}

static int qcow_open_backing(struct bd_node *n, const struct bd_opts *o,
                             struct bd_err *err)
{
    struct qcow_state *s = n->state;
    uint32_t len = s->h.backing_len;
    int64_t bsize;
    int r;

    if (s->h.backing_off == 0 || len == 0)
        return 0;
    if (len > QCOW_MAX_BACKING_NAME)
        return bd_err_set(err, EINVAL, "%s: qcow backing file name of %u bytes "
                          "is too long (at most %u)", n->name, len,
                          QCOW_MAX_BACKING_NAME);
    if (!ovf_range_ok(s->h.backing_off, len, s->file_size))
        return bd_err_set(err, EINVAL, "%s: qcow backing file name lies beyond "
                          "the end of the file", n->name);
    s->backing_name = calloc(1, (size_t)len + 1);
    if (!s->backing_name)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    r = bd_pread(n->file, s->backing_name, len, s->h.backing_off);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the qcow backing file name: "
                          "%s", n->name, strerror(-r));
    if (strlen(s->backing_name) != len)
        return bd_err_set(err, EINVAL, "%s: qcow backing file name holds a NUL "
                          "byte", n->name);
    /* qcow stores no backing format: core probes it */
    struct bd_opts *bo = bd_opts_sub(o, "backing");
    if (!bo)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    r = bd_open_backing_opts(n, s->backing_name, NULL, bo, err);
    bd_opts_free_view(bo);
    if (r < 0 || !n->backing)
        return r;
    bsize = bd_size(n->backing);
    if (bsize < 0)
        return bd_err_set(err, (int)-bsize, "%s: backing file '%s': %s", n->name,
                          s->backing_name, strerror((int)-bsize));
    s->backing_size = (uint64_t)bsize;
    return 0;
}

static int qcow_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    struct qcow_state *s = n->state;
    uint8_t raw[QCOW_HEADER_SIZE];
    int r;

    r = bd_read_image_header(n->file, n->name, "qcow", raw, sizeof(raw),
                             &s->file_size, err);
    if (r < 0)
        return r;
    qcow_header_decode(raw, &s->h);
    r = qcow_check_header(n, err);
    if (r == 0)
        r = qcow_crypt_open(n, o, err);
    if (r < 0)
        return r;
    /* QEMU sees whole sectors only */
    s->size = bd_align_down(s->h.size, BD_SECTOR);
    s->cluster_size = 1u << s->h.cluster_bits;
    s->l2_entries = 1u << s->h.l2_bits;
    r = qcow_load_l1(n, err);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < QCOW_L2_CACHE; i++) {
        s->l2[i].table = malloc((size_t)s->l2_entries * 8);
        if (!s->l2[i].table)
            return bd_err_set(err, ENOMEM, "%s: no memory for qcow L2 tables",
                              n->name);
    }
    s->cbuf = malloc(s->cluster_size);
    s->cluster = malloc(s->cluster_size);
    s->rmw = malloc(s->cluster_size);
    if (!s->cbuf || !s->cluster || !s->rmw)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    return qcow_open_backing(n, o, err);
}

static void qcow_close(struct bd_node *n)
{
    struct qcow_state *s = n->state;

    for (unsigned i = 0; i < QCOW_L2_CACHE; i++)
        free(s->l2[i].table);
    free(s->l1);
    free(s->backing_name);
    free(s->cbuf);
    free(s->cluster);
    free(s->rmw);
    qcow_io_free(s);
    qcow_crypt_close(s);
}

/* qcow2 shares the magic; the version tells them apart */
static int qcow_probe(const uint8_t *head, size_t len)
{
    if (len >= 8 && bd_be32(head) == QCOW_MAGIC && bd_be32(head + 4) == QCOW_VERSION)
        return 100;
    return 0;
}

static void qcow_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct qcow_state *s = n->state;

    lim->request_alignment = s->crypt ? BD_SECTOR : 1;     /* cipher sectors */
    lim->opt_transfer = s->cluster_size;
}

static int64_t qcow_size(struct bd_node *n)
{
    struct qcow_state *s = n->state;

    return (int64_t)s->size;
}

static void qcow_info(struct bd_node *n, struct bd_info *info)
{
    struct qcow_state *s = n->state;

    bd_info_add(info, "cluster size", "%u", s->cluster_size);
    bd_info_add(info, "l2 entries", "%u", s->l2_entries);
    bd_info_add(info, "encrypted", "%s", s->crypt ? "yes (aes)" : "no");
    if (s->backing_name)
        bd_info_add(info, "backing_file", "%s", s->backing_name);
}

static const char *const qcow_options[] = {
    "encrypt.key-secret", "encrypt.format", NULL,
};

/* qcow (version 1) has no resize in QEMU either: refuse with a way out. */
static int qcow_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                         struct bd_err *err)
{
    (void)prealloc;
    if ((int64_t)size == qcow_size(n))
        return 0;
    return bd_err_set(err, ENOTSUP, "%s: qcow (version 1) images cannot be resized "
                      "(QEMU cannot resize them either); convert the image to "
                      "qcow2 to resize it", n->name);
}

const struct bd_driver bd_drv_qcow = {
    .name = "qcow",
    .kind = BD_FORMAT,
    .options = qcow_options,
    .state_size = sizeof(struct qcow_state),
    .parallel = false,
    .probe = qcow_probe,
    .open = qcow_open,
    .close = qcow_close,
    .limits = qcow_limits,
    .size = qcow_size,
    .pread = qcow_pread,
    .pwrite = qcow_pwrite,
    .pwrite_zeroes = qcow_pwrite_zeroes,
    .block_status = qcow_block_status,
    .info = qcow_info,
    .truncate = qcow_truncate,
    .create = &qcow_create_ops,
};
