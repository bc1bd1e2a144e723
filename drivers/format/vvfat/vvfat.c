/*
 * vvfat: a host directory shown as a FAT disk image, as QEMU's "Virtual
 * FAT disk images" (read-only). A format with no protocol child
 * (bd_driver.no_file): named by fat:[floppy:][rw:][12:|16:|32:]DIR, by
 * driver=vvfat,dir=DIR,... or by -F vvfat DIR. The tree is walked once at
 * open; metadata sectors are made from it and file contents are read from
 * the host files when the disk is read, never copied. A file changed on
 * the host while mounted (unsupported, as in QEMU) reads as EIO.
 */
#include "vvfat.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const vvfat_options[] = {
    "dir", "filename", "fat-type", "floppy", "label", "rw", "size", NULL
};
static const char *const vvfat_schemes[] = { "fat", NULL };

/* fat:[floppy:][rw:][12:|16:|32:]DIR into dir=, floppy=, rw=, fat-type= */
static int vvfat_parse(const char *src, struct bd_opts *o, struct bd_err *err)
{
    const char *p = src + 4;
    int r = 0;

    for (;;) {
        if (!strncmp(p, "floppy:", 7)) {
            r = bd_opts_set(o, "floppy", "on");
            p += 7;
        } else if (!strncmp(p, "rw:", 3)) {
            r = bd_opts_set(o, "rw", "on");
            p += 3;
        } else if ((!strncmp(p, "12:", 3) || !strncmp(p, "16:", 3) ||
                    !strncmp(p, "32:", 3))) {
            char t[3] = { p[0], p[1], 0 };
            r = bd_opts_set(o, "fat-type", t);
            p += 3;
        } else {
            break;
        }
        if (r < 0)
            return bd_err_set(err, ENOMEM, "out of memory");
    }
    if (!*p)
        return bd_err_set(err, EINVAL, "%s: no directory given; write "
                          "fat:[floppy:][rw:][12:|16:|32:]DIR", src);
    return bd_opts_set(o, "dir", p) < 0 ? bd_err_set(err, ENOMEM, "out of memory")
                                        : 0;
}

static const struct bd_uri_ops vvfat_uri = {
    .schemes = vvfat_schemes,
    .parse = vvfat_parse,
};

/* An 11-byte volume label: printable ASCII that a short name may hold,
 * upper-cased and padded with spaces. */
static int parse_label(const char *v, uint8_t out[11], const char *name,
                       struct bd_err *err)
{
    size_t len = strlen(v);
    if (len > 11)
        return bd_err_set(err, EINVAL, "%s: label '%s' is %zu bytes long; a "
                          "FAT label holds at most 11", name, v, len);
    memset(out, ' ', 11);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || strchr("\"*+,./:;<=>?[\\]|", c))
            return bd_err_set(err, EINVAL, "%s: label '%s' holds '%c', which "
                              "a FAT label cannot; use letters, digits, "
                              "spaces and !#$%%&'()-@^_`{}~", name, v,
                              c >= 0x20 && c <= 0x7e ? c : '?');
        out[i] = (uint8_t)(c >= 'a' && c <= 'z' ? c - 0x20 : c);
    }
    return 0;
}

struct vvfat_args {
    const char *dir;
    unsigned fat_type;
    bool floppy, rw;
    uint64_t size;
};

static int read_options(struct bd_node *n, const struct bd_opts *o,
                        struct vvfat_args *a, struct bd_err *err)
{
    static const char *const types[] = { "12", "16", "32", NULL };
    struct vvfat_state *s = n->state;
    const char *fname = bd_opts_get(o, "filename");
    const char *label = bd_opts_get(o, "label");

    a->dir = bd_opts_get(o, "dir");
    if (!a->dir)
        a->dir = fname;
    if (!a->dir)
        return bd_err_set(err, EINVAL, "vvfat: no directory given; use "
                          "fat:DIR, dir=DIR or -F vvfat DIR");
    int t = bd_opts_get_enum(o, "fat-type", types, -1, err);
    if (t == -EINVAL)
        return t;
    a->fat_type = t < 0 ? 0 : t == 0 ? 12 : t == 1 ? 16 : 32;
    if (bd_opts_get_bool(o, "floppy", false, &a->floppy, err) == -EINVAL ||
        bd_opts_get_bool(o, "rw", false, &a->rw, err) == -EINVAL ||
        bd_opts_get_size(o, "size", 0, &a->size, err) == -EINVAL)
        return -EINVAL;
    if (a->size && !a->fat_type && !a->floppy)
        a->fat_type = 32;
    s->rw = a->rw && !n->flags.read_only;
    if (!s->rw)
        n->flags.read_only = true;      /* read-only unless rw=on */
    memcpy(s->label, VVFAT_DEFAULT_LABEL "           ", 11);
    return label ? parse_label(label, s->label, a->dir, err) : 0;
}

static int vvfat_open(struct bd_node *n, const struct bd_opts *o,
                      struct bd_err *err)
{
    struct vvfat_state *s = n->state;
    struct vvfat_args a = { 0 };
    int r;

    s->fd = -1;
    if ((r = read_options(n, o, &a, err)) < 0)
        return r;
    if (!n->filename && !(n->filename = strdup(a.dir)))
        return bd_err_set(err, ENOMEM, "out of memory");
    r = vvfat_geometry(&s->g, a.fat_type, a.floppy, a.size, a.dir, err);
    if (r < 0)
        return r;
    if (a.fat_type == 32 && !a.floppy)
        log_info("%s: FAT32 disk of %" PRIu64 " MiB", a.dir,
                 s->g.disk_bytes >> 20);
    if ((r = vvfat_scan(s, a.dir, err)) < 0)
        return r;
    s->serial = (uint32_t)(s->objs[0].ino * 2654435761u) ^ (uint32_t)s->objs[0].dev;
    if ((r = vvfat_layout(s, a.dir, err)) < 0 || !s->rw)
        return r;
    if (s->g.disk_bytes > 32ull << 30)
        return bd_err_set(err, EINVAL, "%s: rw works on disks up to 32 GiB; "
                          "pick a smaller size= or drop rw", a.dir);
    if ((r = vvfat_overlay_open(&s->ov, s->g.disk_bytes / BD_SECTOR, err)) < 0)
        return r;
    log_info("%s: rw: what is written to the disk is carried back into the "
             "directory at each flush and at unmount (a beta, as in QEMU; "
             "keep a backup)", a.dir);
    return vvfat_base_init(s, err);
}

static void vvfat_close(struct bd_node *n)
{
    struct vvfat_state *s = n->state;
    if (s->rw && s->dirty && s->base)
        vvfat_commit(n);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    vvfat_base_free(s);
    vvfat_overlay_close(&s->ov);
    vvfat_free_tree(s);
}

static int64_t vvfat_size(struct bd_node *n)
{
    struct vvfat_state *s = n->state;
    return (int64_t)s->g.disk_bytes;
}

static void vvfat_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct vvfat_state *s = n->state;
    lim->request_alignment = BD_SECTOR;
    lim->opt_transfer = s->g.spc * BD_SECTOR;
}

/* The host file of objs[i], open and unchanged since the scan. */
static int host_fd(struct bd_node *n, uint32_t i)
{
    struct vvfat_state *s = n->state;
    struct vvfat_obj *o = &s->objs[i];
    struct stat st;

    if (o->keep_fd >= 0)
        return o->keep_fd;     /* a commit moved it: the file as it was */
    if (s->fd < 0 || s->fd_obj != i) {
        if (s->fd >= 0)
            close(s->fd);
        s->fd = open(o->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        s->fd_obj = i;
        if (s->fd < 0) {
            int e = errno;
            log_err("%s: cannot open %s: %s", n->name, o->path, strerror(e));
            return -EIO;
        }
    }
    if (fstat(s->fd, &st) != 0)
        return -errno;
    if (st.st_ino != o->ino || st.st_dev != o->dev ||
        (uint64_t)st.st_size != o->size || st.st_mtim.tv_sec != o->mtime.tv_sec ||
        st.st_mtim.tv_nsec != o->mtime.tv_nsec) {
        if (!o->stale_logged)
            log_err("%s: %s changed on the host while mounted (unsupported); "
                    "its reads fail with EIO until the disk is opened again",
                    n->name, o->path);
        o->stale_logged = true;
        return -EIO;
    }
    return s->fd;
}

static int read_file(struct bd_node *n, uint32_t i, uint8_t *buf, uint64_t len,
                     uint64_t off)
{
    struct vvfat_state *s = n->state;
    const struct vvfat_obj *o = &s->objs[i];
    uint64_t have = off < o->size ? o->size - off : 0;
    if (have > len)
        have = len;
    memset(buf + have, 0, len - have);
    if (!have)
        return 0;
    int fd = host_fd(n, i);
    if (fd < 0)
        return fd;
    while (have) {
        ssize_t r = pread(fd, buf, have, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            log_err("%s: %s: %s", n->name, o->path,
                    r < 0 ? strerror(errno) : "shorter than when scanned");
            return -EIO;
        }
        buf += r;
        off += (uint64_t)r;
        have -= (uint64_t)r;
    }
    return 0;
}

/* Fill buf from volume sector v of the data area on; the bytes done. */
static int64_t read_data(struct bd_node *n, uint8_t *buf, uint64_t len,
                         uint32_t v)
{
    struct vvfat_state *s = n->state;
    uint32_t d = v - s->g.data_start, cb = s->g.spc * BD_SECTOR;
    uint32_t cl = 2 + d / s->g.spc;
    uint64_t in = (uint64_t)(d % s->g.spc) * BD_SECTOR;
    int64_t i = cl < s->g.clusters + 2 ? vvfat_obj_at(s, cl) : -1;

    if (i < 0) {
        uint64_t run = cb - in < len ? cb - in : len;
        memset(buf, 0, run);
        return (int64_t)run;
    }
    const struct vvfat_obj *o = &s->objs[i];
    uint64_t at = (uint64_t)(cl - o->first_cluster) * cb + in;
    uint64_t run = (uint64_t)o->clusters * cb - at;
    if (run > len)
        run = len;
    if (o->is_dir) {
        memcpy(buf, o->dirbuf + at, run);
        return (int64_t)run;
    }
    int r = read_file(n, (uint32_t)i, buf, run, at);
    return r < 0 ? r : (int64_t)run;
}

/* Fill buf from disk sector sec on; the bytes done (>= one sector). */
static int64_t read_at(struct bd_node *n, uint8_t *buf, uint64_t len,
                       uint64_t sec)
{
    struct vvfat_state *s = n->state;
    const struct vvfat_geom *g = &s->g;

    if (sec < g->part_start) {
        if (sec == 0)
            vvfat_mbr(s, buf);
        else
            memset(buf, 0, BD_SECTOR);
        return BD_SECTOR;
    }
    uint32_t v = (uint32_t)(sec - g->part_start);
    uint32_t fats = g->reserved + 2 * g->fat_sectors;
    if (v < g->reserved) {
        vvfat_boot_sector(s, v, buf);
    } else if (v < fats) {
        vvfat_fat_sector(s, (v - g->reserved) % g->fat_sectors, buf);
    } else if (v < g->data_start) {
        memcpy(buf, s->objs[0].dirbuf + (uint64_t)(v - fats) * BD_SECTOR,
               BD_SECTOR);
    } else {
        return read_data(n, buf, len, v);
    }
    return BD_SECTOR;
}

static int read_made(struct bd_node *n, uint8_t *p, uint64_t len, uint64_t off)
{
    while (len) {
        int64_t done = read_at(n, p, len, off / BD_SECTOR);
        if (done < 0)
            return (int)done;
        p += done;
        off += (uint64_t)done;
        len -= (uint64_t)done;
    }
    return 0;
}

/* The disk as the guest sees it: its writes over the made sectors. */
int vvfat_read_disk(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vvfat_state *s = n->state;
    uint8_t *p = buf;
    if (!s->rw)
        return read_made(n, p, len, off);
    while (len) {
        bool written;
        uint64_t run = vvfat_overlay_run(&s->ov, off / BD_SECTOR,
                                         len / BD_SECTOR, &written) * BD_SECTOR;
        int r = written ? vvfat_overlay_read(&s->ov, p, run, off)
                        : read_made(n, p, run, off);
        if (r < 0)
            return r;
        p += run;
        off += run;
        len -= run;
    }
    return 0;
}

static int vvfat_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    return vvfat_read_disk(n, buf, len, off);
}

static int vvfat_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                        uint64_t off, unsigned flags)
{
    struct vvfat_state *s = n->state;
    (void)flags;
    if (!s->rw)
        return -EROFS;
    s->dirty = true;
    return vvfat_overlay_write(&s->ov, buf, len, off);
}

static int vvfat_flush(struct bd_node *n)
{
    struct vvfat_state *s = n->state;
    if (!s->rw || !s->dirty)
        return 0;
    int r = vvfat_commit(n);
    if (r == 0)
        s->dirty = false;
    return r;
}

/* Free clusters and the slack after the last one read as zeroes (unless
 * rw wrote there); the rest is data. */
static int vvfat_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                              uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vvfat_state *s = n->state;
    const struct vvfat_geom *g = &s->g;
    uint64_t data = ((uint64_t)g->part_start + g->data_start) * BD_SECTOR;
    uint64_t cb = (uint64_t)g->spc * BD_SECTOR, end = off;

    (void)map;
    *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
    if (off < data || s->rw) {
        *pnum = s->rw || data - off > len ? len : data - off;
        return 0;
    }
    bool zero = false;
    while (end < off + len) {
        uint64_t cl = 2 + (end - data) / cb;
        int64_t i = cl < (uint64_t)g->clusters + 2 ? vvfat_obj_at(s, (uint32_t)cl) : -1;
        uint64_t next = i < 0 ? data + (cl - 1) * cb
                      : data + (uint64_t)(s->objs[i].first_cluster - 2 +
                                          s->objs[i].clusters) * cb;
        if (end == off)
            zero = i < 0;
        else if ((i < 0) != zero)
            break;
        end = next;
    }
    if (end > off + len)
        end = off + len;
    *pnum = end - off;
    if (zero)
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
    return 0;
}

static void vvfat_info(struct bd_node *n, struct bd_info *info)
{
    struct vvfat_state *s = n->state;
    const struct vvfat_geom *g = &s->g;
    uint32_t files = 0;
    for (uint32_t i = 0; i < s->nobjs; i++)
        files += !s->objs[i].is_dir;
    bd_info_add(info, "directory", "%s", s->root);
    bd_info_add(info, "FAT type", "FAT%u%s", g->fat_type,
                g->floppy ? " floppy" : ", one partition at sector 63");
    bd_info_add(info, "cluster size", "%u", g->spc * BD_SECTOR);
    bd_info_add(info, "clusters", "%u (%u used)", g->clusters, s->used_clusters);
    bd_info_add(info, "files", "%u in %u directories", files, s->nobjs - files);
    bd_info_add(info, "label", "%.11s", (const char *)s->label);
}

const struct bd_driver bd_drv_vvfat = {
    .name = "vvfat",
    .kind = BD_FORMAT,
    .options = vvfat_options,
    .state_size = sizeof(struct vvfat_state),
    .no_file = true,
    .open = vvfat_open,
    .close = vvfat_close,
    .limits = vvfat_limits,
    .size = vvfat_size,
    .pread = vvfat_pread,
    .pwrite = vvfat_pwrite,
    .flush = vvfat_flush,
    .block_status = vvfat_block_status,
    .info = vvfat_info,
    .uri = &vvfat_uri,
};
