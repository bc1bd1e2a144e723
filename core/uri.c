/*
 * SOURCE strings: classify (file, URI, json:, dotted options), split URIs
 * into parts, and turn any of them into the option tree. Which driver a URI
 * scheme belongs to is the registry's business; parsing the rest of a
 * protocol's URI is the protocol driver's (its bd_uri_ops.parse).
 */
#include "bd-internal.h"
#include "registry.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *bd_percent_decode(const char *s)
{
    size_t n = 0;
    char *out = malloc(strlen(s) + 1);
    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s == '%' && isxdigit((unsigned char)s[1]) &&
            isxdigit((unsigned char)s[2])) {
            char hex[3] = { s[1], s[2], 0 };
            char c = (char)strtol(hex, NULL, 16);
            if (c == '\0') {
                free(out);
                return NULL;
            }
            out[n++] = c;
            s += 2;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int bd_percent_decode_n(const char *s, size_t len, char **out)
{
    char *d = malloc(len + 1), *o = d;
    if (!d)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int v = -1;
        if (i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0)
            v = hexval(s[i + 1]) << 4 | hexval(s[i + 2]);
        if (v <= 0) {
            free(d);
            return -EINVAL;
        }
        *o++ = (char)v;
        i += 2;
    }
    *o = '\0';
    *out = d;
    return 0;
}

void bd_percent_encode(FILE *f, const char *s, const char *keep)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || strchr("-._~", ch) || (keep && strchr(keep, ch)))
            fputc(ch, f);
        else
            fprintf(f, "%%%02X", ch);
    }
}

int bd_port_parse(const char *s, size_t len)
{
    long v = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : -1;
}

int bd_hostport_split(const char *s, size_t len, const char **host,
                      size_t *hlen, const char **port, size_t *plen,
                      const char *src, struct bd_err *err)
{
    const char *end = s + len, *hend;
    *host = s;
    *port = NULL;
    *plen = 0;
    if (len > 0 && *s == '[') {
        hend = memchr(s, ']', len);
        if (!hend)
            return bd_err_set(err, EINVAL, "%s: missing ']' after the IPv6 "
                              "address", src);
        *host = s + 1;
        if (hend + 1 < end) {
            if (hend[1] != ':')
                return bd_err_set(err, EINVAL, "%s: unexpected text after "
                                  "the IPv6 address", src);
            *port = hend + 2;
        }
    } else {
        hend = memchr(s, ':', len);
        if (hend)
            *port = hend + 1;
        else
            hend = end;
    }
    *hlen = (size_t)(hend - *host);
    if (*port)
        *plen = (size_t)(end - *port);
    return 0;
}

/* scheme ":" ... : RFC 3986 scheme characters. */
static size_t scheme_len(const char *s)
{
    size_t i = 0;
    if (!isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return s[i] == ':' ? i : 0;
}

void bd_uri_free(struct bd_uri *u)
{
    free(u->scheme);
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->path);
    free(u->query);
    memset(u, 0, sizeof(*u));
    u->port = -1;
}

int bd_uri_parse(const char *s, struct bd_uri *u, struct bd_err *err)
{
    memset(u, 0, sizeof(*u));
    u->port = -1;
    size_t sl = scheme_len(s);
    if (!sl || strncmp(s + sl, "://", 3) != 0)
        return bd_err_set(err, EINVAL, "'%s' is not a URI of the form "
                          "scheme://[user@]host[:port]/path", s);
    u->scheme = strndup(s, sl);
    for (char *c = u->scheme; c && *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *p = s + sl + 3;
    const char *auth_end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(auth_end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        char *user = strndup(p, (size_t)((colon ? colon : at) - p));
        u->user = user ? bd_percent_decode(user) : NULL;
        free(user);
        if (colon) {
            char *pw = strndup(colon + 1, (size_t)(at - colon - 1));
            u->password = pw ? bd_percent_decode(pw) : NULL;
            free(pw);
        }
        p = at + 1;
    }
    const char *host_end;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(auth_end - p));
        if (!rb) {
            bd_uri_free(u);
            return bd_err_set(err, EINVAL, "'%s': unterminated '[' in the host", s);
        }
        u->host = strndup(p + 1, (size_t)(rb - p - 1));
        host_end = rb + 1;
    } else {
        host_end = p;
        while (host_end < auth_end && *host_end != ':')
            host_end++;
        u->host = strndup(p, (size_t)(host_end - p));
    }
    if (host_end < auth_end && *host_end == ':') {
        const char *ps = host_end + 1;
        char *end;
        long port = strtol(ps, &end, 10);
        if (end == ps || end != auth_end || port < 0 || port > 65535) {
            bd_uri_free(u);
            return bd_err_set(err, EINVAL, "'%s': '%.*s' is not a port number "
                              "(0-65535)", s, (int)(auth_end - ps), ps);
        }
        u->port = (int)port;
    } else if (host_end != auth_end) {
        bd_uri_free(u);
        return bd_err_set(err, EINVAL, "'%s': bad host part", s);
    }
    const char *q = strchr(auth_end, '?');
    const char *frag = strchr(auth_end, '#');
    if (q && frag && frag < q)
        q = NULL;                   /* a '?' inside the fragment */
    const char *path_end = frag && (!q || frag < q) ? frag
                           : q ? q : auth_end + strlen(auth_end);
    char *rawpath = strndup(auth_end, (size_t)(path_end - auth_end));
    u->path = rawpath ? bd_percent_decode(rawpath) : NULL;
    free(rawpath);
    if (q)
        u->query = frag && frag > q ? strndup(q + 1, (size_t)(frag - q - 1))
                                    : strdup(q + 1);
    if (!u->scheme || !u->host || !u->path || (q && !u->query)) {
        bd_uri_free(u);
        return bd_err_set(err, EINVAL, "'%s': malformed URI (bad percent "
                          "escape or out of memory)", s);
    }
    return 0;
}

char *bd_uri_query_get(const char *query, const char *key)
{
    size_t kl = strlen(key);
    const char *p = query;
    while (p && *p) {
        const char *end = p + strcspn(p, "&;");
        if ((size_t)(end - p) > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *raw = strndup(p + kl + 1, (size_t)(end - p - kl - 1));
            char *v = raw ? bd_percent_decode(raw) : NULL;
            free(raw);
            return v;
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

static bool looks_dotted(const char *src)
{
    const char *eq = strchr(src, '=');
    if (!eq || eq == src)
        return false;
    for (const char *c = src; c < eq; c++) {
        if (!isalnum((unsigned char)*c) && !strchr("._-", *c))
            return false;
    }
    return true;
}

enum bd_source_kind bd_source_classify(const char *src, char **scheme)
{
    struct stat st;
    if (scheme)
        *scheme = NULL;
    if (strncmp(src, "json:", 5) == 0)
        return BD_SRC_JSON;
    size_t sl = scheme_len(src);
    if (sl > 1 && stat(src, &st) != 0) {
        /* "nbd:host:port" and "scheme://..." alike; a one-letter scheme
         * would be a Windows drive, which we do not take. */
        if (scheme)
            *scheme = strndup(src, sl);
        return BD_SRC_URI;
    }
    if (stat(src, &st) != 0 && looks_dotted(src))
        return BD_SRC_DOTTED;
    return BD_SRC_FILE;
}

/* Schemes QEMU knows. One that no driver in the registry takes (its driver is
 * not written yet, or was left out for a missing library) is "not part of
 * this build"; any other is unknown. Neither is ever offered to the user:
 * what this build takes comes from the registry. */
static const char *const qemu_schemes[] = {
    "nbd", "nbds", "nbd+unix", "nbds+unix", "iscsi", "iser", "gluster",
    "gluster+tcp", "gluster+unix", "gluster+rdma", "ssh", "nvme", NULL,
};

static bool takes_uri(const struct bd_driver *drv)
{
    return drv->uri != NULL;
}

/* A URI that no driver in this build takes. */
static int scheme_not_built(const char *src, const char *scheme,
                            struct bd_err *err)
{
    char list[256];
    size_t n;

    for (size_t i = 0; qemu_schemes[i]; i++) {
        if (strcasecmp(qemu_schemes[i], scheme) == 0)
            return bd_err_set(err, EPROTONOSUPPORT, "%s: the '%s' protocol is "
                              "not part of this build of imgfuse yet", src,
                              scheme);
    }
    n = bd_driver_scheme_list(list, sizeof(list), "", takes_uri);
    if (n == 0)
        return bd_err_set(err, EPROTONOSUPPORT, "%s: unknown URI scheme '%s'; "
                          "imgfuse takes file names, /dev/ devices, json:{...} "
                          "and key=value options", src, scheme);
    return bd_err_set(err, EPROTONOSUPPORT, "%s: unknown URI scheme '%s'; "
                      "imgfuse takes file names, /dev/ devices, json:{...}, "
                      "key=value options and URIs of the %s protocol%s", src,
                      scheme, list, n == 1 ? "" : "s");
}

static int file_uri_to_opts(const char *src, struct bd_opts *o, struct bd_err *err)
{
    struct bd_uri u;
    int r = bd_uri_parse(src, &u, err);
    if (r < 0)
        return r;
    if (*u.host && strcmp(u.host, "localhost") != 0) {
        r = bd_err_set(err, EINVAL, "'%s': file:// URIs name local files; the "
                       "host part must be empty or localhost", src);
    } else if (u.query) {
        r = bd_err_set(err, EINVAL, "'%s': file:// URIs take no query", src);
    } else {
        r = bd_opts_set(o, "filename", u.path);
        if (r == 0)
            r = bd_opts_set(o, "file.driver", "file");
    }
    bd_uri_free(&u);
    return r;
}

int bd_source_to_opts(const char *src, struct bd_opts *o, struct bd_err *err)
{
    char *scheme = NULL;
    int r;

    if (!*src)
        return bd_err_set(err, EINVAL, "empty source name; give an image file, "
                          "a device or a URI");
    switch (bd_source_classify(src, &scheme)) {
    case BD_SRC_JSON:
        r = bd_opts_parse_json(o, src + 5, err);
        break;
    case BD_SRC_DOTTED:
        r = bd_opts_parse_dotted(o, src, "filename", err);
        break;
    case BD_SRC_URI: {
        const struct bd_driver *drv = bd_driver_for_scheme(scheme);
        bool is_url = strstr(src, "://") != NULL;
        if (strcasecmp(scheme, "file") == 0) {
            r = is_url ? file_uri_to_opts(src, o, err)
                       : bd_opts_set(o, "filename", src + 5);
        } else if (drv && drv->uri && drv->no_file) {
            /* a format's prefix ("fat:DIR"): options of the format itself */
            r = drv->uri->parse(src, o, err);
            if (r == 0)
                r = bd_opts_set(o, "driver", drv->name);
            if (r < 0 && err->errnum == 0)
                r = bd_err_set(err, -r, "%s: cannot parse this source", src);
        } else if (drv && drv->uri) {
            struct bd_opts *view = bd_opts_sub(o, "file");
            r = view ? drv->uri->parse(src, view, err) : -ENOMEM;
            if (r == 0)
                r = bd_opts_set(view, "driver", drv->name);
            bd_opts_free_view(view);
            if (r < 0 && err->errnum == 0)
                r = bd_err_set(err, -r, "%s: cannot parse this URI", src);
        } else if (!is_url) {
            /* "name:with:colons" that does not exist: a missing file. */
            r = bd_opts_set(o, "filename", src);
        } else {
            r = scheme_not_built(src, scheme, err);
        }
        break;
    }
    default:
        r = bd_opts_set(o, "filename", src);
    }
    free(scheme);
    return r;
}
