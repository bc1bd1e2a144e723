/*
 * The sector cipher: nettle's block ciphers in ECB, CBC, CTR or XTS, one
 * sector at a time, each with the IV its generator makes from the sector
 * number. XTS is done here over whole sectors (tweaks first, then one bulk
 * call of the block cipher), so AES-NI runs on 512 bytes at a time.
 */
#include "crypto/cipher.h"
#include "crypto/kdf.h"

#include <nettle/aes.h>
#include <nettle/cast128.h>
#include <nettle/cbc.h>
#include <nettle/ctr.h>
#include <nettle/nettle-meta.h>
#include <nettle/serpent.h>
#include <nettle/twofish.h>
#include <stdlib.h>
#include <string.h>

#define CIPHER_MAX_BLOCK 16u
#define CTX_ALIGN 64u

struct cipher {
    struct cipher_spec spec;
    const struct nettle_cipher *alg;
    const struct nettle_cipher *essiv_alg;
    uint32_t sector_size;
    size_t block;
    size_t blob_len;
    uint8_t *blob;          /* the contexts below, wiped at free */
    void *enc, *dec, *tweak, *essiv;
};

static const char *const alg_names[CIPHER_ALG_COUNT + 1] = {
    "aes-128", "aes-192", "aes-256", "twofish-128", "twofish-192",
    "twofish-256", "serpent-128", "serpent-192", "serpent-256", "cast5-128",
    NULL
};
static const char *const mode_names[CIPHER_MODE_COUNT + 1] = {
    "ecb", "cbc", "xts", "ctr", NULL
};
static const char *const ivgen_names[CIPHER_IVGEN_COUNT + 1] = {
    "none", "plain", "plain64", "essiv", NULL
};
static const char *const hash_names[CRYPTO_HASH_COUNT + 1] = {
    "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160", NULL
};

static int name_index(const char *const *names, const char *name)
{
    for (int i = 0; name && names[i]; i++) {
        if (strcmp(names[i], name) == 0)
            return i;
    }
    return -EINVAL;
}

const char *cipher_alg_name(enum cipher_alg a)
{
    return (unsigned)a < CIPHER_ALG_COUNT ? alg_names[a] : NULL;
}

const char *cipher_mode_name(enum cipher_mode m)
{
    return (unsigned)m < CIPHER_MODE_COUNT ? mode_names[m] : NULL;
}

const char *cipher_ivgen_name(enum cipher_ivgen g)
{
    return (unsigned)g < CIPHER_IVGEN_COUNT ? ivgen_names[g] : NULL;
}

const char *crypto_hash_name(enum crypto_hash h)
{
    return (unsigned)h < CRYPTO_HASH_COUNT ? hash_names[h] : NULL;
}

int cipher_alg_parse(const char *name) { return name_index(alg_names, name); }
int cipher_mode_parse(const char *name) { return name_index(mode_names, name); }
int cipher_ivgen_parse(const char *name) { return name_index(ivgen_names, name); }
int crypto_hash_parse(const char *name) { return name_index(hash_names, name); }

size_t crypto_hash_len(enum crypto_hash h)
{
    static const size_t len[CRYPTO_HASH_COUNT] = { 16, 20, 28, 32, 48, 64, 20 };
    return (unsigned)h < CRYPTO_HASH_COUNT ? len[h] : 0;
}

static const struct nettle_cipher *nettle_alg(enum cipher_alg a)
{
    switch (a) {
    case CIPHER_AES_128: return &nettle_aes128;
    case CIPHER_AES_192: return &nettle_aes192;
    case CIPHER_AES_256: return &nettle_aes256;
    case CIPHER_TWOFISH_128: return &nettle_twofish128;
    case CIPHER_TWOFISH_192: return &nettle_twofish192;
    case CIPHER_TWOFISH_256: return &nettle_twofish256;
    case CIPHER_SERPENT_128: return &nettle_serpent128;
    case CIPHER_SERPENT_192: return &nettle_serpent192;
    case CIPHER_SERPENT_256: return &nettle_serpent256;
    case CIPHER_CAST5_128: return &nettle_cast128;
    default: return NULL;
    }
}

size_t cipher_alg_key_len(enum cipher_alg a)
{
    const struct nettle_cipher *c = nettle_alg(a);
    return c ? c->key_size : 0;
}

size_t cipher_alg_block_len(enum cipher_alg a)
{
    const struct nettle_cipher *c = nettle_alg(a);
    return c ? c->block_size : 0;
}

size_t cipher_key_len(const struct cipher_spec *spec)
{
    size_t k = cipher_alg_key_len(spec->alg);
    return spec->mode == CIPHER_MODE_XTS ? 2 * k : k;
}

/* ESSIV's cipher: the same family keyed by the digest, so the digest
 * length must be one of the family's key lengths. */
static int essiv_alg(enum cipher_alg a, enum crypto_hash h)
{
    size_t d = crypto_hash_len(h);
    enum cipher_alg base;

    if (a == CIPHER_CAST5_128)
        return d == 16 ? CIPHER_CAST5_128 : -ENOTSUP;
    base = a <= CIPHER_AES_256 ? CIPHER_AES_128 :
           a <= CIPHER_TWOFISH_256 ? CIPHER_TWOFISH_128 : CIPHER_SERPENT_128;
    if (d == 16)
        return base;
    if (d == 24)
        return base + 1;
    if (d == 32)
        return base + 2;
    return -ENOTSUP;
}

int cipher_spec_check(const struct cipher_spec *spec, struct bd_err *err)
{
    const char *a = cipher_alg_name(spec->alg), *m = cipher_mode_name(spec->mode);
    const char *g = cipher_ivgen_name(spec->ivgen);

    if (!a || !m || !g || (spec->ivgen == CIPHER_IVGEN_ESSIV &&
                           !crypto_hash_name(spec->ivgen_hash)))
        return bd_err_set(err, EINVAL, "unknown cipher, mode, IV generator or hash");
    if (spec->mode == CIPHER_MODE_XTS && cipher_alg_block_len(spec->alg) != 16)
        return bd_err_set(err, ENOTSUP, "cipher %s-%s is not supported: xts needs "
                          "a cipher with 16-byte blocks", a, m);
    if (spec->ivgen == CIPHER_IVGEN_ESSIV &&
        essiv_alg(spec->alg, spec->ivgen_hash) < 0)
        return bd_err_set(err, ENOTSUP, "IV generator essiv:%s does not work with "
                          "%s: the %s digest (%zu bytes) is no key length of "
                          "that cipher", crypto_hash_name(spec->ivgen_hash), a,
                          crypto_hash_name(spec->ivgen_hash),
                          crypto_hash_len(spec->ivgen_hash));
    return 0;
}

/* ---- keys -------------------------------------------------------------- */

void crypto_wipe(void *p, size_t n)
{
    if (p)
        explicit_bzero(p, n);
}

static size_t ctx_size(const struct nettle_cipher *c)
{
    return (c->context_size + CTX_ALIGN - 1) / CTX_ALIGN * CTX_ALIGN;
}

static int cipher_set_keys(struct cipher *c, const uint8_t *key, size_t key_len)
{
    size_t k = c->alg->key_size;
    uint8_t digest[64];
    int r;

    c->alg->set_encrypt_key(c->enc, key);
    c->alg->set_decrypt_key(c->dec, key);
    if (c->tweak)
        c->alg->set_encrypt_key(c->tweak, key + k);
    if (c->essiv) {
        /* ESSIV hashes the whole key, both XTS halves included */
        r = crypto_hash_buf(c->spec.ivgen_hash, key, key_len, digest);
        if (r < 0)
            return r;
        c->essiv_alg->set_encrypt_key(c->essiv, digest);
        crypto_wipe(digest, sizeof(digest));
    }
    return 0;
}

int cipher_new(const struct cipher_spec *spec, const uint8_t *key,
               size_t key_len, uint32_t sector_size, struct cipher **out,
               struct bd_err *err)
{
    struct cipher *c;
    size_t cs, es = 0;
    int r;

    r = cipher_spec_check(spec, err);
    if (r < 0)
        return r;
    if (key_len != cipher_key_len(spec))
        return bd_err_set(err, EINVAL, "cipher %s-%s needs a %zu-byte key, not %zu",
                          cipher_alg_name(spec->alg), cipher_mode_name(spec->mode),
                          cipher_key_len(spec), key_len);
    if (sector_size < 512 || (sector_size & (sector_size - 1)))
        return bd_err_set(err, EINVAL, "invalid encryption sector size %u",
                          sector_size);
    c = calloc(1, sizeof(*c));
    if (!c)
        return bd_err_set(err, ENOMEM, "out of memory");
    c->spec = *spec;
    c->alg = nettle_alg(spec->alg);
    c->block = c->alg->block_size;
    c->sector_size = sector_size;
    cs = ctx_size(c->alg);
    if (spec->ivgen == CIPHER_IVGEN_ESSIV) {
        c->essiv_alg = nettle_alg((enum cipher_alg)essiv_alg(spec->alg,
                                                             spec->ivgen_hash));
        es = ctx_size(c->essiv_alg);
    }
    c->blob_len = 3 * cs + es;
    c->blob = aligned_alloc(CTX_ALIGN, c->blob_len);
    if (!c->blob) {
        free(c);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    memset(c->blob, 0, c->blob_len);
    c->enc = c->blob;
    c->dec = c->blob + cs;
    if (spec->mode == CIPHER_MODE_XTS)
        c->tweak = c->blob + 2 * cs;
    if (es)
        c->essiv = c->blob + 3 * cs;
    r = cipher_set_keys(c, key, key_len);
    if (r < 0) {
        cipher_free(c);
        return bd_err_set(err, -r, "cannot make the ESSIV key: %s", strerror(-r));
    }
    *out = c;
    return 0;
}

void cipher_free(struct cipher *c)
{
    if (!c)
        return;
    crypto_wipe(c->blob, c->blob_len);
    free(c->blob);
    crypto_wipe(c, sizeof(*c));
    free(c);
}

uint32_t cipher_sector_size(const struct cipher *c)
{
    return c->sector_size;
}

/* ---- sectors ------------------------------------------------------------ */

static void make_iv(const struct cipher *c, uint64_t sector, uint8_t *iv)
{
    memset(iv, 0, CIPHER_MAX_BLOCK);
    switch (c->spec.ivgen) {
    case CIPHER_IVGEN_NONE:
        break;
    case CIPHER_IVGEN_PLAIN:
        bd_put_le32(iv, (uint32_t)sector);
        break;
    case CIPHER_IVGEN_PLAIN64:
        bd_put_le64(iv, sector);
        break;
    case CIPHER_IVGEN_ESSIV:
        bd_put_le64(iv, sector);
        c->essiv_alg->encrypt(c->essiv, c->block, iv, iv);
        break;
    default:
        break;
    }
}

/* Multiply the XTS tweak by x in GF(2^128), little-endian (IEEE 1619). */
static void xts_next(uint8_t *t)
{
    uint64_t lo = bd_le64(t), hi = bd_le64(t + 8);
    uint64_t carry = hi >> 63;

    hi = hi << 1 | lo >> 63;
    lo = lo << 1 ^ (carry ? 0x87 : 0);
    bd_put_le64(t, lo);
    bd_put_le64(t + 8, hi);
}

static void xor_block16(uint8_t *d, const uint8_t *t)
{
    uint64_t a, b;

    memcpy(&a, d, 8);
    memcpy(&b, t, 8);
    a ^= b;
    memcpy(d, &a, 8);
    memcpy(&a, d + 8, 8);
    memcpy(&b, t + 8, 8);
    a ^= b;
    memcpy(d + 8, &a, 8);
}

#define XTS_CHUNK 512u

/* One sector in XTS: whole 16-byte blocks only (sectors are >= 512). */
static void xts_sector(const struct cipher *c, const uint8_t *iv, uint8_t *p,
                       size_t len, bool enc)
{
    uint8_t tw[XTS_CHUNK], t[16];

    c->alg->encrypt(c->tweak, 16, t, iv);
    for (size_t done = 0; done < len; done += XTS_CHUNK) {
        size_t n = len - done < XTS_CHUNK ? len - done : XTS_CHUNK;

        for (size_t i = 0; i < n; i += 16) {
            memcpy(tw + i, t, 16);
            xor_block16(p + done + i, t);
            xts_next(t);
        }
        if (enc)
            c->alg->encrypt(c->enc, n, p + done, p + done);
        else
            c->alg->decrypt(c->dec, n, p + done, p + done);
        for (size_t i = 0; i < n; i += 16)
            xor_block16(p + done + i, tw + i);
    }
    crypto_wipe(tw, sizeof(tw));
}

static void crypt_sector(const struct cipher *c, uint64_t sector, uint8_t *p,
                         bool enc)
{
    uint8_t iv[CIPHER_MAX_BLOCK];
    size_t len = c->sector_size;

    make_iv(c, sector, iv);
    switch (c->spec.mode) {
    case CIPHER_MODE_ECB:
        if (enc)
            c->alg->encrypt(c->enc, len, p, p);
        else
            c->alg->decrypt(c->dec, len, p, p);
        break;
    case CIPHER_MODE_CBC:
        if (enc)
            cbc_encrypt(c->enc, c->alg->encrypt, c->block, iv, len, p, p);
        else
            cbc_decrypt(c->dec, c->alg->decrypt, c->block, iv, len, p, p);
        break;
    case CIPHER_MODE_CTR:
        ctr_crypt(c->enc, c->alg->encrypt, c->block, iv, len, p, p);
        break;
    case CIPHER_MODE_XTS:
        xts_sector(c, iv, p, len, enc);
        break;
    default:
        break;
    }
}

static int crypt_sectors(const struct cipher *c, uint64_t sector, void *buf,
                         size_t len, bool enc)
{
    uint8_t *p = buf;

    if (len % c->sector_size)
        return -EINVAL;
    for (size_t done = 0; done < len; done += c->sector_size)
        crypt_sector(c, sector++, p + done, enc);
    return 0;
}

int cipher_encrypt(const struct cipher *c, uint64_t sector, void *buf, size_t len)
{
    return crypt_sectors(c, sector, buf, len, true);
}

int cipher_decrypt(const struct cipher *c, uint64_t sector, void *buf, size_t len)
{
    return crypt_sectors(c, sector, buf, len, false);
}
