/*
 * Fuzz target for the dmg driver's parsers and decoders: LZFSE/LZVN, ADC,
 * mish (blkx) tables, and whole images (koly + XML plist + chunk reads)
 * through bd_open_image(). The first input byte picks which.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined ... tests/fuzz/dmg.c
 * standalone: build without -fsanitize=fuzzer and -DFUZZ_STANDALONE; then
 *             `dmg-fuzz FILE...` runs each file once, and
 *             `dmg-fuzz -n N SEED.dmg...` runs N random mutations of them.
 */
#include "core/graph.h"
#include "drivers/format/dmg/dmg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fuzz_image(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/dmg-fuzz.XXXXXX";
    struct bd_flags flags = { .read_only = true };
    struct bd_err err = { 0 };
    struct bd_node *n;
    int fd = mkstemp(path);
    uint8_t *buf;
    int64_t len;

    if (fd < 0)
        return;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return;
    }
    close(fd);
    if (bd_open_image(path, "dmg", NULL, &flags, &n, &err) == 0) {
        len = bd_size(n);
        buf = malloc(1 << 20);
        /* read at most 64 MiB of the disk: enough to touch every chunk of
         * a small image without letting a huge declared size time out */
        for (int64_t off = 0; buf && off < len && off < (64 << 20);
             off += 1 << 20) {
            uint64_t l = len - off < (1 << 20) ? (uint64_t)(len - off)
                                                : (1u << 20);
            if (bd_pread(n, buf, l, (uint64_t)off) < 0)
                break;
        }
        free(buf);
        bd_node_close(n);
    }
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[1 << 20];
    size_t out_len;

    if (size < 3)
        return 0;
    out_len = (((size_t)data[1] << 8 | data[2]) + 1) * 16;
    switch (data[0] % 4) {
    case 0:
        (void)dmg_lzfse_decode(data + 3, size - 3, out, out_len);
        break;
    case 1:
        (void)dmg_adc_decode(data + 3, size - 3, out, out_len);
        break;
    case 2: {
        struct dmg_map m = { 0 };
        struct bd_err err = { 0 };

        if (dmg_map_add_mish(&m, data + 1, size - 1, 1 << 30, "fuzz",
                             &err) == 0)
            (void)dmg_map_finish(&m, 0, "fuzz", &err);
        dmg_map_free(&m);
        break;
    }
    default:
        fuzz_image(data + 1, size - 1);
        break;
    }
    return 0;
}

#ifdef FUZZ_STANDALONE
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    *len = buf ? fread(buf + 1, 1, (size_t)n, f) + 1 : 0;
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    long rounds = 0;
    int first = 1;

    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        rounds = atol(argv[2]);
        first = 3;
    }
    for (int i = first; i < argc; i++) {
        size_t len;
        uint8_t *seed = slurp(argv[i], &len);

        if (!seed) {
            perror(argv[i]);
            return 1;
        }
        seed[0] = 3;                    /* whole-image mode */
        LLVMFuzzerTestOneInput(seed, len);
        srand(1);
        for (long r = 0; r < rounds; r++) {
            uint8_t *m = malloc(len);
            size_t mlen = len;

            memcpy(m, seed, len);
            /* flip bytes, mostly in the trailer and plist at the end */
            for (int k = rand() % 8 + 1; k > 0; k--) {
                size_t at = rand() % 2 ? len - 1 - (size_t)rand() % (len - 1)
                                       : 1 + (size_t)rand() % (len - 1);
                m[at] = (uint8_t)rand();
            }
            if (rand() % 4 == 0)
                mlen = 1 + (size_t)rand() % len;
            m[0] = (uint8_t)(rand() % 4 == 0 ? rand() % 3 : 3);
            LLVMFuzzerTestOneInput(m, mlen);
            free(m);
        }
        free(seed);
    }
    return 0;
}
#endif
