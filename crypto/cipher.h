/*
 * Sector ciphers for encrypted images (LUKS, encrypted qcow2/qcow): a block
 * cipher in a chaining mode, with the IV of each sector made by an IV
 * generator from its number. Built on nettle (AES uses AES-NI when the CPU
 * has it). Key derivation and header formats live in kdf.h and luks.h.
 */
#ifndef IMGFUSE_CRYPTO_CIPHER_H
#define IMGFUSE_CRYPTO_CIPHER_H

#include "core/bd.h"

#include <stddef.h>
#include <stdint.h>

/* Names are QEMU's (qapi QCryptoCipherAlgorithm and friends). */
enum cipher_alg {
    CIPHER_AES_128, CIPHER_AES_192, CIPHER_AES_256,
    CIPHER_TWOFISH_128, CIPHER_TWOFISH_192, CIPHER_TWOFISH_256,
    CIPHER_SERPENT_128, CIPHER_SERPENT_192, CIPHER_SERPENT_256,
    CIPHER_CAST5_128,
    CIPHER_ALG_COUNT
};
enum cipher_mode { CIPHER_MODE_ECB, CIPHER_MODE_CBC, CIPHER_MODE_XTS,
                   CIPHER_MODE_CTR, CIPHER_MODE_COUNT };
/* IV of sector s: plain = s mod 2^32 little-endian, plain64 = s
 * little-endian, essiv = s little-endian encrypted with the same cipher
 * family keyed by hash(master key); all zero-padded to the block size.
 * none: ECB, or an all-zero IV. */
enum cipher_ivgen { CIPHER_IVGEN_NONE, CIPHER_IVGEN_PLAIN, CIPHER_IVGEN_PLAIN64,
                    CIPHER_IVGEN_ESSIV, CIPHER_IVGEN_COUNT };
enum crypto_hash { CRYPTO_HASH_MD5, CRYPTO_HASH_SHA1, CRYPTO_HASH_SHA224,
                   CRYPTO_HASH_SHA256, CRYPTO_HASH_SHA384, CRYPTO_HASH_SHA512,
                   CRYPTO_HASH_RIPEMD160, CRYPTO_HASH_COUNT };

struct cipher_spec {
    enum cipher_alg alg;
    enum cipher_mode mode;
    enum cipher_ivgen ivgen;
    enum crypto_hash ivgen_hash;    /* essiv only */
};

/* QEMU's names ("aes-256", "xts", "plain64", "sha256"), or NULL. */
const char *cipher_alg_name(enum cipher_alg a);
const char *cipher_mode_name(enum cipher_mode m);
const char *cipher_ivgen_name(enum cipher_ivgen g);
const char *crypto_hash_name(enum crypto_hash h);
/* Index of name among the above (exact, lower case), or -EINVAL. */
int cipher_alg_parse(const char *name);
int cipher_mode_parse(const char *name);
int cipher_ivgen_parse(const char *name);
int crypto_hash_parse(const char *name);
/* Digest bytes of h (16..64). */
size_t crypto_hash_len(enum crypto_hash h);
/* Key bytes of the algorithm alone (16, 24 or 32) and its block size. */
size_t cipher_alg_key_len(enum cipher_alg a);
size_t cipher_alg_block_len(enum cipher_alg a);
/* Key bytes the spec needs: the algorithm's, twice for XTS. */
size_t cipher_key_len(const struct cipher_spec *spec);

/*
 * Check that the combination works (XTS needs a 16-byte block; essiv needs
 * a key of the hash's digest length for the family; ...). 0 or -EINVAL /
 * -ENOTSUP with err set, naming the combination ("aes-128-xts-essiv:md5").
 */
int cipher_spec_check(const struct cipher_spec *spec, struct bd_err *err);

struct cipher;

/*
 * A sector cipher keyed with key[0..key_len) (key_len must be
 * cipher_key_len(spec)); sector_size is a power of two >= 512 that every
 * encrypt/decrypt length is a multiple of. *out is the caller's, freed
 * with cipher_free (which wipes the keys). 0 or -errno with err set.
 */
int cipher_new(const struct cipher_spec *spec, const uint8_t *key,
               size_t key_len, uint32_t sector_size, struct cipher **out,
               struct bd_err *err);
void cipher_free(struct cipher *c);
uint32_t cipher_sector_size(const struct cipher *c);

/*
 * En/decrypt buf[0..len) in place: len / sector_size sectors numbered
 * sector, sector + 1, ... (the number the IV is made from). len must be a
 * multiple of the sector size (-EINVAL otherwise). The cipher is not
 * changed: any number of threads may call these at once on one object.
 */
int cipher_encrypt(const struct cipher *c, uint64_t sector, void *buf,
                   size_t len);
int cipher_decrypt(const struct cipher *c, uint64_t sector, void *buf,
                   size_t len);

/* Wipe n bytes that held key material (not optimised away). */
void crypto_wipe(void *p, size_t n);

#endif
