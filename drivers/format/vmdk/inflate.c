/*
 * Reading compressed grains: a pool of inflate contexts so that parallel
 * readers share no buffer, grain markers, zlib or libdeflate, and a one-grain
 * cache for reads of part of a grain. Which grain is compressed where is
 * grain-table.c's business; compressing new grains is stream.c's.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#if VMDK_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#define ZCTX_KEEP 8u                    /* idle inflate contexts kept */

/* What one reader needs to inflate grains: taken from a pool so that
 * parallel reads of compressed grains share no buffer. */
struct vmdk_zctx {
    struct vmdk_zctx *next;
    uint8_t *cbuf;              /* marker and compressed grain, cbuf_len */
    uint8_t *grain;             /* a whole grain, for reads of part of one */
#if VMDK_HAVE_LIBDEFLATE
    struct libdeflate_decompressor *d;
#endif
};

static void zctx_free(struct vmdk_zctx *z)
{
    if (!z)
        return;
#if VMDK_HAVE_LIBDEFLATE
    if (z->d)
        libdeflate_free_decompressor(z->d);
#endif
    free(z->cbuf);
    free(z->grain);
    free(z);
}

/* An inflate context from the pool, or a new one; NULL when out of memory. */
struct vmdk_zctx *vmdk_zctx_get(struct vmdk_sparse *s)
{
    struct vmdk_zctx *z;

    pthread_mutex_lock(&s->zlock);
    z = s->zfree;
    if (z) {
        s->zfree = z->next;
        s->zfree_n--;
    }
    pthread_mutex_unlock(&s->zlock);
    if (z)
        return z;
    z = calloc(1, sizeof(*z));
    if (!z || !(z->cbuf = malloc(s->cbuf_len)))
        goto out_free;
#if VMDK_HAVE_LIBDEFLATE
    if (!(z->d = libdeflate_alloc_decompressor()))
        goto out_free;
#endif
    return z;

out_free:
    zctx_free(z);
    return NULL;
}

void vmdk_zctx_put(struct vmdk_sparse *s, struct vmdk_zctx *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&s->zlock);
    if (s->zfree_n < ZCTX_KEEP) {
        z->next = s->zfree;
        s->zfree = z;
        s->zfree_n++;
        z = NULL;
    }
    pthread_mutex_unlock(&s->zlock);
    zctx_free(z);
}

void vmdk_inflate_free(struct vmdk_sparse *s)
{
    free(s->zcache);
    while (s->zfree) {
        struct vmdk_zctx *z = s->zfree;
        s->zfree = z->next;
        zctx_free(z);
    }
}

/* Inflate one zlib stream (trailing bytes ignored) into dst; *got is the
 * size it expanded to. */
static int inflate_grain(struct vmdk_zctx *z, const uint8_t *src, size_t src_len,
                         uint8_t *dst, size_t dst_len, size_t *got)
{
#if VMDK_HAVE_LIBDEFLATE
    /* two to three times faster than zlib; bound by this on reads */
    return libdeflate_zlib_decompress(z->d, src, src_len, dst, dst_len, got)
           == LIBDEFLATE_SUCCESS ? 0 : -EIO;
#else
    uLongf out_len = (uLongf)dst_len;
    uLong in_len = (uLong)src_len;

    (void)z;
    if (uncompress2(dst, &out_len, src, &in_len) != Z_OK)
        return -EIO;
    *got = out_len;
    return 0;
#endif
}

/* Read the marker and compressed grain at off in one go when it is no
 * longer than the grains before it, else in two; *clen is the data size. */
static int read_marked(struct vmdk_sparse *s, struct vmdk_zctx *z, uint64_t off,
                       uint64_t *clen)
{
    uint64_t hint = __atomic_load_n(&s->clen_hint, __ATOMIC_RELAXED);
    uint64_t want = bd_align_up(12 + hint + hint / 16 + BD_SECTOR, BD_SECTOR);
    int ret;

    if (want > s->cbuf_len)
        want = s->cbuf_len;
    if (want > s->file_size - off)
        want = s->file_size - off;
    if (want < 12)
        return vmdk_sparse_eio(s, "grain marker", off);
    if ((ret = bd_pread(s->file, z->cbuf, want, off)) < 0)
        return ret;
    *clen = bd_le32(z->cbuf + 8);
    if (*clen == 0 || *clen > s->cbuf_len - 12)
        return vmdk_sparse_eio(s, "grain marker", off);
    if (12 + *clen > want &&
        (ret = vmdk_sparse_file_read(s, z->cbuf + want, 12 + *clen - want,
                                     off + want, "compressed grain")) < 0)
        return ret;
    if (*clen != hint)
        __atomic_store_n(&s->clen_hint, (uint32_t)*clen, __ATOMIC_RELAXED);
    return 0;
}

/* Decompress the grain stored at file offset off into dst (one grain). */
int vmdk_grain_inflate(struct vmdk_sparse *s, struct vmdk_zctx *z, uint64_t off,
                       uint8_t *dst)
{
    const uint8_t *data = z->cbuf;
    uint64_t clen = 0;
    size_t got;
    int ret;

    if (off >= s->file_size)
        return vmdk_sparse_eio(s, "compressed grain", off);
    if (s->markers) {
        if ((ret = read_marked(s, z, off, &clen)) < 0)
            return ret;
        data = z->cbuf + 12;
    } else {
        clen = s->file_size - off;
        if (clen > s->cbuf_len)
            clen = s->cbuf_len;
        if ((ret = bd_pread(s->file, z->cbuf, clen, off)) < 0)
            return ret;
    }
    if (inflate_grain(z, data, clen, dst, s->grain, &got) < 0)
        return vmdk_sparse_eio(s, "compressed grain does not inflate", off);
    memset(dst + got, 0, s->grain - got);
    return 0;
}

/* n bytes from in of compressed grain g (at file offset off): small reads
 * in sequence come one after another from the grain last decompressed. */
int vmdk_grain_inflate_part(struct vmdk_sparse *s, struct vmdk_zctx *z, uint64_t g,
                            uint64_t off, uint8_t *p, uint64_t in, uint64_t n)
{
    uint8_t *swap;
    int ret;

    pthread_mutex_lock(&s->zlock);
    if (s->zcache_idx == g + 1) {
        memcpy(p, s->zcache + in, n);
        pthread_mutex_unlock(&s->zlock);
        return 0;
    }
    pthread_mutex_unlock(&s->zlock);
    if (!z->grain && !(z->grain = malloc(s->grain)))
        return -ENOMEM;
    if ((ret = vmdk_grain_inflate(s, z, off, z->grain)) < 0)
        return ret;
    memcpy(p, z->grain + in, n);
    /* keep it by trading buffers with the cache, not by copying */
    pthread_mutex_lock(&s->zlock);
    swap = s->zcache;
    s->zcache = z->grain;
    s->zcache_idx = g + 1;
    z->grain = swap;
    pthread_mutex_unlock(&s->zlock);
    return 0;
}

void vmdk_zcache_forget(struct vmdk_sparse *s, uint64_t g)
{
    if (s->zcache_idx == g + 1)
        s->zcache_idx = 0;
}
