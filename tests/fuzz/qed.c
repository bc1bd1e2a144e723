/*
 * Fuzz target for the qed driver: a whole QED image through
 * bd_open_image(), then reads, block status and (when the first input byte
 * is odd) writes that allocate clusters and tables, on the writable
 * temporary copy; read-write opens of images with the need-check flag run
 * the consistency check and its repairs.
 *
 * Built by meson as fuzz-qed (tests/fuzz/harness.h says how to run it):
 * `fuzz-qed -n N SEED.qed...` runs each seed once and N mutations of it
 * (bytes changed in the header and the first tables).
 */
#include "harness.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_mode(data, size, "qed", fuzz_read_then_write);
    return 0;
}

/* Damage the metadata: the header (first 64 bytes) most often, then the
 * L1 and L2 tables in the first 128 KiB. */
static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = rand() % 2 ? 64 : 131072;
        size_t at;

        span = len - 1 < span ? len - 1 : span;
        at = 1 + (size_t)rand() % span;
        m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 16 == 0)
        m[1 + 16] |= 0x02;              /* need-check: the check runs */
    if (rand() % 8 == 0)
        mlen = 2 + (size_t)rand() % (len - 1);
    m[0] = (uint8_t)rand();
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
