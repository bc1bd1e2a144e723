/*
 * qcow2 driver, private header: on-disk constants, the decoded header, the
 * per-node state and the functions shared between the driver's files.
 * Only the files in drivers/format/qcow2/ and tests/unit/test-qcow2.c use it.
 */
#ifndef IMGFUSE_QCOW2_H
#define IMGFUSE_QCOW2_H

#include "core/bd.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QCOW2_MAGIC 0x514649fbu            /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72u
#define QCOW2_V3_HEADER_LEN 104u
#define QCOW2_MIN_CLUSTER_BITS 9u
#define QCOW2_MAX_CLUSTER_BITS 21u         /* 2 MiB, as QEMU */
#define QCOW2_MAX_L1_BYTES (32u << 20)     /* QEMU's implementation limit */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_BACKING_NAME 1023u
#define QCOW2_MAX_HOST_OFFSET (1ull << 56)  /* L1/L2 entries hold bits 9-55 */

/* incompatible features */
#define QCOW2_INCOMPAT_DIRTY       (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN       0x1full
/* compatible features */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
/* autoclear features */
#define QCOW2_AUTOCLEAR_BITMAPS    (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW   (1ull << 1)

/* header extension types */
#define QCOW2_EXT_END          0x00000000u
#define QCOW2_EXT_BACKING_FMT  0xe2792acau
#define QCOW2_EXT_FEATURES     0x6803f857u
#define QCOW2_EXT_BITMAPS      0x23852875u
#define QCOW2_EXT_CRYPTO       0x0537be77u
#define QCOW2_EXT_DATA_FILE    0x44415441u

/* L1/L2 entry bits */
#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       (1ull << 0)
#define QCOW2_L1_OFFSET_MASK   0x00fffffffffffe00ull
#define QCOW2_L2_OFFSET_MASK   0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED_MASK 0x7f000000000001ffull
#define QCOW2_L2_RESERVED_MASK 0x3f000000000001feull
#define QCOW2_REFTABLE_OFFSET_MASK 0xfffffffffffffe00ull

enum qcow2_compression { QCOW2_COMPRESS_ZLIB = 0, QCOW2_COMPRESS_ZSTD = 1 };

/* The fixed header, decoded and validated (units in the names). */
struct qcow2_header {
    uint32_t version;
    uint64_t backing_off;
    uint32_t backing_len;
    uint32_t cluster_bits;
    uint64_t size;                /* virtual disk size in bytes */
    uint32_t crypt_method;
    uint32_t l1_entries;
    uint64_t l1_off;
    uint64_t reftable_off;
    uint32_t reftable_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_off;
    uint64_t incompat;
    uint64_t compat;
    uint64_t autoclear;
    uint32_t refcount_order;
    uint32_t header_len;
    uint8_t compression_type;
};

struct qcow2_feature_name {
    uint8_t type;                 /* 0 incompatible, 1 compatible, 2 autoclear */
    uint8_t bit;
    char name[47];
};

/* Header extensions found after the header (pointers into nothing: copies). */
struct qcow2_exts {
    char *backing_fmt;
    char *data_file;
    struct qcow2_feature_name *features;
    size_t nb_features;
    bool has_bitmaps;
    uint32_t nb_bitmaps;
    uint64_t bitmap_dir_size;
    uint64_t bitmap_dir_off;
    uint64_t bitmaps_ext_off;     /* extension data in the header, 0 = none */
    bool has_crypto;
    uint64_t crypt_off;           /* the LUKS header (encrypt.format=luks) */
    uint64_t crypt_len;
    size_t nb_unknown;            /* kept on disk untouched: we never rewrite */
    uint64_t end;                 /* first byte after the extension area */
};

struct qcow2_snapshot {
    uint64_t l1_off;
    uint32_t l1_entries;
    char *id;
    char *name;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;           /* 0 when the entry does not say */
    uint64_t entry_len;           /* bytes in the table, padding included */
};

/* ---- metadata cache: cluster-sized tables keyed by host offset --------- */

struct qcow2_state;

struct qcow2_cache_slot {
    uint64_t off;                 /* host offset of the table, 0 = empty */
    uint8_t *buf;                 /* cluster_size bytes, as on disk */
    uint64_t lru;
    int32_t next;                 /* hash chain */
    bool dirty;
};

struct qcow2_cache {
    const char *what;             /* "l2" or "refcount" for messages */
    struct qcow2_state *s;
    struct qcow2_cache_slot *slots;
    uint32_t nb_slots;
    uint32_t used;
    int32_t *buckets;
    uint32_t nb_buckets;          /* power of two */
    uint64_t tick;
    uint32_t nb_dirty;
    /* called before writing a dirty table back (write ordering), may be NULL */
    int (*before_write)(struct qcow2_state *s);
};

/* ---- per-node state --------------------------------------------------- */

struct qcow2_state {
    struct bd_node *node;
    struct qcow2_header h;
    struct qcow2_exts x;

    uint64_t cluster_size;
    uint32_t cluster_bits;
    bool ext_l2;
    uint32_t l2_entry_bytes;      /* 8, or 16 with extended L2 */
    uint32_t l2_bits;             /* log2 of entries per L2 table */
    uint64_t l2_entries;
    uint32_t sc_bits;             /* subcluster size bits (= cluster_bits w/o ext) */
    uint64_t sc_size;

    uint64_t size;                /* virtual size (snapshot's when mounted one) */
    uint64_t *l1;                 /* native order */
    uint32_t l1_entries;
    uint64_t l1_off;
    uint32_t l1_dirty_lo, l1_dirty_hi; /* dirty entry range, lo > hi: clean */

    uint64_t *reftable;
    uint64_t reftable_entries;
    uint64_t reftable_off;
    uint32_t refcount_order;
    uint64_t refcount_max;
    uint64_t rb_entries;          /* refcounts per refcount block */
    uint32_t rb_bits;

    struct qcow2_cache l2c;
    struct qcow2_cache rbc;

    pthread_mutex_t meta_lock;    /* caches, L1, refcounts, header fields */
    pthread_mutex_t alloc_lock;   /* serializes allocating writes */
    /* Reads and writes hold it shared from mapping a cluster until its
     * data is moved; whatever frees host clusters (discard, zeroing with
     * unmap, shrinking) holds it exclusive, so no request can land in a
     * host cluster that was freed and handed to another guest cluster. */
    pthread_rwlock_t io_lock;
    bool locks_ready;

    struct bd_node *data;         /* where guest data lives: file or data file */
    struct bd_node *data_node;    /* owned external data file node, or NULL */
    bool data_raw;
    uint64_t file_size;           /* known end of n->file (grows with writes) */
    uint64_t data_size;           /* known end of the data node */
    uint64_t backing_size;        /* clamp for backing reads */

    struct qcow2_bitmaps *bm;     /* bitmaps tracked while open, or NULL */

    struct qcow2_snapshot *snapshots;
    uint32_t nb_snapshots;
    int snapshot_index;           /* mounted snapshot, -1 = active layer */

    char *backing_name;
    struct cipher *crypt;         /* encrypted image: the sector cipher */
    bool crypt_host_iv;           /* luks: IVs from host offsets, aes: guest */
    bool read_only;
    bool writes_started;
    bool lazy_refcounts;
    bool compress_writes;
    uint64_t cpack_off;           /* next free byte for packed compressed data */
    uint64_t cpack_end;           /* end of the cluster cpack_off lies in */
    uint64_t free_hint;           /* first cluster index that may be free */
    unsigned long io_errors;
    struct qcow2_ra *ra;          /* decompression ahead of a stream */
};

/* ---- header.c ---------------------------------------------------------- */

/* Decode and check the fixed header in buf[0..len) of a file of file_size
 * bytes. name is for messages. 0 or -errno with err filled. */
int qcow2_header_decode(const uint8_t *buf, size_t len, uint64_t file_size,
                        const char *name, struct qcow2_header *h,
                        struct bd_err *err);
/* Walk the header extensions in the header cluster buf[0..len). */
int qcow2_exts_decode(const uint8_t *buf, size_t len,
                      const struct qcow2_header *h, const char *name,
                      struct qcow2_exts *x, struct bd_err *err);
void qcow2_exts_free(struct qcow2_exts *x);
/* Comma separated names of the bits in mask for feature type (0/1/2),
 * "bit N" for unnamed ones. Always NUL-terminated. */
void qcow2_feature_names(const struct qcow2_exts *x, int type, uint64_t mask,
                         char *out, size_t outlen);
/* Decode the snapshot table (nb entries) from buf[0..len). */
int qcow2_snapshots_decode(const uint8_t *buf, size_t len, uint32_t nb,
                           const struct qcow2_header *h, uint64_t file_size,
                           const char *name, struct qcow2_snapshot **out,
                           struct bd_err *err);
void qcow2_snapshots_free(struct qcow2_snapshot *sn, uint32_t nb);

/* ---- l2-cache.c (generic table cache) ---------------------------------- */

int qcow2_cache_init(struct qcow2_cache *c, struct qcow2_state *s,
                     const char *what, uint64_t bytes);
void qcow2_cache_free(struct qcow2_cache *c);
/* Find or load the table at off. fresh: do not read, start from zeroes (a
 * newly allocated table). The pointer is valid until the next cache call;
 * caller holds meta_lock. */
int qcow2_cache_get(struct qcow2_cache *c, uint64_t off, bool fresh,
                    uint8_t **table);
void qcow2_cache_mark_dirty(struct qcow2_cache *c, uint64_t off);
/* Write back every dirty table (no flush of the file). */
int qcow2_cache_writeback(struct qcow2_cache *c);
/* Forget a table (its cluster was freed); a dirty one is dropped. */
void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off);

/* ---- refcount.c -------------------------------------------------------- */

int qcow2_refcount_get(struct qcow2_state *s, uint64_t cluster, uint64_t *rc);
/* Add delta (+1/-1) to the refcount of count clusters from host offset off. */
int qcow2_refcount_update(struct qcow2_state *s, uint64_t off, uint64_t count,
                          int delta);
/* Allocate count contiguous clusters (refcount 1); *off gets the host offset. */
int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t count, uint64_t *off);
/* Cluster c holds the header, an L1 table, the refcount table or the
 * snapshot table (as the header says). */
bool qcow2_is_metadata(const struct qcow2_state *s, uint64_t c);
/* Refcount at index i of a refcount block buffer. */
uint64_t qcow2_rb_read(const struct qcow2_state *s, const uint8_t *b,
                       uint64_t i);
/* Store refcount v at index i of a refcount block buffer. */
void qcow2_rb_write(const struct qcow2_state *s, uint8_t *b, uint64_t i,
                    uint64_t v);
/* Before writing a table that may point at newly allocated clusters. */
int qcow2_refcounts_stable(struct qcow2_state *s);

/* ---- cluster.c --------------------------------------------------------- */

enum qcow2_ctype {
    QCOW2_UNALLOC,        /* read the backing (or zeroes) */
    QCOW2_ZERO,           /* reads as zeroes; host may be set (preallocated) */
    QCOW2_NORMAL,         /* data at host */
    QCOW2_COMPRESSED,     /* host and csize describe the compressed data */
};

struct qcow2_extent {
    enum qcow2_ctype type;
    uint64_t len;         /* bytes from the guest offset with this state */
    uint64_t host;        /* NORMAL: host offset of the guest offset */
    uint64_t csize;       /* COMPRESSED: bytes of compressed data */
    uint64_t coff;        /* COMPRESSED: guest offset of the cluster start */
    bool copied;          /* NORMAL/ZERO with host: refcount is exactly 1 */
};

/* Map guest off (< s->size) for up to len bytes through the active (or
 * mounted snapshot's) L1 table, stopping at the end of the L2 table or
 * where the state or host contiguity changes. Takes meta_lock. */
int qcow2_map(struct qcow2_state *s, uint64_t off, uint64_t len,
              struct qcow2_extent *e);
/* Same through a given L1 table; caller holds meta_lock. */
int qcow2_map_locked(struct qcow2_state *s, const uint64_t *l1,
                     uint32_t l1_entries, uint64_t off, uint64_t len,
                     struct qcow2_extent *e);
/* Decode one L2 entry pair into an extent covering guest offset off within
 * its cluster (len up to the end of that cluster or subcluster run). */
int qcow2_l2_decode(const struct qcow2_state *s, uint64_t entry,
                    uint64_t bitmap, uint64_t off, struct qcow2_extent *e);
/* Get the L2 table for guest off ready for modification (allocating or
 * COWing it); caller holds meta_lock. *index is the entry index. */
int qcow2_l2_for_write(struct qcow2_state *s, uint64_t off, uint8_t **table,
                       uint64_t *index);
/* Drop one reference to the cluster at off (metadata no longer pointing
 * at it is on disk already); forgets a cached table that became free. */
int qcow2_release_cluster(struct qcow2_state *s, uint64_t off);
/* Shrink: clear L1 entries from `from` on, then free their L2 tables. */
int qcow2_drop_l2_tables(struct qcow2_state *s, uint32_t from);
/* Write back L1 entries in the dirty range. */
int qcow2_l1_writeback(struct qcow2_state *s);
/* All metadata to disk in a crash-safe order, then flush the file. */
int qcow2_meta_flush(struct qcow2_state *s, bool flush_file);
/* bd_driver.block_status for this layer: one extent of qcow2_map(). */
int qcow2_status(struct qcow2_state *s, uint64_t off, uint64_t len,
                 uint64_t *pnum, unsigned *status, uint64_t *map);

/* Host clusters whose references are dropped once the L2 entries that
 * replaced them are on disk. Starts zeroed; qcow2_release_all() empties
 * it, and on an error path the caller frees off. */
struct qcow2_release_list {
    uint64_t *off;
    size_t n, cap;
};
/* Note the clusters the old entry (decoded as e) holds a reference to
 * (compressed data may span two). */
int qcow2_release_old(struct qcow2_state *s, struct qcow2_release_list *r,
                      const struct qcow2_extent *e, uint64_t entry);
/* Write the metadata back, then drop every noted reference. Caller holds
 * meta_lock. */
int qcow2_release_all(struct qcow2_state *s, struct qcow2_release_list *r);

static inline uint64_t qcow2_l2_get(const struct qcow2_state *s,
                                    const uint8_t *t, uint64_t i)
{
    return bd_be64(t + i * s->l2_entry_bytes);
}
static inline uint64_t qcow2_l2_get_bitmap(const struct qcow2_state *s,
                                           const uint8_t *t, uint64_t i)
{
    return s->ext_l2 ? bd_be64(t + i * 16 + 8) : 0;
}
static inline void qcow2_l2_set(const struct qcow2_state *s, uint8_t *t,
                                uint64_t i, uint64_t entry, uint64_t bitmap)
{
    bd_put_be64(t + i * s->l2_entry_bytes, entry);
    if (s->ext_l2)
        bd_put_be64(t + i * 16 + 8, bitmap);
}

/* How a write replaces the L2 entry of a cluster. */
enum qcow2_old_kind {
    QCOW2_OLD_REUSE,    /* host cluster of our own (refcount 1): write into it */
    QCOW2_OLD_FRESH,    /* no host cluster: other subclusters keep their state */
    QCOW2_OLD_FULLCOW,  /* compressed or shared: new cluster, whole-cluster COW */
};

static inline enum qcow2_old_kind qcow2_kind_of(const struct qcow2_state *s,
                                                const struct qcow2_extent *e,
                                                uint64_t entry)
{
    if (e->type == QCOW2_COMPRESSED)
        return QCOW2_OLD_FULLCOW;
    uint64_t host = entry & QCOW2_L2_OFFSET_MASK;
    bool has_host = host || (s->data_node && (entry & QCOW2_OFLAG_COPIED));
    if (!has_host)
        return QCOW2_OLD_FRESH;
    if (entry & QCOW2_OFLAG_COPIED)
        return QCOW2_OLD_REUSE;
    return QCOW2_OLD_FULLCOW;
}

/* Extended L2 subcluster bits a..b-1 set, 0 <= a < b <= 32. */
static inline uint64_t qcow2_sc_mask(unsigned a, unsigned b)
{
    uint64_t m = (b >= 32 ? 0xffffffffull : ((1ull << b) - 1));
    return m & ~((1ull << a) - 1);
}

/* Known end of a file, grown by writers without a lock. */
static inline uint64_t qcow2_known_size(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void qcow2_grow_known(uint64_t *p, uint64_t end)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (end > cur &&
           !__atomic_compare_exchange_n(p, &cur, end, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
}

/* The known size of the node guest data lives in (file or data file). */
static inline uint64_t *qcow2_data_end(struct qcow2_state *s)
{
    return s->data_node ? &s->data_size : &s->file_size;
}

/* ---- compress.c -------------------------------------------------------- */

/* Decompress src[0..slen) into exactly dlen bytes of dst. */
int qcow2_decompress(int type, const void *src, size_t slen, void *dst,
                     size_t dlen);
/* Compress src (one cluster); 0 < result < slen, or -ENOSPC when it does
 * not shrink, or -errno. */
ssize_t qcow2_compress(int type, const void *src, size_t slen, void *dst,
                       size_t dlen);

/* ---- crypt.c (encrypt.format=aes|luks) --------------------------------- */

#define QCOW2_CRYPT_AES  1u
#define QCOW2_CRYPT_LUKS 2u

/* Unlock an encrypted image with encrypt.key-secret (or --key-prompt);
 * AES images warn that the encryption is weak. Nothing for plain ones. */
int qcow2_crypt_open(struct bd_node *n, struct qcow2_state *s,
                     const struct bd_opts *o, struct bd_err *err);
void qcow2_crypt_close(struct qcow2_state *s);
/* Decrypt buf[0..len) read from host, guest offset guest (512-aligned). */
int qcow2_decrypt(struct qcow2_state *s, void *buf, uint64_t len,
                  uint64_t host, uint64_t guest);
/* bd_pwrite of guest data to s->data at host, encrypted when the image is. */
int qcow2_write_data(struct qcow2_state *s, const void *buf, uint64_t len,
                     uint64_t host, uint64_t guest);
/* create: parse encrypt.format (and the deprecated encryption=on) into
 * *method (0, AES, LUKS); 0 or -errno. */
int qcow2_crypt_create_method(const struct bd_opts *o, uint32_t *method,
                              struct bd_err *err);
/* create: bytes the LUKS header needs (0 for AES/none). */
int qcow2_crypt_create_len(const struct bd_opts *o, uint32_t method,
                           uint64_t *len, struct bd_err *err);
/* create: write the LUKS header at off of file (method LUKS only). */
int qcow2_crypt_create_write(struct bd_node *file, const struct bd_opts *o,
                             uint64_t off, struct bd_err *err);

/* ---- readahead.c ------------------------------------------------------- */

/* The (idle) read-ahead state of an open image; freed by qcow2_ra_free,
 * which stops its thread: call it before io_lock goes. */
int qcow2_ra_init(struct qcow2_state *s);
void qcow2_ra_free(struct qcow2_state *s);
/* A read of [off, off+len) touched compressed clusters: streams start
 * the helper. Caller holds io_lock shared. */
void qcow2_ra_note(struct qcow2_state *s, uint64_t off, uint64_t len);
/* Copy e->len bytes at skip of the compressed cluster e from the cache
 * (waiting if the helper is inflating it); false on a miss. */
bool qcow2_ra_copy(struct qcow2_state *s, const struct qcow2_extent *e,
                   void *dst, uint64_t skip);
/* The image changes: drop the cache. Call before and after every change. */
void qcow2_ra_changed(struct qcow2_state *s);

/* ---- read.c ------------------------------------------------------------ */

/* Read and inflate the compressed cluster e into out (one cluster). */
int qcow2_read_compressed(struct qcow2_state *s, const struct qcow2_extent *e,
                          uint8_t *out);

/* Guest read; bytes past the virtual size read as zeroes. */
int qcow2_read(struct qcow2_state *s, void *buf, uint64_t len, uint64_t off);

/* ---- write.c ----------------------------------------------------------- */

int qcow2_write(struct qcow2_state *s, const void *buf, uint64_t len,
                uint64_t off, unsigned flags);
/* Write back all metadata and flush the file(s). */
int qcow2_flush_all(struct qcow2_state *s);

/* ---- zero.c ------------------------------------------------------------ */

int qcow2_write_zeroes(struct qcow2_state *s, uint64_t len, uint64_t off,
                       unsigned flags);
int qcow2_discard_range(struct qcow2_state *s, uint64_t len, uint64_t off);
/* Shrink: whole clusters of [off, end) unallocated, alloc_lock held. */
int qcow2_unmap_tail(struct qcow2_state *s, uint64_t off, uint64_t end);

/* ---- resize.c ---------------------------------------------------------- */

/* Change the virtual size (grow; shrink over unallocated space only). */
int qcow2_resize(struct qcow2_state *s, uint64_t size, struct bd_err *err);

/* ---- header-write.c ---------------------------------------------------- */

/* Header field updates done in place (dirty bit, autoclear, sizes). */
int qcow2_header_write_u64(struct qcow2_state *s, uint64_t field_off,
                           uint64_t val);
/* Before the first change: clear autoclear bits we do not maintain (the
 * bitmaps' clusters are given back), and mark the image dirty (v3). Once
 * done, writes_started is set. Caller holds alloc_lock. */
int qcow2_prepare_write(struct qcow2_state *s);

/* qcow2_prepare_write() once, taking alloc_lock; a load when done. */
static inline int qcow2_begin_writes(struct qcow2_state *s)
{
    int ret;

    if (__atomic_load_n(&s->writes_started, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&s->alloc_lock);
    ret = qcow2_prepare_write(s);
    pthread_mutex_unlock(&s->alloc_lock);
    return ret;
}

/* ---- create.c ---------------------------------------------------------- */

extern const char *const qcow2_create_options[];
int qcow2_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                 struct bd_err *err);

/* ---- bitmap.c --------------------------------------------------------- */

/* Before the first write (autoclear bitmaps bit set): load the enabled,
 * consistent bitmaps and mark them in_use on disk. 0, or -errno when the
 * bitmaps cannot be maintained (logged; the caller drops them). Caller
 * holds alloc_lock. */
int qcow2_bitmaps_load(struct qcow2_state *s);
/* Set the bits of [off, off+len) in every tracked bitmap. Lock-free. */
void qcow2_bitmaps_mark(struct qcow2_state *s, uint64_t off, uint64_t len);
/* Write the tracked bitmaps back (in_use cleared) and forget them. Caller
 * holds meta_lock and no request runs. */
int qcow2_bitmaps_store(struct qcow2_state *s);
void qcow2_bitmaps_free(struct qcow2_state *s);

/* The bitmaps were just declared inconsistent (autoclear bit cleared on
 * disk): give their clusters back. Damaged directories are left alone
 * (the clusters leak, nothing breaks). Caller holds meta_lock. */
int qcow2_free_bitmaps(struct qcow2_state *s);
/* Every cluster the bitmaps use (directory, tables, data), one entry per
 * cluster reference, into *v (caller frees). -EINVAL on a damaged
 * directory. Caller holds meta_lock or runs at open. */
int qcow2_bitmap_clusters(struct qcow2_state *s, uint64_t **v, size_t *n);

/* ---- rebuild.c --------------------------------------------------------- */

/* Rebuild refcounts from L1/L2/snapshot tables (dirty image opened rw). */
int qcow2_rebuild_refcounts(struct qcow2_state *s, struct bd_err *err);

/* ---- check.c ----------------------------------------------------------- */

/* bd_driver.check: compare stored refcounts with the metadata, repair. */
int qcow2_check(struct bd_node *n, unsigned fix, struct bd_check *res,
                struct bd_err *err);

/* snapshot.c: names of the internal snapshots (bd_driver.snapshots) */
int qcow2_snapshot_names(struct bd_node *n, char ***out);

#endif
