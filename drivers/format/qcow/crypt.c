/*
 * qcow (version 1) AES encryption, as QEMU has it: AES-128-CBC keyed with
 * the passphrase's first 16 bytes (zero-padded), each 512-byte sector with
 * its guest sector number as IV (plain64). Normal clusters are encrypted;
 * compressed ones are not. Weak: every open says so.
 */
#include "qcow.h"
#include "crypto/cipher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qcow_crypt_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    static const char *const formats[] = { "aes", NULL };
    struct qcow_state *s = n->state;
    struct cipher_spec spec = {
        .alg = CIPHER_AES_128, .mode = CIPHER_MODE_CBC,
        .ivgen = CIPHER_IVGEN_PLAIN64, .ivgen_hash = CRYPTO_HASH_SHA256,
    };
    const char *id = bd_opts_get(o, "encrypt.key-secret");
    const uint8_t *pass;
    uint8_t key[16] = { 0 };
    size_t len;
    char who[300];
    int r;

    if (bd_opts_get_enum(o, "encrypt.format", formats, 0, err) < 0)
        return -EINVAL;
    if (s->h.crypt_method == QCOW_CRYPT_NONE)
        return 0;
    if (id) {
        snprintf(who, sizeof(who), "%s: encrypt.key-secret=%s", n->name, id);
        r = bd_secret_get(id, who, &pass, &len, err);
    } else {
        char opt[160] = "";     /* a backing file's, spelt from the top */
        for (unsigned d = 0; d < n->depth && d < 16; d++)
            strcat(opt, "backing.");
        strcat(opt, "encrypt.key-secret");
        r = bd_secret_prompt(n->name, opt, &pass, &len, err);
    }
    if (r < 0)
        return r;
    log_warn("%s: qcow AES encryption is weak and cannot tell a wrong "
             "passphrase (it reads garbage); convert the image to a luks or "
             "qcow2 encrypt.format=luks image", n->name);
    len = strnlen((const char *)pass, len);
    memcpy(key, pass, len < 16 ? len : 16);
    r = cipher_new(&spec, key, sizeof(key), BD_SECTOR, &s->crypt, err);
    crypto_wipe(key, sizeof(key));
    return r;
}

void qcow_crypt_close(struct qcow_state *s)
{
    if (s->crypt)
        cipher_free(s->crypt);
    s->crypt = NULL;
}

int qcow_decrypt(struct qcow_state *s, void *buf, uint64_t len, uint64_t guest)
{
    if (!s->crypt)
        return 0;
    if ((guest | len) % BD_SECTOR)
        return -EIO;
    return cipher_decrypt(s->crypt, guest / BD_SECTOR, buf, len);
}

int qcow_write_data(struct bd_node *n, const void *buf, uint64_t len,
                    uint64_t host, uint64_t guest)
{
    struct qcow_state *s = n->state;

    if (!s->crypt)
        return bd_pwrite(n->file, buf, len, host, 0);
    if ((guest | len) % BD_SECTOR)
        return -EIO;
    uint8_t *b = buf ? malloc(len) : calloc(1, len);
    if (!b)
        return -ENOMEM;
    if (buf)
        memcpy(b, buf, len);
    int r = cipher_encrypt(s->crypt, guest / BD_SECTOR, b, len);
    if (r == 0)
        r = bd_pwrite(n->file, b, len, host, 0);
    free(b);
    return r;
}
