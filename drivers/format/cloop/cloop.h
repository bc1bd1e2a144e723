/*
 * Private interface of the cloop driver: the header and block index read
 * at open (index.c), the per-block codecs (codec.c) and the cache of
 * decompressed blocks (cache.c). Nothing here is visible outside
 * drivers/format/cloop/.
 */
#ifndef IMGFUSE_CLOOP_H
#define IMGFUSE_CLOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bd.h"

/*
 * The 136-byte header: a shell-script preamble of 128 bytes whose line
 * "#V2.0 Format" or "#V4.0 Format" puts the version at byte 11, then the
 * block size and block count (32-bit big-endian). It sits at the start of
 * the file (index after it) or, in V4's "footer" layout, in the last 136
 * bytes (index before it). The index holds n_blocks + 1 big-endian 64-bit
 * file offsets: block i is the bytes [ptr[i], ptr[i+1]). V4 keeps the
 * block's compression in the top 4 bits of ptr[i]; V2 blocks are all zlib.
 */
#define CLOOP_HEAD_SIZE     136u
#define CLOOP_PREAMBLE      128u
#define CLOOP_SIG_OFF       11u
#define CLOOP_OFF_MASK      0x0fffffffffffffffull

/* Block sizes are multiples of 512 up to this (QEMU's limit too). */
#define CLOOP_MAX_BLOCK     (64u << 20)
/* The index is read whole into memory: at most 512 MiB of it. */
#define CLOOP_MAX_INDEX     (512ull << 20)

/* V4 per-block compression (the top 4 bits of an index entry) */
#define CLOOP_CODEC_ZLIB    0u
#define CLOOP_CODEC_NONE    1u
#define CLOOP_CODEC_XZ      2u
#define CLOOP_CODEC_LZ4     3u
#define CLOOP_CODEC_LZO     4u
#define CLOOP_N_CODECS      5u

struct cloop_index {
    unsigned version;           /* 2 or 4 */
    bool footer;                /* header and index at the end of the file */
    uint32_t block_size;
    uint32_t n_blocks;
    uint64_t *ptrs;             /* n_blocks + 1 entries, as stored */
    uint64_t max_src;           /* largest stored block */
    unsigned codecs_seen;       /* bit i: CLOOP_CODEC_i used by some block */
};

/* One block's place in the file. */
struct cloop_extent {
    uint64_t off, len;
    unsigned codec;
};

/* A compressed block may be larger than the block it expands to when the
 * data does not compress; no codec grows data by more than this. */
static inline uint64_t cloop_max_stored(uint32_t block_size)
{
    return (uint64_t)block_size + block_size / 8 + 4096;
}

/* index.c: header search, index load and checks. */
int cloop_index_load(struct bd_node *file, const char *name,
                     struct cloop_index *ix, struct bd_err *err);
/* Check a loaded index against a file of file_size bytes (ptrs set). */
int cloop_index_check(struct cloop_index *ix, uint64_t file_size,
                      const char *name, struct bd_err *err);
void cloop_index_free(struct cloop_index *ix);
/* Version (2 or 4) when p[0..CLOOP_HEAD_SIZE) looks like a cloop header,
 * else 0. */
unsigned cloop_head_version(const uint8_t *p);
struct cloop_extent cloop_block(const struct cloop_index *ix, uint32_t i);

/* codec.c: expand src into dst (dst_len bytes of room). Returns the bytes
 * written, -EIO for corrupt data or output beyond dst_len, -ENOTSUP for a
 * codec not built in. */
long cloop_decode(unsigned codec, const uint8_t *src, size_t src_len,
                  uint8_t *dst, size_t dst_len);
const char *cloop_codec_name(unsigned codec);
bool cloop_codec_built(unsigned codec);

/* cache.c: decompressed blocks, a few, LRU. The lock is never held while
 * a block is read or expanded. */
struct cloop_slot {
    uint32_t block;
    bool used;                  /* holds (or is loading) block */
    bool loading;
    unsigned users;             /* readers copying out right now */
    uint64_t stamp;
    uint8_t *buf;               /* block_size bytes */
};

#define CLOOP_WORKERS 2             /* read-ahead threads */
#define CLOOP_AHEAD 4               /* blocks expanded ahead of a reader */
#define CLOOP_QUEUE 16

struct cloop_cache {
    struct bd_node *file;
    const struct cloop_index *ix;
    const char *name;
    pthread_mutex_t lock;
    pthread_cond_t loaded;
    struct cloop_slot *slots;
    unsigned n_slots;
    uint64_t clock;
    uint32_t last;              /* last block asked for: sequential reads */
    pthread_cond_t work;        /* the read-ahead queue got work, or stop */
    struct cloop_slot *queue[CLOOP_QUEUE];
    unsigned q_head, q_len;
    pthread_t workers[CLOOP_WORKERS];
    unsigned n_workers;
    bool workers_started, stop;
    unsigned long bad_blocks;   /* log once */
    bool ready;
};

/* A block held by one reader: a cache slot or a private buffer. */
struct cloop_ref {
    struct cloop_slot *slot;
    uint8_t *buf;
};

int cloop_cache_init(struct cloop_cache *c, struct bd_node *file,
                     const struct cloop_index *ix, uint64_t max_bytes,
                     const char *name);
void cloop_cache_destroy(struct cloop_cache *c);
int cloop_cache_get(struct cloop_cache *c, uint32_t block,
                    struct cloop_ref *ref);
void cloop_cache_put(struct cloop_cache *c, struct cloop_ref *ref);
/* Start expanding blocks from..to (inclusive) on the read-ahead threads:
 * a request over several blocks expands them in parallel. */
void cloop_cache_prefetch(struct cloop_cache *c, uint32_t from, uint32_t to);

/* zero.c: blocks of zeroes known by their stored bytes (block status). */
#define CLOOP_ZERO_SIG_MAX 4096u

struct cloop_zeroes {
    pthread_mutex_t lock;
    uint8_t sig[CLOOP_N_CODECS][CLOOP_ZERO_SIG_MAX];   /* a zero block, stored */
    uint32_t sig_len[CLOOP_N_CODECS];                 /* 0: not found yet */
    unsigned tries[CLOOP_N_CODECS];
};

int cloop_zero_init(struct cloop_zeroes *z);
void cloop_zero_destroy(struct cloop_zeroes *z);
/* 1 when block holds only zeroes, judged by its stored bytes (expanding
 * a few small blocks to learn what zeroes look like); 0 when it is not
 * known to; -errno when the stored bytes cannot be read. */
int cloop_block_is_zero(struct cloop_zeroes *z, struct cloop_cache *c,
                        uint32_t block);

#endif
