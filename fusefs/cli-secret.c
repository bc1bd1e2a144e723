/*
 * Secrets on the command line: `--object secret,...` (QEMU's spelling,
 * any subcommand), the same inside -o for mount(8) and fstab
 * (`-o object=secret,id=ID,file=PATH,...`: the items after object= that a
 * secret takes belong to it), and --key-prompt. A value given inline with
 * data= is blanked in argv once copied, and the copies are wiped after the
 * secrets are defined.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep a copy of spec for cli_define_secrets. */
static int keep(struct cli *c, const char *spec, struct bd_err *err)
{
    if (c->nobjects == sizeof(c->objects) / sizeof(c->objects[0]))
        return bd_err_set(err, E2BIG, "too many --object options (at most %zu)",
                          sizeof(c->objects) / sizeof(c->objects[0]));
    char *copy = strdup(spec);
    if (!copy)
        return bd_err_set(err, ENOMEM, "out of memory");
    c->objects[c->nobjects++] = copy;
    return 0;
}

/* Blank every data= value of a QEMU-style spec in place (argv). */
static void blank_data(char *spec)
{
    for (char *p = spec; (p = strstr(p, "data=")) != NULL; ) {
        if (p != spec && p[-1] != ',') {
            p += 5;
            continue;
        }
        p += 5;
        while (*p && !(*p == ',' && p[1] != ',')) {
            if (*p == ',')
                *p++ = 'x';
            *p++ = 'x';
        }
    }
}

int cli_object(struct cli *c, char *spec, struct bd_err *err)
{
    int r = keep(c, spec, err);
    if (r == 0)
        blank_data(spec);
    return r;
}

static bool secret_item(const char *item, const char *group)
{
    static const char *const keys[] = { "id=", "data=", "file=", "format=", NULL };
    for (size_t i = 0; keys[i]; i++) {
        size_t l = strlen(keys[i]);
        if (strncmp(item, keys[i], l))
            continue;
        /* a second id= (say) starts over: it is not this secret's */
        char probe[16];
        snprintf(probe, sizeof(probe), ",%s", keys[i]);
        if (strstr(group, probe))
            return false;
        /* format=qcow2 is the image's format, format=raw|base64 ours */
        return i != 3 || !strcmp(item + l, "raw") || !strcmp(item + l, "base64");
    }
    return false;
}

int cli_o_object_item(struct cli *c, char *item, char *orig, struct bd_err *err)
{
    char *group = c->o_object;
    if (!strncmp(item, "object=", 7)) {
        int r = cli_o_object_end(c, err);
        if (r < 0)
            return r;
        if (!(c->o_object = strdup(item + 7)))
            return bd_err_set(err, ENOMEM, "out of memory");
        return 1;
    }
    if (!group || !secret_item(item, group))
        return cli_o_object_end(c, err);
    size_t l = strlen(group), n = strlen(item);
    char *g = realloc(group, l + n + 2);
    if (!g)
        return bd_err_set(err, ENOMEM, "out of memory");
    g[l] = ',';
    memcpy(g + l + 1, item, n + 1);
    c->o_object = g;
    if (!strncmp(item, "data=", 5))
        memset(orig + 5, 'x', n - 5);    /* the -o string in argv */
    return 1;
}

int cli_o_object_end(struct cli *c, struct bd_err *err)
{
    char *g = c->o_object;
    if (!g)
        return 0;
    c->o_object = NULL;
    int r = keep(c, g, err);
    explicit_bzero(g, strlen(g));
    free(g);
    return r;
}

static void warn_inline(const char *spec)
{
    const char *id = strstr(spec, ",id=");
    int idlen = id ? (int)strcspn(id + 4, ",") : 0;
    if (!strstr(spec, ",data="))
        return;
    fprintf(stderr, "imgfuse: warning: --object secret,id=%.*s,data=...: a "
            "secret given inline is visible to other users (ps, "
            "/proc/PID/cmdline) while imgfuse starts; use file=PATH\n",
            idlen, id ? id + 4 : "");
}

int cli_define_secrets(struct cli *c, struct bd_err *err)
{
    int r = 0;
    bd_secret_allow_prompt(c->key_prompt);
    for (size_t i = 0; i < c->nobjects; i++) {
        if (r == 0) {
            warn_inline(c->objects[i]);
            r = bd_secret_object(c->objects[i], err);
        }
        explicit_bzero(c->objects[i], strlen(c->objects[i]));
    }
    return r;
}

void cli_objects_free(struct cli *c)
{
    for (size_t i = 0; i < c->nobjects; i++) {
        explicit_bzero(c->objects[i], strlen(c->objects[i]));
        free(c->objects[i]);
    }
    c->nobjects = 0;
    if (c->o_object) {
        explicit_bzero(c->o_object, strlen(c->o_object));
        free(c->o_object);
        c->o_object = NULL;
    }
}
