/*
 * Partition tables, read by libblkid. libblkid reads from a file
 * descriptor, and an image is a node, not a file: so the bytes it may look
 * at are copied into a sparse memfd as large as the disk. Those are the
 * disk's first and last MiB (MBR, GPT and its backup) and, around each
 * partition libblkid reports, the partition's first and last bytes (the
 * filesystem's superblock) and the MiB after it (the next extended boot
 * record of an MBR's logical partitions). Probing repeats until it reports
 * nothing new. Zero pages are not written, so memory is what the windows
 * hold, a few MiB per partition at most.
 */
#include "bd-internal.h"
#include "graph.h"

#include <blkid/blkid.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PART_HEAD_WINDOW    (1u << 20)      /* disk head and tail */
#define PART_START_WINDOW   (256u << 10)    /* superblocks of a partition */
#define PART_END_WINDOW     (128u << 10)    /* signatures at its end */
#define PART_NEXT_WINDOW    (1u << 20)      /* the next EBR after it */
#define PART_MAX            128
#define PART_MAX_ROUNDS     (PART_MAX + 4)
#define PART_MAX_WINDOWS    (4 + 3 * PART_MAX * 2)

struct part_copy {
    struct bd_node *n;
    uint64_t size;
    int fd;
    uint8_t *buf;
    uint64_t done[PART_MAX_WINDOWS];  /* window starts copied (by start) */
    size_t ndone;
};

static bool all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i])
            return false;
    }
    return true;
}

/* Copy [off, off + len) of the disk into the memfd, once. 1 when copied
 * now, 0 when done before (or nothing to do), -errno. */
static int copy_window(struct part_copy *pc, uint64_t off, uint64_t len)
{
    if (off >= pc->size)
        return 0;
    if (len > pc->size - off)
        len = pc->size - off;
    for (size_t i = 0; i < pc->ndone; i++) {
        if (pc->done[i] == off)
            return 0;
    }
    if (pc->ndone == PART_MAX_WINDOWS)
        return 0;
    pc->done[pc->ndone++] = off;
    int r = bd_pread(pc->n, pc->buf, len, off);
    if (r < 0)
        return r;
    for (uint64_t p = 0; p < len; p += 4096) {
        size_t chunk = len - p < 4096 ? (size_t)(len - p) : 4096;
        if (all_zero(pc->buf + p, chunk))
            continue;
        if (pwrite(pc->fd, pc->buf + p, chunk, (off_t)(off + p)) != (ssize_t)chunk)
            return -errno ? -errno : -EIO;
    }
    return 1;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* What libblkid reports now: the table into t (replacing what was there). */
static int probe_table(struct part_copy *pc, struct bd_partition_table *t)
{
    blkid_probe pr = blkid_new_probe();
    int r = 0;
    if (!pr)
        return -ENOMEM;
    if (blkid_probe_set_device(pr, pc->fd, 0, (blkid_loff_t)pc->size) != 0) {
        blkid_free_probe(pr);
        return -EIO;
    }
    blkid_probe_enable_superblocks(pr, 0);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
    t->n = 0;
    t->type[0] = t->id[0] = '\0';
    if (blkid_do_safeprobe(pr) != 0)
        goto out;                       /* no table (or an ambiguous one) */
    blkid_partlist ls = blkid_probe_get_partitions(pr);
    blkid_parttable tab = ls ? blkid_partlist_get_table(ls) : NULL;
    if (!tab)
        goto out;
    copy_str(t->type, sizeof(t->type), blkid_parttable_get_type(tab));
    copy_str(t->id, sizeof(t->id), blkid_parttable_get_id(tab));
    int count = blkid_partlist_numof_partitions(ls);
    for (int i = 0; i < count && t->n < PART_MAX; i++) {
        blkid_partition par = blkid_partlist_get_partition(ls, i);
        blkid_loff_t start = blkid_partition_get_start(par);
        blkid_loff_t sectors = blkid_partition_get_size(par);
        int no = blkid_partition_get_partno(par);
        struct bd_partition *p = &t->v[t->n];
        if (start < 0 || sectors <= 0 || no <= 0 ||
            (uint64_t)start > pc->size / BD_SECTOR ||
            (uint64_t)sectors > pc->size / BD_SECTOR - (uint64_t)start) {
            log_warn("%s: partition %d lies outside the disk (%lld sectors "
                     "at sector %lld); it is left out", pc->n->name, no,
                     (long long)sectors, (long long)start);
            continue;
        }
        memset(p, 0, sizeof(*p));
        p->number = (unsigned)no;
        p->off = (uint64_t)start * BD_SECTOR;
        p->len = (uint64_t)sectors * BD_SECTOR;
        p->container = blkid_partition_is_extended(par);
        p->logical = blkid_partition_is_logical(par);
        const char *ts = blkid_partition_get_type_string(par);
        if (ts)
            copy_str(p->type, sizeof(p->type), ts);
        else
            snprintf(p->type, sizeof(p->type), "0x%x",
                     (unsigned)blkid_partition_get_type(par));
        copy_str(p->uuid, sizeof(p->uuid), blkid_partition_get_uuid(par));
        copy_str(p->name, sizeof(p->name), blkid_partition_get_name(par));
        t->n++;
    }
out:
    blkid_free_probe(pr);
    return r;
}

/* The filesystem libblkid finds in p, if any. */
static void probe_fs(struct part_copy *pc, struct bd_partition *p)
{
    blkid_probe pr = blkid_new_probe();
    const char *v;
    if (!pr)
        return;
    if (blkid_probe_set_device(pr, pc->fd, (blkid_loff_t)p->off,
                               (blkid_loff_t)p->len) == 0) {
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE |
                                          BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID);
        blkid_probe_enable_partitions(pr, 0);
        if (blkid_do_safeprobe(pr) == 0) {
            if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
                copy_str(p->fs_type, sizeof(p->fs_type), v);
            if (blkid_probe_lookup_value(pr, "LABEL", &v, NULL) == 0)
                copy_str(p->fs_label, sizeof(p->fs_label), v);
            if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
                copy_str(p->fs_uuid, sizeof(p->fs_uuid), v);
        }
    }
    blkid_free_probe(pr);
}

static int copy_around(struct part_copy *pc, const struct bd_partition_table *t)
{
    int added = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct bd_partition *p = &t->v[i];
        uint64_t end = p->off + p->len;
        int r[3] = {
            copy_window(pc, p->off, PART_START_WINDOW),
            copy_window(pc, end > PART_END_WINDOW ? end - PART_END_WINDOW : 0,
                        PART_END_WINDOW),
            copy_window(pc, end, PART_NEXT_WINDOW),
        };
        for (int k = 0; k < 3; k++) {
            if (r[k] < 0)
                return r[k];
            added += r[k];
        }
    }
    return added;
}

int bd_node_partitions(struct bd_node *n, struct bd_partition_table *t,
                       struct bd_err *err)
{
    struct part_copy pc = { .n = n, .fd = -1 };
    int64_t size = bd_size(n);
    int r;

    memset(t, 0, sizeof(*t));
    if (size < 0)
        return bd_err_set(err, (int)-size, "%s: cannot get its size: %s",
                          n->name, strerror((int)-size));
    pc.size = (uint64_t)size;
    t->v = calloc(PART_MAX, sizeof(*t->v));
    pc.buf = malloc(PART_HEAD_WINDOW);
    pc.fd = memfd_create("imgfuse-partitions", MFD_CLOEXEC);
    if (!t->v || !pc.buf || pc.fd < 0 || ftruncate(pc.fd, (off_t)size) != 0) {
        r = bd_err_set(err, errno ? errno : ENOMEM, "%s: cannot read its "
                       "partition table: %s", n->name, strerror(errno ? errno : ENOMEM));
        goto out;
    }
    r = copy_window(&pc, 0, PART_HEAD_WINDOW);
    if (r >= 0 && pc.size > PART_HEAD_WINDOW)
        r = copy_window(&pc, pc.size - PART_HEAD_WINDOW, PART_HEAD_WINDOW);
    for (int round = 0; r >= 0 && round < PART_MAX_ROUNDS; round++) {
        r = probe_table(&pc, t);
        if (r == 0)
            r = copy_around(&pc, t);
        if (r == 0)
            break;                      /* nothing new to show libblkid */
    }
    if (r < 0) {
        bd_err_set(err, -r, "%s: cannot read its partition table: %s",
                   n->name, strerror(-r));
        goto out;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!t->v[i].container)
            probe_fs(&pc, &t->v[i]);
    }
    r = 0;
out:
    if (pc.fd >= 0)
        close(pc.fd);
    free(pc.buf);
    if (r < 0)
        bd_partition_table_free(t);
    return r;
}

void bd_partition_table_free(struct bd_partition_table *t)
{
    free(t->v);
    memset(t, 0, sizeof(*t));
}

const struct bd_partition *bd_partition_find(const struct bd_partition_table *t,
                                             unsigned number)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].number == number)
            return &t->v[i];
    }
    return NULL;
}
