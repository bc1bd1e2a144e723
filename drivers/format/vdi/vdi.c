/*
 * vdi: VirtualBox disk images, static and dynamic (format version 1.1).
 * Decodes the header and the block map, maps guest offsets to blocks and
 * appends blocks on write. Differencing and undo images (parents found by
 * UUID in VirtualBox's media registry) are refused, not followed.
 */
#include "core/bd.h"
#include "core/overflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define VDI_SIGNATURE       0xbeda107fu
#define VDI_VERSION_1_1     0x00010001u
#define VDI_HEADER_OFF      0x40u       /* after the 64-byte text line */
#define VDI_HEADER_MIN      0x180u      /* header bytes from 0x48, v1.1 */
#define VDI_HEADER_BYTES    512u        /* what we read and write back */
#define VDI_TYPE_DYNAMIC    1u
#define VDI_TYPE_STATIC     2u
#define VDI_TYPE_UNDO       3u
#define VDI_TYPE_DIFF       4u
#define VDI_BLOCK_FREE      0xffffffffu /* unallocated: reads as zeroes */
#define VDI_BLOCK_ZERO      0xfffffffeu /* allocated as zero, no data */
#define VDI_MAX_BLOCKS      (1u << 26)  /* 256 MiB of map in memory */
#define VDI_MAX_BLOCK_SIZE  (256u << 20)
#define VDI_DEFAULT_BLOCK   (1u << 20)
#define VDI_OFF_ALLOCATED   0x184u      /* blocks_allocated in the header */

struct vdi_header {
    uint32_t signature;
    uint32_t version;
    uint32_t header_size;
    uint32_t type;
    uint32_t flags;
    uint32_t bmap_off;
    uint32_t data_off;
    uint32_t sector_size;
    uint64_t disk_size;
    uint32_t block_size;
    uint32_t block_extra;
    uint32_t blocks;
    uint32_t allocated;
    uint8_t uuid_image[16];
    uint8_t uuid_parent[16];
};

struct vdi_state {
    struct vdi_header h;
    uint64_t size;              /* guest bytes, a multiple of 512 */
    uint64_t slot_size;         /* block_extra + block_size */
    uint32_t *bmap;             /* native order; atomics for readers */
    uint32_t *retired_bmap;     /* the map before a resize widened it */
    uint32_t next_slot;         /* where the next block is appended */
    uint32_t allocated;         /* the header's count as we keep it */
    pthread_mutex_t lock;       /* block allocation */
    bool lock_init;
};

/* ---- on-disk structures ------------------------------------------------ */

static void vdi_header_decode(const uint8_t *b, struct vdi_header *h)
{
    h->signature = bd_le32(b + 0x40);
    h->version = bd_le32(b + 0x44);
    h->header_size = bd_le32(b + 0x48);
    h->type = bd_le32(b + 0x4c);
    h->flags = bd_le32(b + 0x50);
    h->bmap_off = bd_le32(b + 0x154);
    h->data_off = bd_le32(b + 0x158);
    h->sector_size = bd_le32(b + 0x168);
    h->disk_size = bd_le64(b + 0x170);
    h->block_size = bd_le32(b + 0x178);
    h->block_extra = bd_le32(b + 0x17c);
    h->blocks = bd_le32(b + 0x180);
    h->allocated = bd_le32(b + 0x184);
    memcpy(h->uuid_image, b + 0x188, 16);
    memcpy(h->uuid_parent, b + 0x1b8, 16);
}

static void vdi_uuid_str(const uint8_t *u, char *out)
{
    /* VirtualBox stores RTUUIDs with the first three fields little endian */
    snprintf(out, 37, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             bd_le32(u), bd_le16(u + 4), bd_le16(u + 6), u[8], u[9], u[10], u[11],
             u[12], u[13], u[14], u[15]);
}

/* ---- open ---------------------------------------------------------------- */

static int vdi_check_header(struct bd_node *n, uint64_t fsize, struct bd_err *err)
{
    struct vdi_state *s = n->state;
    const struct vdi_header *h = &s->h;

    if (h->signature != VDI_SIGNATURE)
        return bd_err_set(err, EINVAL, "%s: not a vdi image (bad signature 0x%08x)",
                          n->name, h->signature);
    if (h->version >> 16 != 1)
        return bd_err_set(err, ENOTSUP, "%s: vdi version %u.%u is not supported "
                          "(only 1.1)", n->name, h->version >> 16,
                          h->version & 0xffff);
    if (h->header_size < VDI_HEADER_MIN)
        return bd_err_set(err, EINVAL, "%s: vdi header size %u is too small "
                          "(at least %u expected)", n->name, h->header_size,
                          VDI_HEADER_MIN);
    if (h->type == VDI_TYPE_DIFF || h->type == VDI_TYPE_UNDO)
        return bd_err_set(err, ENOTSUP, "%s: vdi %s images are not supported; "
                          "merge it into its parent in VirtualBox first", n->name,
                          h->type == VDI_TYPE_DIFF ? "differencing" : "undo");
    if (h->type != VDI_TYPE_DYNAMIC && h->type != VDI_TYPE_STATIC)
        return bd_err_set(err, ENOTSUP, "%s: vdi image type %u is not supported",
                          n->name, h->type);
    if (h->sector_size != BD_SECTOR)
        return bd_err_set(err, ENOTSUP, "%s: vdi sector size %u is not supported "
                          "(only 512)", n->name, h->sector_size);
    if (h->block_size < BD_SECTOR || h->block_size % BD_SECTOR ||
        h->block_size > VDI_MAX_BLOCK_SIZE)
        return bd_err_set(err, EINVAL, "%s: invalid vdi block size %u (a multiple "
                          "of 512 up to 256 MiB expected)", n->name, h->block_size);
    if (h->block_extra > VDI_MAX_BLOCK_SIZE)
        return bd_err_set(err, EINVAL, "%s: invalid vdi extra block data size %u",
                          n->name, h->block_extra);
    if (h->blocks > VDI_MAX_BLOCKS)
        return bd_err_set(err, EINVAL, "%s: vdi block count %u is too large (at "
                          "most %u supported)", n->name, h->blocks, VDI_MAX_BLOCKS);
    if ((uint64_t)h->blocks * h->block_size < h->disk_size)
        return bd_err_set(err, EINVAL, "%s: vdi disk size %llu is larger than its "
                          "%u blocks of %u bytes", n->name,
                          (unsigned long long)h->disk_size, h->blocks, h->block_size);
    if (h->allocated > h->blocks)
        return bd_err_set(err, EINVAL, "%s: vdi header says %u blocks are allocated "
                          "out of %u", n->name, h->allocated, h->blocks);
    if (h->bmap_off < VDI_HEADER_OFF + 8 + (uint64_t)h->header_size ||
        !ovf_range_ok(h->bmap_off, (uint64_t)h->blocks * 4, fsize))
        return bd_err_set(err, EINVAL, "%s: vdi block map (%u entries at offset %u) "
                          "overlaps the header or lies beyond the end of the file",
                          n->name, h->blocks, h->bmap_off);
    if (h->data_off < (uint64_t)h->bmap_off + (uint64_t)h->blocks * 4)
        return bd_err_set(err, EINVAL, "%s: vdi data offset %u overlaps the block "
                          "map", n->name, h->data_off);
    return 0;
}

static int vdi_load_bmap(struct bd_node *n, uint64_t fsize, struct bd_err *err)
{
    struct vdi_state *s = n->state;
    uint32_t max_slot = 0, count = 0;
    bool any = false;
    int r;

    r = bd_read_u32_table(n->file, s->h.bmap_off, s->h.blocks, false, &s->bmap,
                          n->name, "vdi block map", err);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < s->h.blocks; i++) {
        uint32_t e = s->bmap[i];

        if (e >= VDI_BLOCK_ZERO)
            continue;
        if (e >= s->h.blocks ||
            !ovf_range_ok(s->h.data_off + (uint64_t)e * s->slot_size, s->slot_size,
                          fsize))
            return bd_err_set(err, EINVAL, "%s: vdi block %u points to data block "
                              "%u, beyond the end of the file (%llu bytes)", n->name,
                              i, e, (unsigned long long)fsize);
        if (!any || e > max_slot)
            max_slot = e;
        any = true;
        count++;
    }
    /* a block written before a crash may not be counted in the header yet;
     * the next allocation writes the true count */
    s->allocated = count;
    s->next_slot = any && max_slot + 1 > s->allocated ? max_slot + 1 : s->allocated;
    return 0;
}

static int vdi_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    struct vdi_state *s = n->state;
    uint8_t raw[VDI_HEADER_BYTES];
    uint64_t fsize;
    int r;

    (void)o;
    r = bd_read_image_header(n->file, n->name, "vdi", raw, sizeof(raw), &fsize,
                             err);
    if (r < 0)
        return r;
    vdi_header_decode(raw, &s->h);
    s->slot_size = (uint64_t)s->h.block_extra + s->h.block_size;
    r = vdi_check_header(n, fsize, err);
    if (r < 0)
        return r;
    s->size = bd_align_down(s->h.disk_size, BD_SECTOR);
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return bd_err_set(err, ENOMEM, "%s: cannot create a lock", n->name);
    s->lock_init = true;
    return vdi_load_bmap(n, fsize, err);
}

static void vdi_close(struct bd_node *n)
{
    struct vdi_state *s = n->state;

    free(s->bmap);
    free(s->retired_bmap);
    if (s->lock_init)
        pthread_mutex_destroy(&s->lock);
}

static int vdi_probe(const uint8_t *head, size_t len)
{
    if (len >= VDI_HEADER_OFF + 8 && bd_le32(head + VDI_HEADER_OFF) == VDI_SIGNATURE)
        return 100;
    return 0;
}

static void vdi_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct vdi_state *s = n->state;

    lim->request_alignment = BD_SECTOR;
    lim->opt_transfer = s->h.block_size;
}

static int64_t vdi_size(struct bd_node *n)
{
    struct vdi_state *s = n->state;

    return (int64_t)s->size;
}

/* ---- I/O ----------------------------------------------------------------- */

static uint32_t vdi_bmap_get(struct vdi_state *s, uint64_t blk)
{
    return __atomic_load_n(&s->bmap[blk], __ATOMIC_ACQUIRE);
}

static uint64_t vdi_data_off(struct vdi_state *s, uint32_t slot)
{
    return s->h.data_off + (uint64_t)slot * s->slot_size + s->h.block_extra;
}

/* One request, as the per-block callbacks of bd_for_each_block() see it. */
struct vdi_io {
    struct bd_node *n;
    struct vdi_state *s;
    uint8_t *rbuf;              /* reads */
    const uint8_t *wbuf;        /* writes */
    unsigned flags;             /* BD_REQ_* */
    bool grew;                  /* a block was allocated */
};

static int vdi_read_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                          uint64_t done)
{
    struct vdi_io *io = ctx;
    uint32_t e = vdi_bmap_get(io->s, blk);

    if (e >= VDI_BLOCK_ZERO) {
        memset(io->rbuf + done, 0, chunk);
        return 0;
    }
    return bd_pread(io->n->file, io->rbuf + done, chunk, vdi_data_off(io->s, e) + in);
}

static int vdi_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vdi_io io = { .n = n, .s = n->state, .rbuf = buf };

    return bd_for_each_block(off, len, io.s->h.block_size, vdi_read_block, &io);
}

/*
 * Append a zeroed block for guest block blk: zero its slot (it may hold a
 * block leaked by a crash) and count it in the header, flush, then point
 * the map at it. A crash leaves at worst a counted block no entry points
 * at (a leak), never a map entry pointing at garbage, nor one the header
 * does not count: QEMU appends its next block at the header's count, and
 * would hand that block out twice.
 */
static int vdi_alloc_block(struct bd_node *n, uint64_t blk, uint32_t *entry)
{
    struct vdi_state *s = n->state;
    uint64_t off, end;
    struct bd_err e2;
    uint8_t le[4];
    int64_t fsize;
    uint32_t slot;
    int r;

    pthread_mutex_lock(&s->lock);
    *entry = vdi_bmap_get(s, blk);
    if (*entry < VDI_BLOCK_ZERO) {
        r = 0;
        goto out_unlock;
    }
    slot = s->next_slot;
    if (slot >= s->h.blocks) {
        /* every slot is taken: the map is inconsistent (duplicates) */
        r = -ENOSPC;
        goto out_unlock;
    }
    off = s->h.data_off + (uint64_t)slot * s->slot_size;
    end = off + s->slot_size;
    fsize = bd_size(n->file);
    if (fsize < 0) {
        r = (int)fsize;
        goto out_unlock;
    }
    if ((uint64_t)fsize > off) {
        r = bd_pwrite_zeroes(n->file, (uint64_t)fsize < end ? (uint64_t)fsize - off
                                                            : s->slot_size, off, 0);
        if (r < 0)
            goto out_unlock;
    }
    if ((uint64_t)fsize < end) {
        bd_err_clear(&e2);
        r = bd_truncate(n->file, end, BD_PREALLOC_OFF, &e2);
        if (r < 0)
            goto out_unlock;
    }
    if (s->allocated < s->h.blocks) {
        bd_put_le32(le, s->allocated + 1);
        r = bd_pwrite(n->file, le, 4, VDI_OFF_ALLOCATED, 0);
        if (r < 0)
            goto out_unlock;
        s->allocated++;
    }
    r = bd_flush(n->file);
    if (r < 0)
        goto out_unlock;
    s->next_slot = slot + 1;
    bd_put_le32(le, slot);
    r = bd_pwrite(n->file, le, 4, s->h.bmap_off + blk * 4, 0);
    if (r < 0)
        goto out_unlock;
    __atomic_store_n(&s->bmap[blk], slot, __ATOMIC_RELEASE);
    *entry = slot;
out_unlock:
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int vdi_write_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                           uint64_t done)
{
    struct vdi_io *io = ctx;
    uint32_t e = vdi_bmap_get(io->s, blk);
    int r;

    if (e >= VDI_BLOCK_ZERO) {
        r = vdi_alloc_block(io->n, blk, &e);
        if (r < 0)
            return r;
        io->grew = true;
    }
    return bd_pwrite(io->n->file, io->wbuf + done, chunk,
                     vdi_data_off(io->s, e) + in, io->flags);
}

static int vdi_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                      uint64_t off, unsigned flags)
{
    struct vdi_io io = { .n = n, .s = n->state, .wbuf = buf, .flags = flags };
    int r;

    r = bd_for_each_block(off, len, io.s->h.block_size, vdi_write_block, &io);
    if (r < 0)
        return r;
    /* FUA covers the map entries that make the data reachable */
    if (io.grew && (flags & BD_REQ_FUA))
        return bd_flush(n->file);
    return 0;
}

/* Zeroes without allocating: free and zero blocks already read as zeroes. */
static int vdi_zero_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                          uint64_t done)
{
    struct vdi_io *io = ctx;
    uint32_t e = vdi_bmap_get(io->s, blk);

    (void)done;
    if (e >= VDI_BLOCK_ZERO)
        return 0;
    return bd_pwrite_zeroes(io->n->file, chunk, vdi_data_off(io->s, e) + in,
                            io->flags);
}

static int vdi_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                             unsigned flags)
{
    struct vdi_io io = { .n = n, .s = n->state, .flags = flags };

    return bd_for_each_block(off, len, io.s->h.block_size, vdi_zero_block, &io);
}

static int vdi_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                            uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vdi_state *s = n->state;
    uint64_t bs = s->h.block_size, blk = off / bs, done;
    uint32_t e = vdi_bmap_get(s, blk), next;

    done = bs - off % bs;
    /* extend over blocks in the same state (and physically contiguous) */
    while (done < len) {
        next = vdi_bmap_get(s, ++blk);
        if (e >= VDI_BLOCK_ZERO ? next != e : next != e + (blk - off / bs))
            break;
        done += bs;
    }
    *pnum = done < len ? done : len;
    if (e == VDI_BLOCK_FREE) {
        *status = 0;
    } else if (e == VDI_BLOCK_ZERO) {
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
    } else {
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        *map = vdi_data_off(s, e) + off % bs;
    }
    return 0;
}

static void vdi_info(struct bd_node *n, struct bd_info *info)
{
    struct vdi_state *s = n->state;
    char uuid[40];

    bd_info_add(info, "subformat", "%s",
                s->h.type == VDI_TYPE_STATIC ? "static" : "dynamic");
    bd_info_add(info, "block size", "%u", s->h.block_size);
    bd_info_add(info, "blocks", "%u", s->h.blocks);
    bd_info_add(info, "blocks allocated", "%u", s->allocated);
    vdi_uuid_str(s->h.uuid_image, uuid);
    bd_info_add(info, "uuid", "%s", uuid);
}

/* ---- resize (growable mounts) -------------------------------------------- */

/* The file is at least `end` bytes long (never cut). */
static int vdi_file_at_least(struct bd_node *n, uint64_t end)
{
    int64_t fsize = bd_size(n->file);
    struct bd_err e2 = { 0 };

    if (fsize < 0)
        return (int)fsize;
    if ((uint64_t)fsize >= end)
        return 0;
    return bd_truncate(n->file, end, BD_PREALLOC_OFF, &e2);
}

/* Write map entries [a, b) from s->bmap, allocated ones moved by shift. */
static int vdi_bmap_write(struct bd_node *n, uint64_t bmap_off, uint64_t a,
                          uint64_t b, int64_t shift)
{
    struct vdi_state *s = n->state;
    uint8_t *raw;
    int r;

    if (a >= b)
        return 0;
    raw = malloc((b - a) * 4);
    if (!raw)
        return -ENOMEM;
    for (uint64_t i = a; i < b; i++) {
        uint32_t e = i < s->h.blocks ? s->bmap[i] : VDI_BLOCK_FREE;
        bd_put_le32(raw + (i - a) * 4, e < VDI_BLOCK_ZERO ? (uint32_t)(e + shift) : e);
    }
    r = bd_pwrite(n->file, raw, (b - a) * 4, bmap_off + a * 4, 0);
    free(raw);
    return r;
}

/*
 * Make room for a map of `blocks` entries before the data: the first m
 * data slots are copied to the end of the file (each map entry switched
 * after its copy is flushed), the new map is written where they were, and
 * one header sector write then names the new map, the data start m slots
 * later and the block count together. A crash leaves the old layout with
 * leaked slots. Caller holds s->lock; I/O racing the switch itself may
 * see the new start with an old entry (a truncate during I/O).
 */
static int vdi_map_relocate(struct bd_node *n, uint32_t blocks, uint8_t *hdr)
{
    struct vdi_state *s = n->state;
    uint64_t m = bd_align_up((uint64_t)blocks * 4, BD_SECTOR);
    uint64_t new_bmap = s->h.data_off, new_data;
    uint8_t *buf;
    int r = 0;

    m = (m + s->slot_size - 1) / s->slot_size;
    new_data = s->h.data_off + m * s->slot_size;
    if (new_data > UINT32_MAX || s->next_slot + m > VDI_MAX_BLOCKS)
        return -EFBIG;
    buf = malloc(s->slot_size);
    if (!buf)
        return -ENOMEM;
    if (s->next_slot < m)
        s->next_slot = (uint32_t)m;
    for (uint32_t i = 0; i < s->h.blocks && r == 0; i++) {
        uint32_t e = s->bmap[i], to = s->next_slot;
        if (e >= m)
            continue;
        uint64_t dst = s->h.data_off + (uint64_t)to * s->slot_size;
        r = bd_pread(n->file, buf, s->slot_size, s->h.data_off + e * s->slot_size);
        if (r == 0)
            r = vdi_file_at_least(n, dst + s->slot_size);
        if (r == 0)
            r = bd_pwrite(n->file, buf, s->slot_size, dst, 0);
        if (r == 0)
            r = bd_flush(n->file);
        if (r == 0) {
            __atomic_store_n(&s->bmap[i], to, __ATOMIC_RELEASE);
            s->next_slot = to + 1;
            r = vdi_bmap_write(n, s->h.bmap_off, i, i + 1, 0);
        }
    }
    free(buf);
    if (r == 0)
        r = vdi_file_at_least(n, new_data);
    if (r == 0)
        r = vdi_bmap_write(n, new_bmap, 0, blocks, -(int64_t)m);
    if (r == 0)
        r = bd_flush(n->file);
    if (r < 0)
        return r;
    bd_put_le32(hdr + 0x154, (uint32_t)new_bmap);
    bd_put_le32(hdr + 0x158, (uint32_t)new_data);
    s->h.bmap_off = (uint32_t)new_bmap;
    s->h.data_off = (uint32_t)new_data;
    for (uint32_t i = 0; i < s->h.blocks; i++)
        if (s->bmap[i] < VDI_BLOCK_ZERO)
            s->bmap[i] -= (uint32_t)m;
    s->next_slot -= (uint32_t)m;
    return 0;
}

/* The map for `size` (hdr gets its fields); s->lock held. */
static int vdi_resize_map(struct bd_node *n, uint64_t size, uint8_t *hdr)
{
    struct vdi_state *s = n->state;
    uint64_t bs = s->h.block_size, lo = size < s->size ? size : s->size;
    uint64_t need = (size + bs - 1) / bs, first = (lo + bs - 1) / bs;
    uint32_t old = s->h.blocks;
    int r;

    /* shrinking: only over blocks that hold nothing */
    for (uint64_t i = first; size < s->size && i < (s->size + bs - 1) / bs; i++)
        if (s->bmap[i] < VDI_BLOCK_ZERO)
            return -ENOTEMPTY;
    if (need > old) {
        uint32_t *map = malloc(need * 4);
        if (!map)
            return -ENOMEM;
        memcpy(map, s->bmap, (size_t)old * 4);
        /* lock-free readers may still hold the old map: kept until the
         * next widening or close */
        free(s->retired_bmap);
        s->retired_bmap = s->bmap;
        __atomic_store_n(&s->bmap, map, __ATOMIC_RELEASE);
        for (uint64_t i = old; i < need; i++)
            map[i] = VDI_BLOCK_FREE;
        if (s->h.bmap_off + need * 4 > s->h.data_off) {
            r = vdi_map_relocate(n, (uint32_t)need, hdr);
        } else {
            r = vdi_bmap_write(n, s->h.bmap_off, old, need, 0);
        }
        if (r < 0)
            return r;
        s->h.blocks = (uint32_t)need;
        bd_put_le32(hdr + 0x180, (uint32_t)need);
    }
    /* growing: blocks past the old end read as zeroes, whatever the map
     * said of them, and so does the kept block's tail */
    for (uint64_t i = first; size > s->size && i < need && i < old; i++) {
        if (s->bmap[i] < VDI_BLOCK_ZERO && s->allocated)
            s->allocated--;
        s->bmap[i] = VDI_BLOCK_FREE;
    }
    r = vdi_bmap_write(n, s->h.bmap_off, first, need < old ? need : old, 0);
    if (r == 0 && lo % bs && s->bmap[lo / bs] < VDI_BLOCK_ZERO)
        r = bd_pwrite_zeroes(n->file, bs - lo % bs,
                             vdi_data_off(s, s->bmap[lo / bs]) + lo % bs, 0);
    return r;
}

/* The map first, a static image's new blocks next, the header's size
 * (one sector, with everything else it changes) last. */
static int vdi_resize(struct bd_node *n, uint64_t size, uint8_t *hdr)
{
    struct vdi_state *s = n->state;
    uint64_t bs = s->h.block_size;
    int r;

    pthread_mutex_lock(&s->lock);
    r = vdi_resize_map(n, size, hdr);
    pthread_mutex_unlock(&s->lock);
    if (r == 0 && s->h.type == VDI_TYPE_STATIC)
        for (uint64_t i = (s->size + bs - 1) / bs; i < (size + bs - 1) / bs && r == 0; i++)
            r = vdi_alloc_block(n, i, &(uint32_t){ 0 });
    if (r == 0)
        r = bd_flush(n->file);
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    bd_put_le32(hdr + VDI_OFF_ALLOCATED, s->allocated);
    bd_put_le64(hdr + 0x170, size);
    r = bd_pwrite(n->file, hdr, VDI_HEADER_BYTES, 0, 0);
    if (r == 0)
        r = bd_flush(n->file);
    if (r == 0) {
        s->h.disk_size = size;
        s->size = size;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int vdi_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                        struct bd_err *err)
{
    struct vdi_state *s = n->state;
    uint8_t hdr[VDI_HEADER_BYTES];
    int r;

    (void)prealloc;
    if (size % BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: a vdi's size is a whole number of "
                          "512-byte sectors, %llu is not", n->name,
                          (unsigned long long)size);
    if ((size + s->h.block_size - 1) / s->h.block_size > VDI_MAX_BLOCKS)
        return bd_err_set(err, EFBIG, "%s: %llu bytes is more than a vdi of "
                          "%u-byte blocks can hold here", n->name,
                          (unsigned long long)size, s->h.block_size);
    r = bd_pread(n->file, hdr, sizeof(hdr), 0);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the vdi header: %s",
                          n->name, strerror(-r));
    r = vdi_resize(n, size, hdr);
    if (r == -ENOTEMPTY)
        return bd_err_set(err, ENOTSUP, "%s: cannot shrink to %llu bytes: vdi "
                          "blocks past that hold data (vdi shrinks only over "
                          "unallocated blocks; zero or discard them first)",
                          n->name, (unsigned long long)size);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot resize to %llu bytes: %s",
                          n->name, (unsigned long long)size, strerror(-r));
    return 0;
}

/* ---- check --------------------------------------------------------------- */

/*
 * Two guest blocks sharing a data block is corruption (a write to one shows
 * in the other); a header count that disagrees with the map, and data
 * blocks nothing points to at the end of the file, are leaks: harmless,
 * and repaired by rewriting the count and cutting the file.
 */
static int vdi_check(struct bd_node *n, unsigned fix, struct bd_check *res,
                     struct bd_err *err)
{
    struct vdi_state *s = n->state;
    uint8_t *used = calloc(s->h.blocks ? s->h.blocks : 1, 1);
    uint32_t count = 0, end_slot = 0;
    int64_t fsize;
    uint64_t end;
    int r = 0;

    if (!used)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    for (uint32_t i = 0; i < s->h.blocks; i++) {
        uint32_t e = s->bmap[i];

        if (e >= VDI_BLOCK_ZERO)
            continue;
        count++;
        if (e + 1 > end_slot)
            end_slot = e + 1;
        if (used[e]++) {
            log_warn("%s: vdi block %u uses data block %u, which another block "
                     "uses too", n->name, i, e);
            res->corruptions++;
        }
    }
    free(used);
    if (count != s->h.allocated) {
        log_warn("%s: the vdi header counts %u allocated blocks, the map %u",
                 n->name, s->h.allocated, count);
        if (fix) {
            uint8_t le[4];

            bd_put_le32(le, count);
            r = bd_pwrite(n->file, le, 4, VDI_OFF_ALLOCATED, 0);
            if (r < 0)
                return bd_err_set(err, -r, "%s: cannot write the vdi header: %s",
                                  n->name, strerror(-r));
            s->h.allocated = s->allocated = count;
            res->leaks_fixed++;
        } else {
            res->leaks++;
        }
    }
    fsize = bd_size(n->file);
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    end = s->h.data_off + (uint64_t)end_slot * s->slot_size;
    if (s->h.type == VDI_TYPE_DYNAMIC && (uint64_t)fsize >= end + s->slot_size) {
        log_warn("%s: %llu bytes of unused vdi data blocks at the end of the file",
                 n->name, (unsigned long long)((uint64_t)fsize - end));
        if (fix) {
            r = bd_truncate(n->file, end, BD_PREALLOC_OFF, err);
            if (r < 0)
                return r;
            s->next_slot = end_slot;
            res->leaks_fixed++;
        } else {
            res->leaks++;
        }
    }
    return 0;
}

/* ---- create -------------------------------------------------------------- */

static void vdi_random_uuid(uint8_t *u)
{
    if (getrandom(u, 16, 0) != 16) {
        for (int i = 0; i < 16; i++)
            u[i] = (uint8_t)rand();
    }
    /* version 4 in the little-endian time_hi field, RFC 4122 variant */
    u[7] = (uint8_t)((u[7] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

static int vdi_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                      struct bd_err *err)
{
    static const char text[] = "<<< Oracle VM VirtualBox Disk Image >>>\n";
    uint8_t h[VDI_HEADER_BYTES];
    uint64_t disk = bd_align_up(size, BD_SECTOR), blocks, bmap_bytes, data_off;
    bool is_static = false;
    uint8_t *bmap;
    int r;

    r = bd_opts_get_bool(o, "static", false, &is_static, err);
    if (r < 0 && r != -ENOENT)
        return r;
    blocks = (disk + VDI_DEFAULT_BLOCK - 1) / VDI_DEFAULT_BLOCK;
    if (blocks > VDI_MAX_BLOCKS)
        return bd_err_set(err, EFBIG, "disk size %llu is too large for vdi (at most "
                          "%llu)", (unsigned long long)size,
                          (unsigned long long)VDI_MAX_BLOCKS * VDI_DEFAULT_BLOCK);
    bmap_bytes = bd_align_up(blocks * 4, BD_SECTOR);
    data_off = VDI_HEADER_BYTES + bmap_bytes;
    if (data_off > UINT32_MAX)
        return bd_err_set(err, EFBIG, "disk size %llu is too large for vdi",
                          (unsigned long long)size);

    memset(h, 0, sizeof(h));
    memcpy(h, text, sizeof(text) - 1);
    bd_put_le32(h + 0x40, VDI_SIGNATURE);
    bd_put_le32(h + 0x44, VDI_VERSION_1_1);
    bd_put_le32(h + 0x48, VDI_HEADER_MIN);
    bd_put_le32(h + 0x4c, is_static ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC);
    bd_put_le32(h + 0x154, VDI_HEADER_BYTES);
    bd_put_le32(h + 0x158, (uint32_t)data_off);
    bd_put_le32(h + 0x168, BD_SECTOR);
    bd_put_le64(h + 0x170, disk);
    bd_put_le32(h + 0x178, VDI_DEFAULT_BLOCK);
    bd_put_le32(h + 0x180, (uint32_t)blocks);
    bd_put_le32(h + 0x184, is_static ? (uint32_t)blocks : 0);
    vdi_random_uuid(h + 0x188);
    vdi_random_uuid(h + 0x198);

    bmap = malloc(bmap_bytes ? bmap_bytes : 1);
    if (!bmap)
        return bd_err_set(err, ENOMEM, "no memory for the vdi block map");
    memset(bmap, 0, bmap_bytes);
    for (uint64_t i = 0; i < blocks; i++)
        bd_put_le32(bmap + 4 * i, is_static ? (uint32_t)i : VDI_BLOCK_FREE);
    /* static: the blocks exist (sparse zeroes) and are all in the map */
    r = bd_truncate(file, data_off + (is_static ? blocks * VDI_DEFAULT_BLOCK : 0),
                    BD_PREALLOC_OFF, err);
    if (r == 0)
        r = bd_pwrite(file, h, sizeof(h), 0, 0);
    if (r == 0)
        r = bd_pwrite(file, bmap, bmap_bytes, VDI_HEADER_BYTES, 0);
    free(bmap);
    if (r < 0 && !err->errnum)
        bd_err_set(err, -r, "cannot write the vdi metadata: %s", strerror(-r));
    return r;
}

static const char *const vdi_create_options[] = { "static", NULL };

static const struct bd_create_ops vdi_create_ops = {
    .options = vdi_create_options,
    .create = vdi_create,
};

const struct bd_driver bd_drv_vdi = {
    .name = "vdi",
    .kind = BD_FORMAT,
    .state_size = sizeof(struct vdi_state),
    .parallel = true,
    .probe = vdi_probe,
    .open = vdi_open,
    .close = vdi_close,
    .limits = vdi_limits,
    .size = vdi_size,
    .pread = vdi_pread,
    .pwrite = vdi_pwrite,
    .pwrite_zeroes = vdi_pwrite_zeroes,
    .truncate = vdi_truncate,
    .block_status = vdi_block_status,
    .info = vdi_info,
    .check = vdi_check,
    .create = &vdi_create_ops,
};
