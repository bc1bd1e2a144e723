/*
 * Unit tests of the qed driver: create and its option ranges, reads of
 * unallocated, zero and data clusters, allocation on write, the need-check
 * flag (set while writing, cleared at close, repaired at a read-write
 * open), the check of leaks and invalid offsets, and hostile headers,
 * through bd_create_image(), bd_open_image() and bd_pread().
 */
#include "core/graph.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMPDIR_PREFIX "test-qed"
#include "tmpdir.h"

static struct bd_node *open_img(const char *path, bool rw)
{
    return open_image_ok(path, "qed", rw);
}

static int open_fails(const char *path, struct bd_err *err)
{
    struct bd_flags flags = { .read_only = true };
    struct bd_node *n = NULL;
    int r = bd_open_image(path, "qed", NULL, &flags, &n, err);

    if (r == 0)
        bd_node_close(n);
    return r;
}

static void create(const char *path, uint64_t size, const char *opts)
{
    struct bd_err err = { 0 };

    cr_assert_eq(bd_create_image(path, "qed", size, opts, &err), 0, "create: %s",
                 err.msg);
}

static uint64_t file_u64(const char *path, long off)
{
    uint8_t b[8] = { 0 };
    FILE *f = fopen(path, "rb");
    uint64_t v = 0;

    cr_assert(f);
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    cr_assert_eq(fread(b, 1, 8, f), 8);
    fclose(f);
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void file_put_u64(const char *path, long off, uint64_t v)
{
    FILE *f = fopen(path, "r+b");
    uint8_t b[8];

    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    cr_assert(f);
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    cr_assert_eq(fwrite(b, 1, 8, f), 8);
    fclose(f);
}

static off_t file_size(const char *path)
{
    struct stat st;

    cr_assert_eq(stat(path, &st), 0);
    return st.st_size;
}

TestSuite(qed, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(qed, create_writes_header_and_empty_l1)
{
    const char *p = tmp("a.qed");

    create(p, 10 << 20, "cluster_size=4K,table_size=2");
    cr_assert_eq(file_u64(p, 0) & 0xffffffff, 0x00444551);
    cr_assert_eq(file_u64(p, 4) & 0xffffffff, 4096);
    cr_assert_eq(file_u64(p, 8) & 0xffffffff, 2);
    cr_assert_eq(file_u64(p, 40), 4096);
    cr_assert_eq(file_u64(p, 48), 10 << 20);
    cr_assert_eq(file_size(p), 4096 * 3);
}

Test(qed, create_refuses_sizes_outside_the_spec_ranges)
{
    static const char *const bad[] = {
        "cluster_size=2K", "cluster_size=128K", "cluster_size=12K",
        "table_size=0", "table_size=32", "table_size=3",
    };
    struct bd_err err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        cr_assert_eq(bd_create_image(tmp("bad.qed"), "qed", 1 << 20, bad[i], &err),
                     -EINVAL, "%s", bad[i]);
        cr_assert(strstr(err.msg, "power of 2"), "%s: %s", bad[i], err.msg);
    }
}

Test(qed, unallocated_reads_as_zero_and_writes_allocate)
{
    const char *p = tmp("w.qed");
    uint8_t buf[8192], back[8192];
    struct bd_node *n;

    create(p, 4 << 20, "cluster_size=4K,table_size=1");
    n = open_img(p, true);
    cr_assert_eq(bd_pread(n, back, sizeof(back), 1 << 20), 0);
    for (size_t i = 0; i < sizeof(back); i++)
        cr_assert_eq(back[i], 0);
    memset(buf, 0xab, sizeof(buf));
    cr_assert_eq(bd_pwrite(n, buf, 512, (1 << 20) + 1024, 0), 0);
    /* the flag is on disk while the image has unflushed table changes */
    cr_assert_eq(file_u64(p, 16) & 2, 2);
    cr_assert_eq(bd_pread(n, back, 4096, 1 << 20), 0);
    for (size_t i = 0; i < 4096; i++)
        cr_assert_eq(back[i], i >= 1024 && i < 1536 ? 0xab : 0, "byte %zu", i);
    bd_node_close(n);
    cr_assert_eq(file_u64(p, 16) & 2, 0, "need-check left set after close");

    n = open_img(p, false);
    cr_assert_eq(bd_pread(n, back, 512, (1 << 20) + 1024), 0);
    cr_assert_eq(memcmp(back, buf, 512), 0);
    bd_node_close(n);
}

Test(qed, need_check_at_read_write_open_cuts_leaked_clusters)
{
    const char *p = tmp("l.qed");
    uint8_t buf[4096];
    struct bd_node *n;
    struct bd_check res = { 0 };
    struct bd_err err = { 0 };
    off_t clean;

    create(p, 4 << 20, "cluster_size=4K,table_size=1");
    n = open_img(p, true);
    memset(buf, 7, sizeof(buf));
    cr_assert_eq(bd_pwrite(n, buf, 4096, 0, 0), 0);
    bd_node_close(n);
    clean = file_size(p);
    /* a crash after two clusters were appended and before they were used */
    cr_assert_eq(truncate(p, clean + 8192), 0);
    file_put_u64(p, 16, 2);

    n = open_img(p, false);
    cr_assert_eq(bd_check_image(n, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.leaks, 2);
    cr_assert_eq(res.corruptions, 0);
    bd_node_close(n);
    cr_assert_eq(file_size(p), clean + 8192, "a read-only open changed the file");

    n = open_img(p, true);
    bd_node_close(n);
    cr_assert_eq(file_size(p), clean);
    cr_assert_eq(file_u64(p, 16) & 2, 0);
}

Test(qed, check_finds_and_repairs_an_offset_beyond_the_end)
{
    const char *p = tmp("c.qed");
    uint8_t buf[4096] = { 1 };
    struct bd_check res = { 0 };
    struct bd_err err = { 0 };
    struct bd_node *n;
    uint64_t l2;

    create(p, 4 << 20, "cluster_size=4K,table_size=1");
    n = open_img(p, true);
    cr_assert_eq(bd_pwrite(n, buf, 4096, 0, 0), 0);
    bd_node_close(n);
    l2 = file_u64(p, 4096);
    cr_assert_neq(l2, 0);
    file_put_u64(p, (long)l2 + 8, 1ull << 40);

    n = open_img(p, false);
    cr_assert_eq(bd_check_image(n, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.corruptions, 1);
    cr_assert_eq(bd_pread(n, buf, 4096, 4096), -EIO);
    bd_node_close(n);

    memset(&res, 0, sizeof(res));
    n = open_img(p, true);
    cr_assert_eq(bd_check_image(n, BD_CHECK_FIX_ERRORS | BD_CHECK_FIX_LEAKS, &res,
                                &err), 0, "%s", err.msg);
    cr_assert_eq(res.corruptions_fixed, 1);
    cr_assert_eq(bd_pread(n, buf, 4096, 4096), 0);
    bd_node_close(n);
    cr_assert_eq(file_u64(p, (long)l2 + 8), 0);
}

Test(qed, hostile_headers_are_refused_with_a_reason)
{
    static const struct { long off; uint64_t val; const char *says; } cases[] = {
        { 4, 4096 * 3 | 0ull << 32, "cluster size" },
        { 8, 5 | (1ull << 32), "table size" },
        { 16, 0x100, "unknown features" },
        { 40, 12345, "L1 table offset" },
        { 40, 1ull << 50, "L1 table offset" },
        { 48, 1ull << 62, "image size" },
    };
    const char *p = tmp("h.qed");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bd_err err = { 0 };
        uint64_t old;

        unlink(p);
        create(p, 4 << 20, "cluster_size=4K,table_size=1");
        old = file_u64(p, cases[i].off);
        if (cases[i].off == 4 || cases[i].off == 8)
            file_put_u64(p, cases[i].off, (old & ~0xffffffffull) | (uint32_t)cases[i].val);
        else
            file_put_u64(p, cases[i].off, cases[i].val);
        cr_assert_lt(open_fails(p, &err), 0, "case %zu opened", i);
        cr_assert(strstr(err.msg, cases[i].says), "case %zu: %s", i, err.msg);
    }
}

Test(qed, a_write_across_two_l2_tables_allocates_in_runs)
{
    const char *p = tmp("r.qed");
    static uint8_t buf[5 * 4096], back[5 * 4096];
    struct bd_check res = { 0 };
    struct bd_err err = { 0 };
    uint64_t pnum = 0, map = 0;
    unsigned status = 0;
    struct bd_node *n;

    /* table_size=1, 4K clusters: one L2 table covers 2 MiB */
    create(p, 8 << 20, "cluster_size=4K,table_size=1");
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + i / 4096);
    n = open_img(p, true);
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), (2 << 20) - 2 * 4096, 0), 0);
    cr_assert_eq(bd_pread(n, back, sizeof(back), (2 << 20) - 2 * 4096), 0);
    cr_assert_eq(memcmp(back, buf, sizeof(buf)), 0);
    /* the three clusters after the boundary are one extent */
    cr_assert_eq(bd_block_status(n, 2 << 20, 3 * 4096, &pnum, &status, &map), 0);
    cr_assert_eq(pnum, 3 * 4096);
    cr_assert(status & BD_STATUS_OFFSET);
    cr_assert_eq(bd_block_status(n, 4 << 20, 4 << 20, &pnum, &status, &map), 0);
    cr_assert_eq(pnum, 4 << 20, "unallocated tables are one run");
    cr_assert_eq(status, 0);
    bd_node_close(n);

    n = open_img(p, false);
    cr_assert_eq(bd_check_image(n, 0, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.leaks + res.corruptions, 0);
    cr_assert_eq(bd_pread(n, back, sizeof(back), (2 << 20) - 2 * 4096), 0);
    cr_assert_eq(memcmp(back, buf, sizeof(buf)), 0);
    bd_node_close(n);
}
