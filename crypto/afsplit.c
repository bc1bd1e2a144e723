/*
 * LUKS1 anti-forensic split (LUKS1 on-disk format spec, section 2.4): a key
 * becomes `stripes` blocks, all but the last random, chained through the
 * hash diffuser, so wiping any part of the material destroys the key.
 */
#include "crypto/kdf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int crypto_random(void *buf, size_t n)
{
    uint8_t *p = buf;

    while (n) {
        ssize_t r = getrandom(p, n, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -EIO;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Diffuse: each digest-sized piece i becomes H(be32(i) || piece), cut to
 * the piece's length (the last piece may be short). */
static int diffuse(enum crypto_hash h, uint8_t *buf, size_t len)
{
    size_t d = crypto_hash_len(h);
    uint8_t in[4 + CRYPTO_HASH_MAX], out[CRYPTO_HASH_MAX];
    uint32_t i = 0;

    if (!d)
        return -EINVAL;
    for (size_t off = 0; off < len; off += d, i++) {
        size_t n = len - off < d ? len - off : d;

        bd_put_be32(in, i);
        memcpy(in + 4, buf + off, n);
        crypto_hash_buf(h, in, 4 + n, out);
        memcpy(buf + off, out, n);
    }
    crypto_wipe(in, sizeof(in));
    crypto_wipe(out, sizeof(out));
    return 0;
}

static void xor_into(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] ^= s[i];
}

/* d = the diffused chain of the first stripes - 1 blocks of in. */
static int af_chain(enum crypto_hash h, const uint8_t *in, size_t key_len,
                    uint32_t stripes, uint8_t *d)
{
    int r;

    memset(d, 0, key_len);
    for (uint32_t i = 0; i + 1 < stripes; i++) {
        xor_into(d, in + (size_t)i * key_len, key_len);
        r = diffuse(h, d, key_len);
        if (r < 0)
            return r;
    }
    return 0;
}

int crypto_af_split(enum crypto_hash h, const uint8_t *key, size_t key_len,
                    uint32_t stripes, uint8_t *out)
{
    uint8_t *d, *last;
    int r;

    if (stripes == 0 || key_len == 0)
        return -EINVAL;
    d = malloc(key_len);
    if (!d)
        return -ENOMEM;
    r = crypto_random(out, (size_t)(stripes - 1) * key_len);
    if (r == 0)
        r = af_chain(h, out, key_len, stripes, d);
    if (r == 0) {
        last = out + (size_t)(stripes - 1) * key_len;
        memcpy(last, d, key_len);
        xor_into(last, key, key_len);
    }
    crypto_wipe(d, key_len);
    free(d);
    return r;
}

int crypto_af_merge(enum crypto_hash h, const uint8_t *in, size_t key_len,
                    uint32_t stripes, uint8_t *key)
{
    int r;

    if (stripes == 0 || key_len == 0)
        return -EINVAL;
    r = af_chain(h, in, key_len, stripes, key);
    if (r == 0)
        xor_into(key, in + (size_t)(stripes - 1) * key_len, key_len);
    return r;
}
