/*
 * The preallocate filter: between a format and its file, it extends the
 * file by prealloc-size (rounded to prealloc-align) with fallocate whenever
 * the data outgrows it, hides that tail (its size is the end of the data),
 * and cuts the tail off again at flush and close. It works only while we
 * hold write and resize of the file and share neither; otherwise it passes
 * everything through. Building the graph around it is core's.
 */
#include "preallocate.h"

#include <inttypes.h>
#include <string.h>

struct prealloc_state {
    uint64_t align;             /* prealloc-align */
    uint64_t psize;             /* prealloc-size */
    bool active;                /* we alone may write and resize the file */
    bool lock_init;
    bool no_falloc;             /* the file cannot preallocate: stop trying */
    pthread_mutex_t lock;       /* the three ends below */
    uint64_t data_end;          /* end of the data: the size we show */
    uint64_t zero_start;        /* from here to file_end the file is zeroes */
    uint64_t file_end;          /* the file's real length */
    unsigned long errors;       /* failures to cut the tail, for log-once */
};

static const char *const prealloc_options[] = {
    "prealloc-align", "prealloc-size", NULL,
};

/* ---- state ---- */

/* Why the filter cannot work here, or NULL when it can: it must be the
 * only writer and resizer of a protocol node, as in QEMU, or someone else
 * could write past the end we believe in. */
static const char *inactive_reason(struct bd_node *n)
{
    const unsigned need = BD_PERM_WRITE | BD_PERM_RESIZE;
    struct bd_node *f = n->file;

    if (n->flags.read_only)
        return "the image is open read-only";
    if (f->drv->kind != BD_PROTOCOL)
        return "its file is not a protocol node (put it between a format "
               "and its file)";
    if ((f->perm & need) != need || (f->shared & need))
        return "another writer may write or resize the file (--share-rw)";
    return NULL;
}

/* Cut the file back to the end of the data. s->lock held. */
static int drop_tail(struct bd_node *n, struct prealloc_state *s)
{
    struct bd_err e = { 0 };
    int r;

    if (s->file_end <= s->data_end)
        return 0;
    r = bd_truncate(n->file, s->data_end, BD_PREALLOC_OFF, &e);
    if (r < 0) {
        if (!s->errors++)
            log_err("%s: cannot cut the preallocated tail: %s", n->name, e.msg);
        return r;
    }
    s->file_end = s->data_end;
    if (s->zero_start > s->data_end)
        s->zero_start = s->data_end;
    return 0;
}

/* The data grows to size (> data_end): inside the preallocated tail only
 * the data end moves; past it, fallocate a new tail. s->lock held. */
static int grow(struct bd_node *n, struct prealloc_state *s, uint64_t size,
                enum bd_prealloc prealloc, struct bd_err *err)
{
    uint64_t target = prealloc_target(size, s->psize, s->align);
    int r;

    if (size <= s->file_end) {
        s->data_end = size;
        return 0;
    }
    if (!s->no_falloc && target > size) {
        struct bd_err e = { 0 };
        r = bd_truncate(n->file, target, BD_PREALLOC_FALLOC, &e);
        if (r == 0) {
            s->file_end = target;
            s->data_end = size;
            return 0;
        }
        /* QEMU goes on without preallocation too; say so once */
        s->no_falloc = true;
        log_warn("%s: cannot preallocate %" PRIu64 " bytes (%s); the file now "
                 "grows without preallocation", n->name, target - size, e.msg);
    }
    r = bd_truncate(n->file, size, prealloc, err);
    if (r == 0)
        s->data_end = s->file_end = size;
    return r;
}

/* ---- callbacks ---- */

static int prealloc_open(struct bd_node *n, const struct bd_opts *o,
                         struct bd_err *err)
{
    struct prealloc_state *s = n->state;
    const char *why;
    int r;

    r = bd_opts_get_size(o, "prealloc-align", PREALLOC_ALIGN_DEFAULT,
                         &s->align, err);
    if (r == -EINVAL)
        return r;
    r = bd_opts_get_size(o, "prealloc-size", PREALLOC_SIZE_DEFAULT,
                         &s->psize, err);
    if (r == -EINVAL)
        return r;
    if (!prealloc_align_ok(s->align, n->file->lim.request_alignment))
        return bd_err_set(err, EINVAL, "%s: prealloc-align=%" PRIu64 " must be "
                          "a non-zero multiple of %u and of the file's request "
                          "alignment (%u)", n->name, s->align, BD_SECTOR,
                          n->file->lim.request_alignment);
    int64_t size = bd_size(n->file);
    if (size < 0)
        return bd_err_set(err, (int)-size, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-size));
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return bd_err_set(err, ENOMEM, "out of memory");
    s->lock_init = true;
    s->data_end = s->zero_start = s->file_end = (uint64_t)size;
    why = inactive_reason(n);
    s->active = why == NULL;
    if (why)
        log_warn("%s: preallocate filter inactive: %s; writes pass through",
                 n->name, why);
    return 0;
}

static void prealloc_close(struct bd_node *n)
{
    struct prealloc_state *s = n->state;

    if (!s->lock_init)
        return;
    if (s->active && n->file) {
        pthread_mutex_lock(&s->lock);
        (void)drop_tail(n, s);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_destroy(&s->lock);
}

static int64_t prealloc_size(struct bd_node *n)
{
    struct prealloc_state *s = n->state;
    int64_t size;

    if (!s->active)
        return bd_size(n->file);
    pthread_mutex_lock(&s->lock);
    size = (int64_t)s->data_end;
    pthread_mutex_unlock(&s->lock);
    return size;
}

/* Core has clamped the read to the data end: the tail never shows. */
static int prealloc_pread(struct bd_node *n, void *buf, uint64_t len,
                          uint64_t off)
{
    return bd_pread(n->file, buf, len, off);
}

static int prealloc_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                           uint64_t off, unsigned flags)
{
    struct prealloc_state *s = n->state;

    if (s->active) {
        /* before the data lands: zeroes there are no longer free */
        pthread_mutex_lock(&s->lock);
        if (off + len > s->zero_start)
            s->zero_start = off + len;
        pthread_mutex_unlock(&s->lock);
    }
    return bd_pwrite(n->file, buf, len, off, flags);
}

static int prealloc_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                                  unsigned flags)
{
    struct prealloc_state *s = n->state;

    if (s->active) {
        /* zeroes where the tail is still zeroes cost nothing */
        pthread_mutex_lock(&s->lock);
        bool absorbed = off >= s->zero_start && off + len <= s->file_end;
        pthread_mutex_unlock(&s->lock);
        if (absorbed)
            return 0;
    }
    return bd_pwrite_zeroes(n->file, len, off, flags);
}

/* Every flush leaves a normal file behind: the tail goes, and the next
 * write past the end preallocates again. */
static int prealloc_flush(struct bd_node *n)
{
    struct prealloc_state *s = n->state;
    int r;

    if (!s->active)
        return 0;
    pthread_mutex_lock(&s->lock);
    r = drop_tail(n, s);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/*
 * Growth comes here both from core (a write past the end) and from a
 * format's resize; both are preallocated unless the caller asked for a
 * preallocation mode of its own. A shrink or such a mode first drops the
 * tail, then passes the resize through (QEMU's order).
 */
static int prealloc_truncate(struct bd_node *n, uint64_t size,
                             enum bd_prealloc prealloc, struct bd_err *err)
{
    struct prealloc_state *s = n->state;
    int r;

    if (!s->active)
        return bd_truncate(n->file, size, prealloc, err);
    pthread_mutex_lock(&s->lock);
    if (size > s->data_end &&
        (prealloc == BD_PREALLOC_OFF || prealloc == BD_PREALLOC_FALLOC)) {
        r = grow(n, s, size, prealloc, err);
        goto out_unlock;
    }
    r = drop_tail(n, s);
    if (r == 0)
        r = bd_truncate(n->file, size, prealloc, err);
    if (r == 0) {
        s->data_end = s->file_end = size;
        if (s->zero_start > size)
            s->zero_start = size;
    }
out_unlock:
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void prealloc_info(struct bd_node *n, struct bd_info *info)
{
    struct prealloc_state *s = n->state;

    bd_info_add(info, "filter", "preallocate");
    bd_info_add(info, "prealloc-align", "%" PRIu64, s->align);
    bd_info_add(info, "prealloc-size", "%" PRIu64, s->psize);
    bd_info_add(info, "prealloc-active", "%s", s->active ? "yes" : "no");
}

const struct bd_driver bd_drv_preallocate = {
    .name = "preallocate",
    .kind = BD_FILTER,
    .options = prealloc_options,
    .state_size = sizeof(struct prealloc_state),
    .parallel = true,
    .open = prealloc_open,
    .close = prealloc_close,
    .size = prealloc_size,
    .pread = prealloc_pread,
    .pwrite = prealloc_pwrite,
    .pwrite_zeroes = prealloc_pwrite_zeroes,
    .flush = prealloc_flush,
    .truncate = prealloc_truncate,
    .info = prealloc_info,
};
