/*
 * streamOptimized extents: the directory found through the footer and, for
 * writers, new grains compressed and appended (partly written ones wait in
 * pending slots), tables kept in memory and the tail (tables, directory,
 * footer, end-of-stream marker) rewritten at flush and close. Reading
 * compressed grains is inflate.c's job.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MARKER_EOS          0u
#define MARKER_GT           1u
#define MARKER_GD           2u
#define MARKER_FOOTER       3u
#define MAX_STREAM_TABLES   (256u << 20)    /* bytes of tables a stream writer keeps */

/* ---- open: the footer, the tables, the append point ----------------------- */

/* streamOptimized with the directory at the end: the footer holds the header
 * copy that has the real gdOffset (5.0 technote, stream-optimized format). */
int vmdk_stream_read_footer(struct vmdk_sparse *s, struct bd_err *err)
{
    uint8_t f[1536];
    int ret;

    if (s->file_size < 1536 + BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: stream image has no footer "
                          "(truncated file?)", s->name);
    ret = bd_pread(s->file, f, sizeof(f), s->file_size - 1536);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: reading the footer: %s", s->name,
                          strerror(-ret));
    if (bd_le32(f + 8) != 0 || bd_le32(f + 12) != MARKER_FOOTER ||
        bd_le32(f + 512) != VMDK4_MAGIC || bd_le32(f + 1024 + 12) != MARKER_EOS ||
        bd_le32(f + 1024 + 8) != 0)
        return bd_err_set(err, EINVAL, "%s: the footer of the stream image is "
                          "missing or damaged (truncated file?)", s->name);
    uint64_t gd_sec = bd_le64(f + 512 + 56);
    if (gd_sec == VMDK4_GD_AT_END || gd_sec > (UINT64_MAX >> 10))
        return bd_err_set(err, EINVAL, "%s: the footer has no grain directory",
                          s->name);
    s->gd_off = gd_sec * BD_SECTOR;
    return 0;
}

/* Stream append point: after the last grain (all metadata behind it is
 * rewritten from memory). */
static int find_stream_end(struct vmdk_sparse *s)
{
    uint64_t end = s->overhead, last = 0;

    if (end < s->desc_off + s->desc_len)
        end = s->desc_off + s->desc_len;
    if (end < BD_SECTOR)
        end = BD_SECTOR;
    for (uint32_t gi = 0; gi < s->gd_entries; gi++) {
        uint32_t *t = s->gt[gi];
        for (uint32_t i = 0; t && i < s->gtes; i++) {
            if (vmdk_gte_state(s, t[i]) == VMDK_GRAIN_COMPRESSED && t[i] > last)
                last = t[i];
        }
    }
    if (last) {
        uint8_t m[12];
        uint64_t off = last * BD_SECTOR;
        int ret = vmdk_sparse_file_read(s, m, sizeof(m), off, "grain marker");
        if (ret < 0)
            return ret;
        uint64_t e = off + 12 + bd_le32(m + 8);
        if (e > end)
            end = e;
    }
    s->alloc_off = bd_align_up(end, BD_SECTOR);
    return 0;
}

static int load_all_tables(struct vmdk_sparse *s, struct bd_err *err)
{
    uint64_t used = 0;

    for (uint32_t gi = 0; gi < s->gd_entries; gi++)
        used += s->gd[gi] ? (uint64_t)s->gtes * 4 : 0;
    if (used > MAX_STREAM_TABLES)
        return bd_err_set(err, EFBIG, "%s: too many grain tables to append to "
                          "this stream image (%" PRIu64 " MiB); mount it with -r",
                          s->name, used >> 20);
    for (uint32_t gi = 0; gi < s->gd_entries; gi++) {
        uint32_t *t;
        int ret = vmdk_gt_get(s, gi, &t);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: reading grain table %" PRIu32 ": %s",
                              s->name, gi, strerror(-ret));
    }
    s->keep_tables = true;
    return 0;
}

int vmdk_stream_open_append(struct vmdk_sparse *s, struct bd_err *err)
{
    int ret = load_all_tables(s, err);

    if (ret < 0)
        return ret;
    ret = find_stream_end(s);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: cannot find the end of the stream",
                          s->name);
    return 0;
}

/* ---- new grains ---------------------------------------------------------- */

/* The slot filling grain g, or -1. */
int vmdk_stream_slot(const struct vmdk_sparse *s, uint64_t g)
{
    for (unsigned i = 0; i < VMDK_PEND_SLOTS; i++) {
        if (s->pend[i].valid && s->pend[i].idx == g)
            return (int)i;
    }
    return -1;
}

bool vmdk_stream_pending_in(const struct vmdk_sparse *s, uint64_t gi)
{
    for (unsigned i = 0; i < VMDK_PEND_SLOTS; i++) {
        if (s->pend[i].valid && s->pend[i].idx / s->gtes == gi)
            return true;
    }
    return false;
}

/* Append grain g (s->grain bytes at data) compressed, with its marker. */
static int append_compressed(struct vmdk_sparse *s, uint64_t g, const uint8_t *data)
{
    uLongf clen = (uLongf)(s->cbuf_len - 12);
    uint64_t off, total;
    int ret;

    if (compress2(s->cbuf + 12, &clen, data, (uLong)s->grain,
                  Z_DEFAULT_COMPRESSION) != Z_OK)
        return -EIO;
    bd_put_le64(s->cbuf, g * (s->grain / BD_SECTOR));
    bd_put_le32(s->cbuf + 8, (uint32_t)clen);
    total = bd_align_up(12 + (uint64_t)clen, BD_SECTOR);
    memset(s->cbuf + 12 + clen, 0, total - 12 - clen);
    if ((ret = vmdk_sparse_alloc(s, total, &off)) < 0)
        return ret;
    if ((ret = vmdk_sparse_file_write(s, s->cbuf, total, off)) < 0)
        return ret;
    vmdk_zcache_forget(s, g);
    return vmdk_gt_set(s, g, (uint32_t)(off / BD_SECTOR));
}

static int commit_slot(struct vmdk_sparse *s, unsigned i)
{
    s->pend[i].valid = false;
    return append_compressed(s, s->pend[i].idx, s->pend[i].buf);
}

int vmdk_stream_commit_all(struct vmdk_sparse *s)
{
    for (unsigned i = 0; i < VMDK_PEND_SLOTS; i++) {
        int ret = s->pend[i].valid ? commit_slot(s, i) : 0;
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int refuse_overwrite(struct vmdk_sparse *s, uint64_t off)
{
    if (vmdk_sparse_first_warning(s))
        log_err("%s: stream-optimized images accept only writes of new grains; "
                "refusing to overwrite the grain at offset %" PRIu64, s->name, off);
    return -EOPNOTSUPP;
}

/* A free pending slot for grain g (committing the oldest when all are
 * busy), filled with what the grain reads as now. */
static int open_slot(struct vmdk_sparse *s, uint64_t g, enum vmdk_grain_state st,
                     const struct vmdk_fill *fill, unsigned *out)
{
    uint64_t words = (s->grain / BD_SECTOR + 63) / 64;
    unsigned i, oldest = 0;
    int ret;

    for (i = 0; i < VMDK_PEND_SLOTS && s->pend[i].valid; i++) {
        if (s->pend[i].age < s->pend[oldest].age)
            oldest = i;
    }
    if (i == VMDK_PEND_SLOTS) {
        if ((ret = commit_slot(s, oldest)) < 0)
            return ret;
        i = oldest;
    }
    if (!s->pend[i].buf) {
        s->pend[i].buf = malloc(s->grain);
        s->pend[i].map = calloc(words, sizeof(uint64_t));
        if (!s->pend[i].buf || !s->pend[i].map)
            return -ENOMEM;
    }
    if (st == VMDK_GRAIN_ZERO)
        memset(s->pend[i].buf, 0, s->grain);
    else if ((ret = vmdk_fill_read(fill, s->pend[i].buf, s->grain, g * s->grain)) < 0)
        return ret;
    memset(s->pend[i].map, 0, words * sizeof(uint64_t));
    s->pend[i].idx = g;
    s->pend[i].valid = true;
    *out = i;
    return 0;
}

/* Writes to compressed (stream) extents: new grains only, appended. */
int vmdk_stream_write(struct vmdk_sparse *s, const uint8_t *p, uint64_t n,
                      uint64_t off, const struct vmdk_fill *fill)
{
    uint64_t g = off / s->grain, in = off % s->grain;
    uint64_t sectors = s->grain / BD_SECTOR;
    int slot = vmdk_stream_slot(s, g);
    unsigned i;
    uint32_t gte;
    int ret;

    if (!s->markers)
        return refuse_overwrite(s, off);
    if (slot < 0) {
        if ((ret = vmdk_gt_entry(s, g, &gte)) < 0)
            return ret;
        enum vmdk_grain_state st = vmdk_gte_state(s, gte);
        if (st != VMDK_GRAIN_UNALLOCATED && st != VMDK_GRAIN_ZERO)
            return refuse_overwrite(s, off);
        if (n == s->grain) {
            if (vmdk_is_zero(p, n) && (st == VMDK_GRAIN_ZERO || !fill->backing))
                return 0;
            return append_compressed(s, g, p);
        }
        if ((ret = open_slot(s, g, st, fill, &i)) < 0)
            return ret;
    } else {
        i = (unsigned)slot;
    }
    s->pend[i].age = ++s->pend_clock;
    memcpy(s->pend[i].buf + in, p, n);
    for (uint64_t sec = in / BD_SECTOR; sec < (in + n) / BD_SECTOR; sec++)
        s->pend[i].map[sec / 64] |= 1ull << (sec % 64);
    for (uint64_t w = 0; w < (sectors + 63) / 64; w++) {
        uint64_t want = (w + 1) * 64 <= sectors ? UINT64_MAX
                        : (1ull << (sectors % 64)) - 1;
        if (s->pend[i].map[w] != want)
            return 0;
    }
    return commit_slot(s, i);
}

/* ---- the stream tail: tables, directory, footer, end-of-stream ------------ */

static void put_marker(uint8_t *m, uint64_t val, uint32_t type)
{
    memset(m, 0, BD_SECTOR);
    bd_put_le64(m, val);
    bd_put_le32(m + 12, type);
}

static bool table_used(const struct vmdk_sparse *s, const uint32_t *t)
{
    for (uint32_t i = 0; t && i < s->gtes; i++) {
        if (t[i])
            return true;
    }
    return false;
}

static int write_tail(struct vmdk_sparse *s)
{
    uint64_t gd_bytes = bd_align_up((uint64_t)s->gd_entries * 4, BD_SECTOR);
    uint64_t gt_sectors = s->gt_bytes / BD_SECTOR, pos = s->alloc_off;
    size_t buf_len = s->gt_bytes > gd_bytes ? s->gt_bytes : gd_bytes;
    uint8_t *buf = malloc(buf_len + 3 * BD_SECTOR);
    uint8_t *m = buf + buf_len;
    int ret = 0;

    if (!buf)
        return -ENOMEM;
    for (uint32_t gi = 0; gi < s->gd_entries && ret == 0; gi++) {
        uint32_t *t = s->gt[gi];
        if (!table_used(s, t)) {
            s->gd[gi] = 0;
            continue;
        }
        put_marker(m, gt_sectors, MARKER_GT);
        memset(buf, 0, s->gt_bytes);
        for (uint32_t i = 0; i < s->gtes; i++)
            bd_put_le32(buf + (size_t)i * 4, t[i]);
        if ((pos + BD_SECTOR + s->gt_bytes) / BD_SECTOR > UINT32_MAX) {
            ret = -EFBIG;
            break;
        }
        ret = vmdk_sparse_file_write(s, m, BD_SECTOR, pos);
        if (ret == 0)
            ret = vmdk_sparse_file_write(s, buf, s->gt_bytes, pos + BD_SECTOR);
        s->gd[gi] = (uint32_t)((pos + BD_SECTOR) / BD_SECTOR);
        pos += BD_SECTOR + s->gt_bytes;
    }
    if (ret < 0)
        goto out_free;
    put_marker(m, gd_bytes / BD_SECTOR, MARKER_GD);
    memset(buf, 0, gd_bytes);
    for (uint32_t gi = 0; gi < s->gd_entries; gi++)
        bd_put_le32(buf + (size_t)gi * 4, s->gd[gi]);
    if ((ret = vmdk_sparse_file_write(s, m, BD_SECTOR, pos)) < 0 ||
        (ret = vmdk_sparse_file_write(s, buf, gd_bytes, pos + BD_SECTOR)) < 0)
        goto out_free;
    uint64_t gd_sec = (pos + BD_SECTOR) / BD_SECTOR;
    pos += BD_SECTOR + gd_bytes;

    /* footer marker, header copy with the real directory, end of stream */
    put_marker(m, 1, MARKER_FOOTER);
    memcpy(m + BD_SECTOR, s->header, BD_SECTOR);
    bd_put_le64(m + BD_SECTOR + 56, gd_sec);
    /* no redundant directory is kept for a stream */
    bd_put_le32(m + BD_SECTOR + 8, bd_le32(s->header + 8) & ~VMDK4_FLAG_RGD);
    bd_put_le64(m + BD_SECTOR + 48, 0);
    memset(m + 2 * BD_SECTOR, 0, BD_SECTOR);
    if ((ret = vmdk_sparse_file_write(s, m, 3 * BD_SECTOR, pos)) < 0)
        goto out_free;
    pos += 3 * BD_SECTOR;
    if (s->file_size > pos) {
        struct bd_err e = {0};
        if ((ret = bd_truncate(s->file, pos, BD_PREALLOC_OFF, &e)) < 0)
            goto out_free;
        s->file_size = pos;
    }
    s->gd_off = gd_sec * BD_SECTOR;
    s->dirty = false;

out_free:
    free(buf);
    return ret;
}

int vmdk_sparse_flush(struct vmdk_sparse *s)
{
    if (!s->dirty)
        return 0;
    if (!s->keep_tables) {
        s->dirty = false;
        return 0;
    }
    return write_tail(s);
}
