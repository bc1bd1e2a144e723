/*
 * Fuzz target for the vmdk driver: the descriptor parser on its own, and
 * whole single-file images (sparse header, grain directory and tables,
 * stream footer, compressed grains) through bd_open_image(), read and then
 * written and grown. The first input byte picks which.
 *
 * Built by meson as fuzz-vmdk (tests/fuzz/harness.h says how to run it and
 * how to build it for libFuzzer): `fuzz-vmdk -n N SEED.vmdk...` runs each
 * seed read-only and N random mutations of it.
 */
#include "harness.h"
#include "drivers/format/vmdk/vmdk.h"

#include <stdlib.h>

static void use_image(struct bd_node *n, void *arg)
{
    bool do_write = *(const bool *)arg;
    int64_t len = bd_size(n);
    uint8_t *buf = calloc(1, 1 << 20);

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
    /* grow a small image (directory entries, stale entries cleared, the
     * descriptor rewritten) and read the new end back */
    if (buf && do_write && len > 0 && len < (64 << 20)) {
        struct bd_err e = { 0 };
        uint64_t to = ((uint64_t)len + (33 << 20) + 4096) & ~(uint64_t)511;

        if (bd_truncate(n, to, BD_PREALLOC_OFF, &e) == 0)
            (void)bd_pread(n, buf, 1 << 20, to - (1 << 20));
    }
    free(buf);
}

static void fuzz_vmdk(const uint8_t *data, size_t size, bool do_write)
{
    struct bd_flags flags = { .read_only = !do_write,
                              .locking = BD_LOCKING_OFF };

    fuzz_image(data, size, "vmdk", &flags, use_image, &do_write);
}

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
        fuzz_vmdk(data + 1, size - 1, false);
        break;
    default:
        fuzz_vmdk(data + 1, size - 1, true);
        break;
    }
    return 0;
}

/* Flip bytes, mostly in the header, descriptor and tables. */
static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t at = rand() % 2 ? 1 + (size_t)rand() % (len - 1 < 4096 ? len - 1 : 4096)
                               : 1 + (size_t)rand() % (len - 1);
        m[at] = rand() % 3 ? (uint8_t)rand() : (uint8_t)(m[at] ^ (1u << (rand() % 8)));
    }
    if (rand() % 5 == 0)
        mlen = 1 + (size_t)rand() % len;
    m[0] = (uint8_t)(rand() % 6 == 0 ? 0 : rand() % 4 == 0 ? 2 : 1);
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 1,                     /* whole image, read-only */
    .mutate = mutate,
};
