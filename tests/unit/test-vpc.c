/*
 * Unit tests of the vpc driver: creation (CHS rounding, force_size, layout),
 * the size rule per creator, probing, allocation on write (BAT, bitmap,
 * footer copies), block status, differencing bitmaps and the fuzzed afl5
 * image, through bd_create_image(), bd_open_image() and bd_pread().
 */
#include "core/graph.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMPDIR_PREFIX "test-vpc"
#include "tmpdir.h"

extern const struct bd_driver bd_drv_vpc;

/* tests/data/vpc from the source tree, wherever the test runs from */
static const char *data_path(const char *name)
{
    static char path[4096];
    const char *dirs[] = { NULL, "tests/data/vpc", "../tests/data/vpc" };
    char src[4096], d0[4096];
    struct stat st;

    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(d0, sizeof(d0), "%s/../data/vpc", dirname(src));
    dirs[0] = d0;
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
        if (stat(path, &st) == 0)
            break;
    }
    return path;
}

static struct bd_node *open_img(const char *path, bool rw, const char *extra)
{
    struct bd_flags flags = { .read_only = !rw };
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    int r = bd_open_image(path, "vpc", extra, &flags, &n, &err);

    cr_assert_eq(r, 0, "open %s: %s", path, err.msg);
    return n;
}

static void create(const char *path, uint64_t size, const char *opts)
{
    struct bd_err err = { 0 };

    cr_assert_eq(bd_create_image(path, "vpc", size, opts, &err), 0, "create: %s",
                 err.msg);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b;

    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    b = malloc(*len);
    cr_assert(b && fread(b, 1, *len, f) == *len);
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");

    cr_assert(f && fwrite(b, 1, len, f) == len);
    fclose(f);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fix_checksum(uint8_t *p, size_t len, size_t at)
{
    uint32_t s = 0;

    memset(p + at, 0, 4);
    for (size_t i = 0; i < len; i++)
        s += p[i];
    put_be32(p + at, ~s);
}

TestSuite(vpc, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(vpc, create_rounds_size_up_to_chs_geometry)
{
    struct bd_node *n;

    create(tmp("a.vhd"), 8 << 20, NULL);
    n = open_img(tmp("a.vhd"), false, NULL);
    /* what qemu-img create -f vpc 8M gives: 241/4/17 sectors */
    cr_assert_eq(bd_size(n), 8390656);
    bd_node_close(n);
}

Test(vpc, force_size_keeps_the_exact_size)
{
    struct bd_node *n;

    create(tmp("a.vhd"), 8 << 20, "force_size=on");
    n = open_img(tmp("a.vhd"), false, NULL);
    cr_assert_eq(bd_size(n), 8 << 20);
    bd_node_close(n);
    create(tmp("f.vhd"), 3 << 20, "subformat=fixed,force_size=on");
    n = open_img(tmp("f.vhd"), false, NULL);
    cr_assert_eq(bd_size(n), 3 << 20);
    bd_node_close(n);
}

Test(vpc, creator_decides_between_chs_and_current_size)
{
    uint8_t *b;
    size_t len;
    struct bd_node *n;

    create(tmp("a.vhd"), 8 << 20, NULL);
    b = slurp(tmp("a.vhd"), &len);
    /* current size 8 MiB exactly, CHS still 8390656 */
    for (int copy = 0; copy < 2; copy++) {
        uint8_t *f = copy ? b + len - 512 : b;

        memset(f + 48, 0, 8);
        put_be32(f + 52, 8 << 20);
        memcpy(f + 28, "win ", 4);
        fix_checksum(f, 512, 64);
    }
    spit(tmp("win.vhd"), b, len);
    n = open_img(tmp("win.vhd"), false, NULL);
    cr_assert_eq(bd_size(n), 8 << 20, "hyper-v disks use current size");
    bd_node_close(n);
    n = open_img(tmp("win.vhd"), false, "force_size_calc=chs");
    cr_assert_eq(bd_size(n), 8390656, "the option overrides the creator");
    bd_node_close(n);

    for (int copy = 0; copy < 2; copy++) {
        uint8_t *f = copy ? b + len - 512 : b;

        memcpy(f + 28, "vpc ", 4);
        fix_checksum(f, 512, 64);
    }
    spit(tmp("vpc.vhd"), b, len);
    n = open_img(tmp("vpc.vhd"), false, NULL);
    cr_assert_eq(bd_size(n), 8390656, "virtual pc disks use CHS");
    bd_node_close(n);
    n = open_img(tmp("vpc.vhd"), false, "force_size=on");
    cr_assert_eq(bd_size(n), 8 << 20, "force_size=on uses current size");
    bd_node_close(n);
    free(b);
}

Test(vpc, probe_recognizes_the_footer_copy)
{
    uint8_t head[512] = "conectix";

    cr_assert_eq(bd_drv_vpc.probe(head, sizeof(head)), 100);
    memcpy(head, "conectiy", 8);
    cr_assert_eq(bd_drv_vpc.probe(head, sizeof(head)), 0);
}

Test(vpc, unallocated_blocks_read_as_zero_and_are_holes)
{
    struct bd_node *n;
    uint8_t buf[4096];
    uint64_t pnum, map;
    unsigned st;

    create(tmp("a.vhd"), 8 << 20, NULL);
    n = open_img(tmp("a.vhd"), false, NULL);
    memset(buf, 0xaa, sizeof(buf));
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 3 << 20), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_assert_eq(buf[i], 0);
    cr_assert_eq(bd_block_status(n, 0, bd_size(n), &pnum, &st, &map), 0);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0);
    cr_assert_eq(pnum, (uint64_t)bd_size(n), "all blocks merge into one hole");
    bd_node_close(n);
}

Test(vpc, write_allocates_a_block_and_moves_the_footer)
{
    struct bd_node *n;
    uint8_t buf[1024], back[1024], *b;
    uint64_t pnum, map;
    unsigned st;
    size_t len0, len;

    create(tmp("a.vhd"), 8 << 20, NULL);
    free(slurp(tmp("a.vhd"), &len0));
    n = open_img(tmp("a.vhd"), true, NULL);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), (4 << 20) + 1536, 0), 0);
    cr_assert_eq(bd_pread(n, back, sizeof(back), (4 << 20) + 1536), 0);
    cr_assert_eq(memcmp(buf, back, sizeof(buf)), 0);
    cr_assert_eq(bd_block_status(n, 4 << 20, 2 << 20, &pnum, &st, &map), 0);
    cr_assert(st & BD_STATUS_DATA);
    cr_assert_eq(pnum, 2 << 20);
    bd_node_close(n);

    b = slurp(tmp("a.vhd"), &len);
    /* one 2 MiB block and its 512-byte bitmap where the footer was */
    cr_assert_eq(len, len0 + (2 << 20) + 512);
    cr_assert_eq(memcmp(b, b + len - 512, 512), 0, "footer copies differ");
    /* BAT entry 2 points at the old footer's sector; bitmap all ones */
    cr_assert_eq(be32(b + 1536 + 8), (len0 - 512) / 512);
    cr_assert_eq(b[len0 - 512], 0xff);
    cr_assert_eq(be32(b + 1536), 0xffffffffu);
    free(b);
}

Test(vpc, differencing_bitmap_mixes_child_and_parent_sectors)
{
    struct bd_node *n, *p;
    uint8_t *b, *pb, buf[4096];
    size_t len, plen;
    uint32_t dyn;

    /* parent: every sector filled with 0x11 */
    create(tmp("parent.vhd"), 4 << 20, NULL);
    p = open_img(tmp("parent.vhd"), true, NULL);
    memset(buf, 0x11, sizeof(buf));
    for (uint64_t off = 0; off < (uint64_t)bd_size(p); off += sizeof(buf)) {
        uint64_t l = (uint64_t)bd_size(p) - off;

        cr_assert_eq(bd_pwrite(p, buf, l < sizeof(buf) ? l : sizeof(buf), off, 0), 0);
    }
    bd_node_close(p);

    /* child: an empty dynamic disk turned differencing, named by header */
    create(tmp("child.vhd"), 4 << 20, NULL);
    b = slurp(tmp("child.vhd"), &len);
    pb = slurp(tmp("parent.vhd"), &plen);
    dyn = 512;
    for (int copy = 0; copy < 2; copy++) {
        uint8_t *f = copy ? b + len - 512 : b;

        put_be32(f + 60, 4);
        fix_checksum(f, 512, 64);
    }
    memcpy(b + dyn + 40, pb + plen - 512 + 68, 16);
    memset(b + dyn + 64, 0, 512);
    for (size_t i = 0; i < strlen("parent.vhd"); i++)
        b[dyn + 64 + 2 * i + 1] = (uint8_t)"parent.vhd"[i];
    fix_checksum(b + dyn, 1024, 36);
    spit(tmp("child.vhd"), b, len);
    free(b);
    free(pb);

    n = open_img(tmp("child.vhd"), true, NULL);
    cr_assert_not_null(n->backing);
    memset(buf, 0x22, 1024);
    cr_assert_eq(bd_pwrite(n, buf, 1024, 2048, 0), 0);
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 0), 0);
    for (size_t i = 0; i < sizeof(buf); i++) {
        uint8_t want = i >= 2048 && i < 3072 ? 0x22 : 0x11;

        cr_assert_eq(buf[i], want, "byte %zu is 0x%02x", i, buf[i]);
    }

    uint64_t pnum, map;
    unsigned st;

    cr_assert_eq(bd_block_status(n, 0, 8192, &pnum, &st, &map), 0);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0, "sectors 0-3 come from the parent");
    cr_assert_eq(pnum, 2048);
    cr_assert_eq(bd_block_status(n, 2048, 8192, &pnum, &st, &map), 0);
    cr_assert(st & BD_STATUS_ALLOCATED);
    cr_assert_eq(pnum, 1024);

    /* zeroes in a differencing disk hide the parent */
    cr_assert_eq(bd_pwrite_zeroes(n, 512, 512, 0), 0);
    cr_assert_eq(bd_pread(n, buf, 1536, 0), 0);
    for (size_t i = 0; i < 1536; i++)
        cr_assert_eq(buf[i], i >= 512 && i < 1024 ? 0 : 0x11, "byte %zu", i);
    bd_node_close(n);
}

Test(vpc, fuzzed_afl5_has_too_many_table_entries)
{
    struct bd_flags flags = { .read_only = true };
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    cr_assert_lt(bd_open_image(data_path("afl5.img"), "vpc", NULL, &flags, &n,
                               &err), 0);
    cr_assert(strstr(err.msg, "max table entries too large"), "%s", err.msg);
}

Test(vpc, unknown_subformat_is_refused)
{
    struct bd_err err = { 0 };

    cr_assert_lt(bd_create_image(tmp("x.vhd"), "vpc", 1 << 20, "subformat=sparse",
                                 &err), 0);
    cr_assert(strstr(err.msg, "subformat"), "%s", err.msg);
}

Test(vpc, zero_writes_allocate_nothing_in_unused_blocks)
{
    struct bd_node *n;
    uint8_t buf[4096];
    size_t len0, len;

    create(tmp("a.vhd"), 8 << 20, NULL);
    free(slurp(tmp("a.vhd"), &len0));
    n = open_img(tmp("a.vhd"), true, NULL);
    cr_assert_eq(bd_pwrite_zeroes(n, 4 << 20, 0, 0), 0);
    memset(buf, 0x33, sizeof(buf));
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 6 << 20, 0), 0);
    cr_assert_eq(bd_pwrite_zeroes(n, 1024, (6 << 20) + 1024, 0), 0);
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 6 << 20), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_assert_eq(buf[i], i >= 1024 && i < 2048 ? 0 : 0x33, "byte %zu", i);
    bd_node_close(n);
    free(slurp(tmp("a.vhd"), &len));
    cr_assert_eq(len, len0 + (2 << 20) + 512, "only the written block exists");
}
