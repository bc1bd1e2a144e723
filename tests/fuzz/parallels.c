/*
 * Fuzz target for the parallels driver: a whole image (header, catalog,
 * format extension) through bd_open_image(), read-only, then reads with
 * block status of the first 64 MiB of the disk. A bundle descriptor seed
 * exercises the XML parser; its extents resolve inside $TMPDIR.
 *
 * Built by meson as fuzz-parallels (tests/fuzz/harness.h says how to run
 * it and how to build it for libFuzzer): `fuzz-parallels -n N SEED...`
 * runs each seed once and N mutations of it (bytes of the header, the
 * catalog and the first clusters flipped, the file cut short).
 */
#include "harness.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_readonly(data, size, "parallels");
    return 0;
}

/* The header is 64 bytes and the catalog follows: most mutations land in
 * the first 4 KiB, some in the header's sizes and offsets. */
static size_t mutate(uint8_t *m, size_t len)
{
    static const uint8_t fields[] = { 17, 29, 30, 33, 35, 37, 40, 43, 49, 51,
                                      57, 60, 63 };
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = len - 1 < 8192 ? len - 1 : 8192;
        size_t at = rand() % 2 ? 1 + (size_t)rand() % span
                               : fields[rand() % sizeof(fields)];
        if (at < len)
            m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 8 == 0)
        mlen = 2 + (size_t)rand() % (len - 1);
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .min_len = 65,
    .mutate = mutate,
};
