/*
 * Unit tests of the bochs driver: images built here by hand (header
 * versions 1 and 2, extents with partly written bitmaps), read through
 * bd_open_image(), bd_pread() and bd_block_status(), and the errors for
 * other subtypes and damaged headers.
 */
#include "core/graph.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TMPDIR_PREFIX "test-bochs"
#include "tmpdir.h"

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

struct img {
    uint32_t version;
    const char *subtype;
    uint32_t catalog, bitmap, extent;
    uint64_t disk;
};

/*
 * A growing redolog: header, catalog, then one slot per allocated extent
 * (bitmap padded to 512, then the extent). Slot s, sector k holds the byte
 * 0x10 * (s + 1) + k, written or not; bits says which sectors are written.
 */
static void make_bochs(const char *path, const struct img *im,
                       const uint32_t *cat, uint32_t slots, uint8_t bits)
{
    uint8_t h[512] = { 0 };
    FILE *f = fopen(path, "wb");
    uint8_t *c = calloc(im->catalog, 4), sec[512], bm[512] = { 0 };

    cr_assert(f && c);
    strcpy((char *)h, "Bochs Virtual HD Image");
    strcpy((char *)h + 32, "Redolog");
    strcpy((char *)h + 48, im->subtype);
    put_le32(h + 64, im->version);
    put_le32(h + 68, 512);
    put_le32(h + 72, im->catalog);
    put_le32(h + 76, im->bitmap);
    put_le32(h + 80, im->extent);
    if (im->version == 0x00010000) {
        put_le64(h + 84, im->disk);
    } else {
        put_le32(h + 84, 0x12345678);
        put_le64(h + 88, im->disk);
    }
    for (uint32_t i = 0; i < im->catalog; i++)
        put_le32(c + 4 * i, cat[i]);
    cr_assert_eq(fwrite(h, 1, 512, f), 512);
    cr_assert_eq(fwrite(c, 4, im->catalog, f), im->catalog);
    bm[0] = bits;
    for (uint32_t s = 0; s < slots; s++) {
        cr_assert_eq(fwrite(bm, 1, 512, f), 512);
        for (uint32_t k = 0; k < im->extent / 512; k++) {
            memset(sec, (int)(0x10 * (s + 1) + k), sizeof(sec));
            cr_assert_eq(fwrite(sec, 1, 512, f), 512);
        }
    }
    free(c);
    fclose(f);
}

static int open_img(const char *path, struct bd_node **n, struct bd_err *err)
{
    struct bd_flags flags = { .read_only = true };

    memset(err, 0, sizeof(*err));
    *n = NULL;
    return bd_open_image(path, "bochs", NULL, &flags, n, err);
}

static void expect_sector(struct bd_node *n, uint64_t sector, int byte)
{
    uint8_t buf[512];

    cr_assert_eq(bd_pread(n, buf, 512, sector * 512), 0);
    for (int i = 0; i < 512; i++)
        cr_assert_eq(buf[i], byte, "sector %llu byte %d: %d, expected %d",
                     (unsigned long long)sector, i, buf[i], byte);
}

TestSuite(bochs, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(bochs, version_1_and_2_read_written_sectors_and_zero_elsewhere)
{
    uint32_t cat[4] = { 1, 0xffffffff, 0, 0xffffffff };

    for (int v = 1; v <= 2; v++) {
        struct img im = { v << 16, "Growing", 4, 1, 4096, 16384 };
        struct bd_node *n;
        struct bd_err err;

        /* sectors 0, 2 and 7 of each extent written */
        make_bochs(tmp("a.bochs"), &im, cat, 2, 0x85);
        cr_assert_eq(open_img(tmp("a.bochs"), &n, &err), 0, "%s", err.msg);
        cr_assert_eq(bd_size(n), 16384);
        expect_sector(n, 0, 0x20);
        expect_sector(n, 1, 0);
        expect_sector(n, 2, 0x22);
        expect_sector(n, 7, 0x27);
        expect_sector(n, 8, 0);
        expect_sector(n, 16, 0x10);
        expect_sector(n, 18, 0x12);
        expect_sector(n, 31, 0);
        bd_node_close(n);
    }
}

Test(bochs, block_status_maps_written_sectors_and_reports_holes)
{
    uint32_t cat[4] = { 0, 0xffffffff, 0xffffffff, 1 };
    struct img im = { 0x00020000, "Growing", 4, 1, 4096, 16384 };
    uint64_t pnum, map = 0;
    struct bd_node *n;
    struct bd_err err;
    unsigned st;

    make_bochs(tmp("b.bochs"), &im, cat, 2, 0x03);
    cr_assert_eq(open_img(tmp("b.bochs"), &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_block_status(n, 0, 16384, &pnum, &st, &map), 0);
    cr_assert_eq(pnum, 1024);
    cr_assert(st & BD_STATUS_DATA && st & BD_STATUS_OFFSET);
    /* header 512, catalog 16, slot 0's bitmap sector */
    cr_assert_eq(map, 512 + 16 + 512);
    cr_assert_eq(bd_block_status(n, 1024, 16384 - 1024, &pnum, &st, &map), 0);
    cr_assert_eq(pnum, 3072 + 8192);
    cr_assert_eq(st & BD_STATUS_DATA, 0);
    cr_assert_eq(bd_block_status(n, 12288, 4096, &pnum, &st, &map), 0);
    cr_assert_eq(pnum, 1024);
    cr_assert_eq(map, 512 + 16 + 512 + 4608);
    bd_node_close(n);
}

Test(bochs, undoable_and_volatile_redologs_are_refused_by_name)
{
    const char *subs[] = { "Undoable", "Volatile" };
    uint32_t cat[1] = { 0xffffffff };

    for (int i = 0; i < 2; i++) {
        struct img im = { 0x00020000, subs[i], 1, 1, 4096, 4096 };
        struct bd_node *n;
        struct bd_err err;

        make_bochs(tmp("u.bochs"), &im, cat, 0, 0);
        cr_assert_eq(open_img(tmp("u.bochs"), &n, &err), -ENOTSUP);
        cr_assert(strstr(err.msg, subs[i]) && strstr(err.msg, "bximage -func=commit"),
                  "%s", err.msg);
    }
}

Test(bochs, damaged_headers_are_refused_with_a_reason)
{
    static const struct {
        struct img im;
        uint32_t slots;
        const char *why;
    } bad[] = {
        { { 0x00020000, "Growing", 1000, 1, 4096, 4096 }, 0, "larger than the file" },
        { { 0x00020000, "Growing", 1, 1, 4096, 1ull << 40 }, 0, "needs" },
        { { 0x00020000, "Growing", 1, 1, 8192, 8192 }, 0, "bitmap size" },
        { { 0x00020000, "Growing", 1, 600, 4096, 4096 }, 0, "bitmap size" },
        { { 0x00020000, "Growing", 1, 0, 4096, 4096 }, 0, "bitmap size" },
        { { 0x00020000, "Growing", 1, 1, 1000, 1000 }, 0, "extent size" },
        { { 0x00020000, "Growing", 1, 1, 1u << 30, 4096 }, 0, "extent size" },
        { { 0x00030000, "Growing", 1, 1, 4096, 4096 }, 0, "version" },
        { { 0x00020000, "Growing", 1, 1, 4096, 4096 }, 0, "beyond the end" },
    };
    uint32_t cat[1] = { 0 };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct bd_node *n;
        struct bd_err err;
        uint32_t *c = calloc(bad[i].im.catalog, 4);

        cr_assert(c);
        memset(c, 0xff, (size_t)bad[i].im.catalog * 4);
        if (i == 8)
            memcpy(c, cat, 4);
        make_bochs(tmp("h.bochs"), &bad[i].im, c, bad[i].slots, 0);
        if (i == 0)
            cr_assert_eq(truncate(tmp("h.bochs"), 1024), 0);
        free(c);
        cr_assert_lt(open_img(tmp("h.bochs"), &n, &err), 0, "case %zu opened", i);
        cr_assert(strstr(err.msg, bad[i].why), "case %zu: %s", i, err.msg);
    }
}
