/*
 * LUKS1 key slots: unlocking one with a passphrase (PBKDF2, decrypt the
 * key material, AF-merge, check the master key digest), and writing a new
 * header whose slot 0 holds a fresh master key, with QEMU's create options
 * and layout. Header decoding is in luks-header.c.
 */
#include "crypto/luks.h"
#include "crypto/kdf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_ACTIVE   0x00AC71F3u
#define SLOT_INACTIVE 0x0000DEADu
#define SLOT_AREA_ALIGN 4096u           /* QEMU: slot areas from here, aligned */
#define MIN_ITERATIONS 1000u            /* cryptsetup's floor for both counts */

/* ---- unlock ------------------------------------------------------------- */

/* 1 when pass opens slot i (mk filled), 0 when it does not, -errno. */
static int try_slot(struct bd_node *file, uint64_t base,
                    const struct luks_header *h, unsigned i, const uint8_t *pass,
                    size_t pass_len, uint8_t *mk, const char *who,
                    struct bd_err *err)
{
    const struct luks_slot *s = &h->slots[i];
    uint64_t len = luks_material_len(h->key_bytes, s->stripes);
    uint8_t derived[LUKS_MAX_KEY_BYTES], digest[LUKS_DIGEST_BYTES];
    struct cipher *c = NULL;
    uint8_t *m = malloc(len);
    int r;

    if (!m)
        return bd_err_set(err, ENOMEM, "%s: out of memory", who);
    r = bd_pread(file, m, len, base + s->material_off);
    if (r < 0) {
        bd_err_set(err, -r, "%s: cannot read LUKS key slot %u: %s", who, i,
                   strerror(-r));
        goto out;
    }
    r = crypto_pbkdf2(h->hash, pass, pass_len, s->salt, LUKS_SALT_BYTES,
                      s->iterations, derived, h->key_bytes);
    if (r == 0)
        r = cipher_new(&h->spec, derived, h->key_bytes, LUKS_SECTOR, &c, err);
    crypto_wipe(derived, sizeof(derived));
    if (r == 0)
        r = cipher_decrypt(c, 0, m, len);
    if (r == 0)
        r = crypto_af_merge(h->hash, m, h->key_bytes, s->stripes, mk);
    if (r == 0)
        r = crypto_pbkdf2(h->hash, mk, h->key_bytes, h->mk_salt, LUKS_SALT_BYTES,
                          h->mk_iterations, digest, LUKS_DIGEST_BYTES);
    if (r < 0) {
        bd_err_set(err, -r, "%s: cannot open LUKS key slot %u: %s", who, i,
                   strerror(-r));
        goto out;
    }
    r = memcmp(digest, h->mk_digest, LUKS_DIGEST_BYTES) == 0;
out:
    cipher_free(c);
    crypto_wipe(m, len);
    free(m);
    return r;
}

int luks_unlock(struct bd_node *file, uint64_t base, const struct luks_header *h,
                const uint8_t *pass, size_t pass_len, struct cipher **out,
                int *slot, const char *who, struct bd_err *err)
{
    uint8_t mk[LUKS_MAX_KEY_BYTES];
    int r;

    for (unsigned i = 0; i < LUKS_SLOTS; i++) {
        if (!h->slots[i].active)
            continue;
        r = try_slot(file, base, h, i, pass, pass_len, mk, who, err);
        if (r < 0)
            return r;
        if (r == 0)
            continue;
        r = cipher_new(&h->spec, mk, h->key_bytes, LUKS_SECTOR, out, err);
        crypto_wipe(mk, sizeof(mk));
        if (r < 0)
            return r;
        if (slot)
            *slot = (int)i;
        return 0;
    }
    crypto_wipe(mk, sizeof(mk));
    return bd_err_set(err, EPERM, "%s: no key slot matches the passphrase", who);
}

/* ---- create options ------------------------------------------------------ */

const char *const luks_create_option_names[] = {
    "cipher-alg", "cipher-mode", "ivgen-alg", "ivgen-hash-alg", "hash-alg",
    "iter-time", NULL
};

static int get_name(const struct bd_opts *o, const char *key,
                    int (*parse)(const char *), int min, const char *choices,
                    int *out, struct bd_err *err)
{
    const char *v = bd_opts_get(o, key);
    int r;

    if (!v)
        return 0;
    r = parse(v);
    if (r < min)
        return bd_err_set(err, EINVAL, "invalid %s '%s' (one of %s)", key, v,
                          choices);
    *out = r;
    return 0;
}

int luks_create_opts_get(const struct bd_opts *o, struct luks_create_opts *out,
                         struct bd_err *err)
{
    int alg = CIPHER_AES_256, mode = CIPHER_MODE_XTS, ivgen = CIPHER_IVGEN_PLAIN64;
    int ivhash = CRYPTO_HASH_SHA256, hash = CRYPTO_HASH_SHA256;
    const char *it = bd_opts_get(o, "iter-time");
    char *end;
    unsigned long long ms = 2000;
    int r;

    r = get_name(o, "cipher-alg", cipher_alg_parse, 0, "aes-128, aes-192, "
                 "aes-256, twofish-128, twofish-192, twofish-256, serpent-128, "
                 "serpent-192, serpent-256, cast5-128", &alg, err);
    if (r == 0)
        r = get_name(o, "cipher-mode", cipher_mode_parse, 0,
                     "ecb, cbc, xts, ctr", &mode, err);
    if (r == 0)
        r = get_name(o, "ivgen-alg", cipher_ivgen_parse, CIPHER_IVGEN_PLAIN,
                     "plain, plain64, essiv", &ivgen, err);
    if (r == 0)
        r = get_name(o, "ivgen-hash-alg", crypto_hash_parse, 0, "md5, sha1, "
                     "sha224, sha256, sha384, sha512, ripemd160", &ivhash, err);
    if (r == 0)
        r = get_name(o, "hash-alg", crypto_hash_parse, 0, "md5, sha1, sha224, "
                     "sha256, sha384, sha512, ripemd160", &hash, err);
    if (r < 0)
        return r;
    if (it) {
        errno = 0;
        ms = strtoull(it, &end, 10);
        if (errno || end == it || *end || ms == 0 || ms > 600000)
            return bd_err_set(err, EINVAL, "invalid iter-time '%s' (milliseconds, "
                              "1 to 600000)", it);
    }
    out->spec = (struct cipher_spec){ (enum cipher_alg)alg, (enum cipher_mode)mode,
                                      (enum cipher_ivgen)ivgen,
                                      (enum crypto_hash)ivhash };
    out->hash = (enum crypto_hash)hash;
    out->iter_time_ms = (uint32_t)ms;
    return cipher_spec_check(&out->spec, err);
}

/* ---- create -------------------------------------------------------------- */

static uint64_t slot_area_sectors(size_t key_bytes)
{
    uint64_t split = luks_material_len((uint32_t)key_bytes, LUKS_STRIPES);
    uint64_t a = SLOT_AREA_ALIGN / LUKS_SECTOR;

    return (split / LUKS_SECTOR + a - 1) / a * a;
}

int luks_create_size(const struct luks_create_opts *o, uint64_t *len,
                     struct bd_err *err)
{
    int r = cipher_spec_check(&o->spec, err);

    if (r < 0)
        return r;
    *len = SLOT_AREA_ALIGN +
           LUKS_SLOTS * slot_area_sectors(cipher_key_len(&o->spec)) * LUKS_SECTOR;
    return 0;
}

static const char *family_name(enum cipher_alg a)
{
    if (a <= CIPHER_AES_256)
        return "aes";
    if (a <= CIPHER_TWOFISH_256)
        return "twofish";
    if (a <= CIPHER_SERPENT_256)
        return "serpent";
    return "cast5";
}

static void uuid_string(const uint8_t *r, char *out)
{
    uint8_t u[16];

    memcpy(u, r, 16);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);     /* version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);     /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
             u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* The 592 header bytes into b (zeroed by the caller). */
static void header_encode(const struct luks_create_opts *o, const struct luks_header *h,
                          const uint8_t *uuid_rand, uint8_t *b)
{
    uint32_t area = (uint32_t)slot_area_sectors(h->key_bytes);
    char mode[33], uuid[37];

    memcpy(b, LUKS_MAGIC, LUKS_MAGIC_LEN);
    bd_put_be16(b + 6, 1);
    strcpy((char *)b + 8, family_name(o->spec.alg));
    if (o->spec.ivgen == CIPHER_IVGEN_ESSIV)
        snprintf(mode, sizeof(mode), "%s-essiv:%s", cipher_mode_name(o->spec.mode),
                 crypto_hash_name(o->spec.ivgen_hash));
    else
        snprintf(mode, sizeof(mode), "%s-%s", cipher_mode_name(o->spec.mode),
                 cipher_ivgen_name(o->spec.ivgen));
    memcpy(b + 40, mode, strlen(mode));
    strcpy((char *)b + 72, crypto_hash_name(o->hash));
    bd_put_be32(b + 104, (uint32_t)(h->payload_off / LUKS_SECTOR));
    bd_put_be32(b + 108, h->key_bytes);
    memcpy(b + 112, h->mk_digest, LUKS_DIGEST_BYTES);
    memcpy(b + 132, h->mk_salt, LUKS_SALT_BYTES);
    bd_put_be32(b + 164, h->mk_iterations);
    uuid_string(uuid_rand, uuid);
    memcpy(b + 168, uuid, 36);
    for (unsigned i = 0; i < LUKS_SLOTS; i++) {
        uint8_t *d = b + 208 + 48 * i;
        const struct luks_slot *s = &h->slots[i];

        bd_put_be32(d, s->active ? SLOT_ACTIVE : SLOT_INACTIVE);
        bd_put_be32(d + 4, s->active ? s->iterations : 0);
        if (s->active)
            memcpy(d + 8, s->salt, LUKS_SALT_BYTES);
        bd_put_be32(d + 40, SLOT_AREA_ALIGN / LUKS_SECTOR + i * area);
        bd_put_be32(d + 44, LUKS_STRIPES);
    }
}

/* Slot 0's key material: mk split, encrypted under the passphrase's key. */
static int write_slot0(struct bd_node *file, uint64_t base,
                       const struct luks_create_opts *o, struct luks_header *h,
                       const uint8_t *mk, const uint8_t *pass, size_t pass_len,
                       const char *who, struct bd_err *err)
{
    uint64_t len = luks_material_len(h->key_bytes, LUKS_STRIPES);
    uint8_t derived[LUKS_MAX_KEY_BYTES];
    struct cipher *c = NULL;
    uint8_t *m = calloc(1, len);
    int r;

    if (!m)
        return bd_err_set(err, ENOMEM, "%s: out of memory", who);
    r = crypto_pbkdf2(o->hash, pass, pass_len, h->slots[0].salt, LUKS_SALT_BYTES,
                      h->slots[0].iterations, derived, h->key_bytes);
    if (r == 0)
        r = cipher_new(&o->spec, derived, h->key_bytes, LUKS_SECTOR, &c, err);
    crypto_wipe(derived, sizeof(derived));
    if (r == 0)
        r = crypto_af_split(o->hash, mk, h->key_bytes, LUKS_STRIPES, m);
    if (r == 0)
        r = cipher_encrypt(c, 0, m, len);
    if (r == 0) {
        r = bd_pwrite(file, m, len, base + SLOT_AREA_ALIGN, 0);
        if (r < 0)
            bd_err_set(err, -r, "%s: cannot write the LUKS key slot: %s", who,
                       strerror(-r));
    }
    if (r < 0 && !err->errnum)
        bd_err_set(err, -r, "%s: cannot make the LUKS key slot: %s", who,
                   strerror(-r));
    cipher_free(c);
    crypto_wipe(m, len);
    free(m);
    return r;
}

static int make_keys(const struct luks_create_opts *o, struct luks_header *h,
                     uint8_t *mk, uint8_t *uuid_rand)
{
    uint64_t it, mk_it;
    int r;

    r = crypto_random(mk, h->key_bytes);
    if (r == 0)
        r = crypto_random(h->mk_salt, LUKS_SALT_BYTES);
    if (r == 0)
        r = crypto_random(h->slots[0].salt, LUKS_SALT_BYTES);
    if (r == 0)
        r = crypto_random(uuid_rand, 16);
    /* cryptsetup's split of the time: all of it for the slot, an eighth
     * for the master key digest */
    if (r == 0)
        r = crypto_pbkdf2_calibrate(o->hash, h->key_bytes, o->iter_time_ms,
                                    MIN_ITERATIONS, LUKS_MAX_ITERATIONS, &it);
    if (r == 0)
        r = crypto_pbkdf2_calibrate(o->hash, LUKS_DIGEST_BYTES,
                                    o->iter_time_ms / 8 ? o->iter_time_ms / 8 : 1,
                                    MIN_ITERATIONS, LUKS_MAX_ITERATIONS, &mk_it);
    if (r < 0)
        return r;
    h->slots[0].active = true;
    h->slots[0].iterations = (uint32_t)it;
    h->mk_iterations = (uint32_t)mk_it;
    return crypto_pbkdf2(o->hash, mk, h->key_bytes, h->mk_salt, LUKS_SALT_BYTES,
                         h->mk_iterations, h->mk_digest, LUKS_DIGEST_BYTES);
}

int luks_create(struct bd_node *file, uint64_t base,
                const struct luks_create_opts *o, const uint8_t *pass,
                size_t pass_len, struct cipher **out, uint64_t *len,
                const char *who, struct bd_err *err)
{
    struct luks_header h;
    uint8_t mk[LUKS_MAX_KEY_BYTES], uuid_rand[16];
    uint8_t *b = NULL;
    uint64_t total;
    int r;

    r = luks_create_size(o, &total, err);
    if (r < 0)
        return r;
    memset(&h, 0, sizeof(h));
    h.key_bytes = (uint32_t)cipher_key_len(&o->spec);
    h.payload_off = total;
    r = make_keys(o, &h, mk, uuid_rand);
    if (r < 0) {
        bd_err_set(err, -r, "%s: cannot make the LUKS keys: %s", who, strerror(-r));
        goto out;
    }
    r = write_slot0(file, base, o, &h, mk, pass, pass_len, who, err);
    if (r < 0)
        goto out;
    b = calloc(1, SLOT_AREA_ALIGN);
    if (!b) {
        r = bd_err_set(err, ENOMEM, "%s: out of memory", who);
        goto out;
    }
    header_encode(o, &h, uuid_rand, b);
    r = bd_pwrite(file, b, SLOT_AREA_ALIGN, base, 0);
    if (r < 0) {
        bd_err_set(err, -r, "%s: cannot write the LUKS header: %s", who,
                   strerror(-r));
        goto out;
    }
    if (out)
        r = cipher_new(&o->spec, mk, h.key_bytes, LUKS_SECTOR, out, err);
    if (r == 0 && len)
        *len = total;
out:
    free(b);
    crypto_wipe(mk, sizeof(mk));
    crypto_wipe(&h, sizeof(h));
    return r;
}
