/*
 * Fuzz target for what a SCSI device answers to PERSISTENT RESERVE IN
 * (locks/pr.c): READ KEYS and READ RESERVATION data are decoded, and
 * pr_info and pr_acquire run against a device that returns the input to
 * every PR IN and GOOD to every PR OUT. The decoders must stay inside the
 * bytes received whatever lengths the data claims.
 *
 * Built by meson as fuzz-pr (tests/fuzz/harness.h says how to run it).
 * Input: one mode byte (bit 0: claim the whole PR IN buffer was filled,
 * else only the input's length), then the PR IN data. Seeds:
 * tests/data/pr/.
 */
#include "harness.h"
#include "locks/pr.h"

#include <stdlib.h>
#include <string.h>

struct fake {
    const uint8_t *data;
    size_t size;
    bool claim_full;
};

static int run(void *ctx, const uint8_t *cdb, uint8_t *buf, uint32_t len,
               struct pr_reply *rep)
{
    const struct fake *f = ctx;

    memset(rep, 0, sizeof(*rep));
    if (cdb[0] == 0x5e) {
        size_t n = f->size < len ? f->size : len;
        memset(buf, 0, len);
        memcpy(buf, f->data, n);
        rep->len = f->claim_full ? len : (uint32_t)n;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fake f;
    struct pr_keys k;
    struct pr_resv r;
    struct pr_conf c = {.on = true, .preempt = true, .key = 0xa};
    struct bd_err err = {0};

    if (size < 1)
        return 0;
    f = (struct fake){.data = data + 1, .size = size - 1,
                      .claim_full = data[0] & 1};
    pr_keys_decode(f.data, (uint32_t)f.size, &k);
    pr_resv_decode(f.data, (uint32_t)f.size, &r);
    if (k.n > PR_MAX_KEYS || k.n > k.total)
        abort();
    pr_type_name(r.type);

    struct pr_dev d = {.run = run, .ctx = &f, .name = "fuzz"};
    pr_acquire(&d, &c, &err);
    pr_release(&d, &c);
    return 0;
}

static size_t mutate(uint8_t *m, size_t len)
{
    int op = rand() % 3;
    size_t at = len ? (size_t)rand() % len : 0;

    if (op == 0 && len)
        m[at] ^= (uint8_t)(1u << (rand() % 8));
    else if (op == 1 && len)
        m[at] = (uint8_t)(rand() % 4 == 0 ? 0xff : rand());
    else
        for (int i = 0; i < 8; i++)     /* 8 <= FUZZ_MAX_GROW */
            m[len++] = (uint8_t)rand();
    return len;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .min_len = 1,
    .mutate = mutate,
};
