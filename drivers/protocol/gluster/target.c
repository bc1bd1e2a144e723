/*
 * Where a gluster image is: parse gluster URIs and the dotted/JSON option
 * form (volume, path, a list of servers, debug, logfile) into struct glt,
 * and check it is complete. It does not connect; gluster.c does.
 */
#include "gluster.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const transports[] = { "tcp", "unix", "rdma", NULL };

const char *glt_transport_name(enum glt_transport tr)
{
    return transports[tr];
}

void glt_free(struct glt *t)
{
    free(t->volume);
    free(t->path);
    free(t->logfile);
    for (unsigned i = 0; i < GLT_MAX_SERVERS; i++) {
        free(t->srv[i].host);
        free(t->srv[i].path);
    }
    memset(t, 0, sizeof(*t));
    t->debug = -1;
}

static int set_str(char **dst, const char *s, size_t len)
{
    char *d = strndup(s, len);
    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

static int set_decoded(char **dst, const char *s, size_t len, const char *src,
                       const char *what, struct bd_err *err)
{
    char *d;
    int r = bd_percent_decode_n(s, len, &d);
    if (r == -EINVAL)
        return bd_err_set(err, EINVAL, "%s: bad percent escape in the %s",
                          src, what);
    if (r < 0)
        return r;
    free(*dst);
    *dst = d;
    return 0;
}

static int parse_hostport(struct glt_server *sv, const char *s, size_t len,
                          const char *src, struct bd_err *err)
{
    const char *host, *port;
    size_t hlen, plen;
    int r = bd_hostport_split(s, len, &host, &hlen, &port, &plen, src, err);
    if (r < 0)
        return r;
    if (!hlen)
        return bd_err_set(err, EINVAL, "%s: no server host name; write "
                          "gluster://HOST[:PORT]/VOLUME/PATH", src);
    r = set_decoded(&sv->host, host, hlen, src, "host name", err);
    if (r < 0)
        return r;
    sv->port = GLT_DEFAULT_PORT;
    if (port && (sv->port = bd_port_parse(port, plen)) < 0)
        return bd_err_set(err, EINVAL, "%s: bad port '%.*s'; a port is a "
                          "number from 1 to 65535", src, (int)plen, port);
    return 0;
}

static int parse_query(const char *q, size_t qlen, struct glt_server *sv,
                       const char *src, struct bd_err *err)
{
    const char *end = q + qlen;
    while (q < end) {
        size_t len = strcspn(q, "&;");
        if (q + len > end)
            len = (size_t)(end - q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        if (len == 0) {
            q++;
            continue;
        }
        if (klen != 6 || strncmp(q, "socket", 6) != 0)
            return bd_err_set(err, EINVAL, "%s: unknown URI parameter '%.*s' "
                              "(gluster URIs take only socket=)", src,
                              (int)klen, q);
        if (sv->type != GLT_UNIX)
            return bd_err_set(err, EINVAL, "%s: 'socket=' belongs to "
                              "gluster+unix:// URIs only", src);
        const char *val = eq ? eq + 1 : q + len;
        int r = set_decoded(&sv->path, val, (size_t)(q + len - val), src,
                            "socket path", err);
        if (r < 0)
            return r;
        q += len;
        if (q < end)
            q++;
    }
    return 0;
}

int glt_parse_uri(const char *src, struct glt *t, struct bd_err *err)
{
    const char *sep = strstr(src, "://");
    struct glt_server *sv = &t->srv[0];
    int r;

    if (!sep)
        return bd_err_set(err, EINVAL, "%s: not a gluster URI; write "
                          "gluster://HOST[:PORT]/VOLUME/PATH or "
                          "gluster+unix:///VOLUME/PATH?socket=SOCKET", src);
    size_t slen = (size_t)(sep - src);
    if (slen == 7 && strncasecmp(src, "gluster", 7) == 0)
        sv->type = GLT_TCP;
    else if (slen == 11 && strncasecmp(src, "gluster+tcp", 11) == 0)
        sv->type = GLT_TCP;
    else if (slen == 12 && strncasecmp(src, "gluster+unix", 12) == 0)
        sv->type = GLT_UNIX;
    else if (slen == 12 && strncasecmp(src, "gluster+rdma", 12) == 0)
        sv->type = GLT_RDMA;
    else
        return bd_err_set(err, EPROTONOSUPPORT, "%s: unknown gluster URI "
                          "scheme '%.*s' (gluster, gluster+tcp, gluster+unix "
                          "and gluster+rdma are known)", src, (int)slen, src);
    /* The URI names one server; it replaces any list given before. */
    for (unsigned i = 0; i < GLT_MAX_SERVERS; i++) {
        free(t->srv[i].host);
        free(t->srv[i].path);
        t->srv[i].host = t->srv[i].path = NULL;
    }
    t->nsrv = 1;

    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen))
        return bd_err_set(err, EINVAL, "%s: gluster URIs take no user name",
                          src);
    if (sv->type == GLT_UNIX) {
        if (alen)
            return bd_err_set(err, EINVAL, "%s: a gluster+unix:// URI has no "
                              "host part; write gluster+unix:///VOLUME/PATH"
                              "?socket=SOCKET", src);
    } else if (alen == 0) {
        return bd_err_set(err, EINVAL, "%s: no server host name; write "
                          "gluster://HOST[:PORT]/VOLUME/PATH", src);
    } else if ((r = parse_hostport(sv, auth, alen, src, err)) < 0) {
        return r;
    }

    /* /volume/path: the volume is the first component. */
    const char *p = auth + alen;
    size_t plen = strcspn(p, "?#");
    const char *vol = p + (plen > 0 && *p == '/');
    const char *vend = vol;
    while (vend < p + plen && *vend != '/')
        vend++;
    const char *path = vend < p + plen ? vend + 1 : vend;
    while (path < p + plen && *path == '/')
        path++;
    if (vend == vol || path == p + plen)
        return bd_err_set(err, EINVAL, "%s: no %s; write "
                          "gluster://HOST[:PORT]/VOLUME/PATH", src,
                          vend == vol ? "volume name" : "image path after the "
                          "volume name");
    if ((r = set_decoded(&t->volume, vol, (size_t)(vend - vol), src,
                         "volume name", err)) < 0 ||
        (r = set_decoded(&t->path, path, (size_t)(p + plen - path), src,
                         "image path", err)) < 0)
        return r;
    p += plen;
    if (*p == '?') {
        size_t qlen = strcspn(p + 1, "#");
        if ((r = parse_query(p + 1, qlen, sv, src, err)) < 0)
            return r;
        p += 1 + qlen;
    }
    if (*p == '#')
        return bd_err_set(err, EINVAL, "%s: gluster URIs take no '#' fragment",
                          src);
    if (sv->type == GLT_UNIX && (!sv->path || !*sv->path))
        return bd_err_set(err, EINVAL, "%s: no socket; write "
                          "gluster+unix:///VOLUME/PATH?socket=SOCKET", src);
    return 0;
}

/* ---- options ------------------------------------------------------------- */

static bool server_given(const struct bd_opts *o, unsigned i)
{
    static const char *const keys[] = { "type", "host", "port", "path",
                                        "socket", NULL };
    char k[48];
    for (size_t j = 0; keys[j]; j++) {
        snprintf(k, sizeof(k), "server.%u.%s", i, keys[j]);
        if (bd_opts_has(o, k))
            return true;
    }
    return false;
}

static const char *sget(const struct bd_opts *o, unsigned i, const char *key)
{
    char k[48];
    snprintf(k, sizeof(k), "server.%u.%s", i, key);
    return bd_opts_get(o, k);
}

static int server_from_opts(const struct bd_opts *o, unsigned i,
                            struct glt_server *sv, struct bd_err *err)
{
    const char *type = sget(o, i, "type"), *host = sget(o, i, "host");
    const char *port = sget(o, i, "port"), *path = sget(o, i, "path");
    const char *sock = sget(o, i, "socket");
    int r;

    if (!type || strcmp(type, "tcp") == 0 || strcmp(type, "inet") == 0) {
        sv->type = GLT_TCP;
    } else if (strcmp(type, "unix") == 0) {
        sv->type = GLT_UNIX;
    } else if (strcmp(type, "rdma") == 0) {
        sv->type = GLT_RDMA;
    } else {
        return bd_err_set(err, EINVAL, "gluster option server.%u.type='%s': "
                          "expected tcp, unix or rdma", i, type);
    }
    if (sv->type == GLT_UNIX) {
        if (path && sock)
            return bd_err_set(err, EINVAL, "gluster: give server.%u.path or "
                              "server.%u.socket, not both", i, i);
        if (!path)
            path = sock;
        if (!path || !*path)
            return bd_err_set(err, EINVAL, "gluster: server.%u.type=unix "
                              "needs server.%u.path=SOCKET", i, i);
        if (host || port)
            return bd_err_set(err, EINVAL, "gluster: server.%u.host and "
                              "server.%u.port do not go with a unix server",
                              i, i);
        return set_str(&sv->path, path, strlen(path));
    }
    if (path || sock)
        return bd_err_set(err, EINVAL, "gluster: server.%u.path (a unix "
                          "socket) needs server.%u.type=unix", i, i);
    if (!host || !*host)
        return bd_err_set(err, EINVAL, "gluster: server.%u needs host=HOST "
                          "(or type=unix and path=SOCKET)", i);
    if (host[strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789.-_:")] != '\0')
        return bd_err_set(err, EINVAL, "gluster: bad server host name '%s'",
                          host);
    sv->port = GLT_DEFAULT_PORT;
    if (port && (sv->port = bd_port_parse(port, strlen(port))) < 0)
        return bd_err_set(err, EINVAL, "gluster option server.%u.port='%s': "
                          "expected a number from 1 to 65535", i, port);
    r = set_str(&sv->host, host, strlen(host));
    return r;
}

int glt_from_opts(const struct bd_opts *o, struct glt *t, struct bd_err *err)
{
    const char *fn = bd_opts_get(o, "filename");
    const char *v;
    int r;

    /* A URI in filename next to volume, path and servers only names the
     * node (siblings of an image, see gluster.c): the options decide. */
    bool complete = bd_opts_has(o, "volume") && bd_opts_has(o, "path") &&
                    server_given(o, 0);
    if (fn && *fn && strstr(fn, "://") && !complete &&
        (r = glt_parse_uri(fn, t, err)) < 0)
        return r;
    if (server_given(o, 0)) {
        unsigned n = 0;
        for (unsigned i = 0; i < GLT_MAX_SERVERS; i++) {
            free(t->srv[i].host);
            free(t->srv[i].path);
            t->srv[i].host = t->srv[i].path = NULL;
        }
        while (n < GLT_MAX_SERVERS && server_given(o, n)) {
            if ((r = server_from_opts(o, n, &t->srv[n], err)) < 0)
                return r;
            n++;
        }
        if (n == GLT_MAX_SERVERS && server_given(o, n))
            return bd_err_set(err, EINVAL, "gluster: more than %u servers",
                              GLT_MAX_SERVERS);
        t->nsrv = n;
    } else if (server_given(o, 1)) {
        return bd_err_set(err, EINVAL, "gluster: the server list starts at "
                          "server.0");
    }
    if ((v = bd_opts_get(o, "volume")) && (r = set_str(&t->volume, v, strlen(v))) < 0)
        return r;
    if ((v = bd_opts_get(o, "path"))) {
        while (*v == '/')
            v++;
        if ((r = set_str(&t->path, v, strlen(v))) < 0)
            return r;
    }
    if ((v = bd_opts_get(o, "logfile")) && (r = set_str(&t->logfile, v, strlen(v))) < 0)
        return r;
    if ((v = bd_opts_get(o, "debug"))) {
        if (!isdigit((unsigned char)v[0]) || v[1] != '\0')
            return bd_err_set(err, EINVAL, "gluster option debug='%s': "
                              "expected a level from 0 (off) to 9 (trace)", v);
        t->debug = v[0] - '0';
    }
    if (t->nsrv == 0)
        return bd_err_set(err, EINVAL, "gluster: no server; give a URI "
                          "gluster://HOST[:PORT]/VOLUME/PATH or "
                          "server.0.host=HOST");
    if (!t->volume || !*t->volume)
        return bd_err_set(err, EINVAL, "gluster: no volume; give a URI "
                          "gluster://HOST/VOLUME/PATH or volume=NAME");
    if (strchr(t->volume, '/'))
        return bd_err_set(err, EINVAL, "gluster: bad volume name '%s'",
                          t->volume);
    if (!t->path || !*t->path)
        return bd_err_set(err, EINVAL, "gluster: no image path; give a URI "
                          "gluster://HOST/VOLUME/PATH or path=PATH");
    return 0;
}

int glt_to_opts(const struct glt *t, struct bd_opts *o)
{
    char k[48], port[8];
    int r = bd_opts_set(o, "volume", t->volume);
    if (r == 0)
        r = bd_opts_set(o, "path", t->path);
    for (unsigned i = 0; r == 0 && i < t->nsrv; i++) {
        const struct glt_server *sv = &t->srv[i];
        snprintf(k, sizeof(k), "server.%u.type", i);
        r = bd_opts_set(o, k, glt_transport_name(sv->type));
        if (r == 0 && sv->type == GLT_UNIX) {
            snprintf(k, sizeof(k), "server.%u.path", i);
            r = bd_opts_set(o, k, sv->path);
        } else if (r == 0) {
            snprintf(k, sizeof(k), "server.%u.host", i);
            r = bd_opts_set(o, k, sv->host);
            snprintf(k, sizeof(k), "server.%u.port", i);
            snprintf(port, sizeof(port), "%d", sv->port);
            if (r == 0)
                r = bd_opts_set(o, k, port);
        }
    }
    return r;
}

char *glt_display(const struct glt *t)
{
    const struct glt_server *sv = &t->srv[0];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    if (t->nsrv == 0) {
        fprintf(f, "gluster:///%s/%s", t->volume ? t->volume : "",
                t->path ? t->path : "");
    } else if (sv->type == GLT_UNIX) {
        fprintf(f, "gluster+unix:///%s/%s?socket=%s", t->volume, t->path,
                sv->path);
    } else {
        fprintf(f, "gluster%s://%s%s%s", sv->type == GLT_RDMA ? "+rdma" : "",
                strchr(sv->host, ':') ? "[" : "", sv->host,
                strchr(sv->host, ':') ? "]" : "");
        if (sv->port != GLT_DEFAULT_PORT)
            fprintf(f, ":%d", sv->port);
        fprintf(f, "/%s/%s", t->volume, t->path);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
