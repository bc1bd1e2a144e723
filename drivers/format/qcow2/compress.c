/*
 * qcow2 compressed clusters: raw deflate (compression_type 0, "zlib" in
 * QEMU, no zlib header) and zstd (type 1). Compressed data may be followed
 * by unrelated bytes up to the sector end: decoders stop at one cluster.
 */
#include "qcow2.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#if QCOW2_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

/* Decoder state per thread, reused: setting one up costs more than
 * decoding a small cluster. Freed when the thread ends. */
struct dctx {
    ZSTD_DCtx *zstd;
    z_stream zlib;
    bool zlib_ready;
#if QCOW2_HAVE_LIBDEFLATE
    struct libdeflate_decompressor *ld;
#endif
};

static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;

static void dctx_free(void *p)
{
    struct dctx *d = p;

    if (d->zstd)
        ZSTD_freeDCtx(d->zstd);
    if (d->zlib_ready)
        inflateEnd(&d->zlib);
#if QCOW2_HAVE_LIBDEFLATE
    if (d->ld)
        libdeflate_free_decompressor(d->ld);
#endif
    free(d);
}

static void dctx_key_init(void)
{
    (void)pthread_key_create(&dctx_key, dctx_free);
}

static struct dctx *dctx_get(void)
{
    struct dctx *d;

    pthread_once(&dctx_once, dctx_key_init);
    d = pthread_getspecific(dctx_key);
    if (!d) {
        d = calloc(1, sizeof(*d));
        if (d && pthread_setspecific(dctx_key, d)) {
            free(d);
            d = NULL;
        }
    }
    return d;
}

static int inflate_cluster(const void *src, size_t slen, void *dst, size_t dlen)
{
    struct dctx *d = dctx_get();
    z_stream *z;
    int ret;

    if (!d)
        return -ENOMEM;
#if QCOW2_HAVE_LIBDEFLATE
    /* libdeflate inflates a whole buffer two to three times faster than
     * zlib. It reads only what the stream needs, so the bytes after it up
     * to the sector end do not matter, and it wants exactly dlen bytes out.
     * A stream it refuses (one that goes on past the cluster, which QEMU
     * accepts) is left to zlib below, which stops at a full cluster. */
    if (!d->ld)
        d->ld = libdeflate_alloc_decompressor();
    if (d->ld && libdeflate_deflate_decompress(d->ld, src, slen, dst, dlen,
                                               NULL) == LIBDEFLATE_SUCCESS)
        return 0;
#endif
    z = &d->zlib;
    if (!d->zlib_ready) {
        memset(z, 0, sizeof(*z));
        if (inflateInit2(z, -15) != Z_OK)
            return -ENOMEM;
        d->zlib_ready = true;
    } else if (inflateReset(z) != Z_OK) {
        return -EIO;
    }
    z->next_in = (Bytef *)src;
    z->avail_in = (uInt)slen;
    z->next_out = dst;
    z->avail_out = (uInt)dlen;
    ret = inflate(z, Z_FINISH);
    size_t got = dlen - z->avail_out;
    /* Z_BUF_ERROR with a full output is fine: trailing bytes are not ours */
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) &&
        got == dlen)
        return 0;
    return -EIO;
}

static int zstd_cluster(const void *src, size_t slen, void *dst, size_t dlen)
{
    struct dctx *d = dctx_get();
    ZSTD_inBuffer in = { src, slen, 0 };
    ZSTD_outBuffer out = { dst, dlen, 0 };

    if (!d)
        return -ENOMEM;
    if (!d->zstd && !(d->zstd = ZSTD_createDCtx()))
        return -ENOMEM;
    ZSTD_DCtx_reset(d->zstd, ZSTD_reset_session_only);
    for (;;) {
        size_t in0 = in.pos, out0 = out.pos;
        size_t r = ZSTD_decompressStream(d->zstd, &out, &in);
        if (ZSTD_isError(r))
            return -EIO;
        if (out.pos == dlen)
            return 0;
        if (r == 0 || (in.pos == in0 && out.pos == out0))
            return -EIO;        /* frame ended short, or no progress */
    }
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
