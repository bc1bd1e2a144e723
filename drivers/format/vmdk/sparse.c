/*
 * The hosted sparse extent as an object: decoding the VMDK4 "KDMV" header
 * (versions 1-3) and the read-only COWD (VMFS sparse) one, open, close and
 * what vmdk.c asks about an extent. Tables, reads, writes, streams, checks
 * and creation live in grain-table.c, sparse-*.c, inflate.c and stream.c.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_GRAIN_SECTORS   (1u << 16)      /* 32 MiB grains */
#define MAX_GTES            (1u << 16)
#define MAX_GD_ENTRIES      (1u << 22)      /* 16 MiB of directory */
#define COWD_GTES           4096u

/* ---- header decoding ----------------------------------------------------- */

static int decode_vmdk4(struct vmdk_sparse *s, const uint8_t *h,
                        struct bd_err *err)
{
    uint64_t cap_sec = bd_le64(h + 12), grain_sec = bd_le64(h + 20);
    uint64_t gd_sec = bd_le64(h + 56), rgd_sec = bd_le64(h + 48);
    uint64_t desc_sec = bd_le64(h + 28), desc_cnt = bd_le64(h + 36);
    uint64_t over_sec = bd_le64(h + 64);

    s->version = bd_le32(h + 4);
    s->flags = bd_le32(h + 8);
    s->gtes = bd_le32(h + 44);
    if (s->version < 1 || s->version > 3)
        return bd_err_set(err, ENOTSUP, "%s: vmdk sparse extent version %" PRIu32
                          " is not supported", s->name, s->version);
    /* some writers set the flag but leave the bytes zero; only a changed
     * sequence means a text-mode copy (which also shifted everything after) */
    if ((s->flags & VMDK4_FLAG_NL_DETECT) && (h[73] | h[74] | h[75] | h[76]) &&
        (h[73] != '\n' || h[74] != ' ' || h[75] != '\r' || h[76] != '\n'))
        return bd_err_set(err, EINVAL, "%s: header line-end bytes are damaged; "
                          "the file was probably copied in text mode", s->name);
    if (grain_sec == 0 || grain_sec > MAX_GRAIN_SECTORS || !bd_is_pow2(grain_sec))
        return bd_err_set(err, EINVAL, "%s: bad grain size of %" PRIu64
                          " sectors", s->name, grain_sec);
    if (s->gtes == 0 || s->gtes > MAX_GTES)
        return bd_err_set(err, EINVAL, "%s: bad grain table size of %" PRIu32
                          " entries", s->name, s->gtes);
    if (cap_sec > (UINT64_MAX >> 12))
        return bd_err_set(err, EINVAL, "%s: absurd capacity of %" PRIu64
                          " sectors", s->name, cap_sec);
    s->compressed = s->flags & VMDK4_FLAG_COMPRESSED;
    s->markers = s->flags & VMDK4_FLAG_MARKERS;
    s->zero_grain = s->version >= 2 && (s->flags & VMDK4_FLAG_ZERO_GRAIN);
    if (s->compressed && bd_le16(h + 77) != VMDK4_COMPRESS_DEFLATE)
        return bd_err_set(err, ENOTSUP, "%s: compression algorithm %u is not "
                          "supported", s->name, bd_le16(h + 77));
    s->capacity = cap_sec * BD_SECTOR;
    s->grain = grain_sec * BD_SECTOR;
    s->gd_at_end = gd_sec == VMDK4_GD_AT_END;
    if (!s->gd_at_end && gd_sec > (UINT64_MAX >> 10))
        return bd_err_set(err, EINVAL, "%s: bad grain directory offset", s->name);
    s->gd_off = gd_sec * BD_SECTOR;
    s->rgd_off = (s->flags & VMDK4_FLAG_RGD) && rgd_sec && rgd_sec < (UINT64_MAX >> 10)
                 ? rgd_sec * BD_SECTOR : 0;
    s->overhead = over_sec < (UINT64_MAX >> 10) ? over_sec * BD_SECTOR : 0;
    if (desc_sec && desc_cnt && desc_sec < (UINT64_MAX >> 10) &&
        desc_cnt <= VMDK_DESC_MAX / BD_SECTOR) {
        s->desc_off = desc_sec * BD_SECTOR;
        s->desc_len = desc_cnt * BD_SECTOR;
    }
    return 0;
}

static int decode_cowd(struct vmdk_sparse *s, const uint8_t *h,
                       struct bd_err *err)
{
    uint32_t grain_sec = bd_le32(h + 16);

    /* COWD: magic, version, flags, capacity, grain, gd sector, gd entries */
    s->cowd = true;
    s->version = bd_le32(h + 4);
    s->flags = bd_le32(h + 8);
    if (grain_sec == 0 || grain_sec > MAX_GRAIN_SECTORS || !bd_is_pow2(grain_sec))
        return bd_err_set(err, EINVAL, "%s: bad grain size of %" PRIu32
                          " sectors", s->name, grain_sec);
    s->capacity = (uint64_t)bd_le32(h + 12) * BD_SECTOR;
    s->grain = (uint64_t)grain_sec * BD_SECTOR;
    s->gd_off = (uint64_t)bd_le32(h + 20) * BD_SECTOR;
    s->gtes = COWD_GTES;
    s->cowd_gd_entries = bd_le32(h + 24);
    return 0;
}

/* Directory size from the capacity; checks the directory fits the file. */
static int size_tables(struct vmdk_sparse *s, struct bd_err *err)
{
    uint64_t n;

    s->gt_span = s->grain * s->gtes;
    s->gt_bytes = bd_align_up((uint64_t)s->gtes * 4, BD_SECTOR);
    n = s->capacity / s->gt_span + (s->capacity % s->gt_span != 0);
    if (n > MAX_GD_ENTRIES)
        return bd_err_set(err, EFBIG, "%s: grain directory too large (%" PRIu64
                          " entries); the header is corrupt", s->name, n);
    s->gd_entries = (uint32_t)n;
    if (s->cowd && s->cowd_gd_entries < s->gd_entries)
        s->gd_entries = s->cowd_gd_entries;
    return 0;
}

static int sparse_setup(struct vmdk_sparse *s, struct bd_err *err)
{
    int ret = size_tables(s, err);

    if (ret < 0)
        return ret;
    pthread_mutex_init(&s->gt_lock, NULL);
    pthread_mutex_init(&s->zlock, NULL);
    s->locks_ready = true;
    s->gt = calloc(s->gd_entries ? s->gd_entries : 1, sizeof(*s->gt));
    s->gt_empty = calloc(s->gd_entries ? s->gd_entries : 1, 1);
    if (!s->gt || !s->gt_empty)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->name);
    if (s->compressed) {
        s->cbuf_len = compressBound((uLong)s->grain) + 2 * BD_SECTOR;
        s->clen_hint = (uint32_t)s->grain;
        if (s->writable && !(s->cbuf = malloc(s->cbuf_len)))
            return bd_err_set(err, ENOMEM, "%s: out of memory", s->name);
    }
    return 0;
}

/* ---- open / close ------------------------------------------------------- */

int vmdk_sparse_open(struct bd_node *file, const char *name, bool writable,
                     struct vmdk_sparse **out, struct bd_err *err)
{
    struct vmdk_sparse *s = calloc(1, sizeof(*s));
    int64_t fsize;
    int ret;

    *out = NULL;
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return bd_err_set(err, ENOMEM, "%s: out of memory", name);
    }
    s->file = file;
    s->writable = writable;
    fsize = bd_size(file);
    if (fsize < 0) {
        ret = bd_err_set(err, (int)-fsize, "%s: %s", name, strerror((int)-fsize));
        goto out_free;
    }
    s->file_size = (uint64_t)fsize;
    if (s->file_size < BD_SECTOR) {
        ret = bd_err_set(err, EINVAL, "%s: file too short for a sparse extent", name);
        goto out_free;
    }
    ret = bd_pread(file, s->header, BD_SECTOR, 0);
    if (ret < 0) {
        bd_err_set(err, -ret, "%s: reading the header: %s", name, strerror(-ret));
        goto out_free;
    }
    if (bd_le32(s->header) == VMDK4_MAGIC)
        ret = decode_vmdk4(s, s->header, err);
    else if (bd_le32(s->header) == VMDK3_MAGIC)
        ret = decode_cowd(s, s->header, err);
    else
        ret = bd_err_set(err, EINVAL, "%s: not a vmdk sparse extent (bad magic)",
                         name);
    if (ret < 0)
        goto out_free;
    if (s->gd_at_end && (ret = vmdk_stream_read_footer(s, err)) < 0)
        goto out_free;
    if ((ret = sparse_setup(s, err)) < 0)
        goto out_free;
    if ((ret = vmdk_gd_read(s, s->gd_off, &s->gd, "grain directory", err)) < 0)
        goto out_free;
    if (s->rgd_off &&
        (ret = vmdk_gd_read(s, s->rgd_off, &s->rgd, "redundant grain directory",
                            err)) < 0)
        goto out_free;
    s->alloc_off = bd_align_up(s->file_size, BD_SECTOR);
    if (writable && s->compressed && s->markers && s->gd_at_end &&
        (ret = vmdk_stream_open_append(s, err)) < 0)
        goto out_free;
    *out = s;
    return 0;

out_free:
    vmdk_sparse_close(s);
    return ret;
}

int vmdk_sparse_close(struct vmdk_sparse *s)
{
    int ret = 0;

    if (!s)
        return 0;
    ret = vmdk_stream_commit_all(s);
    if (ret == 0)
        ret = vmdk_sparse_flush(s);
    if (ret < 0)
        log_err("%s: could not finish the stream image: %s", s->name,
                strerror(-ret));
    if (s->gt) {
        vmdk_gt_evict(s);
        free(s->gt);
    }
    free(s->gt_empty);
    free(s->gd);
    free(s->rgd);
    free(s->cbuf);
    vmdk_inflate_free(s);
    if (s->locks_ready) {
        pthread_mutex_destroy(&s->gt_lock);
        pthread_mutex_destroy(&s->zlock);
    }
    for (unsigned i = 0; i < VMDK_PEND_SLOTS; i++) {
        free(s->pend[i].buf);
        free(s->pend[i].map);
    }
    free(s->scratch);
    free(s->name);
    free(s);
    return ret;
}

uint64_t vmdk_sparse_capacity(const struct vmdk_sparse *s)
{
    return s->capacity;
}

uint64_t vmdk_sparse_grain_size(const struct vmdk_sparse *s)
{
    return s->grain;
}

void vmdk_sparse_desc_area(const struct vmdk_sparse *s, uint64_t *off,
                           uint64_t *len)
{
    *off = s->desc_off;
    *len = s->desc_len;
    if (s->desc_len && !ovf_range_ok(s->desc_off, s->desc_len, s->file_size))
        *len = 0;
}

void vmdk_sparse_describe(const struct vmdk_sparse *s, char *buf, size_t len)
{
    if (s->cowd) {
        snprintf(buf, len, "COWD, grain %" PRIu64 " KiB", s->grain / 1024);
        return;
    }
    snprintf(buf, len, "VMDK4 version %" PRIu32 ", grain %" PRIu64 " KiB%s%s%s",
             s->version, s->grain / 1024, s->compressed ? ", compressed" : "",
             s->rgd_off ? ", redundant directory" : "",
             s->zero_grain ? ", zeroed grains" : "");
}

/* State for a stream image just written by create: header h, nothing after
 * the overhead yet. The caller marks it dirty and closes it to write the
 * empty directory, footer and end-of-stream marker. */
int vmdk_sparse_new_stream(struct bd_node *file, const uint8_t *h,
                           uint64_t overhead, struct vmdk_sparse **out,
                           struct bd_err *err)
{
    struct vmdk_sparse *s = calloc(1, sizeof(*s));
    int ret;

    if (!s || !(s->name = strdup(file->name ? file->name : "vmdk"))) {
        free(s);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    s->file = file;
    s->writable = true;
    s->file_size = overhead;
    memcpy(s->header, h, BD_SECTOR);
    if ((ret = decode_vmdk4(s, h, err)) < 0 || (ret = sparse_setup(s, err)) < 0) {
        vmdk_sparse_close(s);
        return ret;
    }
    s->gd = calloc(s->gd_entries ? s->gd_entries : 1, sizeof(*s->gd));
    if (!s->gd) {
        vmdk_sparse_close(s);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    s->keep_tables = true;
    s->alloc_off = overhead;
    *out = s;
    return 0;
}
