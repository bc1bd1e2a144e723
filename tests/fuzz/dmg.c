/*
 * Fuzz target for the dmg driver's parsers and decoders: LZFSE/LZVN, ADC,
 * mish (blkx) tables, and whole images (koly + XML plist + chunk reads)
 * through bd_open_image(). The first input byte picks which.
 *
 * Built by meson as fuzz-dmg (tests/fuzz/harness.h says how to run it and
 * how to build it for libFuzzer): `fuzz-dmg -n N SEED.dmg...` runs each
 * seed in whole-image mode and N random mutations of it.
 */
#include "harness.h"
#include "drivers/format/dmg/dmg.h"

#include <stdlib.h>

static void use_image(struct bd_node *n, void *arg)
{
    uint8_t *buf = malloc(1 << 20);

    (void)arg;
    /* read at most 64 MiB of the disk: enough to touch every chunk of
     * a small image without letting a huge declared size time out */
    fuzz_read_all(n, buf, 64 << 20, false);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[1 << 20];
    struct bd_flags flags = { .read_only = true };
    size_t out_len;

    if (size < 3)
        return 0;
    out_len = (((size_t)data[1] << 8 | data[2]) + 1) * 16;
    switch (data[0] % 4) {
    case 0:
        (void)dmg_lzfse_decode(data + 3, size - 3, out, out_len);
        break;
    case 1:
        (void)dmg_adc_decode(data + 3, size - 3, out, out_len);
        break;
    case 2: {
        struct dmg_map m = { 0 };
        struct bd_err err = { 0 };

        if (dmg_map_add_mish(&m, data + 1, size - 1, 1 << 30, "fuzz",
                             &err) == 0)
            (void)dmg_map_finish(&m, 0, "fuzz", &err);
        dmg_map_free(&m);
        break;
    }
    default:
        fuzz_image(data + 1, size - 1, "dmg", &flags, use_image, NULL);
        break;
    }
    return 0;
}

/* Flip bytes, mostly in the trailer and plist at the end. */
static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t at = rand() % 2 ? len - 1 - (size_t)rand() % (len - 1)
                               : 1 + (size_t)rand() % (len - 1);
        m[at] = (uint8_t)rand();
    }
    if (rand() % 4 == 0)
        mlen = 1 + (size_t)rand() % len;
    m[0] = (uint8_t)(rand() % 4 == 0 ? rand() % 3 : 3);
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 3,                     /* whole-image mode */
    .mutate = mutate,
};
