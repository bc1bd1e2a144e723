/*
 * luks: LUKS1 images (cryptsetup luksFormat --type luks1, qemu-img create
 * -f luks), read-write. The header and key slots are crypto/luks.c's job;
 * this file finds the passphrase (key-secret=ID or a prompt), opens the
 * image and en/decrypts the payload sector by sector on the caller's
 * thread. The cipher object is immutable, so requests run in parallel.
 */
#include "core/bd.h"
#include "crypto/cipher.h"
#include "crypto/luks.h"

#include <stdlib.h>
#include <string.h>

#define LUKS_BOUNCE_MAX (1u << 20)      /* encrypt writes this much at a time */

struct luks_state {
    struct luks_header h;
    struct cipher *cipher;
    uint64_t payload_off;
    uint64_t size;
    int slot;
    bool read_only;
};

/* The passphrase: secret key-secret=ID, else a prompt when allowed. */
static int luks_passphrase(const char *name, const struct bd_opts *o,
                           const uint8_t **pass, size_t *len, struct bd_err *err)
{
    const char *id = bd_opts_get(o, "key-secret");
    char who[1024];

    if (!id)
        return bd_secret_prompt(name, "key-secret", pass, len, err);
    snprintf(who, sizeof(who), "%s: key-secret=%s", name, id);
    return bd_secret_get(id, who, pass, len, err);
}

static int luks_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    struct luks_state *s = n->state;
    const uint8_t *pass;
    size_t pass_len;
    int64_t fsize;
    int r;

    s->read_only = n->flags.read_only;
    fsize = bd_size(n->file);
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    r = luks_header_read(n->file, 0, (uint64_t)fsize, &s->h, n->name, err);
    if (r < 0)
        return r;
    if (s->h.payload_off > (uint64_t)fsize)
        return bd_err_set(err, EINVAL, "%s: the LUKS encrypted data starts at "
                          "offset %llu, beyond the end of the file (%lld bytes); "
                          "the image is truncated", n->name,
                          (unsigned long long)s->h.payload_off, (long long)fsize);
    if (s->h.payload_off < LUKS_HEADER_BYTES)
        return bd_err_set(err, EINVAL, "%s: the LUKS encrypted data (offset %llu) "
                          "overlaps the header", n->name,
                          (unsigned long long)s->h.payload_off);
    r = luks_passphrase(n->name, o, &pass, &pass_len, err);
    if (r < 0)
        return r;
    r = luks_unlock(n->file, 0, &s->h, pass, pass_len, &s->cipher, &s->slot,
                    n->name, err);
    if (r < 0)
        return r;
    s->payload_off = s->h.payload_off;
    s->size = ((uint64_t)fsize - s->payload_off) / LUKS_SECTOR * LUKS_SECTOR;
    if (s->h.legacy_overlap) {
        /* cryptsetup 1.0's layout: QEMU refuses it, cryptsetup opens it */
        log_warn("%s: old LUKS layout whose key material overlaps the header "
                 "(cryptsetup 1.0): opened read-only; copy the data out to a "
                 "new image to write", n->name);
        s->read_only = true;
    }
    return 0;
}

static void luks_close(struct bd_node *n)
{
    struct luks_state *s = n->state;

    cipher_free(s->cipher);
    s->cipher = NULL;
}

/* Any version: LUKS2 is then refused by name, not opened as raw. */
static int luks_probe(const uint8_t *head, size_t len)
{
    if (len >= LUKS_MAGIC_LEN && memcmp(head, LUKS_MAGIC, LUKS_MAGIC_LEN) == 0)
        return 100;
    return 0;
}

static void luks_limits(struct bd_node *n, struct bd_limits *lim)
{
    (void)n;
    lim->request_alignment = LUKS_SECTOR;
}

static int64_t luks_size(struct bd_node *n)
{
    struct luks_state *s = n->state;

    return (int64_t)s->size;
}

static int luks_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct luks_state *s = n->state;
    int r = bd_pread(n->file, buf, len, s->payload_off + off);

    if (r < 0)
        return r;
    return cipher_decrypt(s->cipher, off / LUKS_SECTOR, buf, len);
}

static int luks_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                       uint64_t off, unsigned flags)
{
    struct luks_state *s = n->state;
    size_t cap = len < LUKS_BOUNCE_MAX ? (size_t)len : LUKS_BOUNCE_MAX;
    uint8_t *b;
    int r = 0;

    if (s->read_only)
        return -EROFS;
    b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (uint64_t done = 0; done < len && r == 0; done += cap) {
        size_t chunk = len - done < cap ? (size_t)(len - done) : cap;

        memcpy(b, (const uint8_t *)buf + done, chunk);
        r = cipher_encrypt(s->cipher, (off + done) / LUKS_SECTOR, b, chunk);
        if (r == 0)
            r = bd_pwrite(n->file, b, chunk, s->payload_off + off + done, flags);
    }
    free(b);
    return r;
}

static int luks_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                         struct bd_err *err)
{
    struct luks_state *s = n->state;
    int r;

    if (s->read_only)
        return bd_err_set(err, EROFS, "%s: the image is read-only", n->name);
    if (size % LUKS_SECTOR)
        return bd_err_set(err, EINVAL, "%s: a LUKS image's size is a multiple of "
                          "512 bytes", n->name);
    r = bd_truncate(n->file, s->payload_off + size, prealloc, err);
    if (r == 0)
        s->size = size;
    return r;
}

static void luks_info(struct bd_node *n, struct bd_info *info)
{
    struct luks_state *s = n->state;
    const struct luks_header *h = &s->h;

    bd_info_add(info, "encrypted", "yes");
    bd_info_add(info, "cipher", "%s-%s (%u-bit key)", h->cipher_name,
                h->cipher_mode, h->key_bytes * 8);
    bd_info_add(info, "hash", "%s", h->hash_spec);
    bd_info_add(info, "payload offset", "%llu",
                (unsigned long long)h->payload_off);
    bd_info_add(info, "uuid", "%s", h->uuid);
    bd_info_add(info, "active key slots", "%u", h->active_slots);
    bd_info_add(info, "unlocked key slot", "%d", s->slot);
}

/* ---- create -------------------------------------------------------------- */

static int luks_create_image(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                             struct bd_err *err)
{
    struct luks_create_opts lo;
    const uint8_t *pass;
    size_t pass_len;
    uint64_t hdr;
    int r;

    r = luks_create_opts_get(o, &lo, err);
    if (r < 0)
        return r;
    r = luks_create_size(&lo, &hdr, err);
    if (r < 0)
        return r;
    r = luks_passphrase(file->name, o, &pass, &pass_len, err);
    if (r < 0)
        return r;
    size = (size + LUKS_SECTOR - 1) / LUKS_SECTOR * LUKS_SECTOR;
    if (size > INT64_MAX - hdr)
        return bd_err_set(err, EFBIG, "size %llu is too large",
                          (unsigned long long)size);
    r = bd_truncate(file, hdr + size, BD_PREALLOC_OFF, err);
    if (r < 0)
        return r;
    return luks_create(file, 0, &lo, pass, pass_len, NULL, NULL, file->name, err);
}

static const char *const luks_options[] = { "key-secret", NULL };

static const char *const luks_create_options[] = {
    "key-secret", "cipher-alg", "cipher-mode", "ivgen-alg", "ivgen-hash-alg",
    "hash-alg", "iter-time", NULL
};

static const struct bd_create_ops luks_create_ops = {
    .options = luks_create_options,
    .create = luks_create_image,
};

const struct bd_driver bd_drv_luks = {
    .name = "luks",
    .kind = BD_FORMAT,
    .options = luks_options,
    .state_size = sizeof(struct luks_state),
    .parallel = true,
    .probe = luks_probe,
    .open = luks_open,
    .close = luks_close,
    .limits = luks_limits,
    .size = luks_size,
    .pread = luks_pread,
    .pwrite = luks_pwrite,
    .truncate = luks_truncate,
    .info = luks_info,
    .create = &luks_create_ops,
};
