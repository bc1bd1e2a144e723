/*
 * Fuzz target for the qcow (version 1) driver: a whole qcow image through
 * bd_open_image(), then reads, block status and (when the first input byte
 * is odd) a few writes (cluster and L2 table allocation, compressed clusters
 * rewritten) on the writable temporary copy.
 *
 * Built by meson as fuzz-qcow (tests/fuzz/harness.h says how to run it and
 * how to build it for libFuzzer): `fuzz-qcow -n N SEED.qcow...` runs each
 * seed once and N mutations of it (bytes flipped in the header, L1 and L2
 * tables and compressed data: the first 16 KiB).
 */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_mode(data, size, "qcow", fuzz_read_then_write);
    return 0;
}

/* Damage the metadata: header, L1 and the first L2 tables. */
static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_head(m, len, 16384);
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
