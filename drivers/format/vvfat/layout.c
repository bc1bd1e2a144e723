/*
 * vvfat layout: the disk's geometry (QEMU's sizes: a 504 MiB partitioned
 * disk, 31.5 MiB for FAT12, floppies of 1.44 and 2.88 MB; larger FAT32 disks
 * with size=), where each directory and file lies (contiguous cluster runs,
 * directories first), and the sectors made rather than read: MBR, boot
 * sector, FSInfo, FAT and directory entries.
 */
#include "vvfat.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

static uint32_t fat_bytes(unsigned type, uint64_t entries)
{
    uint64_t b = type == 12 ? (entries * 3 + 1) / 2 : entries * (type / 8);
    return (uint32_t)((b + BD_SECTOR - 1) / BD_SECTOR);
}

static uint32_t max_clusters(unsigned type)
{
    return type == 12 ? 4084 : type == 16 ? 65524 : 0x0ffffff5 - 2;
}

/* Sizes of FAT and data area for the volume; false when the cluster count
 * is not one the FAT type may have. */
static bool size_fats(struct vvfat_geom *g)
{
    uint32_t fs = 0;
    for (;;) {
        uint64_t meta = (uint64_t)g->reserved + 2ull * fs + g->root_sectors;
        if (meta >= g->part_sectors)
            return false;
        uint32_t c = (uint32_t)((g->part_sectors - meta) / g->spc);
        if (c > max_clusters(g->fat_type))
            c = max_clusters(g->fat_type);
        uint32_t need = fat_bytes(g->fat_type, (uint64_t)c + 2);
        g->clusters = c;
        if (need <= fs)
            break;
        fs = need;
    }
    g->fat_sectors = fs;
    g->data_start = g->reserved + 2 * fs + g->root_sectors;
    if (g->fat_type == 12)
        return g->clusters < 4085;
    if (g->fat_type == 16)
        return g->clusters >= 4085 && g->clusters <= 65524;
    return g->clusters >= 65525;
}

static int floppy_geometry(struct vvfat_geom *g, unsigned fat_type,
                           const char *name, struct bd_err *err)
{
    if (fat_type == 32)
        return bd_err_set(err, EINVAL, "%s: a floppy is FAT12 or FAT16, not "
                          "FAT32; drop floppy or pick fat-type=12 or 16", name);
    g->fat_type = fat_type ? fat_type : 12;
    g->cyls = 80;
    g->heads = 2;
    g->secs = fat_type == 12 ? 18 : 36;     /* 1.44 MB, else 2.88 MB */
    g->spc = fat_type == 0 ? 2 : 1;
    g->root_entries = fat_type == 12 ? 224 : 512;
    g->media = 0xf0;
    g->part_start = 0;
    return 0;
}

static int disk_geometry(struct vvfat_geom *g, unsigned fat_type, uint64_t size,
                         const char *name, struct bd_err *err)
{
    g->fat_type = fat_type ? fat_type : 16;
    g->heads = 16;
    g->secs = 63;
    g->cyls = g->fat_type == 12 ? 64 : 1024;
    g->media = 0xf8;
    g->part_start = 63;
    g->root_entries = g->fat_type == 32 ? 0 : 512;
    g->spc = g->fat_type == 32 ? 8 : 16;
    if (!size)
        return 0;
    if (g->fat_type != 32)
        return bd_err_set(err, EINVAL, "%s: size= is for FAT32 disks (FAT12 "
                          "and FAT16 disks have QEMU's fixed sizes); add "
                          "fat-type=32 or drop size=", name);
    if (size < 64ull << 20 || size / BD_SECTOR > 0xffffffffull)
        return bd_err_set(err, EINVAL, "%s: size=%" PRIu64 " is out of range: "
                          "a FAT32 disk here is 64 MiB to 2 TiB", name, size);
    uint64_t sectors = size / BD_SECTOR;
    if (sectors > 1024ull * 16 * 63) {
        g->heads = 255;
        g->cyls = (uint32_t)(sectors / (255 * 63));
    } else {
        g->cyls = (uint32_t)(sectors / (16 * 63));
    }
    g->disk_bytes = sectors * BD_SECTOR;
    g->spc = size <= 8ull << 30 ? 8 : size <= 16ull << 30 ? 16
           : size <= 32ull << 30 ? 32 : 64;
    return 0;
}

int vvfat_geometry(struct vvfat_geom *g, unsigned fat_type, bool floppy,
                   uint64_t size, const char *name, struct bd_err *err)
{
    int r;
    memset(g, 0, sizeof(*g));
    g->floppy = floppy;
    if (floppy && size)
        return bd_err_set(err, EINVAL, "%s: size= is for FAT32 hard disks; a "
                          "floppy is 1.44 MB (fat-type=12) or 2.88 MB", name);
    r = floppy ? floppy_geometry(g, fat_type, name, err)
               : disk_geometry(g, fat_type, size, name, err);
    if (r < 0)
        return r;
    if (!g->disk_bytes)
        g->disk_bytes = (uint64_t)g->cyls * g->heads * g->secs * BD_SECTOR;
    g->part_sectors = (uint32_t)(g->disk_bytes / BD_SECTOR) - g->part_start;
    g->reserved = g->fat_type == 32 ? 32 : 1;
    g->root_sectors = g->root_entries * 32 / BD_SECTOR;
    /* a small FAT32 disk takes smaller clusters to reach FAT32's count */
    while (!size_fats(g)) {
        if (g->fat_type != 32 || g->spc == 1)
            return bd_err_set(err, EINVAL, "%s: no FAT%u layout fits this "
                              "disk size; pick another size or FAT type", name,
                              g->fat_type);
        g->spc /= 2;
    }
    return 0;
}

/* ---- where things lie ---- */

static uint32_t dir_entries(const struct vvfat_state *s, uint32_t d)
{
    const struct vvfat_obj *o = &s->objs[d];
    uint32_t n = d == 0 ? 1 : 2;        /* volume label, or "." and ".." */
    for (uint32_t i = 0; i < o->children; i++) {
        const struct vvfat_obj *k = &s->objs[o->first_child + i];
        n += 1 + (k->has_lfn ? (uint32_t)vvfat_lfn_slots(k->lfn_len) : 0);
    }
    return n;
}

static uint16_t fat_date(const struct timespec *t)
{
    struct tm tm;
    time_t sec = t->tv_sec;
    if (!localtime_r(&sec, &tm) || tm.tm_year < 80)
        return 1 << 5 | 1;                      /* 1980-01-01 */
    if (tm.tm_year > 207)
        return 127 << 9 | 12 << 5 | 31;         /* 2107-12-31 */
    return (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
}

static uint16_t fat_time(const struct timespec *t)
{
    struct tm tm;
    time_t sec = t->tv_sec;
    if (!localtime_r(&sec, &tm) || tm.tm_year < 80)
        return 0;
    if (tm.tm_year > 207)
        return 23 << 11 | 59 << 5 | 29;
    return (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
}

static void put_entry(uint8_t *e, const uint8_t name[11], uint8_t attr,
                      const struct vvfat_obj *o, uint32_t cluster, uint32_t size)
{
    memset(e, 0, 32);
    memcpy(e, name, 11);
    e[11] = attr;
    bd_put_le16(e + 14, fat_time(&o->ctime));
    bd_put_le16(e + 16, fat_date(&o->ctime));
    bd_put_le16(e + 18, fat_date(&o->atime));
    bd_put_le16(e + 20, (uint16_t)(cluster >> 16));
    bd_put_le16(e + 22, fat_time(&o->mtime));
    bd_put_le16(e + 24, fat_date(&o->mtime));
    bd_put_le16(e + 26, (uint16_t)cluster);
    bd_put_le32(e + 28, size);
}

static void fill_dir(struct vvfat_state *s, uint32_t d)
{
    struct vvfat_obj *o = &s->objs[d];
    uint8_t *e = o->dirbuf;
    if (d == 0) {
        put_entry(e, s->label, 0x08, o, 0, 0);
        e += 32;
    } else {
        static const uint8_t dot[11] = ".          ", dotdot[11] = "..         ";
        const struct vvfat_obj *p = &s->objs[o->parent];
        put_entry(e, dot, 0x10, o, o->first_cluster, 0);
        put_entry(e + 32, dotdot, 0x10, p, o->parent ? p->first_cluster : 0, 0);
        e += 64;
    }
    for (uint32_t i = 0; i < o->children; i++) {
        const struct vvfat_obj *k = &s->objs[o->first_child + i];
        if (k->has_lfn) {
            vvfat_put_lfn(e, k->lfn, k->lfn_len, vvfat_lfn_checksum(k->short_name));
            e += 32 * vvfat_lfn_slots(k->lfn_len);
        }
        put_entry(e, k->short_name, k->is_dir ? 0x10 : 0x20, k, k->first_cluster,
                  k->is_dir ? 0 : (uint32_t)k->size);
        e += 32;
    }
}

/* Clusters each object needs; the total in *need (64-bit: may not fit). */
static int count_clusters(struct vvfat_state *s, uint64_t *need,
                          const char *name, struct bd_err *err)
{
    uint32_t cb = s->g.spc * BD_SECTOR;
    *need = 0;
    for (uint32_t i = 0; i < s->nobjs; i++) {
        struct vvfat_obj *o = &s->objs[i];
        if (o->is_dir) {
            uint32_t n = dir_entries(s, i);
            if (n > VVFAT_DIR_MAX)
                return bd_err_set(err, EFBIG, "%s: %u entries (long names "
                                  "take several), but a FAT directory holds "
                                  "at most %u; split it into subdirectories",
                                  o->path, n, VVFAT_DIR_MAX);
            o->size = (uint64_t)n * 32;
            if (i == 0 && s->g.fat_type != 32) {
                if (n > s->g.root_entries)
                    return bd_err_set(err, EFBIG, "%s: its top level needs %u "
                                      "entries (long names take several), but "
                                      "a FAT%u root directory holds %u; move "
                                      "entries into a subdirectory or use "
                                      "fat-type=32", name, n, s->g.fat_type,
                                      s->g.root_entries);
                continue;
            }
        }
        o->clusters = (uint32_t)((o->size + cb - 1) / cb);
        if (o->is_dir && !o->clusters)
            o->clusters = 1;
        *need += o->clusters;
    }
    return 0;
}

static int too_big(const struct vvfat_state *s, uint64_t need, const char *name,
                   struct bd_err *err)
{
    uint64_t cb = (uint64_t)s->g.spc * BD_SECTOR, have = s->g.clusters * cb;
    double want = (double)(need * cb);
    /* larger disks take larger clusters: leave room for the slack */
    uint64_t gib = (uint64_t)((want * 1.1 + 64 * MIB) / (1024 * MIB)) + 1;
    char hint[128];

    if (s->g.floppy)
        snprintf(hint, sizeof(hint), "drop floppy for a hard disk");
    else
        snprintf(hint, sizeof(hint), "use fat-type=32,size=%" PRIu64 "G (or "
                 "more)", gib);
    return bd_err_set(err, ENOSPC, "%s: the directory needs %.1f MiB of FAT "
                      "space (in %" PRIu64 "-byte clusters), but this FAT%u "
                      "disk of %.1f MiB holds %.1f MiB; %s, or give a smaller "
                      "directory", name, want / MIB, cb, s->g.fat_type,
                      (double)s->g.disk_bytes / MIB, (double)have / MIB, hint);
}

int vvfat_layout(struct vvfat_state *s, const char *name, struct bd_err *err)
{
    uint64_t need;
    uint32_t cb = s->g.spc * BD_SECTOR, next = 2;
    int r = count_clusters(s, &need, name, err);

    if (r < 0)
        return r;
    if (need > s->g.clusters)
        return too_big(s, need, name, err);
    s->used_clusters = (uint32_t)need;
    s->alloc = malloc(((size_t)s->nobjs + 1) * sizeof(*s->alloc));
    if (!s->alloc)
        return bd_err_set(err, ENOMEM, "%s: out of memory", name);
    /* directories first (the root first on FAT32), then files */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < s->nobjs; i++) {
            struct vvfat_obj *o = &s->objs[i];
            if (o->is_dir != (pass == 0) || !o->clusters)
                continue;
            o->first_cluster = next;
            next += o->clusters;
            s->alloc[s->nalloc++] = i;
        }
    }
    for (uint32_t i = 0; i < s->nobjs; i++) {
        struct vvfat_obj *o = &s->objs[i];
        if (!o->is_dir)
            continue;
        size_t bytes = i == 0 && s->g.fat_type != 32
                     ? (size_t)s->g.root_sectors * BD_SECTOR
                     : (size_t)o->clusters * cb;
        o->dirbuf = calloc(1, bytes);
        if (!o->dirbuf)
            return bd_err_set(err, ENOMEM, "%s: out of memory", name);
        fill_dir(s, i);
    }
    return 0;
}

/* ---- the generated sectors ---- */

int64_t vvfat_obj_at(struct vvfat_state *s, uint32_t cluster)
{
    uint32_t lo = 0, hi = s->nalloc;
    if (s->last_hit < s->nalloc) {
        const struct vvfat_obj *o = &s->objs[s->alloc[s->last_hit]];
        if (cluster >= o->first_cluster && cluster - o->first_cluster < o->clusters)
            return s->alloc[s->last_hit];
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct vvfat_obj *o = &s->objs[s->alloc[mid]];
        if (cluster < o->first_cluster) {
            hi = mid;
        } else if (cluster - o->first_cluster >= o->clusters) {
            lo = mid + 1;
        } else {
            s->last_hit = mid;
            return s->alloc[mid];
        }
    }
    return -1;
}

uint32_t vvfat_fat_entry(struct vvfat_state *s, uint32_t c)
{
    uint32_t eoc = s->g.fat_type == 12 ? 0xfff : s->g.fat_type == 16 ? 0xffff
                                                                     : 0x0fffffff;
    if (c == 0)
        return (eoc & ~0xffu) | s->g.media;
    if (c == 1)
        return eoc;
    if (c >= s->g.clusters + 2)
        return 0;
    int64_t i = vvfat_obj_at(s, c);
    if (i < 0)
        return 0;
    const struct vvfat_obj *o = &s->objs[i];
    return c - o->first_cluster + 1 == o->clusters ? eoc : c + 1;
}

void vvfat_fat_sector(struct vvfat_state *s, uint32_t sector, uint8_t *out)
{
    if (s->g.fat_type == 12) {
        uint32_t b0 = sector * BD_SECTOR;
        for (uint32_t j = 0; j < BD_SECTOR; j++) {
            uint32_t b = b0 + j, pair = b / 3;
            uint32_t a = vvfat_fat_entry(s, pair * 2);
            uint32_t c = vvfat_fat_entry(s, pair * 2 + 1);
            uint32_t both = a | c << 12;
            out[j] = (uint8_t)(both >> (8 * (b % 3)));
        }
        return;
    }
    unsigned w = s->g.fat_type / 8;
    uint32_t first = sector * (BD_SECTOR / w);
    for (uint32_t j = 0; j < BD_SECTOR / w; j++) {
        uint32_t v = vvfat_fat_entry(s, first + j);
        if (w == 2)
            bd_put_le16(out + 2 * j, (uint16_t)v);
        else
            bd_put_le32(out + 4 * j, v);
    }
}

static void put_bpb(const struct vvfat_state *s, uint8_t *b)
{
    const struct vvfat_geom *g = &s->g;
    uint32_t total = g->part_sectors;
    bool f32 = g->fat_type == 32;
    uint8_t *ext = b + (f32 ? 64 : 36);

    b[0] = 0xeb;
    b[1] = f32 ? 0x58 : 0x3c;
    b[2] = 0x90;
    memcpy(b + 3, "MSWIN4.1", 8);
    bd_put_le16(b + 11, BD_SECTOR);
    b[13] = (uint8_t)g->spc;
    bd_put_le16(b + 14, (uint16_t)g->reserved);
    b[16] = 2;
    bd_put_le16(b + 17, (uint16_t)g->root_entries);
    bd_put_le16(b + 19, total < 65536 && !f32 ? (uint16_t)total : 0);
    b[21] = g->media;
    bd_put_le16(b + 22, f32 ? 0 : (uint16_t)g->fat_sectors);
    bd_put_le16(b + 24, (uint16_t)g->secs);
    bd_put_le16(b + 26, (uint16_t)g->heads);
    bd_put_le32(b + 28, g->part_start);
    bd_put_le32(b + 32, total < 65536 && !f32 ? 0 : total);
    if (f32) {
        bd_put_le32(b + 36, g->fat_sectors);
        bd_put_le32(b + 44, 2);             /* root directory cluster */
        bd_put_le16(b + 48, 1);             /* FSInfo sector */
        bd_put_le16(b + 50, 6);             /* backup boot sector */
    }
    ext[0] = g->floppy ? 0x00 : 0x80;
    ext[2] = 0x29;
    bd_put_le32(ext + 3, s->serial);
    memcpy(ext + 7, s->label, 11);
    memcpy(ext + 18, f32 ? "FAT32   " : g->fat_type == 16 ? "FAT16   "
                                                          : "FAT12   ", 8);
    /* not bootable: int 18h ("no boot device"), then stop */
    uint8_t *code = b + (f32 ? 90 : 62);
    code[0] = 0xcd;
    code[1] = 0x18;
    code[2] = 0xeb;
    code[3] = 0xfe;
    b[510] = 0x55;
    b[511] = 0xaa;
}

/* Sector `sector` of the reserved area (boot sector, FSInfo, backups). */
void vvfat_boot_sector(const struct vvfat_state *s, uint32_t sector, uint8_t *out)
{
    memset(out, 0, BD_SECTOR);
    if (sector == 0 || (s->g.fat_type == 32 && sector == 6)) {
        put_bpb(s, out);
    } else if (s->g.fat_type == 32 && (sector == 1 || sector == 7)) {
        bd_put_le32(out, 0x41615252);
        bd_put_le32(out + 484, 0x61417272);
        bd_put_le32(out + 488, s->g.clusters - s->used_clusters);
        bd_put_le32(out + 492, s->used_clusters + 2 < s->g.clusters + 2
                                   ? s->used_clusters + 2 : 0xffffffff);
        bd_put_le32(out + 508, 0xaa550000);
    }
}

static void put_chs(const struct vvfat_geom *g, uint32_t lba, uint8_t *p)
{
    uint32_t c = lba / (g->heads * g->secs);
    uint32_t h = lba / g->secs % g->heads, sct = lba % g->secs + 1;
    if (c > 1023) {
        c = 1023;
        h = g->heads - 1;
        sct = g->secs;
    }
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(sct | (c >> 2 & 0xc0));
    p[2] = (uint8_t)c;
}

void vvfat_mbr(const struct vvfat_state *s, uint8_t *out)
{
    const struct vvfat_geom *g = &s->g;
    uint8_t *p = out + 446;
    memset(out, 0, BD_SECTOR);
    bd_put_le32(out + 440, s->serial);
    p[0] = 0x80;                            /* active */
    put_chs(g, g->part_start, p + 1);
    p[4] = g->fat_type == 12 ? 0x01 : g->fat_type == 16 ? 0x06 : 0x0b;
    put_chs(g, g->part_start + g->part_sectors - 1, p + 5);
    bd_put_le32(p + 8, g->part_start);
    bd_put_le32(p + 12, g->part_sectors);
    out[510] = 0x55;
    out[511] = 0xaa;
}
