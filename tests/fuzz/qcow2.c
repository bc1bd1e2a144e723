/*
 * Fuzz target for the qcow2 driver, the format most users mount: a whole
 * qcow2 image through bd_open_image() (header, extensions, L1/L2 tables,
 * refcounts, snapshots, bitmaps, compressed clusters), then reads with
 * block status, a consistency check (report only) and, when the mode byte
 * is odd, writes, zero writes and a discard on the writable temporary copy
 * followed by a second check.
 *
 * Built by meson as fuzz-qcow2 (tests/fuzz/harness.h says how to run it):
 * `fuzz-qcow2 -n N SEED.qcow2...` runs each seed once and N mutations of
 * it, which hit the header and its extensions most often, then the tables
 * in the first 256 KiB.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static void check_once(struct bd_node *n)
{
    struct bd_check res;
    struct bd_err err = { 0 };

    memset(&res, 0, sizeof(res));
    if (bd_node_can_check(n))
        (void)bd_check_image(n, 0, &res, &err);
}

static void use(struct bd_node *n, void *arg)
{
    const struct fuzz_input *in = arg;
    int64_t len = bd_size(n);

    fuzz_read_then_write(n, arg);
    check_once(n);
    if (!in->rw || len <= 0)
        return;
    for (int i = 0; i < 3; i++) {
        uint64_t off = (uint64_t)(in->data[(i + 5) % in->size] * 65537u) %
                       (uint64_t)len;
        uint64_t l = (uint64_t)len - off < 200000 ? (uint64_t)len - off : 200000;

        if (i == 2)
            (void)bd_discard(n, l, off);
        else
            (void)bd_pwrite_zeroes(n, l, off, i ? BD_REQ_MAY_UNMAP : 0);
    }
    (void)bd_flush(n);
    check_once(n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_image_mode(data, size, "qcow2", use);
    return 0;
}

/* The header and its extensions (the first 4 KiB) most often, then the
 * tables and refcount blocks in the first 256 KiB. */
static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_head(m, len, rand() % 3 ? 4096 : 262144);
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
