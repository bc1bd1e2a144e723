/*
 * Unit tests of the qcow (version 1) driver: images built by hand (data,
 * compressed and unallocated clusters, odd cluster and L2 sizes), writes
 * into each kind of cluster, creation, the AES refusal and hostile headers,
 * through bd_create_image(), bd_open_image() and bd_pread()/bd_pwrite().
 */
#include "core/graph.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define TMPDIR_PREFIX "test-qcow"
#include "tmpdir.h"

extern const struct bd_driver bd_drv_qcow;
extern const struct bd_driver bd_drv_qcow2;

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int open_img(const char *path, bool rw, struct bd_node **n,
                    struct bd_err *err)
{
    struct bd_flags flags = { .read_only = !rw };

    return bd_open_image(path, "qcow", NULL, &flags, n, err);
}

static struct bd_node *open_ok(const char *path, bool rw)
{
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    cr_assert_eq(open_img(path, rw, &n, &err), 0, "open %s: %s", path, err.msg);
    return n;
}

/*
 * A qcow image by hand: 512-byte clusters, 64-entry L2 tables, 64 KiB of
 * guest (two L2 tables). Header at 0, L1 at 512, L2 tables at 1024 and
 * 1536, clusters from 2048. Guest cluster 0 is data (0x11), cluster 1
 * compressed (0x22), cluster 2 unallocated, cluster 70 data (0x33).
 */
static void make_qcow(const char *path, uint8_t cluster_bits, uint8_t l2_bits,
                      uint32_t crypt)
{
    uint8_t img[8192] = { 0 }, plain[512], comp[600];
    z_stream z = { 0 };
    uint64_t clen;
    FILE *f;

    memcpy(img, "QFI\xfb", 4);
    put_be32(img + 4, 1);
    put_be64(img + 24, 65536);
    img[32] = cluster_bits;
    img[33] = l2_bits;
    put_be32(img + 36, crypt);
    put_be64(img + 40, 512);
    put_be64(img + 512, 1024);
    put_be64(img + 520, 1536);
    put_be64(img + 1024, 2048);
    memset(img + 2048, 0x11, 512);
    memset(plain, 0x22, sizeof(plain));
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = plain;
    z.avail_in = sizeof(plain);
    z.next_out = comp;
    z.avail_out = sizeof(comp);
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    clen = sizeof(comp) - z.avail_out;
    deflateEnd(&z);
    memcpy(img + 2560, comp, clen);
    put_be64(img + 1032, 1ull << 63 | clen << (63 - 9) | 2560);
    put_be64(img + 1536 + 8 * 6, 3072);
    memset(img + 3072, 0x33, 512);
    f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(img, 1, 3584, f), 3584);
    fclose(f);
}

TestSuite(qcow, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(qcow, probe_takes_version_1_and_leaves_2_and_3_to_qcow2)
{
    uint8_t head[512] = { 0 };

    memcpy(head, "QFI\xfb\0\0\0\1", 8);
    cr_assert_eq(bd_drv_qcow.probe(head, sizeof(head)), 100);
    cr_assert_eq(bd_drv_qcow2.probe(head, sizeof(head)), 0);
    for (uint8_t v = 2; v <= 3; v++) {
        head[7] = v;
        cr_assert_eq(bd_drv_qcow.probe(head, sizeof(head)), 0);
        cr_assert_eq(bd_drv_qcow2.probe(head, sizeof(head)), 100);
    }
}

Test(qcow, data_compressed_and_unallocated_clusters_read_back)
{
    struct bd_node *n;
    uint64_t pnum, map;
    unsigned st;

    make_qcow(tmp("a.qcow"), 9, 6, 0);
    n = open_ok(tmp("a.qcow"), false);
    cr_assert_eq(bd_size(n), 65536);
    expect_fill(n, 0, 512, 0x11);
    expect_fill(n, 512, 512, 0x22);
    expect_fill(n, 1024, 70 * 512 - 1024, 0);
    expect_fill(n, 70 * 512, 512, 0x33);
    expect_fill(n, 71 * 512, 65536 - 71 * 512, 0);
    expect_fill(n, 300, 200, 0x11);

    cr_assert_eq(bd_block_status(n, 0, 65536, &pnum, &st, &map), 0);
    cr_assert_eq(pnum, 512);
    cr_assert_eq(st, BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET);
    cr_assert_eq(map, 2048);
    cr_assert_eq(bd_block_status(n, 512, 65536 - 512, &pnum, &st, &map), 0);
    cr_assert_eq(st, BD_STATUS_DATA | BD_STATUS_ALLOCATED, "compressed");
    cr_assert_eq(bd_block_status(n, 1024, 65536 - 1024, &pnum, &st, &map), 0);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0);
    cr_assert_eq(pnum, 69 * 512 - 1024 + 512, "unallocated up to cluster 70");
    bd_node_close(n);
}

Test(qcow, writes_to_every_kind_of_cluster_read_back_after_reopen)
{
    struct bd_node *n;
    uint8_t buf[700];

    make_qcow(tmp("a.qcow"), 9, 6, 0);
    n = open_ok(tmp("a.qcow"), true);
    memset(buf, 0x5a, sizeof(buf));
    /* data cluster 0 and into compressed cluster 1 */
    cr_assert_eq(bd_pwrite(n, buf, 100, 450, 0), 0);
    /* unallocated cluster 2, and cluster 100 in an L2 table not there yet */
    cr_assert_eq(bd_pwrite(n, buf, 10, 1100, 0), 0);
    cr_assert_eq(bd_pwrite(n, buf, 700, 100 * 512 + 3, 0), 0);
    bd_node_close(n);

    n = open_ok(tmp("a.qcow"), false);
    expect_fill(n, 0, 450, 0x11);
    expect_fill(n, 450, 100, 0x5a);
    expect_fill(n, 550, 474, 0x22);
    expect_fill(n, 1024, 76, 0);
    expect_fill(n, 1100, 10, 0x5a);
    expect_fill(n, 1110, 70 * 512 - 1110, 0);
    expect_fill(n, 70 * 512, 512, 0x33);
    expect_fill(n, 71 * 512, 29 * 512 + 3, 0);
    expect_fill(n, 100 * 512 + 3, 700, 0x5a);
    expect_fill(n, 100 * 512 + 703, 65536 - 100 * 512 - 703, 0);
    bd_node_close(n);
}

Test(qcow, zero_writes_leave_unallocated_clusters_alone)
{
    struct bd_node *n;
    FILE *f;
    long before, after;

    make_qcow(tmp("a.qcow"), 9, 6, 0);
    n = open_ok(tmp("a.qcow"), true);
    cr_assert_eq(bd_pwrite_zeroes(n, 40000, 1000, 0), 0);
    bd_node_close(n);
    f = fopen(tmp("a.qcow"), "rb");
    fseek(f, 0, SEEK_END);
    after = ftell(f);
    fclose(f);
    before = 3584 + 512;        /* the compressed cluster became a data one */
    cr_assert_eq(after, before, "file is %ld bytes", after);
    n = open_ok(tmp("a.qcow"), false);
    expect_fill(n, 0, 512, 0x11);
    expect_fill(n, 512, 488, 0x22);
    expect_fill(n, 1000, 65536 - 1000, 0);
    bd_node_close(n);
}

Test(qcow, unmapping_zero_writes_deallocate_whole_clusters)
{
    struct bd_node *n;
    uint64_t pnum, map;
    unsigned st;

    make_qcow(tmp("a.qcow"), 9, 6, 0);
    n = open_ok(tmp("a.qcow"), true);
    /* clusters 0 (data) and 1 (compressed) whole, cluster 70 in part */
    cr_assert_eq(bd_pwrite_zeroes(n, 1024, 0, BD_REQ_MAY_UNMAP), 0);
    cr_assert_eq(bd_pwrite_zeroes(n, 100, 70 * 512, BD_REQ_MAY_UNMAP), 0);
    bd_node_close(n);
    n = open_ok(tmp("a.qcow"), false);
    expect_fill(n, 0, 70 * 512 + 100, 0);
    expect_fill(n, 70 * 512 + 100, 412, 0x33);
    cr_assert_eq(bd_block_status(n, 0, 65536, &pnum, &st, &map), 0);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0);
    cr_assert_eq(pnum, 70 * 512, "unallocated up to the partly zeroed cluster");
    bd_node_close(n);
}

Test(qcow, create_writes_qemus_layout)
{
    struct bd_err err = { 0 };
    struct bd_node *n;
    uint8_t h[1024];
    FILE *f;

    cr_assert_eq(bd_create_image(tmp("c.qcow"), "qcow", 10000000, NULL, &err), 0,
                 "%s", err.msg);
    f = fopen(tmp("c.qcow"), "rb");
    cr_assert(f && fread(h, 1, 48, f) == 48);
    fseek(f, 0, SEEK_END);
    /* 10000384 bytes in 2 MiB per L1 entry: 5 entries, one sector */
    cr_assert_eq(ftell(f), 48 + 512);
    fclose(f);
    cr_assert_eq(be64(h + 24), 10000384, "rounded up to a sector");
    cr_assert_eq(h[32], 12);
    cr_assert_eq(h[33], 9);
    cr_assert_eq(be64(h + 40), 48);

    n = open_ok(tmp("c.qcow"), true);
    cr_assert_eq(bd_pwrite(n, "hello", 5, 9999990, 0), 0);
    bd_node_close(n);
    n = open_ok(tmp("c.qcow"), false);
    expect_fill(n, 0, 9999990, 0);
    bd_node_close(n);
}

Test(qcow, create_over_a_backing_file_reads_through_it)
{
    struct bd_err err = { 0 };
    struct bd_node *n;
    char opts[160];
    uint8_t buf[4096];
    FILE *f;

    f = fopen(tmp("base.raw"), "wb");
    memset(buf, 0x44, sizeof(buf));
    for (int i = 0; i < 256; i++)
        cr_assert_eq(fwrite(buf, 1, sizeof(buf), f), sizeof(buf));
    fclose(f);
    snprintf(opts, sizeof(opts), "backing_file=base.raw,backing_fmt=raw");
    cr_assert_eq(bd_create_image(tmp("top.qcow"), "qcow", 0, opts, &err), 0,
                 "%s", err.msg);
    n = open_ok(tmp("top.qcow"), true);
    cr_assert_eq(bd_size(n), 1 << 20, "size taken from the backing file");
    memset(buf, 0x66, 100);
    cr_assert_eq(bd_pwrite(n, buf, 100, 1000, 0), 0);
    expect_fill(n, 0, 1000, 0x44);
    expect_fill(n, 1000, 100, 0x66);
    expect_fill(n, 1100, (1 << 20) - 1100, 0x44);
    bd_node_close(n);
}

Test(qcow, aes_images_need_a_secret_and_round_trip)
{
    struct bd_err err = { 0 };
    struct bd_flags flags = { 0 };
    struct bd_node *n = NULL;
    uint8_t buf[1024], back[1024];

    make_qcow(tmp("aes.qcow"), 9, 6, 1);
    cr_assert_lt(open_img(tmp("aes.qcow"), false, &n, &err), 0);
    cr_assert(strstr(err.msg, "encrypt.key-secret=ID"), "%s", err.msg);
    cr_assert_eq(bd_secret_define("k1", "pw", 2, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_secret_define("k2", "px", 2, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_open_image(tmp("aes.qcow"), "qcow", "encrypt.key-secret=k1",
                               &flags, &n, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7);
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 512, 0), 0);
    cr_assert_eq(bd_pread(n, back, sizeof(back), 512), 0);
    cr_assert_eq(memcmp(buf, back, sizeof(buf)), 0, "round trip");
    bd_node_close(n);
    /* the file holds no plaintext; another passphrase reads other bytes */
    FILE *f = fopen(tmp("aes.qcow"), "rb");
    uint8_t all[65536];
    size_t got = fread(all, 1, sizeof(all), f);
    fclose(f);
    cr_assert_null(memmem(all, got, buf + 8, 64), "plaintext in the file");
    cr_assert_eq(bd_open_image(tmp("aes.qcow"), "qcow", "encrypt.key-secret=k2",
                               &flags, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_pread(n, back, sizeof(back), 512), 0);
    cr_assert_neq(memcmp(buf, back, sizeof(buf)), 0, "wrong key, same bytes");
    bd_node_close(n);
    bd_secret_wipe_all();
}

Test(qcow, hostile_headers_are_refused)
{
    static const struct { uint8_t cb, l2; } bad[] = { { 8, 6 }, { 17, 6 },
                                                      { 9, 5 }, { 9, 14 },
                                                      { 255, 255 } };
    struct bd_err err;
    struct bd_node *n = NULL;
    uint8_t h[48];
    FILE *f;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        make_qcow(tmp("h.qcow"), bad[i].cb, bad[i].l2, 0);
        memset(&err, 0, sizeof(err));
        cr_assert_lt(open_img(tmp("h.qcow"), false, &n, &err), 0,
                     "cluster_bits %u l2_bits %u", bad[i].cb, bad[i].l2);
    }
    /* a huge size: its L1 table lies far beyond the end of the file */
    make_qcow(tmp("h.qcow"), 9, 6, 0);
    f = fopen(tmp("h.qcow"), "r+b");
    cr_assert(f && fread(h, 1, 48, f) == 48);
    put_be64(h + 24, 1ull << 40);
    fseek(f, 0, SEEK_SET);
    fwrite(h, 1, 48, f);
    fclose(f);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(open_img(tmp("h.qcow"), false, &n, &err), 0);
    cr_assert(strstr(err.msg, "L1 table"), "%s", err.msg);
}

Test(qcow, an_l2_table_past_the_end_of_the_file_is_an_io_error)
{
    struct bd_node *n;
    uint8_t buf[512];
    FILE *f;

    make_qcow(tmp("a.qcow"), 9, 6, 0);
    f = fopen(tmp("a.qcow"), "r+b");
    put_be64(buf, 1ull << 40);
    fseek(f, 520, SEEK_SET);
    fwrite(buf, 1, 8, f);
    fclose(f);
    n = open_ok(tmp("a.qcow"), false);
    expect_fill(n, 0, 512, 0x11);
    cr_assert_eq(bd_pread(n, buf, 512, 70 * 512), -EIO);
    bd_node_close(n);
}
