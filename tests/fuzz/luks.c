/*
 * Fuzz target for the LUKS1 header parser and the luks driver: every input
 * goes through luks_header_decode(); one whose PBKDF2 work is small (the
 * seeds, made with a low iter-time) is then opened by the luks driver with
 * the corpus passphrase through bd_open_image(), unlocked, read, and (when
 * the first input byte is odd) written. Inputs asking for more iterations
 * are only decoded: unlocking them is slow by design, not a bug.
 *
 * Built by meson as fuzz-luks (tests/fuzz/harness.h says how to run it);
 * tests/fuzz/run.sh seeds it with ../shared/images/generated/gen-luks*.
 */
#include "harness.h"
#include "crypto/luks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_MAX_WORK 200000u           /* PBKDF2 iterations worth opening */

static bool cheap(const uint8_t *img, size_t len)
{
    struct luks_header h;
    struct bd_err err = { 0 };
    uint64_t work;

    if (luks_header_decode(img, len, len, &h, "fuzz", &err) < 0)
        return false;
    work = h.mk_iterations * (uint64_t)h.active_slots;
    for (unsigned i = 0; i < LUKS_SLOTS; i++) {
        if (h.slots[i].active)
            work += h.slots[i].iterations;
    }
    return work <= FUZZ_MAX_WORK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool defined;
    struct fuzz_input in = { data + 1, size ? size - 1 : 0, size && (data[0] & 1) };
    struct bd_flags flags = { .read_only = !in.rw, .locking = BD_LOCKING_OFF };
    struct bd_err err = { 0 };
    struct bd_node *n;
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    if (size < 1 || !cheap(in.data, in.size))
        return 0;
    if (!defined) {
        bd_secret_define("fuzz", "corpus-passphrase", 17, &err);
        defined = true;
    }
    snprintf(path, sizeof(path), "%s/luks-fuzz.XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, in.data, in.size) == (ssize_t)in.size &&
        bd_open_image(path, "luks", "key-secret=fuzz", &flags, &n, &err) == 0) {
        fuzz_read_then_write(n, &in);
        bd_node_close(n);
    }
    close(fd);
    unlink(path);
    return 0;
}

/* Damage the header (592 bytes) most often, then the key material. */
static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;

    for (int k = rand() % 4 + 1; k > 0; k--) {
        size_t span = rand() % 4 ? LUKS_HEADER_BYTES : 262144;
        size_t at;

        span = len - 1 < span ? len - 1 : span;
        at = 1 + (size_t)rand() % span;
        m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 8 == 0)
        mlen = 2 + (size_t)rand() % (len - 1);
    m[0] = (uint8_t)rand();
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
