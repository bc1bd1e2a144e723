/*
 * Names stored in images (backing files, extents, data files): where they
 * lead on the image's storage (a local directory, or a path on the same
 * server for ssh:// and gluster://), the confinement rules that keep an
 * untrusted name inside the image's directory, and the related files opened
 * or made there. Which backing file to open, and loops, are chain.c's.
 */
#include "core/bd-internal.h"
#include "core/registry.h"
#include "core/resolve.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
bool bd_node_is_remote(const struct bd_node *p)
{
    return p && p->drv->remote;
}

/* A protocol with no paths at all (nbd, iscsi): a name stored in an image
 * on it has no directory to be looked up in. */
bool bd_node_is_pathless(const struct bd_node *p)
{
    return p && !bd_node_is_remote(p) && p->drv->kind == BD_PROTOCOL &&
           p->drv->uri;
}

int bd_pathless_error(struct bd_node *n, struct bd_node *p, const char *name,
                      bool backing, struct bd_err *err)
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
char *bd_remote_dir(struct bd_node *p)
{
    const char *server, *path;
    p->drv->remote->where(p, &server, &path);
    const char *slash = strrchr(path, '/');
    if (path[0] != '/')
        return strdup(".");     /* bd_resolve_remote refuses it */
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int bd_node_location(struct bd_node *n, char **path, char **dir,
                     struct bd_err *err)
{
    struct bd_node *p = bd_node_protocol(n);
    char *where = NULL, *d = NULL;

    if (bd_node_is_remote(p)) {
        const char *server, *rpath;
        p->drv->remote->where(p, &server, &rpath);
        where = strdup(rpath);
        d = bd_remote_dir(p);
    } else if (p->filename) {
        where = realpath(p->filename, NULL);
        if (!where)
            return bd_err_set(err, errno, "%s: %s", p->filename,
                              strerror(errno));
        char *copy = strdup(where);
        d = copy ? strdup(dirname(copy)) : NULL;
        free(copy);
    } else {
        return bd_err_set(err, EINVAL, "%s: is not a file with a path",
                          n->name);
    }
    if (!where || !d) {
        free(where);
        free(d);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    if (path)
        *path = where;
    else
        free(where);
    if (dir)
        *dir = d;
    else
        free(d);
    return 0;
}

/* bd_resolve_local() for a node on a server: lexically against the
 * directory of the file there (an absolute name is a path on the same
 * server), then the server's own canonical form, which confinement
 * compares with root. */
int bd_resolve_remote(struct bd_node *n, struct bd_node *p, const char *name,
                      const char *what, bool confine, const char *root,
                      char **out, struct bd_err *err)
{
    char *dir = bd_remote_dir(p), *joined = NULL, *real = NULL;
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
int bd_resolve_local(struct bd_node *n, const char *name, const char *what,
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
    if (bd_node_is_pathless(p) && (confine || name[0] != '/'))
        return bd_pathless_error(n, p, name, false, err);
    dir = bd_node_is_remote(p) ? bd_remote_dir(p) : bd_node_dirname(n);
    if (!dir)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (bd_node_is_remote(p))
        r = bd_resolve_remote(n, p, name, "file", confine, dir, out, err);
    else
        r = bd_resolve_local(n, name, "file", confine, dir, out, err);
    free(dir);
    return r;
}

/* Options (under o) that open `path` on the server of p with p's driver. */
int bd_sibling_opts(struct bd_node *p, const char *path, struct bd_opts *o,
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
    if (bd_node_is_remote(p))
        r = bd_sibling_opts(p, path, o, err);
    if (r == 0)
        r = bd_node_open_protocol(bd_node_is_remote(p) ? NULL : path,
                                  bd_node_is_remote(p) ? p->drv : NULL, o, &f,
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

    if (bd_node_is_remote(p)) {
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
    bool remote = bd_node_is_remote(p);
    const struct bd_driver *d = remote ? p->drv : bd_driver_find("file");
    struct bd_opts *o;
    int r = 0;

    if (!d || !d->files)
        return bd_err_set(err, ENOTSUP, "%s: imgfuse cannot create files on "
                          "%s", path, d ? d->name : "this storage");
    if (!(o = bd_opts_new()))
        return bd_err_set(err, ENOMEM, "out of memory");
    if (remote)
        r = bd_sibling_opts(p, path, o, err);
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
    char *dir = bd_node_is_remote(p) ? bd_remote_dir(p) : bd_node_dirname(n);
    char *joined = NULL, *root = NULL, *rdir = NULL, *base;
    int r;

    if (!dir || !(joined = join_name(dir, name))) {
        r = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (joined[0] != '/' && bd_node_is_remote(p)) {
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
                       bd_node_is_remote(p) ? " on the server" : "");
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
                       root, bd_node_is_remote(p) ? " on the server" : "");
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
    if (!p || bd_node_is_pathless(p))
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

    if (!bd_node_is_remote(p)) {
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
    r = bd_sibling_opts(p, path, o, &e2);
    if (r == 0)
        r = p->drv->files->remove_file(bd_opts_get(o, "filename"), o, &e2);
    if (r < 0)
        log_warn("%s", e2.msg);
    bd_opts_free(o);
    return r;
}
