/*
 * Unit tests of the cloop driver: images built here (V2 header first, V4
 * with the header at the end and mixed zlib/stored blocks) read back
 * through bd_open_image() + bd_pread(), and hostile indexes refused at
 * open or at read with a message.
 */
#include "core/graph.h"
#include "drivers/format/cloop/cloop.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

extern const struct bd_driver bd_drv_cloop;

#define BS 4096u
#define NB 6u

static char path[64];
static uint8_t disk[BS * NB];

static void setup(void)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/test-cloop.XXXXXX");
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    for (size_t i = 0; i < sizeof(disk); i++)
        disk[i] = (uint8_t)(i * 7 + i / 4096);
    memset(disk + 2 * BS, 0, BS);               /* an all-zero block */
}

static void teardown(void)
{
    unlink(path);
}

struct img {
    uint8_t *p;
    size_t len;
};

static void put(struct img *m, const void *src, size_t len)
{
    m->p = realloc(m->p, m->len + len);
    cr_assert(m->p);
    memcpy(m->p + m->len, src, len);
    m->len += len;
}

static void head(uint8_t *h, unsigned version, uint32_t bs, uint32_t nb)
{
    memset(h, 0, CLOOP_HEAD_SIZE);
    snprintf((char *)h, CLOOP_PREAMBLE, "#!/bin/sh\n#V%u.0 Format\n",
             version);
    bd_put_be32(h + CLOOP_PREAMBLE, bs);
    bd_put_be32(h + CLOOP_PREAMBLE + 4, nb);
}

/* Blocks: odd ones stored (V4 only), the others zlib. */
static struct img build(unsigned version, bool footer)
{
    struct img m = { 0 }, data = { 0 };
    uint64_t ptr[NB + 1], base;
    uint8_t h[CLOOP_HEAD_SIZE];

    base = footer ? 0 : CLOOP_HEAD_SIZE + sizeof(ptr);
    for (unsigned i = 0; i < NB; i++) {
        uint8_t z[2 * BS];
        uLongf zl = sizeof(z);
        bool stored = version == 4 && i % 2;

        ptr[i] = (base + data.len) | (stored ? (uint64_t)CLOOP_CODEC_NONE << 60
                                           : 0);
        if (stored) {
            put(&data, disk + i * BS, BS);
        } else {
            cr_assert_eq(compress2(z, &zl, disk + i * BS, BS, 9), Z_OK);
            put(&data, z, zl);
        }
    }
    ptr[NB] = base + data.len;
    for (unsigned i = 0; i <= NB; i++)
        bd_put_be64(&ptr[i], ptr[i]);
    head(h, version, BS, NB);
    if (!footer)
        put(&m, h, sizeof(h)), put(&m, ptr, sizeof(ptr));
    put(&m, data.p, data.len);
    if (footer)
        put(&m, ptr, sizeof(ptr)), put(&m, h, sizeof(h));
    free(data.p);
    return m;
}

static void save(const struct img *m)
{
    FILE *f = fopen(path, "wb");

    cr_assert(f);
    cr_assert_eq(fwrite(m->p, 1, m->len, f), m->len);
    fclose(f);
}

static int try_open(struct bd_node **n, struct bd_err *err)
{
    struct bd_flags flags = { .read_only = true };

    return bd_open_image(path, "cloop", NULL, &flags, n, err);
}

static void check_reads(void)
{
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    static uint8_t buf[BS * NB];

    cr_assert_eq(try_open(&n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_size(n), (int64_t)sizeof(disk));
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 0), 0);
    cr_assert_arr_eq(buf, disk, sizeof(disk));
    /* unaligned, across block boundaries */
    cr_assert_eq(bd_pread(n, buf, 3 * BS + 17, BS - 5), 0);
    cr_assert_arr_eq(buf, disk + BS - 5, 3 * BS + 17);
    cr_assert_eq(bd_pread(n, buf, 1, sizeof(disk) - 1), 0);
    cr_assert_eq(buf[0], disk[sizeof(disk) - 1]);
    bd_node_close(n);
}

TestSuite(cloop, .init = setup, .fini = teardown);

Test(cloop, v2_header_first)
{
    struct img m = build(2, false);

    save(&m);
    check_reads();
    free(m.p);
}

Test(cloop, v4_footer_mixed_codecs)
{
    struct img m = build(4, true);

    save(&m);
    check_reads();
    free(m.p);
}

Test(cloop, v4_header_first)
{
    struct img m = build(4, false);

    save(&m);
    check_reads();
    free(m.p);
}

/* Rewrite index entry i (header-first image) and expect open to fail
 * with msg in the message. */
static void bad_entry(unsigned version, unsigned i, uint64_t v,
                      const char *msg)
{
    struct img m = build(version, false);
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    bd_put_be64(m.p + CLOOP_HEAD_SIZE + 8 * i, v);
    save(&m);
    cr_assert_lt(try_open(&n, &err), 0);
    cr_assert(strstr(err.msg, msg), "got: %s", err.msg);
    free(m.p);
}

Test(cloop, offsets_going_backwards)
{
    bad_entry(2, 3, 10, "goes backwards");
}

Test(cloop, offset_beyond_the_file)
{
    bad_entry(2, NB, 1ull << 40, "more than a");
    bad_entry(4, NB, 1ull << 59, "more than a");
}

Test(cloop, v2_offset_with_high_bits)
{
    bad_entry(2, 0, 0xf000000000000000ull, "beyond any file");
}

Test(cloop, unknown_codec)
{
    struct img m = build(4, false);
    uint64_t v = bd_be64(m.p + CLOOP_HEAD_SIZE);

    free(m.p);
    bad_entry(4, 0, v | 9ull << 60, "unknown compression 9");
}

Test(cloop, truncated)
{
    struct img m = build(2, false);
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    m.len -= 10;
    save(&m);
    cr_assert_lt(try_open(&n, &err), 0);
    cr_assert(strstr(err.msg, "truncated"), "got: %s", err.msg);
    free(m.p);
}

Test(cloop, huge_block_count_and_bad_block_size)
{
    struct img m = build(2, false);
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    bd_put_be32(m.p + CLOOP_PREAMBLE + 4, 0xffffffffu);
    save(&m);
    cr_assert_lt(try_open(&n, &err), 0);
    cr_assert(strstr(err.msg, "blocks"), "got: %s", err.msg);
    bd_err_clear(&err);
    bd_put_be32(m.p + CLOOP_PREAMBLE + 4, NB);
    bd_put_be32(m.p + CLOOP_PREAMBLE, 1000);
    save(&m);
    cr_assert_lt(try_open(&n, &err), 0);
    cr_assert(strstr(err.msg, "multiple of 512"), "got: %s", err.msg);
    free(m.p);
}

/* A block that expands to more than the block size fails to read (EIO)
 * while its neighbours still read. */
Test(cloop, block_expanding_beyond_its_size)
{
    struct img m = { 0 };
    uint8_t h[CLOOP_HEAD_SIZE], big[2 * BS], z1[4 * BS], z2[4 * BS], buf[BS];
    uint64_t ptr[3], base = CLOOP_HEAD_SIZE + sizeof(ptr);
    uLongf l1 = sizeof(z1), l2 = sizeof(z2);
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    memset(big, 0x5a, sizeof(big));
    cr_assert_eq(compress2(z1, &l1, big, sizeof(big), 9), Z_OK);
    cr_assert_eq(compress2(z2, &l2, big, BS, 9), Z_OK);
    head(h, 2, BS, 2);
    bd_put_be64(&ptr[0], base);
    bd_put_be64(&ptr[1], base + l1);
    bd_put_be64(&ptr[2], base + l1 + l2);
    put(&m, h, sizeof(h));
    put(&m, ptr, sizeof(ptr));
    put(&m, z1, l1);
    put(&m, z2, l2);
    save(&m);
    cr_assert_eq(try_open(&n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_pread(n, buf, 10, 0), -EIO);
    cr_assert_eq(bd_pread(n, buf, BS, BS), 0);
    cr_assert_eq(buf[BS - 1], 0x5a);
    bd_node_close(n);
    free(m.p);
}

Test(cloop, probe)
{
    uint8_t h[512] = { 0 };

    head(h, 2, BS, NB);
    cr_assert_eq(bd_drv_cloop.probe(h, sizeof(h)), 100);
    memset(h, 0, sizeof(h));
    head(h + sizeof(h) - CLOOP_HEAD_SIZE, 4, BS, NB);
    cr_assert_eq(bd_drv_cloop.probe_tail(h, sizeof(h)), 90);
    memset(h, 0, sizeof(h));
    cr_assert_eq(bd_drv_cloop.probe(h, sizeof(h)), 0);
    cr_assert_eq(bd_drv_cloop.probe_tail(h, sizeof(h)), 0);
}
