/*
 * Decompression ahead of a sequential reader. When reads over compressed
 * clusters follow each other, a helper thread maps and inflates the next
 * clusters into a small cache, so that inflating runs on one core while
 * the reader's FUSE worker copies and the kernel moves pages on the other.
 *
 * The cache is keyed by where the compressed data lives (host offset and
 * size), so a guest cluster that is rewritten maps elsewhere and misses.
 * Host bytes can be reused by a later compressed write, so every change of
 * the image (qcow2_ra_changed, before and after it) empties the cache and
 * bumps a generation; a cluster inflated while the generation moved is
 * dropped, never kept.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

#define RA_WINDOW (4u << 20)    /* bytes inflated ahead of the reader */
#define RA_NEAR (2u << 20)      /* a read this close to the last is a stream */

enum slot_state { SLOT_EMPTY, SLOT_BUSY, SLOT_READY };

struct ra_slot {
    enum slot_state st;
    bool keyed;                 /* BUSY: host/csize known, readers may wait */
    uint64_t host, csize;       /* key: the compressed data */
    uint64_t goff;              /* guest offset of the cluster */
    uint8_t *data;              /* one cluster */
};

struct qcow2_ra {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* slot done, work to do, or stop */
    struct ra_slot *slots;
    unsigned nslots;
    uint64_t gen;
    uint64_t last_end;          /* furthest end of a read seen */
    uint64_t next;              /* next guest offset to inflate */
    uint64_t target;            /* inflate up to here */
    unsigned streak;            /* reads in a row near the last */
    bool running, stop, failed;
    pthread_t thread;
};

int qcow2_ra_init(struct qcow2_state *s)
{
    struct qcow2_ra *ra = calloc(1, sizeof(*ra));

    if (!ra)
        return -ENOMEM;
    if (pthread_mutex_init(&ra->lock, NULL)) {
        free(ra);
        return -ENOMEM;
    }
    if (pthread_cond_init(&ra->cond, NULL)) {
        pthread_mutex_destroy(&ra->lock);
        free(ra);
        return -ENOMEM;
    }
    s->ra = ra;
    return 0;
}

void qcow2_ra_free(struct qcow2_state *s)
{
    struct qcow2_ra *ra = s->ra;

    if (!ra)
        return;
    if (ra->running) {
        pthread_mutex_lock(&ra->lock);
        ra->stop = true;
        pthread_cond_broadcast(&ra->cond);
        pthread_mutex_unlock(&ra->lock);
        pthread_join(ra->thread, NULL);
    }
    for (unsigned i = 0; i < ra->nslots; i++)
        free(ra->slots[i].data);
    free(ra->slots);
    pthread_cond_destroy(&ra->cond);
    pthread_mutex_destroy(&ra->lock);
    free(ra);
    s->ra = NULL;
}

/* A slot the helper may fill: empty, or ready but behind the reader. */
static struct ra_slot *free_slot(struct qcow2_ra *ra, uint64_t behind)
{
    struct ra_slot *best = NULL;

    for (unsigned i = 0; i < ra->nslots; i++) {
        struct ra_slot *sl = &ra->slots[i];
        if (sl->st == SLOT_EMPTY)
            return sl;
        if (sl->st == SLOT_READY && sl->goff + RA_NEAR < behind &&
            (!best || sl->goff < best->goff))
            best = sl;
    }
    return best;
}

/* Inflate the cluster at guest offset o into sl (BUSY, ra->lock held on
 * entry and exit, dropped meanwhile). */
static void fill_slot(struct qcow2_state *s, struct ra_slot *sl, uint64_t o)
{
    struct qcow2_ra *ra = s->ra;
    uint64_t gen = ra->gen;
    struct qcow2_extent e;
    int ret;

    pthread_mutex_unlock(&ra->lock);
    pthread_rwlock_rdlock(&s->io_lock);
    ret = qcow2_map(s, o, s->size - o < s->cluster_size ? s->size - o
                                                        : s->cluster_size, &e);
    if (ret == 0 && e.type == QCOW2_COMPRESSED && e.coff == o) {
        /* readers wait for a keyed slot; this thread holds io_lock, so
         * it finishes without waiting for anybody */
        pthread_mutex_lock(&ra->lock);
        sl->host = e.host;
        sl->csize = e.csize;
        sl->keyed = gen == ra->gen;
        pthread_mutex_unlock(&ra->lock);
        ret = sl->keyed ? qcow2_read_compressed(s, &e, sl->data) : -EAGAIN;
    } else {
        ret = -ENOENT;          /* nothing to inflate here */
    }
    pthread_rwlock_unlock(&s->io_lock);
    pthread_mutex_lock(&ra->lock);
    sl->st = ret == 0 && gen == ra->gen ? SLOT_READY : SLOT_EMPTY;
    sl->keyed = false;
    pthread_cond_broadcast(&ra->cond);
}

static void *ra_thread(void *arg)
{
    struct qcow2_state *s = arg;
    struct qcow2_ra *ra = s->ra;

    pthread_mutex_lock(&ra->lock);
    while (!ra->stop) {
        struct ra_slot *sl = NULL;
        if (ra->next < ra->last_end)
            ra->next = bd_align_up(ra->last_end, s->cluster_size);
        if (ra->next < ra->target && ra->next < s->size)
            sl = free_slot(ra, ra->last_end);
        if (!sl) {
            pthread_cond_wait(&ra->cond, &ra->lock);
            continue;
        }
        uint64_t o = ra->next;
        ra->next += s->cluster_size;
        sl->st = SLOT_BUSY;
        sl->keyed = false;
        sl->goff = o;
        fill_slot(s, sl, o);
    }
    pthread_mutex_unlock(&ra->lock);
    return NULL;
}

/* Slots and the helper, on the first stream; ra->lock held. */
static bool ra_start(struct qcow2_state *s)
{
    struct qcow2_ra *ra = s->ra;
    unsigned n = (unsigned)(RA_WINDOW / s->cluster_size) + 8;

    if (ra->failed)
        return false;
    if (n > 128)
        n = 128;
    ra->slots = calloc(n, sizeof(*ra->slots));
    for (unsigned i = 0; ra->slots && i < n; i++) {
        ra->slots[i].data = malloc(s->cluster_size);
        if (!ra->slots[i].data)
            break;
        ra->nslots = i + 1;
    }
    if (ra->nslots == n && pthread_create(&ra->thread, NULL, ra_thread, s) == 0) {
        ra->running = true;
        return true;
    }
    ra->failed = true;          /* no read-ahead; reads stay correct */
    return false;
}

void qcow2_ra_note(struct qcow2_state *s, uint64_t off, uint64_t len)
{
    struct qcow2_ra *ra = s->ra;
    uint64_t end = off + len;

    if (!ra)
        return;
    pthread_mutex_lock(&ra->lock);
    bool near = off + RA_NEAR >= ra->last_end && off <= ra->last_end + RA_NEAR;
    ra->streak = near ? ra->streak + 1 : 0;
    if (!near || end > ra->last_end)
        ra->last_end = end;
    if (ra->streak >= 2 && (ra->running || ra_start(s))) {
        if (ra->target < end + RA_WINDOW)
            ra->target = end + RA_WINDOW;
        pthread_cond_broadcast(&ra->cond);
    }
    pthread_mutex_unlock(&ra->lock);
}

bool qcow2_ra_copy(struct qcow2_state *s, const struct qcow2_extent *e,
                   void *dst, uint64_t skip)
{
    struct qcow2_ra *ra = s->ra;
    bool hit = false;

    if (!ra)
        return false;
    pthread_mutex_lock(&ra->lock);
    for (unsigned i = 0; i < ra->nslots; i++) {
        struct ra_slot *sl = &ra->slots[i];
        if (sl->host != e->host || sl->csize != e->csize)
            continue;
        if (sl->st == SLOT_BUSY && sl->keyed) {
            pthread_cond_wait(&ra->cond, &ra->lock);
            i = (unsigned)-1;   /* look again from the start */
            continue;
        }
        if (sl->st != SLOT_READY)
            continue;
        memcpy(dst, sl->data + skip, e->len);
        if (skip + e->len == s->cluster_size)
            sl->st = SLOT_EMPTY;        /* read through: not needed again */
        hit = true;
        break;
    }
    pthread_mutex_unlock(&ra->lock);
    return hit;
}

void qcow2_ra_changed(struct qcow2_state *s)
{
    struct qcow2_ra *ra = s->ra;

    if (!ra)
        return;
    pthread_mutex_lock(&ra->lock);
    ra->gen++;
    for (unsigned i = 0; i < ra->nslots; i++)
        if (ra->slots[i].st == SLOT_READY)
            ra->slots[i].st = SLOT_EMPTY;
    pthread_mutex_unlock(&ra->lock);
}
