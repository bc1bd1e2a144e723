/*
 * qed I/O: reads (data clusters, zero clusters, the backing file for
 * unallocated ones), writes with allocation and copy of the backing's bytes
 * into new clusters, zeroes, discard and block status. Allocation happens
 * under alloc_lock; data I/O to clusters already allocated takes no lock.
 */
#include "qed.h"

#include <stdlib.h>
#include <string.h>

struct qed_io {
    struct bd_node *n;
    struct qed_state *s;
    uint8_t *rbuf;              /* reads */
    const uint8_t *wbuf;        /* writes; NULL: zeroes */
    uint64_t len;               /* writes: the request's length */
    uint64_t skip_to;           /* writes: clusters before it are written */
    unsigned flags;             /* BD_REQ_* */
    bool allocated;             /* this request changed the tables */
};

#define QED_RUN_MAX 256u        /* clusters allocated with one write */

/* Guest bytes [off, off + len) of the backing, zeroes past its end. */
static int qed_read_backing(struct qed_state *s, uint8_t *buf, uint64_t len,
                            uint64_t off)
{
    struct bd_node *b = s->n->backing;
    uint64_t have = 0;
    int r;

    if (b && off < s->backing_size)
        have = s->backing_size - off < len ? s->backing_size - off : len;
    if (have) {
        r = bd_pread(b, buf, have, off);
        if (r < 0)
            return r;
    }
    memset(buf + have, 0, len - have);
    return 0;
}

static int qed_entry_checked(struct qed_state *s, uint64_t blk, uint64_t *e)
{
    int r = qed_entry_get(s, blk, e);

    if (r < 0)
        return r;
    if (*e > QED_ZERO && !qed_data_off_ok(s, *e)) {
        qed_log_bad_entry(s, blk, *e);
        return -EIO;
    }
    return 0;
}

static int qed_read_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                          uint64_t done)
{
    struct qed_io *io = ctx;
    uint64_t e;
    int r;

    r = qed_entry_checked(io->s, blk, &e);
    if (r < 0)
        return r;
    if (e == QED_UNALLOCATED)
        return qed_read_backing(io->s, io->rbuf + done, chunk,
                                (blk << io->s->cluster_bits) + in);
    if (e == QED_ZERO) {
        memset(io->rbuf + done, 0, chunk);
        return 0;
    }
    return bd_pread(io->n->file, io->rbuf + done, chunk, e + in);
}

int qed_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct qed_io io = { .n = n, .s = n->state, .rbuf = buf };

    return bd_for_each_block(off, len, io.s->h.cluster_size, qed_read_block, &io);
}

/*
 * The new cluster for guest cluster blk, whose entry was e (unallocated or
 * zero): the chunk written over what the cluster read before (the backing's
 * bytes, or zeroes), then the entry. The data goes to disk before the entry
 * that makes it reachable. The caller holds alloc_lock.
 */
static int qed_alloc_cluster(struct qed_io *io, uint64_t blk, uint64_t e,
                             uint32_t in, uint32_t chunk, uint64_t done)
{
    struct qed_state *s = io->s;
    uint32_t cs = s->h.cluster_size;
    uint64_t off;
    uint8_t *buf = NULL;
    const uint8_t *src;
    int r;

    r = qed_mark_dirty(s);
    if (r < 0)
        return r;
    if (chunk == cs && io->wbuf) {
        src = io->wbuf + done;
    } else {
        buf = malloc(cs);
        if (!buf)
            return -ENOMEM;
        if (e == QED_UNALLOCATED) {
            r = qed_read_backing(s, buf, cs, blk << s->cluster_bits);
            if (r < 0)
                goto out_free;
        } else {
            memset(buf, 0, cs);
        }
        if (io->wbuf)
            memcpy(buf + in, io->wbuf + done, chunk);
        else
            memset(buf + in, 0, chunk);
        src = buf;
    }
    /* a new L2 table (qed_entry_set) comes after the data */
    off = qed_alloc(s, cs);
    r = bd_pwrite(io->n->file, src, cs, off, 0);
    if (r == 0)
        r = qed_entry_set(s, blk, off);
    io->allocated = true;
out_free:
    free(buf);
    return r;
}

/*
 * A run of whole clusters from blk that read from the backing or as
 * zeroes, all under one L2 table: one new extent at the end of the file,
 * one data write, one write of their entries. The caller holds alloc_lock
 * and has seen blk's entry unallocated or zero.
 */
static int qed_alloc_run(struct qed_io *io, uint64_t blk, uint64_t done)
{
    struct qed_state *s = io->s;
    uint64_t cs = s->h.cluster_size, e, off;
    uint64_t max = (io->len - done) / cs;
    uint32_t l2i = (uint32_t)(blk & (s->table_entries - 1)), n = 1;
    int r;

    if (max > s->table_entries - l2i)
        max = s->table_entries - l2i;
    if (max > QED_RUN_MAX)
        max = QED_RUN_MAX;
    while (n < max && qed_entry_checked(s, blk + n, &e) == 0 && e <= QED_ZERO)
        n++;
    r = qed_mark_dirty(s);
    if (r < 0)
        return r;
    off = qed_alloc(s, n * cs);
    r = bd_pwrite(io->n->file, io->wbuf + done, n * cs, off, 0);
    if (r == 0)
        r = qed_entries_set(s, blk, n, off, cs);
    io->allocated = true;
    io->skip_to = blk + n;
    return r;
}

static int qed_write_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                           uint64_t done)
{
    struct qed_io *io = ctx;
    struct qed_state *s = io->s;
    uint64_t e;
    int r;

    if (blk < io->skip_to)
        return 0;
    r = qed_entry_checked(s, blk, &e);
    if (r < 0)
        return r;
    if (e <= QED_ZERO) {
        pthread_mutex_lock(&s->alloc_lock);
        r = qed_entry_checked(s, blk, &e);
        if (r == 0 && e <= QED_ZERO) {
            if (chunk == s->h.cluster_size)
                r = qed_alloc_run(io, blk, done);
            else
                r = qed_alloc_cluster(io, blk, e, in, chunk, done);
        }
        pthread_mutex_unlock(&s->alloc_lock);
        if (r < 0 || e <= QED_ZERO)
            return r;
    }
    return bd_pwrite(io->n->file, io->wbuf + done, chunk, e + in, io->flags);
}

static int qed_flush_if(struct qed_io *io, int r)
{
    /* FUA covers the table entries that make the data reachable */
    if (r == 0 && io->allocated && (io->flags & BD_REQ_FUA))
        return bd_flush(io->n->file);
    return r;
}

int qed_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
               unsigned flags)
{
    struct qed_io io = { .n = n, .s = n->state, .wbuf = buf, .len = len,
                         .flags = flags };
    int r;

    r = bd_for_each_block(off, len, io.s->h.cluster_size, qed_write_block, &io);
    return qed_flush_if(&io, r);
}

/*
 * Zeroes allocate nothing they can avoid: a whole cluster over a backing
 * becomes a zero cluster, a cluster already reading as zeroes stays, and
 * an allocated cluster keeps its place and has its bytes zeroed (punched
 * with BD_REQ_MAY_UNMAP). Only part of a cluster over a backing needs a
 * new cluster.
 */
static int qed_zero_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                          uint64_t done)
{
    struct qed_io *io = ctx;
    struct qed_state *s = io->s;
    bool whole = chunk == s->h.cluster_size;
    uint64_t e;
    int r;

    r = qed_entry_checked(s, blk, &e);
    if (r < 0)
        return r;
    if (e > QED_ZERO)
        return bd_pwrite_zeroes(io->n->file, chunk, e + in, io->flags);
    if (e == QED_ZERO || !io->n->backing)
        return 0;
    pthread_mutex_lock(&s->alloc_lock);
    r = qed_entry_checked(s, blk, &e);
    if (r == 0 && e == QED_UNALLOCATED) {
        if (whole) {
            r = qed_mark_dirty(s);
            if (r == 0)
                r = qed_entry_set(s, blk, QED_ZERO);
            io->allocated = true;
        } else {
            r = qed_alloc_cluster(io, blk, e, in, chunk, done);
        }
        e = QED_ZERO;
    }
    pthread_mutex_unlock(&s->alloc_lock);
    if (r < 0 || e <= QED_ZERO)
        return r;
    return bd_pwrite_zeroes(io->n->file, chunk, e + in, io->flags);
}

int qed_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                      unsigned flags)
{
    struct qed_io io = { .n = n, .s = n->state, .flags = flags };
    int r;

    r = bd_for_each_block(off, len, io.s->h.cluster_size, qed_zero_block, &io);
    return qed_flush_if(&io, r);
}

/*
 * QED cannot give clusters back (no reference counts, and the spec has no
 * free list), so discard punches the bytes of whole allocated clusters out
 * of the file: they read as zeroes and use no space, and the cluster stays
 * where it is. Parts of clusters and clusters of the backing are left.
 */
static int qed_discard_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                             uint64_t done)
{
    struct qed_io *io = ctx;
    uint64_t e;
    int r;

    (void)done;
    if (chunk != io->s->h.cluster_size)
        return 0;
    r = qed_entry_checked(io->s, blk, &e);
    if (r < 0 || e <= QED_ZERO)
        return r;
    return bd_pwrite_zeroes(io->n->file, chunk, e + in, BD_REQ_MAY_UNMAP);
}

int qed_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct qed_io io = { .n = n, .s = n->state };

    return bd_for_each_block(off, len, io.s->h.cluster_size, qed_discard_block,
                             &io);
}

int qed_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                     uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct qed_state *s = n->state;
    uint64_t cs = s->h.cluster_size, blk = off >> s->cluster_bits, e, next, done;
    uint64_t span = (uint64_t)s->table_entries;
    int r;

    r = qed_entry_checked(s, blk, &e);
    if (r < 0)
        return r;
    done = cs - (off & (cs - 1));
    while (done < len) {
        uint64_t nb = blk + 1;

        /* a whole L2 table that is not there is one unallocated run */
        if (e == QED_UNALLOCATED && nb % span == 0 &&
            __atomic_load_n(&s->l1[nb / span], __ATOMIC_ACQUIRE) == 0) {
            done += span * cs;
            blk += span;
            continue;
        }
        r = qed_entry_checked(s, nb, &next);
        if (r < 0)
            break;
        if (e <= QED_ZERO ? next != e : next != e + (nb - (off >> s->cluster_bits)) * cs)
            break;
        done += cs;
        blk = nb;
    }
    *pnum = done < len ? done : len;
    if (e == QED_UNALLOCATED) {
        *status = 0;
    } else if (e == QED_ZERO) {
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
    } else {
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        *map = e + (off & (cs - 1));
    }
    return 0;
}
