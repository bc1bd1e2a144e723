/*
 * The preallocate filter: its arithmetic, the graph forms that put it
 * between a format and its file, and the file's length at each step
 * (stat of the real file: preallocated while writing, cut back at flush
 * and close, untouched when the filter cannot be the only writer).
 */
#define TMPDIR_PREFIX "test-preallocate"
#include "tmpdir.h"
#include "core/bd-internal.h"
#include "drivers/filter/preallocate/preallocate.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define K 1024ull
#define M (1024ull * 1024)

TestSuite(preallocate, .init = tmpdir_setup, .fini = tmpdir_teardown);

static uint64_t file_len(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (uint64_t)st.st_size;
}

static const char *raw_file(const char *name, uint64_t size)
{
    const char *p = tmp(name);
    int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    close(fd);
    return p;
}

static struct bd_node *open_ok(const char *src, const char *fmt,
                               const char *extra, const char *filter,
                               const struct bd_flags *flags)
{
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    cr_assert_eq(bd_open_image_filtered(src, fmt, extra, filter, flags, &n,
                                        &err), 0, "open %s: %s", src, err.msg);
    return n;
}

/* the filter node: right under the top format */
static struct bd_node *filter_of(struct bd_node *top)
{
    cr_assert_not_null(top->file);
    cr_assert_str_eq(top->file->drv->name, "preallocate");
    return top->file;
}

Test(preallocate, target_is_the_end_plus_the_size_rounded_to_the_alignment)
{
    cr_expect_eq(prealloc_target(0, 128 * M, M), 128 * M);
    cr_expect_eq(prealloc_target(1, 128 * M, M), 129 * M);
    cr_expect_eq(prealloc_target(M, 128 * M, M), 129 * M);
    cr_expect_eq(prealloc_target(68 * K, M, 64 * K), M + 128 * K);
    cr_expect_eq(prealloc_target(5 * M, 0, M), 5 * M, "size 0: nothing extra");
    cr_expect_eq(prealloc_target(5 * M + 1, 0, M), 6 * M);
    /* an alignment that is no power of two is still honoured */
    cr_expect_eq(prealloc_target(1, 1000, 1536), 1536);
}

Test(preallocate, target_never_passes_the_largest_file_nor_falls_below_the_end)
{
    uint64_t top = PREALLOC_FILE_MAX;
    cr_expect_eq(prealloc_target(top - 10, 128 * M, M), top / M * M > top - 10
                 ? top / M * M : top - 10);
    cr_expect_geq(prealloc_target(top - 10, 128 * M, M), top - 10);
    cr_expect_leq(prealloc_target(top - 10, UINT64_MAX, 512), top);
    cr_expect_eq(prealloc_target(top + 1, M, M), 0);
    cr_expect_eq(prealloc_target(UINT64_MAX, UINT64_MAX, M), 0);
}

Test(preallocate, alignment_must_be_a_multiple_of_sector_and_file_alignment)
{
    cr_expect(prealloc_align_ok(M, 1));
    cr_expect(prealloc_align_ok(1536, 512));
    cr_expect_not(prealloc_align_ok(0, 1));
    cr_expect_not(prealloc_align_ok(1000, 1));
    cr_expect_not(prealloc_align_ok(1536, 4096));
    cr_expect(prealloc_align_ok(8192, 4096));
}

Test(preallocate, file_is_preallocated_while_writing_and_cut_at_flush_and_close)
{
    const char *p = raw_file("a.raw", 64 * K);
    struct bd_flags f = { .growable = true };
    uint8_t buf[4096];
    memset(buf, 0xab, sizeof(buf));

    struct bd_node *n = open_ok(p, "raw", NULL,
                                "driver=preallocate,prealloc-size=1M,"
                                "prealloc-align=64K", &f);
    struct bd_node *fl = filter_of(n);
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 64 * K, 0), 0);
    cr_expect_eq(file_len(p), M + 128 * K, "68K + 1M rounded up to 64K");
    cr_expect_eq(bd_size(n), 68 * K, "the tail is hidden");
    cr_expect_eq(bd_size(fl), 68 * K);

    /* inside the tail: the file does not move, the data end does */
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 512 * K, 0), 0);
    cr_expect_eq(file_len(p), M + 128 * K);
    cr_expect_eq(bd_size(n), 516 * K);
    /* past the tail: a new one */
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 2 * M, 0), 0);
    cr_expect_eq(file_len(p), 3 * M + 64 * K);

    /* block status and reads stop at the data end */
    uint64_t pnum, map;
    unsigned st;
    cr_assert_eq(bd_block_status(fl, 2 * M, 64 * M, &pnum, &st, &map), 0);
    cr_expect_eq(pnum, 4096);
    cr_assert_eq(bd_block_status(fl, 2 * M + 4096, 4096, &pnum, &st, &map), 0);
    cr_expect_eq(pnum, 0, "nothing past the data end");

    cr_assert_eq(bd_flush(n), 0);
    cr_expect_eq(file_len(p), 2 * M + 4 * K, "flush cuts the tail");
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 3 * M, 0), 0);
    cr_expect_gt(file_len(p), 3 * M + 4 * K, "preallocated again");
    bd_node_close(n);
    cr_expect_eq(file_len(p), 3 * M + 4 * K, "close cuts the tail");

    n = open_image_ok(p, "raw", false);
    expect_fill(n, 3 * M, 4096, 0xab);
    expect_fill(n, 2 * M + 4096, 4096, 0);
    bd_node_close(n);
}

Test(preallocate, resize_and_discard_go_through_the_filter)
{
    const char *p = raw_file("r.raw", 0);
    struct bd_flags f = { .growable = true };
    struct bd_err err = { 0 };
    uint8_t buf[8192];
    memset(buf, 0x11, sizeof(buf));

    struct bd_node *n = open_ok(p, "raw", NULL, "driver=preallocate", &f);
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 0, 0), 0);
    cr_expect_eq(file_len(p), 129 * M, "the default 128M, aligned to 1M");
    /* a shrink drops the tail and resizes exactly */
    cr_assert_eq(bd_truncate(n, 4096, BD_PREALLOC_OFF, &err), 0, "%s", err.msg);
    cr_expect_eq(file_len(p), 4096);
    cr_expect_eq(bd_size(n), 4096);
    /* a grow is preallocated like a write past the end */
    cr_assert_eq(bd_truncate(n, 3 * M, BD_PREALLOC_OFF, &err), 0, "%s", err.msg);
    cr_expect_eq(bd_size(n), 3 * M);
    cr_expect_eq(file_len(p), 131 * M);
    expect_fill(n, 4096, 4096, 0);
    /* a grow with a mode of its own is passed through exactly */
    cr_assert_eq(bd_truncate(n, 4 * M, BD_PREALLOC_FULL, &err), 0, "%s", err.msg);
    cr_expect_eq(file_len(p), 4 * M);
    /* discard passes through and keeps the size */
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 0, 0), 0);
    cr_assert_eq(bd_discard(n, 4096, 0), 0);
    expect_fill(n, 0, 4096, 0);
    expect_fill(n, 4096, 4096, 0x11);
    cr_expect_eq(bd_size(n), 4 * M);
    bd_node_close(n);
    cr_expect_eq(file_len(p), 4 * M);
}

Test(preallocate, share_rw_makes_it_pass_through)
{
    const char *p = raw_file("s.raw", 0);
    struct bd_flags f = { .growable = true, .share_rw = true };
    uint8_t buf[4096] = { 1 };

    struct bd_node *n = open_ok(p, "raw", NULL, "driver=preallocate", &f);
    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 0, 0), 0);
    cr_expect_eq(file_len(p), 4096, "nobody else may be told about a tail");
    bd_node_close(n);
}

Test(preallocate, every_natural_form_builds_the_same_graph)
{
    const char *p = raw_file("f.raw", 0);
    struct bd_flags f = { .growable = true };
    char src[1024];
    const char *forms[][3] = {
        /* SOURCE, extra */
        { "", "file.driver=preallocate" },
        { "", "file.driver=preallocate,file.prealloc-size=1M" },
        { "driver=raw,file.driver=preallocate,file.file.driver=file,"
          "file.file.filename=%s", NULL },
        { "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"preallocate\","
          "\"prealloc-align\":\"1M\",\"file\":{\"driver\":\"file\","
          "\"filename\":\"%s\"}}}", NULL },
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        if (!*forms[i][0])
            snprintf(src, sizeof(src), "%s", p);
        else
            snprintf(src, sizeof(src), forms[i][0], p);
        struct bd_node *n = open_ok(src, "raw", forms[i][1], NULL, &f);
        struct bd_node *fl = filter_of(n);
        cr_expect_str_eq(fl->file->drv->name, "file", "form %zu", i);
        cr_expect_str_eq(fl->file->filename, p, "form %zu", i);
        bd_node_close(n);
    }
}

Test(preallocate, shorthand_moves_the_given_file_options_below_the_filter)
{
    const char *p = raw_file("g.raw", 0);
    struct bd_flags f = { .growable = true };
    char src[1024];

    snprintf(src, sizeof(src), "driver=raw,file.driver=file,file.filename=%s,"
             "file.locking=off", p);
    struct bd_node *n = open_ok(src, NULL, NULL,
                                "driver=preallocate,prealloc-size=2M", &f);
    struct bd_node *fl = filter_of(n);
    cr_expect_str_eq(fl->file->filename, p);
    cr_expect_eq(fl->file->flags.locking, BD_LOCKING_OFF);
    uint8_t b[512] = { 7 };
    cr_assert_eq(bd_pwrite(n, b, sizeof(b), 0, 0), 0);
    cr_expect_eq(file_len(p), 3 * M);
    bd_node_close(n);
    cr_expect_eq(file_len(p), 512);
}

Test(preallocate, a_filter_at_the_top_probes_its_file)
{
    const char *p = raw_file("t.raw", 8192);
    char src[1024];
    struct bd_flags f = { .read_only = true };

    snprintf(src, sizeof(src), "driver=preallocate,file.filename=%s", p);
    struct bd_node *n = open_ok(src, NULL, NULL, NULL, &f);
    cr_expect_str_eq(n->drv->name, "preallocate");
    cr_expect_str_eq(n->file->drv->name, "raw");
    cr_expect_eq(bd_size(n), 8192);
    bd_node_close(n);
}

Test(preallocate, bad_options_and_graphs_are_refused_with_a_reason)
{
    const char *p = raw_file("b.raw", 0);
    struct bd_flags f = { .growable = true };
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    char src[1024];

    cr_expect_eq(bd_open_image_filtered(p, "raw", NULL,
                 "driver=preallocate,prealloc-align=1000", &f, &n, &err), -EINVAL);
    cr_expect(strstr(err.msg, "prealloc-align=1000"), "%s", err.msg);
    bd_err_clear(&err);
    cr_expect_eq(bd_open_image_filtered(p, "raw", NULL,
                 "driver=preallocate,prealloc-size=lots", &f, &n, &err), -EINVAL);
    cr_expect(strstr(err.msg, "is not a size"), "%s", err.msg);
    bd_err_clear(&err);
    cr_expect_eq(bd_open_image_filtered(p, "raw", NULL,
                 "driver=preallocate,prealloc-sise=1M", &f, &n, &err), -EINVAL);
    cr_expect(strstr(err.msg, "did you mean 'prealloc-size'"), "%s", err.msg);
    bd_err_clear(&err);
    snprintf(src, sizeof(src), "driver=file,filename=%s", p);
    cr_expect_eq(bd_open_image_filtered(src, NULL, NULL, "driver=preallocate",
                                        &f, &n, &err), -EINVAL);
    cr_expect(strstr(err.msg, "between a format and its file"), "%s", err.msg);
    bd_err_clear(&err);
    cr_expect_eq(bd_open_image("driver=raw,file.driver=preallocate", NULL, NULL,
                               &f, &n, &err), -EINVAL);
    cr_expect(strstr(err.msg, "file.file.filename"), "%s", err.msg);
}
