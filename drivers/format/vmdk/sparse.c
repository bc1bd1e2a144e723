/*
 * Hosted sparse extents: the VMDK4 "KDMV" header (versions 1-3) with its
 * grain directory, grain tables and redundant copies, streamOptimized
 * compressed grains with markers and a footer, and read-only COWD (VMFS
 * sparse) extents. Offsets here are relative to the extent; vmdk.c maps the
 * guest disk onto extents, owns the descriptor and keeps writers exclusive.
 */
#include "vmdk.h"
#include "overflow.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#if VMDK_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

/* VMDK4 header flags (Virtual Disk Format 1.1/5.0, hosted sparse extent) */
#define FLAG_NL_DETECT      (1u << 0)
#define FLAG_RGD            (1u << 1)
#define FLAG_ZERO_GRAIN     (1u << 2)
#define FLAG_COMPRESSED     (1u << 16)
#define FLAG_MARKERS        (1u << 17)
#define COMPRESS_DEFLATE    1u
#define GD_AT_END           UINT64_MAX

#define MARKER_EOS          0u
#define MARKER_GT           1u
#define MARKER_GD           2u
#define MARKER_FOOTER       3u

#define MAX_GRAIN_SECTORS   (1u << 16)      /* 32 MiB grains */
#define MAX_GTES            (1u << 16)
#define MAX_GD_ENTRIES      (1u << 22)      /* 16 MiB of directory */
#define MAX_STREAM_TABLES   (256u << 20)    /* bytes of tables a stream writer keeps */
#define COWD_GTES           4096u
#define PEND_SLOTS          8u              /* stream grains being filled */
#define GT_CACHE_BYTES      (32u << 20)     /* tables kept before eviction */
#define ZCTX_KEEP           8u              /* idle inflate contexts kept */

/* What one reader needs to inflate grains: taken from a pool so that
 * parallel reads of compressed grains share no buffer. */
struct zctx {
    struct zctx *next;
    uint8_t *cbuf;              /* marker and compressed grain, cbuf_len */
    uint8_t *grain;             /* a whole grain, for reads of part of one */
#if VMDK_HAVE_LIBDEFLATE
    struct libdeflate_decompressor *d;
#endif
};

struct vmdk_sparse {
    struct bd_node *file;
    char *name;
    bool cowd;
    uint32_t cowd_gd_entries;   /* COWD: directory size from the header */
    uint32_t version, flags;
    uint64_t capacity;          /* bytes */
    uint64_t grain;             /* bytes */
    uint32_t gtes;              /* entries per grain table */
    uint64_t gt_bytes;          /* on-disk table size, rounded to sectors */
    uint64_t gt_span;           /* guest bytes one table covers */
    uint32_t gd_entries;
    uint64_t gd_off, rgd_off;   /* bytes; rgd_off 0 when absent */
    uint64_t overhead;          /* bytes before the first grain */
    uint64_t desc_off, desc_len;
    uint32_t *gd, *rgd;
    uint32_t **gt;              /* cached tables, by directory index */
    uint8_t *gt_empty;          /* 1: table read and all zero (kept over eviction) */
    size_t gt_loaded;
    bool compressed, markers, zero_grain;
    bool gd_at_end;             /* stream: tables live at the end of file */
    bool keep_tables;           /* tables in memory are the truth */
    bool writable;
    bool dirty;                 /* stream tail must be rewritten */
    uint64_t file_size;
    uint64_t alloc_off;         /* next grain or table goes here */
    uint8_t header[512];        /* raw header, the footer repeats it */
    /* readers run in parallel: gt_lock guards gt, gt_empty and gt_loaded
     * (held while a table loads), zlock the grain cache and the pool */
    pthread_mutex_t gt_lock, zlock;
    bool locks_ready;
    uint8_t *zcache;            /* last grain read in part, decompressed */
    uint64_t zcache_idx;        /* its index + 1, 0 = none */
    struct zctx *zfree;         /* idle inflate contexts */
    unsigned zfree_n;
    uint32_t clen_hint;         /* size of the last compressed grain read */
    uint8_t *cbuf;              /* writer: marker and compressed grain */
    size_t cbuf_len;            /* room for the largest valid grain */
    /* stream: new grains written in pieces, committed once full (or when
     * a slot is needed, or at close); several so reordered writes work */
    struct {
        uint8_t *buf;
        uint64_t *map;          /* sectors of buf written */
        uint64_t idx;           /* grain index */
        uint64_t age;
        bool valid;
    } pend[PEND_SLOTS];
    uint64_t pend_clock;
    uint8_t *scratch;           /* one grain, for copy-on-write */
    unsigned long io_warned;
};

/* True the first time only: parallel readers may fail at once. */
static bool first_warning(struct vmdk_sparse *s)
{
    return __atomic_fetch_add(&s->io_warned, 1, __ATOMIC_RELAXED) == 0;
}

static int sparse_eio(struct vmdk_sparse *s, const char *what, uint64_t off)
{
    if (first_warning(s))
        log_err("%s: %s at offset %" PRIu64 " is beyond the end of the file "
                "or corrupt", s->name, what, off);
    return -EIO;
}

static int file_read(struct vmdk_sparse *s, void *buf, uint64_t len,
                     uint64_t off, const char *what)
{
    if (!ovf_range_ok(off, len, s->file_size))
        return sparse_eio(s, what, off);
    return bd_pread(s->file, buf, len, off);
}

/* Write, first extending the file: protocol nodes under a format do not
 * grow on their own. */
static int file_extend(struct vmdk_sparse *s, uint64_t end)
{
    struct bd_err e = {0};
    int ret;

    if (end <= s->file_size)
        return 0;
    ret = bd_truncate(s->file, end, BD_PREALLOC_OFF, &e);
    if (ret < 0)
        return ret;
    s->file_size = end;
    return 0;
}

static int file_write(struct vmdk_sparse *s, const void *buf, uint64_t len,
                      uint64_t off)
{
    int ret = file_extend(s, off + len);

    return ret < 0 ? ret : bd_pwrite(s->file, buf, len, off, 0);
}

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
    if ((s->flags & FLAG_NL_DETECT) && (h[73] | h[74] | h[75] | h[76]) &&
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
    s->compressed = s->flags & FLAG_COMPRESSED;
    s->markers = s->flags & FLAG_MARKERS;
    s->zero_grain = s->version >= 2 && (s->flags & FLAG_ZERO_GRAIN);
    if (s->compressed && bd_le16(h + 77) != COMPRESS_DEFLATE)
        return bd_err_set(err, ENOTSUP, "%s: compression algorithm %u is not "
                          "supported", s->name, bd_le16(h + 77));
    s->capacity = cap_sec * BD_SECTOR;
    s->grain = grain_sec * BD_SECTOR;
    s->gd_at_end = gd_sec == GD_AT_END;
    if (!s->gd_at_end && gd_sec > (UINT64_MAX >> 10))
        return bd_err_set(err, EINVAL, "%s: bad grain directory offset", s->name);
    s->gd_off = gd_sec * BD_SECTOR;
    s->rgd_off = (s->flags & FLAG_RGD) && rgd_sec && rgd_sec < (UINT64_MAX >> 10)
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

static int read_dir(struct vmdk_sparse *s, uint64_t off, uint32_t **out,
                    const char *what, struct bd_err *err)
{
    size_t bytes = (size_t)s->gd_entries * 4;
    uint8_t *raw;
    uint32_t *d;
    int ret;

    d = calloc(s->gd_entries ? s->gd_entries : 1, sizeof(*d));
    if (!d)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->name);
    *out = d;
    if (!bytes)
        return 0;
    if (!ovf_range_ok(off, bytes, s->file_size))
        return bd_err_set(err, EINVAL, "%s: %s at offset %" PRIu64
                          " lies beyond the end of the file", s->name, what, off);
    raw = malloc(bytes);
    if (!raw)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->name);
    ret = bd_pread(s->file, raw, bytes, off);
    if (ret < 0) {
        free(raw);
        return bd_err_set(err, -ret, "%s: reading the %s: %s", s->name, what,
                          strerror(-ret));
    }
    for (uint32_t i = 0; i < s->gd_entries; i++)
        d[i] = bd_le32(raw + (size_t)i * 4);
    free(raw);
    return 0;
}

/* streamOptimized with the directory at the end: the footer holds the header
 * copy that has the real gdOffset (5.0 technote, stream-optimized format). */
static int read_footer(struct vmdk_sparse *s, struct bd_err *err)
{
    uint8_t f[1536];
    int ret;

    if (s->file_size < 1536 + BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: stream image has no footer "
                          "(truncated file?)", s->name);
    ret = bd_pread(s->file, f, sizeof(f), s->file_size - 1536);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: reading the footer: %s", s->name,
                          strerror(-ret));
    if (bd_le32(f + 8) != 0 || bd_le32(f + 12) != MARKER_FOOTER ||
        bd_le32(f + 512) != VMDK4_MAGIC || bd_le32(f + 1024 + 12) != MARKER_EOS ||
        bd_le32(f + 1024 + 8) != 0)
        return bd_err_set(err, EINVAL, "%s: the footer of the stream image is "
                          "missing or damaged (truncated file?)", s->name);
    uint64_t gd_sec = bd_le64(f + 512 + 56);
    if (gd_sec == GD_AT_END || gd_sec > (UINT64_MAX >> 10))
        return bd_err_set(err, EINVAL, "%s: the footer has no grain directory",
                          s->name);
    s->gd_off = gd_sec * BD_SECTOR;
    return 0;
}

/* ---- grain tables ------------------------------------------------------ */

static void evict_tables(struct vmdk_sparse *s)
{
    for (uint32_t i = 0; i < s->gd_entries; i++) {
        free(s->gt[i]);
        s->gt[i] = NULL;
    }
    s->gt_loaded = 0;
}

/* The table for directory entry gi; *t = NULL when none is allocated. */
static int get_table(struct vmdk_sparse *s, uint32_t gi, uint32_t **t)
{
    uint8_t *raw;
    uint32_t *tbl;
    uint64_t off;
    int ret;

    *t = s->gt[gi];
    if (*t || s->keep_tables || s->gd[gi] == 0)
        return 0;
    if (s->gt_loaded * s->gtes * 4 >= GT_CACHE_BYTES)
        evict_tables(s);
    off = (uint64_t)s->gd[gi] * BD_SECTOR;
    tbl = malloc((size_t)s->gtes * 4);
    raw = malloc((size_t)s->gtes * 4);
    if (!tbl || !raw) {
        free(tbl);
        free(raw);
        return -ENOMEM;
    }
    ret = file_read(s, raw, (uint64_t)s->gtes * 4, off, "grain table");
    if (ret < 0) {
        free(tbl);
        free(raw);
        return ret;
    }
    bool empty = true;
    for (uint32_t i = 0; i < s->gtes; i++) {
        tbl[i] = bd_le32(raw + (size_t)i * 4);
        empty = empty && tbl[i] == 0;
    }
    free(raw);
    s->gt_empty[gi] = empty;
    s->gt[gi] = tbl;
    s->gt_loaded++;
    *t = tbl;
    return 0;
}

static int get_entry(struct vmdk_sparse *s, uint64_t g, uint32_t *gte)
{
    uint32_t *t;
    int ret;

    if (g / s->gtes >= s->gd_entries) {
        *gte = 0;       /* COWD: a directory shorter than the capacity */
        return 0;
    }
    ret = get_table(s, (uint32_t)(g / s->gtes), &t);

    if (ret < 0)
        return ret;
    *gte = t ? t[g % s->gtes] : 0;
    return 0;
}

static enum vmdk_grain_state entry_state(const struct vmdk_sparse *s,
                                         uint32_t gte)
{
    if (gte == 0)
        return VMDK_GRAIN_UNALLOCATED;
    if (gte == 1 && s->zero_grain)
        return VMDK_GRAIN_ZERO;
    return s->compressed ? VMDK_GRAIN_COMPRESSED : VMDK_GRAIN_DATA;
}

/* ---- open / close ------------------------------------------------------- */

/* Stream append point: after the last grain (all metadata behind it is
 * rewritten from memory). */
static int find_stream_end(struct vmdk_sparse *s)
{
    uint64_t end = s->overhead, last = 0;

    if (end < s->desc_off + s->desc_len)
        end = s->desc_off + s->desc_len;
    if (end < BD_SECTOR)
        end = BD_SECTOR;
    for (uint32_t gi = 0; gi < s->gd_entries; gi++) {
        uint32_t *t = s->gt[gi];
        for (uint32_t i = 0; t && i < s->gtes; i++) {
            if (entry_state(s, t[i]) == VMDK_GRAIN_COMPRESSED && t[i] > last)
                last = t[i];
        }
    }
    if (last) {
        uint8_t m[12];
        uint64_t off = last * BD_SECTOR;
        int ret = file_read(s, m, sizeof(m), off, "grain marker");
        if (ret < 0)
            return ret;
        uint64_t e = off + 12 + bd_le32(m + 8);
        if (e > end)
            end = e;
    }
    s->alloc_off = bd_align_up(end, BD_SECTOR);
    return 0;
}

static int load_all_tables(struct vmdk_sparse *s, struct bd_err *err)
{
    uint64_t used = 0;

    for (uint32_t gi = 0; gi < s->gd_entries; gi++)
        used += s->gd[gi] ? (uint64_t)s->gtes * 4 : 0;
    if (used > MAX_STREAM_TABLES)
        return bd_err_set(err, EFBIG, "%s: too many grain tables to append to "
                          "this stream image (%" PRIu64 " MiB); mount it with -r",
                          s->name, used >> 20);
    for (uint32_t gi = 0; gi < s->gd_entries; gi++) {
        uint32_t *t;
        int ret = get_table(s, gi, &t);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: reading grain table %" PRIu32 ": %s",
                              s->name, gi, strerror(-ret));
    }
    s->keep_tables = true;
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
    if (s->gd_at_end && (ret = read_footer(s, err)) < 0)
        goto out_free;
    if ((ret = sparse_setup(s, err)) < 0)
        goto out_free;
    if ((ret = read_dir(s, s->gd_off, &s->gd, "grain directory", err)) < 0)
        goto out_free;
    if (s->rgd_off &&
        (ret = read_dir(s, s->rgd_off, &s->rgd, "redundant grain directory", err)) < 0)
        goto out_free;
    s->alloc_off = bd_align_up(s->file_size, BD_SECTOR);
    if (writable && s->compressed && s->markers && s->gd_at_end) {
        if ((ret = load_all_tables(s, err)) < 0)
            goto out_free;
        ret = find_stream_end(s);
        if (ret < 0) {
            bd_err_set(err, -ret, "%s: cannot find the end of the stream", name);
            goto out_free;
        }
    }
    *out = s;
    return 0;

out_free:
    vmdk_sparse_close(s);
    return ret;
}

static int commit_all_pending(struct vmdk_sparse *s);
static void zctx_free(struct zctx *z);

int vmdk_sparse_close(struct vmdk_sparse *s)
{
    int ret = 0;

    if (!s)
        return 0;
    ret = commit_all_pending(s);
    if (ret == 0)
        ret = vmdk_sparse_flush(s);
    if (ret < 0)
        log_err("%s: could not finish the stream image: %s", s->name,
                strerror(-ret));
    if (s->gt) {
        evict_tables(s);
        free(s->gt);
    }
    free(s->gt_empty);
    free(s->gd);
    free(s->rgd);
    free(s->zcache);
    free(s->cbuf);
    while (s->zfree) {
        struct zctx *z = s->zfree;
        s->zfree = z->next;
        zctx_free(z);
    }
    if (s->locks_ready) {
        pthread_mutex_destroy(&s->gt_lock);
        pthread_mutex_destroy(&s->zlock);
    }
    for (unsigned i = 0; i < PEND_SLOTS; i++) {
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

/* ---- reading ------------------------------------------------------------ */

/* The slot filling grain g, or -1. */
static int pending_slot(const struct vmdk_sparse *s, uint64_t g)
{
    for (unsigned i = 0; i < PEND_SLOTS; i++) {
        if (s->pend[i].valid && s->pend[i].idx == g)
            return (int)i;
    }
    return -1;
}

static bool is_pending(const struct vmdk_sparse *s, uint64_t g)
{
    return pending_slot(s, g) >= 0;
}

/* No grain table covers grain g, and no pending grain lies in its span. */
static bool table_absent(const struct vmdk_sparse *s, uint64_t g)
{
    uint64_t gi = g / s->gtes;

    if (gi < s->gd_entries && !s->gt_empty[gi] &&
        (s->keep_tables ? s->gt[gi] != NULL : s->gd[gi] != 0))
        return false;
    for (unsigned i = 0; i < PEND_SLOTS; i++) {
        if (s->pend[i].valid && s->pend[i].idx / s->gtes == gi)
            return false;
    }
    return true;
}

static int status_locked(struct vmdk_sparse *s, uint64_t off, uint64_t len,
                         uint64_t *pnum, enum vmdk_grain_state *state,
                         uint64_t *file_off)
{
    uint64_t g = off / s->grain, in = off % s->grain, done = 0;
    enum vmdk_grain_state st0 = VMDK_GRAIN_UNALLOCATED;
    uint64_t foff0 = 0;

    if (off >= s->capacity) {
        *pnum = len;
        *state = VMDK_GRAIN_UNALLOCATED;
        return 0;
    }
    if (len > s->capacity - off)
        len = s->capacity - off;
    while (done < len) {
        enum vmdk_grain_state st;
        uint32_t gte;
        uint64_t foff = 0, n = s->grain - in;
        int ret;

        uint64_t step = 1;

        if (is_pending(s, g)) {
            st = VMDK_GRAIN_COMPRESSED;
        } else if (table_absent(s, g)) {
            /* a whole missing grain table at once: big holes stay cheap */
            st = VMDK_GRAIN_UNALLOCATED;
            step = s->gtes - g % s->gtes;
            n += (step - 1) * s->grain;
        } else {
            if ((ret = get_entry(s, g, &gte)) < 0)
                return ret;
            st = entry_state(s, gte);
            foff = (uint64_t)gte * BD_SECTOR + in;
        }
        if (done == 0) {
            st0 = st;
            foff0 = foff;
        } else if (st != st0 || st == VMDK_GRAIN_COMPRESSED ||
                   (st == VMDK_GRAIN_DATA && foff != foff0 + done)) {
            break;
        }
        done += n;
        g += step;
        in = 0;
        if (st0 == VMDK_GRAIN_COMPRESSED)
            break;
    }
    *pnum = done < len ? done : len;
    *state = st0;
    *file_off = foff0;
    return 0;
}

int vmdk_sparse_status(struct vmdk_sparse *s, uint64_t off, uint64_t len,
                       uint64_t *pnum, enum vmdk_grain_state *state,
                       uint64_t *file_off)
{
    pthread_mutex_lock(&s->gt_lock);
    int ret = status_locked(s, off, len, pnum, state, file_off);
    pthread_mutex_unlock(&s->gt_lock);
    return ret;
}

static void zctx_free(struct zctx *z)
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
static struct zctx *zctx_get(struct vmdk_sparse *s)
{
    struct zctx *z;

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

static void zctx_put(struct vmdk_sparse *s, struct zctx *z)
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

/* Inflate one zlib stream (trailing bytes ignored) into dst; *got is the
 * size it expanded to. */
static int inflate_grain(struct zctx *z, const uint8_t *src, size_t src_len,
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
static int read_marked(struct vmdk_sparse *s, struct zctx *z, uint64_t off,
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
        return sparse_eio(s, "grain marker", off);
    if ((ret = bd_pread(s->file, z->cbuf, want, off)) < 0)
        return ret;
    *clen = bd_le32(z->cbuf + 8);
    if (*clen == 0 || *clen > s->cbuf_len - 12)
        return sparse_eio(s, "grain marker", off);
    if (12 + *clen > want &&
        (ret = file_read(s, z->cbuf + want, 12 + *clen - want, off + want,
                         "compressed grain")) < 0)
        return ret;
    if (*clen != hint)
        __atomic_store_n(&s->clen_hint, (uint32_t)*clen, __ATOMIC_RELAXED);
    return 0;
}

/* Decompress the grain stored at file offset off into dst (one grain). */
static int read_compressed(struct vmdk_sparse *s, struct zctx *z, uint64_t off,
                           uint8_t *dst)
{
    const uint8_t *data = z->cbuf;
    uint64_t clen;
    size_t got;
    int ret;

    if (off >= s->file_size)
        return sparse_eio(s, "compressed grain", off);
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
        return sparse_eio(s, "compressed grain does not inflate", off);
    memset(dst + got, 0, s->grain - got);
    return 0;
}

/* n bytes from in of compressed grain g (at file offset off): small reads
 * in sequence come one after another from the grain last decompressed. */
static int read_part(struct vmdk_sparse *s, struct zctx *z, uint64_t g,
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
    if ((ret = read_compressed(s, z, off, z->grain)) < 0)
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

/* Compressed grains only read here, and readers share nothing but the table
 * cache and the grain cache, which have locks: many may run at once. */
int vmdk_sparse_pread(struct vmdk_sparse *s, void *buf, uint64_t len,
                      uint64_t off, const struct vmdk_fill *fill)
{
    struct zctx *z = NULL;
    uint8_t *p = buf;
    int ret = 0;

    while (len && ret == 0) {
        enum vmdk_grain_state st;
        uint64_t n, foff;

        if ((ret = vmdk_sparse_status(s, off, len, &n, &st, &foff)) < 0)
            break;
        switch (st) {
        case VMDK_GRAIN_UNALLOCATED:
            ret = vmdk_fill_read(fill, p, n, off);
            break;
        case VMDK_GRAIN_ZERO:
            memset(p, 0, n);
            break;
        case VMDK_GRAIN_DATA:
            ret = file_read(s, p, n, foff, "grain");
            break;
        case VMDK_GRAIN_COMPRESSED: {
            uint64_t g = off / s->grain, in = off % s->grain;
            int slot = pending_slot(s, g);
            if (slot >= 0) {
                memcpy(p, s->pend[slot].buf + in, n);
                break;
            }
            if (!z && !(z = zctx_get(s))) {
                ret = -ENOMEM;
                break;
            }
            /* a whole grain inflates straight into the caller's buffer */
            if (n == s->grain)
                ret = read_compressed(s, z, foff, p);
            else
                ret = read_part(s, z, g, foff - in, p, in, n);
            break;
        }
        }
        p += n;
        off += n;
        len -= n;
    }
    zctx_put(s, z);
    return ret;
}

/* ---- allocation and writing ------------------------------------------- */

static int put_le32_at(struct vmdk_sparse *s, uint64_t off, uint32_t v)
{
    uint8_t b[4];

    bd_put_le32(b, v);
    return file_write(s, b, 4, off);
}

/* Append space for len bytes; fails when the sector number would not fit
 * in a 32-bit table entry. */
static int alloc_space(struct vmdk_sparse *s, uint64_t len, uint64_t *off)
{
    uint64_t end;

    if (ovf_add_u64(s->alloc_off, len, &end) ||
        end / BD_SECTOR > UINT32_MAX)
        return -EFBIG;
    *off = s->alloc_off;
    s->alloc_off = bd_align_up(end, BD_SECTOR);
    return 0;
}

/* Make a zeroed grain table for directory entry gi (and its redundant copy). */
static int alloc_table(struct vmdk_sparse *s, uint32_t gi)
{
    uint32_t *t = calloc(s->gtes, sizeof(*t));
    uint64_t off, roff = 0;
    int ret;

    if (!t)
        return -ENOMEM;
    if (s->keep_tables) {
        /* stream tail: written out at flush */
        s->gt[gi] = t;
        s->gd[gi] = UINT32_MAX;     /* placeholder until the tail is written */
        s->dirty = true;
        return 0;
    }
    /* new space from extending the file reads as zeroes */
    if ((ret = alloc_space(s, s->gt_bytes, &off)) < 0)
        goto out_free;
    if (s->rgd && (ret = alloc_space(s, s->gt_bytes, &roff)) < 0)
        goto out_free;
    if ((ret = file_extend(s, s->alloc_off)) < 0)
        goto out_free;
    /* tables first, then the directories point at them */
    if (s->rgd) {
        if ((ret = put_le32_at(s, s->rgd_off + (uint64_t)gi * 4,
                               (uint32_t)(roff / BD_SECTOR))) < 0)
            goto out_free;
        s->rgd[gi] = (uint32_t)(roff / BD_SECTOR);
    }
    if ((ret = put_le32_at(s, s->gd_off + (uint64_t)gi * 4,
                           (uint32_t)(off / BD_SECTOR))) < 0)
        goto out_free;
    s->gd[gi] = (uint32_t)(off / BD_SECTOR);
    if (s->gt_loaded * s->gtes * 4 >= GT_CACHE_BYTES)
        evict_tables(s);
    s->gt[gi] = t;
    s->gt_loaded++;
    return 0;

out_free:
    free(t);
    return ret;
}

static int set_entry(struct vmdk_sparse *s, uint64_t g, uint32_t val)
{
    uint32_t gi = (uint32_t)(g / s->gtes), ei = (uint32_t)(g % s->gtes);
    uint32_t *t;
    int ret;

    if ((ret = get_table(s, gi, &t)) < 0)
        return ret;
    if (!t) {
        if ((ret = alloc_table(s, gi)) < 0)
            return ret;
        t = s->gt[gi];
    }
    t[ei] = val;
    s->gt_empty[gi] = 0;
    if (s->keep_tables) {
        s->dirty = true;
        return 0;
    }
    if (s->rgd && s->rgd[gi]) {
        uint64_t roff = (uint64_t)s->rgd[gi] * BD_SECTOR + (uint64_t)ei * 4;
        ret = ovf_range_ok(roff, 4, s->file_size) ? put_le32_at(s, roff, val)
                                                  : sparse_eio(s, "redundant grain table", roff);
        if (ret < 0)
            return ret;
    }
    return put_le32_at(s, (uint64_t)s->gd[gi] * BD_SECTOR + (uint64_t)ei * 4, val);
}

static bool is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;

    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Append grain g (s->grain bytes at data) compressed, with its marker. */
static int append_compressed(struct vmdk_sparse *s, uint64_t g, const uint8_t *data)
{
    uLongf clen = (uLongf)(s->cbuf_len - 12);
    uint64_t off, total;
    int ret;

    if (compress2(s->cbuf + 12, &clen, data, (uLong)s->grain,
                  Z_DEFAULT_COMPRESSION) != Z_OK)
        return -EIO;
    bd_put_le64(s->cbuf, g * (s->grain / BD_SECTOR));
    bd_put_le32(s->cbuf + 8, (uint32_t)clen);
    total = bd_align_up(12 + (uint64_t)clen, BD_SECTOR);
    memset(s->cbuf + 12 + clen, 0, total - 12 - clen);
    if ((ret = alloc_space(s, total, &off)) < 0)
        return ret;
    if ((ret = file_write(s, s->cbuf, total, off)) < 0)
        return ret;
    if (s->zcache_idx == g + 1)
        s->zcache_idx = 0;
    return set_entry(s, g, (uint32_t)(off / BD_SECTOR));
}

static int commit_slot(struct vmdk_sparse *s, unsigned i)
{
    s->pend[i].valid = false;
    return append_compressed(s, s->pend[i].idx, s->pend[i].buf);
}

static int commit_all_pending(struct vmdk_sparse *s)
{
    for (unsigned i = 0; i < PEND_SLOTS; i++) {
        int ret = s->pend[i].valid ? commit_slot(s, i) : 0;
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int refuse_overwrite(struct vmdk_sparse *s, uint64_t off)
{
    if (first_warning(s))
        log_err("%s: stream-optimized images accept only writes of new grains; "
                "refusing to overwrite the grain at offset %" PRIu64, s->name, off);
    return -EOPNOTSUPP;
}

/* A free pending slot for grain g (committing the oldest when all are
 * busy), filled with what the grain reads as now. */
static int open_slot(struct vmdk_sparse *s, uint64_t g, enum vmdk_grain_state st,
                     const struct vmdk_fill *fill, unsigned *out)
{
    uint64_t words = (s->grain / BD_SECTOR + 63) / 64;
    unsigned i, oldest = 0;
    int ret;

    for (i = 0; i < PEND_SLOTS && s->pend[i].valid; i++) {
        if (s->pend[i].age < s->pend[oldest].age)
            oldest = i;
    }
    if (i == PEND_SLOTS) {
        if ((ret = commit_slot(s, oldest)) < 0)
            return ret;
        i = oldest;
    }
    if (!s->pend[i].buf) {
        s->pend[i].buf = malloc(s->grain);
        s->pend[i].map = calloc(words, sizeof(uint64_t));
        if (!s->pend[i].buf || !s->pend[i].map)
            return -ENOMEM;
    }
    if (st == VMDK_GRAIN_ZERO)
        memset(s->pend[i].buf, 0, s->grain);
    else if ((ret = vmdk_fill_read(fill, s->pend[i].buf, s->grain, g * s->grain)) < 0)
        return ret;
    memset(s->pend[i].map, 0, words * sizeof(uint64_t));
    s->pend[i].idx = g;
    s->pend[i].valid = true;
    *out = i;
    return 0;
}

/* Writes to compressed (stream) extents: new grains only, appended. */
static int write_stream_grain(struct vmdk_sparse *s, const uint8_t *p, uint64_t n,
                              uint64_t off, const struct vmdk_fill *fill)
{
    uint64_t g = off / s->grain, in = off % s->grain;
    uint64_t sectors = s->grain / BD_SECTOR;
    int slot = pending_slot(s, g);
    unsigned i;
    uint32_t gte;
    int ret;

    if (!s->markers)
        return refuse_overwrite(s, off);
    if (slot < 0) {
        if ((ret = get_entry(s, g, &gte)) < 0)
            return ret;
        enum vmdk_grain_state st = entry_state(s, gte);
        if (st != VMDK_GRAIN_UNALLOCATED && st != VMDK_GRAIN_ZERO)
            return refuse_overwrite(s, off);
        if (n == s->grain) {
            if (is_zero(p, n) && (st == VMDK_GRAIN_ZERO || !fill->backing))
                return 0;
            return append_compressed(s, g, p);
        }
        if ((ret = open_slot(s, g, st, fill, &i)) < 0)
            return ret;
    } else {
        i = (unsigned)slot;
    }
    s->pend[i].age = ++s->pend_clock;
    memcpy(s->pend[i].buf + in, p, n);
    for (uint64_t sec = in / BD_SECTOR; sec < (in + n) / BD_SECTOR; sec++)
        s->pend[i].map[sec / 64] |= 1ull << (sec % 64);
    for (uint64_t w = 0; w < (sectors + 63) / 64; w++) {
        uint64_t want = (w + 1) * 64 <= sectors ? UINT64_MAX
                        : (1ull << (sectors % 64)) - 1;
        if (s->pend[i].map[w] != want)
            return 0;
    }
    return commit_slot(s, i);
}

/* Write into a grain that has no data yet: a whole new grain at the end. */
static int write_new_grain(struct vmdk_sparse *s, const uint8_t *p, uint64_t n,
                           uint64_t off, enum vmdk_grain_state st,
                           const struct vmdk_fill *fill)
{
    uint64_t g = off / s->grain, in = off % s->grain, foff;
    int ret;

    if (n == s->grain) {
        if (is_zero(p, n) && (st == VMDK_GRAIN_ZERO || !fill->backing))
            return 0;
        if ((ret = alloc_space(s, s->grain, &foff)) < 0)
            return ret;
        if ((ret = file_write(s, p, n, foff)) < 0)
            return ret;
        return set_entry(s, g, (uint32_t)(foff / BD_SECTOR));
    }
    if (!s->scratch && !(s->scratch = malloc(s->grain)))
        return -ENOMEM;
    if (st == VMDK_GRAIN_ZERO)
        memset(s->scratch, 0, s->grain);
    else if ((ret = vmdk_fill_read(fill, s->scratch, s->grain, g * s->grain)) < 0)
        return ret;
    memcpy(s->scratch + in, p, n);
    if ((ret = alloc_space(s, s->grain, &foff)) < 0)
        return ret;
    if ((ret = file_write(s, s->scratch, s->grain, foff)) < 0)
        return ret;
    return set_entry(s, g, (uint32_t)(foff / BD_SECTOR));
}

int vmdk_sparse_pwrite(struct vmdk_sparse *s, const void *buf, uint64_t len,
                       uint64_t off, const struct vmdk_fill *fill)
{
    const uint8_t *p = buf;

    if (s->cowd)
        return -EROFS;
    if (!ovf_range_ok(off, len, s->capacity))
        return -EIO;    /* descriptor extent larger than the sparse file */
    while (len) {
        uint64_t in = off % s->grain, n = s->grain - in;
        enum vmdk_grain_state st;
        uint64_t foff, run;
        int ret;

        if (n > len)
            n = len;
        if (s->compressed) {
            ret = write_stream_grain(s, p, n, off, fill);
        } else {
            if ((ret = vmdk_sparse_status(s, off, len, &run, &st, &foff)) < 0)
                return ret;
            if (st == VMDK_GRAIN_DATA) {
                n = run;    /* contiguous allocated grains: one write */
                /* a grain inside the metadata would overwrite it */
                ret = ovf_range_ok(foff, n, s->file_size) && foff >= s->overhead
                      ? bd_pwrite(s->file, p, n, foff, 0)
                      : sparse_eio(s, "grain", foff);
            } else {
                ret = write_new_grain(s, p, n, off, st, fill);
            }
        }
        if (ret < 0)
            return ret;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Zeroes: whole grains become zeroed-grain entries (header version 2+) or
 * stay unallocated when nothing shows through; the rest are written. */
int vmdk_sparse_pwrite_zeroes(struct vmdk_sparse *s, uint64_t len, uint64_t off,
                              const struct vmdk_fill *fill)
{
    uint8_t *zero = NULL;
    int ret = 0;

    if (s->cowd || s->compressed)
        return -ENOTSUP;
    if (!ovf_range_ok(off, len, s->capacity))
        return -EIO;
    while (len && ret == 0) {
        uint64_t in = off % s->grain, n = s->grain - in;
        uint32_t gte;

        if (n > len)
            n = len;
        if ((ret = get_entry(s, off / s->grain, &gte)) < 0)
            break;
        enum vmdk_grain_state st = entry_state(s, gte);
        if (st == VMDK_GRAIN_ZERO || (st == VMDK_GRAIN_UNALLOCATED && !fill->backing)) {
            /* reads as zeroes already */
        } else if (n == s->grain && s->zero_grain) {
            ret = set_entry(s, off / s->grain, 1);
        } else if (st == VMDK_GRAIN_DATA) {
            uint64_t foff = (uint64_t)gte * BD_SECTOR + in;
            ret = ovf_range_ok(foff, n, s->file_size) && foff >= s->overhead
                  ? bd_pwrite_zeroes(s->file, n, foff, 0) : sparse_eio(s, "grain", foff);
        } else {
            if (!zero && !(zero = calloc(1, s->grain))) {
                ret = -ENOMEM;
                break;
            }
            ret = vmdk_sparse_pwrite(s, zero, n, off, fill);
        }
        off += n;
        len -= n;
    }
    free(zero);
    return ret;
}

/* ---- checking ------------------------------------------------------------ */

static void check_note(struct vmdk_sparse *s, const char *what, uint64_t a,
                       uint64_t b)
{
    log_warn("%s: %s %" PRIu64 ": 0x%" PRIx64, s->name, what, a, b);
}

/* Compare the redundant copy of table gi with the primary; with fix, make
 * the copy equal again. */
static int check_redundant(struct vmdk_sparse *s, uint32_t gi, const uint32_t *t,
                           bool fix, struct bd_check *res)
{
    uint64_t off = (uint64_t)s->rgd[gi] * BD_SECTOR, n = (uint64_t)s->gtes * 4;
    uint8_t *raw = malloc(n);
    bool same = true;
    int ret;

    if (!raw)
        return -ENOMEM;
    if (!ovf_range_ok(off, n, s->file_size)) {
        check_note(s, "redundant grain table beyond the end of the file, entry",
                   gi, off);
        res->corruptions++;
        free(raw);
        return 0;
    }
    if ((ret = bd_pread(s->file, raw, n, off)) < 0)
        goto out;
    for (uint32_t i = 0; i < s->gtes; i++)
        same = same && bd_le32(raw + (size_t)i * 4) == t[i];
    if (same)
        goto out;
    if (!fix) {
        check_note(s, "redundant grain table differs from the primary, table",
                   gi, off);
        res->corruptions++;
        goto out;
    }
    for (uint32_t i = 0; i < s->gtes; i++)
        bd_put_le32(raw + (size_t)i * 4, t[i]);
    if ((ret = file_write(s, raw, n, off)) == 0)
        res->corruptions_fixed++;
out:
    free(raw);
    return ret;
}

int vmdk_sparse_check(struct vmdk_sparse *s, unsigned fix, struct bd_check *res)
{
    int ret;

    if (s->cowd)
        return 0;
    for (uint32_t gi = 0; gi < s->gd_entries; gi++) {
        uint32_t *t;
        uint64_t toff = (uint64_t)s->gd[gi] * BD_SECTOR;
        if (s->gd[gi] && !s->keep_tables &&
            !ovf_range_ok(toff, (uint64_t)s->gtes * 4, s->file_size)) {
            check_note(s, "grain table beyond the end of the file, entry", gi, toff);
            res->corruptions++;
            continue;
        }
        if ((ret = get_table(s, gi, &t)) < 0)
            return ret;
        for (uint32_t i = 0; t && i < s->gtes; i++) {
            enum vmdk_grain_state st = entry_state(s, t[i]);
            uint64_t need = st == VMDK_GRAIN_COMPRESSED ? 12 : s->grain;
            if ((st == VMDK_GRAIN_DATA || st == VMDK_GRAIN_COMPRESSED) &&
                !ovf_range_ok((uint64_t)t[i] * BD_SECTOR, need, s->file_size)) {
                check_note(s, "grain beyond the end of the file, grain",
                           (uint64_t)gi * s->gtes + i, (uint64_t)t[i] * BD_SECTOR);
                res->corruptions++;
            }
        }
        if (t && s->rgd && s->rgd[gi] &&
            (ret = check_redundant(s, gi, t, fix & BD_CHECK_FIX_ERRORS, res)) < 0)
            return ret;
    }
    return 0;
}

/* ---- the stream tail: tables, directory, footer, end-of-stream ------------ */

static void put_marker(uint8_t *m, uint64_t val, uint32_t type)
{
    memset(m, 0, BD_SECTOR);
    bd_put_le64(m, val);
    bd_put_le32(m + 12, type);
}

static bool table_used(const struct vmdk_sparse *s, const uint32_t *t)
{
    for (uint32_t i = 0; t && i < s->gtes; i++) {
        if (t[i])
            return true;
    }
    return false;
}

static int write_tail(struct vmdk_sparse *s)
{
    uint64_t gd_bytes = bd_align_up((uint64_t)s->gd_entries * 4, BD_SECTOR);
    uint64_t gt_sectors = s->gt_bytes / BD_SECTOR, pos = s->alloc_off;
    size_t buf_len = s->gt_bytes > gd_bytes ? s->gt_bytes : gd_bytes;
    uint8_t *buf = malloc(buf_len + 3 * BD_SECTOR);
    uint8_t *m = buf + buf_len;
    int ret = 0;

    if (!buf)
        return -ENOMEM;
    for (uint32_t gi = 0; gi < s->gd_entries && ret == 0; gi++) {
        uint32_t *t = s->gt[gi];
        if (!table_used(s, t)) {
            s->gd[gi] = 0;
            continue;
        }
        put_marker(m, gt_sectors, MARKER_GT);
        memset(buf, 0, s->gt_bytes);
        for (uint32_t i = 0; i < s->gtes; i++)
            bd_put_le32(buf + (size_t)i * 4, t[i]);
        if ((pos + BD_SECTOR + s->gt_bytes) / BD_SECTOR > UINT32_MAX) {
            ret = -EFBIG;
            break;
        }
        ret = file_write(s, m, BD_SECTOR, pos);
        if (ret == 0)
            ret = file_write(s, buf, s->gt_bytes, pos + BD_SECTOR);
        s->gd[gi] = (uint32_t)((pos + BD_SECTOR) / BD_SECTOR);
        pos += BD_SECTOR + s->gt_bytes;
    }
    if (ret < 0)
        goto out_free;
    put_marker(m, gd_bytes / BD_SECTOR, MARKER_GD);
    memset(buf, 0, gd_bytes);
    for (uint32_t gi = 0; gi < s->gd_entries; gi++)
        bd_put_le32(buf + (size_t)gi * 4, s->gd[gi]);
    if ((ret = file_write(s, m, BD_SECTOR, pos)) < 0 ||
        (ret = file_write(s, buf, gd_bytes, pos + BD_SECTOR)) < 0)
        goto out_free;
    uint64_t gd_sec = (pos + BD_SECTOR) / BD_SECTOR;
    pos += BD_SECTOR + gd_bytes;

    /* footer marker, header copy with the real directory, end of stream */
    put_marker(m, 1, MARKER_FOOTER);
    memcpy(m + BD_SECTOR, s->header, BD_SECTOR);
    bd_put_le64(m + BD_SECTOR + 56, gd_sec);
    /* no redundant directory is kept for a stream */
    bd_put_le32(m + BD_SECTOR + 8, bd_le32(s->header + 8) & ~FLAG_RGD);
    bd_put_le64(m + BD_SECTOR + 48, 0);
    memset(m + 2 * BD_SECTOR, 0, BD_SECTOR);
    if ((ret = file_write(s, m, 3 * BD_SECTOR, pos)) < 0)
        goto out_free;
    pos += 3 * BD_SECTOR;
    if (s->file_size > pos) {
        struct bd_err e = {0};
        if ((ret = bd_truncate(s->file, pos, BD_PREALLOC_OFF, &e)) < 0)
            goto out_free;
        s->file_size = pos;
    }
    s->gd_off = gd_sec * BD_SECTOR;
    s->dirty = false;

out_free:
    free(buf);
    return ret;
}

int vmdk_sparse_flush(struct vmdk_sparse *s)
{
    if (!s->dirty)
        return 0;
    if (!s->keep_tables) {
        s->dirty = false;
        return 0;
    }
    return write_tail(s);
}

/* ---- create -------------------------------------------------------------- */

/* State for a stream image just written by create: header h, nothing after
 * the overhead yet. The caller marks it dirty and closes it to write the
 * empty directory, footer and end-of-stream marker. */
static int new_stream(struct bd_node *file, const uint8_t *h, uint64_t overhead,
                      struct vmdk_sparse **out, struct bd_err *err)
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

int vmdk_sparse_create(struct bd_node *file, const struct vmdk_sparse_create *c,
                       struct bd_err *err)
{
    const uint64_t grain_sec = 128, gtes = 512;
    uint64_t cap_sec = c->capacity / BD_SECTOR;
    uint64_t grains = (cap_sec + grain_sec - 1) / grain_sec;
    uint64_t gt_count = (grains + gtes - 1) / gtes;
    uint64_t gd_sec = (gt_count * 4 + BD_SECTOR - 1) / BD_SECTOR;
    uint64_t gt_sec = gtes * 4 / BD_SECTOR;
    size_t dlen = c->desc ? strlen(c->desc) : 0;
    uint64_t desc_sec = c->desc ? 20 : 0, rgd_sec, gd_off, overhead;
    uint8_t h[512] = {0};
    uint8_t *dir = NULL;
    int ret;

    if (c->capacity > (2ull << 40))
        return bd_err_set(err, EFBIG, "a vmdk sparse extent holds at most 2 TiB; "
                          "use subformat=twoGbMaxExtentSparse or a flat subformat");
    if (dlen > desc_sec * BD_SECTOR)
        desc_sec = (dlen + BD_SECTOR - 1) / BD_SECTOR;
    rgd_sec = 1 + desc_sec;
    if (c->stream) {
        gd_off = GD_AT_END;
        overhead = bd_align_up(1 + desc_sec, grain_sec);
    } else {
        gd_off = rgd_sec + gd_sec + gt_count * gt_sec;
        overhead = bd_align_up(gd_off + gd_sec + gt_count * gt_sec, grain_sec);
    }

    bd_put_le32(h, VMDK4_MAGIC);
    bd_put_le32(h + 4, c->stream ? 3 : c->zeroed_grain ? 2 : 1);
    bd_put_le32(h + 8, FLAG_NL_DETECT |
                (c->stream ? FLAG_COMPRESSED | FLAG_MARKERS : FLAG_RGD) |
                (c->zeroed_grain && !c->stream ? FLAG_ZERO_GRAIN : 0));
    bd_put_le64(h + 12, cap_sec);
    bd_put_le64(h + 20, grain_sec);
    bd_put_le64(h + 28, desc_sec ? 1 : 0);
    bd_put_le64(h + 36, desc_sec);
    bd_put_le32(h + 44, (uint32_t)gtes);
    bd_put_le64(h + 48, c->stream ? 0 : rgd_sec);
    bd_put_le64(h + 56, gd_off);
    bd_put_le64(h + 64, overhead);
    h[73] = '\n';
    h[74] = ' ';
    h[75] = '\r';
    h[76] = '\n';
    bd_put_le16(h + 77, c->stream ? COMPRESS_DEFLATE : 0);

    if ((ret = bd_truncate(file, overhead * BD_SECTOR, BD_PREALLOC_OFF, err)) < 0)
        return ret;
    if ((ret = bd_pwrite(file, h, sizeof(h), 0, 0)) < 0)
        goto out_io;
    if (dlen && (ret = bd_pwrite(file, c->desc, dlen, BD_SECTOR, 0)) < 0)
        goto out_io;
    if (c->stream) {
        /* an empty stream: directory, footer and end marker after the header */
        struct vmdk_sparse *s = NULL;
        if ((ret = new_stream(file, h, overhead * BD_SECTOR, &s, err)) < 0)
            return ret;
        s->dirty = true;
        ret = vmdk_sparse_close(s);
        if (ret < 0)
            goto out_io;
        return 0;
    }
    dir = calloc(gd_sec ? gd_sec : 1, BD_SECTOR);
    if (!dir)
        return bd_err_set(err, ENOMEM, "out of memory");
    for (int copy = 0; copy < 2; copy++) {
        uint64_t base = copy ? gd_off : rgd_sec;
        for (uint64_t i = 0; i < gt_count; i++)
            bd_put_le32(dir + i * 4, (uint32_t)(base + gd_sec + i * gt_sec));
        ret = bd_pwrite(file, dir, gd_sec * BD_SECTOR, base * BD_SECTOR, 0);
        if (ret < 0)
            goto out_io;
    }
    free(dir);
    return 0;

out_io:
    free(dir);
    return bd_err_set(err, -ret, "writing the sparse extent: %s", strerror(-ret));
}
