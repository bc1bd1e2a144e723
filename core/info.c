/*
 * Key/value lists that drivers fill for `imgfuse info`. Formatting as text
 * or JSON is the front-end's job.
 */
#include "bd-internal.h"
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bd_info_add(struct bd_info *info, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *val = NULL, *k = strdup(key);
    va_start(ap, fmt);
    if (vasprintf(&val, fmt, ap) < 0)
        val = NULL;
    va_end(ap);
    if (!k || !val)
        goto fail;
    if (info->n == info->cap) {
        size_t cap = info->cap ? info->cap * 2 : 16;
        void *nv = realloc(info->v, cap * sizeof(*info->v));
        if (!nv)
            goto fail;
        info->v = nv;
        info->cap = cap;
    }
    info->v[info->n].key = k;
    info->v[info->n].val = val;
    info->n++;
    return;
fail:
    free(k);
    free(val);
}

void bd_info_free(struct bd_info *info)
{
    for (size_t i = 0; i < info->n; i++) {
        free(info->v[i].key);
        free(info->v[i].val);
    }
    free(info->v);
    memset(info, 0, sizeof(*info));
}

const char *bd_info_get(const struct bd_info *info, const char *key)
{
    for (size_t i = 0; i < info->n; i++) {
        if (strcmp(info->v[i].key, key) == 0)
            return info->v[i].val;
    }
    return NULL;
}

/* A protocol node's own fields belong to the protocol part; below a
 * format, the protocol node at the bottom of the file chain gives them. */
void bd_node_info(struct bd_node *n, enum bd_info_part part,
                  void (*fn)(void *arg, const char *key, const char *val),
                  void *arg)
{
    struct bd_info info = { 0 };
    bool is_proto = n->drv->kind == BD_PROTOCOL;
    struct bd_node *p = bd_node_protocol(n);

    if (n->drv->info && is_proto == (part == BD_INFO_PROTOCOL))
        n->drv->info(n, &info);
    if (part == BD_INFO_PROTOCOL && p != n && p->drv->info)
        p->drv->info(p, &info);
    for (size_t i = 0; i < info.n; i++)
        fn(arg, info.v[i].key, info.v[i].val);
    bd_info_free(&info);
}

const char *bd_node_image_name(struct bd_node *n)
{
    struct bd_node *p = bd_node_protocol(n);
    return p && p->filename ? p->filename : n->name;
}

int bd_node_snapshots(struct bd_node *n, char ***names)
{
    *names = NULL;
    if (!n->drv->snapshots)
        return 0;
    return n->drv->snapshots(n, names);
}
