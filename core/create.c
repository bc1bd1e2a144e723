/*
 * Image creation: make the protocol object (refusing to overwrite), open it
 * writable, let the format driver write its structures, and remove the
 * half-made file on failure. Further files (extents, data files) the format
 * makes itself with bd_create_related, on the same storage.
 */
#include "bd-internal.h"
#include "graph.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_create_opts(struct bd_opts *o, const struct bd_driver *drv,
                             const struct bd_driver *proto, struct bd_err *err)
{
    struct bd_opt_tree *t = o->tree;
    const char *const *fmt_opts = drv->create->options;
    const char *const *proto_opts = proto->files->options;
    for (size_t i = 0; i < t->n; i++) {
        const char *k = t->v[i].key;
        bool known = false;
        for (const char *const *c = fmt_opts; c && *c && !known; c++)
            known = bd_key_eq(k, *c);
        for (const char *const *c = proto_opts; c && *c && !known; c++)
            known = bd_key_eq(k, *c);
        if (known)
            continue;
        const char *hint = bd_suggest(k, fmt_opts);
        if (!hint)
            hint = bd_suggest(k, proto_opts);
        char list[512] = "";
        for (const char *const *c = fmt_opts; c && *c; c++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s", *list ? ", " : "", *c);
        }
        if (hint)
            return bd_err_set(err, EINVAL, "unknown option '%s' for creating "
                              "a %s image (did you mean '%s'?)", k, drv->name, hint);
        return bd_err_set(err, EINVAL, "unknown option '%s' for creating a %s "
                          "image; %s takes: %s", k, drv->name, drv->name,
                          *list ? list : "no options");
    }
    return 0;
}

static bool creates_over_uri(const struct bd_driver *drv)
{
    return drv->files && drv->uri;
}

/* Which protocol makes the object: the driver of a URI's scheme (ssh://,
 * gluster://), else a local file. */
static int pick_protocol(const char *filename, const struct bd_driver **proto,
                         struct bd_err *err)
{
    char *scheme = NULL;
    int r = 0;

    *proto = bd_driver_find("file");
    if (bd_source_classify(filename, &scheme) != BD_SRC_URI ||
        strcasecmp(scheme, "file") == 0) {
        free(scheme);
        return 0;
    }
    const struct bd_driver *d = bd_driver_for_scheme(scheme);
    if (d && creates_over_uri(d)) {
        *proto = d;
    } else if (d || strstr(filename, "://")) {
        char list[256];
        bool some = bd_driver_scheme_list(list, sizeof(list), "://",
                                          creates_over_uri) > 0;
        r = bd_err_set(err, ENOTSUP, "%s: imgfuse cannot create images over "
                       "%s; it creates local files%s%s%s", filename,
                       d ? d->name : scheme, some ? " and " : " only",
                       list, some ? " URIs" : "");
    }
    /* else "name:with:colons": a local file, as before */
    free(scheme);
    return r;
}

static bool is_local(const struct bd_driver *proto)
{
    return strcmp(proto->name, "file") == 0;
}

/* Remove what create_file made, after a failure. */
static void remove_new(const struct bd_driver *proto, const char *filename)
{
    struct bd_err e2 = { 0 };

    if (proto->files->remove_file(filename, NULL, &e2) < 0)
        log_warn("%s; creating the image failed: remove the half-made file",
                 e2.msg);
}

/* Open the new, empty object writable. */
static int open_new(const struct bd_driver *proto, const char *filename,
                    const struct bd_flags *flags, struct bd_node **file,
                    struct bd_err *err)
{
    bool local = is_local(proto);
    struct bd_opts *po = bd_opts_new();
    int r = 0;

    if (!po)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (!local)
        r = proto->uri->parse(filename, po, err);
    if (r == 0)
        r = bd_node_open_protocol(local ? filename : NULL, proto, po, flags, 0,
                                  file, err);
    bd_opts_free(po);
    return r;
}

int bd_create_image(const char *filename, const char *fmt, uint64_t size,
                    const char *opts, struct bd_err *err)
{
    const struct bd_driver *drv = bd_driver_find(fmt ? fmt : "raw");
    const struct bd_driver *proto;
    /* names on the command line (data_file=, backing_file=) are the
     * user's own, not read from an image: like qemu-img, take any path */
    struct bd_flags flags = { .locking = BD_LOCKING_AUTO, .growable = true,
                              .related_follow = true };
    struct bd_node *file = NULL;
    struct stat st;
    int r;

    if (!drv || drv->kind != BD_FORMAT) {
        size_t count;
        const struct bd_driver *const *all = bd_driver_all(&count);
        const char *names[64];
        size_t k = 0;
        for (size_t i = 0; i < count && k < 63; i++) {
            if (all[i]->kind == BD_FORMAT && all[i]->create)
                names[k++] = all[i]->name;
        }
        names[k] = NULL;
        const char *hint = bd_suggest(fmt, names);
        return bd_err_set(err, EINVAL, "unknown format '%s'%s%s%s", fmt,
                          hint ? " (did you mean '" : "", hint ? hint : "",
                          hint ? "'?)" : "");
    }
    if (!drv->create)
        return bd_err_set(err, ENOTSUP, "imgfuse cannot create %s images "
                          "(the format is read-only here)", drv->name);
    if ((r = pick_protocol(filename, &proto, err)) < 0)
        return r;
    /* a server refuses an existing object itself (create_file, O_EXCL) */
    if (is_local(proto) && stat(filename, &st) == 0)
        return bd_err_set(err, EEXIST, "%s: already exists; imgfuse create "
                          "never overwrites: remove it first or pick another "
                          "name", filename);
    struct bd_opts *o = bd_opts_new();
    if (!o)
        return bd_err_set(err, ENOMEM, "out of memory");
    if (opts && *opts) {
        r = bd_opts_parse_dotted(o, opts, NULL, err);
        if (r < 0)
            goto out;
    }
    r = check_create_opts(o, drv, proto, err);
    if (r < 0)
        goto out;
    r = proto->files->create_file(filename, o, err);
    if (r < 0)
        goto out;
    r = open_new(proto, filename, &flags, &file, err);
    if (r < 0)
        goto out_remove;
    r = drv->create->create(file, size, o, err);
    if (r == 0)
        r = bd_flush(file);
    bd_node_close(file);
    if (r < 0) {
        if (err->errnum == 0)
            bd_err_set(err, -r, "%s: %s", filename, strerror(-r));
        goto out_remove;
    }
    bd_opts_free(o);
    return 0;

out_remove:
    remove_new(proto, filename);
out:
    bd_opts_free(o);
    return r;
}
