/*
 * Write combining for small sequential writes (see wcache.h).
 */
#include "wcache.h"
#include "fusefs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WC_CAP (1u << 20)           /* gathered bytes before a write-out */
#define WC_MAX_REQ (128u << 10)     /* larger writes are large enough */
#define WC_IDLE_NS (3u * 1000 * 1000)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void wc_init(struct fusefs_wc *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    w->seq_end = UINT64_MAX;
}

void wc_fini(struct fusefs_wc *w)
{
    pthread_mutex_destroy(&w->lock);
    free(w->buf);
    w->buf = NULL;
}

/* Caller holds w->lock. A failure is kept for whoever asks next. */
static int write_out(struct fusefs_file *ff)
{
    struct fusefs_wc *w = &ff->wc;
    if (!w->len)
        return 0;
    int r = bd_pwrite(ff->node, w->buf, w->len, w->off, 0);
    if (r < 0) {
        log_err("%s: write of %zu gathered bytes at %llu failed: %s",
                ff->node->name, w->len, (unsigned long long)w->off,
                strerror(-r));
        if (!w->err)
            w->err = r;
    }
    __atomic_store_n(&w->len, 0, __ATOMIC_RELAXED);
    return r;
}

static bool overlaps(const struct fusefs_wc *w, uint64_t off, uint64_t len)
{
    return w->len && off < w->off + w->len && w->off < off + len;
}

static void wake_writer(struct fusefs *fs)
{
    pthread_mutex_lock(&fs->wc_lock);
    fs->wc_pending = true;
    pthread_cond_signal(&fs->wc_cond);
    pthread_mutex_unlock(&fs->wc_lock);
}

int wc_write(struct fusefs *fs, struct fusefs_file *ff, const void *buf,
             size_t size, uint64_t off)
{
    struct fusefs_wc *w = &ff->wc;
    bool first = false;
    int r = 0;

    pthread_mutex_lock(&w->lock);
    if (w->err) {
        r = w->err;
        w->err = 0;
        goto out;
    }
    bool stream = off == w->seq_end && size <= WC_MAX_REQ;
    w->seq_end = off + size;
    if (w->len && off == w->off + w->len && w->len + size <= WC_CAP) {
        memcpy(w->buf + w->len, buf, size);
        __atomic_store_n(&w->len, w->len + size, __ATOMIC_RELAXED);
        w->last_ns = now_ns();
        r = 1;
        goto out;
    }
    /* What is gathered ends here: write it out before anything that
     * continues or overlaps it, so the newer bytes land last. */
    if (w->len && (r = write_out(ff)) < 0) {
        w->err = 0;
        goto out;
    }
    if (!stream)
        goto out;
    if (!w->buf && posix_memalign((void **)&w->buf, 4096, WC_CAP) != 0) {
        w->buf = NULL;
        goto out;
    }
    memcpy(w->buf, buf, size);
    w->off = off;
    __atomic_store_n(&w->len, size, __ATOMIC_RELAXED);
    w->last_ns = now_ns();
    first = true;
    r = 1;
out:
    pthread_mutex_unlock(&w->lock);
    if (first)
        wake_writer(fs);
    return r;
}

int wc_flush(struct fusefs_file *ff)
{
    struct fusefs_wc *w = &ff->wc;
    pthread_mutex_lock(&w->lock);
    write_out(ff);
    int r = w->err;
    w->err = 0;
    w->seq_end = UINT64_MAX;
    pthread_mutex_unlock(&w->lock);
    return r;
}

void wc_flush_range(struct fusefs_file *ff, uint64_t off, uint64_t len)
{
    struct fusefs_wc *w = &ff->wc;
    /* a peek without the lock is enough: a write gathered after it is not
     * one the caller could have seen completed */
    if (!__atomic_load_n(&w->len, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&w->lock);
    if (overlaps(w, off, len))
        write_out(ff);
    pthread_mutex_unlock(&w->lock);
}

/* Write out buffers idle for WC_IDLE_NS; sleeps while none holds data. */
static void *writer_main(void *arg)
{
    struct fusefs *fs = arg;
    pthread_mutex_lock(&fs->wc_lock);
    while (!fs->wc_stopping) {
        if (!fs->wc_pending) {
            pthread_cond_wait(&fs->wc_cond, &fs->wc_lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WC_IDLE_NS;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&fs->wc_cond, &fs->wc_lock, &ts);
        fs->wc_pending = false;
        pthread_mutex_unlock(&fs->wc_lock);
        uint64_t now = now_ns();
        bool left = false;
        for (size_t i = 0; i < fs->nfiles; i++) {
            struct fusefs_wc *w = &fs->files[i].wc;
            pthread_mutex_lock(&w->lock);
            if (w->len && now - w->last_ns >= WC_IDLE_NS)
                write_out(&fs->files[i]);
            left |= w->len != 0;
            pthread_mutex_unlock(&w->lock);
        }
        pthread_mutex_lock(&fs->wc_lock);
        fs->wc_pending |= left;
    }
    pthread_mutex_unlock(&fs->wc_lock);
    return NULL;
}

int wc_start(struct fusefs *fs)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&fs->wc_lock, NULL);
    pthread_cond_init(&fs->wc_cond, &ca);
    pthread_condattr_destroy(&ca);
    fs->wc_stopping = fs->wc_pending = false;
    if (pthread_create(&fs->wc_thread, NULL, writer_main, fs) != 0) {
        pthread_cond_destroy(&fs->wc_cond);
        pthread_mutex_destroy(&fs->wc_lock);
        return -EAGAIN;
    }
    fs->wc_running = true;
    return 0;
}

void wc_stop(struct fusefs *fs)
{
    if (fs->wc_running) {
        pthread_mutex_lock(&fs->wc_lock);
        fs->wc_stopping = true;
        pthread_cond_signal(&fs->wc_cond);
        pthread_mutex_unlock(&fs->wc_lock);
        pthread_join(fs->wc_thread, NULL);
        pthread_cond_destroy(&fs->wc_cond);
        pthread_mutex_destroy(&fs->wc_lock);
        fs->wc_running = false;
    }
    for (size_t i = 0; i < fs->nfiles; i++) {
        int r = wc_flush(&fs->files[i]);
        if (r < 0)
            log_err("%s: gathered writes were lost: %s", fs->files[i].node->name,
                    strerror(-r));
    }
}
