/*
 * Where the iscsi driver logs in: the iscsi:// URL, the config file with
 * [iscsi] / [iscsi "IQN"] sections, the CHAP environment variables, and the
 * checks that turn all of them into one struct iscsi_conf. No networking
 * here. Secrets are never put into a message and are wiped when freed.
 */
#include "iscsi.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *const iscsit_keys[ISCSIT_NKEYS + 1] = {
    [ISCSIT_PORTAL] = "portal",
    [ISCSIT_TARGET] = "target",
    [ISCSIT_LUN] = "lun",
    [ISCSIT_USER] = "user",
    [ISCSIT_PASSWORD] = "password",
    [ISCSIT_TARGET_USER] = "target-user",
    [ISCSIT_TARGET_PASSWORD] = "target-password",
    [ISCSIT_INITIATOR] = "initiator-name",
    [ISCSIT_DIGEST] = "header-digest",
    [ISCSIT_CONFIG] = "config",
    [ISCSIT_TIMEOUT] = "timeout",
    [ISCSIT_RETRIES] = "reconnect-retries",
    [ISCSIT_CONNECTIONS] = "connections",
    [ISCSIT_NKEYS] = NULL,
};

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void iscsit_free(struct iscsit *t)
{
    for (int k = 0; k < ISCSIT_NKEYS; k++) {
        free_secret(t->v[k]);
        t->v[k] = NULL;
    }
}

static int set_n(struct iscsit *t, enum iscsit_key k, const char *val, size_t n)
{
    char *d = strndup(val, n);
    if (!d)
        return -ENOMEM;
    free_secret(t->v[k]);
    t->v[k] = d;
    return 0;
}

int iscsit_set(struct iscsit *t, enum iscsit_key k, const char *val)
{
    return set_n(t, k, val, strlen(val));
}

/* A query key in libiscsi's spelling (header_digest) or ours. */
static int query_key(const char *name, size_t n)
{
    static const struct { const char *q; enum iscsit_key k; } map[] = {
        {"header_digest", ISCSIT_DIGEST},
        {"target_user", ISCSIT_TARGET_USER},
        {"target_password", ISCSIT_TARGET_PASSWORD},
        {"initiator_name", ISCSIT_INITIATOR},
        {"header-digest", ISCSIT_DIGEST},
        {"target-user", ISCSIT_TARGET_USER},
        {"target-password", ISCSIT_TARGET_PASSWORD},
        {"initiator-name", ISCSIT_INITIATOR},
        {"timeout", ISCSIT_TIMEOUT},
        {"reconnect-retries", ISCSIT_RETRIES},
        {"connections", ISCSIT_CONNECTIONS},
        {"config", ISCSIT_CONFIG},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strlen(map[i].q) == n && memcmp(map[i].q, name, n) == 0)
            return (int)map[i].k;
    }
    return -1;
}

static int parse_query(const char *q, struct iscsit *t, struct bd_err *err)
{
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        int k;

        if (len == 0) {
            q++;
            continue;
        }
        if (!eq)
            return bd_err_set(err, EINVAL, "iscsi url: query item '%.*s' "
                              "has no value", (int)len, q);
        k = query_key(q, (size_t)(eq - q));
        if (k < 0)
            return bd_err_set(err, EINVAL, "iscsi url: unknown query key "
                              "'%.*s'", (int)(eq - q), q);
        if (set_n(t, (enum iscsit_key)k, eq + 1, len - (size_t)(eq + 1 - q)) < 0)
            return -ENOMEM;
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

int iscsit_parse(const char *url, struct iscsit *t, struct bd_err *err)
{
    const char *p, *at, *slash, *lun, *end, *q;
    char *iqn = NULL;
    int r;

    if (strncmp(url, "iscsi://", 8) != 0)
        return bd_err_set(err, EINVAL, "not an iscsi url (expected "
                          "iscsi://[user[%%password]@]host[:port]/target/lun)");
    p = url + 8;
    end = p + strcspn(p, "?");
    q = *end == '?' ? end + 1 : NULL;
    slash = memchr(p, '/', (size_t)(end - p));
    if (!slash)
        return bd_err_set(err, EINVAL, "iscsi url: no target after the host "
                          "(expected iscsi://host[:port]/target/lun)");
    /* The last '@' before the path ends the credentials. */
    at = NULL;
    for (const char *c = p; c < slash; c++) {
        if (*c == '@')
            at = c;
    }
    if (at) {
        const char *pct = memchr(p, '%', (size_t)(at - p));
        size_t ulen = (size_t)((pct ? pct : at) - p);
        if (ulen == 0)
            return bd_err_set(err, EINVAL, "iscsi url: empty user name before "
                              "'@'");
        if ((r = set_n(t, ISCSIT_USER, p, ulen)) < 0)
            return r;
        if (pct && (r = set_n(t, ISCSIT_PASSWORD, pct + 1,
                              (size_t)(at - pct - 1))) < 0)
            return r;
        p = at + 1;
    }
    if (slash == p)
        return bd_err_set(err, EINVAL, "iscsi url: no host name");
    if (*p == '[' && !memchr(p, ']', (size_t)(slash - p)))
        return bd_err_set(err, EINVAL, "iscsi url: '[' without ']' in the host");
    if ((r = set_n(t, ISCSIT_PORTAL, p, (size_t)(slash - p))) < 0)
        return r;
    p = slash + 1;
    lun = NULL;
    for (const char *c = p; c < end; c++) {
        if (*c == '/')
            lun = c;
    }
    if (!lun || lun == p)
        return bd_err_set(err, EINVAL, "iscsi url: expected /target-iqn/lun "
                          "after the host");
    if (lun + 1 == end)
        return bd_err_set(err, EINVAL, "iscsi url: no lun after the target "
                          "'%.*s'", (int)(lun - p), p);
    iqn = strndup(p, (size_t)(lun - p));
    if (!iqn)
        return -ENOMEM;
    if (strchr(iqn, '/')) {
        r = bd_err_set(err, EINVAL, "iscsi url: target name '%s' contains '/'",
                       iqn);
        free(iqn);
        return r;
    }
    r = iscsit_set(t, ISCSIT_TARGET, iqn);
    free(iqn);
    if (r == 0)
        r = set_n(t, ISCSIT_LUN, lun + 1, (size_t)(end - lun - 1));
    if (r == 0 && q)
        r = parse_query(q, t, err);
    return r;
}

/* ---- config file ------------------------------------------------------------ */

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

void iscsi_file_conf_free(struct iscsi_file_conf *fc)
{
    free(fc->user);
    free_secret(fc->password);
    free(fc->initiator);
    free(fc->digest);
    free(fc->timeout);
    memset(fc, 0, sizeof(*fc));
}

enum section { SEC_OTHER, SEC_GENERIC, SEC_TARGET, SEC_OTHER_TARGET };

/* "[iscsi]", "[iscsi "iqn"]" or something else; -EINVAL if malformed. */
static int parse_section(char *line, const char *target, enum section *sec)
{
    char *e = strrchr(line, ']'), *s;
    if (!e || trim(e + 1)[0] != '\0')
        return -EINVAL;
    *e = '\0';
    s = trim(line + 1);
    if (strncmp(s, "iscsi", 5) != 0 || (s[5] && !isspace((unsigned char)s[5]))) {
        *sec = SEC_OTHER;
        return 0;
    }
    s = trim(s + 5);
    if (!*s) {
        *sec = SEC_GENERIC;
        return 0;
    }
    size_t n = strlen(s);
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return -EINVAL;
    s[n - 1] = '\0';
    *sec = target && strcmp(s + 1, target) == 0 ? SEC_TARGET : SEC_OTHER_TARGET;
    return 0;
}

static int conf_set(char **slot, bool *from_target, enum section sec,
                    const char *val)
{
    char *d;
    if (sec == SEC_GENERIC && *from_target)
        return 0;           /* the target's own section wins */
    if (!(d = strdup(val)))
        return -ENOMEM;
    free_secret(*slot);
    *slot = d;
    *from_target = sec == SEC_TARGET;
    return 0;
}

int iscsi_config_parse(const char *text, const char *name, const char *target,
                       struct iscsi_file_conf *fc, struct bd_err *err)
{
    enum section sec = SEC_OTHER;
    bool tgt[5] = {0};
    char *copy = strdup(text), *line, *save = NULL;
    unsigned lineno = 0;
    int r = 0;

    if (!copy)
        return -ENOMEM;
    /* strtok_r would skip empty lines and miscount; split by hand. */
    for (line = copy; line && r == 0; line = save) {
        char *nl = strchr(line, '\n'), *s, *eq, *key, *val;
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            if (parse_section(s, target, &sec) < 0)
                r = bd_err_set(err, EINVAL, "%s:%u: malformed section header "
                               "(expected [iscsi] or [iscsi \"IQN\"])",
                               name, lineno);
            continue;
        }
        if (sec == SEC_OTHER || sec == SEC_OTHER_TARGET)
            continue;
        if (!(eq = strchr(s, '='))) {
            r = bd_err_set(err, EINVAL, "%s:%u: expected key = \"value\"",
                           name, lineno);
            continue;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        size_t n = strlen(val);
        if (n && val[0] == '"') {
            if (n < 2 || val[n - 1] != '"') {
                r = bd_err_set(err, EINVAL, "%s:%u: unterminated quoted value "
                               "for '%s'", name, lineno, key);
                continue;
            }
            val[n - 1] = '\0';
            val++;
        }
        if (strcmp(key, "user") == 0)
            r = conf_set(&fc->user, &tgt[0], sec, val);
        else if (strcmp(key, "password") == 0)
            r = conf_set(&fc->password, &tgt[1], sec, val);
        else if (strcmp(key, "initiator-name") == 0)
            r = conf_set(&fc->initiator, &tgt[2], sec, val);
        else if (strcmp(key, "header-digest") == 0)
            r = conf_set(&fc->digest, &tgt[3], sec, val);
        else if (strcmp(key, "timeout") == 0)
            r = conf_set(&fc->timeout, &tgt[4], sec, val);
        else if (strcmp(key, "password-secret") == 0)
            r = bd_err_set(err, ENOTSUP, "%s:%u: password-secret needs qemu's "
                           "secret objects; use password, or "
                           "LIBISCSI_CHAP_PASSWORD", name, lineno);
        else
            r = bd_err_set(err, EINVAL, "%s:%u: unknown key '%s' in an [iscsi] "
                           "section (known: user, password, initiator-name, "
                           "header-digest, timeout)", name, lineno, key);
    }
    explicit_bzero(copy, strlen(text));
    free(copy);
    return r;
}

int iscsi_config_load(const char *path, const char *target,
                      struct iscsi_file_conf *fc, struct bd_err *err)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    int r;

    if (!f)
        return bd_err_set(err, errno, "iscsi config '%s': %s", path,
                          strerror(errno));
    do {
        if (cap - len < 4096) {
            char *nt;
            if (cap > (1u << 20)) {
                fclose(f);
                free(text);
                return bd_err_set(err, EFBIG, "iscsi config '%s': larger than "
                                  "1 MiB", path);
            }
            if (!(nt = realloc(text, cap + 8192))) {
                fclose(f);
                free(text);
                return -ENOMEM;
            }
            text = nt;
            cap += 8192;
        }
        got = fread(text + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0);
    r = ferror(f) ? bd_err_set(err, EIO, "iscsi config '%s': read error", path)
                  : 0;
    fclose(f);
    text[len] = '\0';
    if (r == 0 && memchr(text, '\0', len))
        r = bd_err_set(err, EINVAL, "iscsi config '%s': not a text file", path);
    if (r == 0)
        r = iscsi_config_parse(text, path, target, fc, err);
    explicit_bzero(text, len);
    free(text);
    return r;
}

/* ---- resolving ------------------------------------------------------------- */

const char *iscsi_digest_name(enum iscsi_digest d)
{
    switch (d) {
    case ISCSI_DIGEST_NONE: return "NONE";
    case ISCSI_DIGEST_NONE_CRC32C: return "NONE-CRC32C";
    case ISCSI_DIGEST_CRC32C_NONE: return "CRC32C-NONE";
    case ISCSI_DIGEST_CRC32C: return "CRC32C";
    }
    return "?";
}

static int parse_digest(const char *s, enum iscsi_digest *d, struct bd_err *err)
{
    static const enum iscsi_digest all[] = {
        ISCSI_DIGEST_NONE, ISCSI_DIGEST_NONE_CRC32C, ISCSI_DIGEST_CRC32C_NONE,
        ISCSI_DIGEST_CRC32C,
    };
    for (size_t i = 0; i < 4; i++) {
        const char *n = iscsi_digest_name(all[i]);
        /* libiscsi's URL spells them crc32c, none_crc32c, ... */
        size_t k = 0;
        while (n[k] && s[k] && (tolower((unsigned char)s[k]) ==
                                tolower((unsigned char)n[k]) ||
                                (n[k] == '-' && s[k] == '_')))
            k++;
        if (!n[k] && !s[k]) {
            *d = all[i];
            return 0;
        }
    }
    return bd_err_set(err, EINVAL, "header digest '%s' is not one of "
                      "CRC32C, CRC32C-NONE, NONE-CRC32C, NONE", s);
}

static int parse_uint(const char *s, const char *what, unsigned lo,
                      unsigned hi, unsigned *out, struct bd_err *err)
{
    char *e;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &e, 10);
    if (!*s || *e || errno || !isdigit((unsigned char)*s) || v < lo || v > hi)
        return bd_err_set(err, EINVAL, "%s '%s' is not a number from "
                          "%u to %u", what, s, lo, hi);
    *out = (unsigned)v;
    return 0;
}

/* "host", "host:port", "[v6]" or "[v6]:port" into c->host, c->port and
 * c->portal. */
static int split_portal(const char *s, struct iscsi_conf *c, struct bd_err *err)
{
    const char *colon, *hend, *hstart = s;
    unsigned port;

    if (*s == '[') {
        hend = strchr(s, ']');
        if (!hend || hend == s + 1)
            return bd_err_set(err, EINVAL, "malformed portal '%s'", s);
        hstart = s + 1;
        colon = hend[1] == ':' ? hend + 1 : NULL;
        if (hend[1] && !colon)
            return bd_err_set(err, EINVAL, "malformed portal '%s'", s);
    } else {
        colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            return bd_err_set(err, EINVAL, "portal '%s': write an IPv6 "
                              "address in brackets", s);
        hend = colon ? colon : s + strlen(s);
    }
    if (hend == hstart)
        return bd_err_set(err, EINVAL, "portal '%s' has no host", s);
    c->host = strndup(hstart, (size_t)(hend - hstart));
    if (colon && parse_uint(colon + 1, "port", 1, 65535, &port, err) < 0)
        return -EINVAL;
    c->port = strdup(colon ? colon + 1 : ISCSI_DEFAULT_PORT);
    if (!c->host || !c->port)
        return -ENOMEM;
    size_t n = strlen(c->host) + strlen(c->port) + 4;
    if (!(c->portal = malloc(n)))
        return -ENOMEM;
    snprintf(c->portal, n, *s == '[' ? "[%s]:%s" : "%s:%s", c->host, c->port);
    return 0;
}

static const char *env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (; env && *env; env++) {
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    }
    return NULL;
}

static int dup_opt(char **slot, const char *v)
{
    if (!v || !*v)
        return 0;
    return (*slot = strdup(v)) ? 0 : -ENOMEM;
}

/* The default initiator name: qemu's prefix plus this host's name, so
 * two machines do not log in under one name. */
static char *default_initiator(void)
{
    char host[256] = "", *out;
    size_t n;
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
        strcpy(host, "localhost");
    for (char *h = host; *h; h++) {
        if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-')
            *h = '-';
        *h = (char)tolower((unsigned char)*h);
    }
    n = sizeof(ISCSI_DEFAULT_INITIATOR) + strlen(host) + 16;
    if ((out = malloc(n)))
        snprintf(out, n, "%s:imgfuse.%s", ISCSI_DEFAULT_INITIATOR, host);
    return out;
}

int iscsi_conf_resolve(const struct iscsit *t, char *const *env,
                       struct iscsi_conf *c, struct bd_err *err)
{
    struct iscsi_file_conf fc = {0};
    const char *const *v = (const char *const *)t->v;
    const char *digest, *timeout;
    int r;

    memset(c, 0, sizeof(*c));
    if (!v[ISCSIT_PORTAL] || !*v[ISCSIT_PORTAL])
        return bd_err_set(err, EINVAL, "no portal (give an iscsi:// url "
                          "or portal=host[:port])");
    if (!v[ISCSIT_TARGET] || !*v[ISCSIT_TARGET])
        return bd_err_set(err, EINVAL, "no target name (give an "
                          "iscsi://host/target/lun url or target=IQN)");
    if ((r = split_portal(v[ISCSIT_PORTAL], c, err)) < 0)
        return r;
    if (!(c->target = strdup(v[ISCSIT_TARGET])))
        return -ENOMEM;
    if (v[ISCSIT_LUN] &&
        (r = parse_uint(v[ISCSIT_LUN], "lun", 0, 16383, &c->lun, err)) < 0)
        return r;
    if (v[ISCSIT_CONFIG] &&
        (r = iscsi_config_load(v[ISCSIT_CONFIG], c->target, &fc, err)) < 0)
        goto out;

    /* Credentials: options and URL, then the environment, then the file. */
    if ((r = dup_opt(&c->user, v[ISCSIT_USER])) < 0 ||
        (r = dup_opt(&c->password, v[ISCSIT_PASSWORD])) < 0)
        goto out;
    if (!c->user && (r = dup_opt(&c->user, env_get(env,
                                 "LIBISCSI_CHAP_USERNAME"))) < 0)
        goto out;
    if (!c->user && (r = dup_opt(&c->user, fc.user)) < 0)
        goto out;
    if (c->user && !c->password &&
        (r = dup_opt(&c->password, env_get(env, "LIBISCSI_CHAP_PASSWORD"))) < 0)
        goto out;
    if (c->user && !c->password && (r = dup_opt(&c->password, fc.password)) < 0)
        goto out;
    if (c->user && !c->password) {
        r = bd_err_set(err, EINVAL, "CHAP user '%s' has no password; set "
                       "LIBISCSI_CHAP_PASSWORD or password in the config file",
                       c->user);
        goto out;
    }
    if (!c->user && c->password) {
        free_secret(c->password);
        c->password = NULL;
        r = bd_err_set(err, EINVAL, "a CHAP password without a user name");
        goto out;
    }
    if ((r = dup_opt(&c->target_user, v[ISCSIT_TARGET_USER])) < 0 ||
        (r = dup_opt(&c->target_password, v[ISCSIT_TARGET_PASSWORD])) < 0)
        goto out;
    if (!c->target_user &&
        (r = dup_opt(&c->target_user, env_get(env,
                     "LIBISCSI_CHAP_TARGET_USERNAME"))) < 0)
        goto out;
    if (c->target_user && !c->target_password &&
        (r = dup_opt(&c->target_password, env_get(env,
                     "LIBISCSI_CHAP_TARGET_PASSWORD"))) < 0)
        goto out;
    if (!c->target_user != !c->target_password) {
        r = bd_err_set(err, EINVAL, "mutual CHAP needs both target-user "
                       "and target-password");
        goto out;
    }
    if (c->target_user && !c->user) {
        r = bd_err_set(err, EINVAL, "mutual CHAP (target-user) needs "
                       "CHAP credentials for the initiator too");
        goto out;
    }

    if ((r = dup_opt(&c->initiator, v[ISCSIT_INITIATOR])) < 0 ||
        (!c->initiator && (r = dup_opt(&c->initiator, fc.initiator)) < 0))
        goto out;
    if (!c->initiator && !(c->initiator = default_initiator())) {
        r = -ENOMEM;
        goto out;
    }
    c->digest = ISCSI_DIGEST_NONE_CRC32C;
    digest = v[ISCSIT_DIGEST] ? v[ISCSIT_DIGEST] : fc.digest;
    if (digest && (r = parse_digest(digest, &c->digest, err)) < 0)
        goto out;
    c->timeout_s = 10;
    timeout = v[ISCSIT_TIMEOUT] ? v[ISCSIT_TIMEOUT] : fc.timeout;
    if (timeout &&
        (r = parse_uint(timeout, "timeout", 1, 3600, &c->timeout_s, err)) < 0)
        goto out;
    c->retries = 3;
    if (v[ISCSIT_RETRIES] && (r = parse_uint(v[ISCSIT_RETRIES],
                              "reconnect-retries", 0, 1000, &c->retries, err)) < 0)
        goto out;
    c->conns = 2;
    if (v[ISCSIT_CONNECTIONS] && (r = parse_uint(v[ISCSIT_CONNECTIONS],
                                  "connections", 1, ISCSI_MAX_CONNS, &c->conns,
                                  err)) < 0)
        goto out;
    r = 0;
out:
    iscsi_file_conf_free(&fc);
    return r;
}

void iscsi_conf_free(struct iscsi_conf *c)
{
    free(c->host);
    free(c->port);
    free(c->portal);
    free(c->target);
    free(c->user);
    free_secret(c->password);
    free(c->target_user);
    free_secret(c->target_password);
    free(c->initiator);
    memset(c, 0, sizeof(*c));
}

char *iscsi_conf_display(const struct iscsi_conf *c)
{
    char *out = NULL;
    if (asprintf(&out, "iscsi://%s%s%s/%s/%u", c->user ? c->user : "",
                 c->user ? "@" : "", c->portal, c->target, c->lun) < 0)
        return NULL;
    return out;
}
