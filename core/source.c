/*
 * What the front-end may ask about a SOURCE before opening it: whether its
 * protocol reads an option, and where its text spells secrets that must not
 * stay visible in argv. Parsing SOURCE is uri.c's job and the driver's
 * (its bd_uri_ops.parse); opening it is node.c's.
 */
#include "bd-internal.h"
#include "graph.h"
#include "registry.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The protocol driver of a URI SOURCE, or NULL. */
static const struct bd_driver *source_protocol(const char *source)
{
    char *scheme = NULL;
    const struct bd_driver *drv = NULL;

    if (bd_source_classify(source, &scheme) == BD_SRC_URI && scheme)
        drv = bd_driver_for_scheme(scheme);
    free(scheme);
    return drv && drv->kind == BD_PROTOCOL ? drv : NULL;
}

bool bd_source_takes_option(const char *source, const char *key)
{
    const struct bd_driver *drv = source_protocol(source);

    for (size_t i = 0; drv && drv->options && drv->options[i]; i++) {
        if (bd_key_eq(drv->options[i], key))
            return true;
    }
    return false;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Length of the text at s that spells val, each byte either as itself or
 * as a %XX escape; 0 when it does not. */
static size_t spelled_len(const char *s, const char *val)
{
    if (!*val)
        return 0;
    if (s[0] == '%' && hex_digit(s[1]) >= 0 && hex_digit(s[2]) >= 0 &&
        (unsigned char)(hex_digit(s[1]) << 4 | hex_digit(s[2])) ==
            (unsigned char)*val) {
        size_t rest = val[1] ? spelled_len(s + 3, val + 1) : 0;
        if (!val[1] || rest)
            return 3 + rest;
    }
    if (*s == *val) {
        size_t rest = val[1] ? spelled_len(s + 1, val + 1) : 0;
        if (!val[1] || rest)
            return 1 + rest;
    }
    return 0;
}

/* Parse source with drv into a scratch tree; the value of key (copied,
 * caller frees) in *val, NULL when absent. 0, -ENOMEM, or another -errno
 * when source does not parse. */
static int parsed_value(const struct bd_driver *drv, const char *source,
                        const char *key, char **val)
{
    struct bd_err err = { 0 };
    struct bd_opts *o = bd_opts_new();
    int r;

    *val = NULL;
    if (!o)
        return -ENOMEM;
    r = drv->uri->parse(source, o, &err);
    if (r == 0) {
        const char *v = bd_opts_get(o, key);
        if (v && !(*val = strdup(v)))
            r = -ENOMEM;
    }
    bd_opts_free(o);
    return r;
}

/*
 * Does the text [off, off + len) of source make up the value of key? The
 * same text may spell other parts too (a user name equal to the password),
 * so write over it and see whether the driver then reads another value.
 */
static int makes_value(const struct bd_driver *drv, const char *source,
                       size_t off, size_t len, const char *key, const char *val)
{
    char *copy = strdup(source), *now;
    int r;

    if (!copy)
        return -ENOMEM;
    for (size_t i = off; i < off + len; i++)
        copy[i] = copy[i] == 'x' ? 'y' : 'x';
    r = parsed_value(drv, copy, key, &now);
    free(copy);
    if (r == -ENOMEM)
        return r;
    r = r == 0 && (!now || strcmp(now, val) != 0);
    free(now);
    return r;
}

/* Add the spans of source that make up val (the value of key) to spans. */
static int find_value(const struct bd_driver *drv, const char *source,
                      const char *key, const char *val, struct bd_span *spans,
                      size_t max, size_t *count)
{
    for (size_t off = 0; source[off]; off++) {
        size_t len = spelled_len(source + off, val);
        if (!len)
            continue;
        int r = makes_value(drv, source, off, len, key, val);
        if (r < 0)
            return r;
        if (r) {
            if (*count < max)
                spans[*count] = (struct bd_span){ .off = off, .len = len };
            (*count)++;
            off += len - 1;
        }
    }
    return 0;
}

static int span_cmp(const void *a, const void *b)
{
    const struct bd_span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int bd_source_secrets(const char *source, struct bd_span *spans, size_t max)
{
    const struct bd_driver *drv = source_protocol(source);
    size_t count = 0;

    if (!drv || !drv->uri || !drv->secret_options)
        return 0;
    for (size_t i = 0; drv->secret_options[i]; i++) {
        char *val;
        int r = parsed_value(drv, source, drv->secret_options[i], &val);
        if (r == -ENOMEM)
            return r;
        if (r < 0)
            return 0;       /* opening it will say what is wrong */
        if (val && *val)
            r = find_value(drv, source, drv->secret_options[i], val, spans,
                           max, &count);
        free(val);
        if (r < 0)
            return r;
    }
    qsort(spans, count < max ? count : max, sizeof(*spans), span_cmp);
    return count > INT_MAX ? INT_MAX : (int)count;
}
