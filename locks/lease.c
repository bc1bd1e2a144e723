/*
 * The lease spec, the names leases are filed under, and the dispatch to
 * the two managers (lockd.c, sanlock.c). See lease.h.
 */
#include "lease-internal.h"
#include "config.h"

#include <errno.h>
#include <nettle/md5.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const kinds[] = { "none", "lockd", "sanlock", NULL };
static _Atomic unsigned live_leases;

static int parse_uint(const char *key, const char *val, unsigned lo,
                      unsigned hi, unsigned *out, struct bd_err *err)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi)
        return bd_err_set(err, EINVAL, "--lease: %s=%s: give a number from "
                          "%u to %u", key, val, lo, hi);
    *out = (unsigned)v;
    return 0;
}

/* lockspace=PATH[:OFFSET] */
static int parse_lockspace(struct lease_conf *c, const char *val,
                           struct bd_err *err)
{
    const char *colon = strrchr(val, ':');
    size_t len = strlen(val);
    c->ls_offset = 0;
    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        errno = 0;
        unsigned long long off = strtoull(colon + 1, NULL, 10);
        if (errno || off % 512)
            return bd_err_set(err, EINVAL, "--lease: lockspace=%s: the offset "
                              "must be a multiple of 512", val);
        c->ls_offset = off;
        len = (size_t)(colon - val);
    }
    if (len == 0 || len >= sizeof(c->lockspace))
        return bd_err_set(err, EINVAL, "--lease: lockspace=%s: give the path "
                          "of the lockspace file or device", val);
    memcpy(c->lockspace, val, len);
    c->lockspace[len] = '\0';
    return 0;
}

static int parse_item(struct lease_conf *c, char *item, struct bd_err *err)
{
    char *eq = strchr(item, '=');
    if (!eq)
        return bd_err_set(err, EINVAL, "--lease: '%s' is not KEY=VALUE", item);
    *eq = '\0';
    const char *key = item, *val = eq + 1;
    bool sl = c->kind == LEASE_SANLOCK;

    if (!strcmp(key, "dir")) {
        if (!*val || strlen(val) >= sizeof(c->dir))
            return bd_err_set(err, EINVAL, "--lease: dir= needs a directory");
        if (!sl && !strcmp(val, "direct"))
            c->direct = true;
        else
            snprintf(c->dir, sizeof(c->dir), "%s", val);
        return 0;
    }
    if (sl && !strcmp(key, "lockspace"))
        return parse_lockspace(c, val, err);
    if (sl && (!strcmp(key, "host_id") || !strcmp(key, "host-id")))
        return parse_uint(key, val, 1, 2000, &c->host_id, err);
    if (sl && (!strcmp(key, "io_timeout") || !strcmp(key, "io-timeout")))
        return parse_uint(key, val, 1, 300, &c->io_timeout, err);
    if (sl && !strcmp(key, "name")) {
        if (!*val || strlen(val) > LEASE_SANLOCK_NAME_LEN)
            return bd_err_set(err, EINVAL, "--lease: name=%s: a lockspace name "
                              "has 1 to 48 bytes", val);
        snprintf(c->ls_name, sizeof(c->ls_name), "%s", val);
        return 0;
    }
    return bd_err_set(err, EINVAL, "--lease: unknown option '%s' for %s; %s",
                      key, kinds[c->kind], sl ? "use lockspace=, host_id=, "
                      "io_timeout=, dir= or name=" : "use dir=");
}

static void default_dir(struct lease_conf *c)
{
    if (c->kind == LEASE_LOCKD) {
        const char *home = getenv("HOME");
        if (geteuid() != 0 && home && *home)
            snprintf(c->dir, sizeof(c->dir), "%s/.imgfuse/lockd", home);
        else
            snprintf(c->dir, sizeof(c->dir), "/var/lib/imgfuse/lockd");
        return;
    }
    /* sanlock: the resource leases live beside the lockspace, as in
     * libvirt's disk_lease_dir */
    snprintf(c->dir, sizeof(c->dir), "%s", c->lockspace);
    char *slash = strrchr(c->dir, '/');
    if (!slash)
        snprintf(c->dir, sizeof(c->dir), ".");
    else if (slash == c->dir)
        c->dir[1] = '\0';
    else
        *slash = '\0';
}

int lease_conf_parse(const char *spec, struct lease_conf *c, bool for_init,
                     struct bd_err *err)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->ls_name, sizeof(c->ls_name), "__LIBVIRT__DISKS__");
    if (!spec || !*spec)
        return 0;
    char *copy = strdup(spec);
    if (!copy)
        return bd_err_set(err, ENOMEM, "out of memory");
    char *save = NULL, *item = strtok_r(copy, ",", &save);
    int r = 0, k;
    for (k = 0; kinds[k] && strcmp(item ? item : "", kinds[k]); k++)
        ;
    if (!kinds[k]) {
        r = bd_err_set(err, EINVAL, "--lease=%s: not a lease manager; use none, "
                       "lockd or sanlock", item ? item : "");
        goto out;
    }
    c->kind = (enum lease_kind)k;
    while (r == 0 && (item = strtok_r(NULL, ",", &save))) {
        if (c->kind == LEASE_NONE)
            r = bd_err_set(err, EINVAL, "--lease=none takes no options");
        else
            r = parse_item(c, item, err);
    }
    if (r < 0)
        goto out;
    if (c->kind == LEASE_SANLOCK) {
        if (!c->lockspace[0] || (!c->host_id && !for_init)) {
            r = bd_err_set(err, EINVAL, "--lease=sanlock needs lockspace=PATH"
                           "[:OFFSET] and host_id=N (this host's id, 1 to "
                           "2000, unique among the hosts)");
            goto out;
        }
#if !HAVE_SANLOCK
        r = bd_err_set(err, ENOTSUP, "this imgfuse was built without "
                       "libsanlock; install libsanlock-dev and rebuild, or use "
                       "--lease=lockd");
        goto out;
#endif
    }
    if (!c->dir[0] && c->kind != LEASE_NONE)
        default_dir(c);
out:
    free(copy);
    return r;
}

int lease_spec_check(const char *spec, struct bd_err *err)
{
    struct lease_conf c;
    return lease_conf_parse(spec, &c, false, err);
}

bool lease_spec_is_none(const char *spec)
{
    if (!spec || !*spec)
        return true;
    return !strncmp(spec, "none", 4) && (spec[4] == '\0' || spec[4] == ',');
}

int lease_abs_path(const char *path, char *out, size_t size)
{
    int n;
    if (path[0] == '/') {
        n = snprintf(out, size, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd)))
            return -errno;
        n = snprintf(out, size, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path);
    }
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void lease_sha256_hex(const char *s, char out[65])
{
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, strlen(s), (const uint8_t *)s);
    sha256_digest(&ctx, sizeof(d), d);
    hex(d, sizeof(d), out);
}

void lease_md5_hex(const char *s, char out[33])
{
    struct md5_ctx ctx;
    uint8_t d[MD5_DIGEST_SIZE];
    md5_init(&ctx);
    md5_update(&ctx, strlen(s), (const uint8_t *)s);
    md5_digest(&ctx, sizeof(d), d);
    hex(d, sizeof(d), out);
}

int lease_mkdirs(const char *dir, struct bd_err *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return bd_err_set(err, errno, "lease directory %s: cannot create "
                              "%s: %s", dir, p, strerror(errno));
        *s = saved;
        if (!saved)
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return bd_err_set(err, ENOTDIR, "lease directory %s: not a directory",
                          dir);
    return 0;
}

int lease_acquire(const char *spec, const char *path, int fd,
                  enum lease_mode mode, struct lease **out, struct bd_err *err)
{
    struct lease_conf c;
    void *priv = NULL;
    int r = lease_conf_parse(spec, &c, false, err);
    *out = NULL;
    if (r < 0 || c.kind == LEASE_NONE)
        return r;
    if (c.kind == LEASE_LOCKD)
        r = lockd_acquire(&c, path, fd, mode, &priv, err);
    else
        r = sanlk_acquire(&c, path, mode, &priv, err);
    if (r < 0)
        return r;
    struct lease *l = calloc(1, sizeof(*l));
    if (!l) {
        c.kind == LEASE_LOCKD ? lockd_release(priv) : sanlk_release(priv);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    l->kind = c.kind;
    l->priv = priv;
    *out = l;
    live_leases++;
    return 0;
}

void lease_release(struct lease *l)
{
    if (!l)
        return;
    if (l->kind == LEASE_LOCKD)
        lockd_release(l->priv);
    else
        sanlk_release(l->priv);
    free(l);
    live_leases--;
}

unsigned lease_count(void)
{
    return live_leases;
}

bool lease_revoked(const struct lease *l)
{
    return l && l->kind == LEASE_SANLOCK && sanlk_revoked();
}

int lease_init(const char *spec, struct bd_err *err)
{
    struct lease_conf c;
    int r = lease_conf_parse(spec, &c, true, err);
    if (r < 0)
        return r;
    switch (c.kind) {
    case LEASE_LOCKD: return lockd_init(&c, err);
    case LEASE_SANLOCK: return sanlk_init(&c, err);
    default: return 0;
    }
}
