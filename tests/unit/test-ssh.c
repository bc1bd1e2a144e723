/*
 * Unit tests of the ssh driver's target parsing: ssh:// URIs, options,
 * host_key_check fingerprints and the display name, and the way a URI
 * reaches the driver through bd_open_image(). No server needed; connecting
 * is tested by tests/integration/ssh/.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "drivers/protocol/ssh/ssh.h"
#include "core/graph.h"

static struct sshc t;
static struct bd_err err;

static void reset(void)
{
    sshc_free(&t);
    bd_err_clear(&err);
}

static int parse(const char *s)
{
    reset();
    return sshc_parse_uri(s, &t, &err);
}

#define V(k) (t.v[k] ? t.v[k] : "(null)")

TestSuite(ssh_uri, .fini = reset);

Test(ssh_uri, user_host_port_and_path)
{
    cr_assert_eq(parse("ssh://alice@example.com:2222/srv/disk.qcow2"), 0,
                 "%s", err.msg);
    cr_assert_str_eq(V(SSHC_USER), "alice");
    cr_assert_str_eq(V(SSHC_HOST), "example.com");
    cr_assert_str_eq(V(SSHC_PORT), "2222");
    cr_assert_str_eq(V(SSHC_PATH), "/srv/disk.qcow2");
    cr_assert_null(t.v[SSHC_HOST_KEY_CHECK]);
}

Test(ssh_uri, host_only_defaults_to_port_22_and_local_user)
{
    struct ssh_conf c;
    cr_assert_eq(parse("ssh://db1/img.raw"), 0, "%s", err.msg);
    cr_assert_null(t.v[SSHC_USER]);
    cr_assert_null(t.v[SSHC_PORT]);
    cr_assert_eq(sshc_conf(&t, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.port, 22);
    cr_assert_null(c.user);
    cr_assert_eq(c.hkc.mode, SSH_HKC_KNOWN_HOSTS);
    cr_assert_eq(c.connect_timeout, SSH_DEFAULT_CONNECT_TIMEOUT);
}

Test(ssh_uri, ipv6_host_in_brackets)
{
    cr_assert_eq(parse("ssh://[::1]:2022/x"), 0, "%s", err.msg);
    cr_assert_str_eq(V(SSHC_HOST), "::1");
    cr_assert_str_eq(V(SSHC_PORT), "2022");
}

Test(ssh_uri, query_sets_host_key_check_and_identity)
{
    cr_assert_eq(parse("ssh://h/p?host_key_check=no&identity=/k%20ey"), 0,
                 "%s", err.msg);
    cr_assert_str_eq(V(SSHC_HOST_KEY_CHECK), "no");
    cr_assert_str_eq(V(SSHC_IDENTITY), "/k ey");
}

Test(ssh_uri, percent_escapes_in_the_path_are_decoded)
{
    cr_assert_eq(parse("ssh://h/my%20disk.img"), 0, "%s", err.msg);
    cr_assert_str_eq(V(SSHC_PATH), "/my disk.img");
}

Test(ssh_uri, unknown_query_parameter_is_refused)
{
    cr_assert_lt(parse("ssh://h/p?host_key_chek=no"), 0);
    cr_assert(strstr(err.msg, "unknown URI parameter 'host_key_chek'"), "%s",
              err.msg);
}

Test(ssh_uri, query_cannot_override_the_host)
{
    cr_assert_lt(parse("ssh://h/p?host=other"), 0);
    cr_assert(strstr(err.msg, "unknown URI parameter 'host'"), "%s", err.msg);
}

Test(ssh_uri, password_is_refused)
{
    cr_assert_lt(parse("ssh://bob:secret@h/p"), 0);
    cr_assert(strstr(err.msg, "ssh-agent"), "%s", err.msg);
}

Test(ssh_uri, missing_path_or_host_is_refused)
{
    cr_assert_lt(parse("ssh://h/"), 0);
    cr_assert(strstr(err.msg, "no remote file"), "%s", err.msg);
    cr_assert_lt(parse("ssh://h"), 0);
    cr_assert_lt(parse("ssh:///p"), 0);
    cr_assert(strstr(err.msg, "no host"), "%s", err.msg);
}

Test(ssh_uri, bad_port_is_refused)
{
    cr_assert_lt(parse("ssh://h:99999/p"), 0);
    cr_assert_lt(parse("ssh://h:0/p"), 0);
    cr_assert_lt(parse("ssh://h:ab/p"), 0);
}

Test(ssh_uri, other_scheme_is_refused)
{
    cr_assert_lt(parse("nbd://h/p"), 0);
}

TestSuite(ssh_conf, .fini = reset);

Test(ssh_conf, options_without_uri)
{
    struct ssh_conf c;
    reset();
    cr_assert_eq(sshc_set(&t, SSHC_HOST, "10.0.0.1"), 0);
    cr_assert_eq(sshc_set(&t, SSHC_PATH, "rel/disk.img"), 0);
    cr_assert_eq(sshc_set(&t, SSHC_PORT, "2200"), 0);
    cr_assert_eq(sshc_set(&t, SSHC_USER, "root"), 0);
    cr_assert_eq(sshc_set(&t, SSHC_CONNECT_TIMEOUT, "3"), 0);
    cr_assert_eq(sshc_conf(&t, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.port, 2200);
    cr_assert_eq(c.connect_timeout, 3);
    char *d = sshc_display(&c);
    cr_assert_str_eq(d, "ssh://root@10.0.0.1:2200/rel/disk.img");
    free(d);
}

Test(ssh_conf, missing_host_or_path)
{
    struct ssh_conf c;
    reset();
    cr_assert_eq(sshc_set(&t, SSHC_PATH, "/x"), 0);
    cr_assert_lt(sshc_conf(&t, &c, &err), 0);
    cr_assert(strstr(err.msg, "no host"), "%s", err.msg);
    reset();
    cr_assert_eq(sshc_set(&t, SSHC_HOST, "h"), 0);
    cr_assert_lt(sshc_conf(&t, &c, &err), 0);
    cr_assert(strstr(err.msg, "no remote file"), "%s", err.msg);
}

Test(ssh_conf, bad_numbers)
{
    struct ssh_conf c;
    reset();
    sshc_set(&t, SSHC_HOST, "h");
    sshc_set(&t, SSHC_PATH, "/p");
    sshc_set(&t, SSHC_PORT, "-1");
    cr_assert_lt(sshc_conf(&t, &c, &err), 0);
    cr_assert(strstr(err.msg, "port '-1'"), "%s", err.msg);
    bd_err_clear(&err);
    sshc_set(&t, SSHC_PORT, "22");
    sshc_set(&t, SSHC_TIMEOUT, "0");
    cr_assert_lt(sshc_conf(&t, &c, &err), 0);
    cr_assert(strstr(err.msg, "timeout"), "%s", err.msg);
}

Test(ssh_conf, display_of_ipv6_on_default_port)
{
    struct ssh_conf c;
    reset();
    sshc_set(&t, SSHC_HOST, "::1");
    sshc_set(&t, SSHC_PATH, "/d");
    cr_assert_eq(sshc_conf(&t, &c, &err), 0, "%s", err.msg);
    char *d = sshc_display(&c);
    cr_assert_str_eq(d, "ssh://[::1]/d");
    free(d);
}

TestSuite(ssh_hkc, .fini = reset);

Test(ssh_hkc, yes_no_and_default)
{
    struct ssh_hkc h;
    cr_assert_eq(ssh_hkc_parse(NULL, &h, &err), 0);
    cr_assert_eq(h.mode, SSH_HKC_KNOWN_HOSTS);
    cr_assert_eq(ssh_hkc_parse("yes", &h, &err), 0);
    cr_assert_eq(h.mode, SSH_HKC_KNOWN_HOSTS);
    cr_assert_eq(ssh_hkc_parse("no", &h, &err), 0);
    cr_assert_eq(h.mode, SSH_HKC_NONE);
}

Test(ssh_hkc, md5_hex_with_colons)
{
    struct ssh_hkc h;
    cr_assert_eq(ssh_hkc_parse("md5:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:"
                               "dd:ee:FF", &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h.mode, SSH_HKC_HASH);
    cr_assert_eq(h.type, SSH_HKC_MD5);
    cr_assert_eq(h.hash_len, 16);
    cr_assert_eq(h.hash[0], 0x00);
    cr_assert_eq(h.hash[15], 0xff);
}

Test(ssh_hkc, sha1_hex)
{
    struct ssh_hkc h;
    cr_assert_eq(ssh_hkc_parse("sha1:0123456789abcdef0123456789abcdef01234567",
                               &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h.type, SSH_HKC_SHA1);
    cr_assert_eq(h.hash_len, 20);
    cr_assert_eq(h.hash[19], 0x67);
}

Test(ssh_hkc, sha256_hex_and_base64_agree)
{
    struct ssh_hkc a, b, c;
    /* sha256 of the empty string, in both spellings */
    cr_assert_eq(ssh_hkc_parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4"
                               "649b934ca495991b7852b855", &a, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(ssh_hkc_parse("sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
                               &b, &err), 0, "%s", err.msg);
    cr_assert_eq(ssh_hkc_parse("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                               &c, &err), 0, "%s", err.msg);
    cr_assert_eq(a.hash_len, 32);
    cr_assert_eq(memcmp(a.hash, b.hash, 32), 0);
    cr_assert_eq(memcmp(a.hash, c.hash, 32), 0);
}

Test(ssh_hkc, wrong_length_or_junk_is_refused)
{
    struct ssh_hkc h;
    cr_assert_lt(ssh_hkc_parse("sha1:0123", &h, &err), 0);
    cr_assert(strstr(err.msg, "20 bytes"), "%s", err.msg);
    bd_err_clear(&err);
    cr_assert_lt(ssh_hkc_parse("md5:zz112233445566778899aabbccddeeff", &h, &err), 0);
    bd_err_clear(&err);
    cr_assert_lt(ssh_hkc_parse("sha256:!!!", &h, &err), 0);
    bd_err_clear(&err);
    cr_assert_lt(ssh_hkc_parse("maybe", &h, &err), 0);
    cr_assert(strstr(err.msg, "use yes, no"), "%s", err.msg);
}

TestSuite(ssh_open, .fini = reset);

static int open_ro(const char *src, struct bd_node **n)
{
    struct bd_flags f = {.read_only = true};
    reset();
    /* dotted options name the driver: no format then (core would see two) */
    return bd_open_image(src, strncmp(src, "driver=", 7) ? "raw" : NULL, NULL,
                         &f, n, &err);
}

Test(ssh_open, closed_port_names_host_and_port)
{
    struct bd_node *n = NULL;
    /* port 1 on loopback: nothing listens there */
    cr_assert_lt(open_ro("ssh://root@127.0.0.1:1/x?host_key_check=no", &n), 0);
    cr_assert(strstr(err.msg, "ssh://root@127.0.0.1:1/x"), "%s", err.msg);
    cr_assert(strstr(err.msg, "127.0.0.1:1 refused"), "%s", err.msg);
    cr_assert_null(n);
}

Test(ssh_open, uri_errors_come_from_the_driver)
{
    struct bd_node *n = NULL;
    cr_assert_lt(open_ro("ssh://h/x?colour=blue", &n), 0);
    cr_assert(strstr(err.msg, "unknown URI parameter 'colour'"), "%s", err.msg);
    cr_assert_lt(open_ro("ssh://h/x?host_key_check=sha1:00", &n), 0);
    cr_assert(strstr(err.msg, "expected 20 bytes"), "%s", err.msg);
}

Test(ssh_open, dotted_options_reach_the_driver)
{
    struct bd_node *n = NULL;
    cr_assert_lt(open_ro("driver=ssh,host=127.0.0.1,port=1,path=/x,"
                         "host_key_check=no,user=bob", &n), 0);
    cr_assert(strstr(err.msg, "ssh://bob@127.0.0.1:1/x"), "%s", err.msg);
    cr_assert(strstr(err.msg, "refused"), "%s", err.msg);
}

Test(ssh_conf, display_percent_encodes_and_parses_back)
{
    struct ssh_conf c, c2;
    struct sshc t2 = {0};
    reset();
    sshc_set(&t, SSHC_HOST, "h");
    sshc_set(&t, SSHC_USER, "a@b");
    sshc_set(&t, SSHC_PATH, "/dir/50% off?#x y.img");
    cr_assert_eq(sshc_conf(&t, &c, &err), 0, "%s", err.msg);
    char *d = sshc_display(&c);
    cr_assert_str_eq(d, "ssh://a%40b@h/dir/50%25%20off%3F%23x%20y.img");
    cr_assert_eq(sshc_parse_uri(d, &t2, &err), 0, "%s", err.msg);
    cr_assert_eq(sshc_conf(&t2, &c2, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c2.path, c.path);
    cr_assert_str_eq(c2.user, c.user);
    free(d);
    sshc_free(&t2);
}

Test(ssh_uri, fragment_is_refused)
{
    cr_assert_lt(parse("ssh://h/a#b"), 0);
    cr_assert(strstr(err.msg, "%23"), "%s", err.msg);
    cr_assert_eq(parse("ssh://h/a%23b"), 0, "%s", err.msg);
    cr_assert_str_eq(V(SSHC_PATH), "/a#b");
}

Test(ssh_conf, odd_host_is_refused)
{
    struct ssh_conf c;
    reset();
    sshc_set(&t, SSHC_HOST, "a/b");
    sshc_set(&t, SSHC_PATH, "/p");
    cr_assert_lt(sshc_conf(&t, &c, &err), 0);
    cr_assert(strstr(err.msg, "not a host name"), "%s", err.msg);
}
