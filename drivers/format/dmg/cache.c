/*
 * Decoded-chunk cache of the dmg driver, with sequential read-ahead: reads
 * arrive in 4 KiB-1 MiB pieces while a compressed chunk is typically 1 MiB,
 * so each chunk is expanded once and kept (bounded by bytes and slots, LRU).
 * When reads walk the disk in order, two background threads expand the next
 * chunks while the reader copies out of the current one, so a sequential
 * read uses both cores. Decoding always happens outside the lock.
 */
#include "dmg.h"

#include <stdlib.h>
#include <string.h>

static void dmg_log_bad_chunk(struct dmg_cache *c, const struct dmg_chunk *ch,
                              int ret)
{
    if (__atomic_fetch_add(&c->bad_chunks, 1, __ATOMIC_RELAXED) == 0)
        log_err("%s: %s chunk at disk offset %llu (file offset %llu) %s",
                c->name, dmg_type_name(ch->type), (unsigned long long)ch->off,
                (unsigned long long)ch->src_off,
                ret == -EIO ? "is corrupt or does not expand to its size"
                            : strerror(-ret));
}

/* Read and expand one chunk into a new buffer; no lock held. */
static int dmg_decode_chunk(struct dmg_cache *c, size_t idx, uint8_t **out)
{
    const struct dmg_chunk *ch = &c->map->chunks[idx];
    uint8_t *src, *dst;
    int ret;

    src = malloc(ch->src_len ? ch->src_len : 1);
    dst = malloc(ch->len);
    if (!src || !dst) {
        ret = -ENOMEM;
        goto out_free;
    }
    ret = bd_pread(c->file, src, ch->src_len, ch->src_off);
    if (ret < 0)
        goto out_free;
    ret = dmg_decode(ch->type, src, ch->src_len, dst, ch->len);
    if (ret < 0) {
        dmg_log_bad_chunk(c, ch, ret);
        goto out_free;
    }
    free(src);
    *out = dst;
    return 0;
out_free:
    free(src);
    free(dst);
    return ret;
}

/* ---- slots (all under c->lock) ------------------------------------------ */

static struct dmg_slot *slot_find(struct dmg_cache *c, size_t idx)
{
    for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++) {
        if (c->slots[i].chunk == idx)
            return &c->slots[i];
    }
    return NULL;
}

/* A free slot with room for len bytes, evicting idle chunks (least recently
 * used first); NULL when everything is in use or len exceeds the budget. */
static struct dmg_slot *slot_claim(struct dmg_cache *c, size_t idx, size_t len)
{
    if (len > c->max_bytes)
        return NULL;
    for (;;) {
        struct dmg_slot *lru = NULL, *empty = NULL;

        for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++) {
            struct dmg_slot *sl = &c->slots[i];

            if (sl->chunk == SIZE_MAX)
                empty = sl;
            else if (!sl->users && !sl->loading &&
                     (!lru || sl->stamp < lru->stamp))
                lru = sl;
        }
        if (empty && c->bytes + len <= c->max_bytes) {
            empty->chunk = idx;
            empty->len = len;
            empty->buf = NULL;
            empty->loading = true;
            empty->users = 0;
            empty->stamp = ++c->clock;
            c->bytes += len;
            return empty;
        }
        if (!lru)
            return NULL;
        free(lru->buf);
        c->bytes -= lru->len;
        lru->buf = NULL;
        lru->len = 0;
        lru->chunk = SIZE_MAX;
    }
}

/* Publish a decoded buffer (or give the slot up on failure) and wake
 * whoever waits for it. */
static void slot_fill(struct dmg_cache *c, struct dmg_slot *sl, uint8_t *buf)
{
    sl->loading = false;
    if (buf) {
        sl->buf = buf;
    } else {
        c->bytes -= sl->len;
        sl->len = 0;
        sl->chunk = SIZE_MAX;
    }
    pthread_cond_broadcast(&c->loaded);
}

/* ---- read-ahead ---------------------------------------------------------- */

static void *dmg_prefetch_thread(void *arg)
{
    struct dmg_cache *c = arg;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        struct dmg_slot *sl;
        size_t idx;
        uint8_t *buf = NULL;

        while (!c->stop && c->q_len == 0)
            pthread_cond_wait(&c->work, &c->lock);
        if (c->stop)
            break;
        sl = c->queue[c->q_head];
        c->q_head = (c->q_head + 1) % DMG_PREFETCH_QUEUE;
        c->q_len--;
        idx = sl->chunk;
        pthread_mutex_unlock(&c->lock);
        if (dmg_decode_chunk(c, idx, &buf) < 0)
            buf = NULL;
        pthread_mutex_lock(&c->lock);
        slot_fill(c, sl, buf);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static bool is_compressed(uint32_t type)
{
    return type != DMG_CHUNK_RAW && type != DMG_CHUNK_ZERO &&
           type != DMG_CHUNK_IGNORE;
}

static void start_threads(struct dmg_cache *c)
{
    c->threads_started = true;
    for (unsigned i = 0; i < DMG_PREFETCH_THREADS; i++) {
        if (pthread_create(&c->threads[i], NULL, dmg_prefetch_thread, c))
            break;
        c->n_threads++;
    }
}

/* Queue chunks [from, to] that are compressed and not cached yet; lock
 * held. Each gets a loading slot at once, so a reader that reaches it
 * waits for the thread instead of decoding it a second time. */
static void queue_chunks(struct dmg_cache *c, size_t from, size_t to)
{
    if (c->stop)
        return;
    if (!c->threads_started)
        start_threads(c);
    if (c->n_threads == 0)
        return;
    for (size_t j = from; j <= to && j < c->map->n_chunks; j++) {
        struct dmg_slot *sl;

        if (!is_compressed(c->map->chunks[j].type) || slot_find(c, j))
            continue;
        if (c->q_len == DMG_PREFETCH_QUEUE)
            break;
        sl = slot_claim(c, j, c->map->chunks[j].len);
        if (!sl)
            break;
        c->queue[(c->q_head + c->q_len) % DMG_PREFETCH_QUEUE] = sl;
        c->q_len++;
        pthread_cond_signal(&c->work);
    }
}

/* Called with the lock held after chunk idx was used: when reads walk the
 * disk in order, keep the next chunks decoding. */
static void dmg_prefetch(struct dmg_cache *c, size_t idx)
{
    /* FUSE workers may take neighbouring pieces slightly out of order */
    bool sequential = idx + 2 >= c->last && idx <= c->last + 2;

    c->last = idx;
    if (sequential)
        queue_chunks(c, idx + 1, idx + DMG_PREFETCH_AHEAD);
}

/* ---- the interface ------------------------------------------------------- */

void dmg_cache_init(struct dmg_cache *c, struct bd_node *file,
                    const struct dmg_map *m, uint64_t max_bytes,
                    const char *name)
{
    memset(c, 0, sizeof(*c));
    c->file = file;
    c->map = m;
    c->max_bytes = max_bytes;
    c->name = name;
    c->last = SIZE_MAX / 2;
    for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++)
        c->slots[i].chunk = SIZE_MAX;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->loaded, NULL);
    pthread_cond_init(&c->work, NULL);
    c->ready = true;
}

void dmg_cache_destroy(struct dmg_cache *c)
{
    if (!c->ready)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->lock);
    for (unsigned i = 0; i < c->n_threads; i++)
        pthread_join(c->threads[i], NULL);
    for (unsigned i = 0; i < DMG_CACHE_SLOTS; i++)
        free(c->slots[i].buf);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->loaded);
    pthread_mutex_destroy(&c->lock);
    c->ready = false;
}

int dmg_cache_get(struct dmg_cache *c, size_t idx, struct dmg_ref *ref)
{
    struct dmg_slot *sl;
    uint8_t *buf = NULL;
    int ret;

    pthread_mutex_lock(&c->lock);
    /* wait for a read-ahead of this chunk rather than decode it twice */
    while ((sl = slot_find(c, idx)) && sl->loading)
        pthread_cond_wait(&c->loaded, &c->lock);
    if (sl) {
        sl->users++;
        sl->stamp = ++c->clock;
        dmg_prefetch(c, idx);
        pthread_mutex_unlock(&c->lock);
        *ref = (struct dmg_ref){ .slot = sl, .buf = sl->buf };
        return 0;
    }
    sl = slot_claim(c, idx, c->map->chunks[idx].len);
    if (sl)
        sl->users = 1;
    dmg_prefetch(c, idx);
    pthread_mutex_unlock(&c->lock);

    ret = dmg_decode_chunk(c, idx, &buf);

    if (sl) {
        pthread_mutex_lock(&c->lock);
        if (ret < 0)
            sl->users = 0;
        slot_fill(c, sl, ret < 0 ? NULL : buf);
        pthread_mutex_unlock(&c->lock);
    }
    if (ret < 0)
        return ret;
    /* no slot free (every one busy, or a chunk larger than the cache):
     * the reader keeps a private copy */
    *ref = (struct dmg_ref){ .slot = sl, .buf = buf };
    return 0;
}

void dmg_cache_prefetch(struct dmg_cache *c, size_t from, size_t to)
{
    pthread_mutex_lock(&c->lock);
    queue_chunks(c, from, to);
    pthread_mutex_unlock(&c->lock);
}

void dmg_cache_put(struct dmg_cache *c, struct dmg_ref *ref)
{
    if (!ref->slot) {
        free(ref->buf);
        return;
    }
    pthread_mutex_lock(&c->lock);
    ref->slot->users--;
    pthread_mutex_unlock(&c->lock);
}
