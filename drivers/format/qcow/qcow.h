/*
 * qcow (version 1): the driver's private header. The on-disk layout (a
 * 48-byte big-endian header, the backing file name, one L1 table of L2
 * table offsets, L2 tables of cluster offsets, zlib-compressed clusters),
 * the per-node state, and what the driver's files share.
 */
#ifndef IMGFUSE_QCOW_H
#define IMGFUSE_QCOW_H

#include "core/bd.h"
#include "core/overflow.h"

#include <zlib.h>

#define QCOW_MAGIC          0x514649fbu     /* "QFI\xfb", shared with qcow2 */
#define QCOW_VERSION        1u
#define QCOW_HEADER_SIZE    48u
#define QCOW_CRYPT_NONE     0u
#define QCOW_CRYPT_AES      1u
#define QCOW_OFLAG_COMPRESSED (1ull << 63)
#define QCOW_MIN_CLUSTER_BITS 9u
#define QCOW_MAX_CLUSTER_BITS 16u
#define QCOW_MIN_L2_BITS    6u              /* 512-byte L2 tables */
#define QCOW_MAX_L2_BITS    13u             /* 64 KiB L2 tables */
#define QCOW_MAX_BACKING_NAME 1023u
#define QCOW_MAX_L1_ENTRIES (1u << 25)      /* 256 MiB of L1 in memory */
#define QCOW_MAX_SIZE       (1ull << 60)    /* guest bytes we accept */
#define QCOW_L2_CACHE       16u

struct qcow_header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_off;
    uint32_t backing_len;
    uint32_t mtime;
    uint64_t size;                  /* guest bytes */
    uint8_t cluster_bits;
    uint8_t l2_bits;                /* log2 of the entries in an L2 table */
    uint32_t crypt_method;
    uint64_t l1_off;
};

struct qcow_l2 {
    uint64_t off;                   /* where the table is in the file; 0: free */
    uint64_t *table;                /* native byte order */
    uint64_t used;                  /* last use, for eviction */
};

/*
 * Per node. The driver is not parallel: core serializes every callback
 * with the node lock, so nothing here has a lock of its own.
 */
struct qcow_state {
    struct qcow_header h;
    uint64_t size;                  /* guest bytes, a multiple of 512 */
    uint32_t cluster_size;
    uint32_t l2_entries;
    uint64_t l1_entries;
    uint64_t *l1;                   /* native byte order */
    char *backing_name;
    uint64_t backing_size;
    uint64_t file_size;             /* the file's length, as we grow it */
    struct qcow_l2 l2[QCOW_L2_CACHE];
    uint64_t tick;
    uint8_t *cbuf;                  /* compressed bytes of one cluster */
    uint8_t *cluster;               /* the last decompressed cluster */
    uint64_t cluster_entry;         /* its L2 entry; 0: none */
    uint8_t *rmw;                   /* one cluster for partial writes */
    z_stream z;
    bool z_ready;
    struct cipher *crypt;           /* AES-encrypted image, else NULL */
};

void qcow_header_decode(const uint8_t *b, struct qcow_header *h);
void qcow_header_encode(const struct qcow_header *h, uint8_t *b);

/* io.c: the I/O callbacks (node locked by core) and their cleanup. */
int qcow_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off);
int qcow_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
                unsigned flags);
int qcow_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                       unsigned flags);
int qcow_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                      uint64_t *pnum, unsigned *status, uint64_t *map);
void qcow_io_free(struct qcow_state *s);

/* crypt.c: AES images (encrypt.key-secret, or --key-prompt). Data of
 * normal clusters: decrypt after reading, encrypt on writing (buf NULL:
 * zeroes); guest is the guest offset the IVs count from. */
struct cipher;
int qcow_crypt_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err);
void qcow_crypt_close(struct qcow_state *s);
int qcow_decrypt(struct qcow_state *s, void *buf, uint64_t len, uint64_t guest);
int qcow_write_data(struct bd_node *n, const void *buf, uint64_t len,
                    uint64_t host, uint64_t guest);

/* create.c */
extern const struct bd_create_ops qcow_create_ops;

#endif
