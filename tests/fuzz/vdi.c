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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_mode(data, size, "vdi", fuzz_read_then_write);
    return 0;
}

/* Damage the metadata: header and map live in the first 4 KiB. */
static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_head(m, len, 4096);
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
