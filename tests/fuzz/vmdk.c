/*
 * Fuzz target for the vmdk driver: the descriptor parser on its own, and
 * whole single-file images (sparse header, grain directory and tables,
 * stream footer, compressed grains) through bd_open_image(), read and then
 * written. The first input byte picks which.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined ... tests/fuzz/vmdk.c
 * standalone: build with -DFUZZ_STANDALONE, link with libimgfuse-core.a;
 *             `vmdk-fuzz FILE...` runs each file once, and
 *             `vmdk-fuzz -n N SEED.vmdk...` runs N random mutations of them.
 */
#include "core/graph.h"
#include "drivers/format/vmdk/vmdk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fuzz_image(const uint8_t *data, size_t size, bool do_write)
{
    char path[] = "/tmp/vmdk-fuzz.XXXXXX";
    struct bd_flags flags = { .read_only = !do_write, .locking = BD_LOCKING_OFF };
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
    if (bd_open_image(path, "vmdk", NULL, &flags, &n, &err) == 0) {
        len = bd_size(n);
        buf = calloc(1, 1 << 20);
        /* at most 64 MiB: every grain of a small image, no time-out on a
         * huge declared capacity */
        for (int64_t off = 0; buf && off < len && off < (64 << 20);
             off += 1 << 20) {
            uint64_t l = len - off < (1 << 20) ? (uint64_t)(len - off)
                                                : (1u << 20);
            if (bd_pread(n, buf, l, (uint64_t)off) < 0)
                break;
            if (do_write && off % (3 << 20) == 0)
                (void)bd_pwrite(n, buf, l < 70000 ? l : 70000, (uint64_t)off, 0);
        }
        free(buf);
        bd_node_close(n);
    }
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: {
        struct vmdk_desc d;
        struct bd_err err = { 0 };
        if (vmdk_desc_parse((const char *)data + 1, size - 1, &d, "fuzz", &err) == 0)
            vmdk_desc_free(&d);
        break;
    }
    case 1:
        fuzz_image(data + 1, size - 1, false);
        break;
    default:
        fuzz_image(data + 1, size - 1, true);
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
        seed[0] = 1;
        LLVMFuzzerTestOneInput(seed, len);
        srand(1 + i);
        for (long r = 0; r < rounds; r++) {
            uint8_t *m = malloc(len);
            size_t mlen = len;

            memcpy(m, seed, len);
            /* flip bytes, mostly in the header, descriptor and tables */
            for (int k = rand() % 8 + 1; k > 0; k--) {
                size_t at = rand() % 2 ? 1 + (size_t)rand() % (len - 1 < 4096 ? len - 1 : 4096)
                                       : 1 + (size_t)rand() % (len - 1);
                m[at] = rand() % 3 ? (uint8_t)rand() : (uint8_t)(m[at] ^ (1u << (rand() % 8)));
            }
            if (rand() % 5 == 0)
                mlen = 1 + (size_t)rand() % len;
            m[0] = (uint8_t)(rand() % 6 == 0 ? 0 : rand() % 4 == 0 ? 2 : 1);
            LLVMFuzzerTestOneInput(m, mlen);
            free(m);
        }
        free(seed);
    }
    return 0;
}
#endif
