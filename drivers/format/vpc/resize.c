/*
 * vpc resize (growable mounts): fixed disks move their footer to the new
 * end of the data; dynamic disks clear the BAT entries past the new end,
 * widen the BAT in place when its padding has room or rewrite it at the
 * end of the file when not (the dynamic header switched to it last), and
 * then write both footer copies with the new size. Each step leaves an
 * image that opens, at the old size or the new one. Differencing disks
 * take their size from their parent and are refused.
 */
#include "vpc.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

/* The footer for `size`: current size and geometry; a disk read by CHS
 * whose geometry cannot say `size` exactly is marked as read by current
 * size ("qem2", as QEMU's force_size does), so every reader agrees. */
static void footer_for(struct vpc_state *s, uint64_t size, uint8_t *b)
{
    uint64_t sectors = size / BD_SECTOR;
    uint16_t c;
    uint8_t h, spt;

    vpc_chs_for(sectors, &c, &h, &spt);
    memcpy(b, s->footer_raw, VPC_FOOTER_SIZE);
    bd_put_be64(b + 48, size);
    bd_put_be16(b + 56, c);
    b[58] = h;
    b[59] = spt;
    bool chs_read = s->size_from_chs &&
                    !(c == 65535 && h == 16 && spt == 255);
    if (chs_read && (uint64_t)c * h * spt != sectors)
        memcpy(b + 28, "qem2", 4);
    bd_put_be32(b + 64, vpc_checksum(b, VPC_FOOTER_SIZE, 64));
}

/* Both footer copies (a dynamic disk keeps one at offset 0), flushed. */
static int write_footers(struct bd_node *n, uint64_t size)
{
    struct vpc_state *s = n->state;
    uint8_t b[VPC_FOOTER_SIZE];
    int r;

    footer_for(s, size, b);
    r = bd_pwrite(n->file, b, VPC_FOOTER_SIZE, s->footer_off, 0);
    if (r == 0 && s->ft.type != VPC_TYPE_FIXED)
        r = bd_pwrite(n->file, b, VPC_FOOTER_SIZE, 0, 0);
    if (r == 0)
        r = bd_flush(n->file);
    if (r < 0)
        return r;
    memcpy(s->footer_raw, b, VPC_FOOTER_SIZE);
    vpc_footer_decode(b, &s->ft);
    s->size_from_chs = s->size_from_chs && memcmp(b + 28, "qem2", 4) != 0;
    s->size = size;
    return 0;
}

static int fixed_resize(struct bd_node *n, uint64_t size)
{
    struct vpc_state *s = n->state;
    uint64_t old_foot = s->footer_off, old_size = s->size;
    struct bd_err e2 = { 0 };
    int r;

    if (size > old_foot) {
        r = bd_truncate(n->file, size + VPC_FOOTER_SIZE, BD_PREALLOC_OFF, &e2);
        if (r < 0)
            return r;
    }
    s->footer_off = size;
    r = write_footers(n, size);
    if (r < 0) {
        s->footer_off = old_foot;
        return r;
    }
    if (size > old_size) {
        /* the old footer (and any slack before it) is data now */
        uint64_t end = old_foot + VPC_FOOTER_SIZE;
        r = bd_pwrite_zeroes(n->file, (end < size ? end : size) - old_size,
                             old_size, 0);
        if (r == 0)
            r = bd_flush(n->file);
        return r;
    }
    return bd_truncate(n->file, size + VPC_FOOTER_SIZE, BD_PREALLOC_OFF, &e2);
}

/* Write BAT entries [a, b) from s->bat, flushed. */
static int bat_write(struct bd_node *n, uint64_t table_off, uint64_t a,
                     uint64_t b)
{
    struct vpc_state *s = n->state;
    uint8_t *raw;
    int r;

    if (a >= b)
        return 0;
    raw = malloc((b - a) * 4);
    if (!raw)
        return -ENOMEM;
    for (uint64_t i = a; i < b; i++)
        bd_put_be32(raw + (i - a) * 4, s->bat[i]);
    r = bd_pwrite(n->file, raw, (b - a) * 4, table_off + a * 4, 0);
    free(raw);
    return r == 0 ? bd_flush(n->file) : r;
}

/* Bytes after the BAT's entries that its 512-byte padding leaves free:
 * no block, header or footer starts there. */
static uint64_t bat_room(struct vpc_state *s)
{
    uint64_t start = s->dyn.table_off;
    uint64_t end = start + bd_align_up((uint64_t)s->dyn.bat_entries * 4,
                                       BD_SECTOR);

    if (s->footer_off < end || (s->ft.data_off >= start && s->ft.data_off < end))
        return 0;
    for (uint32_t i = 0; i < s->dyn.bat_entries; i++) {
        uint64_t at = (uint64_t)s->bat[i] * BD_SECTOR;
        if (s->bat[i] != VPC_BAT_UNUSED && at >= start && at < end)
            return 0;
    }
    return end - start;
}

/* A BAT of `entries` (> bat_entries): in its padding, or rewritten past
 * the last block; the dynamic header names it last. */
static int bat_widen(struct bd_node *n, uint32_t entries)
{
    struct vpc_state *s = n->state;
    uint64_t old = s->dyn.bat_entries, table_off = s->dyn.table_off;
    uint64_t bytes = bd_align_up((uint64_t)entries * 4, BD_SECTOR);
    uint8_t dyn[VPC_DYN_SIZE];
    struct bd_err e2 = { 0 };
    uint32_t *bat;
    int r;

    bat = malloc(bytes);
    if (!bat)
        return -ENOMEM;
    memcpy(bat, s->bat, old * 4);
    for (uint64_t i = old; i < bytes / 4; i++)
        bat[i] = VPC_BAT_UNUSED;
    /* readers load entries without a lock: the old table stays allocated
     * (until the next widening or close) for a reader racing this */
    free(s->retired_bat);
    s->retired_bat = s->bat;
    s->bat = bat;
    if (bytes > bat_room(s)) {
        uint64_t foot = s->footer_off;
        table_off = foot;
        r = bd_truncate(n->file, foot + bytes + VPC_FOOTER_SIZE,
                        BD_PREALLOC_OFF, &e2);
        if (r == 0)
            r = bd_pwrite(n->file, s->footer_raw, VPC_FOOTER_SIZE,
                          foot + bytes, 0);
        if (r < 0)
            return r;
        s->footer_off = foot + bytes;
        r = bat_write(n, table_off, 0, entries);
    } else {
        r = bat_write(n, table_off, old, entries);
    }
    if (r < 0)
        return r;
    r = bd_pread(n->file, dyn, VPC_DYN_SIZE, s->ft.data_off);
    if (r < 0)
        return r;
    bd_put_be64(dyn + 16, table_off);
    bd_put_be32(dyn + 28, entries);
    bd_put_be32(dyn + 36, vpc_checksum(dyn, VPC_DYN_SIZE, 36));
    r = bd_pwrite(n->file, dyn, VPC_DYN_SIZE, s->ft.data_off, 0);
    if (r == 0)
        r = bd_flush(n->file);
    if (r == 0) {
        s->dyn.table_off = table_off;
        s->dyn.bat_entries = entries;
    }
    return r;
}

static int dynamic_resize(struct bd_node *n, uint64_t size)
{
    struct vpc_state *s = n->state;
    uint64_t bs = s->block_size;
    uint64_t old_blocks = (s->size + bs - 1) / bs;
    uint64_t new_blocks = (size + bs - 1) / bs;
    uint64_t lo = s->size < size ? s->size : size;
    int r;

    if (new_blocks > s->dyn.bat_entries) {
        if (new_blocks > VPC_MAX_BAT_ENTRIES)
            return -EFBIG;
        r = bat_widen(n, (uint32_t)new_blocks);
        if (r < 0)
            return r;
    }
    /* blocks past the smaller end read as zeroes from now on: entries
     * beyond the old end were never checked, and are dropped too */
    uint64_t a = (lo + bs - 1) / bs;
    uint64_t b = old_blocks > new_blocks ? old_blocks : new_blocks;
    if (b > s->dyn.bat_entries)
        b = s->dyn.bat_entries;
    for (uint64_t i = a; i < b; i++)
        __atomic_store_n(&s->bat[i], VPC_BAT_UNUSED, __ATOMIC_RELEASE);
    r = bat_write(n, s->dyn.table_off, a, b);
    if (r < 0)
        return r;
    /* the kept block's tail past the smaller end reads as zeroes */
    if (lo % bs && s->bat[lo / bs] != VPC_BAT_UNUSED) {
        uint64_t in = lo % bs;
        r = bd_pwrite_zeroes(n->file, bs - in,
                             vpc_block_data_off(s, s->bat[lo / bs]) + in, 0);
        if (r < 0)
            return r;
    }
    return write_footers(n, size);
}

int vpc_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                 struct bd_err *err)
{
    struct vpc_state *s = n->state;
    int r;

    (void)prealloc;
    if (size == 0 || size % BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: a vhd's size is a positive whole "
                          "number of 512-byte sectors, %llu is not", n->name,
                          (unsigned long long)size);
    if (s->ft.type == VPC_TYPE_DIFF)
        return bd_err_set(err, ENOTSUP, "%s: a differencing vhd has its "
                          "parent's size; resize the parent instead", n->name);
    if (s->ft.type != VPC_TYPE_FIXED && size / BD_SECTOR > VPC_MAX_SECTORS)
        return bd_err_set(err, EFBIG, "%s: %llu bytes is larger than a vhd "
                          "can be (2040 GiB)", n->name, (unsigned long long)size);
    if (s->ft_sum_bad || s->dyn_sum_bad || s->end_footer_bad)
        return bd_err_set(err, EROFS, "%s: damaged vhd metadata; not resizing",
                          n->name);
    pthread_mutex_lock(&s->lock);
    r = s->ft.type == VPC_TYPE_FIXED ? fixed_resize(n, size)
                                     : dynamic_resize(n, size);
    pthread_mutex_unlock(&s->lock);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot resize to %llu bytes: %s",
                          n->name, (unsigned long long)size, strerror(-r));
    return 0;
}
