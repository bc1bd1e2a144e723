/*
 * Private interface of the dmg (UDIF) driver: the chunk map built at open
 * from the koly trailer and the blkx (mish) tables, and the chunk codecs.
 * Nothing here is visible outside drivers/format/dmg/.
 */
#ifndef IMGFUSE_DMG_H
#define IMGFUSE_DMG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bd.h"

/* blkx chunk types (the "entry type" of a mish table entry) */
#define DMG_CHUNK_ZERO       0x00000000u
#define DMG_CHUNK_RAW        0x00000001u
#define DMG_CHUNK_IGNORE     0x00000002u
#define DMG_CHUNK_COMMENT    0x7ffffffeu
#define DMG_CHUNK_ADC        0x80000004u
#define DMG_CHUNK_ZLIB       0x80000005u
#define DMG_CHUNK_BZIP2      0x80000006u
#define DMG_CHUNK_LZFSE      0x80000007u
#define DMG_CHUNK_LZMA       0x80000008u
#define DMG_CHUNK_TERMINATOR 0xffffffffu

#define DMG_KOLY_SIZE   512u
#define DMG_MISH_HDR    204u        /* bytes before the first entry */
#define DMG_MISH_ENTRY  40u

/* One compressed chunk may expand to at most this many bytes, and its
 * compressed form may be at most this large: hdiutil writes 1 MiB chunks,
 * so this is generous while keeping a hostile table from making us
 * allocate gigabytes per read. */
#define DMG_MAX_CHUNK_LEN   (64u << 20)
/* The XML plist (or resource fork) is read whole into memory. */
#define DMG_MAX_META_LEN    (64u << 20)
#define DMG_MAX_CHUNKS      (4u << 20)

/* One run of the virtual disk, in bytes (converted from sectors at open). */
struct dmg_chunk {
    uint64_t off;           /* offset in the virtual disk */
    uint64_t len;           /* bytes it expands to */
    uint64_t src_off;       /* absolute offset of its data in the file */
    uint64_t src_len;       /* bytes of data in the file */
    uint32_t type;          /* DMG_CHUNK_* (never comment/terminator) */
};

/* The chunk map of an image, sorted by off, non-overlapping. */
struct dmg_map {
    struct dmg_chunk *chunks;
    size_t n_chunks;
    size_t cap;
    unsigned n_tables;      /* blkx tables (partitions) seen */
    uint64_t size;          /* virtual disk size in bytes */
    uint64_t data_fork_off;
    uint32_t types_seen;    /* bit i: codec i of dmg_type_bit() */
    uint64_t max_len;       /* largest compressed chunk's output */
};

/* cache.c: decoded chunks, bounded, LRU, with sequential read-ahead. */
#define DMG_CACHE_SLOTS 32
#define DMG_PREFETCH_THREADS 2
#define DMG_PREFETCH_AHEAD 4
#define DMG_PREFETCH_QUEUE 16

struct dmg_slot {
    size_t chunk;               /* chunk index; SIZE_MAX when free */
    uint8_t *buf;               /* NULL while loading */
    size_t len;
    unsigned users;             /* readers copying out of buf right now */
    bool loading;               /* being decoded; wait on dmg_cache.loaded */
    uint64_t stamp;             /* LRU clock */
};

struct dmg_cache {
    struct bd_node *file;
    const struct dmg_map *map;
    const char *name;
    uint64_t max_bytes, bytes;
    pthread_mutex_t lock;       /* everything below */
    pthread_cond_t loaded;      /* a slot finished loading */
    pthread_cond_t work;        /* the read-ahead queue got work, or stop */
    struct dmg_slot slots[DMG_CACHE_SLOTS];
    uint64_t clock;
    size_t last;                /* last chunk read, to detect sequential use */
    struct dmg_slot *queue[DMG_PREFETCH_QUEUE];
    unsigned q_head, q_len;
    pthread_t threads[DMG_PREFETCH_THREADS];
    unsigned n_threads;
    bool threads_started, stop, ready;
    unsigned long bad_chunks;   /* for log-once */
};

/* A decoded chunk held by one reader: a cache slot or a private buffer. */
struct dmg_ref {
    struct dmg_slot *slot;
    uint8_t *buf;
};

void dmg_cache_init(struct dmg_cache *c, struct bd_node *file,
                    const struct dmg_map *m, uint64_t max_bytes,
                    const char *name);
/* Stops the read-ahead threads and frees every buffer; safe if never
 * initialised (a zeroed struct). */
void dmg_cache_destroy(struct dmg_cache *c);
/* Borrow chunk idx decoded (idx must be a compressed chunk); give it back
 * with dmg_cache_put(). 0 or -errno (-EIO: corrupt chunk). */
int dmg_cache_get(struct dmg_cache *c, size_t idx, struct dmg_ref *ref);
void dmg_cache_put(struct dmg_cache *c, struct dmg_ref *ref);
/* Start decoding chunks from..to in the background (one request that spans
 * several chunks: the reader decodes the first while threads do the rest). */
void dmg_cache_prefetch(struct dmg_cache *c, size_t from, size_t to);

/* map.c: koly trailer, XML plist / resource fork, mish tables. */
int dmg_map_load(struct bd_node *file, const char *name, struct dmg_map *m,
                 struct bd_err *err);
void dmg_map_free(struct dmg_map *m);
/* Parse one mish table (len bytes, untrusted) and append its chunks. */
int dmg_map_add_mish(struct dmg_map *m, const uint8_t *p, size_t len,
                     uint64_t file_size, const char *name, struct bd_err *err);
/* Sort, check overlaps, fix the size; after all tables were added. */
int dmg_map_finish(struct dmg_map *m, uint64_t koly_sectors, const char *name,
                   struct bd_err *err);
/* Index of the chunk containing off, or of the first chunk after it
 * (n_chunks if none). */
size_t dmg_map_find(const struct dmg_map *m, uint64_t off);
unsigned dmg_type_bit(uint32_t type);
const char *dmg_type_name(uint32_t type);

/* Decoders: expand src into exactly dst_len bytes of dst. Return 0, or
 * -EIO when the data is corrupt or does not expand to exactly dst_len. */
int dmg_decode(uint32_t type, const uint8_t *src, size_t src_len,
               uint8_t *dst, size_t dst_len);
int dmg_adc_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                   size_t dst_len);
/* LZFSE stream (bvx1/bvx2/bvxn/bvx-/bvx$ blocks), LZVN included. */
int dmg_lzfse_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                     size_t dst_len);
/* Base64 of a plist <data> element, whitespace ignored; *out malloc'd. */
int dmg_base64_decode(const char *s, uint8_t **out, size_t *out_len);

#endif
