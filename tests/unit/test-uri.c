/* core/uri.c: SOURCE classification and URI parsing. */
#include <criterion/criterion.h>
#include "core/bd-internal.h"
#include "core/registry.h"

#include <string.h>

Test(uri, nbd_unix_socket_with_export_name)
{
    struct bd_uri u;
    struct bd_err err = { 0 };
    cr_assert_eq(bd_uri_parse("nbd+unix:///exp?socket=/tmp/s.sock", &u, &err), 0);
    cr_assert_str_eq(u.scheme, "nbd+unix");
    cr_assert_str_eq(u.host, "");
    cr_assert_str_eq(u.path, "/exp");
    char *sock = bd_uri_query_get(u.query, "socket");
    cr_assert_str_eq(sock, "/tmp/s.sock");
    free(sock);
    bd_uri_free(&u);
}

Test(uri, user_password_host_port_and_percent_escapes)
{
    struct bd_uri u;
    struct bd_err err = { 0 };
    cr_assert_eq(bd_uri_parse("iscsi://us%40r:p%3Ass@10.0.0.1:3260/iqn.x/1", &u, &err), 0);
    cr_assert_str_eq(u.user, "us@r");
    cr_assert_str_eq(u.password, "p:ss");
    cr_assert_str_eq(u.host, "10.0.0.1");
    cr_assert_eq(u.port, 3260);
    cr_assert_str_eq(u.path, "/iqn.x/1");
    bd_uri_free(&u);
}

Test(uri, ipv6_host_in_brackets)
{
    struct bd_uri u;
    struct bd_err err = { 0 };
    cr_assert_eq(bd_uri_parse("nbd://[::1]:10809/x", &u, &err), 0);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 10809);
    bd_uri_free(&u);
}

Test(uri, bad_port_is_an_error_naming_it)
{
    struct bd_uri u;
    struct bd_err err = { 0 };
    cr_assert_lt(bd_uri_parse("nbd://host:99999/x", &u, &err), 0);
    cr_assert(strstr(err.msg, "99999"), "%s", err.msg);
    bd_err_clear(&err);
    cr_assert_lt(bd_uri_parse("nbd://host:12ab/x", &u, &err), 0);
    bd_err_clear(&err);
    cr_assert_lt(bd_uri_parse("nbd://[::1/x", &u, &err), 0);
}

Test(uri, classify_sources)
{
    cr_assert_eq(bd_source_classify("json:{}", NULL), BD_SRC_JSON);
    cr_assert_eq(bd_source_classify("nbd://h/x", NULL), BD_SRC_URI);
    cr_assert_eq(bd_source_classify("driver=raw,file.filename=x", NULL), BD_SRC_DOTTED);
    cr_assert_eq(bd_source_classify("/nonexistent/disk.img", NULL), BD_SRC_FILE);
    cr_assert_eq(bd_source_classify("/etc/hostname", NULL), BD_SRC_FILE);
}

Test(uri, unknown_scheme_is_a_clear_error)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_lt(bd_source_to_opts("gopher://h/x", o, &err), 0);
    cr_assert(strstr(err.msg, "unknown URI scheme 'gopher'"), "%s", err.msg);
    bd_opts_free(o);
}

/* Is word in the message's list ("... URIs of the nbd, iscsi and ssh ...")? */
static bool lists(const char *msg, const char *word)
{
    size_t len = strlen(word);
    for (const char *p = strstr(msg, "URIs of the "); p; p = strchr(p + 1, ' ')) {
        if (strncmp(p + 1, word, len) == 0 && strchr(", ", p[1 + len]))
            return true;
    }
    return false;
}

Test(uri, unknown_scheme_lists_only_protocols_in_this_build)
{
    static const char *const schemes[] = { "nbd", "iscsi", "ssh", "gluster",
                                           "nvme" };
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };

    cr_assert_lt(bd_source_to_opts("gopher://h/x", o, &err), 0);
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        const struct bd_driver *drv = bd_driver_for_scheme(schemes[i]);
        bool built = drv && drv->uri;
        cr_assert_eq(lists(err.msg, schemes[i]), built, "%s: %s", schemes[i],
                     err.msg);
    }
    bd_opts_free(o);
}

Test(uri, scheme_known_but_not_built_says_so)
{
    /* a QEMU scheme whose driver this build lacks, if there is one */
    static const char *const uris[] = { "nvme://0000:01:00.0/1",
        "gluster://h/v/x", "iscsi://h/iqn.x/0", "ssh://h/x", "nbd://h/x" };
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    size_t i;

    for (i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        char scheme[16];
        snprintf(scheme, sizeof(scheme), "%.*s",
                 (int)(strchr(uris[i], ':') - uris[i]), uris[i]);
        if (!bd_driver_for_scheme(scheme))
            break;
    }
    if (i == sizeof(uris) / sizeof(uris[0])) {
        bd_opts_free(o);
        cr_skip_test("every QEMU protocol is built");
    }
    cr_assert_lt(bd_source_to_opts(uris[i], o, &err), 0);
    cr_assert(strstr(err.msg, "not part of this build"), "%s", err.msg);
    bd_opts_free(o);
}

Test(uri, file_uri_names_a_local_file)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_source_to_opts("file:///tmp/a%20b.img", o, &err), 0);
    cr_assert_str_eq(bd_opts_get(o, "filename"), "/tmp/a b.img");
    bd_opts_free(o);
    o = bd_opts_new();
    cr_assert_lt(bd_source_to_opts("file://otherhost/x", o, &err), 0);
    bd_opts_free(o);
}

Test(uri, fragment_before_a_question_mark_ends_the_path)
{
    struct bd_uri u;
    struct bd_err err = { 0 };
    cr_assert_eq(bd_uri_parse("ssh://h/p#x?y", &u, &err), 0);
    cr_assert_str_eq(u.path, "/p");
    cr_assert_null(u.query);
    bd_uri_free(&u);
    cr_assert_eq(bd_uri_parse("ssh://h/p?q=1#f", &u, &err), 0);
    cr_assert_str_eq(u.path, "/p");
    cr_assert_str_eq(u.query, "q=1");
    bd_uri_free(&u);
}
