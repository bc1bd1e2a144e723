/*
 * Where an NBD export is: parse NBD URIs (the NBD URI specification), QEMU's
 * legacy "nbd:host:port[:exportname=...]" strings, and check the option
 * values. It does not connect; nbd.c does.
 */
#include "nbd.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const nbdt_keys[NBDT_NKEYS + 1] = {
    [NBDT_TYPE] = "server.type",
    [NBDT_HOST] = "server.host",
    [NBDT_PORT] = "server.port",
    [NBDT_PATH] = "server.path",
    [NBDT_EXPORT] = "export",
    [NBDT_TLS] = "tls",
    [NBDT_TLS_CERTS] = "tls-certificates",
    [NBDT_TLS_PSK] = "tls-psk-file",
    [NBDT_TLS_USER] = "tls-username",
    [NBDT_TLS_VERIFY] = "tls-verify-peer",
    [NBDT_CONNECT_TIMEOUT] = "connect-timeout",
    [NBDT_TIMEOUT] = "timeout",
    [NBDT_RETRIES] = "reconnect-retries",
    [NBDT_CONNECTIONS] = "connections",
    [NBDT_REPLAY] = "replay-buffer",
    [NBDT_NKEYS] = NULL,
};

/* Query parameters may name these options, plus "socket". */
static const enum nbdt_key query_keys[] = {
    NBDT_TLS_CERTS, NBDT_TLS_PSK, NBDT_TLS_USER, NBDT_TLS_VERIFY,
    NBDT_CONNECT_TIMEOUT, NBDT_TIMEOUT, NBDT_RETRIES, NBDT_CONNECTIONS,
    NBDT_REPLAY,
};

void nbdt_free(struct nbdt *t)
{
    for (int i = 0; i < NBDT_NKEYS; i++) {
        free(t->v[i]);
        t->v[i] = NULL;
    }
}

int nbdt_set(struct nbdt *t, enum nbdt_key k, const char *val)
{
    char *d = strdup(val);
    if (!d)
        return -ENOMEM;
    free(t->v[k]);
    t->v[k] = d;
    return 0;
}

static int set_n(struct nbdt *t, enum nbdt_key k, const char *s, size_t len)
{
    char *d = strndup(s, len);
    if (!d)
        return -ENOMEM;
    free(t->v[k]);
    t->v[k] = d;
    return 0;
}

static int set_decoded(struct nbdt *t, enum nbdt_key k, const char *s, size_t len,
                       const char *src, const char *what, struct bd_err *err)
{
    char *d;
    int r = bd_percent_decode_n(s, len, &d);
    if (r == -EINVAL)
        return bd_err_set(err, EINVAL, "%s: bad percent escape in the %s",
                          src, what);
    if (r < 0)
        return r;
    free(t->v[k]);
    t->v[k] = d;
    return 0;
}

/* host[:port] or [v6]:port from s[0..len). */
static int parse_hostport(struct nbdt *t, const char *s, size_t len,
                          const char *src, struct bd_err *err)
{
    const char *host, *port;
    size_t hlen, plen;
    int r = bd_hostport_split(s, len, &host, &hlen, &port, &plen, src, err);
    if (r < 0)
        return r;
    if (!hlen)
        return bd_err_set(err, EINVAL, "%s: no server host name; write "
                          "nbd://HOST[:PORT]/EXPORT or "
                          "nbd+unix:///EXPORT?socket=PATH", src);
    r = set_decoded(t, NBDT_HOST, host, hlen, src, "host name", err);
    if (r < 0)
        return r;
    if (port) {
        if (bd_port_parse(port, plen) < 0)
            return bd_err_set(err, EINVAL, "%s: bad port '%.*s'; a port is a "
                              "number from 1 to 65535", src, (int)plen, port);
        return set_n(t, NBDT_PORT, port, plen);
    }
    return 0;
}

/* QEMU's "nbd:unix:PATH[:exportname=N]" and "nbd:HOST[:PORT][:exportname=N]". */
static int parse_legacy(const char *src, struct nbdt *t, struct bd_err *err)
{
    const char *rest = src + 4, *exp = strstr(rest, ":exportname=");
    size_t len = exp ? (size_t)(exp - rest) : strlen(rest);
    int r;

    if (exp) {
        r = nbdt_set(t, NBDT_EXPORT, exp + strlen(":exportname="));
        if (r < 0)
            return r;
    }
    if (strncmp(rest, "unix:", 5) == 0) {
        if (len <= 5)
            return bd_err_set(err, EINVAL, "%s: no socket path after "
                              "'nbd:unix:'", src);
        r = nbdt_set(t, NBDT_TYPE, "unix");
        return r < 0 ? r : set_n(t, NBDT_PATH, rest + 5, len - 5);
    }
    r = nbdt_set(t, NBDT_TYPE, "inet");
    if (r < 0)
        return r;
    /* Only one ':' may separate host and port outside brackets. */
    const char *c = memchr(rest, ':', len);
    if (*rest != '[' && c && memchr(c + 1, ':', len - (size_t)(c + 1 - rest)))
        return bd_err_set(err, EINVAL, "%s: expected nbd:HOST:PORT"
                          "[:exportname=NAME] or nbd:unix:PATH"
                          "[:exportname=NAME]", src);
    return parse_hostport(t, rest, len, src, err);
}

static int parse_query(const char *q, bool is_unix, struct nbdt *t,
                       const char *src, struct bd_err *err)
{
    while (*q) {
        size_t len = strcspn(q, "&;");
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        const char *val = eq ? eq + 1 : q + len;
        size_t vlen = (size_t)(q + len - val);
        int r, key = -1;

        if (len == 0) {
            q++;
            continue;
        }
        if (klen == 6 && strncmp(q, "socket", 6) == 0) {
            if (!is_unix)
                return bd_err_set(err, EINVAL, "%s: 'socket=' belongs to "
                                  "nbd+unix:// URIs only", src);
            key = NBDT_PATH;
        }
        for (size_t i = 0; key < 0 && i < sizeof(query_keys) / sizeof(*query_keys); i++) {
            const char *name = nbdt_keys[query_keys[i]];
            if (strlen(name) == klen && strncmp(q, name, klen) == 0)
                key = (int)query_keys[i];
        }
        if (key < 0)
            return bd_err_set(err, EINVAL, "%s: unknown URI parameter '%.*s' "
                              "(nbd URIs take socket, tls-certificates, "
                              "tls-psk-file, tls-verify-peer, connect-timeout, "
                              "timeout, reconnect-retries, connections, "
                              "replay-buffer)",
                              src, (int)klen, q);
        r = set_decoded(t, (enum nbdt_key)key, val, vlen, src, "query", err);
        if (r < 0)
            return r;
        q += len;
        if (*q)
            q++;
    }
    return 0;
}

static int parse_url(const char *src, struct nbdt *t, struct bd_err *err)
{
    const char *sep = strstr(src, "://");
    size_t slen = (size_t)(sep - src);
    bool tls, is_unix;
    int r;

    if (slen == 3 && strncasecmp(src, "nbd", 3) == 0) {
        tls = false, is_unix = false;
    } else if (slen == 4 && strncasecmp(src, "nbds", 4) == 0) {
        tls = true, is_unix = false;
    } else if (slen == 8 && strncasecmp(src, "nbd+unix", 8) == 0) {
        tls = false, is_unix = true;
    } else if (slen == 9 && strncasecmp(src, "nbds+unix", 9) == 0) {
        tls = true, is_unix = true;
    } else if (slen == 7 && strncasecmp(src, "nbd+tcp", 7) == 0) {
        tls = false, is_unix = false;
    } else if (slen == 8 && strncasecmp(src, "nbds+tcp", 8) == 0) {
        tls = true, is_unix = false;
    } else {
        return bd_err_set(err, EPROTONOSUPPORT, "%s: unknown nbd URI scheme "
                          "'%.*s' (nbd, nbds, nbd+unix and nbds+unix are known)",
                          src, (int)slen, src);
    }
    if ((r = nbdt_set(t, NBDT_TYPE, is_unix ? "unix" : "inet")) < 0 ||
        (r = nbdt_set(t, NBDT_TLS, tls ? "on" : "off")) < 0)
        return r;

    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *c = auth; c < auth + alen; c++) {
        if (*c == '@')
            at = c;
    }
    if (at) {
        r = set_decoded(t, NBDT_TLS_USER, auth, (size_t)(at - auth), src,
                        "user name", err);
        if (r < 0)
            return r;
        alen -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    if (is_unix && alen)
        return bd_err_set(err, EINVAL, "%s: an nbd+unix:// URI has no host "
                          "part; write nbd+unix:///EXPORT?socket=PATH", src);
    if (!is_unix && (r = parse_hostport(t, auth, alen, src, err)) < 0)
        return r;

    const char *p = auth + alen;
    size_t plen = strcspn(p, "?#");
    /* The export name is the path without its first '/' (NBD URI spec). */
    if (plen > 0) {
        r = set_decoded(t, NBDT_EXPORT, p + 1, plen - 1, src, "export name", err);
        if (r < 0)
            return r;
    }
    p += plen;
    if (*p == '?') {
        size_t qlen = strcspn(p + 1, "#");
        char *q = strndup(p + 1, qlen);
        if (!q)
            return -ENOMEM;
        r = parse_query(q, is_unix, t, src, err);
        free(q);
        if (r < 0)
            return r;
        p += 1 + qlen;
    }
    if (*p == '#')
        return bd_err_set(err, EINVAL, "%s: nbd URIs take no '#' fragment", src);
    if (is_unix && !t->v[NBDT_PATH])
        return bd_err_set(err, EINVAL, "%s: no socket; write "
                          "nbd+unix:///EXPORT?socket=PATH", src);
    return 0;
}

int nbdt_parse(const char *src, struct nbdt *t, struct bd_err *err)
{
    if (strstr(src, "://"))
        return parse_url(src, t, err);
    if (strncasecmp(src, "nbd:", 4) == 0)
        return parse_legacy(src, t, err);
    return bd_err_set(err, EINVAL, "%s: not an nbd URI; write nbd://HOST[:PORT]"
                      "/EXPORT, nbd+unix:///EXPORT?socket=PATH or "
                      "nbd:HOST:PORT[:exportname=NAME]", src);
}

/* ---- validation ---------------------------------------------------------- */

/* 1 for on, 0 for off, -EINVAL otherwise: no out-parameter that an error
 * path could leave unset. */
static int get_bool(const char *v, const char *key, struct bd_err *err)
{
    static const char *const yes[] = {"on", "yes", "true", "1"};
    static const char *const no[] = {"off", "no", "false", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return bd_err_set(err, EINVAL, "nbd option %s='%s': expected on or off",
                      key, v);
}

static int get_uint(const char *v, const char *key, unsigned lo, unsigned hi,
                    unsigned *out, struct bd_err *err)
{
    char *end;
    unsigned long x;
    errno = 0;
    x = strtoul(v, &end, 10);
    if (!isdigit((unsigned char)*v) || *end || errno || x < lo || x > hi)
        return bd_err_set(err, EINVAL, "nbd option %s='%s': expected a whole "
                          "number from %u to %u", key, v, lo, hi);
    *out = (unsigned)x;
    return 0;
}

int nbdt_conf(const struct nbdt *t, struct nbd_conf *c, struct bd_err *err)
{
    const char *const *v = (const char *const *)t->v;
    unsigned x;
    int r;

    memset(c, 0, sizeof(*c));
    c->tls_verify = -1;
    c->connect_timeout_ms = 10000;
    c->timeout_ms = 30000;
    c->retries = 5;
    c->conns = 4;
    c->replay_bytes = 32u << 20;

    if (!v[NBDT_TYPE] || strcmp(v[NBDT_TYPE], "inet") == 0 ||
        strcmp(v[NBDT_TYPE], "tcp") == 0) {
        c->is_unix = false;
    } else if (strcmp(v[NBDT_TYPE], "unix") == 0) {
        c->is_unix = true;
    } else {
        return bd_err_set(err, EINVAL, "nbd option server.type='%s': expected "
                          "inet or unix", v[NBDT_TYPE]);
    }
    if (c->is_unix) {
        if (!v[NBDT_PATH] || !*v[NBDT_PATH])
            return bd_err_set(err, EINVAL, "nbd: server.type=unix needs "
                              "server.path=SOCKET");
        if (v[NBDT_HOST] || v[NBDT_PORT])
            return bd_err_set(err, EINVAL, "nbd: server.host and server.port "
                              "do not go with server.type=unix");
        c->path = v[NBDT_PATH];
    } else {
        if (!v[NBDT_HOST] || !*v[NBDT_HOST])
            return bd_err_set(err, EINVAL, "nbd: no server; give a URI "
                              "nbd://HOST[:PORT]/EXPORT or server.host=HOST");
        if (v[NBDT_PATH])
            return bd_err_set(err, EINVAL, "nbd: server.path (a unix socket) "
                              "needs server.type=unix");
        c->host = v[NBDT_HOST];
        if (c->host[strspn(c->host, "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789.-_:")] != '\0')
            return bd_err_set(err, EINVAL, "nbd: bad server host name '%s'",
                              c->host);
        c->port = v[NBDT_PORT] ? v[NBDT_PORT] : NBD_DEFAULT_PORT;
        if (bd_port_parse(c->port, strlen(c->port)) < 0)
            return bd_err_set(err, EINVAL, "nbd option server.port='%s': "
                              "expected a number from 1 to 65535", c->port);
    }
    c->export = v[NBDT_EXPORT] ? v[NBDT_EXPORT] : "";
    if (strlen(c->export) > 4096)
        return bd_err_set(err, EINVAL, "nbd: the export name is longer than "
                          "the 4096 bytes NBD allows");

    if (v[NBDT_TLS]) {
        if ((r = get_bool(v[NBDT_TLS], "tls", err)) < 0)
            return r;
        c->tls = r;
    }
    c->tls_certs = v[NBDT_TLS_CERTS];
    c->tls_psk = v[NBDT_TLS_PSK];
    c->tls_user = v[NBDT_TLS_USER];
    /* Naming credentials means TLS, as with qemu's tls-creds. */
    if (!v[NBDT_TLS] && (c->tls_certs || c->tls_psk))
        c->tls = true;
    if (!c->tls && (c->tls_certs || c->tls_psk))
        return bd_err_set(err, EINVAL, "nbd: tls-certificates and tls-psk-file "
                          "need TLS; use nbds:// or tls=on");
    if (c->tls_certs && c->tls_psk)
        return bd_err_set(err, EINVAL, "nbd: give tls-certificates or "
                          "tls-psk-file, not both");
    if (v[NBDT_TLS_VERIFY]) {
        if ((r = get_bool(v[NBDT_TLS_VERIFY], "tls-verify-peer", err)) < 0)
            return r;
        c->tls_verify = r;
    }
    if (v[NBDT_CONNECT_TIMEOUT]) {
        if ((r = get_uint(v[NBDT_CONNECT_TIMEOUT], "connect-timeout", 1, 3600,
                          &x, err)) < 0)
            return r;
        c->connect_timeout_ms = x * 1000;
    }
    if (v[NBDT_TIMEOUT]) {
        if ((r = get_uint(v[NBDT_TIMEOUT], "timeout", 1, 3600, &x, err)) < 0)
            return r;
        c->timeout_ms = x * 1000;
    }
    if (v[NBDT_RETRIES] &&
        (r = get_uint(v[NBDT_RETRIES], "reconnect-retries", 0, 100,
                      &c->retries, err)) < 0)
        return r;
    if (v[NBDT_REPLAY]) {
        uint64_t bytes;
        if (bd_parse_size(v[NBDT_REPLAY], &bytes) < 0 || bytes > (1u << 30))
            return bd_err_set(err, EINVAL, "nbd option replay-buffer='%s': "
                              "expected a size up to 1G (0 turns it off)",
                              v[NBDT_REPLAY]);
        c->replay_bytes = bytes;
    }
    if (v[NBDT_CONNECTIONS] &&
        (r = get_uint(v[NBDT_CONNECTIONS], "connections", 1, NBD_MAX_CONNS,
                      &c->conns, err)) < 0)
        return r;
    return 0;
}

char *nbdt_display(const struct nbd_conf *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "%s%s://", c->tls ? "nbds" : "nbd", c->is_unix ? "+unix" : "");
    if (!c->is_unix) {
        if (strchr(c->host, ':'))
            fprintf(f, "[%s]", c->host);
        else
            fputs(c->host, f);
        if (strcmp(c->port, NBD_DEFAULT_PORT) != 0)
            fprintf(f, ":%s", c->port);
    }
    fputc('/', f);
    bd_percent_encode(f, c->export, "/:@!$&'()*+,;=");
    if (c->is_unix) {
        fputs("?socket=", f);
        bd_percent_encode(f, c->path, "/");
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
