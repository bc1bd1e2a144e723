/*
 * qcow2 image creation: option checking (the combinations QEMU refuses are
 * refused here too), layout of header, refcount structures, L1 and, with
 * preallocation, L2 tables and data clusters, written onto an empty file.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const qcow2_create_options[] = {
    "compat", "cluster_size", "refcount_bits", "lazy_refcounts",
    "backing_file", "backing_fmt", "compression_type", "extended_l2",
    "preallocation", "data_file", "data_file_raw", "nocow",
    "encrypt.format", "encryption", "encrypt.key-secret", "encrypt.cipher-alg",
    "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg",
    "encrypt.hash-alg", "encrypt.iter-time", NULL,
};

struct create_params {
    unsigned version;
    uint32_t cluster_bits;
    uint32_t refcount_order;
    bool lazy;
    const char *backing_file;
    const char *backing_fmt;
    int compression;
    bool ext_l2;
    int prealloc;                 /* enum bd_prealloc */
    const char *data_file;
    bool data_raw;
    uint32_t crypt_method;        /* 0, QCOW2_CRYPT_AES or _LUKS */
    uint64_t crypt_len;           /* bytes of the LUKS header */
};

static int log2_exact(uint64_t v)
{
    int b = 0;
    if (!bd_is_pow2(v))
        return -1;
    while ((1ull << b) != v)
        b++;
    return b;
}

static int parse_params(const struct bd_opts *o, uint64_t size,
                        struct create_params *p, struct bd_err *err)
{
    static const char *const compats[] = { "0.10", "1.1", "v2", "v3", NULL };
    static const char *const ctypes[] = { "zlib", "zstd", NULL };
    static const char *const preallocs[] = { "off", "metadata", "falloc",
                                             "full", NULL };
    uint64_t cs, rb;
    int ret;

    memset(p, 0, sizeof(*p));
    ret = bd_opts_get_enum(o, "compat", compats, 1, err);
    if (ret < 0)
        return ret;
    p->version = (ret == 0 || ret == 2) ? 2 : 3;
    ret = bd_opts_get_size(o, "cluster_size", 65536, &cs, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    int cb = log2_exact(cs);
    if (cb < 9 || cb > 21)
        return bd_err_set(err, EINVAL,
                          "cluster_size must be a power of two between 512 "
                          "and 2M, not %" PRIu64, cs);
    p->cluster_bits = (uint32_t)cb;
    ret = bd_opts_get_size(o, "refcount_bits", 16, &rb, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    int ro = log2_exact(rb);
    if (ro < 0 || ro > 6)
        return bd_err_set(err, EINVAL,
                          "refcount_bits must be a power of two up to 64, not %"
                          PRIu64, rb);
    p->refcount_order = (uint32_t)ro;
    ret = bd_opts_get_bool(o, "lazy_refcounts", false, &p->lazy, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    p->backing_file = bd_opts_get(o, "backing_file");
    p->backing_fmt = bd_opts_get(o, "backing_fmt");
    ret = bd_opts_get_enum(o, "compression_type", ctypes, 0, err);
    if (ret < 0)
        return ret;
    p->compression = ret;
    ret = bd_opts_get_bool(o, "extended_l2", false, &p->ext_l2, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = bd_opts_get_enum(o, "preallocation", preallocs, 0, err);
    if (ret < 0)
        return ret;
    p->prealloc = ret;
    p->data_file = bd_opts_get(o, "data_file");
    ret = bd_opts_get_bool(o, "data_file_raw", false, &p->data_raw, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    bool nocow;
    ret = bd_opts_get_bool(o, "nocow", false, &nocow, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;

    if (size % 512)
        return bd_err_set(err, EINVAL,
                          "qcow2 image size must be a multiple of 512 bytes");
    if (p->version == 2) {
        if (p->lazy)
            return bd_err_set(err, EINVAL,
                              "lazy_refcounts needs compat=1.1 or later");
        if (p->refcount_order != 4)
            return bd_err_set(err, EINVAL,
                              "refcount_bits other than 16 needs compat=1.1 "
                              "or later");
        if (p->compression != QCOW2_COMPRESS_ZLIB)
            return bd_err_set(err, EINVAL,
                              "compression_type zstd needs compat=1.1 or later");
        if (p->ext_l2)
            return bd_err_set(err, EINVAL,
                              "extended_l2 needs compat=1.1 or later");
        if (p->data_file)
            return bd_err_set(err, EINVAL,
                              "data_file needs compat=1.1 or later");
    }
    if (p->ext_l2 && p->cluster_bits < 14)
        return bd_err_set(err, EINVAL,
                          "extended_l2 needs a cluster size of at least 16K");
    if (p->data_raw && !p->data_file)
        return bd_err_set(err, EINVAL, "data_file_raw needs data_file");
    if (p->data_raw && p->backing_file)
        return bd_err_set(err, EINVAL,
                          "a raw external data file cannot have a backing "
                          "file");
    if (p->backing_fmt && !p->backing_file)
        return bd_err_set(err, EINVAL, "backing_fmt needs backing_file");
    if (p->backing_file && strlen(p->backing_file) > QCOW2_MAX_BACKING_NAME)
        return bd_err_set(err, EINVAL, "backing file name too long");
    if (p->backing_fmt && strlen(p->backing_fmt) > 63)
        return bd_err_set(err, EINVAL, "backing format name too long");
    if (p->backing_file && p->prealloc != BD_PREALLOC_OFF && !p->ext_l2)
        return bd_err_set(err, EINVAL,
                          "preallocation with a backing file needs "
                          "extended_l2=on");
    ret = qcow2_crypt_create_method(o, &p->crypt_method, err);
    if (ret == 0)
        ret = qcow2_crypt_create_len(o, p->crypt_method, &p->crypt_len, err);
    if (ret < 0)
        return ret;
    if (p->crypt_method && (p->data_file || p->prealloc != BD_PREALLOC_OFF))
        return bd_err_set(err, ENOTSUP, "an encrypted image cannot have %s",
                          p->data_file ? "an external data file"
                                       : "preallocation");
    return 0;
}

static size_t put_ext(uint8_t *buf, size_t off, uint32_t type, const void *data,
                      size_t len)
{
    bd_put_be32(buf + off, type);
    bd_put_be32(buf + off + 4, (uint32_t)len);
    memcpy(buf + off + 8, data, len);
    return off + 8 + bd_align_up(len, 8);
}

static void rb_set_one(uint8_t *b, uint32_t order, uint64_t i)
{
    switch (order) {
    case 0: case 1: case 2: {
        unsigned per = 8u >> order;
        b[i / per] |= (uint8_t)(1u << ((i % per) << order));
        break;
    }
    case 3: b[i] = 1; break;
    case 4: bd_put_be16(b + i * 2, 1); break;
    case 5: bd_put_be32(b + i * 4, 1); break;
    default: bd_put_be64(b + i * 8, 1); break;
    }
}

/* Build the header cluster; 0 or -ENOSPC when it does not fit. */
static int build_header(uint8_t *h, uint64_t cs, uint64_t size,
                        const struct create_params *p, uint32_t l1_entries,
                        uint64_t l1_off, uint64_t rt_off, uint64_t rt_clusters,
                        uint64_t crypt_off)
{
    static const struct { uint8_t type, bit; const char *name; } names[] = {
        { 0, 0, "dirty bit" }, { 0, 1, "corrupt bit" },
        { 0, 2, "external data file" }, { 0, 3, "compression type" },
        { 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
        { 2, 0, "bitmaps" }, { 2, 1, "raw external data" },
    };
    size_t hlen = p->version == 2 ? QCOW2_V2_HEADER_LEN : 112;
    size_t blen = p->backing_file ? strlen(p->backing_file) : 0;
    size_t need = hlen + 8 + blen;

    if (p->backing_fmt)
        need += 8 + bd_align_up(strlen(p->backing_fmt), 8);
    if (p->data_file)
        need += 8 + bd_align_up(strlen(p->data_file), 8);
    if (p->crypt_len)
        need += 8 + 16;
    if (need > cs)
        return -ENOSPC;
    bool with_table = p->version == 3 && need + 8 + sizeof(names) /
                      sizeof(names[0]) * 48 <= cs;

    memset(h, 0, cs);
    bd_put_be32(h, QCOW2_MAGIC);
    bd_put_be32(h + 4, p->version);
    bd_put_be32(h + 20, p->cluster_bits);
    bd_put_be64(h + 24, size);
    bd_put_be32(h + 32, p->crypt_method);
    bd_put_be32(h + 36, l1_entries);
    bd_put_be64(h + 40, l1_off);
    bd_put_be64(h + 48, rt_off);
    bd_put_be32(h + 56, (uint32_t)rt_clusters);
    if (p->version == 3) {
        uint64_t incompat = 0, compat = 0, autoclear = 0;
        if (p->data_file)
            incompat |= QCOW2_INCOMPAT_DATA_FILE;
        if (p->compression)
            incompat |= QCOW2_INCOMPAT_COMPRESSION;
        if (p->ext_l2)
            incompat |= QCOW2_INCOMPAT_EXTL2;
        if (p->lazy)
            compat |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        if (p->data_raw)
            autoclear |= QCOW2_AUTOCLEAR_DATA_RAW;
        bd_put_be64(h + 72, incompat);
        bd_put_be64(h + 80, compat);
        bd_put_be64(h + 88, autoclear);
        bd_put_be32(h + 96, p->refcount_order);
        bd_put_be32(h + 100, (uint32_t)hlen);
        h[104] = (uint8_t)p->compression;
    }
    size_t off = hlen;
    if (p->backing_fmt)
        off = put_ext(h, off, QCOW2_EXT_BACKING_FMT, p->backing_fmt,
                      strlen(p->backing_fmt));
    if (p->data_file)
        off = put_ext(h, off, QCOW2_EXT_DATA_FILE, p->data_file,
                      strlen(p->data_file));
    if (p->crypt_len) {
        uint8_t x[16];
        bd_put_be64(x, crypt_off);
        bd_put_be64(x + 8, p->crypt_len);
        off = put_ext(h, off, QCOW2_EXT_CRYPTO, x, sizeof(x));
    }
    if (with_table) {
        uint8_t t[8 * 48];
        size_t n = sizeof(names) / sizeof(names[0]);
        memset(t, 0, sizeof(t));
        for (size_t i = 0; i < n; i++) {
            t[i * 48] = names[i].type;
            t[i * 48 + 1] = names[i].bit;
            memcpy(t + i * 48 + 2, names[i].name, strlen(names[i].name));
        }
        off = put_ext(h, off, QCOW2_EXT_FEATURES, t, n * 48);
    }
    off += 8;                                   /* end of extensions */
    if (p->backing_file) {
        memcpy(h + off, p->backing_file, blen);
        bd_put_be64(h + 8, off);
        bd_put_be32(h + 16, (uint32_t)blen);
    }
    return 0;
}

/* What the file underneath gets: "metadata" means a sparse file there. */
static enum bd_prealloc file_prealloc(const struct create_params *p)
{
    return p->prealloc == BD_PREALLOC_METADATA ? BD_PREALLOC_OFF
                                               : (enum bd_prealloc)p->prealloc;
}

/* The data file, on the image's storage (next to it, or a path on the
 * same server); an existing file is emptied and used, as qemu-img does.
 * *made_path is set when the file is new, for removal after a failure. */
static int create_data_file(struct bd_node *file, const struct create_params *p,
                            uint64_t size, char **made_path, struct bd_err *err)
{
    struct bd_node *dn = NULL;
    char *path = NULL;
    int ret;

    /* named by the user at creation: relative to the new image */
    ret = bd_create_related(file, p->data_file, false, &dn, &path, err);
    if (ret < 0) {
        bd_err_prefix(err, "cannot create the data file '%s'", p->data_file);
        return ret;
    }
    if (ret == 0)
        *made_path = path;
    else
        free(path);
    ret = bd_truncate(dn, size, file_prealloc(p), err);
    bd_node_close(dn);
    return ret;
}

int qcow2_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                 struct bd_err *err)
{
    struct create_params p;
    int ret = parse_params(o, size, &p, err);
    if (ret < 0)
        return ret;

    uint64_t cs = 1ull << p.cluster_bits;
    uint64_t l2_entries = cs / (p.ext_l2 ? 16 : 8);
    uint64_t per_l1 = cs * l2_entries;
    uint64_t l1_entries = (size + per_l1 - 1) / per_l1;
    if (l1_entries * 8 > QCOW2_MAX_L1_BYTES)
        return bd_err_set(err, EFBIG,
                          "image size too large for cluster_size %" PRIu64, cs);
    uint64_t l1_cl = (l1_entries * 8 + cs - 1) / cs;
    if (l1_cl == 0)
        l1_cl = 1;
    uint64_t size_cl = (size + cs - 1) / cs;
    bool prealloc = p.prealloc != BD_PREALLOC_OFF;
    uint64_t n_l2 = prealloc ? (size_cl + l2_entries - 1) / l2_entries : 0;
    uint64_t n_data = (prealloc && !p.data_file) ? size_cl : 0;
    uint64_t rb_entries = cs * 8 >> p.refcount_order;
    uint64_t crypt_cl = (p.crypt_len + cs - 1) / cs;  /* after the header */
    uint64_t meta = 1 + crypt_cl + l1_cl + n_l2 + n_data;
    uint64_t k = 1, m = 1;
    for (int it = 0; it < 64; it++) {
        uint64_t total = meta + k + m;
        uint64_t nm = (total + rb_entries - 1) / rb_entries;
        uint64_t nk = (nm * 8 + cs - 1) / cs;
        if (nm == m && nk == k)
            break;
        m = nm;
        k = nk;
    }
    if (k * cs > QCOW2_MAX_REFTABLE_BYTES)
        return bd_err_set(err, EFBIG,
                          "image too large for its refcount table; use a "
                          "larger cluster_size");
    uint64_t rt_off = cs + crypt_cl * cs;
    uint64_t rb_off = rt_off + k * cs;
    uint64_t l1_off = rb_off + m * cs;
    uint64_t l2_off = l1_off + l1_cl * cs;
    uint64_t data_off = l2_off + n_l2 * cs;
    uint64_t total = 1 + crypt_cl + k + m + l1_cl + n_l2 + n_data;
    char *data_path = NULL;
    uint8_t *buf = NULL, *big = NULL;

    if (p.data_file) {
        ret = create_data_file(file, &p, size, &data_path, err);
        if (ret < 0)
            goto out_free;
    }

    buf = calloc(1, cs);
    if (!buf) {
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out_free;
    }
    if (build_header(buf, cs, size, &p, (uint32_t)l1_entries,
                     l1_entries ? l1_off : 0, rt_off, k, cs) < 0) {
        ret = bd_err_set(err, EINVAL,
                         "the header does not fit in one %" PRIu64 "-byte "
                         "cluster (names too long)", cs);
        goto out_free;
    }
    ret = bd_pwrite(file, buf, cs, 0, 0);
    if (ret < 0)
        goto out_io;

    /* refcount table and blocks: clusters [0, total) have refcount 1 */
    big = calloc(k, cs);
    if (!big) {
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out_free;
    }
    for (uint64_t i = 0; i < m; i++)
        bd_put_be64(big + i * 8, rb_off + i * cs);
    ret = bd_pwrite(file, big, k * cs, rt_off, 0);
    if (ret < 0)
        goto out_io;
    for (uint64_t i = 0; i < m; i++) {
        memset(buf, 0, cs);
        for (uint64_t c = i * rb_entries; c < total && c < (i + 1) * rb_entries;
             c++)
            rb_set_one(buf, p.refcount_order, c - i * rb_entries);
        ret = bd_pwrite(file, buf, cs, rb_off + i * cs, 0);
        if (ret < 0)
            goto out_io;
    }

    /* L1 (and L2 tables with preallocation) */
    free(big);
    big = calloc(l1_cl, cs);
    if (!big) {
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out_free;
    }
    for (uint64_t i = 0; i < n_l2; i++)
        bd_put_be64(big + i * 8, (l2_off + i * cs) | QCOW2_OFLAG_COPIED);
    ret = bd_pwrite(file, big, l1_cl * cs, l1_off, 0);
    if (ret < 0)
        goto out_io;
    for (uint64_t i = 0; i < n_l2; i++) {
        memset(buf, 0, cs);
        for (uint64_t j = 0; j < l2_entries; j++) {
            uint64_t c = i * l2_entries + j;
            if (c >= size_cl)
                break;
            uint64_t host = p.data_file ? c * cs : data_off + c * cs;
            uint8_t *e = buf + j * (p.ext_l2 ? 16 : 8);
            bd_put_be64(e, host | QCOW2_OFLAG_COPIED);
            /* allocated subclusters read as zeroes from the file; with a
             * backing file they stay unallocated so the backing shows */
            if (p.ext_l2 && !p.backing_file)
                bd_put_be64(e + 8, 0xffffffffull);
        }
        ret = bd_pwrite(file, buf, cs, l2_off + i * cs, 0);
        if (ret < 0)
            goto out_io;
    }
    if (n_data) {
        ret = bd_truncate(file, data_off + n_data * cs, file_prealloc(&p),
                          err);
        if (ret < 0)
            goto out_free;
    }
    if (p.crypt_len) {
        ret = qcow2_crypt_create_write(file, o, cs, err);
        if (ret < 0)
            goto out_free;
    }
    ret = bd_flush(file);
    if (ret < 0)
        goto out_io;
    ret = 0;
    goto out_free;

out_io:
    ret = bd_err_set(err, -ret, "cannot write the new qcow2 image: %s",
                     strerror(-ret));
out_free:
    if (ret < 0 && data_path)
        bd_remove_related(file, data_path);
    free(data_path);
    free(big);
    free(buf);
    return ret;
}
