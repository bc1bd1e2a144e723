/*
 * cloop: which blocks hold only zeroes, for block status, without expanding
 * every block. One codec with one setting turns a block of zeroes into the
 * same few bytes each time, so the first small block found to expand to
 * zeroes gives that stream, and a later block stored as the very same
 * bytes with the same codec expands to zeroes too. Any other block is
 * reported as data, which is always correct. Reading blocks is cache.c's.
 */
#include "cloop.h"

#include <stdlib.h>
#include <string.h>

/* A zero block compresses to well under this share of it (zlib ~1/1000,
 * lz4 and LZO ~1/250); a larger stored block is taken as data unread. */
#define ZERO_MAX_SHARE 32u
/* Small blocks expanded per codec while looking for the zero stream. */
#define ZERO_TRIES 8u

int cloop_zero_init(struct cloop_zeroes *z)
{
    memset(z, 0, sizeof(*z));
    return -pthread_mutex_init(&z->lock, NULL);
}

void cloop_zero_destroy(struct cloop_zeroes *z)
{
    pthread_mutex_destroy(&z->lock);
}

static bool all_zero(const uint8_t *p, size_t len)
{
    static const uint8_t zeros[4096];

    while (len) {
        size_t n = len < sizeof(zeros) ? len : sizeof(zeros);
        if (memcmp(p, zeros, n) != 0)
            return false;
        p += n;
        len -= n;
    }
    return true;
}

/* Expand the block and keep its stored bytes as the zero stream of its
 * codec when it is all zeroes. 1 if it is, 0 if not (or unreadable: the
 * read itself will say so). */
static int learn(struct cloop_zeroes *z, struct cloop_cache *c, uint32_t block,
                 const struct cloop_extent *e, const uint8_t *stored)
{
    struct cloop_ref ref;
    bool zero;

    if (cloop_cache_get(c, block, &ref) < 0)
        return 0;
    zero = all_zero(ref.buf, c->ix->block_size);
    cloop_cache_put(c, &ref);
    if (!zero)
        return 0;
    pthread_mutex_lock(&z->lock);
    if (!z->sig_len[e->codec]) {
        memcpy(z->sig[e->codec], stored, e->len);
        z->sig_len[e->codec] = (uint32_t)e->len;
    }
    pthread_mutex_unlock(&z->lock);
    return 1;
}

int cloop_block_is_zero(struct cloop_zeroes *z, struct cloop_cache *c,
                        uint32_t block)
{
    struct cloop_extent e = cloop_block(c->ix, block);
    uint8_t stored[CLOOP_ZERO_SIG_MAX];
    bool try_it;
    int r;

    if (e.codec >= CLOOP_N_CODECS || !e.len || e.len > CLOOP_ZERO_SIG_MAX ||
        e.len > c->ix->block_size / ZERO_MAX_SHARE)
        return 0;
    r = bd_pread(c->file, stored, e.len, e.off);
    if (r < 0)
        return r;
    pthread_mutex_lock(&z->lock);
    if (z->sig_len[e.codec]) {
        r = z->sig_len[e.codec] == e.len &&
            memcmp(z->sig[e.codec], stored, e.len) == 0;
        pthread_mutex_unlock(&z->lock);
        return r;
    }
    try_it = z->tries[e.codec] < ZERO_TRIES;
    if (try_it)
        z->tries[e.codec]++;
    pthread_mutex_unlock(&z->lock);
    return try_it ? learn(z, c, block, &e, stored) : 0;
}
