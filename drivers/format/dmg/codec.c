/*
 * dmg chunk codecs backed by libraries (zlib, bzip2, xz/lzma) and the
 * dispatch to our own ADC and LZFSE decoders. Each expands one chunk into a
 * buffer of exactly the size the blkx table declares; anything else is -EIO.
 */
#include "dmg.h"

#include <bzlib.h>
#include <limits.h>
#include <lzma.h>
#include <zlib.h>

#if DMG_HAVE_LIBDEFLATE
#include <libdeflate.h>

/* libdeflate expands a whole zlib buffer two to three times faster than
 * zlib's streaming inflate; sequential reads of UDZO images are bound by
 * this. Without an out-size pointer it insists on exactly dst_len bytes. */
static int dmg_zlib_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                           size_t dst_len)
{
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    enum libdeflate_result r;

    if (!d)
        return -ENOMEM;
    r = libdeflate_zlib_decompress(d, src, src_len, dst, dst_len, NULL);
    libdeflate_free_decompressor(d);
    return r == LIBDEFLATE_SUCCESS ? 0 : -EIO;
}
#else
static int dmg_zlib_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                           size_t dst_len)
{
    z_stream zs = { 0 };
    int zr;

    if (src_len > UINT_MAX || dst_len > UINT_MAX)
        return -EIO;
    if (inflateInit(&zs) != Z_OK)
        return -ENOMEM;
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)src_len;
    zs.next_out = dst;
    zs.avail_out = (uInt)dst_len;
    zr = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    if (zr != Z_STREAM_END || zs.total_out != dst_len)
        return -EIO;
    return 0;
}
#endif

static int dmg_bzip2_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                            size_t dst_len)
{
    bz_stream bz = { 0 };
    int br;

    if (src_len > UINT_MAX || dst_len > UINT_MAX)
        return -EIO;
    if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK)
        return -ENOMEM;
    bz.next_in = (char *)src;
    bz.avail_in = (unsigned)src_len;
    bz.next_out = (char *)dst;
    bz.avail_out = (unsigned)dst_len;
    /* loop while it makes progress: the end marker may need a call of its
     * own after the last byte of output */
    for (;;) {
        unsigned in = bz.avail_in, out = bz.avail_out;

        br = BZ2_bzDecompress(&bz);
        if (br != BZ_OK || (bz.avail_in == in && bz.avail_out == out))
            break;
    }
    BZ2_bzDecompressEnd(&bz);
    /* A stream that stops exactly at dst_len without its end marker, or
     * that has more to give, is not the chunk the table describes. */
    if (br != BZ_STREAM_END || bz.avail_out != 0)
        return -EIO;
    return 0;
}

/* Apple writes .xz streams; the auto decoder also takes the legacy .lzma
 * ("alone") form, which costs nothing to accept. */
static int dmg_lzma_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                           size_t dst_len)
{
    lzma_stream ls = LZMA_STREAM_INIT;
    lzma_ret lr;

    if (lzma_auto_decoder(&ls, 256u << 20, 0) != LZMA_OK)
        return -ENOMEM;
    ls.next_in = src;
    ls.avail_in = src_len;
    ls.next_out = dst;
    ls.avail_out = dst_len;
    lr = lzma_code(&ls, LZMA_FINISH);
    lzma_end(&ls);
    if (lr != LZMA_STREAM_END || ls.avail_out != 0)
        return -EIO;
    return 0;
}

int dmg_decode(uint32_t type, const uint8_t *src, size_t src_len,
               uint8_t *dst, size_t dst_len)
{
    switch (type) {
    case DMG_CHUNK_ADC:   return dmg_adc_decode(src, src_len, dst, dst_len);
    case DMG_CHUNK_ZLIB:  return dmg_zlib_decode(src, src_len, dst, dst_len);
    case DMG_CHUNK_BZIP2: return dmg_bzip2_decode(src, src_len, dst, dst_len);
    case DMG_CHUNK_LZFSE: return dmg_lzfse_decode(src, src_len, dst, dst_len);
    case DMG_CHUNK_LZMA:  return dmg_lzma_decode(src, src_len, dst, dst_len);
    default:              return -EIO;
    }
}
