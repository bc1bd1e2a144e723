/*
 * The option tree: dotted keys with string values, views under a prefix,
 * typed getters that mark keys used, and the unknown-option check with a
 * did-you-mean. JSON flattening lives in json.c, SOURCE parsing in uri.c.
 */
#include "bd-internal.h"
#include "graph.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool bd_key_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

struct bd_opts *bd_opts_new(void)
{
    struct bd_opts *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->tree = calloc(1, sizeof(*o->tree));
    o->prefix = strdup("");
    if (!o->tree || !o->prefix) {
        free(o->tree);
        free(o->prefix);
        free(o);
        return NULL;
    }
    pthread_mutex_init(&o->tree->lock, NULL);
    o->owns_tree = true;
    return o;
}

void bd_opts_free(struct bd_opts *o)
{
    if (!o)
        return;
    if (o->owns_tree) {
        struct bd_opt_tree *t = o->tree;
        for (size_t i = 0; i < t->n; i++) {
            free(t->v[i].key);
            free(t->v[i].val);
        }
        for (size_t i = 0; i < t->nowners; i++)
            free(t->owners[i].prefix);
        free(t->owners);
        free(t->v);
        pthread_mutex_destroy(&t->lock);
        free(t);
    }
    free(o->prefix);
    free(o);
}

static struct bd_opt_entry *find(const struct bd_opts *o, const char *key)
{
    size_t plen = strlen(o->prefix);
    for (size_t i = 0; i < o->tree->n; i++) {
        struct bd_opt_entry *e = &o->tree->v[i];
        if (strncmp(e->key, o->prefix, plen) == 0 && bd_key_eq(e->key + plen, key))
            return e;
    }
    return NULL;
}

const char *bd_opts_get(const struct bd_opts *o, const char *key)
{
    if (!o)
        return NULL;
    pthread_mutex_lock(&o->tree->lock);
    struct bd_opt_entry *e = find(o, key);
    if (e)
        e->used = true;
    pthread_mutex_unlock(&o->tree->lock);
    return e ? e->val : NULL;
}

bool bd_opts_has(const struct bd_opts *o, const char *key)
{
    if (!o)
        return false;
    pthread_mutex_lock(&o->tree->lock);
    bool has = find(o, key) != NULL;
    pthread_mutex_unlock(&o->tree->lock);
    return has;
}

int bd_opts_set(struct bd_opts *o, const char *key, const char *val)
{
    struct bd_opt_tree *t = o->tree;
    char *full;

    if (asprintf(&full, "%s%s", o->prefix, key) < 0)
        return -ENOMEM;
    pthread_mutex_lock(&t->lock);
    struct bd_opt_entry *e = NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (bd_key_eq(t->v[i].key, full))
            e = &t->v[i];
    }
    if (!e) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            void *nv = realloc(t->v, cap * sizeof(*t->v));
            if (!nv) {
                pthread_mutex_unlock(&t->lock);
                free(full);
                return -ENOMEM;
            }
            t->v = nv;
            t->cap = cap;
        }
        e = &t->v[t->n++];
        e->key = full;
        e->val = NULL;
    } else {
        free(full);
    }
    free(e->val);
    e->val = strdup(val);
    e->used = false;
    pthread_mutex_unlock(&t->lock);
    return e->val ? 0 : -ENOMEM;
}

struct bd_opts *bd_opts_sub(const struct bd_opts *o, const char *prefix)
{
    struct bd_opts *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->tree = o->tree;
    if (asprintf(&v->prefix, "%s%s.", o->prefix, prefix) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

void bd_opts_free_view(struct bd_opts *view)
{
    if (view && !view->owns_tree) {
        free(view->prefix);
        free(view);
    }
}

int bd_opts_move_prefix(struct bd_opts *o, const char *from, const char *to)
{
    struct bd_opt_tree *t = o->tree;
    size_t flen = strlen(from);
    int r = 0;

    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n && r == 0; i++) {
        char *key;
        if (strncmp(t->v[i].key, from, flen) != 0)
            continue;
        if (asprintf(&key, "%s%s", to, t->v[i].key + flen) < 0) {
            r = -ENOMEM;
            break;
        }
        free(t->v[i].key);
        t->v[i].key = key;
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

int bd_opts_copy_view(struct bd_opts *dst, const struct bd_opts *src)
{
    size_t plen = strlen(src->prefix);
    int r = 0;

    for (size_t i = 0; r == 0; i++) {
        char *key = NULL, *val = NULL;
        pthread_mutex_lock(&src->tree->lock);
        if (i >= src->tree->n) {
            pthread_mutex_unlock(&src->tree->lock);
            break;
        }
        const struct bd_opt_entry *e = &src->tree->v[i];
        if (strncmp(e->key, src->prefix, plen) == 0) {
            key = strdup(e->key + plen);
            val = strdup(e->val);
            if (!key || !val)
                r = -ENOMEM;
        }
        pthread_mutex_unlock(&src->tree->lock);
        if (r == 0 && key) {
            pthread_mutex_lock(&dst->tree->lock);
            bool taken = find(dst, key) != NULL;
            pthread_mutex_unlock(&dst->tree->lock);
            if (!taken)
                r = bd_opts_set(dst, key, val);
        }
        free(key);
        free(val);
    }
    return r;
}

void bd_opts_used_back(const struct bd_opts *src, const struct bd_opts *dst)
{
    size_t plen = strlen(src->prefix);

    pthread_mutex_lock(&src->tree->lock);
    for (size_t i = 0; i < src->tree->n; i++) {
        struct bd_opt_entry *e = &src->tree->v[i];
        if (strncmp(e->key, src->prefix, plen) != 0)
            continue;
        /* dst has its own tree: its lock, never both at once */
        pthread_mutex_unlock(&src->tree->lock);
        pthread_mutex_lock(&dst->tree->lock);
        const struct bd_opt_entry *d = find(dst, e->key + plen);
        bool used = d && d->used;
        pthread_mutex_unlock(&dst->tree->lock);
        pthread_mutex_lock(&src->tree->lock);
        if (used)
            src->tree->v[i].used = true;
    }
    pthread_mutex_unlock(&src->tree->lock);
}

bool bd_opts_view_empty(const struct bd_opts *view)
{
    size_t plen = strlen(view->prefix);
    for (size_t i = 0; i < view->tree->n; i++) {
        if (strncmp(view->tree->v[i].key, view->prefix, plen) == 0)
            return false;
    }
    return true;
}

void bd_opts_set_owner(struct bd_opts *view, const struct bd_driver *drv)
{
    struct bd_opt_tree *t = view->tree;
    void *nv = realloc(t->owners, (t->nowners + 1) * sizeof(*t->owners));
    if (!nv)
        return;
    t->owners = nv;
    t->owners[t->nowners].prefix = strdup(view->prefix);
    t->owners[t->nowners].drv = drv;
    if (t->owners[t->nowners].prefix)
        t->nowners++;
}

int bd_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -EINVAL;
    double d = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno)
        return -ERANGE;
    if (*end == '.') {
        d = strtod(s, &end);
        if (d < 0)
            return -EINVAL;
    }
    unsigned shift = 0;
    switch (*end) {
    case '\0': case 'b': case 'B': shift = 0; break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    case 'p': case 'P': shift = 50; break;
    case 'e': case 'E': shift = 60; break;
    default: return -EINVAL;
    }
    if (*end) {
        end++;
        if ((*end == 'i' && end[1] == 'B') || *end == 'B')
            end += *end == 'i' ? 2 : 1;
        if (*end)
            return -EINVAL;
    }
    if (d != 0) {
        long double r = (long double)d * (long double)(1ULL << shift);
        if (r >= 18446744073709551615.0L)
            return -ERANGE;
        *out = (uint64_t)r;
        return 0;
    }
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

static const char *full_key(const struct bd_opts *o, const char *key, char *buf,
                            size_t size)
{
    snprintf(buf, size, "%s%s", o->prefix, key);
    return buf;
}

int bd_opts_get_size(const struct bd_opts *o, const char *key, uint64_t def,
                     uint64_t *out, struct bd_err *err)
{
    char kb[256];
    const char *v = bd_opts_get(o, key);
    *out = def;
    if (!v)
        return -ENOENT;
    int r = bd_parse_size(v, out);
    if (r < 0) {
        *out = def;
        return bd_err_set(err, EINVAL, "option '%s': '%s' is not a size; use "
                          "bytes or a suffix such as 512, 64K, 1M, 2G",
                          full_key(o, key, kb, sizeof(kb)), v);
    }
    return 0;
}

int bd_opts_get_bool(const struct bd_opts *o, const char *key, bool def,
                     bool *out, struct bd_err *err)
{
    char kb[256];
    const char *v = bd_opts_get(o, key);
    *out = def;
    if (!v)
        return -ENOENT;
    if (!*v || !strcasecmp(v, "on") || !strcasecmp(v, "true") ||
        !strcasecmp(v, "yes") || !strcmp(v, "1")) {
        *out = true;
    } else if (!strcasecmp(v, "off") || !strcasecmp(v, "false") ||
               !strcasecmp(v, "no") || !strcmp(v, "0")) {
        *out = false;
    } else {
        return bd_err_set(err, EINVAL, "option '%s': '%s' is not on or off",
                          full_key(o, key, kb, sizeof(kb)), v);
    }
    return 0;
}

int bd_opts_get_enum(const struct bd_opts *o, const char *key,
                     const char *const *choices, int def, struct bd_err *err)
{
    char kb[256], list[512] = "";
    const char *v = bd_opts_get(o, key);
    if (!v)
        return def;
    for (int i = 0; choices[i]; i++) {
        if (bd_key_eq(v, choices[i]))
            return i;
    }
    for (int i = 0; choices[i]; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", choices[i]);
    }
    return bd_err_set(err, EINVAL, "option '%s': '%s' is not one of %s",
                      full_key(o, key, kb, sizeof(kb)), v, list);
}

/* ---- dotted strings ---- */

/* Copy the next element of a dotted string into a new buffer, undoing the
 * ",," escape; advance *p past the separating comma. */
static char *next_element(const char **p)
{
    const char *s = *p;
    size_t cap = strlen(s) + 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    while (*s) {
        if (*s == ',') {
            if (s[1] == ',') {
                out[n++] = ',';
                s += 2;
                continue;
            }
            s++;
            break;
        }
        out[n++] = *s++;
    }
    out[n] = '\0';
    *p = s;
    return out;
}

int bd_opts_parse_dotted(struct bd_opts *o, const char *s, const char *implied_key,
                         struct bd_err *err)
{
    const char *p = s;
    bool first = true;
    while (*p) {
        char *el = next_element(&p);
        if (!el)
            return bd_err_set(err, ENOMEM, "out of memory");
        char *eq = strchr(el, '=');
        int r;
        if (!eq) {
            if (!first || !implied_key) {
                r = bd_opts_set(o, el, "on");
            } else {
                r = bd_opts_set(o, implied_key, el);
            }
        } else {
            *eq = '\0';
            if (!*el) {
                free(el);
                return bd_err_set(err, EINVAL, "'%s': an option has an empty "
                                  "name before '='", s);
            }
            for (const char *c = el; *c; c++) {
                if (!isalnum((unsigned char)*c) && !strchr("._-", *c)) {
                    r = bd_err_set(err, EINVAL, "'%s': '%s' is not a valid "
                                   "option name", s, el);
                    free(el);
                    return r;
                }
            }
            r = bd_opts_set(o, el, eq + 1);
        }
        free(el);
        if (r < 0)
            return bd_err_set(err, -r, "out of memory");
        first = false;
    }
    return 0;
}

/* ---- did you mean ---- */

static unsigned edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    unsigned d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            char x = a[i - 1] == '-' ? '_' : a[i - 1];
            char y = b[j - 1] == '-' ? '_' : b[j - 1];
            unsigned c = d[i - 1][j - 1] + (x != y);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    }
    return d[la][lb];
}

const char *bd_suggest(const char *word, const char *const *choices)
{
    const char *best = NULL;
    unsigned bestd = 99, limit = strlen(word) <= 4 ? 1 : (strlen(word) <= 8 ? 2 : 3);
    for (size_t i = 0; choices && choices[i]; i++) {
        unsigned d = edit_distance(word, choices[i]);
        if (d < bestd) {
            bestd = d;
            best = choices[i];
        }
    }
    return bestd <= limit ? best : NULL;
}

static const char *const core_node_keys[] = {
    "driver", "filename", "file", "backing", "node-name", "read-only",
    "discard", "cache", "locking", "aio", NULL,
};

int bd_opts_check_unused(struct bd_opts *root, struct bd_err *err)
{
    struct bd_opt_tree *t = root->tree;
    for (size_t i = 0; i < t->n; i++) {
        struct bd_opt_entry *e = &t->v[i];
        if (e->used)
            continue;
        /* The longest owner prefix decides whose option this was. */
        const struct bd_opt_owner *own = NULL;
        for (size_t j = 0; j < t->nowners; j++) {
            size_t pl = strlen(t->owners[j].prefix);
            if (strncmp(e->key, t->owners[j].prefix, pl) == 0 &&
                (!own || pl > strlen(own->prefix)))
                own = &t->owners[j];
        }
        const char *name = own ? e->key + strlen(own->prefix) : e->key;
        const char *hint = own ? bd_suggest(name, own->drv->options) : NULL;
        if (!hint)
            hint = bd_suggest(name, core_node_keys);
        char dym[160] = "";
        if (hint)
            snprintf(dym, sizeof(dym), " (did you mean '%s'?)", hint);
        return bd_err_set(err, EINVAL, "unknown option '%s'%s%s%s", e->key,
                          own ? " for " : "", own ? own->drv->name : "", dym);
    }
    return 0;
}
