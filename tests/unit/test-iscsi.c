/*
 * Unit tests of the iscsi driver's settings: URL parsing, the config file
 * with [iscsi] and [iscsi "IQN"] sections, where credentials come from, and
 * that no message shows a password. No target is contacted here.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/protocol/iscsi/iscsi.h"

static struct iscsit t;
static struct iscsi_conf c;
static struct iscsi_file_conf fc;
static struct bd_err err;

static void reset(void)
{
    iscsit_free(&t);
    iscsi_conf_free(&c);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
}

static int parse(const char *s)
{
    reset();
    return iscsit_parse(s, &t, &err);
}

static int resolve(char *const *env)
{
    iscsi_conf_free(&c);
    return iscsi_conf_resolve(&t, env, &c, &err);
}

#define V(k) (t.v[k] ? t.v[k] : "(null)")

TestSuite(iscsi_url, .fini = reset);

Test(iscsi_url, host_target_and_lun)
{
    cr_assert_eq(parse("iscsi://127.0.0.1/iqn.2024-01.test:disk1/1"), 0);
    cr_assert_str_eq(V(ISCSIT_PORTAL), "127.0.0.1");
    cr_assert_str_eq(V(ISCSIT_TARGET), "iqn.2024-01.test:disk1");
    cr_assert_str_eq(V(ISCSIT_LUN), "1");
    cr_assert_null(t.v[ISCSIT_USER]);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.portal, "127.0.0.1:3260");
    cr_assert_eq(c.lun, 1);
    cr_assert_eq(c.digest, ISCSI_DIGEST_NONE_CRC32C);
    cr_assert(strncmp(c.initiator, "iqn.2008-11.org.linux-kvm:", 26) == 0,
              "%s", c.initiator);
}

Test(iscsi_url, user_password_and_port)
{
    cr_assert_eq(parse("iscsi://bob%s3cret-pass@host.example:3261/iqn.x:y/0"), 0);
    cr_assert_str_eq(V(ISCSIT_USER), "bob");
    cr_assert_str_eq(V(ISCSIT_PASSWORD), "s3cret-pass");
    cr_assert_str_eq(V(ISCSIT_PORTAL), "host.example:3261");
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.host, "host.example");
    cr_assert_str_eq(c.port, "3261");
    char *d = iscsi_conf_display(&c);
    cr_assert_str_eq(d, "iscsi://bob@host.example:3261/iqn.x:y/0");
    free(d);
}

Test(iscsi_url, ipv6_portal_keeps_brackets)
{
    cr_assert_eq(parse("iscsi://[::1]:3262/iqn.x:y/2"), 0);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.host, "::1");
    cr_assert_str_eq(c.portal, "[::1]:3262");
}

Test(iscsi_url, query_gives_digest_and_mutual_chap)
{
    cr_assert_eq(parse("iscsi://u%pw123456789012@h/iqn.x:y/1?header_digest=crc32c"
                       "&target_user=out&target_password=outsecret1234"), 0);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_eq(c.digest, ISCSI_DIGEST_CRC32C);
    cr_assert_str_eq(c.target_user, "out");
    cr_assert_str_eq(c.target_password, "outsecret1234");
}

Test(iscsi_url, malformed_urls_are_refused)
{
    const char *bad[] = {
        "nbd://h/x/1", "iscsi://", "iscsi://h", "iscsi://h/", "iscsi://h/iqn",
        "iscsi://h/iqn/", "iscsi://@h/iqn/1", "iscsi:///iqn/1",
        "iscsi://h/iqn/1?bogus=1", "iscsi://h/iqn/1?header_digest",
        "iscsi://[::1/iqn/1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(bad[i]);
        if (r == 0)
            r = resolve(NULL);
        cr_assert_lt(r, 0, "'%s' was accepted", bad[i]);
        cr_assert_neq(err.msg[0], '\0', "'%s': no message", bad[i]);
    }
}

Test(iscsi_url, bad_lun_port_and_digest_values)
{
    const char *bad[] = {
        "iscsi://h/iqn/x", "iscsi://h/iqn/-1", "iscsi://h/iqn/99999",
        "iscsi://h:0/iqn/1", "iscsi://h:70000/iqn/1", "iscsi://h:x/iqn/1",
        "iscsi://h/iqn/1?header_digest=md5", "iscsi://a:b:c/iqn/1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(parse(bad[i]), 0, "%s: %s", bad[i], err.msg);
        cr_assert_eq(resolve(NULL), -EINVAL, "'%s' was accepted", bad[i]);
    }
}

Test(iscsi_url, every_digest_spelling)
{
    const char *in[] = {"CRC32C", "crc32c", "CRC32C-NONE", "crc32c_none",
                        "NONE-CRC32C", "none_crc32c", "NONE", "none"};
    enum iscsi_digest out[] = {ISCSI_DIGEST_CRC32C, ISCSI_DIGEST_CRC32C,
                               ISCSI_DIGEST_CRC32C_NONE, ISCSI_DIGEST_CRC32C_NONE,
                               ISCSI_DIGEST_NONE_CRC32C, ISCSI_DIGEST_NONE_CRC32C,
                               ISCSI_DIGEST_NONE, ISCSI_DIGEST_NONE};
    for (size_t i = 0; i < 8; i++) {
        parse("iscsi://h/iqn/1");
        iscsit_set(&t, ISCSIT_DIGEST, in[i]);
        cr_assert_eq(resolve(NULL), 0, "%s: %s", in[i], err.msg);
        cr_assert_eq(c.digest, out[i], "%s", in[i]);
    }
}

TestSuite(iscsi_creds, .fini = reset);

Test(iscsi_creds, environment_fills_user_and_password)
{
    char *env[] = {"LIBISCSI_CHAP_USERNAME=envuser",
                   "LIBISCSI_CHAP_PASSWORD=envsecret123", NULL};
    parse("iscsi://h/iqn/1");
    cr_assert_eq(resolve(env), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "envuser");
    cr_assert_str_eq(c.password, "envsecret123");
}

Test(iscsi_creds, url_user_takes_password_from_environment)
{
    char *env[] = {"LIBISCSI_CHAP_USERNAME=other",
                   "LIBISCSI_CHAP_PASSWORD=envsecret123", NULL};
    parse("iscsi://urluser@h/iqn/1");
    cr_assert_eq(resolve(env), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "urluser");
    cr_assert_str_eq(c.password, "envsecret123");
}

Test(iscsi_creds, user_without_password_is_an_error)
{
    parse("iscsi://lonely@h/iqn/1");
    cr_assert_eq(resolve(NULL), -EINVAL);
    cr_assert(strstr(err.msg, "LIBISCSI_CHAP_PASSWORD"), "%s", err.msg);
}

Test(iscsi_creds, mutual_chap_needs_both_halves_and_a_user)
{
    parse("iscsi://u%p12345678901@h/iqn/1?target_user=out");
    cr_assert_eq(resolve(NULL), -EINVAL);
    parse("iscsi://h/iqn/1?target_user=out&target_password=outsecret1234");
    cr_assert_eq(resolve(NULL), -EINVAL);
}

Test(iscsi_creds, no_message_shows_the_password)
{
    parse("iscsi://u%Sup3rSecretPw@h:99999/iqn/1");
    cr_assert_lt(resolve(NULL), 0);
    cr_assert_null(strstr(err.msg, "Sup3rSecretPw"), "%s", err.msg);
    cr_assert_eq(resolve(NULL), -EINVAL);
    char *d;
    parse("iscsi://u%Sup3rSecretPw@h/iqn/1");
    cr_assert_eq(resolve(NULL), 0);
    d = iscsi_conf_display(&c);
    cr_assert_null(strstr(d, "Sup3rSecretPw"), "%s", d);
    free(d);
}

TestSuite(iscsi_config, .fini = reset);

static const char *conf_text =
    "# test\n"
    "[drive]\n"
    "  file = \"x\"\n"
    "\n"
    "[iscsi]\n"
    "  user = \"generic\"\n"
    "  password = \"genericpw123\"\n"
    "  initiator-name = \"iqn.2024-01.test:init\"\n"
    "  header-digest = \"CRC32C-NONE\"\n"
    "\n"
    "[iscsi \"iqn.2024-01.test:disk1\"]\n"
    "  user = \"special\"\n"
    "  password = \"specialpw123\"\n"
    "  header-digest = \"CRC32C\"\n"
    "[iscsi \"iqn.2024-01.test:other\"]\n"
    "  user = \"nope\"\n";

Test(iscsi_config, target_section_wins_over_generic)
{
    cr_assert_eq(iscsi_config_parse(conf_text, "t.conf",
                                    "iqn.2024-01.test:disk1", &fc, &err), 0,
                 "%s", err.msg);
    cr_assert_str_eq(fc.user, "special");
    cr_assert_str_eq(fc.password, "specialpw123");
    cr_assert_str_eq(fc.initiator, "iqn.2024-01.test:init");
    cr_assert_str_eq(fc.digest, "CRC32C");
}

Test(iscsi_config, other_targets_get_the_generic_section)
{
    cr_assert_eq(iscsi_config_parse(conf_text, "t.conf", "iqn.2024-01.test:zzz",
                                    &fc, &err), 0, "%s", err.msg);
    cr_assert_str_eq(fc.user, "generic");
    cr_assert_str_eq(fc.digest, "CRC32C-NONE");
}

Test(iscsi_config, generic_after_target_section_does_not_override)
{
    const char *txt = "[iscsi \"iqn.a\"]\nuser = a\npassword = apw\n"
                      "[iscsi]\nuser = g\n";
    cr_assert_eq(iscsi_config_parse(txt, "t.conf", "iqn.a", &fc, &err), 0);
    cr_assert_str_eq(fc.user, "a");
}

Test(iscsi_config, errors_name_file_and_line)
{
    cr_assert_eq(iscsi_config_parse("[iscsi]\nuser \"x\"\n", "t.conf", "q",
                                    &fc, &err), -EINVAL);
    cr_assert(strstr(err.msg, "t.conf:2"), "%s", err.msg);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
    cr_assert_eq(iscsi_config_parse("[iscsi]\nbogus = 1\n", "t.conf", "q",
                                    &fc, &err), -EINVAL);
    cr_assert(strstr(err.msg, "bogus"), "%s", err.msg);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
    cr_assert_eq(iscsi_config_parse("[iscsi \"x\n", "t.conf", "q", &fc, &err),
                 -EINVAL);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
    cr_assert_eq(iscsi_config_parse("[iscsi]\nuser = \"x\n", "t.conf", "q",
                                    &fc, &err), -EINVAL);
}

Test(iscsi_config, file_is_read_through_the_config_option)
{
    char path[] = "/tmp/test-iscsi-conf.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, conf_text, strlen(conf_text)),
                 (ssize_t)strlen(conf_text));
    close(fd);
    parse("iscsi://h/iqn.2024-01.test:disk1/1");
    iscsit_set(&t, ISCSIT_CONFIG, path);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "special");
    cr_assert_str_eq(c.password, "specialpw123");
    cr_assert_str_eq(c.initiator, "iqn.2024-01.test:init");
    cr_assert_eq(c.digest, ISCSI_DIGEST_CRC32C);
    /* the URL's credentials and the environment come first */
    char *env[] = {"LIBISCSI_CHAP_USERNAME=envuser",
                   "LIBISCSI_CHAP_PASSWORD=envsecret123", NULL};
    cr_assert_eq(resolve(env), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "envuser");
    cr_assert_str_eq(c.password, "envsecret123");
    unlink(path);
    cr_assert_eq(resolve(NULL), -ENOENT);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
}
