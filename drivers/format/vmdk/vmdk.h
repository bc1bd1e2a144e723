/*
 * Private interface between the parts of the vmdk driver: the descriptor
 * (text) parser and writer, the hosted sparse extent (VMDK4 and COWD grain
 * tables, compressed stream grains), and the driver proper in vmdk.c which
 * maps guest offsets onto extents. Nothing here is visible outside the folder.
 */
#ifndef IMGFUSE_VMDK_H
#define IMGFUSE_VMDK_H

#include "bd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- hosted sparse extent (sparse.c) ------------------------------------- */

struct vmdk_sparse;

/* How a range of a sparse extent reads. */
enum vmdk_grain_state {
    VMDK_GRAIN_UNALLOCATED,     /* backing image or zeroes */
    VMDK_GRAIN_ZERO,            /* zeroed grain (GTE 1) */
    VMDK_GRAIN_DATA,            /* uncompressed data at a file offset */
    VMDK_GRAIN_COMPRESSED,      /* compressed grain, no direct offset */
};

/* Reads guest bytes that a sparse extent does not hold: the backing image at
 * extent-relative offset off, or zeroes. Provided by vmdk.c. */
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

/* ---- creating sparse extents (sparse.c) ---------------------------------- */

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

/* ---- create (create.c) --------------------------------------------------- */

int vmdk_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                struct bd_err *err);

#endif
