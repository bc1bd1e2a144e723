/*
 * Fuzz target for the vpc driver: a whole VHD image through bd_open_image(),
 * then reads, block status and (when the first input byte is odd) a few
 * writes on the writable temporary copy. Differencing parents are not
 * followed (--backing=none), so one input is one file.
 *
 * Built by meson as fuzz-vpc (tests/fuzz/harness.h says how to run it and
 * how to build it for libFuzzer): `fuzz-vpc -n N SEED.vhd...` runs each
 * seed once and N mutations of it (bytes flipped in the header area and
 * the trailing footer).
 */
#include "harness.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_mode(data, size, "vpc", fuzz_read_then_write);
    return 0;
}

/* Damage the metadata: the first 4 KiB and the last 512 bytes. */
static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = len - 1 < 4096 ? len - 1 : 4096;
        size_t tail = len - 1 < 512 ? len - 1 : 512;
        size_t at = rand() % 2 ? 1 + (size_t)rand() % span
                               : len - 1 - (size_t)rand() % tail;
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
