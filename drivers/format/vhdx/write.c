/*
 * VHDX writes: the header update that starts a write session, in-place
 * writes, block allocation at the end of the file, sector bitmaps of
 * differencing images, and zeroing. Every BAT or bitmap change goes through
 * the log (log.c), after the data it points at is stable; writing the
 * headers themselves is header.c's.
 */
#include "vhdx.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

#define VHDX_COMMIT_MAX 64u     /* metadata sectors per log entry */

/* Before the first write (2.2.2): new FileWriteGuid, DataWriteGuid, and a
 * LogGuid for the entries this session writes. */
static int vhdx_session_begin(struct bd_node *n)
{
    struct vhdx_state *s = n->state;
    int ret;

    if (s->session)
        return 0;
    if ((ret = vhdx_random_guid(s->hdr.file_write_guid)) < 0 ||
        (ret = vhdx_random_guid(s->hdr.data_write_guid)) < 0 ||
        (ret = vhdx_random_guid(s->hdr.log_guid)) < 0)
        return ret;
    s->log_pos = 0;
    s->log_seq = 1;
    ret = vhdx_headers_write(n);
    if (ret < 0)
        return ret;
    s->session = true;
    return 0;
}

int vhdx_session_end(struct bd_node *n)
{
    struct vhdx_state *s = n->state;
    int ret;

    ret = bd_flush(n->file);
    if (ret < 0)
        return ret;
    memset(s->hdr.log_guid, 0, 16);
    ret = vhdx_headers_write(n);
    s->session = false;
    return ret;
}

int vhdx_flush(struct bd_node *n)
{
    return bd_flush(n->file);
}

/* ---- metadata commits ------------------------------------------------------ */

/* A set of 4 KiB metadata sectors to rewrite through one log entry. */
struct vhdx_txn {
    unsigned count;
    uint64_t offs[VHDX_COMMIT_MAX];
    uint8_t *sec[VHDX_COMMIT_MAX];
};

static void txn_free(struct vhdx_txn *t)
{
    for (unsigned i = 0; i < t->count; i++)
        free(t->sec[i]);
    t->count = 0;
}

/* The sector at off, added (read from the file) if not yet in the txn. */
static uint8_t *txn_sector(struct bd_node *n, struct vhdx_txn *t, uint64_t off,
                           bool read)
{
    uint8_t *p;

    for (unsigned i = 0; i < t->count; i++) {
        if (t->offs[i] == off)
            return t->sec[i];
    }
    if (t->count == VHDX_COMMIT_MAX)
        return NULL;
    p = malloc(VHDX_LOG_SECTOR);
    if (!p)
        return NULL;
    if (read && vhdx_file_read(n, p, VHDX_LOG_SECTOR, off) < 0) {
        free(p);
        return NULL;
    }
    t->offs[t->count] = off;
    t->sec[t->count++] = p;
    return p;
}

/* Add the BAT sector holding entry idx, encoded from the in-memory BAT. */
static int txn_add_bat(struct bd_node *n, struct vhdx_txn *t, uint64_t idx)
{
    struct vhdx_state *s = n->state;
    uint64_t first = idx / 512 * 512;
    uint8_t *p = txn_sector(n, t, s->bat_off + first * 8, false);

    if (!p)
        return -ENOMEM;
    for (unsigned i = 0; i < 512; i++)
        bd_put_le64(p + 8 * i, s->bat[first + i]);
    return 0;
}

static int txn_commit(struct bd_node *n, struct vhdx_txn *t)
{
    int ret = 0;

    if (t->count)
        ret = vhdx_log_commit(n, t->offs, (const uint8_t *const *)t->sec,
                              t->count);
    txn_free(t);
    return ret;
}

/* ---- allocation ------------------------------------------------------------ */

static uint64_t payload_index(const struct vhdx_state *s, uint64_t blk)
{
    return blk + blk / s->chunk_ratio;
}

/* Grow the file by len bytes (1 MiB aligned start); returns the offset. */
static int vhdx_grow(struct bd_node *n, uint64_t len, uint64_t *where)
{
    struct vhdx_state *s = n->state;
    struct bd_err err = {0};
    uint64_t off = bd_align_up(s->file_size, VHDX_MiB);
    int ret;

    ret = bd_truncate(n->file, off + len, BD_PREALLOC_OFF, &err);
    if (ret < 0)
        return ret;
    s->file_size = s->eff_size = off + len;
    *where = off;
    return 0;
}

/* Set the sector bitmap bits of [off, off + len) (one block) in txn. */
static int vhdx_bitmap_set(struct bd_node *n, struct vhdx_txn *t, uint64_t off,
                           uint64_t len, bool *changed)
{
    struct vhdx_state *s = n->state;
    uint64_t chunk_bytes = VHDX_SECTORS_PER_BITMAP << s->lsec_bits;
    uint64_t chunk = off / chunk_bytes;
    uint64_t sb = chunk * (s->chunk_ratio + 1) + s->chunk_ratio;
    uint64_t first = (off % chunk_bytes) >> s->lsec_bits;
    uint64_t nsec = len >> s->lsec_bits;
    uint64_t base;
    int ret;

    if (VHDX_BAT_STATE(s->bat[sb]) != VHDX_SB_PRESENT) {
        ret = vhdx_grow(n, VHDX_BITMAP_BLOCK, &base);
        if (ret < 0)
            return ret;
        s->bat[sb] = VHDX_BAT_ENTRY(VHDX_SB_PRESENT, base);
        ret = txn_add_bat(n, t, sb);
        if (ret < 0)
            return ret;
        *changed = true;
    }
    base = VHDX_BAT_OFF(s->bat[sb]);
    for (uint64_t i = first; i < first + nsec; i++) {
        uint64_t byte = i / 8;
        uint8_t *p = txn_sector(n, t, base + byte / VHDX_LOG_SECTOR * VHDX_LOG_SECTOR,
                                true);
        uint8_t bit = (uint8_t)(1u << (i % 8));

        if (!p)
            return -ENOMEM;
        if (!(p[byte % VHDX_LOG_SECTOR] & bit)) {
            p[byte % VHDX_LOG_SECTOR] |= bit;
            *changed = true;
        }
    }
    return 0;
}

/* Does a block in this state read as zeroes from this layer? */
static bool state_reads_zero(const struct vhdx_state *s, unsigned st)
{
    switch (st) {
    case VHDX_PAYLOAD_FULLY_PRESENT:
    case VHDX_PAYLOAD_PARTIALLY_PRESENT:
        return false;
    case VHDX_PAYLOAD_NOT_PRESENT:
        return !s->has_parent;
    default:
        return true;
    }
}

/*
 * Write into a block that has no data in this file: give it space (its old
 * offset if a zero-state block kept one, else the end of the file), write,
 * make it stable, then point the BAT at it through the log.
 */
static int vhdx_write_new_block(struct bd_node *n, uint64_t blk,
                                const uint8_t *buf, uint64_t in, uint64_t len,
                                uint64_t off)
{
    struct vhdx_state *s = n->state;
    uint64_t idx = payload_index(s, blk);
    uint64_t old = s->bat[idx], old_sb = 0, sb = 0, foff;
    unsigned st = VHDX_BAT_STATE(old), new_st = VHDX_PAYLOAD_FULLY_PRESENT;
    struct vhdx_txn t = { 0 };
    bool changed = false;
    int ret;

    if (s->has_parent && st == VHDX_PAYLOAD_NOT_PRESENT && len < s->block_size)
        new_st = VHDX_PAYLOAD_PARTIALLY_PRESENT;
    foff = VHDX_BAT_OFF(old);
    if (st != VHDX_PAYLOAD_NOT_PRESENT &&
        vhdx_is_payload_range(s, foff, s->block_size) &&
        ovf_range_ok(foff, s->block_size, s->file_size)) {
        /* reuse the kept space: it must read as zero outside the write */
        ret = bd_pwrite_zeroes(n->file, in, foff, 0);
        if (ret == 0)
            ret = bd_pwrite_zeroes(n->file, s->block_size - in - len,
                                   foff + in + len, 0);
        if (ret < 0)
            return ret;
    } else {
        ret = vhdx_grow(n, s->block_size, &foff);
        if (ret < 0)
            return ret;
    }
    ret = bd_pwrite(n->file, buf, len, foff + in, 0);
    if (ret < 0)
        return ret;
    if (new_st == VHDX_PAYLOAD_PARTIALLY_PRESENT) {
        uint64_t chunk_bytes = VHDX_SECTORS_PER_BITMAP << s->lsec_bits;
        sb = (off / chunk_bytes) * (s->chunk_ratio + 1) + s->chunk_ratio;
        old_sb = s->bat[sb];
        ret = vhdx_bitmap_set(n, &t, off, len, &changed);
        if (ret < 0)
            goto fail;
    }
    /* data (and a fresh bitmap block) stable before the BAT points at it */
    if ((ret = bd_flush(n->file)) < 0)
        goto fail;
    s->bat[idx] = VHDX_BAT_ENTRY(new_st, foff);
    if ((ret = txn_add_bat(n, &t, idx)) < 0)
        goto fail;
    if ((ret = txn_commit(n, &t)) < 0)
        goto fail;
    return 0;
fail:
    txn_free(&t);
    s->bat[idx] = old;
    if (new_st == VHDX_PAYLOAD_PARTIALLY_PRESENT)
        s->bat[sb] = old_sb;
    return ret;
}

static int vhdx_write_partial(struct bd_node *n, const uint8_t *buf,
                              uint64_t len, uint64_t off, uint64_t foff)
{
    struct vhdx_state *s = n->state;
    struct vhdx_txn t = { 0 };
    bool changed = false;
    uint64_t chunk_bytes = VHDX_SECTORS_PER_BITMAP << s->lsec_bits;
    uint64_t sb = (off / chunk_bytes) * (s->chunk_ratio + 1) + s->chunk_ratio;
    uint64_t old_sb = s->bat[sb];
    int ret;

    ret = bd_pwrite(n->file, buf, len, foff, 0);
    if (ret < 0)
        return ret;
    ret = vhdx_bitmap_set(n, &t, off, len, &changed);
    if (ret < 0 || !changed)
        goto out;
    if ((ret = bd_flush(n->file)) < 0)
        goto out;
    ret = txn_commit(n, &t);
out:
    txn_free(&t);
    if (ret < 0)
        s->bat[sb] = old_sb;
    return ret;
}

static int vhdx_pwrite_locked(struct bd_node *n, const uint8_t *p,
                              uint64_t len, uint64_t off)
{
    struct vhdx_state *s = n->state;
    int ret = 0;

    while (ret == 0 && len) {
        uint64_t blk = off >> s->block_bits;
        uint64_t in = off & (s->block_size - 1);
        uint64_t chunk = s->block_size - in < len ? s->block_size - in : len;
        uint64_t e = s->bat[payload_index(s, blk)];

        switch (VHDX_BAT_STATE(e)) {
        case VHDX_PAYLOAD_FULLY_PRESENT:
            ret = bd_pwrite(n->file, p, chunk, VHDX_BAT_OFF(e) + in, 0);
            break;
        case VHDX_PAYLOAD_PARTIALLY_PRESENT:
            ret = vhdx_write_partial(n, p, chunk, off, VHDX_BAT_OFF(e) + in);
            break;
        default:
            ret = vhdx_write_new_block(n, blk, p, in, chunk, off);
            break;
        }
        p += chunk;
        off += chunk;
        len -= chunk;
    }
    return ret;
}

int vhdx_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
                unsigned flags)
{
    struct vhdx_state *s = n->state;
    int ret;

    pthread_rwlock_wrlock(&s->lock);
    ret = vhdx_session_begin(n);
    if (ret == 0)
        ret = vhdx_pwrite_locked(n, buf, len, off);
    if (ret == 0 && (flags & BD_REQ_FUA))
        ret = bd_flush(n->file);
    pthread_rwlock_unlock(&s->lock);
    return ret;
}

/* Zeroes through a buffer, for blocks the fast paths cannot handle. */
static int vhdx_write_zero_buf(struct bd_node *n, uint64_t len, uint64_t off)
{
    static const size_t step = VHDX_MiB;
    uint8_t *z = calloc(1, step);
    int ret = 0;

    if (!z)
        return -ENOMEM;
    while (ret == 0 && len) {
        uint64_t c = len < step ? len : step;
        ret = vhdx_pwrite_locked(n, z, c, off);
        off += c;
        len -= c;
    }
    free(z);
    return ret;
}

#define VHDX_UNDO_MAX 256u

struct vhdx_undo {
    unsigned count;
    struct { uint64_t idx, old; } e[VHDX_UNDO_MAX];
};

/*
 * Commit the pending ZERO-state changes; with unmap, then give the space of
 * the blocks that had data back to the file system (the BAT keeps the
 * offset, and a later write zeroes what it does not cover).
 */
static int zero_commit(struct bd_node *n, struct vhdx_txn *t,
                       struct vhdx_undo *u, bool unmap)
{
    struct vhdx_state *s = n->state;
    int ret = txn_commit(n, t);

    if (ret < 0)
        return ret;
    for (unsigned i = 0; unmap && !s->leave_alloc && i < u->count; i++) {
        unsigned st = VHDX_BAT_STATE(u->e[i].old);
        if (st == VHDX_PAYLOAD_FULLY_PRESENT ||
            st == VHDX_PAYLOAD_PARTIALLY_PRESENT)
            (void)bd_discard(n->file, s->block_size, VHDX_BAT_OFF(u->e[i].old));
    }
    u->count = 0;
    return 0;
}

int vhdx_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                       unsigned flags)
{
    struct vhdx_state *s = n->state;
    struct vhdx_txn t = { 0 };
    struct vhdx_undo *u = calloc(1, sizeof(*u));
    bool unmap = flags & BD_REQ_MAY_UNMAP;
    int ret;

    if (!u)
        return -ENOMEM;
    pthread_rwlock_wrlock(&s->lock);
    ret = vhdx_session_begin(n);
    while (ret == 0 && len) {
        uint64_t blk = off >> s->block_bits;
        uint64_t in = off & (s->block_size - 1);
        uint64_t chunk = s->block_size - in < len ? s->block_size - in : len;
        uint64_t idx = payload_index(s, blk);
        uint64_t e = s->bat[idx];
        unsigned st = VHDX_BAT_STATE(e);

        if (chunk == s->block_size && st != VHDX_PAYLOAD_ZERO) {
            /* whole block: ZERO state, keeping its space for reuse */
            uint64_t keep = st == VHDX_PAYLOAD_FULLY_PRESENT ||
                            st == VHDX_PAYLOAD_PARTIALLY_PRESENT
                            ? VHDX_BAT_OFF(e) : 0;
            if (u->count == VHDX_UNDO_MAX || t.count >= VHDX_COMMIT_MAX - 1) {
                if ((ret = zero_commit(n, &t, u, unmap)) < 0)
                    break;
            }
            u->e[u->count].idx = idx;
            u->e[u->count++].old = e;
            s->bat[idx] = VHDX_BAT_ENTRY(VHDX_PAYLOAD_ZERO, keep);
            ret = txn_add_bat(n, &t, idx);
        } else if (chunk == s->block_size || state_reads_zero(s, st)) {
            /* already zero here */
        } else if (st == VHDX_PAYLOAD_FULLY_PRESENT) {
            ret = bd_pwrite_zeroes(n->file, chunk, VHDX_BAT_OFF(e) + in, 0);
        } else if (flags & BD_REQ_NO_FALLBACK) {
            ret = -ENOTSUP;     /* only a write of zeroes would do */
        } else {
            /* pending BAT changes first: the buffered write commits too */
            if ((ret = zero_commit(n, &t, u, unmap)) < 0)
                break;
            ret = vhdx_write_zero_buf(n, chunk, off);
        }
        off += chunk;
        len -= chunk;
    }
    if (ret == 0)
        ret = zero_commit(n, &t, u, unmap);
    if (ret < 0) {
        while (u->count--)
            s->bat[u->e[u->count].idx] = u->e[u->count].old;
    }
    txn_free(&t);
    free(u);
    if (ret == 0 && (flags & BD_REQ_FUA))
        ret = bd_flush(n->file);
    pthread_rwlock_unlock(&s->lock);
    return ret;
}

/* Discard whole blocks only: they become ZERO blocks and their space is
 * returned to the file system; partial blocks are left as they are. */
int vhdx_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct vhdx_state *s = n->state;
    uint64_t start = bd_align_up(off, s->block_size);
    uint64_t end = bd_align_down(off + len, s->block_size);

    if (start >= end)
        return 0;
    return vhdx_pwrite_zeroes(n, end - start, start, BD_REQ_MAY_UNMAP);
}

/* ---- resize (growable mounts) ---------------------------------------------- */

/* BAT entries [a, b) cleared (not present), through as many log entries as
 * they take: each leaves a valid image, for nothing past the smaller of
 * the old and new size reads them. */
static int bat_clear(struct bd_node *n, uint64_t a, uint64_t b)
{
    struct vhdx_state *s = n->state;
    struct vhdx_txn t = { 0 };
    int ret = 0;

    for (uint64_t i = a; i < b && ret == 0; i++) {
        bool sector_end = i % 512 == 511 || i + 1 == b;
        if (s->bat[i]) {
            s->bat[i] = 0;
            ret = txn_add_bat(n, &t, i);
        }
        if (ret == 0 && sector_end && t.count >= VHDX_COMMIT_MAX - 1)
            ret = txn_commit(n, &t);
    }
    if (ret == 0)
        return txn_commit(n, &t);
    txn_free(&t);
    return ret;
}

static int vhdx_resize_locked(struct bd_node *n, uint64_t size)
{
    struct vhdx_state *s = n->state;
    uint64_t bs = s->block_size, lo = size < s->vsize ? size : s->vsize;
    uint64_t pb = (size + bs - 1) >> s->block_bits;
    uint64_t entries = pb ? pb + (pb - 1) / s->chunk_ratio : 0;
    uint64_t first = payload_index(s, (lo + bs - 1) >> s->block_bits);
    struct vhdx_txn t = { 0 };
    uint8_t *p;
    int ret;

    if (entries * 8 > s->bat_len)
        return -ENOSPC;
    if (entries > s->bat_alloc) {
        size_t alloc = (size_t)bd_align_up(entries, 512);
        uint64_t *bat = realloc(s->bat, alloc * 8);
        if (!bat)
            return -ENOMEM;
        /* entries past the old table read from the file are not trusted:
         * bat_clear writes zeroes over them */
        for (size_t i = s->bat_alloc; i < alloc; i++)
            bat[i] = i < entries ? 1 : 0;
        s->bat = bat;
        s->bat_alloc = alloc;
    }
    ret = vhdx_session_begin(n);
    if (ret == 0 && lo % bs) {
        /* the kept block's tail reads as zeroes past the smaller size */
        uint64_t e = s->bat[payload_index(s, lo >> s->block_bits)];
        if (VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULLY_PRESENT)
            ret = bd_pwrite_zeroes(n->file, bs - lo % bs,
                                   VHDX_BAT_OFF(e) + lo % bs, 0);
        if (ret == 0)
            ret = bd_flush(n->file);
    }
    if (ret == 0)
        ret = bat_clear(n, first, entries > s->bat_entries ? entries
                                                           : s->bat_entries);
    if (ret < 0)
        return ret;
    p = txn_sector(n, &t, bd_align_down(s->vsize_off, VHDX_LOG_SECTOR), true);
    if (!p)
        return -ENOMEM;
    bd_put_le64(p + s->vsize_off % VHDX_LOG_SECTOR, size);
    ret = txn_commit(n, &t);
    if (ret < 0)
        return ret;
    s->vsize = size;
    s->payload_blocks = pb;
    s->bitmap_blocks = (pb + s->chunk_ratio - 1) / s->chunk_ratio;
    s->bat_entries = entries;
    return 0;
}

int vhdx_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                  struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    int ret;

    (void)prealloc;
    if (s->has_parent)
        return bd_err_set(err, ENOTSUP, "%s: a differencing vhdx has its "
                          "parent's size; resize the parent instead", n->name);
    if (size == 0 || size % s->lsec || size > VHDX_MAX_VSIZE)
        return bd_err_set(err, EINVAL, "%s: a vhdx's size is a positive "
                          "multiple of its %u-byte sectors up to 64 TiB, %llu "
                          "is not", n->name, s->lsec, (unsigned long long)size);
    if (s->vsize_off % VHDX_LOG_SECTOR > VHDX_LOG_SECTOR - 8)
        return bd_err_set(err, ENOTSUP, "%s: the vhdx virtual size item "
                          "straddles two sectors; not resizing", n->name);
    pthread_rwlock_wrlock(&s->lock);
    ret = vhdx_resize_locked(n, size);
    pthread_rwlock_unlock(&s->lock);
    if (ret == -ENOSPC)
        return bd_err_set(err, ENOSPC, "%s: the vhdx block allocation table "
                          "region (%llu bytes) has no room for %llu bytes of "
                          "disk; moving it is not supported", n->name,
                          (unsigned long long)s->bat_len,
                          (unsigned long long)size);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: cannot resize to %llu bytes: %s",
                          n->name, (unsigned long long)size, strerror(-ret));
    return 0;
}
