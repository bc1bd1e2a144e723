/*
 * raw: the image is the data, optionally a slice of it (offset=, size=),
 * e.g. one partition. When the format was probed rather than given, a
 * write that would make sector 0 look like another format is refused, so
 * that a guest cannot turn its disk into, say, a qcow2 naming host files.
 */
#include "core/bd.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <string.h>

struct raw_state {
    uint64_t offset;
    uint64_t size;
    bool has_size;              /* a fixed slice: the image cannot grow */
};

static const char *const raw_options[] = { "offset", "size", NULL };
static const char *const raw_create_options[] = { "preallocation", "nocow", NULL };

static int raw_probe(const uint8_t *head, size_t len)
{
    (void)head;
    (void)len;
    return 1;
}

static int raw_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    struct raw_state *s = n->state;
    int64_t fsize = bd_size(n->file);
    int r;

    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot read the size: %s",
                          n->name, strerror((int)-fsize));
    r = bd_opts_get_size(o, "offset", 0, &s->offset, err);
    if (r == -EINVAL)
        return r;
    r = bd_opts_get_size(o, "size", 0, &s->size, err);
    if (r == -EINVAL)
        return r;
    s->has_size = r == 0;
    if (s->offset > (uint64_t)fsize)
        return bd_err_set(err, EINVAL, "%s: offset=%" PRIu64 " lies beyond the "
                          "end of the image (%" PRId64 " bytes); pick an offset "
                          "inside it", n->name, s->offset, fsize);
    if (s->has_size) {
        if (!ovf_range_ok(s->offset, s->size, (uint64_t)fsize))
            return bd_err_set(err, EINVAL, "%s: offset=%" PRIu64 " plus size=%"
                              PRIu64 " reaches beyond the end of the image (%"
                              PRId64 " bytes); make the slice smaller",
                              n->name, s->offset, s->size, fsize);
    }
    if ((s->offset || s->has_size) && n->flags.growable)
        return bd_err_set(err, EINVAL, "%s: a slice (offset=/size=) cannot be "
                          "growable; drop --growable", n->name);
    return 0;
}

static int64_t raw_size(struct bd_node *n)
{
    struct raw_state *s = n->state;
    if (s->has_size)
        return (int64_t)s->size;
    int64_t fsize = bd_size(n->file);
    if (fsize < 0)
        return fsize;
    return fsize - (int64_t)s->offset;
}

static int raw_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct raw_state *s = n->state;
    return bd_pread(n->file, buf, len, off + s->offset);
}

/* Would this first sector make a probing reader see another format? */
static bool sector0_is_dangerous(const void *buf, uint64_t len)
{
    return bd_probe_known_magic(buf, len < 4096 ? (size_t)len : 4096) != NULL;
}

static int raw_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                      uint64_t off, unsigned flags)
{
    struct raw_state *s = n->state;
    if (n->format_probed && off == 0 && sector0_is_dangerous(buf, len)) {
        log_warn("%s: refused a write that would make the image look like "
                 "another format; mount with -F raw to allow it", n->name);
        return -EPERM;
    }
    return bd_pwrite(n->file, buf, len, off + s->offset, flags);
}

static int raw_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                             unsigned flags)
{
    struct raw_state *s = n->state;
    return bd_pwrite_zeroes(n->file, len, off + s->offset, flags);
}

static int raw_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct raw_state *s = n->state;
    return bd_discard(n->file, len, off + s->offset);
}

static int raw_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                            uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct raw_state *s = n->state;
    int r = bd_block_status(n->file, off + s->offset, len, pnum, status, map);
    if (r < 0)
        return r;
    /* The protocol decides everything: raw has no unallocated state. */
    *status |= BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
    *map = off + s->offset;
    return 0;
}

static int raw_map_fd(struct bd_node *n, uint64_t off, uint64_t len, int *fd,
                      uint64_t *fd_off)
{
    struct raw_state *s = n->state;
    return bd_map_fd(n->file, off + s->offset, len, fd, fd_off);
}

static int raw_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                        struct bd_err *err)
{
    struct raw_state *s = n->state;
    if (s->offset || s->has_size)
        return bd_err_set(err, ENOTSUP, "%s: a slice (offset=/size=) cannot be "
                          "resized", n->name);
    return bd_truncate(n->file, size, prealloc, err);
}

static void raw_info(struct bd_node *n, struct bd_info *info)
{
    struct raw_state *s = n->state;
    if (s->offset)
        bd_info_add(info, "offset", "%" PRIu64, s->offset);
    if (s->has_size)
        bd_info_add(info, "slice-size", "%" PRIu64, s->size);
}

static int raw_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                      struct bd_err *err)
{
    static const char *const modes[] = { "off", "metadata", "falloc", "full", NULL };
    int p = bd_opts_get_enum(o, "preallocation", modes, BD_PREALLOC_OFF, err);
    if (p < 0)
        return p;
    if (p == BD_PREALLOC_METADATA)
        return bd_err_set(err, EINVAL, "preallocation=metadata is for formats "
                          "with metadata; raw takes off, falloc or full");
    (void)bd_opts_get(o, "nocow");
    return bd_truncate(file, size, (enum bd_prealloc)p, err);
}

static const struct bd_create_ops raw_create_ops = {
    .options = raw_create_options,
    .create = raw_create,
};

const struct bd_driver bd_drv_raw = {
    .name = "raw",
    .kind = BD_FORMAT,
    .options = raw_options,
    .state_size = sizeof(struct raw_state),
    .parallel = true,
    .probe = raw_probe,
    .open = raw_open,
    .size = raw_size,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .pwrite_zeroes = raw_pwrite_zeroes,
    .discard = raw_discard,
    .block_status = raw_block_status,
    .map_fd = raw_map_fd,
    .truncate = raw_truncate,
    .info = raw_info,
    .create = &raw_create_ops,
};
