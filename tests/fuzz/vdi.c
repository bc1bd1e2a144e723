/*
 * Fuzz target for the vdi driver: a whole VDI image through bd_open_image(),
 * then reads, block status and (when the first input byte is odd) a few
 * writes (block allocation) on the writable temporary copy.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined ... tests/fuzz/vdi.c
 * standalone: build with -DFUZZ_STANDALONE; `vdi-fuzz FILE...` runs each
 *             file once, `vdi-fuzz -n N SEED.vdi...` runs N mutations of each
 *             (bytes flipped in the header and block map, the first 4 KiB).
 */
#include "core/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_FMT "vdi"

static void fuzz_image(const uint8_t *data, size_t size, bool rw)
{
    char path[] = "/tmp/" FUZZ_FMT "-fuzz.XXXXXX";
    struct bd_flags flags = { .read_only = !rw, .backing = BD_BACKING_NONE };
    struct bd_err err = { 0 };
    struct bd_node *n;
    uint8_t *buf;
    int64_t len;
    int fd = mkstemp(path);

    if (fd < 0)
        return;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return;
    }
    close(fd);
    if (bd_open_image(path, FUZZ_FMT, NULL, &flags, &n, &err) == 0) {
        len = bd_size(n);
        buf = calloc(1, 1 << 20);
        /* at most 64 MiB: enough for every block of a small image */
        for (int64_t off = 0; buf && off < len && off < (64 << 20);
             off += 1 << 20) {
            uint64_t l = len - off < (1 << 20) ? (uint64_t)(len - off)
                                                : (1u << 20);
            uint64_t pnum;
            unsigned st;

            if (bd_block_status(n, (uint64_t)off, l, &pnum, &st, NULL) < 0)
                break;
            if (bd_pread(n, buf, l, (uint64_t)off) < 0)
                break;
        }
        for (int i = 0; rw && buf && i < 4 && len > 0; i++) {
            uint64_t off = (uint64_t)(data[i % size] * 7919u) % (uint64_t)len;
            uint64_t l = (uint64_t)len - off < 70000 ? (uint64_t)len - off : 70000;

            if (bd_pwrite(n, buf, l, off, 0) < 0)
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
    if (size < 2)
        return 0;
    fuzz_image(data + 1, size - 1, data[0] & 1);
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

        if (!seed || len < 2) {
            perror(argv[i]);
            return 1;
        }
        seed[0] = 0;
        LLVMFuzzerTestOneInput(seed, len);
        srand(1);
        for (long r = 0; r < rounds; r++) {
            uint8_t *m = malloc(len);
            size_t mlen = len;

            memcpy(m, seed, len);
            /* damage the metadata: header and map live in the first 4 KiB */
            for (int k = rand() % 8 + 1; k > 0; k--) {
                size_t span = len - 1 < 4096 ? len - 1 : 4096;
                size_t at = 1 + (size_t)rand() % span;
                m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
            }
            if (rand() % 8 == 0)
                mlen = 2 + (size_t)rand() % (len - 1);
            m[0] = (uint8_t)rand();
            LLVMFuzzerTestOneInput(m, mlen);
            free(m);
        }
        free(seed);
    }
    return 0;
}
#endif
