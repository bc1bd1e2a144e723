/*
 * Fuzz target for the vdi driver: a whole VDI image through bd_open_image(),
 * then reads, block status and (when the first input byte is odd) a few
 * writes (block allocation) on the writable temporary copy.
 *
 * Built by meson as fuzz-vdi (tests/fuzz/harness.h says how to run it and
 * how to build it for libFuzzer): `fuzz-vdi -n N SEED.vdi...` runs each
 * seed once and N mutations of it (bytes flipped in the header and block
 * map, the first 4 KiB).
 */
#include "harness.h"

#include <stdlib.h>

struct image {
    const uint8_t *data;
    size_t size;
    bool rw;
};

static void use_image(struct bd_node *n, void *arg)
{
    const struct image *im = arg;
    int64_t len = bd_size(n);
    uint8_t *buf = calloc(1, 1 << 20);

    /* at most 64 MiB: enough for every block of a small image */
    fuzz_read_all(n, buf, 64 << 20, true);
    for (int i = 0; im->rw && buf && i < 4 && len > 0; i++) {
        uint64_t off = (uint64_t)(im->data[i % im->size] * 7919u) %
                       (uint64_t)len;
        uint64_t l = (uint64_t)len - off < 70000 ? (uint64_t)len - off : 70000;

        if (bd_pwrite(n, buf, l, off, 0) < 0)
            break;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bd_flags flags = { .backing = BD_BACKING_NONE };
    struct image im;

    if (size < 2)
        return 0;
    im = (struct image){ data + 1, size - 1, data[0] & 1 };
    flags.read_only = !im.rw;
    fuzz_image(im.data, im.size, "vdi", &flags, use_image, &im);
    return 0;
}

/* Damage the metadata: header and map live in the first 4 KiB. */
static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = len - 1 < 4096 ? len - 1 : 4096;
        size_t at = 1 + (size_t)rand() % span;
        m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 8 == 0)
        mlen = 2 + (size_t)rand() % (len - 1);
    m[0] = (uint8_t)rand();
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
