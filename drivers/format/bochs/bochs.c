/*
 * bochs: Bochs "growing" redolog images (header versions 1 and 2), read
 * only. Decodes the header, the catalog (one entry per extent) and the
 * per-extent sector bitmaps, and maps guest offsets to extents. Undoable
 * and volatile redologs (changes over a base image) are refused, not
 * merged; nothing is ever written.
 */
#include "core/bd.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define BOCHS_MAGIC         "Bochs Virtual HD Image"
#define BOCHS_TYPE_REDOLOG  "Redolog"
#define BOCHS_SUB_GROWING   "Growing"
#define BOCHS_SUB_UNDOABLE  "Undoable"
#define BOCHS_SUB_VOLATILE  "Volatile"
#define BOCHS_V1            0x00010000u
#define BOCHS_V2            0x00020000u
#define BOCHS_HEADER_BYTES  512u        /* the standard header's size */
#define BOCHS_FREE          0xffffffffu /* catalog: extent not allocated */
#define BOCHS_MAX_EXTENT    (8u << 20)  /* as large as QEMU accepts */

/* The header, decoded; all fields are little endian on disk. */
struct bochs_header {
    char magic[33];             /* 32 bytes at 0, NUL added */
    char type[17];              /* 16 bytes at 32 */
    char subtype[17];           /* 16 bytes at 48 */
    uint32_t version;           /* at 64 */
    uint32_t header_size;       /* at 68: where the catalog starts */
    uint32_t catalog;           /* at 72: entries */
    uint32_t bitmap_bytes;      /* at 76: per extent, one bit per sector */
    uint32_t extent_bytes;      /* at 80 */
    uint32_t timestamp;         /* at 84, version 2 only */
    uint64_t disk_bytes;        /* at 84 (v1) or 88 (v2) */
};

struct bochs_state {
    struct bochs_header h;
    uint64_t size;              /* guest bytes, a multiple of 512 */
    uint64_t data_off;          /* first extent slot */
    uint64_t slot_bytes;        /* bitmap blocks + extent, whole sectors */
    uint32_t bitmap_used;       /* bitmap bytes that cover the extent */
    uint32_t *catalog;          /* native order */
    uint32_t slots;             /* extent slots the catalog points into */
    uint8_t *bitmaps;           /* slots * bitmap_used bytes */
    uint32_t allocated;         /* catalog entries in use */
};

/* ---- on-disk structures ------------------------------------------------ */

static void bochs_str(char *out, const uint8_t *b, size_t len)
{
    memcpy(out, b, len);
    out[len] = '\0';
}

static void bochs_header_decode(const uint8_t *b, struct bochs_header *h)
{
    bochs_str(h->magic, b, 32);
    bochs_str(h->type, b + 32, 16);
    bochs_str(h->subtype, b + 48, 16);
    h->version = bd_le32(b + 64);
    h->header_size = bd_le32(b + 68);
    h->catalog = bd_le32(b + 72);
    h->bitmap_bytes = bd_le32(b + 76);
    h->extent_bytes = bd_le32(b + 80);
    if (h->version == BOCHS_V1) {
        h->timestamp = 0;
        h->disk_bytes = bd_le64(b + 84);
    } else {
        h->timestamp = bd_le32(b + 84);
        h->disk_bytes = bd_le64(b + 88);
    }
}

/* ---- open ---------------------------------------------------------------- */

static int bochs_check_kind(struct bd_node *n, struct bd_err *err)
{
    const struct bochs_header *h = &((struct bochs_state *)n->state)->h;

    if (strcmp(h->magic, BOCHS_MAGIC) != 0)
        return bd_err_set(err, EINVAL, "%s: not a bochs image (bad magic)",
                          n->name);
    if (strcmp(h->type, BOCHS_TYPE_REDOLOG) != 0)
        return bd_err_set(err, ENOTSUP, "%s: bochs image type '%s' is not "
                          "supported (only redolog images)", n->name, h->type);
    if (strcmp(h->subtype, BOCHS_SUB_UNDOABLE) == 0 ||
        strcmp(h->subtype, BOCHS_SUB_VOLATILE) == 0)
        return bd_err_set(err, ENOTSUP, "%s: bochs '%s' redolog is not "
                          "supported: it holds only the changes to a base "
                          "image; merge it into its base with "
                          "`bximage -func=commit BASE REDOLOG` and open the "
                          "base", n->name, h->subtype);
    if (strcmp(h->subtype, BOCHS_SUB_GROWING) != 0)
        return bd_err_set(err, ENOTSUP, "%s: bochs redolog subtype '%s' is not "
                          "supported (only 'Growing')", n->name, h->subtype);
    if (h->version != BOCHS_V1 && h->version != BOCHS_V2)
        return bd_err_set(err, ENOTSUP, "%s: bochs header version 0x%08x is not "
                          "supported (only 1 and 2)", n->name, h->version);
    return 0;
}

static int bochs_check_sizes(struct bd_node *n, uint64_t fsize,
                             struct bd_err *err)
{
    struct bochs_state *s = n->state;
    const struct bochs_header *h = &s->h;
    uint64_t sectors, need_bitmap, extents;

    if (h->extent_bytes < BD_SECTOR || h->extent_bytes % BD_SECTOR ||
        h->extent_bytes > BOCHS_MAX_EXTENT)
        return bd_err_set(err, EINVAL, "%s: invalid bochs extent size %" PRIu32
                          " (a multiple of 512 up to 8 MiB expected)", n->name,
                          h->extent_bytes);
    sectors = h->extent_bytes / BD_SECTOR;
    need_bitmap = (sectors + 7) / 8;
    if (h->bitmap_bytes < need_bitmap ||
        bd_align_up(h->bitmap_bytes, BD_SECTOR) != bd_align_up(need_bitmap, BD_SECTOR))
        return bd_err_set(err, EINVAL, "%s: bochs bitmap size %" PRIu32 " does "
                          "not match the extent size %" PRIu32 " (%" PRIu64
                          " bytes expected)", n->name, h->bitmap_bytes,
                          h->extent_bytes, need_bitmap);
    if (h->header_size < BOCHS_HEADER_BYTES)
        return bd_err_set(err, EINVAL, "%s: bochs header size %" PRIu32 " is too "
                          "small (at least 512 expected)", n->name, h->header_size);
    s->data_off = h->header_size + (uint64_t)h->catalog * 4;
    if (s->data_off > fsize)
        return bd_err_set(err, EINVAL, "%s: bochs catalog (%" PRIu32 " entries at "
                          "offset %" PRIu32 ") is larger than the file (%" PRIu64
                          " bytes); the image is truncated or damaged", n->name,
                          h->catalog, h->header_size, fsize);
    extents = h->disk_bytes / h->extent_bytes +
              (h->disk_bytes % h->extent_bytes != 0);
    if (extents > h->catalog)
        return bd_err_set(err, EINVAL, "%s: bochs disk size %" PRIu64 " needs %"
                          PRIu64 " extents of %" PRIu32 " bytes, but the catalog "
                          "has %" PRIu32, n->name, h->disk_bytes, extents,
                          h->extent_bytes, h->catalog);
    s->bitmap_used = (uint32_t)need_bitmap;
    s->slot_bytes = bd_align_up(need_bitmap, BD_SECTOR) + h->extent_bytes;
    s->size = bd_align_down(h->disk_bytes, BD_SECTOR);
    return 0;
}

static int bochs_load_catalog(struct bd_node *n, uint64_t fsize,
                              struct bd_err *err)
{
    struct bochs_state *s = n->state;
    uint64_t room = (fsize - s->data_off) / s->slot_bytes;
    int r;

    r = bd_read_u32_table(n->file, s->h.header_size, s->h.catalog, false,
                          &s->catalog, n->name, "bochs catalog", err);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < s->h.catalog; i++) {
        uint32_t e = s->catalog[i];

        if (e == BOCHS_FREE)
            continue;
        if (e >= room)
            return bd_err_set(err, EINVAL, "%s: bochs extent %" PRIu32 " points "
                              "to slot %" PRIu32 ", beyond the end of the file (%"
                              PRIu64 " bytes); the image is truncated or damaged",
                              n->name, i, e, fsize);
        if (e + 1 > s->slots)
            s->slots = e + 1;
        s->allocated++;
    }
    return 0;
}

/* Each slot's bitmap, once: reads then need no extra I/O to find holes. */
static int bochs_load_bitmaps(struct bd_node *n, struct bd_err *err)
{
    struct bochs_state *s = n->state;
    int r;

    s->bitmaps = calloc(s->slots ? s->slots : 1, s->bitmap_used);
    if (!s->bitmaps)
        return bd_err_set(err, ENOMEM, "%s: no memory for the bochs bitmaps",
                          n->name);
    for (uint32_t i = 0; i < s->slots; i++) {
        r = bd_pread(n->file, s->bitmaps + (size_t)i * s->bitmap_used,
                     s->bitmap_used, s->data_off + (uint64_t)i * s->slot_bytes);
        if (r < 0)
            return bd_err_set(err, -r, "%s: cannot read the bitmap of bochs "
                              "slot %" PRIu32 ": %s", n->name, i, strerror(-r));
    }
    return 0;
}

static int bochs_open(struct bd_node *n, const struct bd_opts *o,
                      struct bd_err *err)
{
    struct bochs_state *s = n->state;
    uint8_t raw[BOCHS_HEADER_BYTES];
    uint64_t fsize;
    int r;

    (void)o;
    r = bd_read_image_header(n->file, n->name, "bochs", raw, sizeof(raw),
                             &fsize, err);
    if (r < 0)
        return r;
    bochs_header_decode(raw, &s->h);
    r = bochs_check_kind(n, err);
    if (r < 0)
        return r;
    r = bochs_check_sizes(n, fsize, err);
    if (r < 0)
        return r;
    r = bochs_load_catalog(n, fsize, err);
    if (r < 0)
        return r;
    return bochs_load_bitmaps(n, err);
}

static void bochs_close(struct bd_node *n)
{
    struct bochs_state *s = n->state;

    free(s->catalog);
    free(s->bitmaps);
}

static int bochs_probe(const uint8_t *head, size_t len)
{
    /* the magic is a NUL-terminated string in a 32-byte field */
    if (len >= sizeof(BOCHS_MAGIC) &&
        memcmp(head, BOCHS_MAGIC, sizeof(BOCHS_MAGIC)) == 0)
        return 100;
    return 0;
}

static void bochs_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct bochs_state *s = n->state;

    lim->request_alignment = BD_SECTOR;
    lim->opt_transfer = s->h.extent_bytes;
}

static int64_t bochs_size(struct bd_node *n)
{
    struct bochs_state *s = n->state;

    return (int64_t)s->size;
}

/* ---- I/O ----------------------------------------------------------------- */

static bool bochs_sector_set(const struct bochs_state *s, uint32_t slot,
                             uint32_t sector)
{
    const uint8_t *bm = s->bitmaps + (size_t)slot * s->bitmap_used;

    return bm[sector / 8] >> (sector % 8) & 1;
}

/* Sectors from `sector` on, up to `end`, whose bits equal the first one's. */
static uint32_t bochs_sector_run(const struct bochs_state *s, uint32_t slot,
                                 uint32_t sector, uint32_t end, bool *set)
{
    uint32_t i = sector + 1;

    *set = bochs_sector_set(s, slot, sector);
    while (i < end && bochs_sector_set(s, slot, i) == *set)
        i++;
    return i - sector;
}

static uint64_t bochs_extent_data(const struct bochs_state *s, uint32_t slot)
{
    return s->data_off + (uint64_t)slot * s->slot_bytes +
           bd_align_up(s->bitmap_used, BD_SECTOR);
}

struct bochs_io {
    struct bd_node *n;
    uint8_t *buf;
};

/* A sector whose bit is clear was never written: it reads as zeroes. */
static int bochs_read_block(void *ctx, uint64_t blk, uint32_t in,
                            uint32_t chunk, uint64_t done)
{
    struct bochs_io *io = ctx;
    struct bochs_state *s = io->n->state;
    uint32_t slot = s->catalog[blk], sector = in / BD_SECTOR;
    uint32_t end = (in + chunk) / BD_SECTOR, run;
    uint8_t *p = io->buf + done;
    bool set;
    int r;

    if (slot == BOCHS_FREE) {
        memset(p, 0, chunk);
        return 0;
    }
    while (sector < end) {
        run = bochs_sector_run(s, slot, sector, end, &set);
        if (set) {
            r = bd_pread(io->n->file, p, (uint64_t)run * BD_SECTOR,
                         bochs_extent_data(s, slot) + (uint64_t)sector * BD_SECTOR);
            if (r < 0)
                return r;
        } else {
            memset(p, 0, (size_t)run * BD_SECTOR);
        }
        p += (size_t)run * BD_SECTOR;
        sector += run;
    }
    return 0;
}

static int bochs_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct bochs_io io = { .n = n, .buf = buf };
    struct bochs_state *s = n->state;

    return bd_for_each_block(off, len, s->h.extent_bytes, bochs_read_block, &io);
}

/* Bytes of hole (free extent or unwritten sectors) from off, up to len. */
static uint64_t bochs_hole_run(const struct bochs_state *s, uint64_t off,
                               uint64_t len)
{
    uint64_t eb = s->h.extent_bytes, done = 0, blk, in;
    uint32_t slot, run, end;
    bool set;

    while (done < len) {
        blk = (off + done) / eb;
        in = (off + done) % eb;
        slot = s->catalog[blk];
        if (slot == BOCHS_FREE) {
            done += eb - in;
            continue;
        }
        end = (uint32_t)(len - done < eb - in ? in + len - done : eb) / BD_SECTOR;
        run = bochs_sector_run(s, slot, (uint32_t)(in / BD_SECTOR), end, &set);
        if (set)
            break;
        done += (uint64_t)run * BD_SECTOR;
        if (run * BD_SECTOR < end * BD_SECTOR - in)
            break;
    }
    return done < len ? done : len;
}

/*
 * Written sectors are data at their place in the file; free extents and
 * never-written sectors are holes (no backing file: they read as zeroes).
 * A hole runs on across extents; data stops at its extent's end, since
 * the next extent's bitmap lies between the two.
 */
static int bochs_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                              uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct bochs_state *s = n->state;
    uint64_t eb = s->h.extent_bytes, in = off % eb;
    uint32_t slot = s->catalog[off / eb], run, end;
    bool set = false;

    if (slot != BOCHS_FREE) {
        end = (uint32_t)(len < eb - in ? in + len : eb) / BD_SECTOR;
        run = bochs_sector_run(s, slot, (uint32_t)(in / BD_SECTOR), end, &set);
    }
    if (!set) {
        *pnum = bochs_hole_run(s, off, len);
        *status = 0;
        return 0;
    }
    *pnum = (uint64_t)run * BD_SECTOR;
    *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
    *map = bochs_extent_data(s, slot) + in;
    return 0;
}

static void bochs_info(struct bd_node *n, struct bd_info *info)
{
    struct bochs_state *s = n->state;

    bd_info_add(info, "subformat", "growing");
    bd_info_add(info, "header version", "%u", s->h.version >> 16);
    bd_info_add(info, "extent size", "%" PRIu32, s->h.extent_bytes);
    bd_info_add(info, "catalog entries", "%" PRIu32, s->h.catalog);
    bd_info_add(info, "extents allocated", "%" PRIu32, s->allocated);
    if (s->h.version == BOCHS_V2)
        bd_info_add(info, "timestamp", "0x%08" PRIx32, s->h.timestamp);
}

const struct bd_driver bd_drv_bochs = {
    .name = "bochs",
    .kind = BD_FORMAT,
    .state_size = sizeof(struct bochs_state),
    .parallel = true,
    .read_only = true,
    .probe = bochs_probe,
    .open = bochs_open,
    .close = bochs_close,
    .limits = bochs_limits,
    .size = bochs_size,
    .pread = bochs_pread,
    .block_status = bochs_block_status,
    .info = bochs_info,
};
