/*
 * Write combining: small writes that continue one another (dd bs=4k, a log
 * written block by block) are gathered into one buffer per file and reach
 * the image as one large write, as a disk's volatile write cache would do
 * with them. Nothing else changes: the size checks, short writes at the
 * end and read-only errors happen before a write is gathered; reads,
 * lseek, fallocate, resize, getattr's block count, flush and fsync write
 * the gathered bytes out first; an idle buffer is written out within a few
 * milliseconds. A write-out that fails is reported by the next write,
 * flush or fsync of that file, as the kernel reports a failed writeback.
 */
#ifndef FUSEFS_WCACHE_H
#define FUSEFS_WCACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct fusefs;
struct fusefs_file;

struct fusefs_wc {
    pthread_mutex_t lock;
    uint8_t *buf;                   /* allocated on the first gathered write */
    uint64_t off;                   /* guest offset of buf[0] */
    size_t len;                     /* bytes gathered */
    uint64_t seq_end;               /* end of the last write: a stream goes on here */
    uint64_t last_ns;               /* when the last write was gathered */
    int err;                        /* -errno of a write-out not reported yet */
};

void wc_init(struct fusefs_wc *w);
void wc_fini(struct fusefs_wc *w);

/* Offer a write of [off, off+size), already checked against the size.
 * 1: gathered, the caller answers success; 0: the caller writes it itself
 * (nothing gathered overlaps it any more); <0: a pending write-out error,
 * which the caller reports instead. */
int wc_write(struct fusefs *fs, struct fusefs_file *ff, const void *buf,
             size_t size, uint64_t off);
/* Write out what is gathered: 0, or the -errno of this or an earlier
 * write-out nobody was told of. */
int wc_flush(struct fusefs_file *ff);
/* Write out what is gathered when it overlaps [off, off+len); a failure is
 * kept for the next wc_write/wc_flush. */
void wc_flush_range(struct fusefs_file *ff, uint64_t off, uint64_t len);

/* The mount's write-out thread for idle buffers. */
int wc_start(struct fusefs *fs);
void wc_stop(struct fusefs *fs);

#endif
