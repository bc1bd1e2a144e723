/*
 * parallels: the format extension cluster (docs/interop/parallels.rst,
 * "Format Extension"): its magic, MD5 checksum and feature list. Dirty
 * bitmaps are reported, unknown features skipped; nothing here changes
 * what the disk reads, so a damaged extension is ignored, never fatal.
 */
#include "parallels.h"
#include "core/overflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRL_EXT_MAGIC           0xab234cef23dcea87ull
#define PRL_FEAT_END            0x0ull
#define PRL_FEAT_DIRTY_BITMAP   0x20385fae252cb34aull
#define PRL_EXT_HEAD            24u     /* magic, checksum */
#define PRL_FEAT_HEAD           24u     /* magic, flags, data_size, unused */
#define PRL_BITMAP_HEAD         32u     /* size, id, granularity, l1_size */
#define PRL_EXT_MAX             (64u << 20)  /* a larger cluster is not read */

/* ---- MD5 (RFC 1321), for the checksum only ------------------------------ */

static uint32_t rol32(uint32_t v, unsigned s)
{
    return v << s | v >> (32 - s);
}

static void md5_block(uint32_t st[4], const uint8_t *p, const uint32_t k[64])
{
    static const uint8_t shift[16] = { 7, 12, 17, 22, 5, 9, 14, 20,
                                       4, 11, 16, 23, 6, 10, 15, 21 };
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3], m[16];

    for (int i = 0; i < 16; i++)
        m[i] = bd_le32(p + 4 * i);
    for (unsigned i = 0; i < 64; i++) {
        uint32_t f, t;
        unsigned g, round = i / 16;

        if (round == 0) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (round == 1) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (round == 2) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        t = d;
        d = c;
        c = b;
        b += rol32(a + f + k[i] + m[g], shift[round * 4 + i % 4]);
        a = t;
    }
    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
}

void prl_md5(const uint8_t *data, size_t len, uint8_t out[16])
{
    uint32_t st[4] = { 0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u };
    uint32_t k[64];
    uint8_t tail[128] = { 0 };
    size_t whole = len - len % 64, rest = len % 64, tail_len;

    for (int i = 0; i < 64; i++)
        k[i] = (uint32_t)floor(fabs(sin(i + 1.0)) * 4294967296.0);
    for (size_t off = 0; off < whole; off += 64)
        md5_block(st, data + off, k);
    memcpy(tail, data + whole, rest);
    tail[rest] = 0x80;
    tail_len = rest < 56 ? 64 : 128;
    bd_put_le64(tail + tail_len - 8, (uint64_t)len * 8);
    md5_block(st, tail, k);
    if (tail_len == 128)
        md5_block(st, tail + 64, k);
    for (int i = 0; i < 4; i++)
        bd_put_le32(out + 4 * i, st[i]);
}

/* ---- features ----------------------------------------------------------- */

static void prl_ext_bitmap(struct prl_image *img, const uint8_t *p,
                           uint32_t len)
{
    struct prl_ext_info *e = &img->ext;

    if (e->bitmaps++ || len < PRL_BITMAP_HEAD)
        return;
    memcpy(e->bitmap_id, p + 8, 16);
    e->bitmap_granularity = (uint64_t)bd_le32(p + 24) * BD_SECTOR;
    e->bitmap_l1_size = bd_le32(p + 28);
}

static bool prl_ext_features(struct prl_image *img, const uint8_t *c,
                             uint64_t size)
{
    struct prl_ext_info *e = &img->ext;
    uint64_t pos = PRL_EXT_HEAD;

    while (pos + PRL_FEAT_HEAD <= size) {
        uint64_t magic = bd_le64(c + pos);
        uint32_t data_size = bd_le32(c + pos + 16);
        uint64_t padded = bd_align_up((uint64_t)data_size, 8);

        pos += PRL_FEAT_HEAD;
        if (magic == PRL_FEAT_END)
            return true;
        if (padded > size - pos) {
            snprintf(e->problem, sizeof(e->problem), "feature 0x%016llx runs "
                     "past the extension cluster", (unsigned long long)magic);
            return false;
        }
        if (magic == PRL_FEAT_DIRTY_BITMAP)
            prl_ext_bitmap(img, c + pos, data_size);
        else
            e->unknown++;
        pos += padded;
    }
    snprintf(e->problem, sizeof(e->problem), "no end-of-features mark");
    return false;
}

void prl_ext_parse(struct prl_image *img, uint64_t ext_off)
{
    struct prl_ext_info *e = &img->ext;
    uint64_t size = img->cluster_size;
    uint8_t sum[16], *c;
    int r;

    if (size > PRL_EXT_MAX || size < PRL_EXT_HEAD) {
        snprintf(e->problem, sizeof(e->problem), "a cluster of %llu bytes is "
                 "not read", (unsigned long long)size);
        return;
    }
    if (!ovf_range_ok(ext_off, size, img->file_size)) {
        snprintf(e->problem, sizeof(e->problem), "it lies beyond the end of "
                 "the file");
        return;
    }
    c = malloc(size);
    if (!c) {
        snprintf(e->problem, sizeof(e->problem), "out of memory");
        return;
    }
    r = bd_pread(img->file, c, size, ext_off);
    if (r < 0) {
        snprintf(e->problem, sizeof(e->problem), "cannot read it: %s",
                 strerror(-r));
    } else if (bd_le64(c) != PRL_EXT_MAGIC) {
        snprintf(e->problem, sizeof(e->problem), "bad magic 0x%016llx",
                 (unsigned long long)bd_le64(c));
    } else {
        prl_md5(c + PRL_EXT_HEAD, size - PRL_EXT_HEAD, sum);
        e->checksum_ok = memcmp(sum, c + 8, 16) == 0;
        e->valid = prl_ext_features(img, c, size);
    }
    free(c);
}
