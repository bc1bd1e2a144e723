/*
 * parallels: what the driver's files share. image.c decodes one expandable
 * image (header, BAT) or plain file and reads it; ext.c parses the format
 * extension cluster; bundle.c a bundle's DiskDescriptor.xml and its
 * extents; parallels.c is the driver.
 */
#ifndef IMGFUSE_PARALLELS_H
#define IMGFUSE_PARALLELS_H

#include "core/bd.h"

#define PRL_HEADER_BYTES    64u
#define PRL_VERSION         2u
#define PRL_INUSE_OPEN      0x746f6e59u     /* opened read-write, not closed */
#define PRL_INUSE_CLOSED    0x312e3276u
#define PRL_FLAG_EMPTY      1u              /* header flags bit 0 */

/* What the format extension cluster holds, as far as we read it. */
struct prl_ext_info {
    bool present;           /* ext_off != 0 */
    bool valid;             /* magic matched and the features parsed */
    bool checksum_ok;
    char problem[128];      /* why it was ignored, when !valid */
    unsigned bitmaps;       /* dirty bitmap features */
    unsigned unknown;       /* features we skipped */
    uint64_t bitmap_granularity;    /* bytes, of the first bitmap */
    uint32_t bitmap_l1_size;
    uint8_t bitmap_id[16];
};

/* One Parallels image file (expandable) or one plain file of a bundle. */
struct prl_image {
    struct bd_node *file;
    bool own_file;          /* a bundle extent: closed with the image */
    bool plain;             /* raw bytes, no header */
    bool v2;                /* "WithouFreSpacExt": BAT entries in clusters */
    const char *name;       /* for messages: borrowed */
    uint32_t heads, cylinders;
    uint32_t cluster_size;  /* bytes */
    uint32_t bat_entries;   /* as the header says */
    uint32_t bat_loaded;    /* entries kept: those in the file and the disk */
    uint32_t allocated;     /* non-zero entries among them */
    uint32_t in_use, flags;
    uint64_t off_unit;      /* bytes per BAT unit: 512, or a cluster (v2) */
    uint64_t data_off;      /* bytes */
    uint64_t size;          /* virtual bytes */
    uint64_t file_size;
    uint32_t *bat;
    struct prl_ext_info ext;
};

/* The image on file (named name): header, BAT and extension; 0 or -errno
 * with err filled. img->file and img->name are the caller's to set. */
int prl_image_open(struct prl_image *img, struct bd_err *err);
/* A plain extent: raw bytes of the file, size given by the descriptor. */
int prl_image_open_plain(struct prl_image *img, uint64_t size,
                         struct bd_err *err);
void prl_image_close(struct prl_image *img);
/* Read [off, off+len) of the image's virtual disk; beyond its data (or its
 * file's end) reads zeroes, as QEMU does. */
int prl_image_pread(struct prl_image *img, uint8_t *buf, uint64_t len,
                    uint64_t off);
/* This image's status at off, for at most len bytes (len >= 1). */
void prl_image_status(struct prl_image *img, uint64_t off, uint64_t len,
                      uint64_t *pnum, unsigned *status, uint64_t *map);
void prl_image_info(struct prl_image *img, const char *prefix,
                    struct bd_info *info);

#define PRL_MAX_LAYERS 64u    /* snapshots in one storage */

/* One <Storage> of a bundle: [start, end) of the disk, in bytes, read from
 * the first of its layers (the top snapshot, then its parents) that has
 * the data. */
struct prl_extent {
    uint64_t start, end;
    size_t n_layers;        /* opened (or being opened) */
    struct prl_image *layers;
    char **names;           /* the file names the descriptor gives */
};

struct prl_bundle {
    uint64_t size;          /* Disk_size, bytes */
    size_t n_ext;           /* opened (or being opened) */
    struct prl_extent *ext; /* sorted, disjoint */
};

/* n->file is a DiskDescriptor.xml: parse it, open every extent through
 * core (bd_resolve_related, bd_open_related). 0 or -errno with err. */
int prl_bundle_open(struct bd_node *n, struct prl_bundle *b,
                    struct bd_err *err);
void prl_bundle_close(struct prl_bundle *b);
/* Gaps between storages read as zeroes. */
int prl_bundle_pread(struct prl_bundle *b, uint8_t *buf, uint64_t len,
                     uint64_t off);
void prl_bundle_status(struct prl_bundle *b, uint64_t off, uint64_t len,
                       uint64_t *pnum, unsigned *status, uint64_t *map);

/* The format extension cluster at ext_off (bytes) into img->ext. Never
 * fails the open: a damaged extension is reported and ignored, since it
 * does not change the disk's data. */
void prl_ext_parse(struct prl_image *img, uint64_t ext_off);

/* MD5 of data[0..len) into out[16] (ext.c: the extension's checksum). */
void prl_md5(const uint8_t *data, size_t len, uint8_t out[16]);

#endif
