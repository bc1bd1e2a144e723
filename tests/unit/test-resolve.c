/*
 * core/resolve.c and core/chain.c: untrusted names stored in images ("..",
 * symlinks out, absolute names, loops, names on a server) under each
 * --backing and --related policy, through the public calls that take them
 * (bd_resolve_related, bd_open_backing, bd_create_related,
 * bd_open_image_related, bd_open_image). Real files in a mkdtemp() dir; a
 * fake protocol serves a second tree of it as "the server".
 */
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

static char *tpath(const char *rel)
{
    char *p;

    cr_assert_geq(asprintf(&p, "%s/%s", T, rel), 0);
    return p;
}

static void make_file(const char *rel, char fill)
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

static void make_dir(const char *rel)
{
    char *p = tpath(rel);

    cr_assert_eq(mkdir(p, 0755), 0, "%s: %s", p, strerror(errno));
    free(p);
}

static void make_link(const char *target, const char *rel)
{
    char *p = tpath(rel);

    cr_assert_eq(symlink(target, p), 0, "%s: %s", p, strerror(errno));
    free(p);
}

static bool exists(const char *abs)
{
    struct stat st;

    return lstat(abs, &st) == 0;
}

static void make_tree(const char *top)
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

static void setup(void)
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

static void teardown(void)
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

static const struct bd_driver fake_srv = {
    .name = "fakesrv",
    .kind = BD_PROTOCOL,
    .schemes = fake_schemes,
    .state_size = sizeof(struct fake_state),
    .open = fake_open,
    .close = fake_close,
    .create_file = fake_create_file,
    .remote_where = fake_remote_where,
    .remote_realpath = fake_remote_realpath,
    .sibling = fake_sibling,
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

static const struct bd_driver fake_pathless = {
    .name = "fakenbd",
    .kind = BD_PROTOCOL,
    .schemes = pathless_schemes,
    .open = pathless_open,
};

/* ---- helpers ---------------------------------------------------------------- */

static struct bd_flags policy(enum bd_backing_policy backing, bool related_follow)
{
    return (struct bd_flags){
        .locking = BD_LOCKING_OFF,
        .backing = backing,
        .related_follow = related_follow,
        .max_chain = BD_MAX_CHAIN_DEFAULT,
    };
}

static struct bd_node *open_top(struct bd_flags f)
{
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    char *p = tpath("img/top.raw");

    cr_assert_eq(bd_open_image(p, "raw", NULL, &f, &n, &err), 0, "%s", err.msg);
    free(p);
    return n;
}

/* The protocol node of fake_srv for server path `path` (the image). */
static struct bd_node *open_remote(const char *path, struct bd_flags f)
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

static void expect_path(int r, const struct bd_err *err, char *got,
                        const char *want_rel)
{
    char *want = tpath(want_rel);

    cr_assert_eq(r, 0, "%s", err->msg);
    cr_expect_str_eq(got, want);
    free(want);
    free(got);
}

static void expect_err(int r, const struct bd_err *err, int errnum,
                       const char *phrase)
{
    cr_assert_eq(r, -errnum, "expected %s, got %d: %s", strerror(errnum), r,
                 err->msg);
    cr_expect_eq(err->errnum, errnum);
    cr_expect_not_null(strstr(err->msg, phrase), "message lacks '%s': %s",
                       phrase, err->msg);
}

/* What bd_open_backing opened, by its local path. */
static void expect_backing(int r, const struct bd_err *err, struct bd_node *n,
                           const char *want_rel)
{
    char *want = tpath(want_rel);

    cr_assert_eq(r, 0, "%s", err->msg);
    cr_assert_not_null(n->backing);
    cr_expect_eq(n->backing->depth, n->depth + 1);
    cr_expect(n->backing->flags.read_only);
    cr_expect_str_eq(bd_node_protocol(n->backing)->filename, want);
    free(want);
}

/* A name on the fake server passed every check: core went on to open the
 * server path `want` with the server's driver (see fake_srv). */
static void expect_on_server(int r, const struct bd_err *err, const char *want)
{
    cr_assert_eq(r, -EINVAL, "%s", err->msg);
    cr_expect_not_null(strstr(err->msg, "unknown driver 'fakesrv'"), "%s",
                       err->msg);
    cr_expect_str_eq(last_sibling, want);
}

TestSuite(related_confine, .init = setup, .fini = teardown);
TestSuite(related_follow, .init = setup, .fini = teardown);
TestSuite(backing_confine, .init = setup, .fini = teardown);
TestSuite(backing_follow, .init = setup, .fini = teardown);
TestSuite(backing_none, .init = setup, .fini = teardown);
TestSuite(backing_chain, .init = setup, .fini = teardown);
TestSuite(create_related, .init = setup, .fini = teardown);
TestSuite(image_related, .init = setup, .fini = teardown);
TestSuite(remote, .init = setup, .fini = teardown);

/* ---- extents and data files: --related=confine --------------------------- */

static int related(struct bd_node *n, const char *name, char **out,
                   struct bd_err *err)
{
    *out = NULL;
    return bd_resolve_related(n, name, out, err);
}

/* name, stored in n, resolves to the local T/want_rel */
static void expect_related(struct bd_node *n, const char *name,
                           const char *want_rel)
{
    struct bd_err err = { 0 };
    char *out;
    int r = related(n, name, &out, &err);

    expect_path(r, &err, out, want_rel);
}

Test(related_confine, relative_name_inside_resolves_to_its_real_path)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));

    expect_related(n, "in.raw", "img/in.raw");
    expect_related(n, "sub/deep.raw", "img/sub/deep.raw");
    /* ".." that stays inside is fine */
    expect_related(n, "sub/../in.raw", "img/in.raw");
    bd_node_close(n);
}

Test(related_confine, dotdot_out_of_the_directory_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "../out.raw", &out, &err), &err, EACCES,
               "confinement rules forbid");
    cr_expect_null(out);
    bd_node_close(n);
}

Test(related_confine, sub_dotdot_dotdot_out_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "sub/../../out.raw", &out, &err), &err, EACCES,
               "lies outside");
    bd_node_close(n);
}

Test(related_confine, absolute_name_outside_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *abs = tpath("out.raw"), *out;

    expect_err(related(n, abs, &out, &err), &err, EACCES, "lies outside");
    free(abs);
    bd_node_close(n);
}

Test(related_confine, absolute_name_inside_is_accepted)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    char *abs = tpath("img/sub/deep.raw");

    expect_related(n, abs, "img/sub/deep.raw");
    free(abs);
    bd_node_close(n);
}

Test(related_confine, symlink_pointing_outside_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "link-out", &out, &err), &err, EACCES,
               "lies outside");
    bd_err_clear(&err);
    /* a symlink that stays inside is its target */
    expect_related(n, "link-in", "img/in.raw");
    bd_node_close(n);
}

Test(related_confine, symlink_loop_is_eloop)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "loop1", &out, &err), &err, ELOOP, "loop1");
    bd_node_close(n);
}

Test(related_confine, directory_name_resolves_but_does_not_open)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_node *f = NULL;
    struct bd_err err = { 0 };
    char *out;

    cr_assert_eq(related(n, "sub", &out, &err), 0, "%s", err.msg);
    expect_err(bd_open_related(n, out, false, &f, &err), &err, EISDIR,
               "is a directory");
    cr_expect_null(f);
    free(out);
    bd_node_close(n);
}

Test(related_confine, empty_name_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "", &out, &err), &err, EINVAL, "empty");
    bd_node_close(n);
}

Test(related_confine, untrusted_confines_even_with_related_follow)
{
    struct bd_flags f = policy(BD_BACKING_FOLLOW, true);
    struct bd_err err = { 0 };
    struct bd_node *n;
    char *out;

    f.untrusted = true;
    n = open_top(f);
    expect_err(related(n, "../out.raw", &out, &err), &err, EACCES,
               "lies outside");
    bd_err_clear(&err);
    expect_err(related(n, "link-out", &out, &err), &err, EACCES,
               "lies outside");
    bd_node_close(n);
}

Test(related_confine, name_in_an_image_on_a_pathless_protocol_is_refused)
{
    struct bd_flags f = policy(BD_BACKING_CONFINE, false);
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    char *out;

    cr_assert_eq(bd_node_open_protocol(NULL, &fake_pathless, o, &f, 0, &n,
                                       &err), 0, "%s", err.msg);
    expect_err(related(n, "in.raw", &out, &err), &err, EINVAL,
               "no directory");
    bd_node_close(n);
    bd_opts_free(o);
}

/* ---- extents and data files: --related=follow ----------------------------- */

Test(related_follow, relative_name_inside_resolves)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));

    expect_related(n, "in.raw", "img/in.raw");
    bd_node_close(n);
}

Test(related_follow, dotdot_names_are_followed_out)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));

    expect_related(n, "../out.raw", "out.raw");
    expect_related(n, "sub/../../out.raw", "out.raw");
    bd_node_close(n);
}

Test(related_follow, absolute_names_are_taken_as_they_are)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));
    char *abs = tpath("out.raw"), *in = tpath("img/in.raw");

    expect_related(n, abs, "out.raw");
    expect_related(n, in, "img/in.raw");
    free(abs);
    free(in);
    bd_node_close(n);
}

Test(related_follow, symlink_out_is_followed)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));

    expect_related(n, "link-out", "out.raw");
    bd_node_close(n);
}

Test(related_follow, symlink_loop_is_still_eloop)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "loop2", &out, &err), &err, ELOOP, "loop2");
    bd_node_close(n);
}

Test(related_follow, missing_file_is_enoent_naming_where_it_looked)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "nothere.raw", &out, &err), &err, ENOENT,
               "nothere.raw");
    bd_node_close(n);
}

/* ---- backing files: --backing=confine ------------------------------------- */

static int backing(struct bd_node *n, const char *name, struct bd_err *err)
{
    return bd_open_backing(n, name, "raw", err);
}

Test(backing_confine, relative_name_inside_is_opened_read_only)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_backing(backing(n, "sub/deep.raw", &err), &err, n,
                   "img/sub/deep.raw");
    bd_node_close(n);
}

Test(backing_confine, dotdot_out_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "../out.raw", &err), &err, EACCES, "lies outside");
    cr_expect_null(n->backing);
    bd_node_close(n);
}

Test(backing_confine, sub_dotdot_dotdot_out_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "sub/../../out.raw", &err), &err, EACCES,
               "lies outside");
    cr_expect_null(n->backing);
    bd_node_close(n);
}

Test(backing_confine, absolute_name_outside_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *abs = tpath("out.raw"), *uri;

    expect_err(backing(n, abs, &err), &err, EACCES, "lies outside");
    /* nor with a file: prefix */
    bd_err_clear(&err);
    cr_assert_geq(asprintf(&uri, "file:%s", abs), 0);
    expect_err(backing(n, uri, &err), &err, EACCES, "lies outside");
    cr_expect_null(n->backing);
    free(uri);
    free(abs);
    bd_node_close(n);
}

Test(backing_confine, absolute_name_inside_is_opened)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *abs = tpath("img/in.raw");

    expect_backing(backing(n, abs, &err), &err, n, "img/in.raw");
    free(abs);
    bd_node_close(n);
}

Test(backing_confine, symlink_pointing_outside_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "link-out", &err), &err, EACCES, "lies outside");
    cr_expect_null(n->backing);
    bd_node_close(n);
}

Test(backing_confine, symlink_loop_is_eloop)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "loop1", &err), &err, ELOOP, "loop1");
    bd_node_close(n);
}

Test(backing_confine, directory_name_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "sub", &err), &err, EISDIR, "is a directory");
    cr_expect_null(n->backing);
    bd_node_close(n);
}

Test(backing_confine, protocol_and_json_names_are_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "nbd://127.0.0.1:1/x", &err), &err, EACCES,
               "protocol or json: name");
    bd_err_clear(&err);
    expect_err(backing(n, "json:{\"driver\":\"raw\"}", &err), &err, EACCES,
               "protocol or json: name");
    bd_node_close(n);
}

Test(backing_confine, untrusted_is_confine_for_a_follow_mount)
{
    struct bd_flags f = policy(BD_BACKING_FOLLOW, true);
    struct bd_err err = { 0 };
    struct bd_node *n;

    f.untrusted = true;
    n = open_top(f);
    cr_expect_eq(n->flags.backing, BD_BACKING_CONFINE);
    expect_err(backing(n, "../out.raw", &err), &err, EACCES, "lies outside");
    bd_err_clear(&err);
    expect_err(backing(n, "nbd://127.0.0.1:1/x", &err), &err, EACCES,
               "--untrusted");
    bd_node_close(n);
}

Test(backing_confine, image_that_is_its_own_backing_is_a_loop)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "top.raw", &err), &err, ELOOP, "chain loops");
    bd_err_clear(&err);
    /* by another name, through a symlink to it */
    make_link("top.raw", "img/top-again");
    expect_err(backing(n, "top-again", &err), &err, ELOOP, "chain loops");
    cr_expect_null(n->backing);
    bd_node_close(n);
}

Test(backing_confine, name_in_an_image_on_a_pathless_protocol_is_refused)
{
    struct bd_flags f = policy(BD_BACKING_CONFINE, false);
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    char *abs = tpath("img/in.raw");

    cr_assert_eq(bd_node_open_protocol(NULL, &fake_pathless, o, &f, 0, &n,
                                       &err), 0, "%s", err.msg);
    expect_err(bd_open_backing(n, "in.raw", "raw", &err), &err, EINVAL,
               "no directory");
    bd_err_clear(&err);
    /* confined, not even an absolute local path */
    expect_err(bd_open_backing(n, abs, "raw", &err), &err, EINVAL,
               "no directory");
    free(abs);
    bd_node_close(n);
    bd_opts_free(o);
}

/* ---- backing files: --backing=follow -------------------------------------- */

Test(backing_follow, relative_name_inside_is_opened)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_backing(backing(n, "in.raw", &err), &err, n, "img/in.raw");
    bd_node_close(n);
}

Test(backing_follow, dotdot_out_is_followed)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_backing(backing(n, "sub/../../out.raw", &err), &err, n, "out.raw");
    bd_node_close(n);
}

Test(backing_follow, absolute_name_outside_is_followed)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *abs = tpath("out.raw");

    expect_backing(backing(n, abs, &err), &err, n, "out.raw");
    free(abs);
    bd_node_close(n);
}

Test(backing_follow, symlink_pointing_outside_is_followed)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_backing(backing(n, "link-out", &err), &err, n, "out.raw");
    bd_node_close(n);
}

Test(backing_follow, symlink_loop_is_eloop)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "loop1", &err), &err, ELOOP, "loop1");
    bd_node_close(n);
}

Test(backing_follow, directory_name_is_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "sub", &err), &err, EISDIR, "is a directory");
    bd_node_close(n);
}

Test(backing_follow, image_that_is_its_own_backing_is_a_loop)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *abs = tpath("img/top.raw");

    expect_err(backing(n, abs, &err), &err, ELOOP, "chain loops");
    free(abs);
    bd_node_close(n);
}

Test(backing_follow, missing_backing_file_says_how_to_do_without_it)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_err(backing(n, "gone.raw", &err), &err, ENOENT, "--backing=none");
    bd_node_close(n);
}

Test(backing_follow, depth_limit_refuses_one_more_image)
{
    struct bd_flags f = policy(BD_BACKING_FOLLOW, false);
    struct bd_err err = { 0 };
    struct bd_node *n;

    f.max_chain = 2;
    n = open_top(f);
    expect_backing(backing(n, "in.raw", &err), &err, n, "img/in.raw");
    expect_err(backing(n->backing, "sub/deep.raw", &err), &err, ELOOP,
               "deeper than 2");
    cr_expect_null(n->backing->backing);
    bd_node_close(n);
}

/* ---- backing files: --backing=none --------------------------------------- */

Test(backing_none, no_name_is_looked_at_or_opened)
{
    struct bd_node *n = open_top(policy(BD_BACKING_NONE, false));
    const char *names[] = { "in.raw", "../out.raw", "sub/../../out.raw",
                            "link-out", "loop1", "sub", "top.raw", "gone.raw",
                            "nbd://127.0.0.1:1/x", "" };
    struct bd_err err = { 0 };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cr_expect_eq(backing(n, names[i], &err), 0, "%s: %s", names[i],
                     err.msg);
        cr_expect_null(n->backing, "%s was opened", names[i]);
    }
    cr_expect_eq(err.errnum, 0);
    bd_node_close(n);
}

/* ---- backing chains through a real format (qcow2 stores the names) -------- */

#if HAVE_DRV_QCOW2
static void make_qcow2(const char *rel, const char *backing_name)
{
    struct bd_err err = { 0 };
    char *p = tpath(rel), opts[PATH_MAX + 32] = "";

    if (backing_name)
        snprintf(opts, sizeof(opts), "backing_file=%s,backing_fmt=qcow2",
                 backing_name);
    cr_assert_eq(bd_create_image(p, "qcow2", 1 << 20, opts, &err), 0, "%s",
                 err.msg);
    free(p);
}

static int open_chain(const char *rel, struct bd_flags f, struct bd_node **n,
                      struct bd_err *err)
{
    char *p = tpath(rel);
    int r;

    *n = NULL;
    r = bd_open_image(p, "qcow2", NULL, &f, n, err);
    free(p);
    return r;
}

Test(backing_chain, image_backed_by_itself_is_refused)
{
    struct bd_err err = { 0 };
    struct bd_node *n;

    make_qcow2("img/self.qcow2", "self.qcow2");
    expect_err(open_chain("img/self.qcow2", policy(BD_BACKING_FOLLOW, false),
                          &n, &err), &err, ELOOP, "chain loops");
    cr_expect_null(n);
}

Test(backing_chain, two_images_backed_by_each_other_are_refused)
{
    struct bd_err err = { 0 };
    struct bd_node *n;

    make_qcow2("img/a.qcow2", "b.qcow2");
    make_qcow2("img/b.qcow2", "a.qcow2");
    expect_err(open_chain("img/a.qcow2", policy(BD_BACKING_CONFINE, false),
                          &n, &err), &err, ELOOP, "chain loops");
    bd_err_clear(&err);
    expect_err(open_chain("img/b.qcow2", policy(BD_BACKING_FOLLOW, false),
                          &n, &err), &err, ELOOP, "chain loops");
}

Test(backing_chain, depth_limit_counts_every_image)
{
    struct bd_flags f = policy(BD_BACKING_FOLLOW, false);
    struct bd_err err = { 0 };
    struct bd_node *n;

    make_qcow2("img/c1.qcow2", NULL);
    make_qcow2("img/c2.qcow2", "c1.qcow2");
    make_qcow2("img/c3.qcow2", "c2.qcow2");
    f.max_chain = 3;
    cr_assert_eq(open_chain("img/c3.qcow2", f, &n, &err), 0, "%s", err.msg);
    cr_expect_not_null(n->backing->backing);
    bd_node_close(n);
    f.max_chain = 2;
    expect_err(open_chain("img/c3.qcow2", f, &n, &err), &err, ELOOP,
               "deeper than 2");
}

Test(backing_chain, confinement_root_is_the_top_images_directory)
{
    struct bd_flags f = policy(BD_BACKING_CONFINE, false);
    struct bd_err err = { 0 };
    struct bd_node *n;

    /* top -> sub/mid -> ../base: base is beside the top, so allowed */
    make_qcow2("img/base.qcow2", NULL);
    make_qcow2("img/sub/mid.qcow2", "../base.qcow2");
    make_qcow2("img/top.qcow2", "sub/mid.qcow2");
    cr_assert_eq(open_chain("img/top.qcow2", f, &n, &err), 0, "%s", err.msg);
    cr_expect_not_null(n->backing->backing);
    bd_node_close(n);
    /* ... but a chain may not climb above the top's directory */
    make_qcow2("img/sub/mid2.qcow2", "../../out.qcow2");
    make_qcow2("out.qcow2", NULL);
    make_qcow2("img/top2.qcow2", "sub/mid2.qcow2");
    expect_err(open_chain("img/top2.qcow2", f, &n, &err), &err, EACCES,
               "lies outside");
    bd_err_clear(&err);
    cr_assert_eq(open_chain("img/top2.qcow2", policy(BD_BACKING_FOLLOW, false),
                            &n, &err), 0, "%s", err.msg);
    bd_node_close(n);
}
#endif

/* ---- files made beside a new image ---------------------------------------- */

static int create(struct bd_node *n, const char *name, bool excl,
                  struct bd_err *err)
{
    struct bd_node *out = NULL;
    char *path = NULL;
    int r = bd_create_related(n, name, excl, &out, &path, err);

    if (r >= 0) {
        cr_expect_not_null(out);
        cr_expect_not_null(path);
    }
    bd_node_close(out);
    free(path);
    return r;
}

Test(create_related, new_name_inside_is_made)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *p = tpath("img/sub/new.raw");

    cr_assert_eq(create(n, "sub/new.raw", true, &err), 0, "%s", err.msg);
    cr_expect(exists(p));
    free(p);
    bd_node_close(n);
}

Test(create_related, confined_names_out_are_refused_and_nothing_is_made)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *made = tpath("made.raw");

    expect_err(create(n, "../made.raw", true, &err), &err, EACCES,
               "would lie outside");
    bd_err_clear(&err);
    expect_err(create(n, "sub/../../made.raw", true, &err), &err, EACCES,
               "would lie outside");
    bd_err_clear(&err);
    expect_err(create(n, made, true, &err), &err, EACCES, "would lie outside");
    cr_expect(!exists(made));
    free(made);
    bd_node_close(n);
}

Test(create_related, existing_symlink_out_is_refused_and_its_target_kept)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *target = tpath("out.raw");
    struct stat st;

    expect_err(create(n, "link-out", false, &err), &err, EACCES,
               "leads outside");
    cr_assert_eq(stat(target, &st), 0);
    cr_expect_eq(st.st_size, 65536, "the file outside was emptied");
    free(target);
    bd_node_close(n);
}

Test(create_related, existing_file_is_refused_with_excl_and_emptied_without)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *p = tpath("img/in.raw");
    struct stat st;

    expect_err(create(n, "in.raw", true, &err), &err, EEXIST, "");
    bd_err_clear(&err);
    cr_assert_eq(create(n, "in.raw", false, &err), 1, "%s", err.msg);
    cr_assert_eq(stat(p, &st), 0);
    cr_expect_eq(st.st_size, 0);
    free(p);
    bd_node_close(n);
}

Test(create_related, directory_names_are_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *sub = tpath("img/sub");
    struct stat st;

    expect_err(create(n, "/", true, &err), &err, EINVAL, "names a directory");
    bd_err_clear(&err);
    expect_err(create(n, "sub/", true, &err), &err, EEXIST, "");
    bd_err_clear(&err);
    /* an existing directory is not taken over as the file */
    expect_err(create(n, "sub", false, &err), &err, EISDIR, "is a directory");
    cr_assert_eq(stat(sub, &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    free(sub);
    bd_node_close(n);
}

Test(create_related, related_follow_makes_files_outside)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *made = tpath("made.raw");

    cr_assert_eq(create(n, "../made.raw", true, &err), 0, "%s", err.msg);
    cr_expect(exists(made));
    free(made);
    bd_node_close(n);
}

Test(create_related, untrusted_confines_even_with_related_follow)
{
    struct bd_flags f = policy(BD_BACKING_FOLLOW, true);
    struct bd_err err = { 0 };
    struct bd_node *n;
    char *made = tpath("made.raw");

    f.untrusted = true;
    n = open_top(f);
    expect_err(create(n, "../made.raw", true, &err), &err, EACCES,
               "would lie outside");
    cr_expect(!exists(made));
    free(made);
    bd_node_close(n);
}

/* ---- an image named for a new image (a vhdx parent) ----------------------- */

static int image_related(struct bd_node *n, const char *name,
                         struct bd_node **out, struct bd_err *err)
{
    *out = NULL;
    return bd_open_image_related(n, name, "raw", out, err);
}

Test(image_related, name_is_relative_to_the_image_and_opened_alone)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    struct bd_node *out;
    char *want = tpath("img/sub/deep.raw");

    cr_assert_eq(image_related(n, "sub/deep.raw", &out, &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(bd_node_protocol(out)->filename, want);
    cr_expect(out->flags.read_only);
    cr_expect_eq(out->flags.backing, BD_BACKING_NONE);
    cr_expect_null(n->backing);
    bd_node_close(out);
    free(want);
    bd_node_close(n);
}

Test(image_related, confined_like_a_backing_file)
{
    struct bd_node *n = open_top(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    struct bd_node *out;
    char *abs = tpath("out.raw");

    expect_err(image_related(n, "../out.raw", &out, &err), &err, EACCES,
               "lies outside");
    bd_err_clear(&err);
    expect_err(image_related(n, abs, &out, &err), &err, EACCES, "lies outside");
    bd_err_clear(&err);
    expect_err(image_related(n, "link-out", &out, &err), &err, EACCES,
               "lies outside");
    bd_err_clear(&err);
    expect_err(image_related(n, "loop1", &out, &err), &err, ELOOP, "loop1");
    bd_err_clear(&err);
    expect_err(image_related(n, "sub", &out, &err), &err, EISDIR,
               "is a directory");
    bd_err_clear(&err);
    expect_err(image_related(n, "top.raw", &out, &err), &err, ELOOP,
               "chain loops");
    cr_expect_null(out);
    free(abs);
    bd_node_close(n);
}

Test(image_related, follow_takes_names_outside)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    struct bd_node *out;
    char *want = tpath("out.raw");

    cr_assert_eq(image_related(n, "link-out", &out, &err), 0, "%s", err.msg);
    cr_expect_str_eq(bd_node_protocol(out)->filename, want);
    bd_node_close(out);
    free(want);
    bd_node_close(n);
}

Test(image_related, protocol_names_are_refused)
{
    struct bd_node *n = open_top(policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    struct bd_node *out;

    expect_err(image_related(n, "nbd://127.0.0.1:1/x", &out, &err), &err,
               EINVAL, "not a file name");
    bd_node_close(n);
}

/* ---- names stored in an image on a server ------------------------------------ */

Test(remote, relative_name_is_a_path_on_the_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *out = NULL;

    cr_assert_eq(bd_resolve_related(p, "sub/deep.raw", &out, &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(out, "/img/sub/deep.raw");
    free(out);
    bd_node_close(p);
}

Test(remote, absolute_name_is_never_a_local_file)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *local = tpath("out.raw"), *out = NULL;

    /* T/out.raw exists here, but not at that path on the server */
    expect_err(bd_resolve_related(p, local, &out, &err), &err, ENOENT,
               "not on the server");
    bd_err_clear(&err);
    expect_err(bd_open_backing(p, local, "raw", &err), &err, ENOENT,
               "never looked up on this host");
    cr_expect_null(p->backing);
    bd_err_clear(&err);
    /* an absolute server path is found there */
    cr_assert_eq(bd_resolve_related(p, "/outside.raw", &out, &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(out, "/outside.raw");
    free(out);
    free(local);
    bd_node_close(p);
}

Test(remote, confine_refuses_names_out_of_the_directory_on_the_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_CONFINE, false));
    const char *names[] = { "../outside.raw", "sub/../../outside.raw",
                            "/outside.raw", "link-out" };
    struct bd_err err = { 0 };
    char *out = NULL;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        bd_err_clear(&err);
        expect_err(bd_resolve_related(p, names[i], &out, &err), &err, EACCES,
                   "outside /img on the server");
        bd_err_clear(&err);
        expect_err(bd_open_backing(p, names[i], "raw", &err), &err, EACCES,
                   "outside /img on the server");
    }
    cr_expect_null(out);
    bd_node_close(p);
}

Test(remote, follow_takes_names_out_on_the_same_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *out = NULL;

    cr_assert_eq(bd_resolve_related(p, "link-out", &out, &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(out, "/outside.raw");
    free(out);
    expect_on_server(bd_open_backing(p, "sub/../../outside.raw", "raw", &err),
                     &err, "/outside.raw");
    bd_node_close(p);
}

Test(remote, confined_backing_inside_goes_to_the_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_on_server(bd_open_backing(p, "link-in", "raw", &err), &err,
                     "/img/in.raw");
    bd_node_close(p);
}

Test(remote, symlink_loop_and_directory_on_the_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, true));
    struct bd_node *f = NULL;
    struct bd_err err = { 0 };
    char *out = NULL;

    expect_err(bd_resolve_related(p, "loop1", &out, &err), &err, ELOOP,
               "loop1");
    bd_err_clear(&err);
    expect_err(bd_open_backing(p, "loop2", "raw", &err), &err, ELOOP, "loop2");
    bd_err_clear(&err);
    /* a directory resolves; opening it is the server driver's to refuse */
    cr_assert_eq(bd_resolve_related(p, "sub", &out, &err), 0, "%s", err.msg);
    cr_expect_str_eq(out, "/img/sub");
    cr_assert_eq(bd_open_related(p, out, false, &f, &err), 0, "%s", err.msg);
    cr_expect_str_eq(f->filename, "fake://srv/img/sub");
    bd_node_close(f);
    free(out);
    bd_node_close(p);
}

Test(remote, backing_loops_are_found_by_server_path)
{
    struct bd_node *a = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, false));
    struct bd_node *b = open_remote("/img/in.raw",
                                    policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_err(bd_open_backing(a, "top.raw", "raw", &err), &err, ELOOP,
               "chain loops");
    bd_err_clear(&err);
    /* a -> b -> a, b being a's backing file */
    b->parent = a;
    b->depth = 1;
    expect_err(bd_open_backing(b, "/img/sub/../top.raw", "raw", &err), &err,
               ELOOP, "chain loops");
    b->parent = NULL;
    bd_node_close(b);
    bd_node_close(a);
}

Test(remote, depth_limit_applies_on_a_server)
{
    struct bd_flags f = policy(BD_BACKING_FOLLOW, false);
    struct bd_err err = { 0 };
    struct bd_node *p;

    f.max_chain = 1;
    p = open_remote("/img/top.raw", f);
    expect_err(bd_open_backing(p, "in.raw", "raw", &err), &err, ELOOP,
               "deeper than 1");
    cr_expect_eq(last_sibling[0], '\0');
    bd_node_close(p);
}

Test(remote, create_related_makes_files_on_the_server_only)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *on_srv = tpath("srv/img/made.raw"), *local = tpath("img/made.raw");
    char *out_srv = tpath("srv/made.raw");

    cr_assert_eq(create(p, "made.raw", true, &err), 0, "%s", err.msg);
    cr_expect(exists(on_srv));
    cr_expect(!exists(local));
    bd_err_clear(&err);
    expect_err(create(p, "../made.raw", true, &err), &err, EACCES,
               "would lie outside /img on the server");
    cr_expect(!exists(out_srv));
    free(on_srv);
    free(local);
    free(out_srv);
    bd_node_close(p);
}

Test(remote, image_related_is_opened_on_the_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, true));
    struct bd_node *out = NULL;
    struct bd_err err = { 0 };
    char *local = tpath("img/in.raw");

    expect_on_server(bd_open_image_related(p, "in.raw", "raw", &out, &err),
                     &err, "/img/in.raw");
    bd_err_clear(&err);
    expect_err(bd_open_image_related(p, local, "raw", &out, &err), &err,
               ENOENT, "not on the server");
    cr_expect_null(out);
    free(local);
    bd_node_close(p);
}
