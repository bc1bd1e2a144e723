/* core/io.c: alignment, bounce buffers, read-modify-write, splitting. */
#include <criterion/criterion.h>
#include "memdrv.h"

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7 + seed);
}

Test(io, unaligned_read_reaches_driver_aligned_and_returns_the_bytes)
{
    struct bd_node *n = mem_node(1 << 20, 4096, 0);
    struct mem_state *s = n->state;
    fill_pattern(s->data, 1 << 20, 3);
    uint8_t buf[10000];
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 1234), 0);
    cr_assert_eq(memcmp(buf, s->data + 1234, sizeof(buf)), 0);
    cr_assert_eq(s->misaligned, 0);
    cr_assert_eq(s->oob, 0);
    mem_free(n);
}

Test(io, unaligned_write_is_read_modify_write_and_keeps_neighbours)
{
    struct bd_node *n = mem_node(1 << 20, 512, 0);
    struct mem_state *s = n->state;
    fill_pattern(s->data, 1 << 20, 1);
    uint8_t *before = malloc(1 << 20);
    memcpy(before, s->data, 1 << 20);
    uint8_t patch[700];
    memset(patch, 0xee, sizeof(patch));
    cr_assert_eq(bd_pwrite(n, patch, sizeof(patch), 1000, 0), 0);
    memcpy(before + 1000, patch, sizeof(patch));
    cr_assert_eq(memcmp(before, s->data, 1 << 20), 0);
    cr_assert_eq(s->misaligned, 0);
    free(before);
    mem_free(n);
}

Test(io, write_inside_one_block_reads_that_block_once)
{
    struct bd_node *n = mem_node(8192, 4096, 0);
    struct mem_state *s = n->state;
    uint8_t b = 0x42;
    cr_assert_eq(bd_pwrite(n, &b, 1, 5000, 0), 0);
    cr_assert_eq(s->data[5000], 0x42);
    cr_assert_eq(s->nreq, 2, "one read and one write, got %u requests", s->nreq);
    mem_free(n);
}

Test(io, large_requests_are_split_at_max_transfer)
{
    struct bd_node *n = mem_node(1 << 20, 512, 65536);
    struct mem_state *s = n->state;
    uint8_t *buf = malloc(1 << 20);
    fill_pattern(buf, 1 << 20, 9);
    cr_assert_eq(bd_pwrite(n, buf, 1 << 20, 0, 0), 0);
    cr_assert_eq(s->too_big, 0);
    cr_assert_eq(s->nreq, 16);
    cr_assert_eq(memcmp(buf, s->data, 1 << 20), 0);
    free(buf);
    mem_free(n);
}

Test(io, read_past_the_end_is_zero_and_never_reaches_the_driver)
{
    struct bd_node *n = mem_node(4096, 512, 0);
    struct mem_state *s = n->state;
    memset(s->data, 0xaa, 4096);
    uint8_t buf[2048];
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 3072), 0);
    for (int i = 0; i < 1024; i++)
        cr_assert_eq(buf[i], 0xaa);
    for (int i = 1024; i < 2048; i++)
        cr_assert_eq(buf[i], 0);
    cr_assert_eq(s->oob, 0);
    mem_free(n);
}

Test(io, write_past_the_end_of_a_fixed_node_is_enospc)
{
    struct bd_node *n = mem_node(4096, 512, 0);
    uint8_t buf[512] = { 0 };
    cr_assert_eq(bd_pwrite(n, buf, 512, 4096, 0), -ENOSPC);
    mem_free(n);
}

Test(io, read_only_node_refuses_writes_and_zeroes)
{
    struct bd_node *n = mem_node(4096, 512, 0);
    n->flags.read_only = true;
    uint8_t buf[512] = { 0 };
    cr_assert_eq(bd_pwrite(n, buf, 512, 0, 0), -EROFS);
    cr_assert_eq(bd_pwrite_zeroes(n, 512, 0, 0), -EROFS);
    cr_assert_eq(bd_discard(n, 512, 0), -EROFS);
    mem_free(n);
}

Test(io, zeroes_without_driver_support_fall_back_to_writing_zeroes)
{
    struct bd_node *n = mem_node(1 << 16, 512, 0);
    struct mem_state *s = n->state;
    memset(s->data, 0x11, 1 << 16);
    cr_assert_eq(bd_pwrite_zeroes(n, 3000, 100, 0), 0);
    for (int i = 0; i < (1 << 16); i++)
        cr_assert_eq(s->data[i], (i >= 100 && i < 3100) ? 0 : 0x11, "byte %d", i);
    cr_assert_eq(s->misaligned, 0);
    mem_free(n);
}

Test(io, zeroes_with_no_fallback_flag_fail_when_unsupported)
{
    struct bd_node *n = mem_node(1 << 16, 512, 0);
    cr_assert_eq(bd_pwrite_zeroes(n, 4096, 0, BD_REQ_NO_FALLBACK), -ENOTSUP);
    mem_free(n);
}

Test(io, misaligned_buffer_is_bounced_when_the_driver_needs_memory_alignment)
{
    struct bd_node *n = mem_node(1 << 16, 512, 0);
    n->lim.mem_alignment = 4096;
    struct mem_state *s = n->state;
    fill_pattern(s->data, 1 << 16, 5);
    uint8_t *raw = malloc(8192 + 1);
    cr_assert_eq(bd_pread(n, raw + 1, 8192, 4096), 0);
    cr_assert_eq(memcmp(raw + 1, s->data + 4096, 8192), 0);
    free(raw);
    mem_free(n);
}
