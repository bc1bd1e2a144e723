/*
 * qcow2 compressed clusters: raw deflate (compression_type 0, "zlib" in
 * QEMU, no zlib header) and zstd (type 1). Compressed data may be followed
 * by unrelated bytes up to the sector end: decoders stop at one cluster.
 */
#include "qcow2.h"

#include <zlib.h>
#include <zstd.h>

static int inflate_cluster(const void *src, size_t slen, void *dst, size_t dlen)
{
    z_stream z = { 0 };
    int ret;

    if (inflateInit2(&z, -15) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)slen;
    z.next_out = dst;
    z.avail_out = (uInt)dlen;
    ret = inflate(&z, Z_FINISH);
    size_t got = dlen - z.avail_out;
    inflateEnd(&z);
    /* Z_BUF_ERROR with a full output is fine: trailing bytes are not ours */
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) &&
        got == dlen)
        return 0;
    return -EIO;
}

static int zstd_cluster(const void *src, size_t slen, void *dst, size_t dlen)
{
    ZSTD_DCtx *z = ZSTD_createDCtx();
    ZSTD_inBuffer in = { src, slen, 0 };
    ZSTD_outBuffer out = { dst, dlen, 0 };
    int ret = -EIO;

    if (!z)
        return -ENOMEM;
    for (;;) {
        size_t in0 = in.pos, out0 = out.pos;
        size_t r = ZSTD_decompressStream(z, &out, &in);
        if (ZSTD_isError(r))
            break;
        if (out.pos == dlen) {
            ret = 0;
            break;
        }
        if (r == 0 || (in.pos == in0 && out.pos == out0))
            break;              /* frame ended short, or no progress */
    }
    ZSTD_freeDCtx(z);
    return ret;
}

int qcow2_decompress(int type, const void *src, size_t slen, void *dst,
                     size_t dlen)
{
    switch (type) {
    case QCOW2_COMPRESS_ZLIB:
        return inflate_cluster(src, slen, dst, dlen);
    case QCOW2_COMPRESS_ZSTD:
        return zstd_cluster(src, slen, dst, dlen);
    default:
        return -ENOTSUP;
    }
}

ssize_t qcow2_compress(int type, const void *src, size_t slen, void *dst,
                       size_t dlen)
{
    if (type == QCOW2_COMPRESS_ZSTD) {
        size_t r = ZSTD_compress(dst, dlen, src, slen, 3);
        if (ZSTD_isError(r))
            return -ENOSPC;
        return r < slen ? (ssize_t)r : -ENOSPC;
    }
    z_stream z = { 0 };
    /* window of 4 KiB as QEMU uses, raw deflate */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)slen;
    z.next_out = dst;
    z.avail_out = (uInt)dlen;
    int ret = deflate(&z, Z_FINISH);
    size_t out = dlen - z.avail_out;
    deflateEnd(&z);
    if (ret != Z_STREAM_END || out >= slen)
        return -ENOSPC;
    return (ssize_t)out;
}
