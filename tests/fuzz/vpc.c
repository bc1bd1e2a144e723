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
#include "drivers/format/vpc/vpc.h"

#include <stdlib.h>
#include <string.h>

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

/* Recompute the checksums of the footer (its copy at the start and the
 * one at the end) and of the dynamic header it points to, big-endian
 * ones'-complement sums with the field at offset 64 and 36. */
static void fix_footer(uint8_t *f, uint8_t *img, size_t len)
{
    if (memcmp(f, "conectix", 8) != 0)
        return;
    bd_put_be32(f + 64, vpc_checksum(f, VPC_FOOTER_SIZE, 64));
    uint64_t dyn = bd_be64(f + 16);
    if (dyn < len && len - dyn >= VPC_DYN_SIZE &&
        memcmp(img + dyn, "cxsparse", 8) == 0)
        bd_put_be32(img + dyn + 36, vpc_checksum(img + dyn, VPC_DYN_SIZE, 36));
}

static void fixup(uint8_t *m, size_t len)
{
    uint8_t *img = m + 1;
    size_t ilen = len - 1;

    if (ilen < VPC_FOOTER_SIZE)
        return;
    fix_footer(img, img, ilen);
    fix_footer(img + ilen - VPC_FOOTER_SIZE, img, ilen);
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
    .fixup = fixup,
};
