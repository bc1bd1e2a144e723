/*
 * Unit tests of the vdi driver: block sizes other than qemu's 1 MiB, extra
 * block data, zero and free blocks, creation (static and dynamic), write
 * allocation (map and header count) and recovery from a block leaked by a
 * crash, through bd_create_image(), bd_open_image() and bd_pread().
 */
#include "core/graph.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TMPDIR_PREFIX "test-vdi"
#include "tmpdir.h"

extern const struct bd_driver bd_drv_vdi;

static struct bd_node *open_img(const char *path, bool rw)
{
    return open_image_ok(path, "vdi", rw);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/*
 * A VDI 1.1 image by hand: header at 0, map at 512, data at 1024; slot s
 * holds `extra` bytes of 0xee and then block_size bytes of (s + 1).
 */
static void make_vdi(const char *path, uint32_t bs, uint32_t extra,
                     const uint32_t *map, uint32_t blocks, uint32_t slots,
                     uint32_t allocated)
{
    uint8_t h[1024] = { 0 };
    FILE *f = fopen(path, "wb");
    uint8_t *slot = malloc((size_t)bs + extra);

    cr_assert(f && slot && blocks <= 128);
    memcpy(h, "<<< test >>>\n", 13);
    put_le32(h + 0x40, 0xbeda107f);
    put_le32(h + 0x44, 0x00010001);
    put_le32(h + 0x48, 0x190);
    put_le32(h + 0x4c, 1);
    put_le32(h + 0x154, 512);
    put_le32(h + 0x158, 1024);
    put_le32(h + 0x168, 512);
    put_le32(h + 0x170, (uint32_t)((uint64_t)blocks * bs));
    put_le32(h + 0x178, bs);
    put_le32(h + 0x17c, extra);
    put_le32(h + 0x180, blocks);
    put_le32(h + 0x184, allocated);
    for (uint32_t i = 0; i < blocks; i++)
        put_le32(h + 512 + 4 * i, map[i]);
    cr_assert_eq(fwrite(h, 1, sizeof(h), f), sizeof(h));
    for (uint32_t s = 0; s < slots; s++) {
        memset(slot, 0xee, extra);
        memset(slot + extra, (int)(s + 1), bs);
        cr_assert_eq(fwrite(slot, 1, (size_t)bs + extra, f), (size_t)bs + extra);
    }
    fclose(f);
    free(slot);
}

TestSuite(vdi, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(vdi, any_block_size_with_extra_data_and_zero_blocks)
{
    /* 64 KiB blocks, 512 bytes of extra data before each; block 1 is a
     * zero block, block 2 free, blocks 0 and 3 stored out of order */
    const uint32_t map[4] = { 1, 0xfffffffe, 0xffffffff, 0 };
    struct bd_node *n;
    uint64_t pnum, m;
    unsigned st;

    make_vdi(tmp("a.vdi"), 65536, 512, map, 4, 2, 2);
    n = open_img(tmp("a.vdi"), false);
    cr_assert_eq(bd_size(n), 4 * 65536);
    expect_fill(n, 0, 65536, 2);
    expect_fill(n, 65536, 2 * 65536, 0);
    expect_fill(n, 3 * 65536, 65536, 1);

    cr_assert_eq(bd_block_status(n, 65536, 65536, &pnum, &st, &m), 0);
    cr_assert_eq(st, BD_STATUS_ZERO | BD_STATUS_ALLOCATED, "zero block");
    cr_assert_eq(bd_block_status(n, 2 * 65536, 65536, &pnum, &st, &m), 0);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0, "free block is unallocated");
    cr_assert_eq(bd_block_status(n, 3 * 65536, 65536, &pnum, &st, &m), 0);
    cr_assert(st & BD_STATUS_DATA);
    cr_assert_eq(m, 1024 + 512, "data starts after the extra bytes");
    bd_node_close(n);
}

Test(vdi, write_to_a_free_block_appends_it_and_counts_it)
{
    const uint32_t map[4] = { 0, 0xffffffff, 0xfffffffe, 0xffffffff };
    struct bd_node *n;
    uint8_t buf[4096], h[1024];
    FILE *f;

    make_vdi(tmp("a.vdi"), 65536, 0, map, 4, 1, 1);
    n = open_img(tmp("a.vdi"), true);
    memset(buf, 0x5a, sizeof(buf));
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 2 * 65536 + 8192, 0), 0);
    expect_fill(n, 2 * 65536, 8192, 0);
    expect_fill(n, 2 * 65536 + 8192, 4096, 0x5a);
    expect_fill(n, 2 * 65536 + 12288, 65536 - 12288, 0);
    expect_fill(n, 65536, 65536, 0);
    bd_node_close(n);

    f = fopen(tmp("a.vdi"), "rb");
    cr_assert(f && fread(h, 1, sizeof(h), f) == sizeof(h));
    fclose(f);
    cr_assert_eq(le32(h + 512 + 8), 1, "the zero block got the next slot");
    cr_assert_eq(le32(h + 0x184), 2, "the header counts it");
    cr_assert_eq(le32(h + 512 + 4), 0xffffffff);
}

Test(vdi, a_block_leaked_by_a_crash_is_not_handed_out_twice)
{
    /* the map uses slot 2 but the header counts only one block (a crash
     * between the map update and the header update) */
    const uint32_t map[4] = { 0, 0xffffffff, 2, 0xffffffff };
    struct bd_node *n;
    uint8_t buf[512];

    make_vdi(tmp("a.vdi"), 65536, 0, map, 4, 3, 1);
    n = open_img(tmp("a.vdi"), true);
    memset(buf, 0x77, sizeof(buf));
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 65536, 0), 0);
    expect_fill(n, 2 * 65536, 65536, 3);
    expect_fill(n, 65536, 512, 0x77);
    expect_fill(n, 65536 + 512, 65536 - 512, 0);
    bd_node_close(n);
}

Test(vdi, static_create_maps_every_block_in_order)
{
    struct bd_err err = { 0 };
    struct bd_node *n;
    uint8_t h[1024];
    FILE *f;

    cr_assert_eq(bd_create_image(tmp("s.vdi"), "vdi", 5 << 20, "static=on", &err),
                 0, "%s", err.msg);
    f = fopen(tmp("s.vdi"), "rb");
    cr_assert(f && fread(h, 1, sizeof(h), f) == sizeof(h));
    fseek(f, 0, SEEK_END);
    cr_assert_eq(ftell(f), 1024 + (5 << 20));
    fclose(f);
    cr_assert_eq(le32(h + 0x4c), 2);
    cr_assert_eq(le32(h + 0x184), 5);
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(le32(h + 512 + 4 * i), i);
    n = open_img(tmp("s.vdi"), false);
    cr_assert_eq(bd_size(n), 5 << 20);
    expect_fill(n, 0, 5 << 20, 0);
    bd_node_close(n);
}

Test(vdi, dynamic_create_rounds_to_sectors_and_allocates_nothing)
{
    struct bd_err err = { 0 };
    struct bd_node *n;
    uint64_t pnum, m;
    unsigned st;

    cr_assert_eq(bd_create_image(tmp("d.vdi"), "vdi", 3000000, NULL, &err), 0,
                 "%s", err.msg);
    n = open_img(tmp("d.vdi"), false);
    cr_assert_eq(bd_size(n), 3000320);
    cr_assert_eq(bd_block_status(n, 0, 3000320, &pnum, &st, &m), 0);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0);
    cr_assert_eq(pnum, 3000320);
    bd_node_close(n);
}

Test(vdi, probe_wants_the_signature_at_0x40)
{
    uint8_t head[512] = { 0 };

    put_le32(head + 0x40, 0xbeda107f);
    cr_assert_eq(bd_drv_vdi.probe(head, sizeof(head)), 100);
    put_le32(head + 0x40, 0xbeda1070);
    cr_assert_eq(bd_drv_vdi.probe(head, sizeof(head)), 0);
}

Test(vdi, zero_writes_allocate_nothing_in_free_blocks)
{
    const uint32_t map[4] = { 0, 0xffffffff, 0xfffffffe, 0xffffffff };
    struct bd_node *n;
    FILE *f;

    make_vdi(tmp("a.vdi"), 65536, 0, map, 4, 1, 1);
    n = open_img(tmp("a.vdi"), true);
    cr_assert_eq(bd_pwrite_zeroes(n, 3 * 65536, 65536, 0), 0);
    cr_assert_eq(bd_pwrite_zeroes(n, 512, 1024, 0), 0);
    expect_fill(n, 0, 1024, 1);
    expect_fill(n, 1024, 512, 0);
    expect_fill(n, 1536, 65536 - 1536, 1);
    expect_fill(n, 65536, 3 * 65536, 0);
    bd_node_close(n);
    f = fopen(tmp("a.vdi"), "rb");
    fseek(f, 0, SEEK_END);
    cr_assert_eq(ftell(f), 1024 + 65536, "no block was appended");
    fclose(f);
}
