/* core/io.c: block status of one layer and the walk down a chain. */
#include <criterion/criterion.h>
#include "memdrv.h"

static void mark(struct bd_node *n, uint64_t off, uint64_t len, uint8_t kind)
{
    struct mem_state *s = n->state;
    for (uint64_t b = off / 512; b < (off + len) / 512; b++)
        s->alloc[b] = kind;
}

Test(block_status, one_layer_reports_runs_of_the_same_state)
{
    struct bd_node *n = mem_node(65536, 512, 0);
    mark(n, 4096, 8192, 1);
    uint64_t pnum;
    unsigned st;
    cr_assert_eq(bd_block_status(n, 0, 65536, &pnum, &st, NULL), 0);
    cr_assert_eq(pnum, 4096);
    cr_assert_eq(st, 0);
    cr_assert_eq(bd_block_status(n, 4096, 65536 - 4096, &pnum, &st, NULL), 0);
    cr_assert_eq(pnum, 8192);
    cr_assert(st & BD_STATUS_DATA);
    mem_free(n);
}

Test(block_status, unallocated_top_asks_the_backing_file)
{
    struct bd_node *top = mem_node(65536, 512, 0);
    struct bd_node *base = mem_node(65536, 512, 0);
    top->backing = base;
    mark(base, 0, 16384, 1);
    mark(top, 8192, 4096, 2);
    uint64_t pnum;
    unsigned st;
    cr_assert_eq(bd_block_status_above(top, 0, 65536, &pnum, &st), 0);
    cr_assert_eq(pnum, 8192);
    cr_assert_eq(st, BD_STATUS_DATA);
    cr_assert_eq(bd_block_status_above(top, 8192, 65536 - 8192, &pnum, &st), 0);
    cr_assert_eq(pnum, 4096);
    cr_assert_eq(st, BD_STATUS_ZERO);
    cr_assert_eq(bd_block_status_above(top, 12288, 65536 - 12288, &pnum, &st), 0);
    cr_assert_eq(pnum, 4096, "data in the base up to 16384");
    cr_assert_eq(st, BD_STATUS_DATA);
    cr_assert_eq(bd_block_status_above(top, 16384, 65536 - 16384, &pnum, &st), 0);
    cr_assert_eq(st, BD_STATUS_ZERO, "unallocated everywhere reads as zero");
    mem_free(top);
}

Test(block_status, short_backing_file_reads_as_zero_past_its_end)
{
    struct bd_node *top = mem_node(65536, 512, 0);
    struct bd_node *base = mem_node(8192, 512, 0);
    top->backing = base;
    mark(base, 0, 8192, 1);
    uint64_t pnum;
    unsigned st;
    cr_assert_eq(bd_block_status_above(top, 8192, 4096, &pnum, &st), 0);
    cr_assert_eq(st, BD_STATUS_ZERO);
    cr_assert_eq(bd_block_status_above(top, 0, 65536, &pnum, &st), 0);
    cr_assert_eq(st, BD_STATUS_DATA);
    cr_assert_leq(pnum, 8192);
    mem_free(top);
}

Test(block_status, past_the_end_is_zero_length)
{
    struct bd_node *n = mem_node(4096, 512, 0);
    uint64_t pnum = 7;
    unsigned st;
    cr_assert_eq(bd_block_status(n, 8192, 512, &pnum, &st, NULL), 0);
    cr_assert_eq(pnum, 0);
    mem_free(n);
}
