/*
 * Fuzz target for the vhdx driver: a whole image through bd_open_image()
 * (headers, region table, log replay, metadata, BAT), then reads and block
 * status, and (first input byte odd) a few writes on the temporary copy.
 * Parents are not followed (--backing=none), so one input is one file.
 *
 * Built by meson as fuzz-vhdx (tests/fuzz/harness.h says how to run it and
 * how to build it for libFuzzer): `fuzz-vhdx -n N SEED.vhdx...` runs each
 * seed once and N mutations of it: bytes changed in the headers, region
 * tables, log, metadata and BAT, with the CRC-32C of headers, region
 * tables and log entries recomputed half of the time so the mutations
 * reach the code behind the checksums.
 */
#include "harness.h"
#include "drivers/format/vhdx/vhdx.h"

#include <stdlib.h>
#include <string.h>

static void use_image(struct bd_node *n, void *arg)
{
    bool rw = ((const struct fuzz_input *)arg)->rw;
    int64_t len = bd_size(n);
    uint8_t *buf = malloc(1 << 20);

    /* the first 16 MiB, then a few spread offsets of a huge disk */
    fuzz_read_all(n, buf, 16 << 20, false);
    for (int k = 1; buf && k < 8 && len > (1 << 20); k++) {
        uint64_t off = (uint64_t)len / 8 * (uint64_t)k / 4096 * 4096;
        uint64_t pnum;
        unsigned st;

        (void)bd_pread(n, buf, 4096, off);
        (void)bd_block_status(n, off, (uint64_t)len - off, &pnum, &st, NULL);
        if (rw) {
            memset(buf, k, 8192);
            (void)bd_pwrite(n, buf, 8192, off, 0);
            (void)bd_pwrite_zeroes(n, 4096, off, 0);
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_mode(data, size, "vhdx", use_image);
    return 0;
}

/* Recompute the checksums a mutation broke (img = the image, no mode byte). */
static void fix_crcs(uint8_t *img, size_t len)
{
    static const size_t hdrs[2] = { VHDX_HEADER1_OFF, VHDX_HEADER2_OFF };
    static const size_t regs[2] = { VHDX_REGION1_OFF, VHDX_REGION2_OFF };

    for (int i = 0; i < 2; i++) {
        if (hdrs[i] + VHDX_HEADER_SIZE <= len)
            bd_put_le32(img + hdrs[i] + 4,
                        vhdx_crc32c_skip(img + hdrs[i], VHDX_HEADER_SIZE, 4));
        if (regs[i] + VHDX_REGION_SIZE <= len)
            bd_put_le32(img + regs[i] + 4,
                        vhdx_crc32c_skip(img + regs[i], VHDX_REGION_SIZE, 4));
    }
    if (VHDX_HEADER1_OFF + VHDX_HEADER_SIZE > len)
        return;
    /* log entries that lie whole inside the log of header 1 */
    uint64_t loff = bd_le64(img + VHDX_HEADER1_OFF + 72);
    uint64_t llen = bd_le32(img + VHDX_HEADER1_OFF + 68);
    for (uint64_t p = loff; llen && p + 4096 <= loff + llen && p + 4096 <= len;
         p += 4096) {
        uint32_t el = bd_le32(img + p + 8);
        if (memcmp(img + p, "loge", 4) != 0 || el < 4096 ||
            p + el > loff + llen || p + el > len)
            continue;
        bd_put_le32(img + p + 4, vhdx_crc32c_skip(img + p, el, 4));
    }
}

static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len, span = len - 1 < (4u << 20) ? len - 1 : 4u << 20;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t at;
        switch (rand() % 4) {
        case 0:     /* header fields */
            at = (rand() % 2 ? VHDX_HEADER1_OFF : VHDX_HEADER2_OFF) +
                 (size_t)rand() % 96;
            break;
        case 1:     /* region table entries */
            at = VHDX_REGION1_OFF + (size_t)rand() % 96;
            break;
        default:    /* log, metadata, BAT */
            at = (size_t)rand() % span;
            break;
        }
        if (1 + at < len)
            m[1 + at] = (uint8_t)(rand() % 3 ? rand() : 0xff);
    }
    if (rand() % 2)
        fix_crcs(m + 1, len - 1);
    if (rand() % 8 == 0)
        mlen = 1 + (size_t)rand() % len;
    m[0] = (uint8_t)(rand() % 4 == 0);      /* sometimes writable */
    return mlen;
}

static void fixup(uint8_t *m, size_t len)
{
    fix_crcs(m + 1, len - 1);
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
    .fixup = fixup,
};
