/*
 * Fuzz target for the ssh driver's target parsing (target.c): ssh:// URIs
 * with their query, and host_key_check strings. Whatever parses and
 * validates must give a display URI that parses back to the same user,
 * host, port and path.
 *
 * Built by meson as fuzz-ssh (tests/fuzz/harness.h says how to run it):
 * `fuzz-ssh STRING...` parses each once, `fuzz-ssh -n N STRING...` also N
 * mutations of each.
 */
#include "harness.h"
#include "drivers/protocol/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_round_trip(const struct ssh_conf *c)
{
    struct sshc t2 = {0};
    struct ssh_conf c2;
    struct bd_err err = {0};
    char *d = sshc_display(c);

    if (!d)
        return;
    if (sshc_parse_uri(d, &t2, &err) != 0 || sshc_conf(&t2, &c2, &err) != 0 ||
        !same(c2.user, c->user) || !same(c2.host, c->host) ||
        c2.port != c->port || !same(c2.path, c->path)) {
        fprintf(stderr, "display '%s' does not parse back: %s\n", d, err.msg);
        abort();
    }
    free(d);
    sshc_free(&t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct sshc t = {0};
    struct ssh_conf c;
    struct ssh_hkc h;
    struct bd_err err = {0};

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (sshc_parse_uri(s, &t, &err) == 0) {
        bd_err_clear(&err);
        if (sshc_conf(&t, &c, &err) == 0)
            check_round_trip(&c);
    } else if (!err.msg[0]) {
        fprintf(stderr, "'%s' failed without a message\n", s);
        abort();
    }
    bd_err_clear(&err);
    if (ssh_hkc_parse(s, &h, &err) < 0 && !err.msg[0]) {
        fprintf(stderr, "host_key_check '%s' failed without a message\n", s);
        abort();
    }
    sshc_free(&t);
    free(s);
    return 0;
}

static const char alphabet[] = "ssh:/?&=@[]%0123456789abcdefABCDEF+.-_~#;";

static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_text(m, len, alphabet);
}

const struct fuzz_target fuzz_target = {
    .text_seeds = true,
    .mutate = mutate,
};
