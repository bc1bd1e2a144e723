/*
 * Fuzz target for the bochs driver: a whole growing redolog through
 * bd_open_image(), read-only (the format cannot be written), then every
 * byte of the first 64 MiB read with block status asked first.
 *
 * Built by meson as fuzz-bochs (tests/fuzz/harness.h says how to run it
 * and how to build it for libFuzzer): `fuzz-bochs -n N SEED.bochs...` runs
 * each seed once and N mutations of it (bytes changed in the header, the
 * catalog and the first bitmaps: the first 4 KiB).
 */
#include "harness.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_readonly(data, size, "bochs");
    return 0;
}

/* Header fields (sizes, counts, version), catalog entries and bitmaps. */
static size_t mutate(uint8_t *m, size_t len)
{
    static const size_t fields[] = { 65, 69, 73, 77, 81, 85, 89, 93 };
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = len - 1 < 4096 ? len - 1 : 4096;
        size_t at = rand() % 2 ? 1 + (size_t)rand() % span
                               : fields[rand() % 8] + (size_t)rand() % 4;

        if (at < len)
            m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 8 == 0)
        mlen = 2 + (size_t)rand() % (len - 1);
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
