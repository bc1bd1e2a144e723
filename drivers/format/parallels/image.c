/*
 * parallels: one image file. Decodes the 64-byte header and the BAT of
 * "WithoutFreeSpace" (v1, entries in sectors) and "WithouFreSpacExt" (v2,
 * entries in clusters) images and maps the virtual disk onto the file.
 * Read-only: nothing here writes. Bundles (several files) are parallels.c's.
 */
#include "parallels.h"
#include "core/overflow.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* QEMU's limits: a cluster below 2 GiB, a BAT below 2 GiB */
#define PRL_MAX_CLUSTER_SECTORS ((uint32_t)INT32_MAX / 513)
#define PRL_MAX_BAT_ENTRIES     ((uint32_t)INT32_MAX / 4)

struct prl_header {
    uint8_t magic[16];
    uint32_t version;
    uint32_t heads;
    uint32_t cylinders;
    uint32_t tracks;            /* cluster size in sectors */
    uint32_t bat_entries;
    uint64_t nb_sectors;
    uint32_t in_use;
    uint32_t data_off;          /* sectors */
    uint32_t flags;
    uint64_t ext_off;           /* sectors */
};

static void prl_header_decode(const uint8_t *b, struct prl_header *h)
{
    memcpy(h->magic, b, 16);
    h->version = bd_le32(b + 16);
    h->heads = bd_le32(b + 20);
    h->cylinders = bd_le32(b + 24);
    h->tracks = bd_le32(b + 28);
    h->bat_entries = bd_le32(b + 32);
    h->nb_sectors = bd_le64(b + 36);
    h->in_use = bd_le32(b + 44);
    h->data_off = bd_le32(b + 48);
    h->flags = bd_le32(b + 52);
    h->ext_off = bd_le64(b + 56);
}

static int prl_header_check(struct prl_image *img, const struct prl_header *h,
                            struct bd_err *err)
{
    if (memcmp(h->magic, "WithoutFreeSpace", 16) == 0)
        img->v2 = false;
    else if (memcmp(h->magic, "WithouFreSpacExt", 16) == 0)
        img->v2 = true;
    else
        return bd_err_set(err, EINVAL, "%s: not a parallels image (bad magic)",
                          img->name);
    if (h->version != PRL_VERSION)
        return bd_err_set(err, ENOTSUP, "%s: parallels header version %u is not "
                          "supported (only 2)", img->name, h->version);
    if (h->tracks == 0)
        return bd_err_set(err, EINVAL, "%s: invalid parallels image: zero "
                          "sectors per cluster", img->name);
    if (h->tracks > PRL_MAX_CLUSTER_SECTORS)
        return bd_err_set(err, EINVAL, "%s: invalid parallels image: cluster of "
                          "%u sectors is too big", img->name, h->tracks);
    if (h->bat_entries > PRL_MAX_BAT_ENTRIES)
        return bd_err_set(err, EFBIG, "%s: parallels catalog of %u entries is "
                          "too large", img->name, h->bat_entries);
    return 0;
}

/*
 * Keep the BAT entries the disk can use that lie in the file: QEMU reads
 * past the end of a file as zeroes, so entries beyond it are unallocated,
 * and memory stays bounded by the file however large the header claims.
 */
static int prl_load_bat(struct prl_image *img, struct bd_err *err)
{
    uint64_t want = img->bat_entries, in_file = 0, need;
    uint8_t *raw;
    int r;

    if (img->file_size > PRL_HEADER_BYTES)
        in_file = (img->file_size - PRL_HEADER_BYTES) / 4;
    need = img->size / img->cluster_size + (img->size % img->cluster_size != 0);
    if (want > in_file)
        want = in_file;
    if (want > need)
        want = need;
    img->bat_loaded = (uint32_t)want;
    img->bat = malloc(want ? want * 4 : 4);
    raw = malloc(want ? want * 4 : 4);
    if (!img->bat || !raw) {
        free(raw);
        return bd_err_set(err, ENOMEM, "%s: no memory for the parallels "
                          "catalog (%llu entries)", img->name,
                          (unsigned long long)want);
    }
    r = bd_pread(img->file, raw, want * 4, PRL_HEADER_BYTES);
    if (r < 0) {
        free(raw);
        return bd_err_set(err, -r, "%s: cannot read the parallels catalog: %s",
                          img->name, strerror(-r));
    }
    for (uint64_t i = 0; i < want; i++) {
        img->bat[i] = bd_le32(raw + 4 * i);
        if (img->bat[i])
            img->allocated++;
    }
    free(raw);
    return 0;
}

int prl_image_open(struct prl_image *img, struct bd_err *err)
{
    uint8_t raw[PRL_HEADER_BYTES];
    struct prl_header h;
    int r;

    r = bd_read_image_header(img->file, img->name, "parallels", raw,
                             sizeof(raw), &img->file_size, err);
    if (r < 0)
        return r;
    prl_header_decode(raw, &h);
    r = prl_header_check(img, &h, err);
    if (r < 0)
        return r;
    img->heads = h.heads;
    img->cylinders = h.cylinders;
    img->cluster_size = h.tracks * BD_SECTOR;
    img->bat_entries = h.bat_entries;
    img->in_use = h.in_use;
    img->flags = h.flags;
    img->off_unit = img->v2 ? img->cluster_size : BD_SECTOR;
    /* v1: only the low 32 bits of the sector count are defined */
    if (!img->v2)
        h.nb_sectors &= UINT32_MAX;
    if (h.nb_sectors > (uint64_t)INT64_MAX / BD_SECTOR)
        return bd_err_set(err, EFBIG, "%s: parallels disk size of %llu sectors "
                          "is too large", img->name,
                          (unsigned long long)h.nb_sectors);
    img->size = h.nb_sectors * BD_SECTOR;
    img->data_off = h.data_off ? (uint64_t)h.data_off * BD_SECTOR :
        bd_align_up(PRL_HEADER_BYTES + 4 * (uint64_t)h.bat_entries, BD_SECTOR);
    r = prl_load_bat(img, err);
    if (r < 0)
        return r;
    if (h.ext_off) {
        img->ext.present = true;
        /* an offset in sectors: below 2^55 it cannot overflow */
        if (h.ext_off < ((uint64_t)1 << 54))
            prl_ext_parse(img, h.ext_off * BD_SECTOR);
        else
            snprintf(img->ext.problem, sizeof(img->ext.problem),
                     "its offset is beyond any file");
        if (!img->ext.valid)
            log_warn("%s: parallels format extension ignored: %s", img->name,
                     img->ext.problem);
    }
    return 0;
}

int prl_image_open_plain(struct prl_image *img, uint64_t size,
                         struct bd_err *err)
{
    int64_t fsize = bd_size(img->file);

    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          img->name, strerror((int)-fsize));
    img->plain = true;
    img->file_size = (uint64_t)fsize;
    img->size = size;
    return 0;
}

void prl_image_close(struct prl_image *img)
{
    free(img->bat);
    img->bat = NULL;
    if (img->own_file && img->file)
        bd_node_close(img->file);
    img->file = NULL;
}

/* ---- I/O ----------------------------------------------------------------- */

/* Where block blk's data is in the file, or 0 when it reads as zeroes. */
static uint64_t prl_block_off(const struct prl_image *img, uint64_t blk)
{
    if (blk >= img->bat_loaded)
        return 0;
    return img->bat[blk] * img->off_unit;
}

/* file bytes [off, off+len), those past the file's end as zeroes */
static int prl_read_file(struct prl_image *img, uint8_t *buf, uint64_t len,
                         uint64_t off)
{
    uint64_t have = 0;

    if (off < img->file_size)
        have = img->file_size - off < len ? img->file_size - off : len;
    if (have < len)
        memset(buf + have, 0, len - have);
    return have ? bd_pread(img->file, buf, have, off) : 0;
}

static int prl_read_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                          uint64_t done)
{
    struct prl_image *img = ((void **)ctx)[0];
    uint8_t *buf = ((void **)ctx)[1];
    uint64_t host = prl_block_off(img, blk);

    if (!host) {
        memset(buf + done, 0, chunk);
        return 0;
    }
    return prl_read_file(img, buf + done, chunk, host + in);
}

int prl_image_pread(struct prl_image *img, uint8_t *buf, uint64_t len,
                    uint64_t off)
{
    void *ctx[2] = { img, buf };

    if (img->plain)
        return prl_read_file(img, buf, len, off);
    return bd_for_each_block(off, len, img->cluster_size, prl_read_block, ctx);
}

void prl_image_status(struct prl_image *img, uint64_t off, uint64_t len,
                      uint64_t *pnum, unsigned *status, uint64_t *map)
{
    uint64_t cs = img->cluster_size, blk, done, host, next;

    if (img->plain) {
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        if (ovf_range_ok(off, len, img->file_size)) {
            *status |= BD_STATUS_OFFSET;
            *map = off;
        }
        return;
    }
    blk = off / cs;
    host = prl_block_off(img, blk);
    done = cs - off % cs;
    /* extend over clusters in the same state, contiguous in the file;
     * past the catalog all is unallocated (a huge disk, a small catalog) */
    while (done < len) {
        blk++;
        if (!host && blk >= img->bat_loaded) {
            done = len;
            break;
        }
        next = prl_block_off(img, blk);
        if (host ? next != host + (blk - off / cs) * cs : next != 0)
            break;
        done += cs;
    }
    *pnum = done < len ? done : len;
    if (!host) {
        *status = 0;
        return;
    }
    *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
    if (ovf_range_ok(host + off % cs, *pnum, img->file_size)) {
        *status |= BD_STATUS_OFFSET;
        *map = host + off % cs;
    }
}

void prl_image_info(struct prl_image *img, const char *prefix,
                    struct bd_info *info)
{
    const struct prl_ext_info *e = &img->ext;

    if (img->plain) {
        bd_info_add(info, prefix, "plain");
        return;
    }
    bd_info_add(info, prefix, "%s", img->v2 ? "WithouFreSpacExt (v2)" :
                "WithoutFreeSpace (v1)");
    bd_info_add(info, "cluster size", "%u", img->cluster_size);
    bd_info_add(info, "catalog entries", "%u", img->bat_entries);
    bd_info_add(info, "clusters allocated", "%u", img->allocated);
    bd_info_add(info, "geometry", "%u cylinders, %u heads", img->cylinders,
                img->heads);
    bd_info_add(info, "in use", "%s", img->in_use == PRL_INUSE_OPEN ? "yes "
                "(not closed cleanly)" : "no");
    if (img->flags & PRL_FLAG_EMPTY)
        bd_info_add(info, "empty image flag", "set");
    if (!e->present)
        return;
    if (!e->valid) {
        bd_info_add(info, "format extension", "ignored: %s", e->problem);
        return;
    }
    bd_info_add(info, "format extension", "%u dirty bitmap(s), %u unknown "
                "feature(s), checksum %s", e->bitmaps, e->unknown,
                e->checksum_ok ? "ok" : "mismatch");
    if (e->bitmaps)
        bd_info_add(info, "dirty bitmap", "granularity %llu, %u table entries",
                    (unsigned long long)e->bitmap_granularity,
                    e->bitmap_l1_size);
}
