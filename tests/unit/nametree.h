/*
 * The fixture of the name-confinement tests (test-resolve.c, test-chain.c):
 * a scratch tree of real files in a mkdtemp() dir, and fake protocols that
 * serve part of it as a server (paths there, as ssh and gluster) or have no
 * paths at all (as nbd). Include once per test program.
 */
#ifndef IMGFUSE_TEST_NAMETREE_H
#define IMGFUSE_TEST_NAMETREE_H

#include "config.h"
#include "core/bd-internal.h"
#include "core/graph.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The scratch tree (T is canonical):
 *   T/img/top.raw  in.raw  sub/deep.raw   the image's directory
 *   T/img/link-in -> in.raw   link-out -> ../out.raw
 *   T/img/loop1 -> loop2 -> loop1
 *   T/out.raw                              outside the image's directory
 *   T/srv/...                              "/" of the fake server: the same
 *                                          img/ tree and /outside.raw
 */
static char T[PATH_MAX];
static char srv_root[PATH_MAX + 8];

static inline char *tpath(const char *rel)
{
    char *p;

    cr_assert_geq(asprintf(&p, "%s/%s", T, rel), 0);
    return p;
}

static inline void make_file(const char *rel, char fill)
{
    char buf[65536];
    char *p = tpath(rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);

    cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
    memset(buf, fill, sizeof(buf));
    cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
    free(p);
}

static inline void make_dir(const char *rel)
{
    char *p = tpath(rel);

    cr_assert_eq(mkdir(p, 0755), 0, "%s: %s", p, strerror(errno));
    free(p);
}

static inline void make_link(const char *target, const char *rel)
{
    char *p = tpath(rel);

    cr_assert_eq(symlink(target, p), 0, "%s: %s", p, strerror(errno));
    free(p);
}

static inline bool exists(const char *abs)
{
    struct stat st;

    return lstat(abs, &st) == 0;
}

static inline void make_tree(const char *top)
{
    char rel[256];

#define AT(name) (snprintf(rel, sizeof(rel), "%s%s", top, name), rel)
    make_dir(AT("img"));
    make_dir(AT("img/sub"));
    make_file(AT("img/top.raw"), 'T');
    make_file(AT("img/in.raw"), 'I');
    make_file(AT("img/sub/deep.raw"), 'D');
    make_link("in.raw", AT("img/link-in"));
    make_link("loop2", AT("img/loop1"));
    make_link("loop1", AT("img/loop2"));
#undef AT
}

static inline void setup(void)
{
    char tmpl[] = "/tmp/test-resolve.XXXXXX";

    cr_assert_not_null(mkdtemp(tmpl));
    cr_assert_not_null(realpath(tmpl, T));
    make_tree("");
    make_file("out.raw", 'O');
    make_link("../out.raw", "img/link-out");
    make_dir("srv");
    make_tree("srv/");
    make_file("srv/outside.raw", 'S');
    make_link("../outside.raw", "srv/img/link-out");
    snprintf(srv_root, sizeof(srv_root), "%s/srv", T);
}

static inline void teardown(void)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", T);
}

/* ---- a fake protocol whose files are paths on a "server" -------------------
 * Server path /x is the local file T/srv/x. Only what core's name handling
 * calls is there: open, remote_where, remote_realpath, sibling, create_file.
 * Core opens a server-side backing file by driver name through the registry,
 * where this driver is not: that open fails with "unknown driver 'fakesrv'"
 * after every check of the name has passed, and sibling() records the path it
 * was asked for, so tests see what the name resolved to. */

struct fake_state {
    char *path;                 /* canonical path on the server */
};

static char last_sibling[PATH_MAX];

static int fake_open(struct bd_node *n, const struct bd_opts *o,
                     struct bd_err *err)
{
    struct fake_state *s = n->state;
    const char *path = bd_opts_get(o, "path");

    (void)bd_opts_get(o, "filename");
    if (!path)
        return bd_err_set(err, EINVAL, "fakesrv: no path");
    s->path = strdup(path);
    if (!n->filename && asprintf(&n->filename, "fake://srv%s", path) < 0)
        n->filename = NULL;
    return s->path ? 0 : -ENOMEM;
}

static void fake_close(struct bd_node *n)
{
    struct fake_state *s = n->state;

    free(s->path);
}

static void fake_remote_where(struct bd_node *n, const char **server,
                              const char **path)
{
    struct fake_state *s = n->state;

    *server = "fake://srv";
    *path = s->path;
}

static int fake_remote_realpath(struct bd_node *n, const char *path, char **out,
                                struct bd_err *err)
{
    char local[PATH_MAX * 3], real[PATH_MAX];
    size_t l = strlen(srv_root);

    (void)n;
    snprintf(local, sizeof(local), "%s%s", srv_root, path);
    if (!realpath(local, real)) {
        if (errno == ENOENT)
            return -ENOENT;
        return bd_err_set(err, errno, "%s: %s", path, strerror(errno));
    }
    if (strncmp(real, srv_root, l) != 0 || (real[l] && real[l] != '/'))
        return bd_err_set(err, EXDEV, "%s: leaves the fake server", path);
    *out = strdup(real[l] ? real + l : "/");
    return *out ? 0 : -ENOMEM;
}

static int fake_sibling(struct bd_node *n, const char *path, struct bd_opts *o,
                        struct bd_err *err)
{
    char uri[PATH_MAX + 16];

    (void)n;
    (void)err;
    snprintf(last_sibling, sizeof(last_sibling), "%s", path);
    snprintf(uri, sizeof(uri), "fake://srv%s", path);
    if (bd_opts_set(o, "path", path) < 0 || bd_opts_set(o, "filename", uri) < 0)
        return -ENOMEM;
    return 0;
}

static int fake_create_file(const char *filename, const struct bd_opts *o,
                            struct bd_err *err)
{
    char local[PATH_MAX * 3];
    int fd;

    snprintf(local, sizeof(local), "%s%s", srv_root, bd_opts_get(o, "path"));
    fd = open(local, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return bd_err_set(err, errno, "%s: %s", filename, strerror(errno));
    close(fd);
    return 0;
}

static const char *const fake_schemes[] = { "fake", NULL };

static int fake_parse(const char *uri, struct bd_opts *o, struct bd_err *err)
{
    (void)uri;
    (void)o;
    return bd_err_set(err, ENOTSUP, "fakesrv takes no URIs");
}

static int fake_remove_file(const char *filename, const struct bd_opts *o,
                            struct bd_err *err)
{
    char local[PATH_MAX * 3];

    snprintf(local, sizeof(local), "%s%s", srv_root, bd_opts_get(o, "path"));
    if (unlink(local) != 0)
        return bd_err_set(err, errno, "%s: %s", filename, strerror(errno));
    return 0;
}

static const struct bd_uri_ops fake_uri = {
    .schemes = fake_schemes,
    .parse = fake_parse,
};

static const struct bd_files_ops fake_files = {
    .create_file = fake_create_file,
    .remove_file = fake_remove_file,
};

static const struct bd_remote_ops fake_remote = {
    .where = fake_remote_where,
    .realpath = fake_remote_realpath,
    .sibling = fake_sibling,
};

static const struct bd_driver fake_srv = {
    .name = "fakesrv",
    .kind = BD_PROTOCOL,
    .state_size = sizeof(struct fake_state),
    .open = fake_open,
    .close = fake_close,
    .uri = &fake_uri,
    .files = &fake_files,
    .remote = &fake_remote,
};

/* A protocol without paths (as nbd): names in its images have no directory. */
static const char *const pathless_schemes[] = { "fakenbd", NULL };

static int pathless_open(struct bd_node *n, const struct bd_opts *o,
                         struct bd_err *err)
{
    (void)n;
    (void)o;
    (void)err;
    return 0;
}

static const struct bd_uri_ops pathless_uri = {
    .schemes = pathless_schemes,
    .parse = fake_parse,
};

static const struct bd_driver fake_pathless = {
    .name = "fakenbd",
    .kind = BD_PROTOCOL,
    .open = pathless_open,
    .uri = &pathless_uri,
};

/* ---- helpers ---------------------------------------------------------------- */

static inline struct bd_flags policy(enum bd_backing_policy backing,
                                      bool related_follow)
{
    return (struct bd_flags){
        .locking = BD_LOCKING_OFF,
        .backing = backing,
        .related_follow = related_follow,
        .max_chain = BD_MAX_CHAIN_DEFAULT,
    };
}

static inline struct bd_node *open_top(struct bd_flags f)
{
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    char *p = tpath("img/top.raw");

    cr_assert_eq(bd_open_image(p, "raw", NULL, &f, &n, &err), 0, "%s", err.msg);
    free(p);
    return n;
}

/* The protocol node of fake_srv for server path `path` (the image). */
static inline struct bd_node *open_remote(const char *path,
                                         struct bd_flags f)
{
    struct bd_err err = { 0 };
    struct bd_opts *o = bd_opts_new();
    struct bd_node *n = NULL;

    cr_assert_not_null(o);
    cr_assert_eq(bd_opts_set(o, "path", path), 0);
    cr_assert_eq(bd_node_open_protocol(NULL, &fake_srv, o, &f, 0, &n, &err), 0,
                 "%s", err.msg);
    bd_opts_free(o);
    return n;
}

static inline void expect_err(int r, const struct bd_err *err, int errnum,
                              const char *phrase)
{
    cr_assert_eq(r, -errnum, "expected %s, got %d: %s", strerror(errnum), r,
                 err->msg);
    cr_expect_eq(err->errnum, errnum);
    cr_expect_not_null(strstr(err->msg, phrase), "message lacks '%s': %s",
                       phrase, err->msg);
}

/* A protocol node of fake_pathless (an image on an nbd-like export). */
static inline struct bd_node *open_pathless(struct bd_flags f)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    cr_assert_not_null(o);
    cr_assert_eq(bd_node_open_protocol(NULL, &fake_pathless, o, &f, 0, &n,
                                       &err), 0, "%s", err.msg);
    bd_opts_free(o);
    return n;
}

#endif
