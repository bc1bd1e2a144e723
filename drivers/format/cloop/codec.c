/*
 * cloop block codecs: zlib (libdeflate when built with it: faster), stored
 * blocks, and in V4 images xz (liblzma), lz4 (liblz4) and LZO1X (liblzo2)
 * when those libraries were found at build time. A block expands
 * into at most one block size; output beyond it is corruption.
 */
#include "cloop.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

#if CLOOP_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#if CLOOP_HAVE_LZMA
#include <lzma.h>
#endif
#if CLOOP_HAVE_LZ4
#include <lz4.h>
#endif
#if CLOOP_HAVE_LZO
#include <lzo/lzo1x.h>
#include <pthread.h>
#endif

#if CLOOP_HAVE_LIBDEFLATE
static long zlib_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                        size_t dst_len)
{
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    enum libdeflate_result r;
    size_t out = 0;

    if (!d)
        return -ENOMEM;
    r = libdeflate_zlib_decompress(d, src, src_len, dst, dst_len, &out);
    libdeflate_free_decompressor(d);
    return r == LIBDEFLATE_SUCCESS ? (long)out : -EIO;
}
#else
static long zlib_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
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
    /* Z_BUF_ERROR with no room left: the block expands beyond its size */
    if (zr != Z_STREAM_END)
        return -EIO;
    return (long)zs.total_out;
}
#endif

#if CLOOP_HAVE_LZMA
static long xz_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                      size_t dst_len)
{
    uint64_t memlimit = 256u << 20;
    size_t in_pos = 0, out_pos = 0;
    lzma_ret r;

    r = lzma_stream_buffer_decode(&memlimit, 0, NULL, src, &in_pos, src_len,
                                  dst, &out_pos, dst_len);
    if (r == LZMA_MEM_ERROR)
        return -ENOMEM;
    return r == LZMA_OK ? (long)out_pos : -EIO;
}
#endif

#if CLOOP_HAVE_LZ4
static long lz4_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                       size_t dst_len)
{
    int r;

    if (src_len > INT_MAX || dst_len > INT_MAX)
        return -EIO;
    r = LZ4_decompress_safe((const char *)src, (char *)dst, (int)src_len,
                            (int)dst_len);
    return r < 0 ? -EIO : r;
}
#endif

#if CLOOP_HAVE_LZO
static int lzo_ready = -1;

static void lzo_setup(void)
{
    lzo_ready = lzo_init() == LZO_E_OK;
}

static long lzo_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                       size_t dst_len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    lzo_uint out = dst_len;

    pthread_once(&once, lzo_setup);
    if (!lzo_ready)
        return -ENOTSUP;
    if (lzo1x_decompress_safe(src, src_len, dst, &out, NULL) != LZO_E_OK)
        return -EIO;
    return (long)out;
}
#endif

bool cloop_codec_built(unsigned codec)
{
    switch (codec) {
    case CLOOP_CODEC_ZLIB:
    case CLOOP_CODEC_NONE:
        return true;
    case CLOOP_CODEC_XZ:
        return CLOOP_HAVE_LZMA;
    case CLOOP_CODEC_LZ4:
        return CLOOP_HAVE_LZ4;
    case CLOOP_CODEC_LZO:
        return CLOOP_HAVE_LZO;
    default:
        return false;
    }
}

const char *cloop_codec_name(unsigned codec)
{
    static const char *const names[CLOOP_N_CODECS] = {
        "zlib", "none", "xz", "lz4", "lzo",
    };

    return codec < CLOOP_N_CODECS ? names[codec] : "unknown";
}

long cloop_decode(unsigned codec, const uint8_t *src, size_t src_len,
                  uint8_t *dst, size_t dst_len)
{
    switch (codec) {
    case CLOOP_CODEC_ZLIB:
        return zlib_decode(src, src_len, dst, dst_len);
    case CLOOP_CODEC_NONE:
        if (src_len > dst_len)
            return -EIO;
        memcpy(dst, src, src_len);
        return (long)src_len;
#if CLOOP_HAVE_LZMA
    case CLOOP_CODEC_XZ:
        return xz_decode(src, src_len, dst, dst_len);
#endif
#if CLOOP_HAVE_LZ4
    case CLOOP_CODEC_LZ4:
        return lz4_decode(src, src_len, dst, dst_len);
#endif
#if CLOOP_HAVE_LZO
    case CLOOP_CODEC_LZO:
        return lzo_decode(src, src_len, dst, dst_len);
#endif
    default:
        return -ENOTSUP;
    }
}
