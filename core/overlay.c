/*
 * Overlays: a new qcow2 file whose backing file is an image already open
 * read-only, so that a mount of it is writable while the image itself is
 * never written. The overlay names the image by its absolute path and
 * format, as qemu-img wants them; when imgfuse opens the overlay, the
 * backing node is the image as the user opened it (with its options,
 * secrets and recovery switches), not a new open of that name.
 */
#include "bd-internal.h"
#include "graph.h"
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The node bd_open_backing hands to the next top image that opens a
 * backing file, instead of opening one (bd_open_overlay). */
static __thread struct bd_node *given_backing;

struct bd_node *bd_take_given_backing(struct bd_node *n)
{
    struct bd_node *b = given_backing;
    if (!b || n->parent)
        return NULL;
    given_backing = NULL;
    b->parent = n;
    return b;
}

/* "a,b" -> "a,,b": a comma inside a dotted option value. */
static int append_escaped(char *buf, size_t size, const char *s)
{
    size_t l = strlen(buf);
    for (; *s; s++) {
        if (l + 3 >= size)
            return -E2BIG;
        if (*s == ',')
            buf[l++] = ',';
        buf[l++] = *s;
    }
    buf[l] = '\0';
    return 0;
}

int bd_create_overlay(const char *overlay, struct bd_node *base,
                      struct bd_err *err)
{
    struct bd_node *p = bd_node_protocol(base);
    char *path = NULL;
    char opts[8192] = "backing_file=";
    int64_t size = bd_size(base);
    int r;

    if (size < 0)
        return bd_err_set(err, (int)-size, "%s: cannot get its size: %s",
                          base->name, strerror((int)-size));
    /* A local image by its absolute path; anything else by the name
     * imgfuse shows for it (a URI without its secrets). */
    if (p && p->filename && !bd_node_is_remote(p) && p->filename[0] != '\0' &&
        !strstr(p->filename, "://")) {
        r = bd_node_location(base, &path, NULL, err);
        if (r < 0)
            return r;
    } else {
        path = strdup(bd_node_image_name(base));
        if (!path)
            return bd_err_set(err, ENOMEM, "out of memory");
    }
    r = append_escaped(opts, sizeof(opts), path);
    if (r == 0) {
        size_t l = strlen(opts);
        snprintf(opts + l, sizeof(opts) - l, ",backing_fmt=");
        r = append_escaped(opts, sizeof(opts), base->drv->name);
    }
    free(path);
    if (r < 0)
        return bd_err_set(err, E2BIG, "%s: its name is too long to be written "
                          "into an overlay", base->name);
    r = bd_create_image(overlay, "qcow2", (uint64_t)size, opts, err);
    if (r < 0)
        bd_err_prefix(err, "overlay %s", overlay);
    return r;
}

int bd_open_overlay(const char *overlay, struct bd_node *base,
                    const struct bd_flags *flags, struct bd_node **out,
                    struct bd_err *err)
{
    struct bd_flags f = *flags;
    f.read_only = false;
    f.force_share = false;
    f.growable = false;
    f.backing = BD_BACKING_FOLLOW;
    given_backing = base;
    int r = bd_open_image(overlay, "qcow2", NULL, &f, out, err);
    if (given_backing) {
        /* the overlay never asked for a backing file */
        given_backing = NULL;
        bd_node_close(base);
        if (r == 0) {
            bd_node_close(*out);
            *out = NULL;
            r = bd_err_set(err, EINVAL, "overlay %s: has no backing file, so "
                           "it is no overlay of an image; name a new file "
                           "(it is created) or an overlay made for this image",
                           overlay);
        }
    }
    return r;
}
