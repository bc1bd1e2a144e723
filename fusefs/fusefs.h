/*
 * The FUSE front-end's per-mount state and entry points. One struct fusefs
 * per mount, reached through the session userdata; no globals.
 */
#ifndef IMGFUSE_FUSEFS_H
#define IMGFUSE_FUSEFS_H

#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "core/bd.h"
#include "wcache.h"

struct fusefs_file {
    char *name;                     /* entry name in directory mode */
    struct bd_node *node;
    bool read_only;
    pthread_mutex_t meta_lock;      /* mode, owner, times */
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec atime, mtime, ctime;
    _Atomic uint64_t write_gen;     /* bumped by every change of content */
    uint64_t blocks_gen;            /* write_gen the cached count is for */
    uint64_t blocks_cache;          /* bytes holding data, guest view */
    bool blocks_valid;
    struct fusefs_wc wc;            /* gathered sequential writes */
    _Atomic uint64_t direct_gen;    /* writes past the kernel's page cache */
    uint64_t cache_gen;             /* direct_gen the kernel's cache is from */
    _Atomic int cached_opens;       /* open handles that use the page cache */
    /* A partition: bytes [slice_off, slice_off + slice_len) of node. In
     * directory mode it shares the whole disk's node, and its I/O goes
     * through the whole disk's file (gathered writes, generation). */
    bool is_slice;
    uint64_t slice_off, slice_len;
    bool shares_node;               /* node belongs to files[io_idx] */
    size_t io_idx;
    struct fusefs_file *io;         /* set once the files array is final */
};

struct fusefs {
    struct fusefs_file *files;
    size_t nfiles;
    bool dir_mode;
    bool writeback_cache;           /* kernel write caching asked for */
    bool keep_cache;
    unsigned max_read;              /* largest read request, bytes */
    bool splice;                    /* zero-copy replies where data maps to a fd */
    struct stat dir_st;
    struct fuse_session *se;
    bool write_combine;             /* gather small sequential writes */
    bool direct_wronly;             /* write-only opens skip the page cache */
    pthread_t wc_thread;            /* writes out idle gathered writes */
    pthread_mutex_t wc_lock;
    pthread_cond_t wc_cond;
    bool wc_running, wc_stopping, wc_pending;
    bool has_slices;                /* partition files share a disk's node */
};

/* Fill the low-level operations table. */
void fusefs_ops(struct fuse_lowlevel_ops *ops);
/* Initialise f->files[i] from its open node and the image's stat. */
int fusefs_file_init(struct fusefs_file *ff, const char *name, struct bd_node *n,
                     const struct stat *img_st);
void fusefs_file_fini(struct fusefs_file *ff);
/* Drop the kernel's cached pages of the other files showing bytes
 * [off, off + len) of ff (a disk and its partitions). */
void fusefs_inval_aliases(struct fusefs *fs, struct fusefs_file *ff,
                          uint64_t off, uint64_t len);
/* Bytes that hold data as the guest sees it (st_blocks * 512). */
uint64_t fusefs_allocated_bytes(struct fusefs_file *ff);

#endif
