/*
 * qcow2 header, header extensions and snapshot table: decoding and checking
 * of every field read from the image. No I/O here: callers pass buffers, so
 * hostile headers are unit-tested without files. Rewriting is not done:
 * the driver only patches single fields in place (header-write.c).
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool in_file(uint64_t off, uint64_t len, uint64_t file_size)
{
    return ovf_range_ok(off, len, file_size);
}

/* The v3 fields after the v2 header; a v2 header gets their implied
 * values. */
static int decode_v3(const uint8_t *buf, size_t len, uint64_t file_size,
                     uint64_t cs, const char *name, struct qcow2_header *h,
                     struct bd_err *err)
{
    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_len = QCOW2_V2_HEADER_LEN;
        return 0;
    }
    if (len < QCOW2_V3_HEADER_LEN || file_size < QCOW2_V3_HEADER_LEN)
        return bd_err_set(err, EINVAL,
                          "%s: file too short for a qcow2 v3 header", name);
    h->incompat = bd_be64(buf + 72);
    h->compat = bd_be64(buf + 80);
    h->autoclear = bd_be64(buf + 88);
    h->refcount_order = bd_be32(buf + 96);
    h->header_len = bd_be32(buf + 100);
    if (h->header_len < QCOW2_V3_HEADER_LEN || h->header_len % 8 ||
        h->header_len > cs || h->header_len > len)
        return bd_err_set(err, EINVAL,
                          "%s: invalid qcow2 header length %" PRIu32, name,
                          h->header_len);
    if (h->refcount_order > 6)
        return bd_err_set(err, EINVAL,
                          "%s: invalid refcount width (refcount_order %"
                          PRIu32 ", at most 6)", name, h->refcount_order);
    if (h->header_len > 104)
        h->compression_type = buf[104];
    return 0;
}

/* Feature bits against each other and the fields they govern. */
static int check_features(const struct qcow2_header *h, const char *name,
                          struct bd_err *err)
{
    if (h->incompat & QCOW2_INCOMPAT_COMPRESSION) {
        if (h->compression_type == 0)
            return bd_err_set(err, EINVAL,
                              "%s: compression type feature set but the "
                              "compression_type field is zero", name);
    } else if (h->compression_type != 0) {
        return bd_err_set(err, EINVAL,
                          "%s: compression_type %u without the compression "
                          "type feature bit", name, h->compression_type);
    }
    if (h->compression_type > QCOW2_COMPRESS_ZSTD)
        return bd_err_set(err, ENOTSUP,
                          "%s: unknown compression type %u", name,
                          h->compression_type);

    if ((h->incompat & QCOW2_INCOMPAT_EXTL2) && h->cluster_bits < 14)
        return bd_err_set(err, EINVAL,
                          "%s: extended L2 entries need clusters of at least "
                          "16 KiB (cluster_bits %" PRIu32 ")", name,
                          h->cluster_bits);
    if ((h->autoclear & QCOW2_AUTOCLEAR_DATA_RAW) &&
        !(h->incompat & QCOW2_INCOMPAT_DATA_FILE))
        return bd_err_set(err, EINVAL,
                          "%s: raw external data bit set without an external "
                          "data file", name);

    if (h->crypt_method > 2)
        return bd_err_set(err, EINVAL,
                          "%s: unknown encryption method %" PRIu32, name,
                          h->crypt_method);
    return 0;
}

/* The virtual size: the L1 table must cover it, and stay within QEMU's
 * implementation limit (32 MiB of L1), inside the file. */
static int check_l1(const struct qcow2_header *h, uint64_t cs,
                    uint64_t file_size, const char *name, struct bd_err *err)
{
    uint32_t l2_entry_bytes = (h->incompat & QCOW2_INCOMPAT_EXTL2) ? 16 : 8;
    uint64_t l2_entries = cs / l2_entry_bytes;
    uint64_t per_l1 = cs * l2_entries;          /* <= 2^21 * 2^18 = 2^39 */

    if (h->size > (1ull << 62))
        return bd_err_set(err, EFBIG,
                          "%s: absurd virtual size %" PRIu64 " bytes", name,
                          h->size);
    uint64_t l1_needed = (h->size + per_l1 - 1) / per_l1;
    if ((uint64_t)h->l1_entries * 8 > QCOW2_MAX_L1_BYTES ||
        l1_needed * 8 > QCOW2_MAX_L1_BYTES)
        return bd_err_set(err, EFBIG,
                          "%s: L1 table too large (%" PRIu32 " entries, %" PRIu64
                          " needed)", name, h->l1_entries, l1_needed);
    if (h->l1_entries < l1_needed)
        return bd_err_set(err, EINVAL,
                          "%s: L1 table too small for the virtual size (%"
                          PRIu32 " entries, %" PRIu64 " needed)", name,
                          h->l1_entries, l1_needed);
    if (h->l1_entries) {
        if (h->l1_off % cs || h->l1_off == 0)
            return bd_err_set(err, EINVAL,
                              "%s: L1 table offset %#" PRIx64 " is not a "
                              "non-zero multiple of the cluster size", name,
                              h->l1_off);
        if (!in_file(h->l1_off, (uint64_t)h->l1_entries * 8, file_size))
            return bd_err_set(err, EINVAL,
                              "%s: L1 table (at %#" PRIx64 ", %" PRIu32
                              " entries) lies beyond the end of the file", name,
                              h->l1_off, h->l1_entries);
    }
    return 0;
}

/* The refcount table, snapshot table and backing file name lie where they
 * may. */
static int check_tables(const struct qcow2_header *h, uint64_t cs,
                        uint64_t file_size, const char *name,
                        struct bd_err *err)
{
    if (h->reftable_clusters == 0 ||
        (uint64_t)h->reftable_clusters * cs > QCOW2_MAX_REFTABLE_BYTES)
        return bd_err_set(err, EINVAL,
                          "%s: invalid refcount table size (%" PRIu32
                          " clusters)", name, h->reftable_clusters);
    if (h->reftable_off % cs || h->reftable_off == 0)
        return bd_err_set(err, EINVAL,
                          "%s: refcount table offset %#" PRIx64 " is not a "
                          "non-zero multiple of the cluster size", name,
                          h->reftable_off);
    if (!in_file(h->reftable_off, (uint64_t)h->reftable_clusters * cs,
                 file_size))
        return bd_err_set(err, EINVAL,
                          "%s: refcount table (at %#" PRIx64 ") lies beyond "
                          "the end of the file", name, h->reftable_off);

    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return bd_err_set(err, EINVAL,
                          "%s: too many snapshots (%" PRIu32 ")", name,
                          h->nb_snapshots);
    if (h->nb_snapshots) {
        if (h->snapshots_off % cs || h->snapshots_off == 0 ||
            h->snapshots_off >= file_size)
            return bd_err_set(err, EINVAL,
                              "%s: invalid snapshot table offset %#" PRIx64,
                              name, h->snapshots_off);
    }

    if (h->backing_off) {
        if (h->backing_len == 0 || h->backing_len > QCOW2_MAX_BACKING_NAME)
            return bd_err_set(err, EINVAL,
                              "%s: invalid backing file name length %" PRIu32,
                              name, h->backing_len);
        if (!ovf_range_ok(h->backing_off, h->backing_len, cs) ||
            !in_file(h->backing_off, h->backing_len, file_size) ||
            h->backing_off < h->header_len)
            return bd_err_set(err, EINVAL,
                              "%s: backing file name (at %#" PRIx64 ") lies "
                              "outside the header cluster", name,
                              h->backing_off);
    }
    return 0;
}

int qcow2_header_decode(const uint8_t *buf, size_t len, uint64_t file_size,
                        const char *name, struct qcow2_header *h,
                        struct bd_err *err)
{
    memset(h, 0, sizeof(*h));
    if (len < QCOW2_V2_HEADER_LEN || file_size < QCOW2_V2_HEADER_LEN)
        return bd_err_set(err, EINVAL, "%s: file too short for a qcow2 header",
                          name);
    if (bd_be32(buf) != QCOW2_MAGIC)
        return bd_err_set(err, EINVAL, "%s: not a qcow2 image (bad magic)", name);
    h->version = bd_be32(buf + 4);
    if (h->version != 2 && h->version != 3)
        return bd_err_set(err, ENOTSUP,
                          "%s: qcow2 version %" PRIu32 " is not supported",
                          name, h->version);
    h->backing_off = bd_be64(buf + 8);
    h->backing_len = bd_be32(buf + 16);
    h->cluster_bits = bd_be32(buf + 20);
    h->size = bd_be64(buf + 24);
    h->crypt_method = bd_be32(buf + 32);
    h->l1_entries = bd_be32(buf + 36);
    h->l1_off = bd_be64(buf + 40);
    h->reftable_off = bd_be64(buf + 48);
    h->reftable_clusters = bd_be32(buf + 56);
    h->nb_snapshots = bd_be32(buf + 60);
    h->snapshots_off = bd_be64(buf + 64);

    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return bd_err_set(err, EINVAL,
                          "%s: invalid cluster size (cluster_bits %" PRIu32
                          "; 512 bytes to 2 MiB are supported)",
                          name, h->cluster_bits);
    uint64_t cs = 1ull << h->cluster_bits;

    int ret = decode_v3(buf, len, file_size, cs, name, h, err);
    if (ret == 0)
        ret = check_features(h, name, err);
    if (ret == 0)
        ret = check_l1(h, cs, file_size, name, err);
    if (ret == 0)
        ret = check_tables(h, cs, file_size, name, err);
    return ret;
}

static char *dup_string(const uint8_t *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

static bool string_ok(const char *s, size_t len)
{
    /* an embedded NUL would make the name mean something else */
    return strlen(s) == len;
}

int qcow2_exts_decode(const uint8_t *buf, size_t len,
                      const struct qcow2_header *h, const char *name,
                      struct qcow2_exts *x, struct bd_err *err)
{
    uint64_t cs = 1ull << h->cluster_bits;
    uint64_t off = h->header_len;
    uint64_t end = cs < len ? cs : len;

    memset(x, 0, sizeof(*x));
    if (h->backing_off && h->backing_off < end)
        end = h->backing_off;
    while (off + 8 <= end) {
        uint32_t type = bd_be32(buf + off);
        uint32_t elen = bd_be32(buf + off + 4);
        const uint8_t *data = buf + off + 8;

        if (type == QCOW2_EXT_END)
            break;
        if (elen > end - off - 8)
            return bd_err_set(err, EINVAL,
                              "%s: header extension %#" PRIx32 " (%" PRIu32
                              " bytes) runs past the header area", name, type,
                              elen);
        switch (type) {
        case QCOW2_EXT_BACKING_FMT:
            if (elen == 0 || elen > 63)
                return bd_err_set(err, EINVAL,
                                  "%s: invalid backing format name length %"
                                  PRIu32, name, elen);
            free(x->backing_fmt);
            x->backing_fmt = dup_string(data, elen);
            if (!x->backing_fmt)
                return bd_err_set(err, ENOMEM, "%s: out of memory", name);
            if (!string_ok(x->backing_fmt, elen))
                return bd_err_set(err, EINVAL,
                                  "%s: backing format name contains a NUL byte",
                                  name);
            break;
        case QCOW2_EXT_DATA_FILE:
            if (elen == 0 || elen > 4095)
                return bd_err_set(err, EINVAL,
                                  "%s: invalid external data file name length %"
                                  PRIu32, name, elen);
            free(x->data_file);
            x->data_file = dup_string(data, elen);
            if (!x->data_file)
                return bd_err_set(err, ENOMEM, "%s: out of memory", name);
            if (!string_ok(x->data_file, elen))
                return bd_err_set(err, EINVAL,
                                  "%s: external data file name contains a NUL "
                                  "byte", name);
            break;
        case QCOW2_EXT_FEATURES: {
            size_t n = elen / 48;
            free(x->features);
            x->features = calloc(n ? n : 1, sizeof(*x->features));
            if (!x->features)
                return bd_err_set(err, ENOMEM, "%s: out of memory", name);
            x->nb_features = n;
            for (size_t i = 0; i < n; i++) {
                const uint8_t *e = data + i * 48;
                x->features[i].type = e[0];
                x->features[i].bit = e[1];
                memcpy(x->features[i].name, e + 2, 46);
                x->features[i].name[46] = 0;
            }
            break;
        }
        case QCOW2_EXT_BITMAPS:
            x->has_bitmaps = true;
            if (elen >= 24)
                x->bitmaps_ext_off = off + 8;
            if (elen >= 4)
                x->nb_bitmaps = bd_be32(data);
            if (elen >= 24) {
                x->bitmap_dir_size = bd_be64(data + 8);
                x->bitmap_dir_off = bd_be64(data + 16);
            }
            break;
        case QCOW2_EXT_CRYPTO:
            if (elen != 16)
                return bd_err_set(err, EINVAL, "%s: the encryption header "
                                  "extension has %" PRIu32 " bytes, not 16",
                                  name, elen);
            x->has_crypto = true;
            x->crypt_off = bd_be64(data);
            x->crypt_len = bd_be64(data + 8);
            break;
        default:
            x->nb_unknown++;
            break;
        }
        off += 8 + bd_align_up(elen, 8);
    }
    x->end = off;
    return 0;
}

void qcow2_exts_free(struct qcow2_exts *x)
{
    free(x->backing_fmt);
    free(x->data_file);
    free(x->features);
    memset(x, 0, sizeof(*x));
}

static const char *builtin_feature_name(int type, unsigned bit)
{
    static const char *const incompat[] = {
        "dirty bit", "corrupt bit", "external data file", "compression type",
        "extended L2 entries",
    };
    static const char *const autoclear[] = { "bitmaps", "raw external data" };

    if (type == 0 && bit < 5)
        return incompat[bit];
    if (type == 1 && bit == 0)
        return "lazy refcounts";
    if (type == 2 && bit < 2)
        return autoclear[bit];
    return NULL;
}

void qcow2_feature_names(const struct qcow2_exts *x, int type, uint64_t mask,
                         char *out, size_t outlen)
{
    size_t used = 0;

    if (!outlen)
        return;
    out[0] = 0;
    for (unsigned bit = 0; bit < 64; bit++) {
        if (!(mask & (1ull << bit)))
            continue;
        const char *nm = NULL;
        for (size_t i = 0; x && i < x->nb_features; i++) {
            if (x->features[i].type == type && x->features[i].bit == bit &&
                x->features[i].name[0]) {
                nm = x->features[i].name;
                break;
            }
        }
        if (!nm)
            nm = builtin_feature_name(type, bit);
        char one[80];
        if (nm) {
            /* names come from the image: keep them printable */
            size_t k = 0;
            for (; nm[k] && k < 46; k++)
                one[k] = (nm[k] >= 0x20 && nm[k] < 0x7f) ? nm[k] : '?';
            one[k] = 0;
        } else {
            snprintf(one, sizeof(one), "bit %u", bit);
        }
        int w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "",
                         one);
        if (w < 0 || (size_t)w >= outlen - used)
            break;
        used += (size_t)w;
    }
}

int qcow2_snapshots_decode(const uint8_t *buf, size_t len, uint32_t nb,
                           const struct qcow2_header *h, uint64_t file_size,
                           const char *name, struct qcow2_snapshot **out,
                           struct bd_err *err)
{
    uint64_t cs = 1ull << h->cluster_bits;
    struct qcow2_snapshot *sn = calloc(nb ? nb : 1, sizeof(*sn));
    size_t off = 0;
    int ret;

    *out = NULL;
    if (!sn)
        return bd_err_set(err, ENOMEM, "%s: out of memory", name);
    for (uint32_t i = 0; i < nb; i++) {
        struct qcow2_snapshot *s = &sn[i];
        if (len - off < 40) {
            ret = -ENODATA;
            goto out_free;
        }
        const uint8_t *e = buf + off;
        s->l1_off = bd_be64(e);
        s->l1_entries = bd_be32(e + 8);
        uint16_t id_len = bd_be16(e + 12);
        uint16_t name_len = bd_be16(e + 14);
        s->date_sec = bd_be32(e + 16);
        s->date_nsec = bd_be32(e + 20);
        s->vm_clock_nsec = bd_be64(e + 24);
        s->vm_state_size = bd_be32(e + 32);
        uint32_t extra = bd_be32(e + 36);
        if (extra > 1024) {
            ret = bd_err_set(err, EINVAL,
                             "%s: snapshot %" PRIu32 " has %" PRIu32
                             " bytes of extra data (too many)", name, i, extra);
            goto out_free;
        }
        uint64_t entry_len = 40 + (uint64_t)extra + id_len + name_len;
        if (entry_len > len - off) {
            ret = -ENODATA;
            goto out_free;
        }
        if (extra >= 8)
            s->vm_state_size = bd_be64(e + 40);
        if (extra >= 16)
            s->disk_size = bd_be64(e + 48);
        s->id = dup_string(e + 40 + extra, id_len);
        s->name = dup_string(e + 40 + extra + id_len, name_len);
        if (!s->id || !s->name) {
            ret = bd_err_set(err, ENOMEM, "%s: out of memory", name);
            goto out_free;
        }
        if ((uint64_t)s->l1_entries * 8 > QCOW2_MAX_L1_BYTES ||
            (s->l1_entries && (s->l1_off % cs || s->l1_off == 0 ||
                               !in_file(s->l1_off, (uint64_t)s->l1_entries * 8,
                                        file_size)))) {
            ret = bd_err_set(err, EINVAL,
                             "%s: snapshot '%s' has an invalid L1 table (at %#"
                             PRIx64 ", %" PRIu32 " entries)", name, s->id,
                             s->l1_off, s->l1_entries);
            goto out_free;
        }
        entry_len = bd_align_up(entry_len, 8);
        s->entry_len = entry_len;
        off += entry_len > len - off ? len - off : entry_len;
    }
    *out = sn;
    return 0;

out_free:
    qcow2_snapshots_free(sn, nb);
    return ret;
}

void qcow2_snapshots_free(struct qcow2_snapshot *sn, uint32_t nb)
{
    if (!sn)
        return;
    for (uint32_t i = 0; i < nb; i++) {
        free(sn[i].id);
        free(sn[i].name);
    }
    free(sn);
}
