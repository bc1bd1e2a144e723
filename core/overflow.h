/*
 * Checked arithmetic for sizes read from images: every multiplication or
 * addition of an untrusted value goes through these. True means overflow.
 */
#ifndef IMGFUSE_OVERFLOW_H
#define IMGFUSE_OVERFLOW_H

#include <stdbool.h>
#include <stdint.h>

static inline bool ovf_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out);
}

static inline bool ovf_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* off + len stays within limit (both untrusted). */
static inline bool ovf_range_ok(uint64_t off, uint64_t len, uint64_t limit)
{
    uint64_t end;
    return !ovf_add_u64(off, len, &end) && end <= limit;
}

static inline bool bd_is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static inline uint64_t bd_align_down(uint64_t v, uint64_t a)
{
    return v - v % a;
}

static inline uint64_t bd_align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

#endif
