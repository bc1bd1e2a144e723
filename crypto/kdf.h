/*
 * Key derivation for encrypted images: hashes, PBKDF2 (RFC 8018) with its
 * iteration benchmark, and LUKS1's anti-forensic split and merge (AF-split
 * with the hash diffuser, LUKS1 spec section 2.4). Cipher objects are in
 * cipher.h; headers in luks.h.
 */
#ifndef IMGFUSE_CRYPTO_KDF_H
#define IMGFUSE_CRYPTO_KDF_H

#include "crypto/cipher.h"

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_HASH_MAX 64u         /* largest digest (sha512) */

/* out[0..crypto_hash_len(h)) = h(in[0..len)). 0 or -EINVAL. */
int crypto_hash_buf(enum crypto_hash h, const void *in, size_t len, uint8_t *out);

/*
 * PBKDF2-HMAC-h(pass, salt, iterations) into out[0..out_len). iterations
 * >= 1, out_len >= 1. 0, -EINVAL for a bad argument, -ENOMEM. Work is
 * iterations * ceil(out_len / digest) HMACs: callers cap iterations read
 * from an image before calling.
 */
int crypto_pbkdf2(enum crypto_hash h, const uint8_t *pass, size_t pass_len,
                  const uint8_t *salt, size_t salt_len, uint64_t iterations,
                  uint8_t *out, size_t out_len);

/*
 * How many iterations of PBKDF2-HMAC-h producing out_len bytes take about
 * ms milliseconds on this machine (measured now, with a dummy password),
 * clamped to [min, max]. 0 or -errno.
 */
int crypto_pbkdf2_calibrate(enum crypto_hash h, size_t out_len, uint32_t ms,
                            uint64_t min, uint64_t max, uint64_t *iterations);

/*
 * LUKS1 anti-forensic split: key[0..key_len) becomes stripes blocks of
 * key_len bytes in out[0..key_len * stripes), all random but the last,
 * diffused with h. stripes >= 1. 0 or -errno (-EIO when the system has no
 * random bytes to give).
 */
int crypto_af_split(enum crypto_hash h, const uint8_t *key, size_t key_len,
                    uint32_t stripes, uint8_t *out);
/* The reverse: in[0..key_len * stripes) merged into key[0..key_len). */
int crypto_af_merge(enum crypto_hash h, const uint8_t *in, size_t key_len,
                    uint32_t stripes, uint8_t *key);

/* n random bytes from the kernel (getrandom). 0 or -errno. */
int crypto_random(void *buf, size_t n);

#endif
