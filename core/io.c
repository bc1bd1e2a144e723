/*
 * Generic I/O on any node: bounds, request alignment (bounce buffers and
 * read-modify-write), splitting at max_transfer, serialization of
 * non-parallel drivers, zero-write fallbacks and the block-status walk
 * down the backing chain. Drivers see only aligned, in-bounds requests.
 */
#include "bd-internal.h"
#include "overflow.h"

#include <stdlib.h>
#include <string.h>

#define ZERO_BUF_SIZE (1u << 20)
static uint8_t zero_buf[ZERO_BUF_SIZE] __attribute__((aligned(4096)));

enum io_kind { IO_READ, IO_WRITE };

/* A filter leaves to core what it does not change: forward to its file. */
static bool forwards(const struct bd_node *n, bool has_callback)
{
    return !has_callback && n->drv->kind == BD_FILTER && n->file;
}

static void drv_lock(struct bd_node *n)
{
    if (!n->drv->parallel)
        pthread_mutex_lock(&n->lock);
}

static void drv_unlock(struct bd_node *n)
{
    if (!n->drv->parallel)
        pthread_mutex_unlock(&n->lock);
}

int64_t bd_size(struct bd_node *n)
{
    if (n->drv->size)
        return n->drv->size(n);
    if (n->file)
        return bd_size(n->file);
    return -ENOTSUP;
}

static uint32_t mem_align(struct bd_node *n)
{
    uint32_t m = n->lim.mem_alignment;
    return m < sizeof(void *) ? (uint32_t)sizeof(void *) : m;
}

static void *bounce_alloc(struct bd_node *n, uint64_t len)
{
    void *p = NULL;
    size_t al = mem_align(n);
    if (al < 4096)
        al = 4096;
    if (posix_memalign(&p, al, (size_t)len) != 0)
        return NULL;
    return p;
}

/* Aligned, in-bounds request: split at max_transfer, call the driver. */
static int split_io(struct bd_node *n, enum io_kind kind, void *buf, uint64_t len,
                    uint64_t off, unsigned flags)
{
    uint64_t max = n->lim.max_transfer ? n->lim.max_transfer : (1u << 30);
    while (len) {
        uint64_t chunk = len < max ? len : max;
        int r;
        drv_lock(n);
        if (kind == IO_READ)
            r = n->drv->pread(n, buf, chunk, off);
        else
            r = n->drv->pwrite(n, buf, chunk, off, flags);
        drv_unlock(n);
        if (r < 0)
            return r;
        buf = (uint8_t *)buf + chunk;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

static bool is_aligned(struct bd_node *n, const void *buf, uint64_t len, uint64_t off)
{
    uint32_t a = n->lim.request_alignment;
    return off % a == 0 && len % a == 0 && (uintptr_t)buf % mem_align(n) == 0;
}

int bd_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    if (!len)
        return 0;
    if (forwards(n, n->drv->pread))
        return bd_pread(n->file, buf, len, off);
    if (!n->drv->pread)
        return -ENOTSUP;
    int64_t size = bd_size(n);
    if (size < 0)
        return (int)size;
    /* Past the end reads as zeroes, like a short read of a file. */
    if (off >= (uint64_t)size) {
        memset(buf, 0, len);
        return 0;
    }
    if (len > (uint64_t)size - off) {
        memset((uint8_t *)buf + (size - off), 0, len - ((uint64_t)size - off));
        len = (uint64_t)size - off;
    }
    if (is_aligned(n, buf, len, off))
        return split_io(n, IO_READ, buf, len, off, 0);

    uint32_t a = n->lim.request_alignment;
    uint64_t head = off % a, aoff = off - head;
    uint64_t alen = bd_align_up(head + len, a);
    uint8_t *b = bounce_alloc(n, alen);
    if (!b)
        return -ENOMEM;
    int r = split_io(n, IO_READ, b, alen, aoff, 0);
    if (r == 0)
        memcpy(buf, b + head, len);
    free(b);
    return r;
}

static int grow_for(struct bd_node *n, uint64_t end)
{
    int64_t size = bd_size(n);
    if (size < 0)
        return (int)size;
    if (end <= (uint64_t)size)
        return 0;
    if (!n->flags.growable || !n->drv->truncate)
        return -ENOSPC;
    /* Writers past the end race: one that saw the old size must not cut
     * back what a longer one grew meanwhile (parallel FUSE writeback of a
     * growable mount did). One grow at a time, each checking again. */
    pthread_mutex_lock(&n->grow_lock);
    size = bd_size(n);
    int r = size < 0 ? (int)size : 0;
    if (r == 0 && end > (uint64_t)size) {
        struct bd_err err = { 0 };
        r = bd_truncate(n, end, BD_PREALLOC_OFF, &err);
    }
    pthread_mutex_unlock(&n->grow_lock);
    return r;
}

/* Unaligned write: read the partial edge blocks, patch, write back, with
 * every other write to the node held off so no edge is lost. */
static int rmw_write(struct bd_node *n, const void *buf, uint64_t len,
                     uint64_t off, unsigned flags)
{
    uint32_t a = n->lim.request_alignment;
    uint64_t head = off % a, aoff = off - head;
    uint64_t alen = bd_align_up(head + len, a);
    uint8_t *b = bounce_alloc(n, alen);
    int r = 0;
    if (!b)
        return -ENOMEM;
    pthread_rwlock_wrlock(&n->rmw_lock);
    if (head)
        r = split_io(n, IO_READ, b, a, aoff, 0);
    if (r == 0 && (head + len) % a && (alen > a || !head))
        r = split_io(n, IO_READ, b + alen - a, a, aoff + alen - a, 0);
    if (r == 0) {
        memcpy(b + head, buf, len);
        r = split_io(n, IO_WRITE, b, alen, aoff, flags);
    }
    pthread_rwlock_unlock(&n->rmw_lock);
    free(b);
    return r;
}

int bd_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
              unsigned flags)
{
    uint64_t end;
    int r;
    if (!len)
        return 0;
    if (n->flags.read_only)
        return -EROFS;
    if (forwards(n, n->drv->pwrite))
        return bd_pwrite(n->file, buf, len, off, flags);
    if (!n->drv->pwrite)
        return -ENOTSUP;
    if (ovf_add_u64(off, len, &end))
        return -EINVAL;
    r = grow_for(n, end);
    if (r < 0)
        return r;
    uint32_t a = n->lim.request_alignment;
    if (off % a || len % a)
        return rmw_write(n, buf, len, off, flags);
    if ((uintptr_t)buf % mem_align(n)) {
        void *b = bounce_alloc(n, len);
        if (!b)
            return -ENOMEM;
        memcpy(b, buf, len);
        r = bd_pwrite(n, b, len, off, flags);
        free(b);
        return r;
    }
    if (a > 1)
        pthread_rwlock_rdlock(&n->rmw_lock);
    r = split_io(n, IO_WRITE, (void *)buf, len, off, flags);
    if (a > 1)
        pthread_rwlock_unlock(&n->rmw_lock);
    return r;
}

static int write_zero_buffers(struct bd_node *n, uint64_t len, uint64_t off,
                              unsigned flags)
{
    while (len) {
        uint64_t chunk = len < ZERO_BUF_SIZE ? len : ZERO_BUF_SIZE;
        int r = bd_pwrite(n, zero_buf, chunk, off, flags & BD_REQ_FUA);
        if (r < 0)
            return r;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

int bd_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                     unsigned flags)
{
    uint64_t end;
    int r;
    if (!len)
        return 0;
    if (n->flags.read_only)
        return -EROFS;
    if (ovf_add_u64(off, len, &end))
        return -EINVAL;
    r = grow_for(n, end);
    if (r < 0)
        return r;
    if (n->flags.discard == BD_DISCARD_IGNORE)
        flags &= ~BD_REQ_MAY_UNMAP;
    if (forwards(n, n->drv->pwrite_zeroes))
        return bd_pwrite_zeroes(n->file, len, off, flags);
    if (!n->drv->pwrite_zeroes) {
        if (flags & BD_REQ_NO_FALLBACK)
            return -ENOTSUP;
        return write_zero_buffers(n, len, off, flags);
    }
    uint32_t a = n->lim.request_alignment;
    uint64_t mid_start = bd_align_up(off, a), mid_end = bd_align_down(end, a);
    if (mid_start >= mid_end) {
        if (flags & BD_REQ_NO_FALLBACK)
            return -ENOTSUP;
        return write_zero_buffers(n, len, off, flags);
    }
    if (mid_start > off) {
        r = write_zero_buffers(n, mid_start - off, off, flags);
        if (r < 0)
            return r;
    }
    uint64_t max = n->lim.max_transfer;
    uint64_t o = mid_start;
    if (a > 1)
        pthread_rwlock_rdlock(&n->rmw_lock);
    while (o < mid_end) {
        uint64_t chunk = mid_end - o < max ? mid_end - o : max;
        drv_lock(n);
        r = n->drv->pwrite_zeroes(n, chunk, o, flags);
        drv_unlock(n);
        if (r == -ENOTSUP && !(flags & BD_REQ_NO_FALLBACK)) {
            if (a > 1)
                pthread_rwlock_unlock(&n->rmw_lock);
            r = write_zero_buffers(n, chunk, o, flags);
            if (a > 1)
                pthread_rwlock_rdlock(&n->rmw_lock);
        }
        if (r < 0)
            break;
        o += chunk;
    }
    if (a > 1)
        pthread_rwlock_unlock(&n->rmw_lock);
    if (r < 0)
        return r;
    if (end > mid_end)
        r = write_zero_buffers(n, end - mid_end, mid_end, flags);
    return r;
}

int bd_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    if (n->flags.read_only)
        return -EROFS;
    if (forwards(n, n->drv->discard))
        return bd_discard(n->file, len, off);
    if (n->flags.discard == BD_DISCARD_IGNORE || !n->drv->discard || !len)
        return 0;
    int64_t size = bd_size(n);
    if (size < 0)
        return (int)size;
    if (off >= (uint64_t)size)
        return 0;
    if (len > (uint64_t)size - off)
        len = (uint64_t)size - off;
    uint32_t a = n->lim.discard_alignment > n->lim.request_alignment
                     ? n->lim.discard_alignment : n->lim.request_alignment;
    uint64_t start = bd_align_up(off, a), end = off + len;
    /* The tail of the image counts as aligned when it ends there. */
    end = end == (uint64_t)size ? end : bd_align_down(end, a);
    if (start >= end)
        return 0;
    if (end % n->lim.request_alignment)
        end = bd_align_down(end, n->lim.request_alignment);
    if (start >= end)
        return 0;
    drv_lock(n);
    int r = n->drv->discard(n, end - start, start);
    drv_unlock(n);
    return r == -ENOTSUP ? 0 : r;
}

int bd_flush(struct bd_node *n)
{
    int r = 0;
    if (!n || n->flags.read_only)
        return 0;
    if (n->drv->flush) {
        drv_lock(n);
        r = n->drv->flush(n);
        drv_unlock(n);
    }
    if (r == 0 && n->file)
        r = bd_flush(n->file);
    return r;
}

int bd_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                struct bd_err *err)
{
    if (n->flags.read_only)
        return bd_err_set(err, EROFS, "%s: is open read-only", n->name);
    if (forwards(n, n->drv->truncate))
        return bd_truncate(n->file, size, prealloc, err);
    if (!n->drv->truncate)
        return bd_err_set(err, ENOTSUP, "%s: %s images cannot be resized",
                          n->name, n->drv->name);
    drv_lock(n);
    int r = n->drv->truncate(n, size, prealloc, err);
    drv_unlock(n);
    if (r < 0 && err->errnum == 0)
        bd_err_set(err, -r, "%s: resize failed: %s", n->name, strerror(-r));
    return r;
}

int bd_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                    uint64_t *pnum, unsigned *status, uint64_t *map)
{
    uint64_t dummy_map;
    int64_t size = bd_size(n);
    if (size < 0)
        return (int)size;
    if (!map)
        map = &dummy_map;
    *map = 0;
    if (off >= (uint64_t)size || !len) {
        *pnum = 0;
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        return 0;
    }
    if (len > (uint64_t)size - off)
        len = (uint64_t)size - off;
    if (forwards(n, n->drv->block_status))
        return bd_block_status(n->file, off, len, pnum, status, map);
    if (!n->drv->block_status) {
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        return 0;
    }
    drv_lock(n);
    int r = n->drv->block_status(n, off, len, pnum, status, map);
    drv_unlock(n);
    if (r < 0)
        return r;
    if (*pnum == 0 || *pnum > len)
        *pnum = len;
    return 0;
}

int bd_block_status_above(struct bd_node *n, uint64_t off, uint64_t len,
                          uint64_t *pnum, unsigned *status)
{
    for (;;) {
        int r = bd_block_status(n, off, len, pnum, status, NULL);
        if (r < 0)
            return r;
        if (*pnum == 0)
            return 0;
        if (*status & BD_STATUS_ALLOCATED) {
            *status &= BD_STATUS_DATA | BD_STATUS_ZERO;
            if (!*status)
                *status = BD_STATUS_DATA;
            return 0;
        }
        len = *pnum;
        struct bd_node *b = n->backing;
        if (!b) {
            *status = BD_STATUS_ZERO;
            return 0;
        }
        int64_t bsize = bd_size(b);
        if (bsize < 0)
            return (int)bsize;
        if (off >= (uint64_t)bsize) {
            *status = BD_STATUS_ZERO;
            return 0;
        }
        if (len > (uint64_t)bsize - off)
            len = (uint64_t)bsize - off;
        n = b;
    }
}

int64_t bd_allocated_size(struct bd_node *n)
{
    if (n->drv->allocated_size)
        return n->drv->allocated_size(n);
    if (n->file)
        return bd_allocated_size(n->file);
    return -ENOTSUP;
}

int bd_map_fd(struct bd_node *n, uint64_t off, uint64_t len, int *fd,
              uint64_t *fd_off)
{
    int64_t size = bd_size(n);
    if (size < 0 || off > (uint64_t)size || len > (uint64_t)size - off)
        return -ENOTSUP;
    if (n->drv->map_fd)
        return n->drv->map_fd(n, off, len, fd, fd_off);
    if (forwards(n, n->drv->map_fd))
        return bd_map_fd(n->file, off, len, fd, fd_off);
    /* A format whose block status maps the whole range, as plain data, to
     * one run of its file (BD_STATUS_OFFSET: the bytes are there as they
     * are) can be read from that file directly. */
    if (n->drv->kind != BD_FORMAT || !n->drv->block_status || !n->file)
        return -ENOTSUP;
    if (n->drv->pin)
        n->drv->pin->pin(n);
    uint64_t pnum, map;
    unsigned st;
    unsigned want = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
    int r = -ENOTSUP;
    if (bd_block_status(n, off, len, &pnum, &st, &map) == 0 && pnum >= len &&
        (st & (want | BD_STATUS_ZERO)) == want)
        r = bd_map_fd(n->file, map, len, fd, fd_off);
    if (r < 0 && n->drv->pin)
        n->drv->pin->unpin(n);
    return r;
}

void bd_map_fd_done(struct bd_node *n)
{
    /* the walk bd_map_fd took goes down the file children only, and only
     * formats pin */
    for (; n; n = n->file)
        if (n->drv->pin)
            n->drv->pin->unpin(n);
}
