/*
 * core/chain.c: backing file names stored in images ("..", symlinks out,
 * absolute names, symlink loops, directories, protocol names, names on a
 * server) under --backing=confine, follow and none (and --untrusted), loops
 * of images and the depth limit, through bd_open_backing, bd_open_image and
 * bd_open_image_related. Extents and data files are test-resolve.c's.
 */
#include "nametree.h"

TestSuite(backing_confine, .init = setup, .fini = teardown);
TestSuite(backing_follow, .init = setup, .fini = teardown);
TestSuite(backing_none, .init = setup, .fini = teardown);
TestSuite(backing_chain, .init = setup, .fini = teardown);
TestSuite(image_related, .init = setup, .fini = teardown);
TestSuite(remote_backing, .init = setup, .fini = teardown);

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
    struct bd_node *n = open_pathless(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *abs = tpath("img/in.raw");

    expect_err(bd_open_backing(n, "in.raw", "raw", &err), &err, EINVAL,
               "no directory");
    bd_err_clear(&err);
    /* confined, not even an absolute local path */
    expect_err(bd_open_backing(n, abs, "raw", &err), &err, EINVAL,
               "no directory");
    free(abs);
    bd_node_close(n);
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

/* ---- backing files of an image on a server -------------------------------- */

Test(remote_backing, absolute_name_is_never_a_local_file)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };
    char *local = tpath("out.raw");

    /* T/out.raw exists here, but not at that path on the server */
    expect_err(bd_open_backing(p, local, "raw", &err), &err, ENOENT,
               "never looked up on this host");
    cr_expect_null(p->backing);
    bd_err_clear(&err);
    expect_on_server(bd_open_backing(p, "/outside.raw", "raw", &err), &err,
                     "/outside.raw");
    free(local);
    bd_node_close(p);
}

Test(remote_backing, confine_refuses_names_out_of_the_directory)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_CONFINE, false));
    const char *names[] = { "../outside.raw", "sub/../../outside.raw",
                            "/outside.raw", "link-out" };
    struct bd_err err = { 0 };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        bd_err_clear(&err);
        expect_err(bd_open_backing(p, names[i], "raw", &err), &err, EACCES,
                   "outside /img on the server");
    }
    cr_expect_eq(last_sibling[0], '\0');
    bd_node_close(p);
}

Test(remote_backing, follow_takes_names_out_on_the_same_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_on_server(bd_open_backing(p, "sub/../../outside.raw", "raw", &err),
                     &err, "/outside.raw");
    bd_node_close(p);
}

Test(remote_backing, confined_backing_inside_goes_to_the_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };

    expect_on_server(bd_open_backing(p, "link-in", "raw", &err), &err,
                     "/img/in.raw");
    bd_node_close(p);
}

Test(remote_backing, symlink_loop_on_the_server_is_eloop)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, false));
    struct bd_err err = { 0 };

    expect_err(bd_open_backing(p, "loop2", "raw", &err), &err, ELOOP, "loop2");
    bd_node_close(p);
}

Test(remote_backing, backing_loops_are_found_by_server_path)
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

Test(remote_backing, depth_limit_applies_on_a_server)
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

Test(remote_backing, image_related_is_opened_on_the_server)
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
