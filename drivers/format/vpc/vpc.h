/*
 * vpc driver internals shared by its files: the format's constants and
 * limits, the decoded footer and dynamic disk header, the node state and
 * what each file offers the others. Nothing outside drivers/format/vpc/
 * includes it; the driver's one exported symbol is bd_drv_vpc.
 */
#ifndef IMGFUSE_VPC_H
#define IMGFUSE_VPC_H

#include "core/bd.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VPC_FOOTER_SIZE     512u
#define VPC_DYN_SIZE        1024u
#define VPC_BAT_UNUSED      0xffffffffu
#define VPC_TYPE_FIXED      2u
#define VPC_TYPE_DYNAMIC    3u
#define VPC_TYPE_DIFF       4u
#define VPC_EPOCH           946684800   /* 2000-01-01T00:00:00Z, VHD's time base */
#define VPC_CHS_MAX_SECTORS (65535ull * 16 * 255)
#define VPC_MAX_SECTORS     0xff000000ull   /* 2040 GiB, as QEMU allows */
#define VPC_MAX_BAT_ENTRIES (1u << 24)      /* 64 MiB of table in memory */
#define VPC_MAX_BLOCK_SIZE  (256u << 20)
#define VPC_DEFAULT_BLOCK   (2u << 20)
#define VPC_MAX_LOCATOR     4096u           /* bytes of one parent path */

struct vpc_footer {
    uint32_t features;
    uint32_t version;
    uint64_t data_off;
    uint32_t timestamp;
    char creator[5];
    uint32_t creator_ver;
    char creator_os[5];
    uint64_t orig_size;
    uint64_t cur_size;
    uint16_t cyls;
    uint8_t heads;
    uint8_t spt;
    uint32_t type;
    uint32_t checksum;
    uint8_t uuid[16];
};

struct vpc_dyn {
    uint64_t data_off;          /* unused by the format: all ones */
    uint64_t table_off;
    uint32_t version;
    uint32_t bat_entries;
    uint32_t block_size;
    uint32_t checksum;
    uint8_t parent_uuid[16];
    uint32_t parent_time;
};

struct vpc_state {
    uint8_t footer_raw[VPC_FOOTER_SIZE];    /* written again at each growth */
    struct vpc_footer ft;
    struct vpc_dyn dyn;
    uint64_t size;              /* guest bytes, a multiple of 512 */
    uint64_t footer_off;        /* where the trailing footer copy is now */
    uint32_t *bat;              /* native byte order; atomics for readers */
    uint32_t *retired_bat;      /* the table before a resize widened it */
    uint32_t block_size;
    uint32_t bitmap_size;       /* bytes before each block's data, 512-aligned */
    bool end_footer_bad;        /* opened through the copy at offset 0 */
    bool ft_sum_bad;            /* read-only: checksum mismatches left for */
    bool dyn_sum_bad;           /* vpc_judge_checksums() to accept or refuse */
    uint32_t ft_sum;            /* the checksums computed, when bad */
    uint32_t dyn_sum;
    bool size_from_chs;
    char *parent_name;          /* what we opened the parent as, for info */
    pthread_mutex_t lock;       /* block allocation and bitmap updates */
    bool lock_init;
};

struct vpc_open_opts {
    bool ignore_checksum;
    int size_calc;              /* -1 auto, 0 chs, 1 current_size */
};

/* One request as the per-block callbacks of bd_for_each_block() see it. */
struct vpc_io {
    struct bd_node *n;
    struct vpc_state *s;
    uint8_t *rbuf;              /* reads */
    const uint8_t *wbuf;        /* writes */
    uint64_t off;               /* the request's guest offset */
    unsigned flags;             /* BD_REQ_* */
    bool grew;                  /* a block was allocated */
};

extern const struct bd_driver bd_drv_vpc;

/* A BAT entry (a sector number or VPC_BAT_UNUSED); blk < bat_entries.
 * Lock-free: allocation publishes entries with a release store. */
static inline uint32_t vpc_bat_get(struct vpc_state *s, uint64_t blk)
{
    return __atomic_load_n(&s->bat[blk], __ATOMIC_ACQUIRE);
}

/* File offset of the data of the block at BAT entry `entry`: the sector
 * bitmap comes first. */
static inline uint64_t vpc_block_data_off(struct vpc_state *s, uint32_t entry)
{
    return (uint64_t)entry * BD_SECTOR + s->bitmap_size;
}

/* Sector bits: the first sector of a block is the top bit of byte 0. */
static inline bool vpc_bit(const uint8_t *bm, uint64_t sector)
{
    return bm[sector / 8] & (0x80u >> (sector % 8));
}

/* ---- header.c: footer, dynamic disk header, BAT ------------------------ */

/* One's complement of the byte sum of p[0..len), skipping the 4-byte
 * checksum field at csum_off (spec 2006). */
uint32_t vpc_checksum(const uint8_t *p, size_t len, size_t csum_off);
bool vpc_is_footer(const uint8_t *b);
/* Decode the VPC_FOOTER_SIZE bytes at b; the caller checks the magic. */
void vpc_footer_decode(const uint8_t *b, struct vpc_footer *f);
/*
 * Read the footer of the vhd on `file` (fsize >= VPC_FOOTER_SIZE bytes)
 * into raw: the copy at the end or, when that is no footer, the copy at the
 * start that dynamic disks keep (*at_start true). 0, or -errno from a read
 * (*at_start: the read at the start failed). The caller checks
 * vpc_is_footer(raw).
 */
int vpc_footer_read(struct bd_node *file, uint64_t fsize, uint8_t *raw,
                    bool *at_start);
/* The steps of open, in this order; each fills n->state and err.
 * Footer (and its checks) into s->ft, s->footer_raw and s->footer_off: */
int vpc_load_footer(struct bd_node *n, uint64_t fsize,
                    const struct vpc_open_opts *oo, struct bd_err *err);
/* s->size by CHS or current size, per creator and options: */
int vpc_compute_size(struct bd_node *n, const struct vpc_open_opts *oo,
                     struct bd_err *err);
/* Dynamic and differencing disks: s->dyn, s->block_size, s->bitmap_size: */
int vpc_load_dyn(struct bd_node *n, uint64_t fsize,
                 const struct vpc_open_opts *oo, struct bd_err *err);
/* The BAT into s->bat (malloc'd, freed by close), every entry checked: */
int vpc_load_bat(struct bd_node *n, uint64_t fsize, struct bd_err *err);
/* Last, on a read-only node whose footer or dynamic header checksum did not
 * match (without ignore_checksum): open it with one warning naming the
 * stored and computed checksums when the other fields agree with each
 * other, refuse it naming the field that does not otherwise. */
int vpc_judge_checksums(struct bd_node *n, struct bd_err *err);

/* ---- parent.c: a differencing disk's parent ----------------------------- */

/* Find the parent from the locators and the header's name and open it as
 * n->backing through core; s->parent_name names it. 0 or -errno with err
 * filled (-ENOENT lists the names tried). */
int vpc_open_parent(struct bd_node *n, uint64_t fsize, struct bd_err *err);

/* ---- bitmap.c: sector bitmaps of differencing disks --------------------- */

/* Bitmap bytes covering sectors [s0, s1) of the block at BAT entry `entry`,
 * s0 < s1; *first is the sector of bit 0 of *out. Caller frees *out. */
int vpc_read_bitmap(struct bd_node *n, uint32_t entry, uint64_t s0, uint64_t s1,
                    uint8_t **out, uint64_t *first);
/* Mark the sectors of bytes [in, in + len) of a block as present here
 * (sector-aligned); takes s->lock. 0 or -errno. */
int vpc_mark_present(struct bd_node *n, uint32_t entry, uint64_t in,
                     uint64_t len);

/* ---- read.c, write.c: the bd_driver I/O callbacks ----------------------- */

int vpc_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off);
int vpc_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                     uint64_t *pnum, unsigned *status, uint64_t *map);
int vpc_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
               unsigned flags);
int vpc_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                      unsigned flags);

/* ---- resize.c: bd_driver.truncate (growable mounts) -------------------- */

int vpc_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                 struct bd_err *err);

/* ---- check.c, create.c: bd_driver.check and bd_driver.create ----------- */

/* The VHD specification's CHS geometry for a sector count (create.c). */
void vpc_chs_for(uint64_t sectors, uint16_t *c, uint8_t *h, uint8_t *s);

int vpc_check(struct bd_node *n, unsigned fix, struct bd_check *res,
              struct bd_err *err);
int vpc_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
               struct bd_err *err);

#endif
