/*
 * core/source.c: what the front-end asks about a SOURCE before opening it,
 * where its text spells secrets (blanked in argv) and whether its protocol
 * reads an option (--iscsi-config).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"
#include "core/graph.h"

#define MAX_SPANS 8

static struct bd_span spans[MAX_SPANS];

static int secrets(const char *src)
{
    memset(spans, 0xa5, sizeof(spans));
    return bd_source_secrets(src, spans, MAX_SPANS);
}

/* The text of span i of src. */
static const char *span_text(const char *src, int i)
{
    static char buf[256];
    cr_assert_leq(spans[i].off + spans[i].len, strlen(src));
    snprintf(buf, sizeof(buf), "%.*s", (int)spans[i].len, src + spans[i].off);
    return buf;
}

Test(source, files_json_dotted_and_protocols_without_secrets_hold_none)
{
    cr_assert_eq(secrets("disk.img"), 0);
    cr_assert_eq(secrets("/dev/null"), 0);
    cr_assert_eq(secrets("json:{\"driver\": \"raw\", \"file\": {\"filename\": "
                         "\"user%secret@x\"}}"), 0);
    cr_assert_eq(secrets("driver=raw,file.filename=user%secret@x"), 0);
    cr_assert_eq(secrets("nbd://user%secret@127.0.0.1:10809/exp"), 0);
}

Test(source, no_protocol_reads_options_of_a_file)
{
    cr_assert_not(bd_source_takes_option("disk.img", "config"));
    cr_assert_not(bd_source_takes_option("driver=raw,file.filename=a", "config"));
    cr_assert_not(bd_source_takes_option("json:{\"driver\": \"raw\"}", "config"));
    cr_assert_not(bd_source_takes_option("nosuchscheme://h/x", "config"));
}

#if HAVE_DRV_NBD
Test(source, nbd_reads_its_options_but_no_config)
{
    cr_assert(bd_source_takes_option("nbd://127.0.0.1/exp", "export"));
    cr_assert_not(bd_source_takes_option("nbd://127.0.0.1/exp", "config"));
}
#endif

#if HAVE_DRV_ISCSI
Test(source, iscsi_password_is_found_where_the_url_spells_it)
{
    const char *src = "iscsi://user%secret@127.0.0.1/iqn.x:t/1";
    cr_assert_eq(secrets(src), 1);
    cr_assert_eq(spans[0].off, strlen("iscsi://user%"));
    cr_assert_str_eq(span_text(src, 0), "secret");
}

Test(source, iscsi_url_without_a_password_holds_no_secret)
{
    cr_assert_eq(secrets("iscsi://127.0.0.1/iqn.x:t/1"), 0);
    cr_assert_eq(secrets("iscsi://user@127.0.0.1/iqn.x:t/1"), 0);
    cr_assert_eq(secrets("iscsi://user%@127.0.0.1/iqn.x:t/1"), 0);
}

Test(source, iscsi_password_equal_to_the_user_is_found_after_the_percent)
{
    const char *src = "iscsi://pw%pw@pw/iqn.x:pw/1";
    cr_assert_eq(secrets(src), 1);
    cr_assert_eq(spans[0].off, strlen("iscsi://pw%"));
    cr_assert_eq(spans[0].len, 2);
}

/* iscsi URLs take the password as written: a later '%' is part of it. */
Test(source, iscsi_password_with_percent_escapes_is_found_whole)
{
    const char *src = "iscsi://user%se%41cr%25et@127.0.0.1/iqn.x:t/1";
    cr_assert_eq(secrets(src), 1);
    cr_assert_str_eq(span_text(src, 0), "se%41cr%25et");
}

Test(source, iscsi_password_with_an_at_sign_is_found_whole)
{
    const char *src = "iscsi://user%p@ss@127.0.0.1/iqn.x:t/1";
    cr_assert_eq(secrets(src), 1);
    cr_assert_str_eq(span_text(src, 0), "p@ss");
}

Test(source, iscsi_target_password_in_the_query_is_a_secret_too)
{
    const char *src = "iscsi://user%secret@127.0.0.1/iqn.x:t/1"
                      "?target_user=tu&target_password=tsecret";
    cr_assert_eq(secrets(src), 2);
    cr_assert_str_eq(span_text(src, 0), "secret");
    cr_assert_str_eq(span_text(src, 1), "tsecret");
}

Test(source, more_secrets_than_room_are_counted)
{
    const char *src = "iscsi://user%secret@127.0.0.1/iqn.x:t/1"
                      "?target_user=tu&target_password=tsecret";
    cr_assert_eq(bd_source_secrets(src, spans, 1), 2);
    cr_assert_str_eq(span_text(src, 0), "secret");
}

/* Opening it says what is wrong; until then nothing can be told apart. */
Test(source, iscsi_url_that_does_not_parse_holds_no_secret)
{
    cr_assert_eq(secrets("iscsi://user%secret@127.0.0.1"), 0);
}

Test(source, iscsi_reads_a_config_option)
{
    cr_assert(bd_source_takes_option("iscsi://h/iqn.x:t/1", "config"));
    cr_assert(bd_source_takes_option("ISCSI://h/iqn.x:t/1", "config"));
    cr_assert_not(bd_source_takes_option("iscsi://h/iqn.x:t/1", "no-such-option"));
}
#endif
