/*
 * Private interface between the parts of the vmdk driver: the descriptor
 * (text) parser and writer, the hosted sparse extent (VMDK4 and COWD grain
 * tables, compressed stream grains), and the driver proper in vmdk.c which
 * maps guest offsets onto extents. Nothing here is visible outside the folder
 * (and tests/unit/test-vmdk.c, tests/fuzz/vmdk.c).
 */
#ifndef IMGFUSE_VMDK_H
#define IMGFUSE_VMDK_H

#include "core/bd.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VMDK4_MAGIC 0x564d444bu         /* "KDMV" little-endian */
#define VMDK3_MAGIC 0x44574f43u         /* "COWD" little-endian */
#define SESPARSE_MAGIC 0xcafebabeu      /* low half of the 64-bit seSparse magic */
#define VMDK_DESC_MAX (1u << 20)        /* larger descriptors are refused */
#define VMDK_MAX_EXTENTS 4096u
#define VMDK_CID_NONE 0xffffffffu       /* parentCID of a disk with no parent */

/* ---- descriptor (descriptor.c) ----------------------------------------- */

enum vmdk_access { VMDK_ACCESS_RW, VMDK_ACCESS_RDONLY, VMDK_ACCESS_NOACCESS };

enum vmdk_ext_kind {
    VMDK_EXT_FLAT,          /* FLAT, VMFS: plain data at an offset in a file */
    VMDK_EXT_SPARSE,        /* SPARSE, VMFSSPARSE: hosted sparse (KDMV/COWD) */
    VMDK_EXT_ZERO,          /* ZERO: reads as zeroes, no file */
    VMDK_EXT_SESPARSE,      /* SESPARSE: ESXi space-efficient, read-only */
};

struct vmdk_desc_extent {
    enum vmdk_access access;
    enum vmdk_ext_kind kind;
    uint64_t sectors;           /* guest size of the extent */
    uint64_t offset_sectors;    /* FLAT: where the data starts in the file */
    char *filename;             /* NULL for ZERO */
    char type[16];              /* as written, for messages and info */
};

struct vmdk_desc {
    int version;
    uint32_t cid;
    uint32_t parent_cid;
    bool has_cid;
    char *create_type;          /* may be NULL */
    char *parent_hint;          /* parentFileNameHint, may be NULL */
    char *adapter_type;         /* ddb.adapterType, may be NULL */
    char *hw_version;           /* ddb.virtualHWVersion, may be NULL */
    struct vmdk_desc_extent *ext;
    size_t n_ext;
};

/* Parse descriptor text (len bytes, stops at the first NUL). name is used in
 * messages. On failure d is left empty; vmdk_desc_free() is always safe. */
int vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *d,
                    const char *name, struct bd_err *err);
void vmdk_desc_free(struct vmdk_desc *d);

/* Return a new copy of text (len bytes, NUL-terminated result) with the
 * value of the CID= line replaced by cid; *out_len gets the new length.
 * NULL when out of memory or no CID line exists. Caller frees. */
char *vmdk_desc_with_cid(const char *text, size_t len, uint32_t cid,
                         size_t *out_len);

struct vmdk_desc_params {
    uint32_t cid;
    uint32_t parent_cid;
    const char *create_type;
    const char *parent_hint;        /* NULL: no parent */
    const char *const *extent_lines;/* "RW 2048 SPARSE \"x.vmdk\"", NULL-ended */
    const char *hw_version;
    const char *adapter_type;
    const char *tools_version;
    uint64_t size;                  /* bytes, for the geometry */
};

/* A new descriptor text (caller frees), NULL when out of memory. */
char *vmdk_desc_format(const struct vmdk_desc_params *p);

/* ---- hosted sparse extent, as vmdk.c sees it ------------------------------ */

/* Defined in sparse.c (open, close, the accessors), sparse-read.c (status,
 * pread), sparse-write.c (pwrite, pwrite_zeroes), sparse-check.c (check)
 * and stream.c (flush). */

struct vmdk_sparse;

/* How a range of a sparse extent reads. */
enum vmdk_grain_state {
    VMDK_GRAIN_UNALLOCATED,     /* backing image or zeroes */
    VMDK_GRAIN_ZERO,            /* zeroed grain (GTE 1) */
    VMDK_GRAIN_DATA,            /* uncompressed data at a file offset */
    VMDK_GRAIN_COMPRESSED,      /* compressed grain, no direct offset */
};

/* Reads guest bytes that a sparse extent does not hold: the backing image at
 * extent-relative offset off, or zeroes. (fill.c; vmdk.c fills the struct) */
struct vmdk_fill {
    struct bd_node *backing;    /* may be NULL */
    uint64_t base;              /* guest offset of the extent */
};
int vmdk_fill_read(const struct vmdk_fill *f, void *buf, uint64_t len,
                   uint64_t off);

/* Open the sparse extent in file (KDMV or COWD header). name is for messages.
 * writable: the node will be written (stream images then keep their grain
 * tables in memory and write them out at flush/close). */
int vmdk_sparse_open(struct bd_node *file, const char *name, bool writable,
                     struct vmdk_sparse **out, struct bd_err *err);
/* Commits a partly written stream grain and writes the stream's tables and
 * footer if dirty; frees s (NULL is fine). Returns 0 or -errno. */
int vmdk_sparse_close(struct vmdk_sparse *s);
/* Guest size of the extent in bytes (header capacity). */
uint64_t vmdk_sparse_capacity(const struct vmdk_sparse *s);
uint64_t vmdk_sparse_grain_size(const struct vmdk_sparse *s);
/* Where the embedded descriptor lives: bytes; len 0 when none. */
void vmdk_sparse_desc_area(const struct vmdk_sparse *s, uint64_t *off,
                           uint64_t *len);
void vmdk_sparse_describe(const struct vmdk_sparse *s, char *buf, size_t len);

/* Threads: vmdk_sparse_status() and vmdk_sparse_pread() may run in parallel
 * with each other; every other call needs the caller to keep all others out
 * (vmdk.c holds its rwlock for writing). */

/* State of [off, off+len) (extent-relative): *pnum bytes from off share it;
 * *file_off is valid for VMDK_GRAIN_DATA, and for VMDK_GRAIN_COMPRESSED
 * (grain offset + off within the grain) unless the grain is still being
 * written. */
int vmdk_sparse_status(struct vmdk_sparse *s, uint64_t off, uint64_t len,
                       uint64_t *pnum, enum vmdk_grain_state *state,
                       uint64_t *file_off);
int vmdk_sparse_pread(struct vmdk_sparse *s, void *buf, uint64_t len,
                      uint64_t off, const struct vmdk_fill *fill);
int vmdk_sparse_pwrite(struct vmdk_sparse *s, const void *buf, uint64_t len,
                       uint64_t off, const struct vmdk_fill *fill);
/* Zeroes without writing data where the tables can say it; -ENOTSUP for
 * stream and COWD extents (the caller writes zero buffers instead). */
int vmdk_sparse_pwrite_zeroes(struct vmdk_sparse *s, uint64_t len, uint64_t off,
                              const struct vmdk_fill *fill);
/* Table and grain offsets inside the file, redundant tables equal to the
 * primary ones (repaired with BD_CHECK_FIX_ERRORS). Adds to res. */
int vmdk_sparse_check(struct vmdk_sparse *s, unsigned fix, struct bd_check *res);
/* Stream images: write grain tables, directory, footer and end-of-stream
 * marker for what is written so far. Others: no-op. */
int vmdk_sparse_flush(struct vmdk_sparse *s);

/* ---- creating sparse extents (sparse-create.c) ---------------------------- */

struct vmdk_sparse_create {
    uint64_t capacity;          /* bytes, multiple of 512 */
    const char *desc;           /* embedded descriptor text or NULL */
    bool stream;                /* streamOptimized: compressed, footer */
    bool zeroed_grain;
};

int vmdk_sparse_create(struct bd_node *file, const struct vmdk_sparse_create *c,
                       struct bd_err *err);

/* ---- seSparse extent, read-only (sesparse.c) ----------------------------- */

struct vmdk_se;

int vmdk_se_open(struct bd_node *file, const char *name, struct vmdk_se **out,
                 struct bd_err *err);
void vmdk_se_close(struct vmdk_se *s);
uint64_t vmdk_se_capacity(const struct vmdk_se *s);
int vmdk_se_status(struct vmdk_se *s, uint64_t off, uint64_t len, uint64_t *pnum,
                   enum vmdk_grain_state *state, uint64_t *file_off);
int vmdk_se_pread(struct vmdk_se *s, void *buf, uint64_t len, uint64_t off,
                  const struct vmdk_fill *fill);

/* ---- the driver's state (vmdk.c, resize.c) ------------------------------ */

struct vmdk_extent {
    enum vmdk_ext_kind kind;
    enum vmdk_access access;
    uint64_t start, len;        /* guest bytes */
    struct bd_node *file;       /* NULL for ZERO */
    bool own_file;              /* opened here (not n->file, not shared) */
    uint64_t flat_off;          /* FLAT: byte offset in file */
    struct vmdk_sparse *sp;     /* SPARSE */
    struct vmdk_se *se;         /* SESPARSE */
    char *fname;                /* as the descriptor names it */
};

struct vmdk_state {
    struct vmdk_extent *ext;
    size_t n_ext;
    uint64_t size;
    struct vmdk_desc desc;
    char *desc_text;            /* as read, NUL-terminated */
    size_t desc_len;
    bool embedded;              /* descriptor inside the sparse n->file */
    uint64_t desc_off, desc_area;
    bool cid_done;              /* CID already changed for this session */
    unsigned long warned;
    /* readers share it, writers, flush and check hold it alone; reads of
     * seSparse extents (one cached table, no lock) hold it alone too */
    pthread_rwlock_t lock;
    bool lock_ready;
    bool shared_reads;
};

/* vmdk.c: store a new descriptor text t (taken; freed on failure) on disk
 * and in st, -ENOSPC when an embedded area is too small; change the CID
 * once per session. Callers hold st->lock for writing. */
int vmdk_desc_store(struct bd_node *n, struct vmdk_state *st, char *t,
                    size_t nlen);
int vmdk_update_cid(struct bd_node *n, struct vmdk_state *st);

/* resize.c: grow (growable mounts); shrink, stream and seSparse refused */
int vmdk_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                  struct bd_err *err);
/* Grow a hosted VMDK4 sparse extent (not stream, not COWD) to new_cap
 * bytes: directory entries added (the directory moved to the end of the
 * file when its sectors are full), stale entries past the old end cleared,
 * the header written last. Callers keep all others out. (sparse-resize.c) */
int vmdk_sparse_grow(struct vmdk_sparse *s, uint64_t new_cap);

/* ---- create (create.c) --------------------------------------------------- */

int vmdk_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                struct bd_err *err);

/* ---- inside a hosted sparse extent ----------------------------------------
 * Shared by sparse.c, sparse-io.c, grain-table.c, inflate.c, sparse-read.c,
 * sparse-write.c, stream.c, sparse-check.c and sparse-create.c only; vmdk.c
 * uses the calls above. Offsets are extent-relative bytes unless named. */

/* VMDK4 header flags (Virtual Disk Format 1.1/5.0, hosted sparse extent) */
#define VMDK4_FLAG_NL_DETECT    (1u << 0)
#define VMDK4_FLAG_RGD          (1u << 1)
#define VMDK4_FLAG_ZERO_GRAIN   (1u << 2)
#define VMDK4_FLAG_COMPRESSED   (1u << 16)
#define VMDK4_FLAG_MARKERS      (1u << 17)
#define VMDK4_COMPRESS_DEFLATE  1u
#define VMDK4_GD_AT_END         UINT64_MAX  /* stream: directory in the footer */
#define VMDK_PEND_SLOTS         8u          /* stream grains being filled */

struct vmdk_zctx;

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
    struct vmdk_zctx *zfree;    /* idle inflate contexts */
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
    } pend[VMDK_PEND_SLOTS];
    uint64_t pend_clock;
    uint8_t *scratch;           /* one grain, for copy-on-write */
    unsigned long io_warned;
};

/* A state for the stream image create has just written: the 512-byte header
 * h at offset 0, nothing after overhead (bytes) yet, tables in memory. The
 * caller marks it dirty and closes it to write the empty directory, footer
 * and end-of-stream marker. (sparse.c) */
int vmdk_sparse_new_stream(struct bd_node *file, const uint8_t *h,
                           uint64_t overhead, struct vmdk_sparse **out,
                           struct bd_err *err);

/* All len bytes at buf are zero. */
static inline bool vmdk_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;

    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* -- the extent's file (sparse-io.c); callers keep writers exclusive -- */

/* True the first time only (atomic): parallel readers may fail at once,
 * the log gets one line per extent. */
bool vmdk_sparse_first_warning(struct vmdk_sparse *s);
/* Logs "what at off is beyond the end of the file or corrupt" once; -EIO. */
int vmdk_sparse_eio(struct vmdk_sparse *s, const char *what, uint64_t off);
/* bd_pread of file bytes [off, off+len), -EIO (logged, named what) when the
 * range is not inside the file. */
int vmdk_sparse_file_read(struct vmdk_sparse *s, void *buf, uint64_t len,
                          uint64_t off, const char *what);
/* Grow the file to end bytes (no-op when it is that long): protocol nodes
 * under a format do not grow on their own. 0 or -errno. */
int vmdk_sparse_file_extend(struct vmdk_sparse *s, uint64_t end);
/* Write, first extending the file when the range ends beyond it. */
int vmdk_sparse_file_write(struct vmdk_sparse *s, const void *buf, uint64_t len,
                           uint64_t off);
/* Reserve len bytes at the append point (*off, sector aligned); the file is
 * not grown here. -EFBIG when the sector number would not fit in a 32-bit
 * table entry. */
int vmdk_sparse_alloc(struct vmdk_sparse *s, uint64_t len, uint64_t *off);

/* -- grain directory and tables (grain-table.c) -- */

/* Read a directory of s->gd_entries entries at off into a new array *out
 * (set as soon as it is allocated, also when reading then fails; the caller
 * frees it); what names it in messages. */
int vmdk_gd_read(struct vmdk_sparse *s, uint64_t off, uint32_t **out,
                 const char *what, struct bd_err *err);
/* Drop every cached table (not the gt_empty marks). Callers hold gt_lock
 * or keep all others out. */
void vmdk_gt_evict(struct vmdk_sparse *s);
/* The table for directory entry gi, loaded into the cache when needed;
 * *t = NULL when none is allocated. The table stays valid until the next
 * load or allocation (eviction), so callers hold gt_lock or are alone. */
int vmdk_gt_get(struct vmdk_sparse *s, uint32_t gi, uint32_t **t);
/* Grain table entry of grain g; 0 past a short (COWD) directory. */
int vmdk_gt_entry(struct vmdk_sparse *s, uint64_t g, uint32_t *gte);
/* How a grain with table entry gte reads. */
enum vmdk_grain_state vmdk_gte_state(const struct vmdk_sparse *s, uint32_t gte);
/* Writers only: set the entry of grain g to val (a sector number, or 1 for
 * a zeroed grain), allocating its table first when there is none, and write
 * it to both tables on disk (stream: only in memory, s->dirty set). */
int vmdk_gt_set(struct vmdk_sparse *s, uint64_t g, uint32_t val);

/* -- compressed grains, read side (inflate.c) -- */

/* An inflate context from the pool or a new one; NULL when out of memory.
 * Give it back with vmdk_zctx_put() (NULL is fine). */
struct vmdk_zctx *vmdk_zctx_get(struct vmdk_sparse *s);
void vmdk_zctx_put(struct vmdk_sparse *s, struct vmdk_zctx *z);
/* Close: frees the pool and the grain cache. */
void vmdk_inflate_free(struct vmdk_sparse *s);
/* Decompress the grain stored at file offset off into dst (one grain). */
int vmdk_grain_inflate(struct vmdk_sparse *s, struct vmdk_zctx *z,
                       uint64_t off, uint8_t *dst);
/* n bytes from in of compressed grain g (stored at file offset off) into p,
 * through the cache of the grain last decompressed in part. */
int vmdk_grain_inflate_part(struct vmdk_sparse *s, struct vmdk_zctx *z,
                            uint64_t g, uint64_t off, uint8_t *p, uint64_t in,
                            uint64_t n);
/* Writers only: grain g was rewritten, the cache must not serve it. */
void vmdk_zcache_forget(struct vmdk_sparse *s, uint64_t g);

/* -- streamOptimized extents (stream.c) -- */

/* Open: the footer's copy of the header gives the directory of an image
 * whose header says VMDK4_GD_AT_END; sets s->gd_off. */
int vmdk_stream_read_footer(struct vmdk_sparse *s, struct bd_err *err);
/* Open for writing: all tables into memory (they become the truth) and the
 * append point after the last grain. */
int vmdk_stream_open_append(struct vmdk_sparse *s, struct bd_err *err);
/* The pending slot filling grain g, or -1. */
int vmdk_stream_slot(const struct vmdk_sparse *s, uint64_t g);
/* A pending grain lies in the span of directory entry gi. */
bool vmdk_stream_pending_in(const struct vmdk_sparse *s, uint64_t gi);
/* n bytes at off, all in one grain: new grains only, appended compressed
 * (whole) or gathered in a pending slot (part); -EOPNOTSUPP, logged once,
 * for a grain that already has data or an extent without grain markers. */
int vmdk_stream_write(struct vmdk_sparse *s, const uint8_t *p, uint64_t n,
                      uint64_t off, const struct vmdk_fill *fill);
/* Compress and append every pending grain, full or not. */
int vmdk_stream_commit_all(struct vmdk_sparse *s);

#endif
