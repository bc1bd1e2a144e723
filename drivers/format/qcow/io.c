/*
 * qcow (version 1) I/O: guest offsets to clusters through the L1 table and
 * a small cache of L2 tables, zlib-compressed clusters, the backing file for
 * unallocated clusters, and allocation at the end of the file on write.
 * Core serializes every call here (the driver is not parallel).
 */
#include "qcow.h"

#include <string.h>

/* ---- L2 tables ----------------------------------------------------------- */

static struct qcow_l2 *l2_slot(struct qcow_state *s, uint64_t off, bool *hit)
{
    struct qcow_l2 *victim = &s->l2[0];

    for (unsigned i = 0; i < QCOW_L2_CACHE; i++) {
        struct qcow_l2 *t = &s->l2[i];

        if (t->off == off) {
            *hit = true;
            return t;
        }
        if (t->off == 0 ? victim->off != 0 || t->used < victim->used
                        : victim->off != 0 && t->used < victim->used)
            victim = t;
    }
    *hit = false;
    return victim;
}

/* The L2 table at off, read into the cache; -EIO when it is not in the file. */
static int l2_load(struct bd_node *n, uint64_t off, struct qcow_l2 **out)
{
    struct qcow_state *s = n->state;
    uint64_t bytes = (uint64_t)s->l2_entries * 8;
    struct qcow_l2 *t;
    bool hit;
    int r;

    t = l2_slot(s, off, &hit);
    if (!hit) {
        if (!ovf_range_ok(off, bytes, s->file_size))
            return -EIO;
        t->off = 0;
        r = bd_pread(n->file, t->table, bytes, off);
        if (r < 0)
            return r;
        /* big endian to native, in place: each entry reads its own bytes */
        for (uint32_t i = 0; i < s->l2_entries; i++)
            t->table[i] = bd_be64((uint8_t *)t->table + 8 * (size_t)i);
        t->off = off;
    }
    t->used = ++s->tick;
    *out = t;
    return 0;
}

/* The L2 entry of guest cluster cl; 0 when unallocated. */
static int qcow_entry(struct bd_node *n, uint64_t cl, uint64_t *e)
{
    struct qcow_state *s = n->state;
    uint64_t l1i = cl >> s->h.l2_bits;
    struct qcow_l2 *t;
    int r;

    if (l1i >= s->l1_entries || s->l1[l1i] == 0) {
        *e = 0;
        return 0;
    }
    r = l2_load(n, s->l1[l1i], &t);
    if (r < 0)
        return r;
    *e = t->table[cl & (s->l2_entries - 1)];
    return 0;
}

/* Where the next cluster (or L2 table) goes: QEMU appends cluster-aligned. */
static int grow_file(struct bd_node *n, uint64_t bytes, uint64_t *at)
{
    struct qcow_state *s = n->state;
    uint64_t off = bd_align_up(s->file_size, s->cluster_size);
    struct bd_err err = { 0 };
    int r;

    if (off + bytes > INT64_MAX)
        return -EFBIG;
    r = bd_truncate(n->file, off + bytes, BD_PREALLOC_OFF, &err);
    if (r < 0)
        return r;
    s->file_size = off + bytes;
    *at = off;
    return 0;
}

/* A new, zeroed L2 table for L1 entry l1i, appended and linked. */
static int l2_alloc(struct bd_node *n, uint64_t l1i, struct qcow_l2 **out)
{
    struct qcow_state *s = n->state;
    uint64_t bytes = (uint64_t)s->l2_entries * 8, off;
    struct qcow_l2 *t;
    uint8_t be[8];
    bool hit;
    int r;

    r = grow_file(n, bytes, &off);
    if (r < 0)
        return r;
    bd_put_be64(be, off);
    r = bd_pwrite(n->file, be, 8, s->h.l1_off + 8 * l1i, 0);
    if (r < 0)
        return r;
    s->l1[l1i] = off;
    t = l2_slot(s, off, &hit);
    memset(t->table, 0, bytes);
    t->off = off;
    t->used = ++s->tick;
    *out = t;
    return 0;
}

static int qcow_set_entry(struct bd_node *n, uint64_t cl, uint64_t e)
{
    struct qcow_state *s = n->state;
    uint64_t l1i = cl >> s->h.l2_bits;
    uint32_t l2i = (uint32_t)(cl & (s->l2_entries - 1));
    struct qcow_l2 *t;
    uint8_t be[8];
    int r;

    if (s->l1[l1i] == 0)
        r = l2_alloc(n, l1i, &t);
    else
        r = l2_load(n, s->l1[l1i], &t);
    if (r < 0)
        return r;
    bd_put_be64(be, e);
    r = bd_pwrite(n->file, be, 8, t->off + 8 * (uint64_t)l2i, 0);
    if (r < 0)
        return r;
    t->table[l2i] = e;
    return 0;
}

/* ---- cluster contents ---------------------------------------------------- */

static bool is_compressed(uint64_t e)
{
    return (e & QCOW_OFLAG_COMPRESSED) != 0;
}

/* Guest bytes [off, off + len) of the backing file; zeroes past its end. */
static int read_backing(struct bd_node *n, uint8_t *buf, uint64_t len,
                        uint64_t off)
{
    struct qcow_state *s = n->state;
    uint64_t got = 0;
    int r = 0;

    if (n->backing && off < s->backing_size)
        got = s->backing_size - off < len ? s->backing_size - off : len;
    if (got)
        r = bd_pread(n->backing, buf, got, off);
    if (got < len)
        memset(buf + got, 0, len - got);
    return r;
}

static int inflate_cluster(struct qcow_state *s, uint64_t clen)
{
    int ret;

    if (!s->z_ready) {
        memset(&s->z, 0, sizeof(s->z));
        /* raw deflate (QEMU writes a 4 KiB window; -15 reads any) */
        if (inflateInit2(&s->z, -15) != Z_OK)
            return -ENOMEM;
        s->z_ready = true;
    } else if (inflateReset(&s->z) != Z_OK) {
        return -EIO;
    }
    s->z.next_in = s->cbuf;
    s->z.avail_in = (uInt)clen;
    s->z.next_out = s->cluster;
    s->z.avail_out = s->cluster_size;
    ret = inflate(&s->z, Z_FINISH);
    if (ret != Z_STREAM_END && ret != Z_BUF_ERROR && ret != Z_OK)
        return -EIO;
    /* a compressed cluster always holds a whole cluster */
    return s->z.avail_out == 0 ? 0 : -EIO;
}

/* Decompress the cluster of L2 entry e into s->cluster (cached by entry). */
static int read_compressed(struct bd_node *n, uint64_t e)
{
    struct qcow_state *s = n->state;
    unsigned shift = 63 - s->h.cluster_bits;
    uint64_t coff = e & ((1ull << shift) - 1);
    uint64_t clen = (e >> shift) & (s->cluster_size - 1);
    int r;

    if (s->cluster_entry == e)
        return 0;
    s->cluster_entry = 0;
    if (coff >= s->file_size || clen == 0)
        return -EIO;
    /* the last compressed cluster may end with the file */
    if (clen > s->file_size - coff)
        clen = s->file_size - coff;
    r = bd_pread(n->file, s->cbuf, clen, coff);
    if (r < 0)
        return r;
    r = inflate_cluster(s, clen);
    if (r < 0)
        return r;
    s->cluster_entry = e;
    return 0;
}

/* The whole current content of a compressed or unallocated cluster. */
static int cluster_content(struct bd_node *n, uint64_t cl, uint64_t e,
                           uint8_t *dst)
{
    struct qcow_state *s = n->state;
    int r;

    if (!is_compressed(e))
        return read_backing(n, dst, s->cluster_size, cl * s->cluster_size);
    r = read_compressed(n, e);
    if (r == 0)
        memcpy(dst, s->cluster, s->cluster_size);
    return r;
}

static int data_range_ok(struct qcow_state *s, uint64_t host, uint64_t len)
{
    return ovf_range_ok(host, len, s->file_size) ? 0 : -EIO;
}

/* ---- read ------------------------------------------------------------------ */

struct qcow_io {
    struct bd_node *n;
    struct qcow_state *s;
    uint8_t *rbuf;
    const uint8_t *wbuf;        /* NULL: write zeroes */
    unsigned flags;
};

static int read_chunk(void *ctx, uint64_t cl, uint32_t in, uint32_t chunk,
                      uint64_t done)
{
    struct qcow_io *io = ctx;
    struct qcow_state *s = io->s;
    uint8_t *dst = io->rbuf + done;
    uint64_t e;
    int r;

    r = qcow_entry(io->n, cl, &e);
    if (r < 0)
        return r;
    if (e == 0)
        return read_backing(io->n, dst, chunk, cl * s->cluster_size + in);
    if (is_compressed(e)) {
        r = read_compressed(io->n, e);
        if (r == 0)
            memcpy(dst, s->cluster + in, chunk);
        return r;
    }
    r = data_range_ok(s, e + in, chunk);
    if (r == 0)
        r = bd_pread(io->n->file, dst, chunk, e + in);
    if (r == 0)
        r = qcow_decrypt(s, dst, chunk, cl * s->cluster_size + in);
    return r;
}

int qcow_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct qcow_io io = { .n = n, .s = n->state, .rbuf = buf };

    return bd_for_each_block(off, len, io.s->cluster_size, read_chunk, &io);
}

/* ---- write ------------------------------------------------------------------ */

/*
 * A write to an unallocated or compressed cluster makes it a new normal
 * cluster at the end of the file, holding the old content (backing data or
 * the decompressed cluster) with the new bytes over it; the data goes out
 * before the L2 entry that points at it. The old compressed bytes stay
 * unused in the file, as in QEMU (qcow has no refcounts).
 */
static int write_new_cluster(struct qcow_io *io, uint64_t cl, uint64_t e,
                             uint32_t in, uint32_t chunk, const uint8_t *src)
{
    struct qcow_state *s = io->s;
    const uint8_t *data = src;
    uint64_t host;
    int r;

    if (chunk != s->cluster_size || !src) {
        if (chunk == s->cluster_size) {
            memset(s->rmw, 0, s->cluster_size);
        } else {
            r = cluster_content(io->n, cl, e, s->rmw);
            if (r < 0)
                return r;
            if (src)
                memcpy(s->rmw + in, src, chunk);
            else
                memset(s->rmw + in, 0, chunk);
        }
        data = s->rmw;
    }
    r = grow_file(io->n, s->cluster_size, &host);
    if (r < 0)
        return r;
    r = qcow_write_data(io->n, data, s->cluster_size, host,
                        cl * s->cluster_size);
    if (r < 0)
        return r;
    return qcow_set_entry(io->n, cl, host);
}

static int write_chunk(void *ctx, uint64_t cl, uint32_t in, uint32_t chunk,
                       uint64_t done)
{
    struct qcow_io *io = ctx;
    const uint8_t *src = io->wbuf ? io->wbuf + done : NULL;
    uint64_t e;
    int r;

    r = qcow_entry(io->n, cl, &e);
    if (r < 0)
        return r;
    if (e == 0 || is_compressed(e))
        return write_new_cluster(io, cl, e, in, chunk, src);
    r = data_range_ok(io->s, e + in, chunk);
    if (r < 0)
        return r;
    if (!src && !io->s->crypt)
        return bd_pwrite_zeroes(io->n->file, chunk, e + in,
                                io->flags & BD_REQ_MAY_UNMAP);
    return qcow_write_data(io->n, src, chunk, e + in,
                           cl * io->s->cluster_size + in);
}

int qcow_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
                unsigned flags)
{
    struct qcow_io io = { .n = n, .s = n->state, .wbuf = buf, .flags = flags };
    int r;

    r = bd_for_each_block(off, len, io.s->cluster_size, write_chunk, &io);
    if (r == 0 && (flags & BD_REQ_FUA))
        r = bd_flush(n->file);
    return r;
}

/*
 * qcow has no zero flag: a cluster already reading as zeroes is left alone,
 * a whole one that may be unmapped, with no backing data under it, becomes
 * unallocated (its storage is punched out and never reused: qcow has no
 * refcounts), and any other one gets zeroes written into it.
 */
static int zero_chunk(void *ctx, uint64_t cl, uint32_t in, uint32_t chunk,
                      uint64_t done)
{
    struct qcow_io *io = ctx;
    bool no_backing = !io->n->backing ||
                      cl * io->s->cluster_size >= io->s->backing_size;
    uint64_t e;
    int r;

    r = qcow_entry(io->n, cl, &e);
    if (r < 0)
        return r;
    if (e == 0 && no_backing)
        return 0;
    if (no_backing && chunk == io->s->cluster_size &&
        (io->flags & BD_REQ_MAY_UNMAP)) {
        r = qcow_set_entry(io->n, cl, 0);
        if (r == 0 && !is_compressed(e) &&
            data_range_ok(io->s, e, io->s->cluster_size) == 0)
            (void)bd_discard(io->n->file, io->s->cluster_size, e);
        return r;
    }
    if ((e == 0 || is_compressed(e)) && (io->flags & BD_REQ_NO_FALLBACK))
        return -ENOTSUP;
    return write_chunk(ctx, cl, in, chunk, done);
}

int qcow_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                       unsigned flags)
{
    struct qcow_io io = { .n = n, .s = n->state, .flags = flags };
    int r;

    r = bd_for_each_block(off, len, io.s->cluster_size, zero_chunk, &io);
    if (r == 0 && (flags & BD_REQ_FUA))
        r = bd_flush(n->file);
    return r;
}

/* ---- block status ------------------------------------------------------------ */

enum qcow_kind { QCOW_UNALLOCATED, QCOW_COMPRESSED, QCOW_DATA };

static enum qcow_kind entry_kind(uint64_t e)
{
    if (e == 0)
        return QCOW_UNALLOCATED;
    return is_compressed(e) ? QCOW_COMPRESSED : QCOW_DATA;
}

int qcow_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                      uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct qcow_state *s = n->state;
    uint64_t cs = s->cluster_size, cl = off / cs, in = off % cs, done, e, next;
    enum qcow_kind kind;
    int r;

    r = qcow_entry(n, cl, &e);
    if (r < 0)
        return r;
    kind = entry_kind(e);
    done = cs - in;
    /* extend over clusters in the same state (data: contiguous in the file) */
    for (uint64_t k = 1; done < len; k++) {
        r = qcow_entry(n, cl + k, &next);
        if (r < 0)
            return r;
        if (entry_kind(next) != kind || (kind == QCOW_DATA && next != e + k * cs))
            break;
        done += cs;
    }
    *pnum = done < len ? done : len;
    switch (kind) {
    case QCOW_UNALLOCATED:
        *status = 0;
        break;
    case QCOW_COMPRESSED:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        break;
    case QCOW_DATA:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        /* a cluster past the end of the file is only an error on read */
        if (!s->crypt && ovf_range_ok(e + in, *pnum, s->file_size)) {
            *status |= BD_STATUS_OFFSET;
            *map = e + in;
        }
        break;
    }
    return 0;
}

void qcow_io_free(struct qcow_state *s)
{
    if (s->z_ready)
        inflateEnd(&s->z);
    s->z_ready = false;
}
