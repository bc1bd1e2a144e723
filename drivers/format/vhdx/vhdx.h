/*
 * VHDX driver, private: on-disk constants from [MS-VHDX], the per-node state
 * and the functions the driver's files share (CRC-32C, the log, headers,
 * creation). Nothing here is visible outside drivers/format/vhdx/.
 */
#ifndef IMGFUSE_VHDX_H
#define IMGFUSE_VHDX_H

#include "core/bd.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHDX_MiB                (1024u * 1024u)
#define VHDX_FILE_ID_OFF        0u
#define VHDX_HEADER1_OFF        (64u * 1024u)
#define VHDX_HEADER2_OFF        (128u * 1024u)
#define VHDX_REGION1_OFF        (192u * 1024u)
#define VHDX_REGION2_OFF        (256u * 1024u)
#define VHDX_HEADER_SIZE        4096u
#define VHDX_REGION_SIZE        (64u * 1024u)
#define VHDX_REGION_MAX_ENTRIES 2047u
#define VHDX_META_TABLE_SIZE    (64u * 1024u)
#define VHDX_META_MAX_ENTRIES   2047u
#define VHDX_LOG_SECTOR         4096u
#define VHDX_MAX_VSIZE          (64ull << 40)           /* 64 TiB */
#define VHDX_MIN_BLOCK          VHDX_MiB
#define VHDX_MAX_BLOCK          (256u * VHDX_MiB)
#define VHDX_MAX_LOG            (256u * VHDX_MiB)       /* what we will load */
#define VHDX_BITMAP_BLOCK       VHDX_MiB                /* sector bitmap block */
#define VHDX_SECTORS_PER_BITMAP (1ull << 23)

/* payload BAT entry states (2.5.1.1) */
#define VHDX_PAYLOAD_NOT_PRESENT       0u
#define VHDX_PAYLOAD_UNDEFINED         1u
#define VHDX_PAYLOAD_ZERO              2u
#define VHDX_PAYLOAD_UNMAPPED          3u
#define VHDX_PAYLOAD_UNMAPPED_V095     5u   /* 0.95 draft value, read as zero */
#define VHDX_PAYLOAD_FULLY_PRESENT     6u
#define VHDX_PAYLOAD_PARTIALLY_PRESENT 7u
/* sector bitmap BAT entry states (2.5.1.2) */
#define VHDX_SB_NOT_PRESENT            0u
#define VHDX_SB_PRESENT                6u

#define VHDX_BAT_STATE(e)   ((unsigned)((e) & 7u))
#define VHDX_BAT_OFF(e)     (((e) >> 20) << 20)          /* bytes */
#define VHDX_BAT_ENTRY(state, off) ((uint64_t)(off) | (uint64_t)(state))

/* GUIDs in their on-disk (mixed-endian) byte order */
#define VHDX_GUID(a, b, c, d0, d1, d2, d3, d4, d5, d6, d7)                  \
    { (a) & 0xff, ((a) >> 8) & 0xff, ((a) >> 16) & 0xff, ((a) >> 24) & 0xff, \
      (b) & 0xff, ((b) >> 8) & 0xff, (c) & 0xff, ((c) >> 8) & 0xff,         \
      d0, d1, d2, d3, d4, d5, d6, d7 }

extern const uint8_t vhdx_guid_bat[16];
extern const uint8_t vhdx_guid_metadata[16];
extern const uint8_t vhdx_guid_file_params[16];
extern const uint8_t vhdx_guid_vsize[16];
extern const uint8_t vhdx_guid_disk_id[16];
extern const uint8_t vhdx_guid_lsec[16];
extern const uint8_t vhdx_guid_psec[16];
extern const uint8_t vhdx_guid_parent_locator[16];
extern const uint8_t vhdx_guid_parent_type[16];

/* The decoded current header (2.2.2). */
struct vhdx_header {
    uint64_t seq;
    uint8_t file_write_guid[16];
    uint8_t data_write_guid[16];
    uint8_t log_guid[16];
    uint16_t log_version;
    uint16_t version;
    uint32_t log_len;
    uint64_t log_off;
};

/* One 4 KiB sector (or zero range) replayed from the log into memory for a
 * read-only open: reads of the file are patched with these, in order. */
struct vhdx_patch {
    uint64_t off;
    uint64_t len;
    uint8_t *data;                  /* len bytes, or NULL for zeroes */
};

struct vhdx_state {
    pthread_rwlock_t lock;          /* rd: reads, in-place writes; wr: metadata */
    bool lock_init;

    int cur_hdr;                    /* slot (0, 1) of the current header */
    struct vhdx_header hdr;

    uint64_t bat_off, bat_len;      /* regions, bytes */
    uint64_t meta_off, meta_len;

    uint64_t vsize;
    uint64_t vsize_off;             /* file offset of its metadata item */
    uint32_t block_size;
    unsigned block_bits;
    uint32_t lsec, psec;            /* logical / physical sector size */
    unsigned lsec_bits;
    bool has_parent, leave_alloc;
    uint8_t disk_id[16];
    uint8_t parent_linkage[16];     /* parent's DataWriteGuid per locator */
    bool has_linkage;
    char *parent_path;              /* relative path of the parent (unix) */
    char *parent_abs;               /* absolute_win32_path, as stored */

    uint64_t chunk_ratio;           /* payload blocks per sector bitmap */
    uint64_t payload_blocks;
    uint64_t bitmap_blocks;
    uint64_t bat_entries;
    uint64_t *bat;                  /* native entries, rounded to 4 KiB */
    size_t bat_alloc;               /* entries allocated in bat[] */

    uint64_t file_size;             /* real size of n->file */
    uint64_t eff_size;              /* size after an in-memory replay */
    struct vhdx_patch *patches;     /* in-memory log replay (read-only) */
    size_t n_patches;
    uint64_t patch_lo, patch_hi;
    bool replayed;                  /* a log was replayed at open */
    uint64_t replayed_entries;

    /* write session */
    bool session;                   /* headers updated for this session */
    uint32_t log_pos;               /* next entry position in the log */
    uint64_t log_seq;               /* next log entry sequence number */
    unsigned long errs;
};

/* crc32c.c: CRC-32C (Castagnoli) as VHDX uses it: init ~0, final xor ~0. */
uint32_t vhdx_crc32c(uint32_t crc, const void *buf, size_t len);
/* CRC of buf with the 4 bytes at csum_off taken as zero. */
uint32_t vhdx_crc32c_skip(const void *buf, size_t len, size_t csum_off);

/* vhdx.c: read the image file with an in-memory log replay applied */
int vhdx_file_read(struct bd_node *n, void *buf, uint64_t len, uint64_t off);

/* header.c: read both headers and choose the current one (first at open;
 * 0 or -errno with err filled). */
int vhdx_read_headers(struct bd_node *n, struct bd_err *err);
void vhdx_header_encode(uint8_t *out, const struct vhdx_header *h);
/* Write s->hdr into the other slot with the next sequence number, flush,
 * and again into the first, so both copies are current. */
int vhdx_headers_write(struct bd_node *n);

/* metadata.c: decode and check, in this order at open, after the headers;
 * 0 or -errno with err filled. Each fills its part of the node's struct
 * vhdx_state. */
int vhdx_read_regions(struct bd_node *n, struct bd_err *err);
int vhdx_read_metadata(struct bd_node *n, struct bd_err *err);
int vhdx_read_bat(struct bd_node *n, struct bd_err *err);
void vhdx_guid_format(const uint8_t g[16], char out[37]);
int vhdx_random_guid(uint8_t guid[16]);
/* [off, off + len) lies clear of the header area, log, metadata and BAT. */
bool vhdx_is_payload_range(const struct vhdx_state *s, uint64_t off,
                           uint64_t len);
bool vhdx_guid_is_zero(const uint8_t guid[16]);

/* write.c */
int vhdx_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
                unsigned flags);
int vhdx_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                       unsigned flags);
int vhdx_discard(struct bd_node *n, uint64_t len, uint64_t off);
int vhdx_flush(struct bd_node *n);
/* Resize (growable mounts): the BAT region's room, through the log. */
int vhdx_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                  struct bd_err *err);
/* End a write session: the log is applied, so clear LogGuid. */
int vhdx_session_end(struct bd_node *n);

/* log.c */
/* Find the active log sequence and replay it: into the file when writable,
 * into s->patches otherwise. Called after the headers are chosen, before
 * any metadata or BAT read. */
int vhdx_log_replay(struct bd_node *n, struct bd_err *err);
/* Commit 4 KiB metadata sectors through the log: write the entry, flush,
 * write each sector in place, flush. offs are 4 KiB aligned. */
int vhdx_log_commit(struct bd_node *n, const uint64_t *offs,
                    const uint8_t *const *sectors, unsigned count);
void vhdx_patches_free(struct vhdx_state *s);

extern const struct bd_driver bd_drv_vhdx;

/* create.c */
int vhdx_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                struct bd_err *err);
extern const char *const vhdx_create_options[];

#endif
