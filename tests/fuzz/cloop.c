/*
 * Fuzz target for the cloop driver: whole images (header, block index,
 * block reads) through bd_open_image(), the index checks on an arbitrary
 * index, and the block codecs on arbitrary data. The first input byte
 * picks which.
 *
 * Built by meson as fuzz-cloop (tests/fuzz/harness.h says how to run it
 * and how to build it for libFuzzer): `fuzz-cloop -n N SEED.cloop...` runs
 * each seed in whole-image mode and N mutations of it.
 */
#include "harness.h"
#include "drivers/format/cloop/cloop.h"

#include <stdlib.h>
#include <string.h>

/* data: version byte, block size (4 bytes), then index entries. */
static void check_index(const uint8_t *data, size_t size)
{
    struct cloop_index ix = { 0 };
    struct bd_err err = { 0 };
    size_t n;

    if (size < 5 + 16)
        return;
    ix.version = data[0] & 1 ? 4 : 2;
    ix.block_size = (bd_be32(data + 1) % 64 + 1) * 512;
    n = (size - 5) / 8;
    ix.n_blocks = (uint32_t)(n - 1);
    ix.ptrs = malloc(n * 8);
    if (!ix.ptrs)
        return;
    for (size_t i = 0; i < n; i++)
        ix.ptrs[i] = bd_be64(data + 5 + 8 * i);
    (void)cloop_index_check(&ix, 1 << 20, "fuzz", &err);
    free(ix.ptrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[1 << 20];
    size_t out_len;

    if (size < 3)
        return 0;
    switch (data[0] % 4) {
    case 1:
        check_index(data + 1, size - 1);
        break;
    case 2:
        out_len = (((size_t)data[1] << 8 | data[2]) + 1) * 16;
        (void)cloop_decode(data[1] % CLOOP_N_CODECS, data + 3, size - 3, out,
                           out_len);
        break;
    default:
        fuzz_image_readonly(data, size, "cloop");
        break;
    }
    return 0;
}

/* Flip bytes, mostly in the header and index at the start and the end. */
static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = len - 1 < 2048 ? len - 1 : 2048;
        size_t at = 1 + (size_t)rand() % span;

        if (rand() % 4 == 0)
            at = len - 1 - (size_t)rand() % span;
        m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 8 == 0)
        mlen = 2 + (size_t)rand() % (len - 1);
    if (rand() % 16 == 0)
        m[0] = (uint8_t)rand();
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
