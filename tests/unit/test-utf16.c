/*
 * core/utf16.c: UTF-16 names from images to UTF-8, in both byte orders,
 * with surrogate pairs, unpaired surrogates (strict and lenient), odd
 * lengths, embedded NULs and a bounded output buffer.
 */
#include "core/bd.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* Encode units in the given byte order into b; returns the byte count. */
static size_t units(uint8_t *b, unsigned flags, const uint16_t *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (flags & BD_UTF16_BE)
            bd_put_be16(b + 2 * i, u[i]);
        else
            bd_put_le16(b + 2 * i, u[i]);
    }
    return 2 * n;
}

static void expect_utf8(unsigned flags, const uint16_t *u, size_t n,
                        const char *want)
{
    uint8_t b[128];
    char out[256];
    size_t len = units(b, flags, u, n);

    cr_assert_eq(bd_utf16_to_utf8(b, len, flags, out, sizeof(out)), 0);
    cr_expect_str_eq(out, want);
}

Test(utf16, ascii_in_both_byte_orders)
{
    static const uint16_t u[] = { 'p', 'a', 'r', 'e', 'n', 't', '.', 'v', 'h', 'd' };

    expect_utf8(BD_UTF16_LE, u, 10, "parent.vhd");
    expect_utf8(BD_UTF16_BE, u, 10, "parent.vhd");
    expect_utf8(BD_UTF16_BE | BD_UTF16_STRICT, u, 10, "parent.vhd");
}

Test(utf16, byte_order_decides_the_units)
{
    const uint8_t b[] = { 0x00, 0x41, 0x00, 0x42 };     /* "AB" big-endian */
    char out[16];

    cr_assert_eq(bd_utf16_to_utf8(b, sizeof(b), BD_UTF16_BE, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "AB");
    /* read as little-endian the same bytes are U+4100 U+4200 */
    cr_assert_eq(bd_utf16_to_utf8(b, sizeof(b), BD_UTF16_LE, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "\xe4\x84\x80\xe4\x88\x80");
}

Test(utf16, bmp_characters_take_two_and_three_bytes)
{
    /* e-acute, Greek omega, euro sign, CJK "middle", U+FFFD */
    static const uint16_t u[] = { 0x00e9, 0x03c9, 0x20ac, 0x4e2d, 0xfffd };

    expect_utf8(BD_UTF16_LE, u, 5, "\xc3\xa9\xcf\x89\xe2\x82\xac\xe4\xb8\xad"
                                   "\xef\xbf\xbd");
    expect_utf8(BD_UTF16_BE, u, 5, "\xc3\xa9\xcf\x89\xe2\x82\xac\xe4\xb8\xad"
                                   "\xef\xbf\xbd");
}

Test(utf16, surrogate_pair_is_one_four_byte_character)
{
    /* U+1F600 and U+10FFFF, the highest code point */
    static const uint16_t u[] = { 'a', 0xd83d, 0xde00, 0xdbff, 0xdfff, 'b' };

    expect_utf8(BD_UTF16_LE, u, 6, "a\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf" "b");
    expect_utf8(BD_UTF16_BE | BD_UTF16_STRICT, u, 6,
                "a\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf" "b");
}

Test(utf16, unpaired_surrogates_fail_when_strict)
{
    static const uint16_t lone_low[] = { 'a', 0xdc00, 'b' };
    static const uint16_t high_then_ascii[] = { 'a', 0xd800, 'b' };
    static const uint16_t high_at_end[] = { 'a', 'b', 0xd800 };
    static const uint16_t high_then_nul[] = { 'a', 0xd800, 0 };
    const uint16_t *cases[] = { lone_low, high_then_ascii, high_at_end,
                                high_then_nul };
    uint8_t b[16];
    char out[32];

    for (size_t i = 0; i < 4; i++) {
        size_t len = units(b, BD_UTF16_BE, cases[i], 3);

        cr_expect_eq(bd_utf16_to_utf8(b, len, BD_UTF16_BE | BD_UTF16_STRICT, out,
                                      sizeof(out)), -EILSEQ, "case %zu", i);
        cr_expect_str_eq(out, i == 2 ? "ab" : "a", "case %zu", i);
    }
}

Test(utf16, unpaired_surrogates_are_kept_when_lenient)
{
    static const uint16_t lone_low[] = { 'a', 0xdc00, 'b' };
    static const uint16_t high_then_ascii[] = { 'a', 0xd800, 'b' };
    static const uint16_t high_at_end[] = { 'a', 'b', 0xdbff };

    expect_utf8(BD_UTF16_LE, lone_low, 3, "a\xed\xb0\x80" "b");
    expect_utf8(BD_UTF16_LE, high_then_ascii, 3, "a\xed\xa0\x80" "b");
    expect_utf8(BD_UTF16_LE, high_at_end, 3, "ab\xed\xaf\xbf");
}

Test(utf16, odd_byte_count_ignores_the_last_byte)
{
    const uint8_t b[] = { 'h', 0, 'i', 0, 'X' };
    /* a pair cut in the middle of its low unit: only the high one is whole */
    const uint8_t cut[] = { 'a', 0, 0x3d, 0xd8, 0x00 };
    char out[16];

    cr_assert_eq(bd_utf16_to_utf8(b, sizeof(b), BD_UTF16_LE, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "hi");
    cr_assert_eq(bd_utf16_to_utf8(b, 1, BD_UTF16_LE, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "");
    cr_expect_eq(bd_utf16_to_utf8(cut, sizeof(cut), BD_UTF16_LE | BD_UTF16_STRICT,
                                  out, sizeof(out)), -EILSEQ);
    cr_expect_str_eq(out, "a");
}

Test(utf16, embedded_nul_ends_the_string)
{
    static const uint16_t u[] = { 'a', 'b', 0, 'c', 0xdc00 };
    uint8_t b[16];
    char out[16];
    size_t len = units(b, BD_UTF16_LE, u, 5);

    /* what follows the NUL is not looked at, not even a bad surrogate */
    cr_assert_eq(bd_utf16_to_utf8(b, len, BD_UTF16_LE | BD_UTF16_STRICT, out,
                                  sizeof(out)), 0);
    cr_expect_str_eq(out, "ab");
    cr_assert_eq(bd_utf16_to_utf8(b, 0, BD_UTF16_LE, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "");
}

Test(utf16, output_is_cut_at_the_buffer_limit_between_characters)
{
    /* "ab", euro (3 bytes), U+1F600 (4 bytes) */
    static const uint16_t u[] = { 'a', 'b', 0x20ac, 0xd83d, 0xde00 };
    uint8_t b[16];
    char out[16];
    size_t len = units(b, BD_UTF16_LE, u, 5);

    memset(out, 'x', sizeof(out));
    cr_assert_eq(bd_utf16_to_utf8(b, len, BD_UTF16_LE, out, 1), -ERANGE);
    cr_expect_str_eq(out, "");
    cr_assert_eq(bd_utf16_to_utf8(b, len, BD_UTF16_LE, out, 3), -ERANGE);
    cr_expect_str_eq(out, "ab");
    /* the euro sign does not fit in 5 bytes with the NUL: not split */
    cr_assert_eq(bd_utf16_to_utf8(b, len, BD_UTF16_LE, out, 5), -ERANGE);
    cr_expect_str_eq(out, "ab");
    cr_assert_eq(bd_utf16_to_utf8(b, len, BD_UTF16_LE, out, 6), -ERANGE);
    cr_expect_str_eq(out, "ab\xe2\x82\xac");
    cr_assert_eq(bd_utf16_to_utf8(b, len, BD_UTF16_LE, out, 9), -ERANGE);
    cr_expect_str_eq(out, "ab\xe2\x82\xac");
    cr_expect_eq(out[9], 'x', "wrote past the limit");
    /* exactly enough */
    cr_assert_eq(bd_utf16_to_utf8(b, len, BD_UTF16_LE, out, 10), 0);
    cr_expect_str_eq(out, "ab\xe2\x82\xac\xf0\x9f\x98\x80");
}

Test(utf16, worst_case_size_always_fits)
{
    /* all three-byte units, and all pairs (4 bytes for 4 bytes of input) */
    static const uint16_t bmp[] = { 0x4e2d, 0x4e2d, 0x4e2d, 0x4e2d };
    static const uint16_t pairs[] = { 0xd83d, 0xde00, 0xd83d, 0xde00 };
    const uint16_t *cases[] = { bmp, pairs };
    uint8_t b[16];

    for (size_t i = 0; i < 2; i++) {
        size_t len = units(b, BD_UTF16_LE, cases[i], 4);
        char *out = NULL;

        cr_assert_eq(bd_utf16_to_utf8_dup(b, len, BD_UTF16_LE, &out), 0);
        cr_expect_leq(strlen(out) + 1, bd_utf16_to_utf8_max(len));
        free(out);
    }
}

Test(utf16, dup_fails_strictly_and_leaves_nothing)
{
    static const uint16_t u[] = { 'a', 0xdc00 };
    uint8_t b[8];
    char *out = (char *)"sentinel";
    size_t len = units(b, BD_UTF16_BE, u, 2);

    cr_assert_eq(bd_utf16_to_utf8_dup(b, len, BD_UTF16_BE | BD_UTF16_STRICT, &out),
                 -EILSEQ);
    cr_expect_null(out);
}
