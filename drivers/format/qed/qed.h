/*
 * qed: private interface between the files of the QED driver (QEMU Enhanced
 * Disk, docs/interop/qed_spec.rst). qed.c opens and closes images and owns
 * the header and its need-check flag; table.c the L1/L2 tables and cluster
 * allocation; io.c the I/O callbacks; check.c the consistency check;
 * create.c new images.
 */
#ifndef IMGFUSE_QED_H
#define IMGFUSE_QED_H

#include "core/bd.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define QED_MAGIC               0x00444551u     /* "QED\0" little endian */
#define QED_HEADER_BYTES        64u
#define QED_MIN_CLUSTER         (4u << 10)
#define QED_MAX_CLUSTER         (64u << 20)     /* the spec's 2^26 */
#define QED_MAX_TABLE_SIZE      16u
#define QED_MAX_TABLE_BYTES     (32u << 20)     /* what we hold in memory */
#define QED_MAX_BACKING_NAME    4096u

#define QED_F_BACKING_FILE      0x01u
#define QED_F_NEED_CHECK        0x02u
#define QED_F_BACKING_NO_PROBE  0x04u
#define QED_F_KNOWN             0x07u

/* L2 entries with a meaning of their own (spec: data cluster offsets) */
#define QED_UNALLOCATED         0u
#define QED_ZERO                1u

struct qed_header {
    uint32_t magic;
    uint32_t cluster_size;
    uint32_t table_size;            /* clusters per table */
    uint32_t header_size;           /* clusters */
    uint64_t features;
    uint64_t compat_features;
    uint64_t autoclear_features;
    uint64_t l1_off;
    uint64_t image_size;
    uint32_t backing_off;
    uint32_t backing_len;
};

struct qed_state {
    struct bd_node *n;
    struct qed_header h;
    uint32_t cluster_bits;
    uint32_t table_bits;            /* log2 of entries per table */
    uint32_t table_entries;
    uint64_t table_bytes;
    uint64_t header_bytes;          /* header_size clusters */
    uint64_t *l1;                   /* native order; atomics for readers */
    uint64_t **l2;                  /* per L1 entry, loaded on first use */
    uint64_t file_end;              /* next cluster handed out (alloc_lock) */
    char *backing_name;
    uint64_t backing_size;
    bool read_only;
    bool need_check_set;            /* we set the flag on disk (alloc_lock) */
    bool locks_ready;
    pthread_mutex_t alloc_lock;     /* allocation, table updates, the header */
    pthread_mutex_t l2_lock;        /* loading L2 tables into l2[] */
    struct bd_check open_fixed;     /* what the check at open repaired */
    unsigned long bad_entries;      /* invalid table entries met, logged once */
};

/* qed.c */
void qed_header_encode(const struct qed_header *h, uint8_t *b);
/* Set the need-check flag on disk and flush it, once per dirty period;
 * the caller holds alloc_lock. */
int qed_mark_dirty(struct qed_state *s);

/* table.c */
/* The L2 entry of guest cluster blk (0 when its L2 table is unallocated);
 * loads the table on first use. 0 or -errno (-EIO for an invalid table). */
int qed_entry_get(struct qed_state *s, uint64_t blk, uint64_t *entry);
/* Whether a data cluster offset may be read and written: aligned, after
 * the header, outside the L1 table and inside the file. */
bool qed_data_off_ok(const struct qed_state *s, uint64_t off);
/* Point guest cluster blk at val (a data offset or QED_ZERO), allocating
 * its L2 table when needed; the caller holds alloc_lock and has marked the
 * image dirty. */
int qed_entry_set(struct qed_state *s, uint64_t blk, uint64_t val);
/* The same for n >= 1 clusters from blk, all under one L2 table: entry i
 * becomes val + i * step, written with one write. */
int qed_entries_set(struct qed_state *s, uint64_t blk, uint32_t n, uint64_t val,
                    uint64_t step);
/* Hand out len bytes (whole clusters) at the end of the file; alloc_lock. */
uint64_t qed_alloc(struct qed_state *s, uint64_t len);
void qed_tables_free_l2(struct qed_state *s);
void qed_log_bad_entry(struct qed_state *s, uint64_t blk, uint64_t entry);

/* io.c */
int qed_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off);
int qed_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
               unsigned flags);
int qed_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                      unsigned flags);
int qed_discard(struct bd_node *n, uint64_t len, uint64_t off);
int qed_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                     uint64_t *pnum, unsigned *status, uint64_t *map);

/* check.c */
/* Walk every table: invalid offsets and clusters used twice are
 * corruptions (fix_errors points invalid entries at nothing), clusters
 * nothing uses are leaks (fix_leaks cuts those at the end of the file).
 * Not concurrent with I/O. */
int qed_check_run(struct qed_state *s, unsigned fix, struct bd_check *res,
                  struct bd_err *err);
int qed_check(struct bd_node *n, unsigned fix, struct bd_check *res,
              struct bd_err *err);

/* resize.c: grow (growable mounts); a shrink is refused */
int qed_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                 struct bd_err *err);

/* create.c */
extern const struct bd_create_ops qed_create_ops;

#endif
