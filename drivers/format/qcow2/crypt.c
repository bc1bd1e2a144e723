/*
 * Encrypted qcow2: encrypt.format=luks (a LUKS1 header in the clusters the
 * crypt header extension names; IVs from the host offset, 512-byte
 * sectors) and the legacy encrypt.format=aes (AES-128-CBC keyed with the
 * passphrase's first 16 bytes, IVs from the guest offset). The ciphers,
 * the LUKS header and the key slots are crypto/'s; this file opens,
 * creates and moves data through them.
 */
#include "qcow2.h"
#include "core/overflow.h"
#include "crypto/cipher.h"
#include "crypto/luks.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512u

static const char *const qcow2_crypt_create_options[] = {
    "encrypt.format", "encryption", "encrypt.key-secret", "encrypt.cipher-alg",
    "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg",
    "encrypt.hash-alg", "encrypt.iter-time", NULL,
};

/* The passphrase: the secret encrypt.key-secret names, or a prompt. A
 * backing file's option is spelt from the top: backing.encrypt.key-secret. */
static int get_passphrase(const struct bd_node *n, const struct bd_opts *o,
                          const uint8_t **pass, size_t *len,
                          struct bd_err *err)
{
    const char *id = bd_opts_get(o, "encrypt.key-secret");
    const char *name = n->name;
    char who[300], opt[160] = "";

    if (!id) {
        for (unsigned d = 0; d < n->depth && d < 16; d++)
            strcat(opt, "backing.");
        strcat(opt, "encrypt.key-secret");
        return bd_secret_prompt(name, opt, pass, len, err);
    }
    snprintf(who, sizeof(who), "%s: encrypt.key-secret=%s", name, id);
    return bd_secret_get(id, who, pass, len, err);
}

/* QEMU's legacy qcow/qcow2 key: the passphrase up to its first NUL, cut
 * or zero-padded to 16 bytes, as an AES-128-CBC-plain64 key. */
static int aes_cipher(const uint8_t *pass, size_t len, struct cipher **out,
                      struct bd_err *err)
{
    struct cipher_spec spec = {
        .alg = CIPHER_AES_128, .mode = CIPHER_MODE_CBC,
        .ivgen = CIPHER_IVGEN_PLAIN64, .ivgen_hash = CRYPTO_HASH_SHA256,
    };
    uint8_t key[16] = { 0 };
    size_t n = strnlen((const char *)pass, len);

    memcpy(key, pass, n < 16 ? n : 16);
    int ret = cipher_new(&spec, key, 16, SECTOR, out, err);
    crypto_wipe(key, sizeof(key));
    return ret;
}

/* The LUKS header the crypt extension points at, checked before any
 * passphrase is asked for (a damaged image says so first). */
static int read_luks(struct bd_node *n, struct qcow2_state *s,
                     struct luks_header *h, struct bd_err *err)
{
    uint64_t off = s->x.crypt_off, elen = s->x.crypt_len;
    int ret;

    if (!s->x.has_crypto)
        return bd_err_set(err, EINVAL, "%s: encrypt.format=luks but no "
                          "encryption header extension: the image is damaged",
                          n->name);
    if (off & (s->cluster_size - 1) || off == 0 || elen < LUKS_HEADER_BYTES ||
        !ovf_range_ok(off, elen, s->file_size))
        return bd_err_set(err, EINVAL, "%s: the encryption header (%" PRIu64
                          " bytes at %" PRIu64 ") is not a cluster-aligned "
                          "range inside the file: the image is damaged",
                          n->name, elen, off);
    ret = luks_header_read(n->file, off, elen, h, n->name, err);
    if (ret == 0 && h->legacy_overlap && !s->read_only)
        return bd_err_set(err, EROFS, "%s: the LUKS header has the old layout "
                          "whose key slot overlaps it; open it read-only (-r)",
                          n->name);
    return ret;
}

int qcow2_crypt_open(struct bd_node *n, struct qcow2_state *s,
                     const struct bd_opts *o, struct bd_err *err)
{
    static const char *const formats[] = { "aes", "luks", NULL };
    const uint8_t *pass;
    size_t len;
    int ret;

    if (s->h.crypt_method != QCOW2_CRYPT_LUKS && s->x.has_crypto)
        return bd_err_set(err, EINVAL, "%s: an encryption header extension "
                          "without encrypt.format=luks: the image is damaged",
                          n->name);
    if (!s->h.crypt_method)
        return 0;
    int want = bd_opts_get_enum(o, "encrypt.format", formats, -1, err);
    if (want == -EINVAL)
        return want;
    if (want >= 0 && (uint32_t)want + 1 != s->h.crypt_method)
        return bd_err_set(err, EINVAL, "%s: encrypt.format=%s, but the image "
                          "is encrypted with %s", n->name, formats[want],
                          formats[s->h.crypt_method - 1]);
    if (s->h.incompat & QCOW2_INCOMPAT_DATA_FILE)
        return bd_err_set(err, ENOTSUP, "%s: an encrypted image with an "
                          "external data file is not supported", n->name);
    struct luks_header h;
    if (s->h.crypt_method == QCOW2_CRYPT_LUKS) {
        ret = read_luks(n, s, &h, err);
        if (ret < 0)
            return ret;
    }
    ret = get_passphrase(n, o, &pass, &len, err);
    if (ret < 0)
        return ret;
    if (s->h.crypt_method == QCOW2_CRYPT_LUKS) {
        s->crypt_host_iv = true;
        return luks_unlock(n->file, s->x.crypt_off, &h, pass, len, &s->crypt,
                           NULL, n->name, err);
    }
    log_warn("%s: qcow2 AES encryption is weak and cannot tell a wrong "
             "passphrase (it reads garbage); convert the image to "
             "encrypt.format=luks", n->name);
    s->crypt_host_iv = false;
    return aes_cipher(pass, len, &s->crypt, err);
}

void qcow2_crypt_close(struct qcow2_state *s)
{
    if (s->crypt)
        cipher_free(s->crypt);
    s->crypt = NULL;
}

int qcow2_decrypt(struct qcow2_state *s, void *buf, uint64_t len,
                  uint64_t host, uint64_t guest)
{
    if (!s->crypt)
        return 0;
    uint64_t at = s->crypt_host_iv ? host : guest;
    if ((at | len) & (SECTOR - 1))
        return -EIO;
    return cipher_decrypt(s->crypt, at / SECTOR, buf, len);
}

int qcow2_write_data(struct qcow2_state *s, const void *buf, uint64_t len,
                     uint64_t host, uint64_t guest)
{
    if (!s->crypt)
        return bd_pwrite(s->data, buf, len, host, 0);
    uint64_t at = s->crypt_host_iv ? host : guest;
    if ((at | len) & (SECTOR - 1))
        return -EIO;
    uint8_t *b = malloc(len);
    if (!b)
        return -ENOMEM;
    memcpy(b, buf, len);
    int ret = cipher_encrypt(s->crypt, at / SECTOR, b, len);
    if (ret == 0)
        ret = bd_pwrite(s->data, b, len, host, 0);
    free(b);
    return ret;
}

int qcow2_crypt_create_method(const struct bd_opts *o, uint32_t *method,
                              struct bd_err *err)
{
    static const char *const formats[] = { "aes", "luks", NULL };
    bool legacy = false;
    int f = bd_opts_get_enum(o, "encrypt.format", formats, -1, err);
    int ret;

    if (f == -EINVAL)
        return f;
    ret = bd_opts_get_bool(o, "encryption", false, &legacy, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    if (legacy && f == 1)
        return bd_err_set(err, EINVAL, "encryption=on means encrypt.format="
                          "aes; it cannot go with encrypt.format=luks");
    *method = f == 1 ? QCOW2_CRYPT_LUKS : (f == 0 || legacy) ? QCOW2_CRYPT_AES
                                                             : 0;
    if (!*method && bd_opts_has(o, "encrypt.key-secret"))
        return bd_err_set(err, EINVAL, "encrypt.key-secret needs "
                          "encrypt.format=luks (or aes)");
    if (*method && !bd_opts_has(o, "encrypt.key-secret"))
        return bd_err_set(err, EINVAL, "an encrypted image needs its "
                          "passphrase: encrypt.key-secret=ID with --object "
                          "secret,id=ID,file=PATH");
    if (*method == QCOW2_CRYPT_AES)
        log_warn("qcow2 AES encryption is weak and deprecated; "
                 "encrypt.format=luks is the one to use");
    return 0;
}

static int luks_opts(const struct bd_opts *o, struct luks_create_opts *lo,
                     struct bd_err *err)
{
    struct bd_opts *eo = bd_opts_sub(o, "encrypt");
    if (!eo)
        return bd_err_set(err, ENOMEM, "out of memory");
    int ret = luks_create_opts_get(eo, lo, err);
    bd_opts_free_view(eo);
    return ret;
}

int qcow2_crypt_create_len(const struct bd_opts *o, uint32_t method,
                           uint64_t *len, struct bd_err *err)
{
    struct luks_create_opts lo;
    int ret;

    *len = 0;
    if (method != QCOW2_CRYPT_LUKS) {
        for (size_t i = 3; qcow2_crypt_create_options[i]; i++)
            if (bd_opts_has(o, qcow2_crypt_create_options[i]))
                return bd_err_set(err, EINVAL, "%s goes with encrypt.format="
                                  "luks only", qcow2_crypt_create_options[i]);
        return 0;
    }
    ret = luks_opts(o, &lo, err);
    if (ret == 0)
        ret = luks_create_size(&lo, len, err);
    return ret;
}

int qcow2_crypt_create_write(struct bd_node *file, const struct bd_opts *o,
                             uint64_t off, struct bd_err *err)
{
    struct luks_create_opts lo;
    const char *id = bd_opts_get(o, "encrypt.key-secret");
    const uint8_t *pass;
    size_t len;
    char who[300];
    int ret;

    snprintf(who, sizeof(who), "%s: encrypt.key-secret=%s", file->name, id);
    ret = luks_opts(o, &lo, err);
    if (ret == 0)
        ret = bd_secret_get(id, who, &pass, &len, err);
    if (ret == 0)
        ret = luks_create(file, off, &lo, pass, len, NULL, NULL, file->name,
                          err);
    return ret;
}
