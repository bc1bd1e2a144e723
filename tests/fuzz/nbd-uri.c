/*
 * Fuzz target for the nbd driver's source-string parser (target.c): NBD
 * URIs and legacy "nbd:" strings. Whatever parses and validates must print
 * a display URI that parses back to the same server and export.
 *
 * Built by meson as fuzz-nbd-uri (tests/fuzz/harness.h says how to run it
 * and how to build it for libFuzzer): `fuzz-nbd-uri STRING...` parses each
 * once, `fuzz-nbd-uri -n N STRING...` also N mutations of each.
 */
#include "harness.h"
#include "drivers/protocol/nbd/nbd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_round_trip(const struct nbd_conf *c)
{
    struct nbdt t2 = {0};
    struct nbd_conf c2;
    struct bd_err err = {0};
    char *d = nbdt_display(c);

    if (!d)
        return;
    if (nbdt_parse(d, &t2, &err) != 0 || nbdt_conf(&t2, &c2, &err) != 0 ||
        c2.is_unix != c->is_unix || c2.tls != c->tls ||
        !same(c2.host, c->host) || !same(c2.port, c->port) ||
        !same(c2.path, c->path) || !same(c2.export, c->export)) {
        fprintf(stderr, "display '%s' does not parse back: %s\n", d, err.msg);
        abort();
    }
    free(d);
    nbdt_free(&t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct nbdt t = {0};
    struct nbd_conf c;
    struct bd_err err = {0};

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (nbdt_parse(s, &t, &err) == 0) {
        bd_err_clear(&err);
        if (nbdt_conf(&t, &c, &err) == 0)
            check_round_trip(&c);
    } else if (!err.msg[0]) {
        fprintf(stderr, "'%s' failed without a message\n", s);
        abort();
    }
    nbdt_free(&t);
    free(s);
    return 0;
}

static const char alphabet[] = "nbds+unix:/?&=@[]%0123456789abcdef.-_~#;";

static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_text(m, len, alphabet);
}

const struct fuzz_target fuzz_target = {
    .text_seeds = true,
    .mutate = mutate,
};
