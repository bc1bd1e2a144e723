/*
 * Fuzz target for the vhdx driver: a whole image through bd_open_image()
 * (headers, region table, log replay, metadata, BAT), then reads and block
 * status, and (first input byte odd) a few writes on the temporary copy.
 * Parents are not followed (--backing=none), so one input is one file.
 *
 * libFuzzer:  clang -fsanitize=fuzzer,address,undefined ... tests/fuzz/vhdx.c
 * standalone: build with -DFUZZ_STANDALONE; `vhdx-fuzz FILE...` runs each
 *             file once, `vhdx-fuzz -n N SEED.vhdx...` runs N mutations of
 *             each: bytes changed in the headers, region tables, log,
 *             metadata and BAT, with the CRC-32C of headers, region tables
 *             and log entries recomputed half of the time so the mutations
 *             reach the code behind the checksums.
 */
#include "core/graph.h"
#include "drivers/format/vhdx/vhdx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fuzz_image(const uint8_t *data, size_t size, bool rw)
{
    char path[] = "/tmp/vhdx-fuzz.XXXXXX";
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
    if (bd_open_image(path, "vhdx", NULL, &flags, &n, &err) == 0) {
        len = bd_size(n);
        buf = malloc(1 << 20);
        /* the first 16 MiB, then a few spread offsets of a huge disk */
        for (int64_t off = 0; buf && off < len && off < (16 << 20);
             off += 1 << 20) {
            uint64_t l = len - off < (1 << 20) ? (uint64_t)(len - off)
                                                : (1u << 20);
            if (bd_pread(n, buf, l, (uint64_t)off) < 0)
                break;
        }
        for (int k = 1; buf && k < 8 && len > (1 << 20); k++) {
            uint64_t off = (uint64_t)len / 8 * (uint64_t)k / 4096 * 4096;
            uint64_t pnum;
            unsigned st;

            (void)bd_pread(n, buf, 4096, off);
            (void)bd_block_status(n, off, (uint64_t)len - off, &pnum, &st,
                                  NULL);
            if (rw) {
                memset(buf, k, 8192);
                (void)bd_pwrite(n, buf, 8192, off, 0);
                (void)bd_pwrite_zeroes(n, 4096, off, 0);
            }
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

/* Recompute the checksums a mutation broke (img = the image, no mode byte). */
static void fix_crcs(uint8_t *img, size_t len)
{
    static const size_t hdrs[2] = { VHDX_HEADER1_OFF, VHDX_HEADER2_OFF };
    static const size_t regs[2] = { VHDX_REGION1_OFF, VHDX_REGION2_OFF };

    for (int i = 0; i < 2; i++) {
        if (hdrs[i] + VHDX_HEADER_SIZE <= len)
            bd_put_le32(img + hdrs[i] + 4,
                        vhdx_crc32c_skip(img + hdrs[i], VHDX_HEADER_SIZE, 4));
        if (regs[i] + VHDX_REGION_SIZE <= len)
            bd_put_le32(img + regs[i] + 4,
                        vhdx_crc32c_skip(img + regs[i], VHDX_REGION_SIZE, 4));
    }
    if (VHDX_HEADER1_OFF + VHDX_HEADER_SIZE > len)
        return;
    /* log entries that lie whole inside the log of header 1 */
    uint64_t loff = bd_le64(img + VHDX_HEADER1_OFF + 72);
    uint64_t llen = bd_le32(img + VHDX_HEADER1_OFF + 68);
    for (uint64_t p = loff; llen && p + 4096 <= loff + llen && p + 4096 <= len;
         p += 4096) {
        uint32_t el = bd_le32(img + p + 8);
        if (memcmp(img + p, "loge", 4) != 0 || el < 4096 ||
            p + el > loff + llen || p + el > len)
            continue;
        bd_put_le32(img + p + 4, vhdx_crc32c_skip(img + p, el, 4));
    }
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
        seed[0] = 0;
        LLVMFuzzerTestOneInput(seed, len);
        srand(1);
        for (long r = 0; r < rounds; r++) {
            uint8_t *m = malloc(len);
            size_t mlen = len, span = len - 1 < (4u << 20) ? len - 1 : 4u << 20;

            memcpy(m, seed, len);
            for (int k = rand() % 8 + 1; k > 0; k--) {
                size_t at;
                switch (rand() % 4) {
                case 0:     /* header fields */
                    at = (rand() % 2 ? VHDX_HEADER1_OFF : VHDX_HEADER2_OFF) +
                         (size_t)rand() % 96;
                    break;
                case 1:     /* region table entries */
                    at = VHDX_REGION1_OFF + (size_t)rand() % 96;
                    break;
                default:    /* log, metadata, BAT */
                    at = (size_t)rand() % span;
                    break;
                }
                if (1 + at < len)
                    m[1 + at] = (uint8_t)(rand() % 3 ? rand() : 0xff);
            }
            if (rand() % 2)
                fix_crcs(m + 1, len - 1);
            if (rand() % 8 == 0)
                mlen = 1 + (size_t)rand() % len;
            m[0] = (uint8_t)(rand() % 4 == 0);      /* sometimes writable */
            LLVMFuzzerTestOneInput(m, mlen);
            free(m);
        }
        free(seed);
    }
    return 0;
}
#endif
