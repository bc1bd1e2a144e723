/*
 * core/resolve.c: names of extents and data files stored in images ("..",
 * symlinks out, absolute names, symlink loops, directories, names on a
 * server) under --related=confine and follow (and --untrusted), through
 * bd_resolve_related, bd_open_related and bd_create_related. Backing files
 * are test-chain.c's.
 */
#include "nametree.h"

TestSuite(related_confine, .init = setup, .fini = teardown);
TestSuite(related_follow, .init = setup, .fini = teardown);
TestSuite(create_related, .init = setup, .fini = teardown);
TestSuite(remote_related, .init = setup, .fini = teardown);

static void expect_path(int r, const struct bd_err *err, char *got,
                        const char *want_rel)
{
    char *want = tpath(want_rel);

    cr_assert_eq(r, 0, "%s", err->msg);
    cr_expect_str_eq(got, want);
    free(want);
    free(got);
}

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
    struct bd_node *n = open_pathless(policy(BD_BACKING_CONFINE, false));
    struct bd_err err = { 0 };
    char *out;

    expect_err(related(n, "in.raw", &out, &err), &err, EINVAL,
               "no directory");
    bd_node_close(n);
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

/* ---- extents and data files of an image on a server ---------------------- */

Test(remote_related, relative_name_is_a_path_on_the_server)
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

Test(remote_related, absolute_name_is_never_a_local_file)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *local = tpath("out.raw"), *out = NULL;

    /* T/out.raw exists here, but not at that path on the server */
    expect_err(bd_resolve_related(p, local, &out, &err), &err, ENOENT,
               "not on the server");
    bd_err_clear(&err);
    /* an absolute server path is found there */
    cr_assert_eq(bd_resolve_related(p, "/outside.raw", &out, &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(out, "/outside.raw");
    free(out);
    free(local);
    bd_node_close(p);
}

Test(remote_related, confine_refuses_names_out_of_the_directory)
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
    }
    cr_expect_null(out);
    bd_node_close(p);
}

Test(remote_related, follow_takes_names_out_on_the_same_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, true));
    struct bd_err err = { 0 };
    char *out = NULL;

    cr_assert_eq(bd_resolve_related(p, "link-out", &out, &err), 0, "%s",
                 err.msg);
    cr_expect_str_eq(out, "/outside.raw");
    free(out);
    bd_node_close(p);
}

Test(remote_related, symlink_loop_and_directory_on_the_server)
{
    struct bd_node *p = open_remote("/img/top.raw",
                                    policy(BD_BACKING_FOLLOW, true));
    struct bd_node *f = NULL;
    struct bd_err err = { 0 };
    char *out = NULL;

    expect_err(bd_resolve_related(p, "loop1", &out, &err), &err, ELOOP,
               "loop1");
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

Test(remote_related, create_related_makes_files_on_the_server_only)
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
