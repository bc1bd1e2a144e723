/*
 * LUKS1 headers (LUKS On-Disk Format Specification 1.2.3): decode and
 * validate one (every field untrusted), unlock a key slot with a
 * passphrase, and write a new header with one key slot. The header may sit
 * at any byte offset `base` of a node (0 for a .luks file; qcow2 keeps it
 * in its crypt header extension), and key material offsets count from
 * there. What the payload is, and where, is the caller's business.
 */
#ifndef IMGFUSE_CRYPTO_LUKS_H
#define IMGFUSE_CRYPTO_LUKS_H

#include "core/bd.h"
#include "crypto/cipher.h"

#include <stdbool.h>
#include <stdint.h>

#define LUKS_MAGIC "LUKS\xba\xbe"
#define LUKS_MAGIC_LEN 6u
#define LUKS_HEADER_BYTES 592u          /* the on-disk header proper */
#define LUKS_SLOTS 8u
#define LUKS_DIGEST_BYTES 20u
#define LUKS_SALT_BYTES 32u
#define LUKS_STRIPES 4000u              /* what every writer uses */
#define LUKS_SECTOR 512u                /* LUKS1 counts offsets in these */
/* PBKDF2 iterations we agree to run for one key slot or the master key
 * digest: 2^25, about 10 s for a 64-byte sha256 key on a core with SHA
 * instructions, where an iter-time of 2000 ms gives 6.8 million. A
 * hostile header could ask for 2^32 - 1 per slot and for the digest:
 * hours of CPU before failing. */
#define LUKS_MAX_ITERATIONS (1u << 25)
#define LUKS_MAX_KEY_BYTES 64u
#define LUKS_MAX_STRIPES 65536u         /* key material <= 4 MiB per slot */

/* Bytes of a key slot's material on disk: whole sectors. */
static inline uint64_t luks_material_len(uint32_t key_bytes, uint32_t stripes)
{
    return ((uint64_t)key_bytes * stripes + LUKS_SECTOR - 1) / LUKS_SECTOR *
           LUKS_SECTOR;
}

struct luks_slot {
    bool active;
    uint32_t iterations;
    uint8_t salt[LUKS_SALT_BYTES];
    uint64_t material_off;              /* bytes from the header's start */
    uint32_t stripes;
};

struct luks_header {
    char cipher_name[33];               /* "aes" */
    char cipher_mode[33];               /* "xts-plain64", "cbc-essiv:sha256" */
    char hash_spec[33];                 /* "sha256" */
    char uuid[41];
    uint64_t payload_off;               /* bytes from the header's start */
    uint32_t key_bytes;
    uint8_t mk_digest[LUKS_DIGEST_BYTES];
    uint8_t mk_salt[LUKS_SALT_BYTES];
    uint32_t mk_iterations;
    struct luks_slot slots[LUKS_SLOTS];
    /* decoded */
    struct cipher_spec spec;
    enum crypto_hash hash;
    unsigned active_slots;
    /* v1.0-era layout: an active key slot's material starts inside the
     * 592-byte header (slot descriptors it covers are taken as inactive).
     * Readable; the caller should refuse to write (QEMU refuses to open). */
    bool legacy_overlap;
};

/*
 * Decode and validate the header in buf[0..len) (len >= LUKS_HEADER_BYTES).
 * region_len: bytes from the header's start that belong to it (the file
 * size for a .luks file, the extension's length inside qcow2): every active
 * slot's key material must lie in it. Checks magic, version 1, known
 * cipher/mode/IV generator/hash and key size, iteration counts (at most
 * LUKS_MAX_ITERATIONS), stripes, key material inside the region, no slot
 * over the payload. 0, or -EINVAL/-ENOTSUP with err set, naming `who`.
 */
int luks_header_decode(const uint8_t *buf, size_t len, uint64_t region_len,
                       struct luks_header *h, const char *who,
                       struct bd_err *err);
/* Read LUKS_HEADER_BYTES at base of file and decode them (see above). */
int luks_header_read(struct bd_node *file, uint64_t base, uint64_t region_len,
                     struct luks_header *h, const char *who, struct bd_err *err);

/*
 * Try pass[0..pass_len) on each active key slot in turn (one PBKDF2 per
 * slot tried, plus the master key digest). On success *out is a sector
 * cipher (512-byte sectors) keyed with the master key, the caller's to
 * cipher_free, and *slot (may be NULL) the slot that matched. No match:
 * -EPERM with "WHO: no key slot matches the passphrase". Other failures
 * (I/O, memory) -errno with err set.
 */
int luks_unlock(struct bd_node *file, uint64_t base, const struct luks_header *h,
                const uint8_t *pass, size_t pass_len, struct cipher **out,
                int *slot, const char *who, struct bd_err *err);

/* What a new header is made with (QEMU's create options). */
struct luks_create_opts {
    struct cipher_spec spec;            /* aes-256, xts, plain64, sha256 */
    enum crypto_hash hash;              /* sha256 */
    uint32_t iter_time_ms;              /* 2000 */
};
/* The create option names, NULL-terminated: cipher-alg cipher-mode
 * ivgen-alg ivgen-hash-alg hash-alg iter-time (key-secret is the
 * caller's). */
extern const char *const luks_create_option_names[];
/*
 * Fill *out with QEMU's defaults, then the options of view o (under the
 * names above; qcow2 passes its "encrypt" sub-view). 0 or -EINVAL with err
 * set naming the option and the accepted values.
 */
int luks_create_opts_get(const struct bd_opts *o, struct luks_create_opts *out,
                         struct bd_err *err);
/* Bytes a new header with its 8 key slot areas takes (QEMU's layout: slot
 * areas from 4096, each rounded to 4096): the payload offset luks_create
 * writes. 0 or -EINVAL for a bad combination, err set. */
int luks_create_size(const struct luks_create_opts *o, uint64_t *len,
                     struct bd_err *err);
/*
 * Write a new LUKS1 header at base of file: a random master key, its
 * digest, key slot 0 holding it under pass (PBKDF2 iterations measured for
 * iter_time_ms, at least 1000), the other 7 slots inactive, and the
 * payload offset set to luks_create_size. Only [base, base + that size)
 * is written. *out (may be NULL) gets the sector cipher, *len (may be
 * NULL) that size. 0 or -errno with err set naming `who`.
 */
int luks_create(struct bd_node *file, uint64_t base,
                const struct luks_create_opts *o, const uint8_t *pass,
                size_t pass_len, struct cipher **out, uint64_t *len,
                const char *who, struct bd_err *err);

#endif
