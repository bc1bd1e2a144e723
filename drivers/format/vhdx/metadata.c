/*
 * VHDX on-disk structures ([MS-VHDX] 2.2.3-2.6): the known GUIDs, the
 * region table, the metadata region with the parent locator, and the BAT,
 * each decoded and checked before the driver (vhdx.c) uses it. Every size
 * and offset here comes from the image and is checked first. The two
 * headers are header.c's.
 */
#include "vhdx.h"
#include "core/overflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

const uint8_t vhdx_guid_bat[16] = VHDX_GUID(0x2dc27766, 0xf623, 0x4200,
    0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08);
const uint8_t vhdx_guid_metadata[16] = VHDX_GUID(0x8b7ca206, 0x4790, 0x4b9a,
    0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e);
const uint8_t vhdx_guid_file_params[16] = VHDX_GUID(0xcaa16737, 0xfa36, 0x4d43,
    0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b);
const uint8_t vhdx_guid_vsize[16] = VHDX_GUID(0x2fa54224, 0xcd1b, 0x4876,
    0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8);
const uint8_t vhdx_guid_disk_id[16] = VHDX_GUID(0xbeca12ab, 0xb2e6, 0x4523,
    0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46);
const uint8_t vhdx_guid_lsec[16] = VHDX_GUID(0x8141bf1d, 0xa96f, 0x4709,
    0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f);
const uint8_t vhdx_guid_psec[16] = VHDX_GUID(0xcda348c7, 0x445d, 0x4471,
    0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56);
const uint8_t vhdx_guid_parent_locator[16] = VHDX_GUID(0xa8d35f2d, 0xb30b,
    0x454d, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c);
const uint8_t vhdx_guid_parent_type[16] = VHDX_GUID(0xb04aefb7, 0xd19e, 0x4a81,
    0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13);
/* ---- small helpers ----------------------------------------------------- */

bool vhdx_guid_is_zero(const uint8_t guid[16])
{
    for (int i = 0; i < 16; i++) {
        if (guid[i])
            return false;
    }
    return true;
}

int vhdx_random_guid(uint8_t guid[16])
{
    size_t got = 0;

    while (got < 16) {
        ssize_t r = getrandom(guid + got, 16 - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    guid[7] = (uint8_t)((guid[7] & 0x0f) | 0x40);   /* version 4 (data3) */
    guid[8] = (uint8_t)((guid[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
    return 0;
}

void vhdx_guid_format(const uint8_t g[16], char out[37])
{
    snprintf(out, 37,
             "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             bd_le32(g), bd_le16(g + 4), bd_le16(g + 6), g[8], g[9], g[10],
             g[11], g[12], g[13], g[14], g[15]);
}

/* Parse "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" (braces optional). */
static bool vhdx_guid_parse(const char *str, uint8_t g[16])
{
    unsigned a, b, c, d[8];
    const char *p = str;

    if (*p == '{')
        p++;
    if (sscanf(p, "%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x", &a, &b, &c,
               &d[0], &d[1], &d[2], &d[3], &d[4], &d[5], &d[6], &d[7]) != 11)
        return false;
    bd_put_le32(g, a);
    bd_put_le16(g + 4, (uint16_t)b);
    bd_put_le16(g + 6, (uint16_t)c);
    for (int i = 0; i < 8; i++)
        g[8 + i] = (uint8_t)d[i];
    return true;
}
/* ---- region table (2.2.3) ---------------------------------------------- */

static int vhdx_parse_region_table(struct bd_node *n, const uint8_t *t,
                                   struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    uint32_t count = bd_le32(t + 8);

    if (count > VHDX_REGION_MAX_ENTRIES)
        return bd_err_set(err, EINVAL, "%s: vhdx region table has %u entries "
                          "(at most %u allowed)", n->name, count,
                          VHDX_REGION_MAX_ENTRIES);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = t + 16 + 32 * i;
        uint64_t off = bd_le64(e + 16);
        uint32_t len = bd_le32(e + 24);
        bool required = bd_le32(e + 28) & 1;
        bool is_bat = memcmp(e, vhdx_guid_bat, 16) == 0;
        bool is_meta = memcmp(e, vhdx_guid_metadata, 16) == 0;

        if (!is_bat && !is_meta) {
            if (required) {
                char g[37];
                vhdx_guid_format(e, g);
                return bd_err_set(err, ENOTSUP, "%s: vhdx region %s is required "
                                  "but not supported", n->name, g);
            }
            continue;
        }
        if (off % VHDX_MiB || off < VHDX_MiB || len % VHDX_MiB || len == 0)
            return bd_err_set(err, EINVAL, "%s: vhdx %s region has an invalid "
                              "location (offset %llu, length %u)", n->name,
                              is_bat ? "bat" : "metadata",
                              (unsigned long long)off, len);
        if ((is_bat && s->bat_len) || (is_meta && s->meta_len))
            return bd_err_set(err, EINVAL, "%s: vhdx region table lists the %s "
                              "region twice", n->name, is_bat ? "bat" : "metadata");
        if (is_bat) {
            s->bat_off = off;
            s->bat_len = len;
        } else {
            s->meta_off = off;
            s->meta_len = len;
        }
    }
    if (!s->bat_len || !s->meta_len)
        return bd_err_set(err, EINVAL, "%s: vhdx region table has no %s region",
                          n->name, s->bat_len ? "metadata" : "bat");
    if (s->bat_off < s->meta_off + s->meta_len &&
        s->meta_off < s->bat_off + s->bat_len)
        return bd_err_set(err, EINVAL, "%s: vhdx bat and metadata regions "
                          "overlap", n->name);
    return 0;
}

int vhdx_read_regions(struct bd_node *n, struct bd_err *err)
{
    static const uint64_t where[2] = { VHDX_REGION1_OFF, VHDX_REGION2_OFF };
    uint8_t *t;
    int ret = 0;

    t = malloc(VHDX_REGION_SIZE);
    if (!t)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    for (int i = 0; i < 2; i++) {
        ret = bd_pread(n->file, t, VHDX_REGION_SIZE, where[i]);
        if (ret < 0) {
            ret = bd_err_set(err, -ret, "%s: cannot read vhdx region table: %s",
                             n->name, strerror(-ret));
            goto out;
        }
        if (memcmp(t, "regi", 4) == 0 &&
            bd_le32(t + 4) == vhdx_crc32c_skip(t, VHDX_REGION_SIZE, 4)) {
            ret = vhdx_parse_region_table(n, t, err);
            goto out;
        }
    }
    ret = bd_err_set(err, EINVAL, "%s: both vhdx region tables are corrupt "
                     "(bad signature or checksum)", n->name);
out:
    free(t);
    return ret;
}

/* ---- metadata region (2.6) --------------------------------------------- */

struct vhdx_meta_item {
    uint64_t off;       /* absolute file offset */
    uint32_t len;
    bool found;
};

static int vhdx_meta_read(struct bd_node *n, const struct vhdx_meta_item *it,
                          uint32_t want, void *buf, const char *what,
                          struct bd_err *err)
{
    int ret;

    if (it->len < want)
        return bd_err_set(err, EINVAL, "%s: vhdx %s metadata item is too short "
                          "(%u bytes)", n->name, what, it->len);
    ret = vhdx_file_read(n, buf, want, it->off);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: cannot read vhdx %s: %s", n->name,
                          what, strerror(-ret));
    return 0;
}

static int vhdx_parse_parent_locator(struct bd_node *n,
                                     const struct vhdx_meta_item *it,
                                     struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    uint8_t *b;
    uint16_t count;
    int ret = 0;

    if (it->len < 20 || it->len > VHDX_MiB)
        return bd_err_set(err, EINVAL, "%s: vhdx parent locator has an invalid "
                          "size (%u bytes)", n->name, it->len);
    b = malloc(it->len);
    if (!b)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    ret = vhdx_file_read(n, b, it->len, it->off);
    if (ret < 0) {
        ret = bd_err_set(err, -ret, "%s: cannot read vhdx parent locator: %s",
                         n->name, strerror(-ret));
        goto out;
    }
    if (memcmp(b, vhdx_guid_parent_type, 16) != 0) {
        ret = bd_err_set(err, ENOTSUP, "%s: vhdx parent locator type is not "
                         "the vhdx one", n->name);
        goto out;
    }
    count = bd_le16(b + 18);
    if (20 + (uint64_t)count * 12 > it->len) {
        ret = bd_err_set(err, EINVAL, "%s: vhdx parent locator has %u entries, "
                         "more than fit in it", n->name, count);
        goto out;
    }
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = b + 20 + 12 * i;
        uint32_t koff = bd_le32(e), voff = bd_le32(e + 4);
        uint16_t klen = bd_le16(e + 8), vlen = bd_le16(e + 10);
        char *key = NULL, *val = NULL;

        if (!ovf_range_ok(koff, klen, it->len) ||
            !ovf_range_ok(voff, vlen, it->len)) {
            ret = bd_err_set(err, EINVAL, "%s: vhdx parent locator entry %u "
                             "points outside the locator", n->name, i);
            goto out;
        }
        if (bd_utf16_to_utf8_dup(b + koff, klen, BD_UTF16_LE, &key) < 0 ||
            bd_utf16_to_utf8_dup(b + voff, vlen, BD_UTF16_LE, &val) < 0) {
            free(key);
            free(val);
            ret = bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
            goto out;
        }
        if (strcmp(key, "parent_linkage") == 0) {
            s->has_linkage = vhdx_guid_parse(val, s->parent_linkage);
        } else if (strcmp(key, "relative_path") == 0 && !s->parent_path) {
            s->parent_path = val;
            val = NULL;
        } else if (strcmp(key, "absolute_win32_path") == 0 && !s->parent_abs) {
            s->parent_abs = val;
            val = NULL;
        }
        free(key);
        free(val);
    }
out:
    free(b);
    return ret;
}

/* The system metadata items this driver reads (2.6.2). */
struct vhdx_meta_items {
    struct vhdx_meta_item fp, vs, id, ls, ps, pl;
};

static struct vhdx_meta_item *vhdx_meta_find(struct vhdx_meta_items *m,
                                             const uint8_t guid[16])
{
    if (memcmp(guid, vhdx_guid_file_params, 16) == 0)
        return &m->fp;
    if (memcmp(guid, vhdx_guid_vsize, 16) == 0)
        return &m->vs;
    if (memcmp(guid, vhdx_guid_disk_id, 16) == 0)
        return &m->id;
    if (memcmp(guid, vhdx_guid_lsec, 16) == 0)
        return &m->ls;
    if (memcmp(guid, vhdx_guid_psec, 16) == 0)
        return &m->ps;
    if (memcmp(guid, vhdx_guid_parent_locator, 16) == 0)
        return &m->pl;
    return NULL;
}

/* Locate the known items in the metadata table t; an unknown item marked
 * required, or a missing one we need, fails the open. */
static int vhdx_meta_table_scan(struct bd_node *n, const uint8_t *t,
                                struct vhdx_meta_items *m, struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    uint16_t count;

    if (memcmp(t, "metadata", 8) != 0)
        return bd_err_set(err, EINVAL, "%s: vhdx metadata table signature is "
                          "missing", n->name);
    count = bd_le16(t + 10);
    if (count > VHDX_META_MAX_ENTRIES)
        return bd_err_set(err, EINVAL, "%s: vhdx metadata table has %u entries "
                          "(at most %u allowed)", n->name, count,
                          VHDX_META_MAX_ENTRIES);
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = t + 32 + 32 * i;
        uint32_t off = bd_le32(e + 16), len = bd_le32(e + 20);
        uint32_t flags = bd_le32(e + 24);
        bool is_user = flags & 1, required = flags & 4;
        struct vhdx_meta_item *it;

        if (is_user) {
            if (required)
                return bd_err_set(err, ENOTSUP, "%s: vhdx has a required user "
                                  "metadata item this driver does not know",
                                  n->name);
            continue;
        }
        it = vhdx_meta_find(m, e);
        if (!it) {
            if (required) {
                char g[37];
                vhdx_guid_format(e, g);
                return bd_err_set(err, ENOTSUP, "%s: vhdx metadata item %s is "
                                  "required but not supported", n->name, g);
            }
            continue;
        }
        if (len && (off < VHDX_META_TABLE_SIZE ||
                    !ovf_range_ok(off, len, s->meta_len)))
            return bd_err_set(err, EINVAL, "%s: vhdx metadata item %u lies "
                              "outside the metadata region", n->name, i);
        it->off = s->meta_off + off;
        it->len = len;
        it->found = true;
    }
    if (!m->fp.found || !m->vs.found || !m->ls.found || !m->ps.found)
        return bd_err_set(err, EINVAL, "%s: vhdx metadata lacks the %s item",
                          n->name, !m->fp.found ? "file parameters" :
                          !m->vs.found ? "virtual disk size" :
                          !m->ls.found ? "logical sector size" :
                                         "physical sector size");
    return 0;
}

/* Read the items' values into the node's state. */
static int vhdx_meta_load(struct bd_node *n, const struct vhdx_meta_items *m,
                          struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    uint8_t v[8];
    int ret;

    if ((ret = vhdx_meta_read(n, &m->fp, 8, v, "file parameters", err)) < 0)
        return ret;
    s->block_size = bd_le32(v);
    s->leave_alloc = bd_le32(v + 4) & 1;
    s->has_parent = bd_le32(v + 4) & 2;
    if ((ret = vhdx_meta_read(n, &m->vs, 8, v, "virtual disk size", err)) < 0)
        return ret;
    s->vsize = bd_le64(v);
    s->vsize_off = m->vs.off;
    if ((ret = vhdx_meta_read(n, &m->ls, 4, v, "logical sector size", err)) < 0)
        return ret;
    s->lsec = bd_le32(v);
    if ((ret = vhdx_meta_read(n, &m->ps, 4, v, "physical sector size", err)) < 0)
        return ret;
    s->psec = bd_le32(v);
    if (m->id.found) {
        ret = vhdx_meta_read(n, &m->id, 16, s->disk_id, "virtual disk id", err);
        if (ret < 0)
            return ret;
    }
    if (s->has_parent) {
        if (!m->pl.found)
            return bd_err_set(err, EINVAL, "%s: vhdx differencing image has no "
                              "parent locator", n->name);
        return vhdx_parse_parent_locator(n, &m->pl, err);
    }
    return 0;
}

/* Block size, sector sizes and virtual size within what the spec allows. */
static int vhdx_meta_check(struct bd_node *n, struct bd_err *err)
{
    struct vhdx_state *s = n->state;

    if (!bd_is_pow2(s->block_size) || s->block_size < VHDX_MIN_BLOCK ||
        s->block_size > VHDX_MAX_BLOCK)
        return bd_err_set(err, EINVAL, "%s: vhdx block size %u is invalid "
                          "(a power of two from 1 MiB to 256 MiB)", n->name,
                          s->block_size);
    if (s->lsec != 512 && s->lsec != 4096)
        return bd_err_set(err, EINVAL, "%s: vhdx logical sector size %u is "
                          "invalid (512 or 4096)", n->name, s->lsec);
    if (s->psec != 512 && s->psec != 4096)
        return bd_err_set(err, EINVAL, "%s: vhdx physical sector size %u is "
                          "invalid (512 or 4096)", n->name, s->psec);
    if (s->vsize > VHDX_MAX_VSIZE || s->vsize % s->lsec)
        return bd_err_set(err, EINVAL, "%s: vhdx virtual size %llu is invalid "
                          "(a multiple of the %u-byte sector, at most 64 TiB)",
                          n->name, (unsigned long long)s->vsize, s->lsec);
    s->block_bits = (unsigned)__builtin_ctz(s->block_size);
    s->lsec_bits = (unsigned)__builtin_ctz(s->lsec);
    return 0;
}

int vhdx_read_metadata(struct bd_node *n, struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    struct vhdx_meta_items m = {0};
    uint8_t *t;
    int ret;

    if (s->meta_len < VHDX_META_TABLE_SIZE)
        return bd_err_set(err, EINVAL, "%s: vhdx metadata region is too small",
                          n->name);
    if (!ovf_range_ok(s->meta_off, s->meta_len, s->eff_size))
        return bd_err_set(err, EINVAL, "%s: vhdx metadata region lies beyond "
                          "the end of the file (truncated image?)", n->name);
    t = malloc(VHDX_META_TABLE_SIZE);
    if (!t)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    ret = vhdx_file_read(n, t, VHDX_META_TABLE_SIZE, s->meta_off);
    if (ret < 0)
        ret = bd_err_set(err, -ret, "%s: cannot read vhdx metadata table: %s",
                         n->name, strerror(-ret));
    else
        ret = vhdx_meta_table_scan(n, t, &m, err);
    free(t);
    if (ret == 0)
        ret = vhdx_meta_load(n, &m, err);
    if (ret == 0)
        ret = vhdx_meta_check(n, err);
    return ret;
}

/* ---- BAT (2.5) ----------------------------------------------------------- */

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

bool vhdx_is_payload_range(const struct vhdx_state *s, uint64_t off,
                           uint64_t len)
{
    return off >= VHDX_MiB && off + len > off &&
           !overlaps(off, len, s->hdr.log_off, s->hdr.log_len) &&
           !overlaps(off, len, s->meta_off, s->meta_len) &&
           !overlaps(off, len, s->bat_off, s->bat_len);
}

int vhdx_read_bat(struct bd_node *n, struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    uint64_t bytes;
    uint8_t *raw;
    int ret;

    s->chunk_ratio = (VHDX_SECTORS_PER_BITMAP * s->lsec) / s->block_size;
    s->payload_blocks = (s->vsize + s->block_size - 1) >> s->block_bits;
    s->bitmap_blocks = (s->payload_blocks + s->chunk_ratio - 1) / s->chunk_ratio;
    if (s->has_parent)
        s->bat_entries = s->bitmap_blocks * (s->chunk_ratio + 1);
    else if (s->payload_blocks)
        s->bat_entries = s->payload_blocks +
                         (s->payload_blocks - 1) / s->chunk_ratio;
    else
        s->bat_entries = 0;
    if (s->bat_entries * 8 > s->bat_len)
        return bd_err_set(err, EINVAL, "%s: vhdx bat region (%llu bytes) is too "
                          "small for %llu entries", n->name,
                          (unsigned long long)s->bat_len,
                          (unsigned long long)s->bat_entries);
    if (!ovf_range_ok(s->bat_off, s->bat_len, s->eff_size))
        return bd_err_set(err, EINVAL, "%s: vhdx bat region lies beyond the end "
                          "of the file (truncated image?)", n->name);
    /* whole 4 KiB sectors, so that log updates rewrite them exactly */
    s->bat_alloc = (size_t)bd_align_up(s->bat_entries ? s->bat_entries : 1, 512);
    bytes = (uint64_t)s->bat_alloc * 8;
    s->bat = malloc(bytes);
    raw = malloc(bytes);
    if (!s->bat || !raw) {
        free(raw);
        return bd_err_set(err, ENOMEM, "%s: out of memory for the vhdx bat "
                          "(%llu bytes)", n->name, (unsigned long long)bytes);
    }
    ret = vhdx_file_read(n, raw, bytes, s->bat_off);
    if (ret < 0) {
        free(raw);
        return bd_err_set(err, -ret, "%s: cannot read the vhdx bat: %s", n->name,
                          strerror(-ret));
    }
    for (size_t i = 0; i < s->bat_alloc; i++)
        s->bat[i] = bd_le64(raw + 8 * i);
    free(raw);

    for (uint64_t i = 0; i < s->bat_entries; i++) {
        uint64_t e = s->bat[i], off = VHDX_BAT_OFF(e);
        unsigned st = VHDX_BAT_STATE(e);
        bool is_bitmap = (i % (s->chunk_ratio + 1)) == s->chunk_ratio;

        if (is_bitmap) {
            if (st == VHDX_SB_NOT_PRESENT)
                continue;
            if (st != VHDX_SB_PRESENT || !s->has_parent)
                return bd_err_set(err, EINVAL, "%s: vhdx sector bitmap entry "
                                  "%llu has invalid state %u", n->name,
                                  (unsigned long long)i, st);
        } else if (st == 4 || (st == VHDX_PAYLOAD_PARTIALLY_PRESENT &&
                               !s->has_parent)) {
            return bd_err_set(err, EINVAL, "%s: vhdx bat entry %llu has invalid "
                              "state %u", n->name, (unsigned long long)i, st);
        } else if (st != VHDX_PAYLOAD_FULLY_PRESENT &&
                   st != VHDX_PAYLOAD_PARTIALLY_PRESENT) {
            continue;
        }
        if (off < VHDX_MiB || off >= s->eff_size)
            return bd_err_set(err, EINVAL, "%s: vhdx bat entry %llu points to "
                              "offset %llu, outside the file (truncated or "
                              "corrupt image)", n->name, (unsigned long long)i,
                              (unsigned long long)off);
        if (!vhdx_is_payload_range(s, off, is_bitmap ? VHDX_BITMAP_BLOCK
                                                     : s->block_size))
            return bd_err_set(err, EINVAL, "%s: vhdx bat entry %llu points "
                              "into the log, metadata or bat region (corrupt "
                              "image)", n->name, (unsigned long long)i);
    }
    return 0;
}
