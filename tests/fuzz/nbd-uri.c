/*
 * Fuzz target for the nbd driver's source-string parser (target.c): NBD
 * URIs and legacy "nbd:" strings. Whatever parses and validates must print
 * a display URI that parses back to the same server and export.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined -I. -Icore -Ibuild \
 *               tests/fuzz/nbd-uri.c build/libimgfuse-core.a \
 *               $(pkg-config --libs fuse3 zlib libzstd liburing libnbd) -lm
 * standalone: build with -DFUZZ_STANDALONE; `nbd-uri-fuzz STRING...` parses
 *             each once, `nbd-uri-fuzz -n N STRING...` also N mutations.
 */
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

#ifdef FUZZ_STANDALONE
static const char alphabet[] = "nbds+unix:/?&=@[]%0123456789abcdef.-_~#;";

int main(int argc, char **argv)
{
    long n = 0;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        n = atol(argv[2]);
        i = 3;
    }
    srand(1);
    for (; i < argc; i++) {
        size_t len = strlen(argv[i]);
        char *m = malloc(len + 9);
        LLVMFuzzerTestOneInput((const uint8_t *)argv[i], len);
        for (long k = 0; k < n && m; k++) {
            size_t ml = len;
            memcpy(m, argv[i], len);
            for (int e = 0; e < 1 + rand() % 4; e++) {
                size_t at = ml ? (size_t)rand() % ml : 0;
                switch (rand() % 3) {
                case 0:
                    if (ml)
                        m[at] = alphabet[rand() % (sizeof(alphabet) - 1)];
                    break;
                case 1:
                    if (ml < len + 8) {
                        memmove(m + at + 1, m + at, ml - at);
                        m[at] = alphabet[rand() % (sizeof(alphabet) - 1)];
                        ml++;
                    }
                    break;
                default:
                    if (ml) {
                        memmove(m + at, m + at + 1, ml - at - 1);
                        ml--;
                    }
                }
            }
            LLVMFuzzerTestOneInput((const uint8_t *)m, ml);
        }
        free(m);
    }
    return 0;
}
#endif
