/*
 * Unit tests of the dmg driver: the ADC and LZFSE/LZVN decoders on
 * hand-made streams, the blkx table checks on hostile tables, and whole
 * images from tests/data/dmg read through bd_open_image() + bd_pread().
 */
#include "core/graph.h"
#include "drivers/format/dmg/dmg.h"

#include <bzlib.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <lzma.h>
#include <zlib.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DISK_LEN 10510336u      /* every dmgwiz sample expands to this */

static const char *data_dir(void)
{
    static char dir[4096];
    const char *env = getenv("DMG_TEST_DATA");
    char src[4096];
    struct stat st;

    if (env)
        return env;
    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(dir, sizeof(dir), "%s/../data/dmg", dirname(src));
    if (stat(dir, &st) == 0)
        return dir;
    return "tests/data/dmg";
}

static char *data_path(const char *name)
{
    static char path[4096];
    int len = snprintf(path, sizeof(path), "%s/%s", data_dir(), name);

    cr_assert(len > 0 && (size_t)len < sizeof(path),
              "test data path too long: %s/%s", data_dir(), name);
    return path;
}

static int open_dmg(const char *path, struct bd_node **n, struct bd_err *err)
{
    struct bd_flags flags = { .read_only = true };

    memset(err, 0, sizeof(*err));
    return bd_open_image(path, "dmg", NULL, &flags, n, err);
}

static uint8_t *read_all(const char *name, uint64_t chunk)
{
    struct bd_node *n;
    struct bd_err err;
    uint8_t *buf;
    int64_t size;

    cr_assert_eq(open_dmg(data_path(name), &n, &err), 0, "%s: %s", name,
                 err.msg);
    size = bd_size(n);
    cr_assert_eq(size, DISK_LEN, "%s: size %lld", name, (long long)size);
    buf = malloc(DISK_LEN);
    cr_assert(buf);
    for (uint64_t off = 0; off < DISK_LEN; off += chunk) {
        uint64_t len = DISK_LEN - off < chunk ? DISK_LEN - off : chunk;

        cr_assert_eq(bd_pread(n, buf + off, len, off), 0, "%s at %llu", name,
                     (unsigned long long)off);
    }
    bd_node_close(n);
    return buf;
}

/* ---- ADC ---------------------------------------------------------------- */

Test(dmg_adc, literal_and_both_match_forms_expand)
{
    /* "abcabcabcabc" + "xyz": literal "abc", short match d=3 l=9 (0x18),
     * literal "xyz", long match of 4 bytes at distance 15 */
    const uint8_t src[] = { 0x82, 'a', 'b', 'c', 0x18, 0x02, 0x82, 'x', 'y',
                            'z', 0x40, 0x00, 0x0e };
    uint8_t out[19];

    cr_assert_eq(dmg_adc_decode(src, sizeof(src), out, sizeof(out)), 0);
    cr_assert_eq(memcmp(out, "abcabcabcabcxyzabca", 19), 0, "%.19s", out);
}

Test(dmg_adc, match_before_start_is_corrupt)
{
    const uint8_t src[] = { 0x80, 'a', 0x00, 0x05 };
    uint8_t out[4];

    cr_assert_eq(dmg_adc_decode(src, sizeof(src), out, sizeof(out)), -EIO);
}

Test(dmg_adc, short_or_long_output_is_corrupt)
{
    const uint8_t src[] = { 0x83, 'a', 'b', 'c', 'd' };
    uint8_t out[8];

    cr_assert_eq(dmg_adc_decode(src, sizeof(src), out, 8), -EIO);
    cr_assert_eq(dmg_adc_decode(src, sizeof(src), out, 2), -EIO);
    cr_assert_eq(dmg_adc_decode(src, 3, out, 4), -EIO);
}

/* ---- library codecs ------------------------------------------------------ */

static uint8_t *sample(size_t len)
{
    uint8_t *p = malloc(len);

    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i % 251 < 100 ? 'a' + i % 7 : (i * 2654435761u) >> 13);
    return p;
}

/* exact size decodes; one byte more or less is -EIO, never an overrun */
static void check_codec(uint32_t type, const uint8_t *z, size_t zlen,
                        const uint8_t *want, size_t len)
{
    uint8_t *out = malloc(len + 1);

    cr_assert_eq(dmg_decode(type, z, zlen, out, len), 0, "%s",
                 dmg_type_name(type));
    cr_assert_eq(memcmp(out, want, len), 0, "%s", dmg_type_name(type));
    cr_assert_eq(dmg_decode(type, z, zlen, out, len - 1), -EIO, "%s short",
                 dmg_type_name(type));
    cr_assert_eq(dmg_decode(type, z, zlen, out, len + 1), -EIO, "%s long",
                 dmg_type_name(type));
    cr_assert_eq(dmg_decode(type, z, zlen / 2, out, len), -EIO, "%s cut",
                 dmg_type_name(type));
    free(out);
}

Test(dmg_codec, zlib_bzip2_and_lzma_expand_to_exactly_the_chunk)
{
    const size_t len = 1 << 20;
    uint8_t *in = sample(len), *z = malloc(2 * len);
    uLongf zl = 2 * len;
    unsigned bl = 2 * len;
    size_t xl = 0;
    lzma_options_lzma opt;
    lzma_stream ls = LZMA_STREAM_INIT;

    cr_assert_eq(compress2(z, &zl, in, len, 6), Z_OK);
    check_codec(DMG_CHUNK_ZLIB, z, zl, in, len);
    cr_assert_eq(BZ2_bzBuffToBuffCompress((char *)z, &bl, (char *)in, len, 9,
                                          0, 0), BZ_OK);
    check_codec(DMG_CHUNK_BZIP2, z, bl, in, len);
    cr_assert_eq(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, in, len, z,
                                         &xl, 2 * len), LZMA_OK);
    check_codec(DMG_CHUNK_LZMA, z, xl, in, len);
    /* the legacy .lzma container is accepted too */
    lzma_lzma_preset(&opt, 6);
    cr_assert_eq(lzma_alone_encoder(&ls, &opt), LZMA_OK);
    ls.next_in = in;
    ls.avail_in = len;
    ls.next_out = z;
    ls.avail_out = 2 * len;
    cr_assert_eq(lzma_code(&ls, LZMA_FINISH), LZMA_STREAM_END);
    xl = 2 * len - ls.avail_out;
    lzma_end(&ls);
    check_codec(DMG_CHUNK_LZMA, z, xl, in, len);
    free(in);
    free(z);
}

/* ---- LZFSE / LZVN ------------------------------------------------------- */

Test(dmg_lzfse, stored_block_then_end)
{
    const uint8_t src[] = { 'b', 'v', 'x', '-', 5, 0, 0, 0, 'h', 'e', 'l',
                            'l', 'o', 'b', 'v', 'x', '$' };
    uint8_t out[5];

    cr_assert_eq(dmg_lzfse_decode(src, sizeof(src), out, 5), 0);
    cr_assert_eq(memcmp(out, "hello", 5), 0);
    cr_assert_eq(dmg_lzfse_decode(src, sizeof(src) - 1, out, 5), -EIO,
                 "a stream without its end marker is corrupt");
}

Test(dmg_lzfse, lzvn_literal_and_overlapping_match)
{
    /* payload (13 bytes): sml_l "ab" (0xe2), sml_d L=0 M=6 D=2 (0x18 0x02),
     * end of stream (0x06 + 7 bytes) */
    const uint8_t src[] = { 'b', 'v', 'x', 'n', 8, 0, 0, 0, 13, 0, 0, 0,
                            0xe2, 'a', 'b', 0x18, 0x02,
                            0x06, 0, 0, 0, 0, 0, 0, 0,
                            'b', 'v', 'x', '$' };
    uint8_t out[8];

    cr_assert_eq(dmg_lzfse_decode(src, sizeof(src), out, 8), 0);
    cr_assert_eq(memcmp(out, "abababab", 8), 0, "%.8s", out);
    cr_assert_eq(dmg_lzfse_decode(src, sizeof(src), out, 7), -EIO,
                 "a block larger than the chunk is corrupt");
}

Test(dmg_lzfse, lzvn_distance_beyond_output_is_corrupt)
{
    const uint8_t src[] = { 'b', 'v', 'x', 'n', 8, 0, 0, 0, 13, 0, 0, 0,
                            0xe2, 'a', 'b', 0x18, 0x09,
                            0x06, 0, 0, 0, 0, 0, 0, 0,
                            'b', 'v', 'x', '$' };
    uint8_t out[8];

    cr_assert_eq(dmg_lzfse_decode(src, sizeof(src), out, 8), -EIO);
}

static uint8_t *slurp(const char *name, size_t off, size_t *len)
{
    FILE *f = fopen(data_path(name), "rb");
    uint8_t *buf = malloc(1 << 20);

    cr_assert(f && buf, "%s", name);
    fseek(f, (long)off, SEEK_SET);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* bvx1 blocks (uncompressed frequency tables) decode like the bvx2 blocks
 * they were made from */
Test(dmg_lzfse, v1_and_v2_block_headers_decode_alike)
{
    size_t l1, l2;
    uint8_t *v1 = slurp("lzfse-v1-chunk.bin", 0, &l1);
    uint8_t *v2 = slurp("input_lzfse.dmg", 384, &l2);
    uint8_t *o1 = malloc(417792), *o2 = malloc(417792);

    cr_assert_eq(dmg_lzfse_decode(v2, 2488, o2, 417792), 0);
    cr_assert_eq(dmg_lzfse_decode(v1, l1, o1, 417792), 0);
    cr_assert_eq(memcmp(o1, o2, 417792), 0);
    for (size_t cut = 0; cut < l1; cut += 97)
        cr_assert_eq(dmg_lzfse_decode(v1, cut, o1, 417792), -EIO);
    free(v1);
    free(v2);
    free(o1);
    free(o2);
}

Test(dmg_lzfse, garbage_and_truncation_never_crash)
{
    uint8_t src[64], out[256];

    for (unsigned seed = 0; seed < 2000; seed++) {
        srand(seed);
        memcpy(src, "bvx2", 4);
        for (size_t i = 4; i < sizeof(src); i++)
            src[i] = (uint8_t)rand();
        if (seed & 1)
            src[3] = "12n-$"[seed % 5];
        (void)dmg_lzfse_decode(src, sizeof(src), out, sizeof(out));
        (void)dmg_lzfse_decode(src, seed % sizeof(src), out, sizeof(out));
    }
}

/* ---- base64 and blkx tables --------------------------------------------- */

Test(dmg_map, base64_ignores_whitespace)
{
    uint8_t *out;
    size_t len;

    cr_assert_eq(dmg_base64_decode("\n\tbWlz\n  aA==\n", &out, &len), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(out, "mish", 4), 0);
    free(out);
    cr_assert_eq(dmg_base64_decode("bW*z", &out, &len), -EINVAL);
}

static size_t mish(uint8_t *p, uint64_t first, uint32_t n)
{
    memset(p, 0, DMG_MISH_HDR + n * DMG_MISH_ENTRY);
    memcpy(p, "mish", 4);
    bd_put_be32(p + 4, 1);
    bd_put_be64(p + 8, first);
    bd_put_be32(p + 200, n);
    return DMG_MISH_HDR + n * DMG_MISH_ENTRY;
}

static void entry(uint8_t *p, uint32_t i, uint32_t type, uint64_t sector,
                  uint64_t count, uint64_t off, uint64_t len)
{
    uint8_t *e = p + DMG_MISH_HDR + i * DMG_MISH_ENTRY;

    bd_put_be32(e, type);
    bd_put_be64(e + 8, sector);
    bd_put_be64(e + 16, count);
    bd_put_be64(e + 24, off);
    bd_put_be64(e + 32, len);
}

Test(dmg_map, hostile_tables_are_refused_with_a_reason)
{
    uint8_t p[DMG_MISH_HDR + 4 * DMG_MISH_ENTRY];
    struct dmg_map m = { 0 };
    struct bd_err err = { 0 };
    size_t len;

    /* claims more entries than it holds */
    len = mish(p, 0, 1);
    bd_put_be32(p + 200, 1000);
    cr_assert_eq(dmg_map_add_mish(&m, p, len, 1 << 20, "t", &err), -EINVAL);
    cr_assert(strstr(err.msg, "claims 1000 chunks"), "%s", err.msg);

    /* data beyond the end of the file */
    memset(&err, 0, sizeof(err));
    len = mish(p, 0, 1);
    entry(p, 0, DMG_CHUNK_ZLIB, 0, 8, 1000, 1 << 20);
    cr_assert_eq(dmg_map_add_mish(&m, p, len, 4096, "t", &err), -EINVAL);
    cr_assert(strstr(err.msg, "beyond the end of the file"), "%s", err.msg);

    /* sector numbers that overflow */
    memset(&err, 0, sizeof(err));
    len = mish(p, UINT64_MAX - 4, 1);
    entry(p, 0, DMG_CHUNK_ZERO, 10, 8, 0, 0);
    cr_assert_eq(dmg_map_add_mish(&m, p, len, 4096, "t", &err), -EINVAL);

    /* unknown chunk type */
    memset(&err, 0, sizeof(err));
    len = mish(p, 0, 1);
    entry(p, 0, 0x80000042, 0, 8, 0, 10);
    cr_assert_eq(dmg_map_add_mish(&m, p, len, 4096, "t", &err), -ENOTSUP);
    cr_assert(strstr(err.msg, "0x80000042"), "%s", err.msg);

    /* a compressed chunk expanding to gigabytes */
    memset(&err, 0, sizeof(err));
    len = mish(p, 0, 1);
    entry(p, 0, DMG_CHUNK_ZLIB, 0, 1ull << 30, 0, 10);
    cr_assert_eq(dmg_map_add_mish(&m, p, len, 4096, "t", &err), -EFBIG);
    dmg_map_free(&m);
}

Test(dmg_map, overlapping_chunks_are_refused)
{
    uint8_t p[DMG_MISH_HDR + 4 * DMG_MISH_ENTRY];
    struct dmg_map m = { 0 };
    struct bd_err err = { 0 };
    size_t len = mish(p, 0, 3);

    entry(p, 0, DMG_CHUNK_ZERO, 0, 8, 0, 0);
    entry(p, 1, DMG_CHUNK_COMMENT, 2, 0, 0, 0);
    entry(p, 2, DMG_CHUNK_RAW, 4, 8, 0, 4096);
    cr_assert_eq(dmg_map_add_mish(&m, p, len, 4096, "t", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(m.n_chunks, 2);
    cr_assert_eq(dmg_map_finish(&m, 12, "t", &err), -EINVAL);
    cr_assert(strstr(err.msg, "overlap at sector 4"), "%s", err.msg);
    dmg_map_free(&m);
}

Test(dmg_map, terminator_ends_the_table_and_gaps_are_found)
{
    uint8_t p[DMG_MISH_HDR + 4 * DMG_MISH_ENTRY];
    struct dmg_map m = { 0 };
    struct bd_err err = { 0 };
    size_t len = mish(p, 0, 4);

    entry(p, 0, DMG_CHUNK_ZERO, 0, 8, 0, 0);
    entry(p, 1, DMG_CHUNK_RAW, 16, 8, 0, 4096);
    entry(p, 2, DMG_CHUNK_TERMINATOR, 24, 0, 0, 0);
    entry(p, 3, 0x12345678, 24, 8, 0, 0);       /* after the end: ignored */
    cr_assert_eq(dmg_map_add_mish(&m, p, len, 4096, "t", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(dmg_map_finish(&m, 40, "t", &err), 0, "%s", err.msg);
    cr_assert_eq(m.size, 40 * 512);
    cr_assert_eq(dmg_map_find(&m, 0), 0);
    cr_assert_eq(dmg_map_find(&m, 5000), 1);    /* gap: the next chunk */
    cr_assert_eq(dmg_map_find(&m, 8192), 1);
    cr_assert_eq(dmg_map_find(&m, 13000), 2);   /* after the last one */
    dmg_map_free(&m);
}

/* ---- whole images ------------------------------------------------------- */

Test(dmg_image, every_codec_reads_the_same_disk_as_raw_chunks)
{
    static const char *const names[] = {
        "input_zlib.dmg", "input_bzip2.dmg", "input_adc.dmg",
        "input_lzfse.dmg",
    };
    uint8_t *ref = read_all("input_ro.dmg", 1 << 20);

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        /* odd piece size: reads straddle chunk boundaries */
        uint8_t *got = read_all(names[i], 12288 + 512);

        cr_assert_eq(memcmp(ref, got, DISK_LEN), 0, "%s differs", names[i]);
        free(got);
    }
    free(ref);
}

Test(dmg_image, ignore_chunks_report_zero_and_data_chunks_data)
{
    struct bd_node *n;
    struct bd_err err;
    uint64_t pnum, map;
    unsigned st;

    cr_assert_eq(open_dmg(data_path("input_ro.dmg"), &n, &err), 0, "%s",
                 err.msg);
    /* sectors 40..855 are raw data; 856..20487 an ignore chunk */
    cr_assert_eq(bd_block_status(n, 40 * 512, 1 << 20, &pnum, &st, &map), 0);
    cr_assert(st & BD_STATUS_DATA);
    cr_assert_eq(pnum, 816 * 512);
    cr_assert_eq(bd_block_status(n, 856 * 512, 100 << 20, &pnum, &st, &map),
                 0);
    cr_assert(st & BD_STATUS_ZERO);
    cr_assert(!(st & BD_STATUS_DATA));
    cr_assert_geq(pnum, 19632 * 512);
    bd_node_close(n);
}

static void b64(const uint8_t *in, size_t len, char *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 |
                     (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);

        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < len ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* A whole dmg smaller than the probe buffer: one zero-fill chunk of 64
 * sectors, so probing sees the koly trailer in the head. */
Test(dmg_image, small_image_is_probed_from_its_trailer)
{
    uint8_t table[DMG_MISH_HDR + 2 * DMG_MISH_ENTRY], koly[512] = { 0 };
    char data[512], xml[2048], path[] = "/tmp/test-dmg-probe.XXXXXX";
    struct bd_flags flags = { .read_only = true };
    struct bd_node *n;
    struct bd_err err = { 0 };
    uint8_t buf[4096];
    int fd, xl;

    mish(table, 0, 2);
    entry(table, 0, DMG_CHUNK_ZERO, 0, 64, 0, 0);
    entry(table, 1, DMG_CHUNK_TERMINATOR, 64, 0, 0, 0);
    b64(table, sizeof(table), data);
    xl = snprintf(xml, sizeof(xml), "<?xml version=\"1.0\"?><plist><dict>"
                  "<key>resource-fork</key><dict><key>blkx</key><array><dict>"
                  "<key>Data</key><data>%s</data></dict></array></dict></dict>"
                  "</plist>", data);
    memcpy(koly, "koly", 4);
    bd_put_be32(koly + 4, 4);
    bd_put_be32(koly + 8, 512);
    bd_put_be64(koly + 216, 0);
    bd_put_be64(koly + 224, (uint64_t)xl);
    bd_put_be64(koly + 492, 64);
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, xml, (size_t)xl), xl);
    cr_assert_eq(write(fd, koly, 512), 512);
    close(fd);

    cr_assert_eq(bd_open_image(path, NULL, NULL, &flags, &n, &err), 0, "%s",
                 err.msg);
    cr_assert_str_eq(n->drv->name, "dmg");
    cr_assert_eq(bd_size(n), 64 * 512);
    memset(buf, 0xff, sizeof(buf));
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 4096), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_assert_eq(buf[i], 0);
    bd_node_close(n);
    unlink(path);
}

Test(dmg_image, encrypted_image_is_probed_and_refused)
{
    struct bd_flags flags = { .read_only = true };
    struct bd_node *n = NULL;
    struct bd_err err = { 0 };

    cr_assert_eq(bd_open_image(data_path("input_aes256.dmg"), NULL, NULL,
                               &flags, &n, &err), -ENOTSUP);
    cr_assert(strstr(err.msg, "encrypted disk images are not supported"), "%s",
              err.msg);
}

Test(dmg_image, encrypted_image_gives_a_clear_error)
{
    struct bd_node *n = NULL;
    struct bd_err err;

    cr_assert_eq(open_dmg(data_path("input_aes256.dmg"), &n, &err), -ENOTSUP);
    cr_assert(strstr(err.msg, "encrypted disk images are not supported"), "%s",
              err.msg);
}

static char *copy_to_tmp(const char *name, size_t keep, unsigned flip_seed,
                         size_t *len_out)
{
    static char tmp[] = "/tmp/test-dmg.XXXXXX";
    char *path = strdup(tmp);
    FILE *f = fopen(data_path(name), "rb");
    uint8_t *buf = malloc(1 << 20);
    size_t len;
    int fd;

    cr_assert(f && buf && path);
    len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    if (keep < len)
        len = keep;
    if (flip_seed) {
        srand(flip_seed);
        /* damage the metadata: the plist and the koly trailer at the end */
        for (int i = 0; i < 8; i++) {
            size_t at = len - 1 - (size_t)rand() % (len < 9000 ? len : 9000);
            buf[at] ^= (uint8_t)(1u << (rand() % 8));
        }
    }
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
    free(buf);
    *len_out = len;
    return path;
}

/* Must fail to open or read with an error, never crash or hang. */
static void open_and_read_everything(const char *path)
{
    struct bd_node *n;
    struct bd_err err;
    int64_t size;
    uint8_t *buf;

    if (open_dmg(path, &n, &err) < 0) {
        cr_assert(err.msg[0], "an open failure explains itself");
        return;
    }
    /* a damaged trailer may claim an enormous disk: read the first 32 MiB
     * (every chunk of these samples) and a piece at the far end */
    size = bd_size(n);
    buf = malloc(1 << 20);
    if (size > (32 << 20)) {
        (void)bd_pread(n, buf, 4096, (uint64_t)size - 4096);
        size = 32 << 20;
    }
    for (int64_t off = 0; off < size; off += 1 << 20) {
        uint64_t len = (uint64_t)(size - off) < (1u << 20) ?
                       (uint64_t)(size - off) : (1u << 20);

        if (bd_pread(n, buf, len, (uint64_t)off) < 0)
            break;
    }
    free(buf);
    bd_node_close(n);
}

Test(dmg_image, truncated_copies_give_an_error)
{
    static const char *const names[] = { "input_zlib.dmg", "simple-dmg.dmg" };

    for (size_t i = 0; i < 2; i++) {
        size_t full, len;
        char *path = copy_to_tmp(names[i], SIZE_MAX, 0, &full);

        unlink(path);
        free(path);
        for (size_t keep = 0; keep < full; keep += full / 37 + 1) {
            struct bd_node *n;
            struct bd_err err;

            path = copy_to_tmp(names[i], keep, 0, &len);
            cr_assert_lt(open_dmg(path, &n, &err), 0, "%s cut at %zu opened",
                         names[i], keep);
            cr_assert(err.msg[0]);
            unlink(path);
            free(path);
        }
    }
}

Test(dmg_image, damaged_metadata_never_crashes, .timeout = 60)
{
    static const char *const names[] = {
        "input_zlib.dmg", "input_lzfse.dmg", "input_adc.dmg",
        "input_bzip2.dmg",
    };

    for (unsigned seed = 1; seed <= 100; seed++) {
        size_t len;
        char *path = copy_to_tmp(names[seed % 4], SIZE_MAX, seed, &len);

        open_and_read_everything(path);
        unlink(path);
        free(path);
    }
}
