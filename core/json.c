/*
 * json:{...} sources, flattened into the dotted option tree the way QEMU
 * does it: {"file": {"filename": "x"}} becomes file.filename=x, arrays
 * become key.0, key.1. Only what option trees need: no floats kept exact.
 */
#include "bd-internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jp {
    const char *s, *p;
    struct bd_opts *o;
    struct bd_err *err;
    unsigned depth;
};

static int jerr(struct jp *j, const char *what)
{
    return bd_err_set(j->err, EINVAL, "json: %s at offset %zu; check the "
                      "quoting of the json: source", what, (size_t)(j->p - j->s));
}

static void skip_ws(struct jp *j)
{
    while (isspace((unsigned char)*j->p))
        j->p++;
}

static int put_utf8(char *out, size_t *n, unsigned cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xe0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
    return 0;
}

static int parse_string(struct jp *j, char **out)
{
    if (*j->p != '"')
        return jerr(j, "expected a string");
    j->p++;
    size_t cap = strlen(j->p) + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return bd_err_set(j->err, ENOMEM, "out of memory");
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            char e = *j->p++;
            switch (e) {
            case '"': case '\\': case '/': buf[n++] = e; break;
            case 'b': buf[n++] = '\b'; break;
            case 'f': buf[n++] = '\f'; break;
            case 'n': buf[n++] = '\n'; break;
            case 'r': buf[n++] = '\r'; break;
            case 't': buf[n++] = '\t'; break;
            case 'u': {
                unsigned cp = 0;
                for (int i = 0; i < 4; i++) {
                    char h = *j->p++;
                    if (!isxdigit((unsigned char)h)) {
                        free(buf);
                        return jerr(j, "bad \\u escape");
                    }
                    cp = cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0'
                                              : (tolower(h) - 'a' + 10));
                }
                if (cp == 0) {
                    free(buf);
                    return jerr(j, "NUL character in a string");
                }
                put_utf8(buf, &n, cp);
                break;
            }
            default:
                free(buf);
                return jerr(j, "bad escape");
            }
        } else {
            buf[n++] = c;
        }
    }
    if (*j->p != '"') {
        free(buf);
        return jerr(j, "unterminated string");
    }
    j->p++;
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int parse_value(struct jp *j, const char *key);

static char *join_key(const char *key, const char *sub)
{
    char *k;
    if (asprintf(&k, "%s%s%s", key, *key ? "." : "", sub) < 0)
        return NULL;
    return k;
}

static int parse_object(struct jp *j, const char *key)
{
    j->p++;
    skip_ws(j);
    if (*j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        char *name, *k;
        skip_ws(j);
        int r = parse_string(j, &name);
        if (r < 0)
            return r;
        skip_ws(j);
        if (*j->p != ':') {
            free(name);
            return jerr(j, "expected ':'");
        }
        j->p++;
        k = join_key(key, name);
        free(name);
        if (!k)
            return bd_err_set(j->err, ENOMEM, "out of memory");
        r = parse_value(j, k);
        free(k);
        if (r < 0)
            return r;
        skip_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        return jerr(j, "expected ',' or '}'");
    }
}

static int parse_array(struct jp *j, const char *key)
{
    j->p++;
    skip_ws(j);
    if (*j->p == ']') {
        j->p++;
        return 0;
    }
    for (unsigned i = 0;; i++) {
        char idx[16], *k;
        snprintf(idx, sizeof(idx), "%u", i);
        k = join_key(key, idx);
        if (!k)
            return bd_err_set(j->err, ENOMEM, "out of memory");
        int r = parse_value(j, k);
        free(k);
        if (r < 0)
            return r;
        skip_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == ']') {
            j->p++;
            return 0;
        }
        return jerr(j, "expected ',' or ']'");
    }
}

static int set_leaf(struct jp *j, const char *key, const char *val)
{
    if (!*key)
        return jerr(j, "the top level must be an object");
    if (bd_opts_set(j->o, key, val) < 0)
        return bd_err_set(j->err, ENOMEM, "out of memory");
    return 0;
}

static int parse_value(struct jp *j, const char *key)
{
    int r;
    skip_ws(j);
    if (++j->depth > 64)
        return jerr(j, "nesting too deep");
    switch (*j->p) {
    case '{':
        r = parse_object(j, key);
        break;
    case '[':
        r = *key ? parse_array(j, key) : jerr(j, "the top level must be an object");
        break;
    case '"': {
        char *v;
        r = parse_string(j, &v);
        if (r == 0) {
            r = set_leaf(j, key, v);
            free(v);
        }
        break;
    }
    default:
        if (!strncmp(j->p, "true", 4)) {
            j->p += 4;
            r = set_leaf(j, key, "on");
        } else if (!strncmp(j->p, "false", 5)) {
            j->p += 5;
            r = set_leaf(j, key, "off");
        } else if (!strncmp(j->p, "null", 4)) {
            j->p += 4;
            r = 0;
        } else if (*j->p == '-' || isdigit((unsigned char)*j->p)) {
            const char *st = j->p;
            while (*j->p && strchr("+-0123456789.eE", *j->p))
                j->p++;
            char *num = strndup(st, (size_t)(j->p - st));
            if (!num)
                return bd_err_set(j->err, ENOMEM, "out of memory");
            r = set_leaf(j, key, num);
            free(num);
        } else {
            r = jerr(j, "unexpected character");
        }
    }
    j->depth--;
    return r;
}

int bd_opts_parse_json(struct bd_opts *o, const char *json, struct bd_err *err)
{
    struct jp j = { .s = json, .p = json, .o = o, .err = err };
    skip_ws(&j);
    if (*j.p != '{')
        return jerr(&j, "expected '{'");
    int r = parse_value(&j, "");
    if (r < 0)
        return r;
    skip_ws(&j);
    if (*j.p)
        return jerr(&j, "trailing characters after the object");
    return 0;
}
