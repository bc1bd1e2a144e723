/*
 * Hashes, HMAC and PBKDF2 (RFC 8018 section 5.2) on nettle's hash
 * functions, and the iteration benchmark LUKS create uses. HMAC keeps the
 * keyed inner and outer states and copies them per call, so an iteration
 * costs two compressions per block of the hash and nothing else.
 */
#include "crypto/kdf.h"

#include <nettle/md5.h>
#include <nettle/nettle-meta.h>
#include <nettle/ripemd160.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <string.h>
#include <time.h>

union hash_ctx {
    struct md5_ctx md5;
    struct sha1_ctx sha1;
    struct sha256_ctx sha256;
    struct sha512_ctx sha512;
    struct ripemd160_ctx ripemd160;
};

#define HASH_MAX_BLOCK 128u

static const struct nettle_hash *hash_meta(enum crypto_hash h)
{
    switch (h) {
    case CRYPTO_HASH_MD5: return &nettle_md5;
    case CRYPTO_HASH_SHA1: return &nettle_sha1;
    case CRYPTO_HASH_SHA224: return &nettle_sha224;
    case CRYPTO_HASH_SHA256: return &nettle_sha256;
    case CRYPTO_HASH_SHA384: return &nettle_sha384;
    case CRYPTO_HASH_SHA512: return &nettle_sha512;
    case CRYPTO_HASH_RIPEMD160: return &nettle_ripemd160;
    default: return NULL;
    }
}

int crypto_hash_buf(enum crypto_hash h, const void *in, size_t len, uint8_t *out)
{
    const struct nettle_hash *H = hash_meta(h);
    union hash_ctx c;

    if (!H)
        return -EINVAL;
    H->init(&c);
    H->update(&c, len, in);
    H->digest(&c, H->digest_size, out);
    crypto_wipe(&c, sizeof(c));
    return 0;
}

/* The HMAC states after absorbing key ^ ipad and key ^ opad. */
static void hmac_keys(const struct nettle_hash *H, const uint8_t *key,
                      size_t key_len, union hash_ctx *in, union hash_ctx *out)
{
    uint8_t k[HASH_MAX_BLOCK], pad[HASH_MAX_BLOCK];

    memset(k, 0, sizeof(k));
    if (key_len > H->block_size) {
        H->init(in);
        H->update(in, key_len, key);
        H->digest(in, H->digest_size, k);
    } else if (key_len) {
        memcpy(k, key, key_len);
    }
    for (size_t i = 0; i < H->block_size; i++)
        pad[i] = k[i] ^ 0x36;
    H->init(in);
    H->update(in, H->block_size, pad);
    for (size_t i = 0; i < H->block_size; i++)
        pad[i] = k[i] ^ 0x5c;
    H->init(out);
    H->update(out, H->block_size, pad);
    crypto_wipe(k, sizeof(k));
    crypto_wipe(pad, sizeof(pad));
}

/* u = HMAC(u) in place (u is digest_size bytes), from the keyed states. */
static void hmac_step(const struct nettle_hash *H, const union hash_ctx *in,
                      const union hash_ctx *out, union hash_ctx *t, uint8_t *u)
{
    memcpy(t, in, H->context_size);
    H->update(t, H->digest_size, u);
    H->digest(t, H->digest_size, u);
    memcpy(t, out, H->context_size);
    H->update(t, H->digest_size, u);
    H->digest(t, H->digest_size, u);
}

static void pbkdf2_block(const struct nettle_hash *H, const union hash_ctx *in,
                         const union hash_ctx *out, const uint8_t *salt,
                         size_t salt_len, uint64_t iterations, uint32_t index,
                         uint8_t *acc)
{
    union hash_ctx t;
    uint8_t u[CRYPTO_HASH_MAX], be[4];
    size_t d = H->digest_size;

    bd_put_be32(be, index);
    memcpy(&t, in, H->context_size);
    H->update(&t, salt_len, salt);
    H->update(&t, 4, be);
    H->digest(&t, d, u);
    memcpy(&t, out, H->context_size);
    H->update(&t, d, u);
    H->digest(&t, d, u);
    memcpy(acc, u, d);
    for (uint64_t i = 1; i < iterations; i++) {
        hmac_step(H, in, out, &t, u);
        for (size_t j = 0; j < d; j++)
            acc[j] ^= u[j];
    }
    crypto_wipe(u, sizeof(u));
    crypto_wipe(&t, sizeof(t));
}

int crypto_pbkdf2(enum crypto_hash h, const uint8_t *pass, size_t pass_len,
                  const uint8_t *salt, size_t salt_len, uint64_t iterations,
                  uint8_t *out, size_t out_len)
{
    const struct nettle_hash *H = hash_meta(h);
    union hash_ctx in, outer;
    uint8_t acc[CRYPTO_HASH_MAX];
    uint32_t index = 1;

    if (!H || iterations == 0 || out_len == 0 ||
        out_len / H->digest_size >= UINT32_MAX)
        return -EINVAL;
    hmac_keys(H, pass, pass_len, &in, &outer);
    for (size_t done = 0; done < out_len; index++) {
        size_t n = out_len - done < H->digest_size ? out_len - done
                                                   : H->digest_size;

        pbkdf2_block(H, &in, &outer, salt, salt_len, iterations, index, acc);
        memcpy(out + done, acc, n);
        done += n;
    }
    crypto_wipe(acc, sizeof(acc));
    crypto_wipe(&in, sizeof(in));
    crypto_wipe(&outer, sizeof(outer));
    return 0;
}

/* CPU time of this thread: a busy machine does not shrink the count */
static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define CALIBRATE_MIN_NS 30000000u     /* measure at least 30 ms */

int crypto_pbkdf2_calibrate(enum crypto_hash h, size_t out_len, uint32_t ms,
                            uint64_t min, uint64_t max, uint64_t *iterations)
{
    static const uint8_t salt[32];
    uint8_t out[256];
    uint64_t iter = 1000, t0, ns;
    double scaled;
    int r;

    if (out_len > sizeof(out))
        out_len = sizeof(out);
    for (;;) {
        t0 = now_ns();
        r = crypto_pbkdf2(h, (const uint8_t *)"imgfuse", 7, salt, sizeof(salt),
                          iter, out, out_len);
        if (r < 0)
            return r;
        ns = now_ns() - t0;
        if (ns >= CALIBRATE_MIN_NS || iter >= (1ull << 32))
            break;
        iter *= ns < CALIBRATE_MIN_NS / 8 ? 8 : 2;
    }
    scaled = (double)iter * ms * 1e6 / (double)(ns ? ns : 1);
    if (scaled < (double)min)
        *iterations = min;
    else if (scaled > (double)max)
        *iterations = max;
    else
        *iterations = (uint64_t)scaled;
    return 0;
}
