/*
 * The driver contract of core/bd.h, checked on every driver in the
 * registry (core/registry.c), and the checker itself shown to catch each
 * kind of broken driver, so that a new driver breaking a rule fails here.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <strings.h>

#include "core/registry.h"

Test(registry, every_driver_keeps_the_contract)
{
    size_t count;
    const struct bd_driver *const *all = bd_driver_all(&count);
    cr_assert_gt(count, 3);
    for (size_t i = 0; i < count; i++) {
        char why[256] = "";
        cr_expect_eq(bd_driver_contract_check(all[i], why, sizeof(why)), 0,
                     "%s", why);
    }
}

Test(registry, names_and_schemes_are_unique)
{
    size_t count;
    const struct bd_driver *const *all = bd_driver_all(&count);
    for (size_t i = 0; i < count; i++) {
        for (size_t j = i + 1; j < count; j++) {
            cr_expect_neq(strcmp(all[i]->name, all[j]->name), 0,
                          "two drivers are called %s", all[i]->name);
            if (!all[i]->uri || !all[j]->uri)
                continue;
            for (const char *const *a = all[i]->uri->schemes; *a; a++)
                for (const char *const *b = all[j]->uri->schemes; *b; b++)
                    cr_expect_neq(strcasecmp(*a, *b), 0, "%s and %s both take "
                                  "%s://", all[i]->name, all[j]->name, *a);
        }
    }
}

Test(registry, every_scheme_finds_its_driver)
{
    size_t count;
    const struct bd_driver *const *all = bd_driver_all(&count);
    for (size_t i = 0; i < count; i++) {
        for (const char *const *s = all[i]->uri ? all[i]->uri->schemes : NULL;
             s && *s; s++)
            cr_expect_eq(bd_driver_for_scheme(*s), all[i], "%s", *s);
    }
    cr_expect_null(bd_driver_for_scheme("no-such-scheme"));
}

/* ---- the checker catches what it should: one broken driver per rule ---- */

static int open_ok(struct bd_node *n, const struct bd_opts *o, struct bd_err *e)
{
    (void)n; (void)o; (void)e;
    return 0;
}
static int pread_ok(struct bd_node *n, void *b, uint64_t l, uint64_t o)
{
    (void)n; (void)b; (void)l; (void)o;
    return 0;
}
static int pwrite_ok(struct bd_node *n, const void *b, uint64_t l, uint64_t o,
                     unsigned f)
{
    (void)n; (void)b; (void)l; (void)o; (void)f;
    return 0;
}
static int64_t size_ok(struct bd_node *n)
{
    (void)n;
    return 0;
}
static int probe_ok(const uint8_t *h, size_t l)
{
    (void)h; (void)l;
    return 0;
}
static int parse_ok(const char *u, struct bd_opts *o, struct bd_err *e)
{
    (void)u; (void)o; (void)e;
    return 0;
}
static int file_ok(const char *f, const struct bd_opts *o, struct bd_err *e)
{
    (void)f; (void)o; (void)e;
    return 0;
}
static void where_ok(struct bd_node *n, const char **s, const char **p)
{
    (void)n; *s = *p = "";
}
static int realpath_ok(struct bd_node *n, const char *p, char **o,
                       struct bd_err *e)
{
    (void)n; (void)p; (void)o; (void)e;
    return 0;
}
static int sibling_ok(struct bd_node *n, const char *p, struct bd_opts *o,
                      struct bd_err *e)
{
    (void)n; (void)p; (void)o; (void)e;
    return 0;
}
static int create_ok(struct bd_node *f, uint64_t s, const struct bd_opts *o,
                     struct bd_err *e)
{
    (void)f; (void)s; (void)o; (void)e;
    return 0;
}
static int status_ok(struct bd_node *n, uint64_t o, uint64_t l, uint64_t *p,
                     unsigned *s, uint64_t *m)
{
    (void)n; (void)o; (void)l; (void)s; (void)m;
    *p = 1;
    return 0;
}
static int map_ok(struct bd_node *n, uint64_t o, uint64_t l, int *fd,
                  uint64_t *fo)
{
    (void)n; (void)o; (void)l; (void)fd; (void)fo;
    return -ENOTSUP;
}
static void pin_ok(struct bd_node *n)
{
    (void)n;
}

static const char *const schemes[] = { "x-test", NULL };
static const struct bd_uri_ops uri_ok = { .schemes = schemes, .parse = parse_ok };
static const struct bd_uri_ops uri_no_parse = { .schemes = schemes };
static const struct bd_files_ops files_ok = { .create_file = file_ok,
                                              .remove_file = file_ok };
static const struct bd_files_ops files_no_remove = { .create_file = file_ok };
static const struct bd_remote_ops remote_ok = {
    .where = where_ok, .realpath = realpath_ok, .sibling = sibling_ok };
static const struct bd_remote_ops remote_no_sibling = {
    .where = where_ok, .realpath = realpath_ok };
static const struct bd_create_ops create_table = { .create = create_ok };
static const struct bd_pin_ops pin_table = { .pin = pin_ok, .unpin = pin_ok };
static const struct bd_pin_ops pin_half = { .pin = pin_ok };

#define PROTOCOL .kind = BD_PROTOCOL, .open = open_ok, .pread = pread_ok, \
                 .size = size_ok
#define FORMAT .kind = BD_FORMAT, .open = open_ok, .pread = pread_ok, \
               .pwrite = pwrite_ok, .probe = probe_ok

static bool broken(const struct bd_driver *d, const char *word)
{
    char why[256] = "";
    if (bd_driver_contract_check(d, why, sizeof(why)) != -EINVAL)
        return false;
    cr_expect(strstr(why, word), "'%s' does not say '%s'", why, word);
    cr_expect(strstr(why, d->name), "'%s' does not name the driver", why);
    return true;
}

Test(registry_rules, good_examples_of_each_kind_pass)
{
    const struct bd_driver p = { .name = "p", PROTOCOL, .uri = &uri_ok,
                                 .files = &files_ok, .remote = &remote_ok };
    const struct bd_driver f = { .name = "f", FORMAT, .create = &create_table,
                                 .block_status = status_ok, .pin = &pin_table };
    const struct bd_driver ro = { .name = "ro", .kind = BD_FORMAT,
                                  .read_only = true, .open = open_ok,
                                  .pread = pread_ok, .probe = probe_ok };
    const struct bd_driver flt = { .name = "flt", .kind = BD_FILTER,
                                   .open = open_ok, .pwrite = pwrite_ok };
    char why[256] = "";
    cr_expect_eq(bd_driver_contract_check(&p, why, sizeof(why)), 0, "%s", why);
    cr_expect_eq(bd_driver_contract_check(&f, why, sizeof(why)), 0, "%s", why);
    cr_expect_eq(bd_driver_contract_check(&ro, why, sizeof(why)), 0, "%s", why);
    cr_expect_eq(bd_driver_contract_check(&flt, why, sizeof(why)), 0, "%s", why);
}

Test(registry_rules, a_sub_table_must_be_complete)
{
    const struct bd_driver u = { .name = "u", PROTOCOL, .uri = &uri_no_parse };
    const struct bd_driver f = { .name = "f", PROTOCOL, .uri = &uri_ok,
                                 .files = &files_no_remove };
    const struct bd_driver r = { .name = "r", PROTOCOL, .uri = &uri_ok,
                                 .files = &files_ok, .remote = &remote_no_sibling };
    const struct bd_driver p = { .name = "p", FORMAT, .block_status = status_ok,
                                 .pin = &pin_half };
    cr_expect(broken(&u, "parse"));
    cr_expect(broken(&f, "remove_file"));
    cr_expect(broken(&r, "sibling"));
    cr_expect(broken(&p, "unpin"));
}

Test(registry_rules, remote_needs_uri_and_files)
{
    const struct bd_driver r = { .name = "r", PROTOCOL, .uri = &uri_ok,
                                 .remote = &remote_ok };
    cr_expect(broken(&r, "files"));
}

Test(registry_rules, a_format_has_no_protocol_ops)
{
    const struct bd_driver u = { .name = "u", FORMAT, .uri = &uri_ok };
    const struct bd_driver f = { .name = "f", FORMAT, .files = &files_ok };
    cr_expect(broken(&u, "protocol ops"));
    cr_expect(broken(&f, "protocol ops"));
    /* a format with no file (vvfat) may name itself by a prefix */
    const struct bd_driver nf = { .name = "nf", FORMAT, .uri = &uri_ok,
                                  .no_file = true };
    char why[256];
    cr_expect_eq(bd_driver_contract_check(&nf, why, sizeof(why)), 0, "%s", why);
}

Test(registry_rules, a_protocol_has_no_format_ops)
{
    const struct bd_driver c = { .name = "c", PROTOCOL, .create = &create_table };
    const struct bd_driver p = { .name = "p", PROTOCOL, .probe = probe_ok };
    cr_expect(broken(&c, "format ops"));
    cr_expect(broken(&p, "format ops"));
}

Test(registry_rules, a_read_only_format_has_no_write_ops)
{
    const struct bd_driver w = { .name = "w", FORMAT, .read_only = true };
    const struct bd_driver c = { .name = "c", .kind = BD_FORMAT,
                                 .read_only = true, .open = open_ok,
                                 .pread = pread_ok, .create = &create_table };
    cr_expect(broken(&w, "write ops"));
    cr_expect(broken(&c, "write ops"));
}

Test(registry_rules, pin_only_with_block_status_and_without_map_fd)
{
    const struct bd_driver a = { .name = "a", FORMAT, .pin = &pin_table };
    const struct bd_driver b = { .name = "b", FORMAT, .pin = &pin_table,
                                 .block_status = status_ok, .map_fd = map_ok };
    cr_expect(broken(&a, "block_status"));
    cr_expect(broken(&b, "map_fd"));
}

Test(registry_rules, a_filter_is_never_probed_or_created)
{
    const struct bd_driver p = { .name = "p", .kind = BD_FILTER,
                                 .open = open_ok, .probe = probe_ok };
    const struct bd_driver c = { .name = "c", .kind = BD_FILTER,
                                 .open = open_ok, .create = &create_table };
    cr_expect(broken(&p, "filter"));
    cr_expect(broken(&c, "filter"));
}

Test(registry_rules, open_and_pread_are_required)
{
    const struct bd_driver o = { .name = "o", .kind = BD_PROTOCOL,
                                 .pread = pread_ok, .size = size_ok };
    const struct bd_driver r = { .name = "r", .kind = BD_FORMAT,
                                 .open = open_ok, .read_only = true };
    cr_expect(broken(&o, "open"));
    cr_expect(broken(&r, "pread"));
}
