/* core/opts.c and core/json.c: the option tree. */
#include <criterion/criterion.h>
#include "core/bd-internal.h"
#include "core/graph.h"
#include <stdio.h>

Test(opts, dotted_string_becomes_a_tree_with_views)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_opts_parse_dotted(o, "driver=raw,file.driver=file,"
                 "file.filename=disk.img,offset=1M,size=100M", NULL, &err), 0);
    cr_assert_str_eq(bd_opts_get(o, "driver"), "raw");
    struct bd_opts *f = bd_opts_sub(o, "file");
    cr_assert_str_eq(bd_opts_get(f, "filename"), "disk.img");
    uint64_t v;
    cr_assert_eq(bd_opts_get_size(o, "offset", 0, &v, &err), 0);
    cr_assert_eq(v, 1 << 20);
    bd_opts_free_view(f);
    bd_opts_free(o);
}

Test(opts, double_comma_escapes_a_comma_in_a_value)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_opts_parse_dotted(o, "filename=a,,b.img,size=1", NULL, &err), 0);
    cr_assert_str_eq(bd_opts_get(o, "filename"), "a,b.img");
    bd_opts_free(o);
}

Test(opts, implied_key_takes_a_bare_first_element)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_opts_parse_dotted(o, "disk.img,offset=512", "filename", &err), 0);
    cr_assert_str_eq(bd_opts_get(o, "filename"), "disk.img");
    bd_opts_free(o);
}

Test(opts, dash_and_underscore_name_the_same_key)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_opts_parse_dotted(o, "l2_cache_size=1M", NULL, &err), 0);
    cr_assert_str_eq(bd_opts_get(o, "l2-cache-size"), "1M");
    bd_opts_free(o);
}

Test(opts, json_is_flattened_like_dotted_options)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_opts_parse_json(o, "{\"driver\": \"raw\", \"offset\": 4096, "
                 "\"file\": {\"driver\": \"file\", \"filename\": \"a\\\"b\"},"
                 " \"ro\": true, \"list\": [1, \"x\"]}", &err), 0, "%s", err.msg);
    cr_assert_str_eq(bd_opts_get(o, "offset"), "4096");
    cr_assert_str_eq(bd_opts_get(o, "file.filename"), "a\"b");
    cr_assert_str_eq(bd_opts_get(o, "ro"), "on");
    cr_assert_str_eq(bd_opts_get(o, "list.1"), "x");
    bd_opts_free(o);
}

Test(opts, malformed_json_gives_an_error_with_the_offset)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_lt(bd_opts_parse_json(o, "{\"driver\": raw}", &err), 0);
    cr_assert(strstr(err.msg, "offset"), "%s", err.msg);
    bd_err_clear(&err);
    cr_assert_lt(bd_opts_parse_json(o, "{\"a\": \"unterminated}", &err), 0);
    bd_err_clear(&err);
    cr_assert_lt(bd_opts_parse_json(o, "[1,2]", &err), 0);
    bd_opts_free(o);
}

Test(opts, deeply_nested_json_is_refused_not_a_stack_overflow)
{
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(buf + n, "{\"a\":");
    n += (size_t)sprintf(buf + n, "1");
    for (int i = 0; i < 200; i++)
        buf[n++] = '}';
    buf[n] = 0;
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_lt(bd_opts_parse_json(o, buf, &err), 0);
    bd_opts_free(o);
}

Test(opts, sizes_take_binary_suffixes_and_refuse_garbage)
{
    uint64_t v;
    cr_assert_eq(bd_parse_size("4096", &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(bd_parse_size("64K", &v), 0);
    cr_assert_eq(v, 65536);
    cr_assert_eq(bd_parse_size("1.5M", &v), 0);
    cr_assert_eq(v, 1572864);
    cr_assert_eq(bd_parse_size("2GiB", &v), 0);
    cr_assert_eq(v, 2ULL << 30);
    cr_assert_lt(bd_parse_size("12Q", &v), 0);
    cr_assert_lt(bd_parse_size("-1", &v), 0);
    cr_assert_lt(bd_parse_size("99999999E", &v), 0);
    cr_assert_lt(bd_parse_size("", &v), 0);
}

Test(opts, unused_key_is_reported_with_a_did_you_mean)
{
    static const char *const names[] = { "offset", "size", NULL };
    static const struct bd_driver fake = { .name = "raw", .options = names };
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_opts_parse_dotted(o, "ofset=1M", NULL, &err), 0);
    bd_opts_set_owner(o, &fake);
    cr_assert_lt(bd_opts_check_unused(o, &err), 0);
    cr_assert(strstr(err.msg, "'ofset'") && strstr(err.msg, "did you mean 'offset'"),
              "%s", err.msg);
    bd_opts_free(o);
}

Test(opts, bool_and_enum_values_are_checked)
{
    static const char *const modes[] = { "off", "falloc", "full", NULL };
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = { 0 };
    bool b;
    bd_opts_parse_dotted(o, "a=on,b=maybe,p=full,q=fals", NULL, &err);
    cr_assert_eq(bd_opts_get_bool(o, "a", false, &b, &err), 0);
    cr_assert(b);
    cr_assert_eq(bd_opts_get_bool(o, "b", false, &b, &err), -EINVAL);
    bd_err_clear(&err);
    cr_assert_eq(bd_opts_get_enum(o, "p", modes, 0, &err), 2);
    cr_assert_eq(bd_opts_get_enum(o, "q", modes, 0, &err), -EINVAL);
    cr_assert(strstr(err.msg, "off, falloc, full"), "%s", err.msg);
    bd_opts_free(o);
}

Test(opts, suggest_finds_close_words_only)
{
    static const char *const words[] = { "cluster_size", "compat", "preallocation", NULL };
    cr_assert_str_eq(bd_suggest("cluster-szie", words), "cluster_size");
    cr_assert_str_eq(bd_suggest("compta", words), "compat");
    cr_assert_null(bd_suggest("zzzzzz", words));
}

Test(opts, a_view_copied_to_another_tree_reports_back_what_was_used)
{
    struct bd_opts *o = bd_opts_new(), *b = bd_opts_new();
    struct bd_err err = { 0 };
    cr_assert_eq(bd_opts_parse_dotted(o, "encrypt.key-secret=k2,"
                 "backing.encrypt.key-secret=k1,backing.file.filename=x,"
                 "backing.typo=1", NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_opts_parse_dotted(b, "file.filename=base.qcow2", NULL,
                                      &err), 0);
    struct bd_opts *v = bd_opts_sub(o, "backing");
    cr_assert_eq(bd_opts_copy_view(b, v), 0);
    cr_assert_str_eq(bd_opts_get(b, "encrypt.key-secret"), "k1");
    /* what the new tree had already stays */
    cr_assert_str_eq(bd_opts_get(b, "file.filename"), "base.qcow2");
    bd_opts_used_back(v, b);
    (void)bd_opts_get(o, "encrypt.key-secret");
    /* backing.typo was never read below: still unknown up here */
    cr_assert_lt(bd_opts_check_unused(o, &err), 0);
    cr_assert(strstr(err.msg, "backing.typo"), "%s", err.msg);
    bd_opts_free_view(v);
    bd_opts_free(b);
    bd_opts_free(o);
}
