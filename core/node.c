/*
 * Opening one image: the protocol node for a file name or options (which
 * protocol serves a plain path), the format on top (given or probed), node
 * allocation and teardown. Backing chains are chain.c's; where names stored
 * in images lead, and whether they may, is resolve.c's.
 */
#include "core/bd-internal.h"
#include "core/graph.h"
#include "core/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct bd_node *bd_node_alloc(const struct bd_driver *drv, const char *name,
                              const struct bd_flags *flags, struct bd_err *err)
{
    struct bd_node *n = calloc(1, sizeof(*n));
    if (!n)
        goto oom;
    n->drv = drv;
    n->name = strdup(name ? name : drv->name);
    if (!n->name)
        goto oom_node;
    if (drv->state_size) {
        n->state = calloc(1, drv->state_size);
        if (!n->state)
            goto oom_name;
    }
    n->flags = *flags;
    n->size_cache = -1;
    n->lim.request_alignment = 1;
    pthread_mutex_init(&n->lock, NULL);
    pthread_rwlock_init(&n->rmw_lock, NULL);
    pthread_mutex_init(&n->grow_lock, NULL);
    return n;

oom_name:
    free(n->name);
oom_node:
    free(n);
oom:
    bd_err_set(err, ENOMEM, "out of memory");
    return NULL;
}

/* Free a node whose driver open failed or never ran (no close call). */
static void node_free(struct bd_node *n)
{
    pthread_mutex_destroy(&n->lock);
    pthread_rwlock_destroy(&n->rmw_lock);
    pthread_mutex_destroy(&n->grow_lock);
    free(n->state);
    free(n->name);
    free(n->filename);
    free(n->backing_name);
    free(n->backing_fmt);
    free(n);
}

void bd_node_close(struct bd_node *n)
{
    if (!n)
        return;
    if (n->drv->close)
        n->drv->close(n);
    bd_node_close(n->backing);
    bd_node_close(n->file);
    node_free(n);
}

struct bd_node *bd_node_protocol(struct bd_node *n)
{
    while (n && n->file)
        n = n->file;
    return n;
}

void bd_node_refresh_limits(struct bd_node *n)
{
    struct bd_limits lim = { .request_alignment = 1 };
    /* a filter passes requests through whole: its file's limits are its own */
    if (n->file && n->drv->kind == BD_FILTER) {
        lim = n->file->lim;
    } else if (n->file) {
        lim.request_alignment = n->file->lim.request_alignment;
        lim.mem_alignment = n->file->lim.mem_alignment;
        lim.opt_transfer = n->file->lim.opt_transfer;
    }
    if (n->drv->limits) {
        struct bd_limits dl = lim;
        n->drv->limits(n, &dl);
        /* A format node inherits its child's alignment unless stricter. */
        if (dl.request_alignment < lim.request_alignment)
            dl.request_alignment = lim.request_alignment;
        if (dl.mem_alignment < lim.mem_alignment)
            dl.mem_alignment = lim.mem_alignment;
        lim = dl;
    }
    if (!lim.request_alignment || (lim.request_alignment & (lim.request_alignment - 1)))
        lim.request_alignment = BD_SECTOR;
    if (!lim.max_transfer || lim.max_transfer > (1u << 30))
        lim.max_transfer = 1u << 30;
    lim.max_transfer -= lim.max_transfer % lim.request_alignment;
    n->lim = lim;
}

/* Which protocol serves a plain file name: regular file, block device or
 * CD-ROM. */
static int pick_protocol(const char *filename, const struct bd_driver **drv,
                         struct bd_err *err)
{
    struct stat st;
    if (stat(filename, &st) != 0) {
        if (errno == ENOENT)
            return bd_err_set(err, ENOENT, "%s: no such file; check the path",
                              filename);
        return bd_err_set(err, errno, "%s: %s", filename, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return bd_err_set(err, EISDIR, "%s: is a directory; give a disk image "
                          "file, a block device or a URI", filename);
    if (S_ISBLK(st.st_mode)) {
        const char *base = strrchr(filename, '/');
        base = base ? base + 1 : filename;
        bool cd = strncmp(base, "sr", 2) == 0 || strncmp(base, "cdrom", 5) == 0 ||
                  strncmp(base, "dvd", 3) == 0;
        *drv = bd_driver_find(cd ? "host_cdrom" : "host_device");
        return 0;
    }
    if (S_ISCHR(st.st_mode))
        return bd_err_set(err, ENOTSUP, "%s: is a character device; imgfuse "
                          "takes block devices, image files and URIs", filename);
    *drv = bd_driver_find("file");
    return 0;
}

/*
 * A directory given as an image: the file in it that a bundle format
 * (bd_driver.bundle_entry) names, as a new string in *out; NULL when the
 * directory holds none, or when path is no directory. 0 or -ENOMEM.
 */
static int bundle_file(const char *path, char **out)
{
    size_t count;
    const struct bd_driver *const *all = bd_driver_all(&count);
    struct stat st;

    *out = NULL;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    for (size_t i = 0; i < count; i++) {
        char *f;
        if (!all[i]->bundle_entry)
            continue;
        if (asprintf(&f, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
                     all[i]->bundle_entry) < 0)
            return -ENOMEM;
        if (stat(f, &st) == 0 && S_ISREG(st.st_mode)) {
            *out = f;
            return 0;
        }
        free(f);
    }
    return 0;
}

static int check_unknown_driver(const char *name, enum bd_kind want,
                                struct bd_err *err)
{
    size_t count;
    const struct bd_driver *const *all = bd_driver_all(&count);
    const char *names[64];
    size_t k = 0;
    for (size_t i = 0; i < count && k < 63; i++) {
        if (all[i]->kind == want)
            names[k++] = all[i]->name;
    }
    names[k] = NULL;
    const char *hint = bd_suggest(name, names);
    char list[512] = "";
    for (size_t i = 0; i < k; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", names[i]);
    }
    if (hint)
        return bd_err_set(err, EINVAL, "unknown %s '%s' (did you mean '%s'?)",
                          want == BD_FORMAT ? "format" : "driver", name, hint);
    return bd_err_set(err, EINVAL, "unknown %s '%s'; known: %s",
                      want == BD_FORMAT ? "format" : "driver", name, list);
}

int bd_node_open_protocol(const char *filename, const struct bd_driver *drv,
                          struct bd_opts *o, const struct bd_flags *flags,
                          unsigned depth, struct bd_node **out, struct bd_err *err)
{
    char *bundled = NULL;
    int r;
    if (!drv) {
        if (!filename)
            return bd_err_set(err, EINVAL, "no file name given; use "
                              "filename= or file.filename=");
        if (bundle_file(filename, &bundled) < 0)
            return bd_err_set(err, ENOMEM, "out of memory");
        if (bundled)
            filename = bundled;     /* the node carries it, freed below */
        r = pick_protocol(filename, &drv, err);
        if (r < 0) {
            free(bundled);
            return r;
        }
    }
    if (filename && !bd_opts_has(o, "filename")) {
        r = bd_opts_set(o, "filename", filename);
        if (r < 0) {
            free(bundled);
            return bd_err_set(err, ENOMEM, "out of memory");
        }
    }
    /* core consumes filename: the node carries it as n->filename */
    const char *given = bd_opts_get(o, "filename");
    if (!filename)
        filename = given;
    struct bd_node *n = bd_node_alloc(drv, filename ? filename : drv->name,
                                      flags, err);
    if (!n) {
        free(bundled);
        return -ENOMEM;
    }
    n->depth = depth;
    if (filename && !(n->filename = strdup(filename))) {
        free(bundled);
        node_free(n);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    free(bundled);
    filename = n->filename;
    bd_perms_for(flags, depth > 0, &n->perm, &n->shared);
    bd_opts_set_owner(o, drv);
    (void)bd_opts_get(o, "driver");
    r = drv->open(n, o, err);
    if (r < 0) {
        if (err->errnum == 0)
            bd_err_set(err, -r, "%s: %s", n->name, strerror(-r));
        bd_node_close(n);
        return r;
    }
    /* A protocol opened from options may name itself (a URI) in open. */
    if (!filename && n->filename) {
        char *name = strdup(n->filename);
        if (name) {
            free(n->name);
            n->name = name;
        }
    }
    bd_node_refresh_limits(n);
    *out = n;
    return 0;
}

static int read_head(struct bd_node *file, uint8_t *head, size_t *len,
                     uint8_t *tail, size_t *tail_len)
{
    int64_t size = bd_size(file);
    if (size < 0)
        return (int)size;
    size_t want = size < BD_PROBE_BYTES ? (size_t)size : BD_PROBE_BYTES;
    memset(head, 0, BD_PROBE_BYTES);
    *len = want;
    *tail_len = 0;
    int r = want ? bd_pread(file, head, want, 0) : 0;
    if (r < 0 || size <= BD_PROBE_BYTES)
        return r;
    *tail_len = BD_PROBE_TAIL_BYTES;
    return bd_pread(file, tail, BD_PROBE_TAIL_BYTES,
                    (uint64_t)size - BD_PROBE_TAIL_BYTES);
}

static int open_format(const struct bd_driver *drv, bool probed,
                       struct bd_node *file, struct bd_opts *view,
                       const struct bd_flags *flags, unsigned depth,
                       struct bd_node *parent, struct bd_node **out,
                       struct bd_err *err)
{
    int r;
    if (drv->read_only && !flags->read_only) {
        r = bd_err_set(err, EROFS, "%s: imgfuse reads %s images but cannot "
                       "write them; mount with -r (read-only)", file->name,
                       drv->name);
        bd_node_close(file);
        return r;
    }
    struct bd_node *n = bd_node_alloc(drv, file->name, flags, err);
    if (!n) {
        bd_node_close(file);
        return -ENOMEM;
    }
    /* A format allocates by writing past its file's end: the protocol
     * child grows, while the guest-visible size is the format's to keep.
     * A filter's size is its file's: that grows only as the filter does. */
    if (!flags->read_only && drv->kind == BD_FORMAT)
        file->flags.growable = true;
    n->file = file;
    file->parent = n;
    n->parent = parent;
    n->depth = depth;
    n->format_probed = probed;
    bd_opts_set_owner(view, drv);
    (void)bd_opts_get(view, "driver");
    r = drv->open(n, view, err);
    if (r < 0) {
        if (err->errnum == 0)
            bd_err_set(err, -r, "%s: cannot open as %s: %s", n->name, drv->name,
                       strerror(-r));
        /* close copes with a half-finished open (STYLE 8); it also takes
         * the backing chain and the protocol child down. */
        bd_node_close(n);
        return r;
    }
    bd_node_refresh_limits(n);
    *out = n;
    return 0;
}

/* A format with no protocol child (bd_driver.no_file): its options name
 * what it reads (vvfat: dir= or filename=). A read-only one is opened
 * read-only as such a format has nothing to write to. */
static int open_childless(const struct bd_driver *drv, struct bd_opts *view,
                          struct bd_flags *flags, unsigned depth,
                          struct bd_node *parent, struct bd_node **out,
                          struct bd_err *err)
{
    const char *what = bd_opts_get(view, "filename");
    if (drv->read_only)
        flags->read_only = true;
    struct bd_node *n = bd_node_alloc(drv, what ? what : drv->name, flags, err);
    if (!n)
        return -ENOMEM;
    if (what && !(n->filename = strdup(what))) {
        node_free(n);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    n->parent = parent;
    n->depth = depth;
    bd_opts_set_owner(view, drv);
    int r = drv->open(n, view, err);
    if (r < 0) {
        if (err->errnum == 0)
            bd_err_set(err, -r, "%s: cannot open as %s: %s", n->name, drv->name,
                       strerror(-r));
        bd_node_close(n);
        return r;
    }
    /* like a protocol opened from options, it may name itself in open */
    if (!what && n->filename) {
        char *name = strdup(n->filename);
        if (name) {
            free(n->name);
            n->name = name;
        }
    }
    bd_node_refresh_limits(n);
    *out = n;
    return 0;
}

/*
 * A filter node over the node its "file." options describe: driver= there
 * picks a protocol, a format or another filter. Below a format, a file
 * given by name alone is a protocol node; at the top it is an image, its
 * format probed as usual (QEMU's way for a filter's child). filename: a
 * name given above the filter (the format's filename=, a plain SOURCE),
 * handed down to the filter's file.
 */
static int open_filter(const struct bd_driver *drv, struct bd_opts *view,
                       const char *filename, const struct bd_flags *flags,
                       unsigned depth, bool below_format, struct bd_node **out,
                       struct bd_err *err)
{
    struct bd_opts *fview = bd_opts_sub(view, "file");
    struct bd_node *child, *n;
    int r;

    if (!fview)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (!filename)
        filename = bd_opts_get(view, "filename");
    if (filename && !bd_opts_has(fview, "filename") &&
        bd_opts_set(fview, "filename", filename) < 0) {
        bd_opts_free_view(fview);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    const char *fname = bd_opts_get(fview, "filename");
    if (bd_opts_has(fview, "driver") || !below_format) {
        r = bd_node_open_opts(fview, NULL, flags, depth, NULL, &child, err);
    } else if (!fname) {
        r = bd_err_set(err, EINVAL, "the %s filter has no file below it: set "
                       "%sfile.filename= (or give the image as SOURCE)",
                       drv->name, view->prefix);
    } else {
        r = bd_node_open_protocol(fname, NULL, fview, flags, depth, &child, err);
    }
    bd_opts_free_view(fview);
    if (r < 0)
        return r;
    n = bd_node_alloc(drv, child->name, flags, err);
    if (!n) {
        bd_node_close(child);
        return -ENOMEM;
    }
    n->file = child;
    child->parent = n;
    n->depth = depth;
    n->perm = child->perm;
    n->shared = child->shared;
    bd_opts_set_owner(view, drv);
    (void)bd_opts_get(view, "driver");
    r = drv->open(n, view, err);
    if (r < 0) {
        if (err->errnum == 0)
            bd_err_set(err, -r, "%s: cannot open the %s filter: %s", n->name,
                       drv->name, strerror(-r));
        bd_node_close(n);
        return r;
    }
    bd_node_refresh_limits(n);
    *out = n;
    return 0;
}

/* The node below a format: a protocol, or a filter over one. */
static int open_format_file(struct bd_opts *view, const char *filename,
                            const struct bd_driver *proto,
                            const struct bd_flags *flags, unsigned depth,
                            struct bd_node **file, struct bd_err *err)
{
    struct bd_opts *fview = bd_opts_sub(view, "file");
    int r;

    if (!fview)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (proto && proto->kind == BD_FILTER)
        r = open_filter(proto, fview, filename, flags, depth, true, file, err);
    else
        r = bd_node_open_protocol(filename, proto, fview, flags, depth, file,
                                  err);
    bd_opts_free_view(fview);
    return r;
}

int bd_node_open_opts(struct bd_opts *view, const char *fmt,
                      const struct bd_flags *flags_in, unsigned depth,
                      struct bd_node *parent, struct bd_node **out,
                      struct bd_err *err)
{
    struct bd_flags flags = *flags_in;
    const struct bd_driver *drv = NULL, *proto = NULL;
    const char *dname = bd_opts_get(view, "driver");
    bool ro = false;
    int r;

    if (bd_opts_get_bool(view, "read-only", false, &ro, err) == -EINVAL)
        return -EINVAL;
    flags.read_only |= ro;
    if (fmt && dname && strcmp(fmt, dname) != 0)
        return bd_err_set(err, EINVAL, "the format is given twice, as '%s' "
                          "and as driver=%s; give it once", fmt, dname);
    if (!fmt)
        fmt = dname;
    if (fmt) {
        drv = bd_driver_find(fmt);
        if (!drv)
            return check_unknown_driver(fmt, BD_FORMAT, err);
        if (drv->kind != BD_FORMAT) {
            struct bd_node *pn;
            if (drv->kind == BD_FILTER)
                r = open_filter(drv, view, NULL, &flags, depth, false, &pn, err);
            else
                r = bd_node_open_protocol(NULL, drv, view, &flags, depth, &pn,
                                          err);
            if (r == 0)
                pn->parent = parent;
            *out = r == 0 ? pn : NULL;
            return r;
        }
        if (drv->no_file)
            return open_childless(drv, view, &flags, depth, parent, out, err);
    }

    struct bd_opts *fview = bd_opts_sub(view, "file");
    if (!fview)
        return bd_err_set(err, ENOMEM, "out of memory");
    const char *filename = bd_opts_get(view, "filename");
    const char *pname = bd_opts_get(fview, "driver");
    if (pname) {
        proto = bd_driver_find(pname);
        if (!proto || proto->kind == BD_FORMAT) {
            r = check_unknown_driver(pname, BD_PROTOCOL, err);
            bd_opts_free_view(fview);
            return r;
        }
    }
    if (!filename)
        filename = bd_opts_get(fview, "filename");
    if (!filename && !proto) {
        bd_opts_free_view(fview);
        return bd_err_set(err, EINVAL, "no image given: set filename= or "
                          "file.filename=");
    }
    bd_opts_free_view(fview);
    struct bd_node *file;
    r = open_format_file(view, filename, proto, &flags, depth, &file, err);
    if (r < 0)
        return r;

    bool probed = false;
    if (!drv) {
        uint8_t head[BD_PROBE_BYTES], tail[BD_PROBE_TAIL_BYTES];
        size_t len = 0, tail_len = 0;
        r = read_head(file, head, &len, tail, &tail_len);
        if (r < 0) {
            r = bd_err_set(err, -r, "%s: cannot read the image header: %s",
                           file->name, strerror(-r));
            bd_node_close(file);
            return r;
        }
        drv = bd_probe(head, len, tail, tail_len, NULL);
        probed = true;
        const char *magic = bd_probe_known_magic(head, len);
        if (drv && strcmp(drv->name, "raw") == 0 && magic) {
            if (!flags.read_only) {
                r = bd_err_set(err, EPERM, "%s: the first sector looks like a "
                               "%s image, which this imgfuse cannot open; "
                               "refusing to write it as raw (that could "
                               "corrupt it): pass -F raw to write it as a raw "
                               "image anyway, or -r to read it",
                               file->name, magic);
                bd_node_close(file);
                return r;
            }
            log_warn("%s: looks like a %s image but is read as raw", file->name,
                     magic);
        }
        if (!drv) {
            r = bd_err_set(err, ENOTSUP, "%s: unknown image format; give it "
                           "with -F", file->name);
            bd_node_close(file);
            return r;
        }
        if (drv->read_only && !flags.read_only) {
            /* A probed read-only format: read it, rather than refuse for
             * want of -r; reopen so that we hold no write lock. */
            log_info("%s: %s images can only be read; opening it read-only",
                     file->name, drv->name);
            bd_node_close(file);
            flags.read_only = true;
            r = open_format_file(view, filename, proto, &flags, depth, &file,
                                 err);
            if (r < 0)
                return r;
        }
    }
    return open_format(drv, probed, file, view, &flags, depth, parent, out, err);
}

static void normalize_flags(struct bd_flags *f)
{
    if (f->force_share)
        f->read_only = true;
    if (f->untrusted && f->backing == BD_BACKING_FOLLOW)
        f->backing = BD_BACKING_CONFINE;
    if (!f->max_chain)
        f->max_chain = BD_MAX_CHAIN_DEFAULT;
}

/*
 * Push the top node's file down one level ("file." keys become
 * "file.file.") and describe the filter in its place, for
 * bd_open_image_filtered. The top node must be a format, or there is no
 * file to put the filter on.
 */
static int insert_filter(struct bd_opts *o, const char *fmt, const char *filter,
                         struct bd_err *err)
{
    const char *top = fmt ? fmt : bd_opts_get(o, "driver");
    const struct bd_driver *drv = top ? bd_driver_find(top) : NULL;
    struct bd_opts *fview;
    int r;

    if (drv && drv->kind != BD_FORMAT)
        return bd_err_set(err, EINVAL, "a filter goes between a format and its "
                          "file, and this source opens the %s %s with no format "
                          "above it; give one (-F raw)", drv->name,
                          drv->kind == BD_FILTER ? "filter" : "protocol");
    r = bd_opts_move_prefix(o, "file.", "file.file.");
    if (r < 0)
        return bd_err_set(err, ENOMEM, "out of memory");
    fview = bd_opts_sub(o, "file");
    if (!fview)
        return bd_err_set(err, ENOMEM, "out of memory");
    r = bd_opts_parse_dotted(fview, filter, NULL, err);
    bd_opts_free_view(fview);
    return r;
}

int bd_open_image_filtered(const char *source, const char *fmt,
                           const char *extra, const char *filter,
                           const struct bd_flags *flags_in, struct bd_node **out,
                           struct bd_err *err)
{
    struct bd_flags flags = *flags_in;
    struct bd_opts *o = bd_opts_new();
    int r;

    normalize_flags(&flags);
    if (!o)
        return bd_err_set(err, ENOMEM, "out of memory");
    r = bd_source_to_opts(source, o, err);
    if (r == 0 && extra && *extra)
        r = bd_opts_parse_dotted(o, extra, NULL, err);
    if (r == 0 && filter)
        r = insert_filter(o, fmt, filter, err);
    if (r == 0)
        r = bd_node_open_opts(o, fmt, &flags, 0, NULL, out, err);
    if (r == 0) {
        r = bd_opts_check_unused(o, err);
        if (r < 0) {
            bd_node_close(*out);
            *out = NULL;
        }
    }
    bd_opts_free(o);
    return r;
}

int bd_open_image(const char *source, const char *fmt, const char *extra,
                  const struct bd_flags *flags, struct bd_node **out,
                  struct bd_err *err)
{
    return bd_open_image_filtered(source, fmt, extra, NULL, flags, out, err);
}
