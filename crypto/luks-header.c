/*
 * LUKS1 header decoding and validation: the 592-byte big-endian header,
 * its cipher name and mode string mapped to a sector cipher spec, and
 * every offset, size and count checked before anything is read or
 * allocated from it. Key slots are opened and written in luks-keyslot.c.
 */
#include "crypto/luks.h"
#include "crypto/kdf.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_ACTIVE   0x00AC71F3u
#define SLOT_INACTIVE 0x0000DEADu
#define SLOT_DESC_OFF 208u
#define SLOT_DESC_LEN 48u

static const char *const families[] = { "aes", "twofish", "serpent", "cast5" };

/* A NUL-terminated copy of a fixed field; -EINVAL when it has no NUL. */
static int field_string(const uint8_t *b, size_t len, char *out)
{
    const uint8_t *nul = memchr(b, 0, len);

    if (!nul)
        return -EINVAL;
    memcpy(out, b, (size_t)(nul - b) + 1);
    return 0;
}

static int decode_cipher(struct luks_header *h, const char *who,
                         struct bd_err *err)
{
    uint32_t k = h->key_bytes;
    int fam = -1;

    for (unsigned i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (strcmp(h->cipher_name, families[i]) == 0)
            fam = (int)i;
    }
    if (fam < 0)
        return bd_err_set(err, ENOTSUP, "%s: LUKS cipher '%s' is not supported "
                          "(aes, twofish, serpent and cast5 are)", who,
                          h->cipher_name);
    if (h->spec.mode == CIPHER_MODE_XTS)
        k /= 2;
    if (fam == 3 && k == 16) {
        h->spec.alg = CIPHER_CAST5_128;
    } else if (fam < 3 && (k == 16 || k == 24 || k == 32)) {
        h->spec.alg = (enum cipher_alg)(fam * 3 + (int)(k - 16) / 8);
    } else {
        return bd_err_set(err, ENOTSUP, "%s: LUKS key size of %u bytes does not "
                          "fit cipher %s-%s", who, h->key_bytes, h->cipher_name,
                          h->cipher_mode);
    }
    return 0;
}

/* "MODE[-IVGEN[:HASH]]" */
static int decode_mode(struct luks_header *h, const char *who, struct bd_err *err)
{
    char mode[33];
    char *iv, *hash;
    int m, g, hh;

    memcpy(mode, h->cipher_mode, sizeof(mode));
    iv = strchr(mode, '-');
    if (iv)
        *iv++ = '\0';
    m = cipher_mode_parse(mode);
    if (m < 0)
        return bd_err_set(err, ENOTSUP, "%s: LUKS cipher mode '%s' is not "
                          "supported (ecb, cbc, xts and ctr are)", who, mode);
    h->spec.mode = (enum cipher_mode)m;
    h->spec.ivgen = CIPHER_IVGEN_NONE;
    if (!iv)
        return 0;
    hash = strchr(iv, ':');
    if (hash)
        *hash++ = '\0';
    g = cipher_ivgen_parse(iv);
    /* QEMU writes ":HASH" after any generator when ivgen-hash-alg is given
     * ("xts-plain64:sha256"); only essiv uses it, and needs it */
    if (g <= CIPHER_IVGEN_NONE || (g == CIPHER_IVGEN_ESSIV && !hash))
        return bd_err_set(err, ENOTSUP, "%s: LUKS IV generator '%s' is not "
                          "supported (plain, plain64 and essiv:HASH are)", who,
                          h->cipher_mode);
    h->spec.ivgen = (enum cipher_ivgen)g;
    if (hash) {
        hh = crypto_hash_parse(hash);
        if (hh < 0)
            return bd_err_set(err, ENOTSUP, "%s: LUKS essiv hash '%s' is not "
                              "supported", who, hash);
        h->spec.ivgen_hash = (enum crypto_hash)hh;
    }
    return 0;
}

static int check_slot(const struct luks_header *h, unsigned i,
                      uint64_t region_len, const char *who, struct bd_err *err)
{
    const struct luks_slot *s = &h->slots[i];
    uint64_t len = luks_material_len(h->key_bytes, s->stripes);

    if (s->iterations == 0 || s->iterations > LUKS_MAX_ITERATIONS)
        return bd_err_set(err, EINVAL, "%s: LUKS key slot %u asks for %u PBKDF2 "
                          "iterations; more than %u is refused so that a hostile "
                          "header cannot make opening take hours", who, i,
                          s->iterations, LUKS_MAX_ITERATIONS);
    if (s->stripes == 0 || s->stripes > LUKS_MAX_STRIPES)
        return bd_err_set(err, EINVAL, "%s: LUKS key slot %u has %u stripes "
                          "(1 to %u expected; writers use 4000)", who, i,
                          s->stripes, LUKS_MAX_STRIPES);
    if (s->material_off + len > region_len)
        return bd_err_set(err, EINVAL, "%s: LUKS key slot %u's key material "
                          "(%llu bytes at offset %llu) lies beyond the end of the "
                          "header area (%llu bytes); the image is truncated or "
                          "damaged", who, i, (unsigned long long)len,
                          (unsigned long long)s->material_off,
                          (unsigned long long)region_len);
    if (s->material_off < h->payload_off &&
        s->material_off + len > h->payload_off)
        return bd_err_set(err, EINVAL, "%s: LUKS key slot %u's key material "
                          "overlaps the encrypted data", who, i);
    return 0;
}

static void decode_fields(const uint8_t *b, struct luks_header *h)
{
    h->payload_off = (uint64_t)bd_be32(b + 104) * LUKS_SECTOR;
    h->key_bytes = bd_be32(b + 108);
    memcpy(h->mk_digest, b + 112, LUKS_DIGEST_BYTES);
    memcpy(h->mk_salt, b + 132, LUKS_SALT_BYTES);
    h->mk_iterations = bd_be32(b + 164);
    for (unsigned i = 0; i < LUKS_SLOTS; i++) {
        const uint8_t *d = b + SLOT_DESC_OFF + i * SLOT_DESC_LEN;
        struct luks_slot *s = &h->slots[i];

        s->active = bd_be32(d) == SLOT_ACTIVE;
        s->iterations = bd_be32(d + 4);
        memcpy(s->salt, d + 8, LUKS_SALT_BYTES);
        s->material_off = (uint64_t)bd_be32(d + 40) * LUKS_SECTOR;
        s->stripes = bd_be32(d + 44);
    }
}

/* Slot states: active, inactive, or (v1.0-era layout) covered by an active
 * slot's key material, which makes its descriptor bytes meaningless. */
static int decode_slots(const uint8_t *b, struct luks_header *h,
                        uint64_t region_len, const char *who, struct bd_err *err)
{
    uint64_t first = UINT64_MAX;
    int r;

    for (unsigned i = 0; i < LUKS_SLOTS; i++) {
        if (h->slots[i].active && h->slots[i].material_off < first)
            first = h->slots[i].material_off;
    }
    h->legacy_overlap = first < LUKS_HEADER_BYTES;
    for (unsigned i = 0; i < LUKS_SLOTS; i++) {
        uint32_t state = bd_be32(b + SLOT_DESC_OFF + i * SLOT_DESC_LEN);
        uint64_t end = SLOT_DESC_OFF + (uint64_t)(i + 1) * SLOT_DESC_LEN;

        if (state != SLOT_ACTIVE && state != SLOT_INACTIVE && end <= first)
            return bd_err_set(err, EINVAL, "%s: LUKS key slot %u has the unknown "
                              "state 0x%08x", who, i, state);
        if (state == SLOT_ACTIVE && end > first && first < LUKS_HEADER_BYTES &&
            h->slots[i].material_off != first) {
            h->slots[i].active = false;     /* descriptor lies in key material */
            continue;
        }
        if (!h->slots[i].active)
            continue;
        r = check_slot(h, i, region_len, who, err);
        if (r < 0)
            return r;
        h->active_slots++;
    }
    if (h->active_slots == 0)
        return bd_err_set(err, EINVAL, "%s: LUKS header has no active key slot: "
                          "no passphrase can open it", who);
    return 0;
}

int luks_header_decode(const uint8_t *b, size_t len, uint64_t region_len,
                       struct luks_header *h, const char *who,
                       struct bd_err *err)
{
    int r;

    memset(h, 0, sizeof(*h));
    if (len < LUKS_HEADER_BYTES || memcmp(b, LUKS_MAGIC, LUKS_MAGIC_LEN) != 0)
        return bd_err_set(err, EINVAL, "%s: not a LUKS header (bad magic)", who);
    if (bd_be16(b + 6) != 1)
        return bd_err_set(err, ENOTSUP, "%s: LUKS version %u is not supported "
                          "(only LUKS1; convert LUKS2 with cryptsetup convert "
                          "--type luks1)", who, bd_be16(b + 6));
    if (field_string(b + 8, 32, h->cipher_name) < 0 ||
        field_string(b + 40, 32, h->cipher_mode) < 0 ||
        field_string(b + 72, 32, h->hash_spec) < 0 ||
        field_string(b + 168, 40, h->uuid) < 0)
        return bd_err_set(err, EINVAL, "%s: LUKS header has a cipher, mode, hash "
                          "or UUID field without its terminating NUL", who);
    decode_fields(b, h);
    r = crypto_hash_parse(h->hash_spec);
    if (r < 0)
        return bd_err_set(err, ENOTSUP, "%s: LUKS hash '%s' is not supported "
                          "(sha1, sha224, sha256, sha384, sha512, ripemd160 "
                          "are)", who, h->hash_spec);
    h->hash = (enum crypto_hash)r;
    if (h->key_bytes == 0 || h->key_bytes > LUKS_MAX_KEY_BYTES)
        return bd_err_set(err, EINVAL, "%s: LUKS key size of %u bytes is invalid "
                          "(1 to %u expected)", who, h->key_bytes,
                          LUKS_MAX_KEY_BYTES);
    r = decode_mode(h, who, err);
    if (r == 0)
        r = decode_cipher(h, who, err);
    if (r == 0) {
        r = cipher_spec_check(&h->spec, err);
        if (r < 0)
            bd_err_prefix(err, "%s", who);
    }
    if (r < 0)
        return r;
    if (h->mk_iterations == 0 || h->mk_iterations > LUKS_MAX_ITERATIONS)
        return bd_err_set(err, EINVAL, "%s: LUKS master key digest asks for %u "
                          "PBKDF2 iterations; more than %u is refused so that a "
                          "hostile header cannot make opening take hours", who,
                          h->mk_iterations, LUKS_MAX_ITERATIONS);
    return decode_slots(b, h, region_len, who, err);
}

int luks_header_read(struct bd_node *file, uint64_t base, uint64_t region_len,
                     struct luks_header *h, const char *who, struct bd_err *err)
{
    uint8_t b[LUKS_HEADER_BYTES];
    int r;

    if (region_len < LUKS_HEADER_BYTES)
        return bd_err_set(err, EINVAL, "%s: too small for a LUKS header (%llu "
                          "bytes)", who, (unsigned long long)region_len);
    r = bd_pread(file, b, sizeof(b), base);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the LUKS header: %s", who,
                          strerror(-r));
    return luks_header_decode(b, sizeof(b), region_len, h, who, err);
}
