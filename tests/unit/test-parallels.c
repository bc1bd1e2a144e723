/*
 * Unit tests of the parallels driver: v1 (sector) and v2 (cluster) catalog
 * offsets, clusters beyond the catalog or the file reading as zeroes,
 * hostile headers, the format extension and its MD5, through
 * bd_open_image(), bd_pread() and bd_block_status().
 */
#include "core/graph.h"
#include "drivers/format/parallels/parallels.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMPDIR_PREFIX "test-parallels"
#include "tmpdir.h"

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* A header of 4 KiB clusters (8 sectors) and `entries` catalog entries. */
static void header(uint8_t *h, bool v2, uint32_t entries, uint64_t sectors)
{
    memcpy(h, v2 ? "WithouFreSpacExt" : "WithoutFreeSpace", 16);
    put_le32(h + 16, 2);
    put_le32(h + 20, 16);
    put_le32(h + 24, 4);
    put_le32(h + 28, 8);
    put_le32(h + 32, entries);
    put_le64(h + 36, sectors);
}

/* Write h[0..hlen), then `clusters` 4 KiB clusters of bytes 1, 2, ... */
static void write_img(const char *path, const uint8_t *h, size_t hlen,
                      unsigned clusters)
{
    FILE *f = fopen(path, "wb");
    uint8_t c[4096];

    cr_assert(f);
    cr_assert_eq(fwrite(h, 1, hlen, f), hlen);
    for (unsigned i = 0; i < clusters; i++) {
        memset(c, (int)(i + 1), sizeof(c));
        cr_assert_eq(fwrite(c, 1, sizeof(c), f), sizeof(c));
    }
    fclose(f);
}

static int try_open(const char *path, struct bd_node **n, struct bd_err *err)
{
    struct bd_flags flags = { .read_only = true };

    memset(err, 0, sizeof(*err));
    return bd_open_image(path, "parallels", NULL, &flags, n, err);
}

static struct bd_node *open_img(const char *path)
{
    struct bd_err err;
    struct bd_node *n = NULL;

    cr_assert_eq(try_open(path, &n, &err), 0, "open %s: %s", path, err.msg);
    return n;
}

TestSuite(parallels, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(parallels, v1_catalog_holds_sector_offsets)
{
    /* data at 4096 (sector 8); cluster 0 -> 2nd data cluster, 2 -> 1st */
    uint8_t h[4096] = { 0 };
    struct bd_node *n;
    uint64_t pnum, m;
    unsigned st;

    header(h, false, 4, 32);
    put_le32(h + 64, 16);
    put_le32(h + 72, 8);
    write_img(tmp("v1.hds"), h, sizeof(h), 2);
    n = open_img(tmp("v1.hds"));
    cr_assert_eq(bd_size(n), 32 * 512);
    expect_fill(n, 0, 4096, 2);
    expect_fill(n, 4096, 4096, 0);
    expect_fill(n, 8192, 4096, 1);
    expect_fill(n, 12288, 4096, 0);
    cr_assert_eq(bd_block_status(n, 8192, 8192, &pnum, &st, &m), 0);
    cr_assert(st & BD_STATUS_DATA);
    cr_assert_eq(m, 4096);
    cr_assert_eq(pnum, 4096);
    cr_assert_eq(bd_block_status(n, 4096, 4096, &pnum, &st, &m), 0);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0);
    bd_node_close(n);
}

Test(parallels, v2_catalog_holds_cluster_offsets)
{
    uint8_t h[4096] = { 0 };
    struct bd_node *n;
    uint64_t pnum, m;
    unsigned st;

    header(h, true, 3, 24);
    put_le32(h + 48, 8);
    put_le32(h + 64, 1);
    put_le32(h + 68, 2);
    write_img(tmp("v2.hds"), h, sizeof(h), 2);
    n = open_img(tmp("v2.hds"));
    expect_fill(n, 0, 4096, 1);
    expect_fill(n, 4096, 4096, 2);
    expect_fill(n, 8192, 4096, 0);
    /* two clusters contiguous in the file are one run */
    cr_assert_eq(bd_block_status(n, 0, 12288, &pnum, &st, &m), 0);
    cr_assert_eq(pnum, 8192);
    cr_assert_eq(m, 4096);
    bd_node_close(n);
}

Test(parallels, v1_ignores_the_high_half_of_the_sector_count)
{
    uint8_t h[512] = { 0 };
    struct bd_node *n;

    header(h, false, 1, 0x100000008ull);
    write_img(tmp("hi.hds"), h, sizeof(h), 0);
    n = open_img(tmp("hi.hds"));
    cr_assert_eq(bd_size(n), 8 * 512);
    bd_node_close(n);
}

Test(parallels, beyond_the_catalog_and_the_file_reads_zeroes)
{
    /* a catalog of 1000 entries in a 4.5 KiB file: the entries past the
     * file are zero; cluster 1 points past the end; the disk is larger
     * than the catalog covers */
    uint8_t h[512] = { 0 };
    struct bd_node *n;

    header(h, true, 1000, 1u << 20);
    put_le32(h + 64, 1);
    put_le32(h + 68, 7);
    write_img(tmp("past.hds"), h, sizeof(h), 1);
    n = open_img(tmp("past.hds"));
    cr_assert_eq(bd_size(n), (1u << 20) * 512ull);
    /* the file holds 4096 + 512 bytes: cluster 1 has 512 of them */
    expect_fill(n, 0, 512, 1);
    expect_fill(n, 512, 3584, 0);       /* past the file's end */
    expect_fill(n, 4096, 8192, 0);
    expect_fill(n, (1ull << 29) - 4096, 4096, 0);
    bd_node_close(n);
}

Test(parallels, past_the_catalog_block_status_answers_at_once)
{
    /* a 512 TiB disk of 4 KiB clusters and one catalog entry: one call
     * covers everything after cluster 0 */
    uint8_t h[512] = { 0 };
    struct bd_node *n;
    uint64_t pnum, m, size = 1ull << 49;
    unsigned st;

    header(h, true, 1, size / 512);
    put_le32(h + 64, 1);
    write_img(tmp("huge.hds"), h, sizeof(h), 1);
    n = open_img(tmp("huge.hds"));
    cr_assert_eq(bd_block_status(n, 4096, size - 4096, &pnum, &st, &m), 0);
    cr_assert_eq(pnum, size - 4096);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0);
    bd_node_close(n);
}

Test(parallels, hostile_headers_are_refused_with_a_reason)
{
    static const struct {
        uint32_t off, val;
        const char *says;
    } cases[] = {
        { 28, 0, "zero sectors per cluster" },
        { 28, 0x7fffffff, "too big" },
        { 32, 0x80000000u, "too large" },
        { 16, 3, "version 3" },
    };
    struct bd_node *n = NULL;
    struct bd_err err;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t h[512] = { 0 };

        header(h, true, 1, 8);
        put_le32(h + cases[i].off, cases[i].val);
        write_img(tmp("bad.hds"), h, sizeof(h), 0);
        cr_assert_lt(try_open(tmp("bad.hds"), &n, &err), 0, "%s", cases[i].says);
        cr_assert(strstr(err.msg, cases[i].says), "%s", err.msg);
    }
}

Test(parallels, huge_v2_disk_size_is_refused_not_wrapped)
{
    uint8_t h[512] = { 0 };
    struct bd_node *n = NULL;
    struct bd_err err;

    header(h, true, 1, UINT64_MAX / 256);
    write_img(tmp("big.hds"), h, sizeof(h), 0);
    cr_assert_eq(try_open(tmp("big.hds"), &n, &err), -EFBIG, "%s", err.msg);
}

Test(parallels, md5_matches_rfc_1321)
{
    static const struct { const char *in, *hex; } v[] = {
        { "", "d41d8cd98f00b204e9800998ecf8427e" },
        { "abc", "900150983cd24fb0d6963f7d28e17f72" },
        { "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
          "57edf4a22be3c955ac49da2e2107b67a" },
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t out[16];
        char hex[33];

        prl_md5((const uint8_t *)v[i].in, strlen(v[i].in), out);
        for (int j = 0; j < 16; j++)
            snprintf(hex + 2 * j, 3, "%02x", out[j]);
        cr_assert_str_eq(hex, v[i].hex);
    }
}

Test(parallels, format_extension_is_parsed_and_unknown_features_skipped)
{
    /* extension in cluster 1 (sector 8): an unknown feature, a dirty
     * bitmap, the end mark; then a second image with a bad magic */
    uint8_t img[8192] = { 0 }, *e = img + 4096;
    struct bd_node *n;
    struct prl_image *pi;

    header(img, true, 1, 8);
    put_le32(img + 48, 8);
    put_le64(img + 56, 8);
    put_le64(e, 0xab234cef23dcea87ull);
    put_le64(e + 24, 0x1234);               /* unknown, 12 bytes of data */
    put_le32(e + 40, 12);
    put_le64(e + 64, 0x20385fae252cb34aull);
    put_le32(e + 80, 40);
    put_le64(e + 88, 8);                    /* bitmap: size in sectors */
    put_le32(e + 112, 4);                   /* granularity: 4 sectors */
    put_le32(e + 116, 1);
    prl_md5(e + 24, 4096 - 24, e + 8);
    write_img(tmp("ext.hds"), img, sizeof(img), 0);
    n = open_img(tmp("ext.hds"));
    pi = n->state;      /* struct prl_state starts with its image */
    cr_assert(pi->ext.valid, "%s", pi->ext.problem);
    cr_assert(pi->ext.checksum_ok);
    cr_assert_eq(pi->ext.bitmaps, 1);
    cr_assert_eq(pi->ext.unknown, 1);
    cr_assert_eq(pi->ext.bitmap_granularity, 2048);
    expect_fill(n, 0, 4096, 0);
    bd_node_close(n);

    e[0] ^= 1;
    write_img(tmp("ext2.hds"), img, sizeof(img), 0);
    n = open_img(tmp("ext2.hds"));
    pi = n->state;
    cr_assert_not(pi->ext.valid);
    cr_assert(strstr(pi->ext.problem, "magic"), "%s", pi->ext.problem);
    bd_node_close(n);
}

Test(parallels, a_probed_descriptor_joins_its_extents_with_gaps_as_zeroes)
{
    /* sectors 0-8: a v1 image of one 4 KiB cluster of 1s; 8-16: a gap;
     * 16-24: a plain file of 2s cut short at 1 KiB */
    static const char xml[] =
        "<?xml version='1.0'?>\n<!-- a comment -->\n"
        "<Parallels_disk_image Version=\"1.0\"><Disk_Parameters>"
        "<Disk_size>32</Disk_size><Padding>0</Padding></Disk_Parameters>"
        "<StorageData>"
        "<Storage><Start>0</Start><End>8</End><Image><Type>Compressed</Type>"
        "<File>a.hds</File></Image></Storage>"
        "<Storage><Start> 16 </Start><End>24</End><Image><Type>Plain</Type>"
        "<File>b.hds</File></Image></Storage>"
        "</StorageData></Parallels_disk_image>\n";
    uint8_t h[512] = { 0 }, plain[1024];
    struct bd_flags flags = { .read_only = true };
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    FILE *f;

    header(h, false, 1, 8);
    put_le32(h + 64, 1);
    write_img(tmp("a.hds"), h, sizeof(h), 1);
    memset(plain, 2, sizeof(plain));
    write_img(tmp("b.hds"), plain, sizeof(plain), 0);
    f = fopen(tmp("DiskDescriptor.xml"), "w");
    cr_assert(f);
    fputs(xml, f);
    fclose(f);
    cr_assert_eq(bd_open_image(tmp("DiskDescriptor.xml"), NULL, NULL, &flags,
                               &n, &err), 0, "%s", err.msg);
    cr_assert_str_eq(n->drv->name, "parallels");
    cr_assert_eq(bd_size(n), 32 * 512);
    expect_fill(n, 0, 4096, 1);
    expect_fill(n, 4096, 4096, 0);
    expect_fill(n, 8192, 1024, 2);
    expect_fill(n, 9216, 32 * 512 - 9216, 0);
    bd_node_close(n);
}

Test(parallels, descriptor_without_storages_or_with_bad_numbers_is_refused)
{
    static const char *const bad[] = {
        "<Parallels_disk_image><Disk_Parameters><Disk_size>8</Disk_size>"
        "</Disk_Parameters><StorageData/></Parallels_disk_image>",
        "<Parallels_disk_image><Disk_Parameters><Disk_size>-8</Disk_size>"
        "</Disk_Parameters><StorageData/></Parallels_disk_image>",
        "<Parallels_disk_image><Disk_Parameters><Disk_size>99999999999999999999"
        "</Disk_size></Disk_Parameters><StorageData/></Parallels_disk_image>",
        "<Parallels_disk_image><Disk_Parameters><Disk_size>8</Disk_size>"
        "<Padding>1</Padding></Disk_Parameters><StorageData/>"
        "</Parallels_disk_image>",
        "<Parallels_disk_image><Disk_Parameters>",
    };
    struct bd_node *n = NULL;
    struct bd_err err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(tmp("d.xml"), "w");

        cr_assert(f);
        fputs(bad[i], f);
        fclose(f);
        cr_assert_lt(try_open(tmp("d.xml"), &n, &err), 0, "case %zu", i);
        cr_assert(err.msg[0], "case %zu has a reason", i);
    }
}
