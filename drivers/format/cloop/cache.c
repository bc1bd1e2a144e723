/*
 * Decompressed cloop blocks: a few slots, least recently used first out.
 * FUSE reads arrive in pieces smaller than a block and from several
 * threads, so each block is expanded once and shared. The lock guards only
 * the slot table: a reader claims a slot, drops the lock, reads and
 * expands the block, and publishes it; others wanting the same block wait
 * for it instead of expanding it twice. Different blocks expand in
 * parallel on the threads that asked for them, and when reads walk the
 * disk in order (or one request spans several blocks) two read-ahead
 * threads expand the next blocks while the reader copies out of this one,
 * so even a single sequential reader uses both cores.
 */
#include "cloop.h"

#include <stdlib.h>
#include <string.h>

#define CLOOP_MIN_SLOTS 4u
#define CLOOP_MAX_SLOTS 64u

static void log_bad_block(struct cloop_cache *c, uint32_t block,
                          const struct cloop_extent *e, const char *what)
{
    if (__atomic_fetch_add(&c->bad_blocks, 1, __ATOMIC_RELAXED) == 0)
        log_err("%s: block %u (%llu bytes of %s at file offset %llu) %s",
                c->name, block, (unsigned long long)e->len,
                cloop_codec_name(e->codec), (unsigned long long)e->off, what);
}

/* Read block and expand it into dst (block_size bytes); no lock held. */
static int decode_block(struct cloop_cache *c, uint32_t block, uint8_t *dst)
{
    struct cloop_extent e = cloop_block(c->ix, block);
    uint32_t bs = c->ix->block_size;
    bool last = block + 1 == c->ix->n_blocks;
    uint8_t *src;
    long got;
    int ret;

    if (!cloop_codec_built(e.codec)) {
        log_bad_block(c, block, &e, "uses a compression this imgfuse was "
                      "built without");
        return -ENOTSUP;
    }
    if (e.len == 0) {
        log_bad_block(c, block, &e, "is empty");
        return -EIO;
    }
    src = malloc(e.len);
    if (!src)
        return -ENOMEM;
    ret = bd_pread(c->file, src, e.len, e.off);
    if (ret < 0)
        goto out;
    got = cloop_decode(e.codec, src, e.len, dst, bs);
    if (got < 0) {
        ret = (int)got;
        log_bad_block(c, block, &e, ret == -EIO
                      ? "is corrupt or expands beyond the block size"
                      : strerror(-ret));
        goto out;
    }
    if ((uint64_t)got < bs) {
        /* the last block may stop short; any other one is damaged */
        if (!last) {
            log_bad_block(c, block, &e, "expands to less than the block "
                          "size");
            ret = -EIO;
            goto out;
        }
        memset(dst + got, 0, bs - (uint64_t)got);
    }
    ret = 0;
out:
    free(src);
    return ret;
}

/* ---- slots (c->lock held) ----------------------------------------------- */

static struct cloop_slot *slot_find(struct cloop_cache *c, uint32_t block)
{
    for (unsigned i = 0; i < c->n_slots; i++) {
        if (c->slots[i].used && c->slots[i].block == block)
            return &c->slots[i];
    }
    return NULL;
}

/* An unused slot, or the least recently used idle one; NULL if all busy. */
static struct cloop_slot *slot_claim(struct cloop_cache *c, uint32_t block)
{
    struct cloop_slot *pick = NULL;

    for (unsigned i = 0; i < c->n_slots; i++) {
        struct cloop_slot *sl = &c->slots[i];

        if (!sl->used) {
            pick = sl;
            break;
        }
        if (!sl->users && !sl->loading && (!pick || sl->stamp < pick->stamp))
            pick = sl;
    }
    if (pick) {
        pick->used = true;
        pick->loading = true;
        pick->block = block;
        pick->users = 1;
        pick->stamp = ++c->clock;
    }
    return pick;
}

/* Publish a slot's buffer after loading (ret < 0: give the block up; the
 * buffer stays for reuse) and wake whoever waits for it. */
static void slot_fill(struct cloop_cache *c, struct cloop_slot *sl,
                      uint8_t *buf, int ret)
{
    sl->buf = buf;
    sl->loading = false;
    if (ret < 0) {
        sl->used = false;
        sl->users = 0;
    }
    pthread_cond_broadcast(&c->loaded);
}

/* ---- read-ahead ---------------------------------------------------------- */

static void *cloop_worker(void *arg)
{
    struct cloop_cache *c = arg;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        struct cloop_slot *sl;
        uint8_t *buf;
        int ret;

        while (!c->stop && c->q_len == 0)
            pthread_cond_wait(&c->work, &c->lock);
        if (c->stop)
            break;
        sl = c->queue[c->q_head];
        c->q_head = (c->q_head + 1) % CLOOP_QUEUE;
        c->q_len--;
        pthread_mutex_unlock(&c->lock);
        buf = sl->buf ? sl->buf : malloc(c->ix->block_size);
        ret = buf ? decode_block(c, sl->block, buf) : -ENOMEM;
        pthread_mutex_lock(&c->lock);
        slot_fill(c, sl, buf, ret);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Queue blocks from..to that are not cached yet; lock held. Each gets a
 * loading slot at once, so a reader reaching it waits for the worker. */
static void queue_blocks(struct cloop_cache *c, uint64_t from, uint64_t to)
{
    if (c->stop)
        return;
    if (!c->workers_started) {
        c->workers_started = true;
        for (unsigned i = 0; i < CLOOP_WORKERS; i++) {
            if (pthread_create(&c->workers[i], NULL, cloop_worker, c))
                break;
            c->n_workers++;
        }
    }
    if (c->n_workers == 0)
        return;
    for (uint64_t b = from; b <= to && b < c->ix->n_blocks; b++) {
        struct cloop_slot *sl;

        if (slot_find(c, (uint32_t)b))
            continue;
        if (c->q_len == CLOOP_QUEUE)
            break;
        sl = slot_claim(c, (uint32_t)b);
        if (!sl)
            break;
        sl->users = 0;
        c->queue[(c->q_head + c->q_len) % CLOOP_QUEUE] = sl;
        c->q_len++;
        pthread_cond_signal(&c->work);
    }
}

/* Lock held, block just asked for: keep the next ones expanding while
 * reads go forward (FUSE threads may take neighbours a little out of
 * order). */
static void read_ahead(struct cloop_cache *c, uint32_t block)
{
    bool sequential = (uint64_t)block + 2 >= c->last &&
                      block <= (uint64_t)c->last + 2;

    c->last = block;
    if (sequential)
        queue_blocks(c, (uint64_t)block + 1, (uint64_t)block + CLOOP_AHEAD);
}

/* ---- the interface ------------------------------------------------------- */

int cloop_cache_init(struct cloop_cache *c, struct bd_node *file,
                     const struct cloop_index *ix, uint64_t max_bytes,
                     const char *name)
{
    uint64_t n = max_bytes / ix->block_size;

    memset(c, 0, sizeof(*c));
    c->file = file;
    c->ix = ix;
    c->name = name;
    c->n_slots = n < CLOOP_MIN_SLOTS ? CLOOP_MIN_SLOTS
               : n > CLOOP_MAX_SLOTS ? CLOOP_MAX_SLOTS : (unsigned)n;
    c->slots = calloc(c->n_slots, sizeof(*c->slots));
    if (!c->slots)
        return -ENOMEM;
    c->last = UINT32_MAX / 2;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->loaded, NULL);
    pthread_cond_init(&c->work, NULL);
    c->ready = true;
    return 0;
}

void cloop_cache_destroy(struct cloop_cache *c)
{
    if (!c->ready)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->lock);
    for (unsigned i = 0; i < c->n_workers; i++)
        pthread_join(c->workers[i], NULL);
    for (unsigned i = 0; i < c->n_slots; i++)
        free(c->slots[i].buf);
    free(c->slots);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->loaded);
    pthread_mutex_destroy(&c->lock);
    c->ready = false;
}

int cloop_cache_get(struct cloop_cache *c, uint32_t block,
                    struct cloop_ref *ref)
{
    struct cloop_slot *sl;
    uint8_t *buf;
    int ret;

    pthread_mutex_lock(&c->lock);
    while ((sl = slot_find(c, block)) && sl->loading)
        pthread_cond_wait(&c->loaded, &c->lock);
    if (sl) {
        sl->users++;
        sl->stamp = ++c->clock;
        read_ahead(c, block);
        pthread_mutex_unlock(&c->lock);
        *ref = (struct cloop_ref){ .slot = sl, .buf = sl->buf };
        return 0;
    }
    sl = slot_claim(c, block);
    read_ahead(c, block);
    pthread_mutex_unlock(&c->lock);

    /* the slot is ours while it is loading: fill it without the lock */
    buf = sl ? sl->buf : NULL;
    if (!buf)
        buf = malloc(c->ix->block_size);
    ret = buf ? decode_block(c, block, buf) : -ENOMEM;
    if (!sl) {
        /* every slot busy: the reader keeps a private copy */
        if (ret < 0) {
            free(buf);
            return ret;
        }
        *ref = (struct cloop_ref){ .slot = NULL, .buf = buf };
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    slot_fill(c, sl, buf, ret);
    pthread_mutex_unlock(&c->lock);
    if (ret < 0)
        return ret;
    *ref = (struct cloop_ref){ .slot = sl, .buf = buf };
    return 0;
}

void cloop_cache_put(struct cloop_cache *c, struct cloop_ref *ref)
{
    if (!ref->slot) {
        free(ref->buf);
        return;
    }
    pthread_mutex_lock(&c->lock);
    ref->slot->users--;
    pthread_mutex_unlock(&c->lock);
}

void cloop_cache_prefetch(struct cloop_cache *c, uint32_t from, uint32_t to)
{
    pthread_mutex_lock(&c->lock);
    queue_blocks(c, from, to);
    pthread_mutex_unlock(&c->lock);
}
