/*
 * UTF-16 to UTF-8 for names stored in images (vhdx parent locators, vpc
 * parent names): either byte order, surrogate pairs, a bounded output.
 * What a name means (a path, a key) and where it is read from are the
 * caller's.
 */
#include "core/bd.h"

#include <assert.h>
#include <stdlib.h>

static uint32_t unit_at(const uint8_t *p, size_t i, bool be)
{
    return be ? bd_be16(p + 2 * i) : bd_le16(p + 2 * i);
}

static bool is_high_surrogate(uint32_t c)
{
    return c >= 0xd800 && c < 0xdc00;
}

static bool is_low_surrogate(uint32_t c)
{
    return c >= 0xdc00 && c < 0xe000;
}

static size_t utf8_len(uint32_t c)
{
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

static void utf8_put(char *o, uint32_t c, size_t n)
{
    static const uint8_t lead[] = { 0, 0, 0xc0, 0xe0, 0xf0 };

    for (size_t k = n - 1; k > 0; k--) {
        o[k] = (char)(0x80 | (c & 0x3f));
        c >>= 6;
    }
    o[0] = (char)(lead[n] | c);
}

int bd_utf16_to_utf8(const void *in, size_t len, unsigned flags, char *out,
                     size_t size)
{
    const uint8_t *p = in;
    bool be = flags & BD_UTF16_BE;
    size_t units = len / 2, o = 0;
    int r = 0;

    assert(size >= 1);
    for (size_t i = 0; i < units; i++) {
        uint32_t c = unit_at(p, i, be);
        size_t n;

        if (c == 0)
            break;
        if (is_high_surrogate(c) && i + 1 < units &&
            is_low_surrogate(unit_at(p, i + 1, be))) {
            c = 0x10000 + ((c - 0xd800) << 10) + (unit_at(p, i + 1, be) - 0xdc00);
            i++;
        } else if ((flags & BD_UTF16_STRICT) &&
                   (is_high_surrogate(c) || is_low_surrogate(c))) {
            r = -EILSEQ;
            break;
        }
        n = utf8_len(c);
        if (n >= size - o) {
            r = -ERANGE;
            break;
        }
        utf8_put(out + o, c, n);
        o += n;
    }
    out[o] = '\0';
    return r;
}

int bd_utf16_to_utf8_dup(const void *in, size_t len, unsigned flags,
                         char **out)
{
    size_t size = bd_utf16_to_utf8_max(len);
    int r;

    *out = malloc(size);
    if (!*out)
        return -ENOMEM;
    r = bd_utf16_to_utf8(in, len, flags, *out, size);
    if (r < 0) {
        free(*out);
        *out = NULL;
    }
    return r;
}
