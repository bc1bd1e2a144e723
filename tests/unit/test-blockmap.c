/*
 * core/blockmap.c: bd_for_each_block() hands a byte range to its callback
 * block by block, with the right index, offset in the block, chunk and
 * progress, and stops at the first error.
 */
#include "core/bd.h"

#include <criterion/criterion.h>
#include <stdint.h>

struct call {
    uint64_t block;
    uint32_t in_block, chunk;
    uint64_t done;
};

struct record {
    struct call calls[64];
    size_t n;
    size_t fail_at;             /* 1-based call that fails, 0: none */
    int fail_with;
};

static int record_block(void *ctx, uint64_t block, uint32_t in_block,
                        uint32_t chunk, uint64_t done)
{
    struct record *rec = ctx;

    cr_assert_lt(rec->n, 64, "too many calls");
    rec->calls[rec->n++] = (struct call){ block, in_block, chunk, done };
    if (rec->fail_at && rec->n == rec->fail_at)
        return rec->fail_with;
    return 0;
}

static void expect_call(const struct record *rec, size_t i, uint64_t block,
                        uint32_t in_block, uint32_t chunk, uint64_t done)
{
    cr_assert_lt(i, rec->n, "call %zu missing", i);
    cr_expect_eq(rec->calls[i].block, block, "call %zu: block %llu, not %llu", i,
                 (unsigned long long)rec->calls[i].block, (unsigned long long)block);
    cr_expect_eq(rec->calls[i].in_block, in_block, "call %zu: in_block %u, not %u",
                 i, rec->calls[i].in_block, in_block);
    cr_expect_eq(rec->calls[i].chunk, chunk, "call %zu: chunk %u, not %u", i,
                 rec->calls[i].chunk, chunk);
    cr_expect_eq(rec->calls[i].done, done, "call %zu: done %llu, not %llu", i,
                 (unsigned long long)rec->calls[i].done, (unsigned long long)done);
}

Test(blockmap, range_within_one_block_is_one_call)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(4096 + 512, 1024, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 1);
    expect_call(&rec, 0, 1, 512, 1024, 0);
}

Test(blockmap, whole_aligned_blocks_are_one_call_each)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(8192, 3 * 4096, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 3);
    expect_call(&rec, 0, 2, 0, 4096, 0);
    expect_call(&rec, 1, 3, 0, 4096, 4096);
    expect_call(&rec, 2, 4, 0, 4096, 8192);
}

Test(blockmap, range_ending_at_a_block_boundary_stops_there)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(1024, 4096 - 1024, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 1);
    expect_call(&rec, 0, 0, 1024, 3072, 0);
}

Test(blockmap, range_ending_one_byte_short_of_a_boundary_is_clamped)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(0, 4095, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 1);
    expect_call(&rec, 0, 0, 0, 4095, 0);

    rec.n = 0;
    cr_assert_eq(bd_for_each_block(4096 + 10, 4096 - 11, 4096, record_block, &rec),
                 0);
    cr_assert_eq(rec.n, 1);
    expect_call(&rec, 0, 1, 10, 4085, 0);
}

Test(blockmap, unaligned_range_spans_many_blocks_with_partial_ends)
{
    struct record rec = { 0 };

    /* 512-byte blocks: starts 100 bytes into block 3, ends 12 bytes into 13 */
    cr_assert_eq(bd_for_each_block(3 * 512 + 100, 10 * 512 - 88, 512,
                                   record_block, &rec), 0);
    cr_assert_eq(rec.n, 11);
    expect_call(&rec, 0, 3, 100, 412, 0);
    for (size_t i = 1; i < 10; i++)
        expect_call(&rec, i, 3 + i, 0, 512, 412 + (i - 1) * 512);
    expect_call(&rec, 10, 13, 0, 12, 412 + 9 * 512);
}

Test(blockmap, block_size_need_not_be_a_power_of_two)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(1000, 2000, 1536, record_block, &rec), 0);
    cr_assert_eq(rec.n, 2);
    expect_call(&rec, 0, 0, 1000, 536, 0);
    expect_call(&rec, 1, 1, 0, 1464, 536);
}

Test(blockmap, zero_length_calls_nothing)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(12345, 0, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 0);
}

Test(blockmap, last_byte_of_a_block_then_the_next_block)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(4095, 1, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 1);
    expect_call(&rec, 0, 0, 4095, 1, 0);

    rec.n = 0;
    cr_assert_eq(bd_for_each_block(4095, 2, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 2);
    expect_call(&rec, 0, 0, 4095, 1, 0);
    expect_call(&rec, 1, 1, 0, 1, 1);
}

Test(blockmap, callback_error_stops_the_walk_and_is_returned)
{
    struct record rec = { .fail_at = 2, .fail_with = -EIO };

    cr_assert_eq(bd_for_each_block(0, 10 * 4096, 4096, record_block, &rec), -EIO);
    cr_assert_eq(rec.n, 2, "the walk went on after the error (%zu calls)", rec.n);
}

Test(blockmap, error_on_the_first_block_makes_no_further_calls)
{
    struct record rec = { .fail_at = 1, .fail_with = -ENOSPC };

    cr_assert_eq(bd_for_each_block(100, 3 * 4096, 4096, record_block, &rec), -ENOSPC);
    cr_assert_eq(rec.n, 1);
}

Test(blockmap, huge_offsets_do_not_overflow)
{
    struct record rec = { 0 };
    uint32_t bs = 2u << 20;
    uint64_t top = UINT64_MAX - (bs - 1);           /* 2^64 - bs: the last block */

    /* the last three blocks of the 64-bit space, ending exactly at 2^64 */
    cr_assert_eq(bd_for_each_block(top - 2 * (uint64_t)bs + 7, 3 * (uint64_t)bs - 7,
                                   bs, record_block, &rec), 0);
    cr_assert_eq(rec.n, 3);
    expect_call(&rec, 0, top / bs - 2, 7, bs - 7, 0);
    expect_call(&rec, 1, top / bs - 1, 0, bs, bs - 7);
    expect_call(&rec, 2, top / bs, 0, bs, 2 * (uint64_t)bs - 7);
}

Test(blockmap, last_byte_of_the_offset_space)
{
    struct record rec = { 0 };

    cr_assert_eq(bd_for_each_block(UINT64_MAX, 1, 4096, record_block, &rec), 0);
    cr_assert_eq(rec.n, 1);
    expect_call(&rec, 0, UINT64_MAX / 4096, 4095, 1, 0);
}

Test(blockmap, length_beyond_four_gib_is_split_per_block)
{
    struct record rec = { 0 };
    uint32_t bs = 256u << 20;

    /* 5 GiB + 1 in 256 MiB blocks: no chunk is cut to 32 bits */
    cr_assert_eq(bd_for_each_block((uint64_t)bs - 1, 20 * (uint64_t)bs + 2, bs,
                                   record_block, &rec), 0);
    cr_assert_eq(rec.n, 22);
    expect_call(&rec, 0, 0, bs - 1, 1, 0);
    expect_call(&rec, 1, 1, 0, bs, 1);
    expect_call(&rec, 21, 21, 0, 1, 1 + 20 * (uint64_t)bs);
}
