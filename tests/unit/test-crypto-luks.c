/*
 * crypto/luks: a header written by luks_create reads back and unlocks
 * (also at an offset inside a node, as qcow2 keeps it), the wrong
 * passphrase is told apart, and hostile headers are refused before any
 * key material is read. Interop with cryptsetup and QEMU is checked by
 * tests/integration/luks/.
 */
#include "crypto/luks.h"
#include "crypto/kdf.h"
#include "memdrv.h"

#include <criterion/criterion.h>
#include <string.h>

#define BASE 65536u

static const struct luks_create_opts fast = {
    { CIPHER_AES_256, CIPHER_MODE_XTS, CIPHER_IVGEN_PLAIN64, CRYPTO_HASH_SHA256 },
    CRYPTO_HASH_SHA256, 1
};

static struct bd_node *created(const struct luks_create_opts *o, struct cipher **c,
                               uint64_t *len)
{
    struct bd_node *n = mem_node(BASE + (4u << 20), 512, 0);
    struct bd_err err = { 0 };

    cr_assert_eq(luks_create(n, BASE, o, (const uint8_t *)"secret", 6, c, len,
                             "t", &err), 0, "%s", err.msg);
    return n;
}

Test(luks, created_header_unlocks_at_an_offset)
{
    struct luks_header h;
    struct bd_err err = { 0 };
    struct cipher *c1, *c2;
    uint8_t a[1024], b[1024];
    uint64_t len;
    int slot = -1;
    struct bd_node *n = created(&fast, &c1, &len);

    cr_assert_eq(len, 2068480u);        /* QEMU's layout for a 64-byte key */
    cr_assert_eq(luks_header_read(n, BASE, 4u << 20, &h, "t", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(h.payload_off, len);
    cr_assert_str_eq(h.cipher_name, "aes");
    cr_assert_str_eq(h.cipher_mode, "xts-plain64");
    cr_assert_str_eq(h.hash_spec, "sha256");
    cr_assert_eq(h.key_bytes, 64);
    cr_assert_eq(h.active_slots, 1);
    cr_assert(h.slots[0].iterations >= 1000 && h.mk_iterations >= 1000);
    cr_assert_eq(luks_unlock(n, BASE, &h, (const uint8_t *)"secret", 6, &c2, &slot,
                             "t", &err), 0, "%s", err.msg);
    cr_assert_eq(slot, 0);
    memset(a, 0x5a, sizeof(a));
    memcpy(b, a, sizeof(b));
    cipher_encrypt(c1, 10, a, sizeof(a));
    cipher_encrypt(c2, 10, b, sizeof(b));
    cr_assert_arr_eq(a, b, sizeof(a));
    cipher_free(c1);
    cipher_free(c2);
    mem_free(n);
}

Test(luks, wrong_passphrase_is_told_apart)
{
    struct luks_header h;
    struct bd_err err = { 0 };
    struct cipher *c = NULL;
    struct bd_node *n = created(&fast, NULL, NULL);

    cr_assert_eq(luks_header_read(n, BASE, 4u << 20, &h, "disk.luks", &err), 0);
    cr_assert_eq(luks_unlock(n, BASE, &h, (const uint8_t *)"secreT", 6, &c, NULL,
                             "disk.luks", &err), -EPERM);
    cr_assert_str_eq(err.msg, "disk.luks: no key slot matches the passphrase");
    cr_assert_null(c);
    mem_free(n);
}

Test(luks, essiv_cbc_sha1_round_trips)
{
    struct luks_create_opts o = {
        { CIPHER_SERPENT_128, CIPHER_MODE_CBC, CIPHER_IVGEN_ESSIV,
          CRYPTO_HASH_SHA256 }, CRYPTO_HASH_SHA1, 1
    };
    struct luks_header h;
    struct bd_err err = { 0 };
    struct cipher *c;
    struct bd_node *n = created(&o, NULL, NULL);

    cr_assert_eq(luks_header_read(n, BASE, 4u << 20, &h, "t", &err), 0, "%s",
                 err.msg);
    cr_assert_str_eq(h.cipher_name, "serpent");
    cr_assert_str_eq(h.cipher_mode, "cbc-essiv:sha256");
    cr_assert_eq(luks_unlock(n, BASE, &h, (const uint8_t *)"secret", 6, &c, NULL,
                             "t", &err), 0, "%s", err.msg);
    cipher_free(c);
    mem_free(n);
}

/* ---- hostile headers ------------------------------------------------------ */

static uint8_t hdr[LUKS_HEADER_BYTES];

/* hdr = a valid header (made once per test process: creating costs the
 * PBKDF2 calibration) */
static void good_header(void)
{
    static uint8_t made[LUKS_HEADER_BYTES];
    static bool have;

    if (!have) {
        struct bd_node *n = created(&fast, NULL, NULL);
        struct mem_state *s = n->state;

        memcpy(made, s->data + BASE, sizeof(made));
        mem_free(n);
        have = true;
    }
    memcpy(hdr, made, sizeof(hdr));
}

static void expect_refused(uint64_t region, const char *what)
{
    struct luks_header h;
    struct bd_err err = { 0 };

    cr_assert_lt(luks_header_decode(hdr, sizeof(hdr), region, &h, "x.luks", &err),
                 0, "accepted: %s", what);
    cr_assert(strstr(err.msg, what), "'%s' not in '%s'", what, err.msg);
    cr_assert(strncmp(err.msg, "x.luks: ", 8) == 0, "%s", err.msg);
}

Test(luks_hostile, bad_magic_and_version)
{
    good_header();
    hdr[4] = 0;
    expect_refused(4u << 20, "bad magic");
    good_header();
    bd_put_be16(hdr + 6, 2);
    expect_refused(4u << 20, "LUKS version 2");
}

Test(luks_hostile, key_material_past_the_end)
{
    good_header();
    expect_refused(100000, "beyond the end");
    bd_put_be32(hdr + 208 + 40, 0xffffffffu);
    expect_refused(4u << 20, "beyond the end");
}

Test(luks_hostile, stripes_zero_and_absurd_iterations)
{
    good_header();
    bd_put_be32(hdr + 208 + 44, 0);
    expect_refused(4u << 20, "0 stripes");
    good_header();
    bd_put_be32(hdr + 208 + 4, 0xffffffffu);
    expect_refused(4u << 20, "hostile header cannot make opening take hours");
    good_header();
    bd_put_be32(hdr + 164, 0);
    expect_refused(4u << 20, "0 PBKDF2 iterations");
}

Test(luks_hostile, unknown_names_sizes_and_states)
{
    good_header();
    memcpy(hdr + 8, "camellia", 9);
    expect_refused(4u << 20, "cipher 'camellia' is not supported");
    good_header();
    memset(hdr + 40, 'x', 32);
    expect_refused(4u << 20, "without its terminating NUL");
    good_header();
    memcpy(hdr + 40, "xts-benbi", 10);
    expect_refused(4u << 20, "IV generator");
    good_header();
    bd_put_be32(hdr + 108, 20);
    expect_refused(4u << 20, "key size of 20 bytes");
    good_header();
    bd_put_be32(hdr + 108, 100000);
    expect_refused(4u << 20, "key size");
    good_header();
    bd_put_be32(hdr + 208 + 48, 0x12345678);
    expect_refused(4u << 20, "unknown state");
    good_header();
    bd_put_be32(hdr + 208, 0xdead);
    expect_refused(4u << 20, "no active key slot");
    good_header();
    bd_put_be32(hdr + 104, 100);
    expect_refused(4u << 20, "overlaps the encrypted data");
}

Test(luks_hostile, bad_digest_fails_every_slot)
{
    struct bd_node *n = created(&fast, NULL, NULL);
    struct mem_state *s = n->state;
    struct luks_header h;
    struct bd_err err = { 0 };
    struct cipher *c = NULL;

    s->data[BASE + 112] ^= 1;
    cr_assert_eq(luks_header_read(n, BASE, 4u << 20, &h, "t", &err), 0);
    cr_assert_eq(luks_unlock(n, BASE, &h, (const uint8_t *)"secret", 6, &c, NULL,
                             "t", &err), -EPERM);
    mem_free(n);
}

Test(luks_create, options_have_qemu_defaults_and_names)
{
    struct luks_create_opts o;
    struct bd_err err = { 0 };
    uint64_t len;

    cr_assert_eq(luks_create_opts_get(NULL, &o, &err), 0, "%s", err.msg);
    cr_assert_eq(o.spec.alg, CIPHER_AES_256);
    cr_assert_eq(o.spec.mode, CIPHER_MODE_XTS);
    cr_assert_eq(o.spec.ivgen, CIPHER_IVGEN_PLAIN64);
    cr_assert_eq(o.hash, CRYPTO_HASH_SHA256);
    cr_assert_eq(o.iter_time_ms, 2000);
    o.spec.alg = CIPHER_AES_128;
    o.spec.mode = CIPHER_MODE_CBC;
    cr_assert_eq(luks_create_size(&o, &len, &err), 0);
    cr_assert_eq(len, 1032u * 512);     /* what qemu-img create writes */
}
