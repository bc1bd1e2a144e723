/*
 * vvfat: a host directory shown as a FAT disk. Private header shared by
 * vvfat.c (options, open, reads), scan.c (the host tree), names.c (long and
 * short names) and layout.c (geometry, allocation, the generated sectors).
 */
#ifndef IMGFUSE_VVFAT_H
#define IMGFUSE_VVFAT_H

#include "core/bd.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define VVFAT_LFN_MAX       255u            /* UTF-16 units of a long name */
#define VVFAT_DIR_MAX       65536u          /* entries in one directory */
#define VVFAT_MAX_OBJECTS   (1u << 22)      /* files and dirs in one tree */
#define VVFAT_FILE_MAX      0xffffffffull   /* bytes of one FAT file */
#define VVFAT_DEFAULT_LABEL "QEMU VVFAT"

/* The disk and the FAT volume on it; sectors of 512 bytes. */
struct vvfat_geom {
    unsigned fat_type;          /* 12, 16, 32 */
    bool floppy;                /* unpartitioned, floppy BPB */
    uint64_t disk_bytes;
    uint32_t cyls, heads, secs; /* CHS geometry of the disk */
    uint32_t part_start;        /* first sector of the volume (63 or 0) */
    uint32_t part_sectors;      /* sectors of the volume */
    uint32_t spc;               /* sectors per cluster */
    uint32_t reserved;          /* reserved sectors before the first FAT */
    uint32_t fat_sectors;       /* sectors of one FAT (there are two) */
    uint32_t root_entries;      /* FAT12/16 fixed root directory; 0 on FAT32 */
    uint32_t root_sectors;
    uint32_t data_start;        /* first sector of cluster 2, in the volume */
    uint32_t clusters;          /* data clusters, numbered 2..clusters+1 */
    uint8_t media;
};

/* One file or directory of the tree; objs[0] is the root. */
struct vvfat_obj {
    char *path;                 /* host path to open (real path for links) */
    char *name;                 /* host name (NULL for the root) */
    uint16_t *lfn;              /* the FAT long name, UTF-16 */
    uint16_t lfn_len;
    bool has_lfn;               /* the long name needs LFN entries */
    bool renamed;               /* the long name differs from the host's */
    bool is_dir;
    bool stale_logged;          /* host file changed: said once */
    uint8_t short_name[11];
    uint32_t parent;
    uint32_t first_child, children;     /* dirs: objs[first_child..+children) */
    uint32_t first_cluster, clusters;   /* 0, 0 for an empty file */
    uint64_t size;              /* files: bytes; dirs: bytes of the entries */
    dev_t dev;
    ino_t ino;
    struct timespec mtime, atime, ctime;
    uint8_t *dirbuf;            /* dirs: the generated entries */
    char *hpath;                /* the entry's own path in DIR (a link's path,
                                   not its target's), for rw */
    int keep_fd;                /* rw: the host file kept open once a commit
                                   moved or replaced it (-1: open by path) */
};

/* rw: sectors the guest wrote, kept in an unlinked temporary file. */
struct vvfat_overlay {
    int fd;
    uint64_t sectors;
    uint8_t **written;          /* per chunk of VVFAT_CHUNK sectors, lazily */
    uint8_t **dirty;            /* written since the last commit */
    uint64_t chunks;
};
#define VVFAT_CHUNK (1u << 15)

/* rw: one file or directory as last carried back to DIR. */
struct vvfat_base {
    char *rel;                  /* FAT path below the root, "" for the root */
    char *host;                 /* where it is on the host */
    bool is_dir;
    uint64_t size;
    uint64_t chain_hash;        /* files: the hash of their cluster chain */
    uint32_t nclusters;
    dev_t dev;
    ino_t ino;
    struct timespec mtime;      /* the host's, to see changes made there */
};

struct vvfat_state {
    struct vvfat_geom g;
    char *root;                 /* real path of DIR */
    struct vvfat_obj *objs;
    uint32_t nobjs, cap;
    uint32_t *alloc;            /* objs holding clusters, by first cluster */
    uint32_t nalloc;
    uint32_t used_clusters;
    uint32_t last_hit;          /* index into alloc of the last lookup */
    uint8_t label[11];
    uint32_t serial;
    int fd;                     /* host file open for reading, or -1 */
    uint32_t fd_obj;
    bool rw;                    /* writes are carried back into DIR */
    bool dirty;                 /* written since the last commit */
    struct vvfat_overlay ov;
    struct vvfat_base *base;    /* rw: the tree as DIR holds it, by rel */
    uint32_t nbase;
};

/* names.c */
int vvfat_lfn_from_host(const char *host, uint16_t *out, size_t *len);
bool vvfat_short_basis(const uint16_t *lfn, size_t len, uint8_t out[11],
                       size_t *base_len);
void vvfat_short_tail(uint8_t name[11], size_t base_len, unsigned n);
bool vvfat_short_is_lfn(const uint8_t name[11], const uint16_t *lfn,
                        size_t len);
uint8_t vvfat_lfn_checksum(const uint8_t name[11]);
void vvfat_put_lfn(uint8_t *ents, const uint16_t *lfn, size_t len,
                   uint8_t csum);
int vvfat_name_children(struct vvfat_obj *kids, uint32_t count);
size_t vvfat_utf16_to_utf8(const uint16_t *in, size_t len, char *out,
                           size_t size);

static inline size_t vvfat_lfn_slots(size_t len)
{
    return (len + 12) / 13;
}

/* scan.c */
int vvfat_scan(struct vvfat_state *s, const char *dir, struct bd_err *err);
void vvfat_free_tree(struct vvfat_state *s);

/* overlay.c */
int vvfat_overlay_open(struct vvfat_overlay *ov, uint64_t sectors,
                       struct bd_err *err);
void vvfat_overlay_close(struct vvfat_overlay *ov);
bool vvfat_overlay_has(const struct vvfat_overlay *ov, uint64_t sec, bool dirty);
uint64_t vvfat_overlay_run(const struct vvfat_overlay *ov, uint64_t sec,
                           uint64_t max, bool *written);
int vvfat_overlay_write(struct vvfat_overlay *ov, const void *buf, uint64_t len,
                        uint64_t off);
int vvfat_overlay_read(struct vvfat_overlay *ov, void *buf, uint64_t len,
                       uint64_t off);
void vvfat_overlay_clean(struct vvfat_overlay *ov);

/* commit.c and tree.c (rw) */
struct vvfat_new;
int vvfat_base_init(struct vvfat_state *s, struct bd_err *err);
void vvfat_base_free(struct vvfat_state *s);
int vvfat_commit(struct bd_node *n);
int vvfat_read_disk(struct bd_node *n, void *buf, uint64_t len, uint64_t off);

/* layout.c */
int vvfat_geometry(struct vvfat_geom *g, unsigned fat_type, bool floppy,
                   uint64_t size, const char *name, struct bd_err *err);
int vvfat_layout(struct vvfat_state *s, const char *name, struct bd_err *err);
uint32_t vvfat_fat_entry(struct vvfat_state *s, uint32_t cluster);
void vvfat_boot_sector(const struct vvfat_state *s, uint32_t sector,
                       uint8_t *out);
void vvfat_mbr(const struct vvfat_state *s, uint8_t *out);
void vvfat_fat_sector(struct vvfat_state *s, uint32_t sector, uint8_t *out);
int64_t vvfat_obj_at(struct vvfat_state *s, uint32_t cluster);

#endif
