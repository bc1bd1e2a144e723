/*
 * Image creation: make the protocol object (refusing to overwrite), open it
 * writable, let the format driver write its structures, and remove the
 * half-made file on failure.
 */
#include "bd-internal.h"
#include "graph.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int check_create_opts(struct bd_opts *o, const struct bd_driver *fmt,
                             const struct bd_driver *proto, struct bd_err *err)
{
    struct bd_opt_tree *t = o->tree;
    for (size_t i = 0; i < t->n; i++) {
        const char *k = t->v[i].key;
        bool known = false;
        for (const char *const *c = fmt->create_options; c && *c && !known; c++)
            known = bd_key_eq(k, *c);
        for (const char *const *c = proto->create_options; c && *c && !known; c++)
            known = bd_key_eq(k, *c);
        if (known)
            continue;
        const char *hint = bd_suggest(k, fmt->create_options);
        if (!hint)
            hint = bd_suggest(k, proto->create_options);
        char list[512] = "";
        for (const char *const *c = fmt->create_options; c && *c; c++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s", *list ? ", " : "", *c);
        }
        if (hint)
            return bd_err_set(err, EINVAL, "unknown option '%s' for creating "
                              "a %s image (did you mean '%s'?)", k, fmt->name, hint);
        return bd_err_set(err, EINVAL, "unknown option '%s' for creating a %s "
                          "image; %s takes: %s", k, fmt->name, fmt->name,
                          *list ? list : "no options");
    }
    return 0;
}

int bd_create_image(const char *filename, const char *fmt, uint64_t size,
                    const char *opts, struct bd_err *err)
{
    const struct bd_driver *drv = bd_driver_find(fmt ? fmt : "raw");
    const struct bd_driver *proto = bd_driver_find("file");
    struct bd_flags flags = { .locking = BD_LOCKING_AUTO, .growable = true };
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
    if (stat(filename, &st) == 0)
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
    r = proto->create_file(filename, o, err);
    if (r < 0)
        goto out;
    struct bd_opts *po = bd_opts_new();
    if (!po) {
        r = bd_err_set(err, ENOMEM, "out of memory");
        goto out_unlink;
    }
    r = bd_node_open_protocol(filename, proto, po, &flags, 0, &file, err);
    bd_opts_free(po);
    if (r < 0)
        goto out_unlink;
    r = drv->create(file, size, o, err);
    if (r == 0)
        r = bd_flush(file);
    bd_node_close(file);
    if (r < 0) {
        if (err->errnum == 0)
            bd_err_set(err, -r, "%s: %s", filename, strerror(-r));
        goto out_unlink;
    }
    bd_opts_free(o);
    return 0;

out_unlink:
    unlink(filename);
out:
    bd_opts_free(o);
    return r;
}
