/*
 * ssh targets: "ssh://[user@]host[:port]/path[?query]" and dotted options
 * into validated connection settings, and host_key_check strings into the
 * digest to compare. No network and no libssh here.
 */
#include "ssh.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const sshc_keys[SSHC_NKEYS + 1] = {
    [SSHC_USER] = "user",
    [SSHC_HOST] = "host",
    [SSHC_PORT] = "port",
    [SSHC_PATH] = "path",
    [SSHC_HOST_KEY_CHECK] = "host_key_check",
    [SSHC_IDENTITY] = "identity",
    [SSHC_KNOWN_HOSTS] = "known_hosts",
    [SSHC_CONNECT_TIMEOUT] = "connect-timeout",
    [SSHC_TIMEOUT] = "timeout",
    [SSHC_NKEYS] = NULL,
};

void sshc_free(struct sshc *t)
{
    for (int k = 0; k < SSHC_NKEYS; k++) {
        free(t->v[k]);
        t->v[k] = NULL;
    }
}

int sshc_set(struct sshc *t, enum sshc_key k, const char *val)
{
    char *dup = strdup(val);
    if (!dup)
        return -ENOMEM;
    free(t->v[k]);
    t->v[k] = dup;
    return 0;
}

static int key_index(const char *name, size_t len)
{
    for (int k = 0; k < SSHC_NKEYS; k++) {
        if (strlen(sshc_keys[k]) == len && strncmp(sshc_keys[k], name, len) == 0)
            return k;
    }
    return -1;
}

/* Query keys that the URI itself decides are refused, so that one value
 * cannot be given twice in different places. */
static bool query_key_allowed(int k)
{
    return k != SSHC_USER && k != SSHC_HOST && k != SSHC_PORT && k != SSHC_PATH;
}

static int parse_query(const char *uri, const char *q, struct sshc *t,
                       struct bd_err *err)
{
    while (*q) {
        size_t len = strcspn(q, "&;");
        const char *eq = memchr(q, '=', len);
        if (len == 0) {
            q++;
            continue;
        }
        if (!eq)
            return bd_err_set(err, EINVAL, "%s: URI parameter '%.*s' has no "
                              "value (write key=value)", uri, (int)len, q);
        int k = key_index(q, (size_t)(eq - q));
        if (k < 0 || !query_key_allowed(k))
            return bd_err_set(err, EINVAL, "%s: unknown URI parameter '%.*s'; "
                              "ssh URIs take host_key_check, identity, "
                              "known_hosts, connect-timeout and timeout",
                              uri, (int)(eq - q), q);
        char *raw = strndup(eq + 1, (size_t)(q + len - eq - 1));
        char *val = raw ? bd_percent_decode(raw) : NULL;
        free(raw);
        if (!val)
            return bd_err_set(err, EINVAL, "%s: bad percent escape in URI "
                              "parameter '%s'", uri, sshc_keys[k]);
        free(t->v[k]);
        t->v[k] = val;
        q += len;
    }
    return 0;
}

int sshc_parse_uri(const char *uri, struct sshc *t, struct bd_err *err)
{
    struct bd_uri u;
    char port[16];
    int r;

    /* a fragment means nothing here, and a '#' in a file name is %23 */
    if (strchr(uri, '#'))
        return bd_err_set(err, EINVAL, "%s: ssh URIs take no '#' fragment; "
                          "write %%23 for a '#' in the path", uri);
    r = bd_uri_parse(uri, &u, err);
    if (r < 0)
        return r;
    if (strcmp(u.scheme, "ssh") != 0) {
        r = bd_err_set(err, EINVAL, "%s: not an ssh:// URI", uri);
    } else if (u.password) {
        r = bd_err_set(err, EINVAL, "%s: passwords in ssh URIs are not "
                       "supported; use ssh-agent or identity=KEYFILE", uri);
    } else if (!*u.host) {
        r = bd_err_set(err, EINVAL, "%s: no host in the URI; write "
                       "ssh://[user@]host[:port]/path", uri);
    } else if (!*u.path || strcmp(u.path, "/") == 0) {
        r = bd_err_set(err, EINVAL, "%s: no remote file in the URI; write "
                       "ssh://[user@]host[:port]/path", uri);
    } else if (u.port == 0) {
        r = bd_err_set(err, EINVAL, "%s: port 0 is not a valid ssh port", uri);
    }
    if (r == 0 && u.user && *u.user)
        r = sshc_set(t, SSHC_USER, u.user);
    if (r == 0)
        r = sshc_set(t, SSHC_HOST, u.host);
    if (r == 0 && u.port > 0) {
        snprintf(port, sizeof(port), "%d", u.port);
        r = sshc_set(t, SSHC_PORT, port);
    }
    if (r == 0)
        r = sshc_set(t, SSHC_PATH, u.path);
    if (r == -ENOMEM)
        r = bd_err_set(err, ENOMEM, "out of memory");
    if (r == 0 && u.query)
        r = parse_query(uri, u.query, t, err);
    bd_uri_free(&u);
    return r;
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Hex digits, optionally with ':' between bytes; exactly want bytes. */
static bool decode_hex(const char *s, uint8_t *out, size_t want)
{
    size_t n = 0;
    while (*s) {
        if (*s == ':' && n > 0) {
            s++;
            continue;
        }
        int hi = hex_val((unsigned char)s[0]);
        int lo = hi < 0 ? -1 : hex_val((unsigned char)s[1]);
        if (hi < 0 || lo < 0 || n == want)
            return false;
        out[n++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return n == want;
}

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64, padding optional; exactly want bytes. */
static bool decode_b64(const char *s, uint8_t *out, size_t want)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    size_t len = strlen(s);

    while (len > 0 && s[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == want)
                return false;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* leftover bits must be zero, as an encoder writes them */
    return n == want && (acc & ((1u << bits) - 1)) == 0;
}

int ssh_hkc_parse(const char *s, struct ssh_hkc *h, struct bd_err *err)
{
    static const struct {
        const char *prefix;
        enum ssh_hkc_type type;
        size_t len;
    } kinds[] = {
        {"md5:", SSH_HKC_MD5, 16},
        {"sha1:", SSH_HKC_SHA1, 20},
        {"sha256:", SSH_HKC_SHA256, 32},
    };

    memset(h, 0, sizeof(*h));
    if (!s || strcmp(s, "yes") == 0) {
        h->mode = SSH_HKC_KNOWN_HOSTS;
        return 0;
    }
    if (strcmp(s, "no") == 0) {
        h->mode = SSH_HKC_NONE;
        return 0;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (strncasecmp(s, kinds[i].prefix, pl) != 0)
            continue;
        const char *d = s + pl;
        /* "sha256:SHA256:..." when ssh-keygen's output is pasted whole */
        if (strncasecmp(d, kinds[i].prefix, pl) == 0)
            d += pl;
        h->mode = SSH_HKC_HASH;
        h->type = kinds[i].type;
        h->hash_len = kinds[i].len;
        if (decode_hex(d, h->hash, h->hash_len))
            return 0;
        if (h->type == SSH_HKC_SHA256 && decode_b64(d, h->hash, h->hash_len))
            return 0;
        return bd_err_set(err, EINVAL, "host_key_check '%s': expected %zu "
                          "bytes as hex digits%s", s, h->hash_len,
                          h->type == SSH_HKC_SHA256
                              ? " or base64 (as ssh-keygen -l prints it)" : "");
    }
    return bd_err_set(err, EINVAL, "host_key_check '%s': use yes, no, "
                      "md5:HEX, sha1:HEX or sha256:HEX|BASE64", s);
}

static int parse_uint(const char *what, const char *s, unsigned lo,
                      unsigned hi, unsigned *out, struct bd_err *err)
{
    char *end;
    unsigned long v;

    if (!s || !*s || !isdigit((unsigned char)*s))
        goto bad;
    v = strtoul(s, &end, 10);
    if (*end || v < lo || v > hi)
        goto bad;
    *out = (unsigned)v;
    return 0;
bad:
    return bd_err_set(err, EINVAL, "ssh: %s '%s' is not a number from %u to "
                      "%u", what, s ? s : "", lo, hi);
}

int sshc_conf(const struct sshc *t, struct ssh_conf *c, struct bd_err *err)
{
    int r;

    memset(c, 0, sizeof(*c));
    c->user = t->v[SSHC_USER] && *t->v[SSHC_USER] ? t->v[SSHC_USER] : NULL;
    c->host = t->v[SSHC_HOST];
    c->path = t->v[SSHC_PATH];
    c->identity = t->v[SSHC_IDENTITY];
    c->known_hosts = t->v[SSHC_KNOWN_HOSTS];
    c->port = SSH_DEFAULT_PORT;
    c->connect_timeout = SSH_DEFAULT_CONNECT_TIMEOUT;
    c->timeout = SSH_DEFAULT_TIMEOUT;
    if (!c->host || !*c->host)
        return bd_err_set(err, EINVAL, "ssh: no host given; use "
                          "ssh://[user@]host[:port]/path or host=");
    for (const char *h = c->host; *h; h++) {
        if (!isgraph((unsigned char)*h) || strchr("/?#@[]%", *h))
            return bd_err_set(err, EINVAL, "ssh: '%s' is not a host name or "
                              "address", c->host);
    }
    if (!c->path || !*c->path)
        return bd_err_set(err, EINVAL, "ssh: no remote file given; use "
                          "ssh://host/path or path=");
    if (t->v[SSHC_PORT] &&
        (r = parse_uint("port", t->v[SSHC_PORT], 1, 65535, &c->port, err)) < 0)
        return r;
    if (t->v[SSHC_CONNECT_TIMEOUT] &&
        (r = parse_uint("connect-timeout", t->v[SSHC_CONNECT_TIMEOUT], 1,
                        3600, &c->connect_timeout, err)) < 0)
        return r;
    if (t->v[SSHC_TIMEOUT] &&
        (r = parse_uint("timeout", t->v[SSHC_TIMEOUT], 1, 86400, &c->timeout,
                        err)) < 0)
        return r;
    return ssh_hkc_parse(t->v[SSHC_HOST_KEY_CHECK], &c->hkc, err);
}

char *sshc_display(const struct ssh_conf *c)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    if (!f)
        return NULL;
    fputs("ssh://", f);
    if (c->user) {
        bd_percent_encode(f, c->user, NULL);
        fputc('@', f);
    }
    /* URI hosts are not percent-decoded; sshc_conf refused the odd ones */
    fprintf(f, strchr(c->host, ':') ? "[%s]" : "%s", c->host);
    if (c->port != SSH_DEFAULT_PORT)
        fprintf(f, ":%u", c->port);
    if (c->path[0] != '/')
        fputc('/', f);
    bd_percent_encode(f, c->path, "/");
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
