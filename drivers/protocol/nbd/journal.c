/*
 * The replay journal: a copy of every write the server acknowledged since
 * the last successful flush, so that a server that restarts (and loses its
 * cache) gets those writes again, in order, before anything else touches
 * the export. Bounded: past the limit the driver flushes, which empties it.
 * Connections and requests are conn.c's; what to journal is nbd.c's.
 */
#include "nbd.h"

#include <libnbd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_OVERHEAD 64u          /* bytes counted for a zero or trim */

int nbdj_init(struct nbd_journal *j, uint64_t limit)
{
    pthread_rwlockattr_t a;

    pthread_rwlockattr_init(&a);
    /* Replay must not starve behind a stream of writers. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&j->order, &a);
    pthread_rwlockattr_destroy(&a);
    pthread_mutex_init(&j->lock, NULL);
    j->limit = limit;
    j->init = true;
    return 0;
}

static void drop_upto(struct nbd_journal *j, uint64_t upto)
{
    while (j->head < j->n && j->e[j->head].seq <= upto) {
        struct nbd_jentry *e = &j->e[j->head++];
        j->bytes -= e->data ? e->len : ENTRY_OVERHEAD;
        free(e->data);
    }
    if (j->head == j->n) {
        j->head = j->n = 0;
    } else if (j->head > j->n / 2) {
        memmove(j->e, j->e + j->head, (j->n - j->head) * sizeof(*j->e));
        j->n -= j->head;
        j->head = 0;
    }
}

void nbdj_fini(struct nbd_journal *j)
{
    if (!j->init)
        return;
    drop_upto(j, UINT64_MAX);
    free(j->e);
    pthread_mutex_destroy(&j->lock);
    pthread_rwlock_destroy(&j->order);
    j->init = false;
}

bool nbdj_enabled(const struct nbd_journal *j)
{
    return j->init && j->limit > 0;
}

void nbdj_enter(struct nbd_journal *j)
{
    pthread_rwlock_rdlock(&j->order);
}

void nbdj_leave(struct nbd_journal *j)
{
    pthread_rwlock_unlock(&j->order);
}

int nbdj_add(struct nbd_journal *j, const struct nbd_req *r)
{
    struct nbd_jentry e = {.off = r->off, .len = r->len, .op = r->op,
                           .flags = r->flags & ~LIBNBD_CMD_FLAG_FAST_ZERO};
    if (r->op == NBD_OP_WRITE) {
        e.data = malloc(r->len);
        if (!e.data)
            return -ENOMEM;
        memcpy(e.data, r->buf, r->len);
    }
    pthread_mutex_lock(&j->lock);
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64;
        struct nbd_jentry *ne = realloc(j->e, cap * sizeof(*ne));
        if (!ne) {
            pthread_mutex_unlock(&j->lock);
            free(e.data);
            return -ENOMEM;
        }
        j->e = ne;
        j->cap = cap;
    }
    e.seq = ++j->seq;
    j->e[j->n++] = e;
    j->bytes += e.data ? e.len : ENTRY_OVERHEAD;
    pthread_mutex_unlock(&j->lock);
    return 0;
}

bool nbdj_full(struct nbd_journal *j)
{
    pthread_mutex_lock(&j->lock);
    bool full = j->bytes > j->limit;
    pthread_mutex_unlock(&j->lock);
    return full;
}

uint64_t nbdj_mark(struct nbd_journal *j)
{
    pthread_mutex_lock(&j->lock);
    uint64_t seq = j->seq;
    pthread_mutex_unlock(&j->lock);
    return seq;
}

void nbdj_flushed(struct nbd_journal *j, uint64_t upto)
{
    pthread_mutex_lock(&j->lock);
    drop_upto(j, upto);
    pthread_mutex_unlock(&j->lock);
}

bool nbdj_dropped(struct nbd_journal *j)
{
    pthread_mutex_lock(&j->lock);
    bool any = j->head < j->n;
    pthread_mutex_unlock(&j->lock);
    if (any)
        atomic_store(&j->need_replay, true);
    return any;
}

int nbdj_replay(struct nbd_state *s)
{
    struct nbd_journal *j = &s->journal;
    size_t done = 0;
    int ret = 0;

    if (!atomic_load(&j->need_replay))
        return 0;
    pthread_rwlock_wrlock(&j->order);
    if (!atomic_load(&j->need_replay))
        goto out;
    /* Nobody adds entries while we hold the order lock for writing, so
     * the list is stable without j->lock. */
    for (size_t i = j->head; i < j->n; i++) {
        struct nbd_jentry *e = &j->e[i];
        struct nbd_req r = {.op = e->op, .buf = e->data, .len = e->len,
                            .off = e->off, .flags = e->flags};
        ret = nbdc_run(s, &r);
        if (ret < 0)
            break;
        done++;
    }
    if (ret == 0) {
        struct nbd_req r = {.op = NBD_OP_FLUSH};
        ret = nbdc_run(s, &r);
    }
    if (ret < 0) {
        log_err("%s: cannot replay the %zu unflushed writes of a lost "
                "connection yet (%s)", s->display, j->n - j->head,
                strerror(-ret));
        ret = -EIO;
        goto out;
    }
    log_info("%s: replayed %zu writes that the server may have lost",
             s->display, done);
    pthread_mutex_lock(&j->lock);
    drop_upto(j, UINT64_MAX);
    pthread_mutex_unlock(&j->lock);
    atomic_store(&j->need_replay, false);
out:
    pthread_rwlock_unlock(&j->order);
    return ret;
}
