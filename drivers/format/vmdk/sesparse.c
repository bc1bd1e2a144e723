/*
 * seSparse extents (ESXi "space-efficient" sparse, magic 0xcafebabe),
 * read-only: the constant header, the grain directory of 64-bit entries
 * naming grain tables, and grain table entries that say unallocated,
 * fall-through to the parent, zero, or allocated at a grain number. The
 * journal is not replayed; an image that needs it is refused.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SE_MAGIC            0xcafebabeull
#define SE_VERSION          0x200000001ull
#define SE_VOLATILE_MAGIC   0xcafecafeull
#define SE_TYPE_MASK        0xf000000000000000ull
#define SE_GD_ALLOCATED     0x1000000000000000ull
#define SE_GT_UNALLOCATED   0x0000000000000000ull
#define SE_GT_FALLTHROUGH   0x1000000000000000ull
#define SE_GT_ZERO          0x2000000000000000ull
#define SE_GT_ALLOCATED     0x3000000000000000ull
#define SE_MAX_GD_ENTRIES   (1u << 24)

struct vmdk_se {
    struct bd_node *file;
    char *name;
    uint64_t capacity;          /* bytes */
    uint64_t grain;             /* bytes */
    uint64_t gt_bytes, gt_entries;
    uint64_t gd_off, gd_entries;
    uint64_t gt_off, gt_count;  /* tables region: offset, tables in it */
    uint64_t grains_off, grains_count;
    uint64_t file_size;
    uint64_t *gt;               /* one cached table */
    uint64_t gt_idx;            /* its directory index + 1, 0 = none */
    uint64_t *gd;
    unsigned long io_warned;
};

static int se_eio(struct vmdk_se *s, const char *what, uint64_t v)
{
    if (s->io_warned++ == 0)
        log_err("%s: seSparse %s 0x%" PRIx64 " is corrupt or beyond the end "
                "of the file", s->name, what, v);
    return -EIO;
}

/* A header field in sectors, as bytes; false when absurd. */
static bool sectors(uint64_t v, uint64_t *out)
{
    return v <= (UINT64_MAX >> 10) && (*out = v * BD_SECTOR, true);
}

static int se_decode(struct vmdk_se *s, const uint8_t *h, struct bd_err *err)
{
    uint64_t gd_len, gt_len, g_len, gts;

    if (bd_le64(h) != SE_MAGIC || bd_le64(h + 8) != SE_VERSION)
        return bd_err_set(err, ENOTSUP, "%s: seSparse version 0x%" PRIx64
                          " is not supported", s->name, bd_le64(h + 8));
    /* ESXi writes 4 KiB grains and 32 KiB grain tables; nothing else exists */
    if (bd_le64(h + 24) != 8 || bd_le64(h + 32) != 64)
        return bd_err_set(err, ENOTSUP, "%s: seSparse grain size %" PRIu64
                          " or table size %" PRIu64 " sectors is not supported",
                          s->name, bd_le64(h + 24), bd_le64(h + 32));
    if (!sectors(bd_le64(h + 16), &s->capacity) ||
        !sectors(bd_le64(h + 128), &s->gd_off) || !sectors(bd_le64(h + 136), &gd_len) ||
        !sectors(bd_le64(h + 144), &s->gt_off) || !sectors(bd_le64(h + 152), &gt_len) ||
        !sectors(bd_le64(h + 192), &s->grains_off) || !sectors(bd_le64(h + 200), &g_len))
        return bd_err_set(err, EINVAL, "%s: seSparse header has absurd sizes",
                          s->name);
    s->grain = 8 * BD_SECTOR;
    s->gt_bytes = 64 * BD_SECTOR;
    s->gt_entries = s->gt_bytes / 8;
    s->gt_count = gt_len / s->gt_bytes;
    s->grains_count = g_len / s->grain;
    gts = s->capacity / (s->grain * s->gt_entries) +
          (s->capacity % (s->grain * s->gt_entries) != 0);
    s->gd_entries = gd_len / 8;
    if (s->gd_entries > gts)
        s->gd_entries = gts;
    if (s->gd_entries < gts || gts > SE_MAX_GD_ENTRIES)
        return bd_err_set(err, EINVAL, "%s: seSparse grain directory does not "
                          "cover the capacity", s->name);
    if (!ovf_range_ok(s->gd_off, s->gd_entries * 8, s->file_size))
        return bd_err_set(err, EINVAL, "%s: seSparse grain directory lies "
                          "beyond the end of the file", s->name);
    return 0;
}

static int se_check_journal(struct vmdk_se *s, const uint8_t *h,
                            struct bd_err *err)
{
    uint8_t v[512];
    uint64_t off;
    int ret;

    if (!sectors(bd_le64(h + 80), &off) || !ovf_range_ok(off, 512, s->file_size))
        return bd_err_set(err, EINVAL, "%s: seSparse volatile header lies beyond "
                          "the end of the file", s->name);
    if ((ret = bd_pread(s->file, v, sizeof(v), off)) < 0)
        return bd_err_set(err, -ret, "%s: %s", s->name, strerror(-ret));
    if (bd_le64(v) != SE_VOLATILE_MAGIC)
        return bd_err_set(err, EINVAL, "%s: seSparse volatile header is damaged",
                          s->name);
    if (bd_le64(v + 24) != 0)
        return bd_err_set(err, ENOTSUP, "%s: the seSparse journal needs replaying "
                          "(the disk was not closed cleanly); open it on ESXi first",
                          s->name);
    return 0;
}

int vmdk_se_open(struct bd_node *file, const char *name, struct vmdk_se **out,
                 struct bd_err *err)
{
    struct vmdk_se *s = calloc(1, sizeof(*s));
    uint8_t h[512];
    int64_t fsize = bd_size(file);
    int ret;

    *out = NULL;
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    s->file = file;
    if (fsize < 512) {
        ret = bd_err_set(err, EINVAL, "%s: too short for a seSparse extent", name);
        goto out_free;
    }
    s->file_size = (uint64_t)fsize;
    if ((ret = bd_pread(file, h, sizeof(h), 0)) < 0) {
        bd_err_set(err, -ret, "%s: %s", name, strerror(-ret));
        goto out_free;
    }
    if ((ret = se_decode(s, h, err)) < 0 || (ret = se_check_journal(s, h, err)) < 0)
        goto out_free;
    s->gd = calloc(s->gd_entries ? s->gd_entries : 1, sizeof(uint64_t));
    s->gt = calloc(s->gt_entries, sizeof(uint64_t));
    uint8_t *raw = malloc(s->gd_entries * 8 + 1);
    if (!s->gd || !s->gt || !raw) {
        free(raw);
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out_free;
    }
    ret = bd_pread(file, raw, s->gd_entries * 8, s->gd_off);
    for (uint64_t i = 0; ret == 0 && i < s->gd_entries; i++)
        s->gd[i] = bd_le64(raw + i * 8);
    free(raw);
    if (ret < 0) {
        bd_err_set(err, -ret, "%s: reading the grain directory: %s", name,
                   strerror(-ret));
        goto out_free;
    }
    *out = s;
    return 0;

out_free:
    vmdk_se_close(s);
    return ret;
}

void vmdk_se_close(struct vmdk_se *s)
{
    if (!s)
        return;
    free(s->gd);
    free(s->gt);
    free(s->name);
    free(s);
}

uint64_t vmdk_se_capacity(const struct vmdk_se *s)
{
    return s->capacity;
}

static int se_entry(struct vmdk_se *s, uint64_t g, uint64_t *e)
{
    uint64_t gi = g / s->gt_entries, d, idx, off;
    int ret;

    d = s->gd[gi];
    if (d == 0) {
        *e = SE_GT_UNALLOCATED;
        return 0;
    }
    if ((d & SE_TYPE_MASK) != SE_GD_ALLOCATED)
        return se_eio(s, "grain directory entry", d);
    idx = d & ~SE_TYPE_MASK;
    if (s->gt_idx != gi + 1) {
        uint8_t *raw = (uint8_t *)s->gt;
        if (idx >= s->gt_count)
            return se_eio(s, "grain directory entry", d);
        off = s->gt_off + idx * s->gt_bytes;
        if (!ovf_range_ok(off, s->gt_bytes, s->file_size))
            return se_eio(s, "grain table offset", off);
        s->gt_idx = 0;
        if ((ret = bd_pread(s->file, raw, s->gt_bytes, off)) < 0)
            return ret;
        for (uint64_t i = 0; i < s->gt_entries; i++)
            s->gt[i] = bd_le64(raw + i * 8);
        s->gt_idx = gi + 1;
    }
    *e = s->gt[g % s->gt_entries];
    return 0;
}

/* Grain number of an allocated entry: 12 bits at 48..59 are its low part */
static uint64_t se_grain_number(uint64_t e)
{
    return ((e & 0x0fff000000000000ull) >> 48) | ((e & 0x0000ffffffffffffull) << 12);
}

static int se_state(struct vmdk_se *s, uint64_t g, enum vmdk_grain_state *st,
                    uint64_t *foff)
{
    uint64_t e, n;
    int ret = se_entry(s, g, &e);

    if (ret < 0)
        return ret;
    switch (e & SE_TYPE_MASK) {
    case SE_GT_UNALLOCATED:
    case SE_GT_FALLTHROUGH:
        *st = VMDK_GRAIN_UNALLOCATED;
        return 0;
    case SE_GT_ZERO:
        *st = VMDK_GRAIN_ZERO;
        return 0;
    case SE_GT_ALLOCATED:
        n = se_grain_number(e);
        if (n >= s->grains_count)
            return se_eio(s, "grain table entry", e);
        *foff = s->grains_off + n * s->grain;
        if (!ovf_range_ok(*foff, s->grain, s->file_size))
            return se_eio(s, "grain offset", *foff);
        *st = VMDK_GRAIN_DATA;
        return 0;
    }
    return se_eio(s, "grain table entry", e);
}

int vmdk_se_status(struct vmdk_se *s, uint64_t off, uint64_t len, uint64_t *pnum,
                   enum vmdk_grain_state *state, uint64_t *file_off)
{
    uint64_t g = off / s->grain, in = off % s->grain, done = 0, foff0 = 0;
    enum vmdk_grain_state st0 = VMDK_GRAIN_UNALLOCATED;

    if (off >= s->capacity) {
        *pnum = len;
        *state = VMDK_GRAIN_UNALLOCATED;
        return 0;
    }
    if (len > s->capacity - off)
        len = s->capacity - off;
    while (done < len) {
        enum vmdk_grain_state st;
        uint64_t foff = 0;
        int ret = se_state(s, g, &st, &foff);
        if (ret < 0)
            return ret;
        foff += in;
        if (done == 0) {
            st0 = st;
            foff0 = foff;
        } else if (st != st0 || (st == VMDK_GRAIN_DATA && foff != foff0 + done)) {
            break;
        }
        done += s->grain - in;
        in = 0;
        g++;
    }
    *pnum = done < len ? done : len;
    *state = st0;
    *file_off = foff0;
    return 0;
}

int vmdk_se_pread(struct vmdk_se *s, void *buf, uint64_t len, uint64_t off,
                  const struct vmdk_fill *fill)
{
    uint8_t *p = buf;

    while (len) {
        enum vmdk_grain_state st;
        uint64_t n, foff;
        int ret = vmdk_se_status(s, off, len, &n, &st, &foff);

        if (ret < 0)
            return ret;
        if (st == VMDK_GRAIN_DATA)
            ret = bd_pread(s->file, p, n, foff);
        else if (st == VMDK_GRAIN_ZERO)
            memset(p, 0, n);
        else
            ret = vmdk_fill_read(fill, p, n, off);
        if (ret < 0)
            return ret;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}
