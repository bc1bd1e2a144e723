/*
 * Fuzz target for the iscsi driver's settings parsers (target.c): iscsi://
 * URLs and the [iscsi] config-file text. A URL that parses and validates
 * must give a display URL that parses back to the same portal, target, lun
 * and user, and never contains the password.
 *
 * Built by meson as fuzz-iscsi (tests/fuzz/harness.h says how to run it):
 * `fuzz-iscsi STRING...` parses each once, `fuzz-iscsi -n N STRING...` also
 * N mutations of each. Seeds: tests/fuzz/iscsi.seeds.
 */
#include "harness.h"
#include "drivers/protocol/iscsi/iscsi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_round_trip(const struct iscsi_conf *c)
{
    struct iscsit t2 = {0};
    struct iscsi_conf c2;
    struct bd_err err = {0};
    char *d = iscsi_conf_display(c);

    if (!d)
        return;
    /* (a short password may well be a piece of the host name) */
    if (c->password && strlen(c->password) >= 8 && strstr(d, c->password)) {
        fprintf(stderr, "display '%s' shows the password\n", d);
        abort();
    }
    /* the display has no password: give it one so a user still resolves */
    if (iscsit_parse(d, &t2, &err) != 0 ||
        (c->user && iscsit_set(&t2, ISCSIT_PASSWORD, "x") != 0) ||
        iscsi_conf_resolve(&t2, NULL, &c2, &err) != 0 ||
        !same(c2.portal, c->portal) || !same(c2.target, c->target) ||
        c2.lun != c->lun || !same(c2.user, c->user)) {
        fprintf(stderr, "display '%s' does not parse back: %s\n", d, err.msg);
        abort();
    }
    free(d);
    iscsi_conf_free(&c2);
    iscsit_free(&t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct iscsit t = {0};
    struct iscsi_conf c;
    struct iscsi_file_conf fc = {0};
    struct bd_err err = {0};

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (iscsit_parse(s, &t, &err) == 0) {
        bd_err_clear(&err);
        /* never open a file named by fuzzed input */
        free(t.v[ISCSIT_CONFIG]);
        t.v[ISCSIT_CONFIG] = NULL;
        if (iscsi_conf_resolve(&t, NULL, &c, &err) == 0)
            check_round_trip(&c);
        else if (!err.msg[0])
            abort();
        iscsi_conf_free(&c);
    } else if (!err.msg[0]) {
        fprintf(stderr, "'%s' failed without a message\n", s);
        abort();
    }
    iscsit_free(&t);
    bd_err_clear(&err);
    if (iscsi_config_parse(s, "fuzz", "iqn.x:y", &fc, &err) < 0 && !err.msg[0])
        abort();
    iscsi_file_conf_free(&fc);
    free(s);
    return 0;
}

static const char alphabet[] = "iscsi:/?&=@[]%\"\n 0123456789abcdef.-_#";

static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_text(m, len, alphabet);
}

const struct fuzz_target fuzz_target = {
    .text_seeds = true,
    .mutate = mutate,
};
