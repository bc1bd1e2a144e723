/*
 * The filter kind of the driver contract: a filter implements only what it
 * changes, and core forwards every other request to its file unchanged.
 * Shown with a write-counting filter over the memory driver.
 */
#include <criterion/criterion.h>
#include "memdrv.h"
#include "core/registry.h"

struct count_state {
    unsigned writes;
    uint64_t bytes;
};

static int count_open(struct bd_node *n, const struct bd_opts *o,
                      struct bd_err *err)
{
    (void)n; (void)o; (void)err;
    return 0;
}

static int count_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                        uint64_t off, unsigned flags)
{
    struct count_state *s = n->state;
    s->writes++;
    s->bytes += len;
    return bd_pwrite(n->file, buf, len, off, flags);
}

static const struct bd_driver count_filter = {
    .name = "count",
    .kind = BD_FILTER,
    .state_size = sizeof(struct count_state),
    .parallel = true,
    .open = count_open,
    .pwrite = count_pwrite,
};

static struct bd_node *filter_over(struct bd_node *child)
{
    struct bd_flags f = { 0 };
    struct bd_err err = { 0 };
    struct bd_node *n = bd_node_alloc(&count_filter, "count", &f, &err);
    cr_assert_not_null(n, "%s", err.msg);
    n->file = child;
    child->parent = n;
    bd_node_refresh_limits(n);
    return n;
}

static void filter_free(struct bd_node *n)
{
    struct bd_node *child = n->file;
    n->file = NULL;
    bd_node_close(n);
    mem_free(child);
}

Test(filter, keeps_the_contract)
{
    char why[256] = "";
    cr_assert_eq(bd_driver_contract_check(&count_filter, why, sizeof(why)), 0,
                 "%s", why);
}

Test(filter, size_and_limits_are_its_files)
{
    struct bd_node *m = mem_node(1 << 20, 4096, 65536);
    struct bd_node *n = filter_over(m);
    cr_expect_eq(bd_size(n), 1 << 20);
    cr_expect_eq(n->lim.request_alignment, 4096);
    cr_expect_eq(n->lim.max_transfer, 65536);
    filter_free(n);
}

Test(filter, what_it_implements_runs_and_the_rest_is_forwarded)
{
    struct bd_node *m = mem_node(1 << 20, 512, 0);
    struct mem_state *ms = m->state;
    struct bd_node *n = filter_over(m);
    struct count_state *cs = n->state;
    uint8_t buf[4096], back[4096];
    memset(buf, 0x5a, sizeof(buf));

    cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), 8192, 0), 0);
    cr_expect_eq(cs->writes, 1);
    cr_expect_eq(cs->bytes, sizeof(buf));
    cr_expect_eq(memcmp(ms->data + 8192, buf, sizeof(buf)), 0);

    /* reads and zeroes are not the filter's: core hands them to the file */
    cr_assert_eq(bd_pread(n, back, sizeof(back), 8192), 0);
    cr_expect_eq(memcmp(back, buf, sizeof(buf)), 0);
    unsigned before = ms->nreq;
    cr_assert_eq(bd_pwrite_zeroes(n, 512, 8192, 0), 0);
    cr_expect_gt(ms->nreq, before, "the zeroes reached the file");
    cr_expect_eq(ms->data[8192], 0);
    cr_expect_eq(ms->data[8192 + 512], 0x5a);

    /* block status is the file's: written data, and a hole before it */
    uint64_t pnum, map;
    unsigned st;
    cr_assert_eq(bd_block_status(n, 8192 + 512, 4096, &pnum, &st, &map), 0);
    cr_expect(st & BD_STATUS_DATA);
    cr_assert_eq(bd_block_status(n, 0, 8192, &pnum, &st, &map), 0);
    cr_expect_eq(st & BD_STATUS_ALLOCATED, 0);
    cr_expect_eq(pnum, 8192);
    filter_free(n);
}

Test(filter, read_only_filter_refuses_writes_before_its_callback)
{
    struct bd_node *m = mem_node(65536, 512, 0);
    struct bd_node *n = filter_over(m);
    struct count_state *cs = n->state;
    uint8_t b[512] = { 1 };
    n->flags.read_only = true;
    cr_expect_eq(bd_pwrite(n, b, sizeof(b), 0, 0), -EROFS);
    cr_expect_eq(bd_pwrite_zeroes(n, 512, 0, 0), -EROFS);
    cr_expect_eq(cs->writes, 0);
    filter_free(n);
}
