/*
 * Building the node graph: protocol node from a file name or options, the
 * format on top (given or probed), backing chains with their policy, depth
 * limit and loop check, and related files (extents, data files). The graph
 * is built once, before mounting, and torn down by bd_node_close().
 */
#include "bd-internal.h"
#include "graph.h"
#include "registry.h"
#include "locks/ofd.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_node(struct bd_opts *view, const char *fmt,
                     const struct bd_flags *flags, unsigned depth,
                     struct bd_node *parent, struct bd_node **out,
                     struct bd_err *err);

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
    free(n->state);
    free(n->name);
    free(n->filename);
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

char *bd_node_dirname(struct bd_node *n)
{
    struct bd_node *p = bd_node_protocol(n);
    const char *f = p && p->filename ? p->filename : ".";
    char *copy = strdup(f);
    if (!copy)
        return NULL;
    char *d = strdup(dirname(copy));
    free(copy);
    return d;
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
    int r;
    if (!drv) {
        if (!filename)
            return bd_err_set(err, EINVAL, "no file name given; use "
                              "filename= or file.filename=");
        r = pick_protocol(filename, &drv, err);
        if (r < 0)
            return r;
    }
    if (filename && !bd_opts_has(o, "filename")) {
        r = bd_opts_set(o, "filename", filename);
        if (r < 0)
            return bd_err_set(err, ENOMEM, "out of memory");
    }
    /* core consumes filename: the node carries it as n->filename */
    const char *given = bd_opts_get(o, "filename");
    if (!filename)
        filename = given;
    struct bd_node *n = bd_node_alloc(drv, filename ? filename : drv->name,
                                      flags, err);
    if (!n)
        return -ENOMEM;
    n->depth = depth;
    if (filename && !(n->filename = strdup(filename))) {
        node_free(n);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    ofd_perms_for(flags, depth > 0, &n->perm, &n->shared);
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

static int open_node(struct bd_opts *view, const char *fmt,
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
        if (drv->kind == BD_PROTOCOL) {
            struct bd_node *pn;
            r = bd_node_open_protocol(NULL, drv, view, &flags, depth, &pn, err);
            if (r == 0)
                pn->parent = parent;
            *out = r == 0 ? pn : NULL;
            return r;
        }
    }

    struct bd_opts *fview = bd_opts_sub(view, "file");
    if (!fview)
        return bd_err_set(err, ENOMEM, "out of memory");
    const char *filename = bd_opts_get(view, "filename");
    const char *pname = bd_opts_get(fview, "driver");
    if (pname) {
        proto = bd_driver_find(pname);
        if (!proto || proto->kind != BD_PROTOCOL) {
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
    struct bd_node *file;
    r = bd_node_open_protocol(filename, proto, fview, &flags, depth, &file, err);
    bd_opts_free_view(fview);
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
            fview = bd_opts_sub(view, "file");
            if (!fview)
                return bd_err_set(err, ENOMEM, "out of memory");
            r = bd_node_open_protocol(filename, proto, fview, &flags, depth,
                                      &file, err);
            bd_opts_free_view(fview);
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

int bd_open_image(const char *source, const char *fmt, const char *extra,
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
    if (r == 0)
        r = open_node(o, fmt, &flags, 0, NULL, out, err);
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

/* ---- backing chains and related files ---- */

static struct bd_node *chain_top(struct bd_node *n)
{
    while (n->parent)
        n = n->parent;
    return n;
}

/* name as it stands when absolute, else below dir; NULL without memory */
static char *join_name(const char *dir, const char *name)
{
    char *joined;
    if (name[0] == '/')
        return strdup(name);
    return asprintf(&joined, "%s/%s", dir, name) < 0 ? NULL : joined;
}

static bool path_within(const char *path, const char *dir)
{
    size_t l = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return true;
    return strncmp(path, dir, l) == 0 && (path[l] == '/' || path[l] == '\0');
}

/* A protocol whose objects are paths on a server (ssh, gluster). */
static bool is_remote(const struct bd_node *p)
{
    return p && p->drv->remote;
}

/* A protocol with no paths at all (nbd, iscsi): a name stored in an image
 * on it has no directory to be looked up in. */
static bool is_pathless(const struct bd_node *p)
{
    return p && !is_remote(p) && p->drv->kind == BD_PROTOCOL && p->drv->uri;
}

static int pathless_error(struct bd_node *n, struct bd_node *p,
                          const char *name, bool backing, struct bd_err *err)
{
    if (backing)
        return bd_err_set(err, EINVAL, "%s: backing file '%s' is a file name, "
                          "but the image is on %s, which has no directory to "
                          "look for it in; use --backing=none to read the "
                          "image without it, or store an absolute local path "
                          "(--backing=follow) or a URI in the image "
                          "(qemu-img rebase -u -b NAME)", n->name, name,
                          p->drv->name);
    return bd_err_set(err, EINVAL, "%s: the image names the file '%s', but it "
                      "is on %s, which has no directory to look for it in; "
                      "store an absolute local path in the image and allow "
                      "it with --related=follow", n->name, name, p->drv->name);
}

/* Collapse "//", "." and ".." in the absolute path p, in place, so that a
 * name cannot climb out lexically; ".." at the root stays at the root. */
static void normalize_abs(char *p)
{
    size_t o = 0, i = 0, len = strlen(p);

    while (i < len) {
        while (i < len && p[i] == '/')
            i++;
        size_t s = i;
        while (i < len && p[i] != '/')
            i++;
        size_t cl = i - s;
        if (cl == 0 || (cl == 1 && p[s] == '.'))
            continue;
        if (cl == 2 && p[s] == '.' && p[s + 1] == '.') {
            while (o > 0 && p[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        /* every component had a '/' before it, so o < s */
        p[o++] = '/';
        memmove(p + o, p + s, cl);
        o += cl;
    }
    if (o == 0)
        p[o++] = '/';
    p[o] = '\0';
}

/* Directory of the file behind a remote protocol node, on its server. */
static char *remote_dir(struct bd_node *p)
{
    const char *server, *path;
    p->drv->remote->where(p, &server, &path);
    const char *slash = strrchr(path, '/');
    if (path[0] != '/')
        return strdup(".");     /* resolve_remote refuses it */
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* resolve() for a node on a server: lexically against the directory of
 * the file there (an absolute name is a path on the same server), then the
 * server's own canonical form, which confinement compares with root. */
static int resolve_remote(struct bd_node *n, struct bd_node *p,
                          const char *name, const char *what, bool confine,
                          const char *root, char **out, struct bd_err *err)
{
    char *dir = remote_dir(p), *joined = NULL, *real = NULL;
    struct bd_err e2 = { 0 };
    int r;

    if (!dir)
        return bd_err_set(err, ENOMEM, "out of memory");
    joined = join_name(dir, name);
    free(dir);
    if (!joined)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (joined[0] != '/') {
        free(joined);
        return bd_err_set(err, EINVAL, "%s: the server gives no absolute path "
                          "for the image, so the %s '%s' cannot be looked up "
                          "next to it; give the image by its absolute path",
                          n->name, what, name);
    }
    normalize_abs(joined);
    r = p->drv->remote->realpath(p, joined, &real, &e2);
    if (r == -ENOENT) {
        r = bd_err_set(err, ENOENT, "%s: %s '%s' is not on the server "
                       "(looked for %s there; names in an image on a server "
                       "are never looked up on this host)%s", n->name, what,
                       name, joined, !strcmp(what, "backing file")
                           ? "; use --backing=none to read the image without it"
                           : "");
    } else if (r < 0) {
        r = bd_err_set(err, e2.errnum ? e2.errnum : -r, "%s: %s '%s': %s",
                       n->name, what, name, e2.errnum ? e2.msg : strerror(-r));
    } else if (confine && !path_within(real, root)) {
        r = bd_err_set(err, EACCES, "%s: %s '%s' lies outside %s on the "
                       "server, which the confinement rules forbid; move it "
                       "next to the image or allow it (--backing=follow for "
                       "backing files, --related=follow for extents and data "
                       "files)", n->name, what, name, root);
    } else {
        *out = real;
        real = NULL;
    }
    free(joined);
    free(real);
    return r;
}

/* Resolve `name` against the directory of the file behind n; when confine
 * is set, the real path must stay inside root_dir. */
static int resolve(struct bd_node *n, const char *name, const char *what,
                   bool confine, const char *root_dir, char **out,
                   struct bd_err *err)
{
    char *dir = bd_node_dirname(n), *joined = NULL, real[PATH_MAX], rroot[PATH_MAX];
    int r = 0;

    if (!dir)
        return bd_err_set(err, ENOMEM, "out of memory");
    joined = join_name(dir, name);
    if (!joined) {
        r = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (!realpath(joined, real)) {
        r = bd_err_set(err, errno, "%s: %s '%s' (looked for at %s): %s%s",
                       n->name, what, name, joined, strerror(errno),
                       errno == ENOENT && !strcmp(what, "backing file")
                           ? "; use --backing=none to read the image without it"
                           : "");
        goto out;
    }
    if (confine) {
        if (!realpath(root_dir, rroot)) {
            r = bd_err_set(err, errno, "%s: %s", root_dir, strerror(errno));
            goto out;
        }
        if (!path_within(real, rroot)) {
            r = bd_err_set(err, EACCES, "%s: %s '%s' lies outside %s, which the "
                           "confinement rules forbid; move it next to the image "
                           "or allow it (--backing=follow for backing files, "
                           "--related=follow for extents and data files)",
                           n->name, what, name, rroot);
            goto out;
        }
    }
    *out = strdup(real);
    if (!*out)
        r = bd_err_set(err, ENOMEM, "out of memory");
out:
    free(joined);
    free(dir);
    return r;
}

int bd_resolve_related(struct bd_node *n, const char *name, char **out,
                       struct bd_err *err)
{
    bool confine = !n->flags.related_follow || n->flags.untrusted;
    struct bd_node *p = bd_node_protocol(n);
    char *dir;
    int r;

    if (!*name)
        return bd_err_set(err, EINVAL, "%s: the file name is empty", n->name);
    if (is_pathless(p) && (confine || name[0] != '/'))
        return pathless_error(n, p, name, false, err);
    dir = is_remote(p) ? remote_dir(p) : bd_node_dirname(n);
    if (!dir)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (is_remote(p))
        r = resolve_remote(n, p, name, "file", confine, dir, out, err);
    else
        r = resolve(n, name, "file", confine, dir, out, err);
    free(dir);
    return r;
}

/* Options (under o) that open `path` on the server of p with p's driver. */
static int sibling_opts(struct bd_node *p, const char *path, struct bd_opts *o,
                        struct bd_err *err)
{
    int r = p->drv->remote->sibling(p, path, o, err);
    if (r == 0 && bd_opts_set(o, "driver", p->drv->name) < 0)
        r = bd_err_set(err, ENOMEM, "out of memory");
    if (r < 0 && err->errnum == 0)
        r = bd_err_set(err, -r, "%s: %s", p->name, strerror(-r));
    return r;
}

int bd_open_related(struct bd_node *n, const char *path, bool writable,
                    struct bd_node **out, struct bd_err *err)
{
    struct bd_node *p = bd_node_protocol(n);
    struct bd_flags f = n->flags;
    struct bd_opts *o = bd_opts_new();
    int r = 0;

    if (!o)
        return bd_err_set(err, ENOMEM, "out of memory");
    f.read_only = f.read_only || !writable;
    f.growable = !f.read_only;
    /* on a server, path is what bd_resolve_related found there */
    if (is_remote(p))
        r = sibling_opts(p, path, o, err);
    if (r == 0)
        r = bd_node_open_protocol(is_remote(p) ? NULL : path,
                                  is_remote(p) ? p->drv : NULL, o, &f,
                                  n->depth, out, err);
    if (r == 0)
        (*out)->parent = n;
    bd_opts_free(o);
    return r;
}

/* ---- files made beside a new image (extents, data files) ---- */

/* The canonical form of the absolute path `path` on the storage of p: the
 * server's for a remote node, else this host's. -ENOENT (err untouched)
 * when nothing is there. */
static int canon_path(struct bd_node *p, const char *path, char **out,
                      struct bd_err *err)
{
    char real[PATH_MAX];

    if (is_remote(p)) {
        struct bd_err e2 = { 0 };
        int r = p->drv->remote->realpath(p, path, out, &e2);
        if (r < 0 && r != -ENOENT)
            r = bd_err_set(err, e2.errnum ? e2.errnum : -r, "%s",
                           e2.errnum ? e2.msg : strerror(-r));
        return r;
    }
    if (!realpath(path, real)) {
        if (errno == ENOENT)
            return -ENOENT;
        return bd_err_set(err, errno, "%s: %s", path, strerror(errno));
    }
    *out = strdup(real);
    return *out ? 0 : bd_err_set(err, ENOMEM, "out of memory");
}

/* Make the empty file `path` with the protocol that serves p's files. */
static int make_file(struct bd_node *p, const char *path, struct bd_err *err)
{
    bool remote = is_remote(p);
    const struct bd_driver *d = remote ? p->drv : bd_driver_find("file");
    struct bd_opts *o;
    int r = 0;

    if (!d || !d->files)
        return bd_err_set(err, ENOTSUP, "%s: imgfuse cannot create files on "
                          "%s", path, d ? d->name : "this storage");
    if (!(o = bd_opts_new()))
        return bd_err_set(err, ENOMEM, "out of memory");
    if (remote)
        r = sibling_opts(p, path, o, err);
    if (r == 0)
        r = d->files->create_file(remote ? bd_opts_get(o, "filename") : path, o, err);
    bd_opts_free(o);
    return r;
}

/* The absolute path (canonical directory, then the last component) where
 * `name` is made beside n; confined to n's directory unless allowed. */
static int create_path(struct bd_node *n, struct bd_node *p, const char *name,
                       bool confine, char **root_out, char **out,
                       struct bd_err *err)
{
    char *dir = is_remote(p) ? remote_dir(p) : bd_node_dirname(n);
    char *joined = NULL, *root = NULL, *rdir = NULL, *base;
    int r;

    if (!dir || !(joined = join_name(dir, name))) {
        r = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (joined[0] != '/' && is_remote(p)) {
        r = bd_err_set(err, EINVAL, "%s: the server gives no absolute path "
                       "for the image, so the file '%s' cannot be made next "
                       "to it; give the image by its absolute path", n->name,
                       name);
        goto out;
    }
    if (joined[0] == '/')
        normalize_abs(joined);
    base = strrchr(joined, '/');
    if (!base || !base[1] || !strcmp(base + 1, ".") || !strcmp(base + 1, "..")) {
        r = bd_err_set(err, EINVAL, "%s: '%s' names a directory, not a file",
                       n->name, name);
        goto out;
    }
    *base++ = '\0';
    r = canon_path(p, *joined ? joined : "/", &rdir, err);
    if (r == -ENOENT)
        r = bd_err_set(err, ENOENT, "%s: there is no directory %s%s to "
                       "make it in", n->name, *joined ? joined : "/",
                       is_remote(p) ? " on the server" : "");
    if (r < 0)
        goto out;
    r = canon_path(p, dir, &root, err);
    if (r == -ENOENT)
        r = bd_err_set(err, ENOENT, "%s: its directory %s is gone", n->name, dir);
    if (r < 0)
        goto out;
    if (confine && !path_within(rdir, root)) {
        r = bd_err_set(err, EACCES, "%s: the file '%s' would lie outside %s%s, "
                       "which the confinement rules forbid; name it relative "
                       "to the image, below its directory", n->name, name,
                       root, is_remote(p) ? " on the server" : "");
        goto out;
    }
    if (asprintf(out, "%s/%s", strcmp(rdir, "/") ? rdir : "", base) < 0) {
        *out = NULL;
        r = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    *root_out = root;
    root = NULL;
out:
    free(rdir);
    free(root);
    free(joined);
    free(dir);
    return r;
}

int bd_create_related(struct bd_node *n, const char *name, bool excl,
                      struct bd_node **out, char **path_out, struct bd_err *err)
{
    bool confine = !n->flags.related_follow || n->flags.untrusted;
    struct bd_node *p = bd_node_protocol(n);
    char *path = NULL, *root = NULL, *real = NULL;
    bool existed = false;
    int r;

    if (!*name)
        return bd_err_set(err, EINVAL, "%s: the file name is empty", n->name);
    if (!p || is_pathless(p))
        return bd_err_set(err, ENOTSUP, "%s: cannot create the file '%s' next "
                          "to an image on %s, which has no directories",
                          n->name, name, p ? p->drv->name : "this storage");
    r = create_path(n, p, name, confine, &root, &path, err);
    if (r < 0)
        goto out;
    r = make_file(p, path, err);
    if (r == -EEXIST && !excl) {
        bd_err_clear(err);
        existed = true;
        /* what is there may be a symlink: it must not lead out either */
        r = canon_path(p, path, &real, err);
        if (r == 0 && confine && !path_within(real, root))
            r = bd_err_set(err, EACCES, "%s: '%s' leads outside %s, which the "
                           "confinement rules forbid", n->name, name, root);
        if (r == -ENOENT)
            r = bd_err_set(err, ENOENT, "%s: '%s' vanished while it was being "
                           "replaced", n->name, path);
    }
    if (r < 0)
        goto out;
    r = bd_open_related(n, path, true, out, err);
    if (r == 0 && existed) {
        /* as O_TRUNC: the old contents must not show through */
        r = bd_truncate(*out, 0, BD_PREALLOC_OFF, err);
        if (r < 0) {
            bd_node_close(*out);
            *out = NULL;
        }
    }
    if (r < 0) {
        if (!existed)
            bd_remove_related(n, path);
        goto out;
    }
    if (path_out) {
        *path_out = path;
        path = NULL;
    }
    r = existed ? 1 : 0;
out:
    free(real);
    free(root);
    free(path);
    return r;
}

int bd_remove_related(struct bd_node *n, const char *path)
{
    struct bd_node *p = bd_node_protocol(n);
    struct bd_err e2 = { 0 };
    struct bd_opts *o;
    int r = 0;

    if (!is_remote(p)) {
        if (unlink(path) == 0 || errno == ENOENT)
            return 0;
        r = -errno;
        log_warn("%s: cannot remove the half-made file: %s", path,
                 strerror(errno));
        return r;
    }
    if (!p->drv->files) {
        log_warn("%s: creating the image failed; remove the half-made file "
                 "%s on the server", n->name, path);
        return -ENOTSUP;
    }
    if (!(o = bd_opts_new()))
        return -ENOMEM;
    r = sibling_opts(p, path, o, &e2);
    if (r == 0)
        r = p->drv->files->remove_file(bd_opts_get(o, "filename"), o, &e2);
    if (r < 0)
        log_warn("%s", e2.msg);
    bd_opts_free(o);
    return r;
}

static bool is_same_file(const char *a, struct bd_node *n)
{
    struct bd_node *p = bd_node_protocol(n);
    struct stat sa, sb;
    if (!p || is_remote(p) || !p->filename || stat(a, &sa) != 0 ||
        stat(p->filename, &sb) != 0)
        return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Is the canonical server path `path` (on p's server) the file behind n? */
static bool is_same_remote(struct bd_node *p, const char *path,
                           struct bd_node *n)
{
    struct bd_node *q = bd_node_protocol(n);
    const char *s1, *p1, *s2, *p2;
    if (!is_remote(q) || q->drv != p->drv)
        return false;
    p->drv->remote->where(p, &s1, &p1);
    q->drv->remote->where(q, &s2, &p2);
    return strcmp(s1, s2) == 0 && strcmp(p2, path) == 0;
}

/* The confinement root of a backing file on p's server: the top image's
 * directory there. The top can only be elsewhere when protocol names were
 * followed, which confinement refuses; refuse that here too. */
static int remote_root(struct bd_node *n, struct bd_node *p, const char *name,
                       char **root, struct bd_err *err)
{
    struct bd_node *tp = bd_node_protocol(chain_top(n));
    const char *s1, *p1, *s2, *p2;

    if (!is_remote(tp) || tp->drv != p->drv)
        return bd_err_set(err, EACCES, "%s: backing file '%s' is on another "
                          "server than the top image, which --backing=confine "
                          "refuses", n->name, name);
    p->drv->remote->where(p, &s1, &p1);
    tp->drv->remote->where(tp, &s2, &p2);
    if (strcmp(s1, s2) != 0)
        return bd_err_set(err, EACCES, "%s: backing file '%s' is on another "
                          "server than the top image, which --backing=confine "
                          "refuses", n->name, name);
    *root = remote_dir(tp);
    return *root ? 0 : bd_err_set(err, ENOMEM, "out of memory");
}

/* A backing file named by a path in an image on a server: a path on that
 * same server, opened with the same connection settings. */
static int backing_on_server(struct bd_node *n, struct bd_node *p,
                             const char *name, const char *nm, bool confine,
                             struct bd_opts *o, struct bd_err *err)
{
    char *root = NULL, *path = NULL;
    int r = 0;

    if (confine)
        r = remote_root(n, p, name, &root, err);
    if (r == 0)
        r = resolve_remote(n, p, nm, "backing file", confine, root, &path, err);
    if (r < 0)
        goto out;
    for (struct bd_node *a = n; a; a = a->parent) {
        if (is_same_remote(p, path, a)) {
            r = bd_err_set(err, ELOOP, "%s: backing file '%s' is already in "
                           "the chain above it: the backing chain loops",
                           n->name, name);
            goto out;
        }
    }
    struct bd_opts *fo = bd_opts_sub(o, "file");
    r = fo ? sibling_opts(p, path, fo, err) : bd_err_set(err, ENOMEM,
                                                         "out of memory");
    bd_opts_free_view(fo);
out:
    free(root);
    free(path);
    return r;
}

int bd_open_backing(struct bd_node *n, const char *name, const char *fmt,
                    struct bd_err *err)
{
    struct bd_flags f = n->flags;
    struct bd_node *p = bd_node_protocol(n);
    bool confine = f.backing == BD_BACKING_CONFINE;
    char *path = NULL;
    int r;

    if (f.backing == BD_BACKING_NONE)
        return 0;
    if (n->depth + 1 >= f.max_chain)
        return bd_err_set(err, ELOOP, "%s: the backing chain is deeper than %u "
                          "images; is there a loop?", n->name, f.max_chain);
    if (!*name)
        return bd_err_set(err, EINVAL, "%s: the backing file name is empty",
                          n->name);
    enum bd_source_kind kind = bd_source_classify(name, NULL);
    bool is_path = kind == BD_SRC_FILE || strncmp(name, "file:", 5) == 0;
    if (!is_path && (f.untrusted || confine))
        return bd_err_set(err, EACCES, "%s: backing file '%s' is a protocol or "
                          "json: name, which --untrusted and --backing=confine "
                          "refuse", n->name, name);
    const char *nm = name;
    if (is_path) {
        nm = strncmp(name, "file:", 5) == 0 ? name + 5 : name;
        if (!strncmp(nm, "//", 2))
            nm += 2;
        if (is_pathless(p) && (confine || nm[0] != '/'))
            return pathless_error(n, p, name, true, err);
        if (is_pathless(bd_node_protocol(chain_top(n))) && confine)
            return pathless_error(n, bd_node_protocol(chain_top(n)), name,
                                  true, err);
    }

    struct bd_opts *o = bd_opts_new();
    if (!o)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (is_path && is_remote(p)) {
        r = backing_on_server(n, p, name, nm, confine, o, err);
    } else if (is_path) {
        char *root = bd_node_dirname(chain_top(n));
        if (!root) {
            r = bd_err_set(err, ENOMEM, "out of memory");
            goto out;
        }
        r = resolve(n, nm, "backing file", confine, root, &path, err);
        free(root);
        if (r < 0)
            goto out;
        for (struct bd_node *a = n; a; a = a->parent) {
            if (is_same_file(path, a)) {
                r = bd_err_set(err, ELOOP, "%s: backing file '%s' is already "
                               "in the chain above it: the backing chain loops",
                               n->name, name);
                goto out;
            }
        }
        r = bd_opts_set(o, "filename", path);
    } else {
        r = bd_source_to_opts(name, o, err);
    }
    if (r < 0)
        goto out;
    f.read_only = true;
    r = open_node(o, fmt && *fmt ? fmt : NULL, &f, n->depth + 1, n, &n->backing, err);
    if (r < 0)
        bd_err_prefix(err, "%s: backing file '%s'", n->name, name);
out:
    bd_opts_free(o);
    free(path);
    return r;
}
