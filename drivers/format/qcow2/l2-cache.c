/*
 * Bounded write-back cache of cluster-sized metadata tables (L2 tables and
 * refcount blocks), keyed by host offset, LRU eviction. One instance per
 * table kind per node; every call is made with the node's meta_lock held.
 * Write ordering between kinds is the before_write hook's business.
 */
#include "qcow2.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_MIN_SLOTS 4u

static uint32_t hash_off(const struct qcow2_cache *c, uint64_t off)
{
    uint64_t k = (off >> c->s->cluster_bits) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(k >> 32) & (c->nb_buckets - 1);
}

int qcow2_cache_init(struct qcow2_cache *c, struct qcow2_state *s,
                     const char *what, uint64_t bytes)
{
    uint64_t n = bytes / s->cluster_size;

    memset(c, 0, sizeof(*c));
    c->what = what;
    c->s = s;
    if (n < CACHE_MIN_SLOTS)
        n = CACHE_MIN_SLOTS;
    if (n > 1u << 20)
        n = 1u << 20;
    c->nb_slots = (uint32_t)n;
    c->nb_buckets = 1;
    while (c->nb_buckets < c->nb_slots * 2)
        c->nb_buckets <<= 1;
    c->slots = calloc(c->nb_slots, sizeof(*c->slots));
    c->buckets = malloc(c->nb_buckets * sizeof(*c->buckets));
    if (!c->slots || !c->buckets) {
        qcow2_cache_free(c);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < c->nb_buckets; i++)
        c->buckets[i] = -1;
    return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
    if (c->slots) {
        for (uint32_t i = 0; i < c->nb_slots; i++)
            free(c->slots[i].buf);
    }
    free(c->slots);
    free(c->buckets);
    c->slots = NULL;
    c->buckets = NULL;
}

static int32_t find_slot(const struct qcow2_cache *c, uint64_t off)
{
    for (int32_t i = c->buckets[hash_off(c, off)]; i >= 0; i = c->slots[i].next)
        if (c->slots[i].off == off)
            return i;
    return -1;
}

static void unlink_slot(struct qcow2_cache *c, int32_t idx)
{
    int32_t *pp = &c->buckets[hash_off(c, c->slots[idx].off)];

    while (*pp >= 0) {
        if (*pp == idx) {
            *pp = c->slots[idx].next;
            break;
        }
        pp = &c->slots[*pp].next;
    }
    c->slots[idx].off = 0;
    c->slots[idx].next = -1;
}

static int write_slot(struct qcow2_cache *c, struct qcow2_cache_slot *sl)
{
    int ret;

    if (c->before_write) {
        ret = c->before_write(c->s);
        if (ret < 0)
            return ret;
    }
    ret = bd_pwrite(c->s->node->file, sl->buf, c->s->cluster_size, sl->off, 0);
    if (ret < 0)
        return ret;
    if (sl->off + c->s->cluster_size > c->s->file_size)
        c->s->file_size = sl->off + c->s->cluster_size;
    sl->dirty = false;
    c->nb_dirty--;
    return 0;
}

static int pick_victim(struct qcow2_cache *c, int32_t *out)
{
    int32_t best = -1;
    int ret;

    if (c->used < c->nb_slots) {
        *out = (int32_t)c->used++;
        return 0;
    }
    for (uint32_t i = 0; i < c->nb_slots; i++) {
        if (best < 0 || c->slots[i].lru < c->slots[best].lru)
            best = (int32_t)i;
    }
    if (c->slots[best].dirty) {
        ret = write_slot(c, &c->slots[best]);
        if (ret < 0)
            return ret;
    }
    if (c->slots[best].off)
        unlink_slot(c, best);
    *out = best;
    return 0;
}

int qcow2_cache_get(struct qcow2_cache *c, uint64_t off, bool fresh,
                    uint8_t **table)
{
    struct qcow2_state *s = c->s;
    int32_t idx = find_slot(c, off);
    int ret;

    if (idx >= 0) {
        c->slots[idx].lru = ++c->tick;
        if (fresh)
            memset(c->slots[idx].buf, 0, s->cluster_size);
        *table = c->slots[idx].buf;
        return 0;
    }
    ret = pick_victim(c, &idx);
    if (ret < 0)
        return ret;
    struct qcow2_cache_slot *sl = &c->slots[idx];
    if (!sl->buf) {
        if (posix_memalign((void **)&sl->buf, 4096, s->cluster_size))
            return -ENOMEM;
    }
    sl->off = 0;
    sl->dirty = false;
    sl->next = -1;
    if (fresh) {
        memset(sl->buf, 0, s->cluster_size);
    } else {
        if (off + s->cluster_size > s->file_size) {
            /* a table past the end of the file: corrupt image */
            return -EIO;
        }
        ret = bd_pread(s->node->file, sl->buf, s->cluster_size, off);
        if (ret < 0)
            return ret;
    }
    sl->off = off;
    sl->lru = ++c->tick;
    uint32_t b = hash_off(c, off);
    sl->next = c->buckets[b];
    c->buckets[b] = idx;
    *table = sl->buf;
    return 0;
}

void qcow2_cache_mark_dirty(struct qcow2_cache *c, uint64_t off)
{
    int32_t idx = find_slot(c, off);

    if (idx >= 0 && !c->slots[idx].dirty) {
        c->slots[idx].dirty = true;
        c->nb_dirty++;
    }
}

int qcow2_cache_writeback(struct qcow2_cache *c)
{
    int ret;

    if (!c->nb_dirty)
        return 0;
    for (uint32_t i = 0; i < c->used && c->nb_dirty; i++) {
        if (c->slots[i].dirty) {
            ret = write_slot(c, &c->slots[i]);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

void qcow2_cache_discard(struct qcow2_cache *c, uint64_t off)
{
    int32_t idx = find_slot(c, off);

    if (idx < 0)
        return;
    if (c->slots[idx].dirty) {
        c->slots[idx].dirty = false;
        c->nb_dirty--;
    }
    unlink_slot(c, idx);
    c->slots[idx].lru = 0;
}
