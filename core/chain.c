/*
 * Backing chains: which file a backing name read from an image opens
 * (under the --backing policy, on the image's own server when it has one),
 * the depth limit and loop detection, and the read-only open itself. How a
 * name resolves and what confinement allows is resolve.c's.
 */
#include "core/bd-internal.h"
#include "core/resolve.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct bd_node *chain_top(struct bd_node *n)
{
    while (n->parent)
        n = n->parent;
    return n;
}

static bool is_same_file(const char *a, struct bd_node *n)
{
    struct bd_node *p = bd_node_protocol(n);
    struct stat sa, sb;
    if (!p || bd_node_is_remote(p) || !p->filename || stat(a, &sa) != 0 ||
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
    if (!bd_node_is_remote(q) || q->drv != p->drv)
        return false;
    p->drv->remote->where(p, &s1, &p1);
    q->drv->remote->where(q, &s2, &p2);
    return strcmp(s1, s2) == 0 && strcmp(p2, path) == 0;
}

/* The confinement root of a file named by p's image on p's server: the top
 * image's directory there. The top can only be elsewhere when protocol
 * names were followed, which confinement refuses; refuse that here too. */
static int remote_root(struct bd_node *n, struct bd_node *p, const char *name,
                       const char *what, char **root, struct bd_err *err)
{
    struct bd_node *tp = bd_node_protocol(chain_top(n));
    const char *s1, *p1, *s2, *p2;

    if (!bd_node_is_remote(tp) || tp->drv != p->drv)
        return bd_err_set(err, EACCES, "%s: %s '%s' is on another server than "
                          "the top image, which --backing=confine refuses",
                          n->name, what, name);
    p->drv->remote->where(p, &s1, &p1);
    tp->drv->remote->where(tp, &s2, &p2);
    if (strcmp(s1, s2) != 0)
        return bd_err_set(err, EACCES, "%s: %s '%s' is on another server than "
                          "the top image, which --backing=confine refuses",
                          n->name, what, name);
    *root = bd_remote_dir(tp);
    return *root ? 0 : bd_err_set(err, ENOMEM, "out of memory");
}

/* An image named by a path in an image on a server: a path on that same
 * server, opened with the same connection settings. */
static int path_on_server(struct bd_node *n, struct bd_node *p,
                          const char *name, const char *nm, const char *what,
                          bool confine, struct bd_opts *o, struct bd_err *err)
{
    char *root = NULL, *path = NULL;
    int r = 0;

    if (confine)
        r = remote_root(n, p, name, what, &root, err);
    if (r == 0)
        r = bd_resolve_remote(n, p, nm, what, confine, root, &path, err);
    if (r < 0)
        goto out;
    for (struct bd_node *a = n; a; a = a->parent) {
        if (is_same_remote(p, path, a)) {
            r = bd_err_set(err, ELOOP, "%s: %s '%s' is already in the chain "
                           "above it: the backing chain loops", n->name, what,
                           name);
            goto out;
        }
    }
    struct bd_opts *fo = bd_opts_sub(o, "file");
    r = fo ? bd_sibling_opts(p, path, fo, err) : bd_err_set(err, ENOMEM,
                                                            "out of memory");
    bd_opts_free_view(fo);
out:
    free(root);
    free(path);
    return r;
}

/* An image named by a local path in n: below the top image's directory
 * when confined. */
static int path_on_host(struct bd_node *n, const char *name, const char *nm,
                        const char *what, bool confine, struct bd_opts *o,
                        struct bd_err *err)
{
    char *root = bd_node_dirname(chain_top(n)), *path = NULL;
    int r;

    if (!root)
        return bd_err_set(err, ENOMEM, "out of memory");
    r = bd_resolve_local(n, nm, what, confine, root, &path, err);
    free(root);
    if (r < 0)
        return r;
    for (struct bd_node *a = n; a; a = a->parent) {
        if (is_same_file(path, a)) {
            r = bd_err_set(err, ELOOP, "%s: %s '%s' is already in the chain "
                           "above it: the backing chain loops", n->name, what,
                           name);
            goto out;
        }
    }
    r = bd_opts_set(o, "filename", path);
out:
    free(path);
    return r;
}

static bool is_path_name(const char *name)
{
    return bd_source_classify(name, NULL) == BD_SRC_FILE ||
           strncmp(name, "file:", 5) == 0;
}

/*
 * Options at the root of o that open the image `name` stored in n (or
 * given for it) as a path beside n: on n's server when n has one, else on
 * this host; confined to the top image's directory when confine is set,
 * and never a file already in the chain above n. what: "backing file", ...
 */
static int path_opts(struct bd_node *n, const char *name, const char *what,
                     bool confine, struct bd_opts *o, struct bd_err *err)
{
    struct bd_node *p = bd_node_protocol(n);
    struct bd_node *tp = bd_node_protocol(chain_top(n));
    bool backing = strcmp(what, "backing file") == 0;
    const char *nm = strncmp(name, "file:", 5) == 0 ? name + 5 : name;

    if (!strncmp(nm, "//", 2))
        nm += 2;
    if (bd_node_is_pathless(p) && (confine || nm[0] != '/'))
        return bd_pathless_error(n, p, name, backing, err);
    if (bd_node_is_pathless(tp) && confine)
        return bd_pathless_error(n, tp, name, backing, err);
    if (bd_node_is_remote(p))
        return path_on_server(n, p, name, nm, what, confine, o, err);
    return path_on_host(n, name, nm, what, confine, o, err);
}

int bd_open_backing(struct bd_node *n, const char *name, const char *fmt,
                    struct bd_err *err)
{
    return bd_open_backing_opts(n, name, fmt, NULL, err);
}

int bd_open_backing_opts(struct bd_node *n, const char *name, const char *fmt,
                         const struct bd_opts *bo, struct bd_err *err)
{
    struct bd_flags f = n->flags;
    bool confine = f.backing == BD_BACKING_CONFINE;
    bool is_path;
    struct bd_opts *o;
    int r;

    free(n->backing_name);
    free(n->backing_fmt);
    n->backing_name = strdup(name);
    n->backing_fmt = fmt && *fmt ? strdup(fmt) : NULL;
    if (!n->backing_name || (fmt && *fmt && !n->backing_fmt))
        return bd_err_set(err, ENOMEM, "out of memory");
    if ((n->backing = bd_take_given_backing(n)) != NULL)
        return 0;
    if (f.backing == BD_BACKING_NONE)
        return 0;
    if (n->depth + 1 >= f.max_chain)
        return bd_err_set(err, ELOOP, "%s: the backing chain is deeper than %u "
                          "images; is there a loop?", n->name, f.max_chain);
    if (!*name)
        return bd_err_set(err, EINVAL, "%s: the backing file name is empty",
                          n->name);
    is_path = is_path_name(name);
    if (!is_path && (f.untrusted || confine))
        return bd_err_set(err, EACCES, "%s: backing file '%s' is a protocol or "
                          "json: name, which --untrusted and --backing=confine "
                          "refuse", n->name, name);
    if (!(o = bd_opts_new()))
        return bd_err_set(err, ENOMEM, "out of memory");
    if (is_path)
        r = path_opts(n, name, "backing file", confine, o, err);
    else
        r = bd_source_to_opts(name, o, err);
    if (r == 0 && bo && bd_opts_copy_view(o, bo) < 0)
        r = bd_err_set(err, ENOMEM, "out of memory");
    if (r < 0)
        goto out;
    f.read_only = true;
    r = bd_node_open_opts(o, fmt && *fmt ? fmt : NULL, &f, n->depth + 1, n,
                          &n->backing, err);
    if (r < 0)
        bd_err_prefix(err, "%s: backing file '%s'", n->name, name);
    else if (bo)
        bd_opts_used_back(bo, o);
out:
    bd_opts_free(o);
    return r;
}

int bd_open_image_related(struct bd_node *n, const char *name, const char *fmt,
                          struct bd_node **out, struct bd_err *err)
{
    struct bd_flags f = n->flags;
    bool confine = f.backing != BD_BACKING_FOLLOW || f.untrusted;
    struct bd_opts *o;
    int r;

    if (!*name)
        return bd_err_set(err, EINVAL, "%s: the image name is empty", n->name);
    if (!is_path_name(name))
        return bd_err_set(err, EINVAL, "%s: '%s' is a protocol or json: name, "
                          "not a file name; name the image by its path",
                          n->name, name);
    if (!(o = bd_opts_new()))
        return bd_err_set(err, ENOMEM, "out of memory");
    r = path_opts(n, name, "image", confine, o, err);
    if (r < 0)
        goto out;
    /* only this image is read: its own backing chain stays closed */
    f.read_only = true;
    f.growable = false;
    f.backing = BD_BACKING_NONE;
    r = bd_node_open_opts(o, fmt && *fmt ? fmt : NULL, &f, n->depth + 1, n,
                          out, err);
out:
    bd_opts_free(o);
    return r;
}
