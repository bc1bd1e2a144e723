/*
 * The vmdk format driver: reads the descriptor (embedded in a sparse extent
 * or a text file of its own), opens the extents it names next to it, maps
 * guest offsets onto FLAT, SPARSE and ZERO extents, follows the parent link
 * and keeps the content ID current. Reads run in parallel, writes alone.
 * Hosted sparse extents live in sparse.c and the files it names, seSparse in
 * sesparse.c, the descriptor text in descriptor.c, image creation in create.c.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

extern const struct bd_driver bd_drv_vmdk;

static const char *const vmdk_create_opts[] = {
    "subformat", "adapter_type", "compat6", "hwversion", "backing_file",
    "backing_fmt", "zeroed_grain", "toolsversion", NULL,
};

/* ---- probing ------------------------------------------------------------ */

static int vmdk_probe(const uint8_t *head, size_t len)
{
    if (!head || len < 4)
        return 0;
    if (bd_le32(head) == VMDK4_MAGIC || bd_le32(head) == VMDK3_MAGIC)
        return 100;
    /* a bare seSparse extent: QEMU probes it as raw, but its content is
     * only useful read as a disk */
    if (len >= 16 && bd_le64(head) == SESPARSE_MAGIC && bd_le64(head + 8) == 0x200000001ull)
        return 100;
    if (len >= 21 && memmem(head, len < 1024 ? len : 1024,
                            "# Disk DescriptorFile", 21))
        return 100;
    if (memmem(head, len, "createType=", 11) && memmem(head, len, "version=", 8))
        return 90;
    return 0;
}

/* ---- open --------------------------------------------------------------- */

static int read_text(struct bd_node *file, uint64_t off, uint64_t len,
                     char **out)
{
    char *t = malloc(len + 1);
    int ret;

    if (!t)
        return -ENOMEM;
    ret = bd_pread(file, t, len, off);
    if (ret < 0) {
        free(t);
        return ret;
    }
    t[len] = '\0';
    *out = t;
    return 0;
}

static int add_extent(struct vmdk_state *st, struct vmdk_extent *e)
{
    struct vmdk_extent *n = realloc(st->ext, (st->n_ext + 1) * sizeof(*n));

    if (!n)
        return -ENOMEM;
    st->ext = n;
    st->ext[st->n_ext++] = *e;
    return 0;
}

/* monolithicSparse, streamOptimized and bare sparse extents: the file itself
 * is the one extent, whatever name a (possibly stale) descriptor gives it. */
static int open_single_sparse(struct bd_node *n, struct vmdk_state *st,
                              struct bd_err *err)
{
    struct vmdk_extent e = { .kind = VMDK_EXT_SPARSE, .file = n->file };
    uint64_t doff, dlen;
    int ret;

    ret = vmdk_sparse_open(n->file, n->name, !n->flags.read_only, &e.sp, err);
    if (ret < 0)
        return ret;
    e.len = vmdk_sparse_capacity(e.sp);
    e.fname = strdup(n->name);
    if (!e.fname || add_extent(st, &e) < 0) {
        free(e.fname);
        vmdk_sparse_close(e.sp);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    st->size = e.len;
    vmdk_sparse_desc_area(e.sp, &doff, &dlen);
    if (!dlen)
        return 0;
    ret = read_text(n->file, doff, dlen, &st->desc_text);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: reading the embedded descriptor: %s",
                          n->name, strerror(-ret));
    st->desc_len = strnlen(st->desc_text, dlen);
    st->embedded = true;
    st->desc_off = doff;
    st->desc_area = dlen;
    ret = vmdk_desc_parse(st->desc_text, st->desc_len, &st->desc, n->name, err);
    if (ret < 0)
        bd_err_prefix(err, "embedded descriptor");
    return ret;
}

static int refuse_sesparse_rw(struct bd_node *n, struct bd_err *err)
{
    return bd_err_set(err, EROFS, "%s: seSparse extents are read-only here; "
                      "mount with -r", n->name);
}

/* A bare seSparse extent, without the descriptor that usually names it. */
static int open_single_sesparse(struct bd_node *n, struct vmdk_state *st,
                                struct bd_err *err)
{
    struct vmdk_extent e = { .kind = VMDK_EXT_SESPARSE, .file = n->file };
    int ret;

    if (!n->flags.read_only)
        return refuse_sesparse_rw(n, err);
    if ((ret = vmdk_se_open(n->file, n->name, &e.se, err)) < 0)
        return ret;
    e.len = vmdk_se_capacity(e.se);
    if (add_extent(st, &e) < 0) {
        vmdk_se_close(e.se);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    st->size = e.len;
    return 0;
}

/* Extent files already opened for an earlier extent are shared. */
static struct bd_node *find_open(struct vmdk_state *st, const char *path)
{
    for (size_t i = 0; i < st->n_ext; i++) {
        struct bd_node *f = st->ext[i].file;
        if (st->ext[i].own_file && f->filename && !strcmp(f->filename, path))
            return f;
    }
    return NULL;
}

static int open_extent_file(struct bd_node *n, struct vmdk_state *st,
                            const struct vmdk_desc_extent *d,
                            struct vmdk_extent *e, struct bd_err *err)
{
    bool writable = !n->flags.read_only && d->access == VMDK_ACCESS_RW;
    char *path = NULL;
    int ret = bd_resolve_related(n, d->filename, &path, err);

    if (ret < 0)
        return ret;
    e->file = find_open(st, path);
    if (!e->file) {
        ret = bd_open_related(n, path, writable, &e->file, err);
        if (ret < 0) {
            free(path);
            return ret;
        }
        e->own_file = true;
    }
    free(path);
    return 0;
}

static int open_described(struct bd_node *n, struct vmdk_state *st,
                          struct bd_err *err)
{
    for (size_t i = 0; i < st->desc.n_ext; i++) {
        const struct vmdk_desc_extent *d = &st->desc.ext[i];
        struct vmdk_extent e = { .kind = d->kind, .access = d->access,
                                 .start = st->size };
        int ret = 0;

        if (d->sectors > (UINT64_MAX >> 10) ||
            ovf_mul_u64(d->sectors, BD_SECTOR, &e.len) ||
            ovf_add_u64(st->size, e.len, &st->size) || st->size > (1ull << 62))
            return bd_err_set(err, EFBIG, "%s: extent %zu has an absurd size",
                              n->name, i + 1);
        if (d->kind != VMDK_EXT_ZERO) {
            if ((ret = open_extent_file(n, st, d, &e, err)) < 0)
                return ret;
        }
        if (d->kind == VMDK_EXT_FLAT) {
            int64_t fsize = bd_size(e.file);
            if (d->offset_sectors > (UINT64_MAX >> 10) ||
                ovf_mul_u64(d->offset_sectors, BD_SECTOR, &e.flat_off) || fsize < 0 ||
                !ovf_range_ok(e.flat_off, e.len, (uint64_t)fsize))
                ret = bd_err_set(err, EINVAL, "%s: flat extent '%s' is shorter "
                                 "than the descriptor says (truncated file?)",
                                 n->name, d->filename);
        } else if (d->kind == VMDK_EXT_SPARSE) {
            ret = vmdk_sparse_open(e.file, d->filename,
                                   !e.file->flags.read_only, &e.sp, err);
        } else if (d->kind == VMDK_EXT_SESPARSE) {
            ret = n->flags.read_only ? vmdk_se_open(e.file, d->filename, &e.se, err)
                                     : refuse_sesparse_rw(n, err);
        }
        e.fname = d->filename ? strdup(d->filename) : NULL;
        if (ret == 0 && add_extent(st, &e) < 0)
            ret = bd_err_set(err, ENOMEM, "out of memory");
        if (ret < 0) {
            vmdk_sparse_close(e.sp);
            vmdk_se_close(e.se);
            if (e.own_file)
                bd_node_close(e.file);
            free(e.fname);
            return ret;
        }
    }
    return 0;
}

static int open_descriptor_file(struct bd_node *n, struct vmdk_state *st,
                                struct bd_err *err)
{
    int64_t fsize = bd_size(n->file);
    int ret;

    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: %s", n->name,
                          strerror((int)-fsize));
    if ((uint64_t)fsize > VMDK_DESC_MAX)
        return bd_err_set(err, EINVAL, "%s: not a vmdk image (no sparse header, "
                          "and too large for a descriptor file)", n->name);
    ret = read_text(n->file, 0, (uint64_t)fsize, &st->desc_text);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: reading the descriptor: %s", n->name,
                          strerror(-ret));
    st->desc_len = strnlen(st->desc_text, (size_t)fsize);
    ret = vmdk_desc_parse(st->desc_text, st->desc_len, &st->desc, n->name, err);
    if (ret < 0)
        return ret;
    if (st->desc.n_ext == 0)
        return bd_err_set(err, EINVAL, "%s: the descriptor names no extents",
                          n->name);
    return open_described(n, st, err);
}

static int open_parent(struct bd_node *n, struct vmdk_state *st,
                       struct bd_err *err)
{
    const char *hint = st->desc.parent_hint;
    int ret;

    if (!hint || !*hint)
        return 0;
    ret = bd_open_backing(n, hint, NULL, err);
    if (ret < 0 || !n->backing || n->backing->drv != &bd_drv_vmdk)
        return ret;
    const struct vmdk_state *ps = n->backing->state;
    if (ps->desc.has_cid && st->desc.parent_cid != VMDK_CID_NONE &&
        ps->desc.cid != st->desc.parent_cid)
        log_warn("%s: parent '%s' has CID %08" PRIx32 ", not the %08" PRIx32
                 " this image expects; the parent changed after the child was "
                 "made", n->name, hint, ps->desc.cid, st->desc.parent_cid);
    return 0;
}

static void vmdk_close(struct bd_node *n);

static int vmdk_open(struct bd_node *n, const struct bd_opts *o,
                     struct bd_err *err)
{
    struct vmdk_state *st = n->state;
    uint8_t head[4] = {0};
    int64_t fsize = bd_size(n->file);
    int ret;

    (void)o;
    /* a waiting writer goes before new readers, or a steady read load
     * would hold writes off for ever; nothing takes the lock twice */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    st->lock_ready = true;
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: %s", n->name, strerror((int)-fsize));
    if (fsize >= 4 && (ret = bd_pread(n->file, head, 4, 0)) < 0)
        return bd_err_set(err, -ret, "%s: %s", n->name, strerror(-ret));
    if (bd_le32(head) == VMDK4_MAGIC || bd_le32(head) == VMDK3_MAGIC)
        ret = open_single_sparse(n, st, err);
    else if (bd_le32(head) == SESPARSE_MAGIC)
        ret = open_single_sesparse(n, st, err);
    else
        ret = open_descriptor_file(n, st, err);
    if (ret == 0)
        ret = open_parent(n, st, err);
    if (ret < 0) {
        vmdk_close(n);
        return ret;
    }
    st->shared_reads = true;
    for (size_t i = 0; i < st->n_ext; i++)
        st->shared_reads = st->shared_reads && !st->ext[i].se;
    return 0;
}

static void vmdk_close(struct bd_node *n)
{
    struct vmdk_state *st = n->state;

    for (size_t i = 0; i < st->n_ext; i++) {
        struct vmdk_extent *e = &st->ext[i];
        vmdk_sparse_close(e->sp);
        e->sp = NULL;
        vmdk_se_close(e->se);
        e->se = NULL;
    }
    for (size_t i = 0; i < st->n_ext; i++) {
        if (st->ext[i].own_file)
            bd_node_close(st->ext[i].file);
        free(st->ext[i].fname);
    }
    free(st->ext);
    st->ext = NULL;
    st->n_ext = 0;
    vmdk_desc_free(&st->desc);
    free(st->desc_text);
    st->desc_text = NULL;
    if (st->lock_ready)
        pthread_rwlock_destroy(&st->lock);
    st->lock_ready = false;
}

/* ---- I/O ------------------------------------------------------------------ */

static void vmdk_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct vmdk_state *st = n->state;

    lim->request_alignment = BD_SECTOR;
    for (size_t i = 0; i < st->n_ext; i++) {
        if (st->ext[i].sp) {
            uint64_t g = vmdk_sparse_grain_size(st->ext[i].sp);
            lim->opt_transfer = g > (1u << 20) ? (1u << 20) : (uint32_t)g;
            break;
        }
    }
}

static int64_t vmdk_size(struct bd_node *n)
{
    return (int64_t)((struct vmdk_state *)n->state)->size;
}

static struct vmdk_extent *find_extent(struct vmdk_state *st, uint64_t off)
{
    size_t lo = 0, hi = st->n_ext;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (off < st->ext[mid].start)
            hi = mid;
        else if (off >= st->ext[mid].start + st->ext[mid].len)
            lo = mid + 1;
        else
            return &st->ext[mid];
    }
    return NULL;
}

static void lock_read(struct vmdk_state *st)
{
    if (st->shared_reads)
        pthread_rwlock_rdlock(&st->lock);
    else
        pthread_rwlock_wrlock(&st->lock);
}

static int read_extents(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vmdk_state *st = n->state;
    uint8_t *p = buf;

    while (len) {
        struct vmdk_extent *e = find_extent(st, off);
        uint64_t in, chunk;
        int ret = 0;

        if (!e)
            return -EIO;
        in = off - e->start;
        chunk = e->len - in < len ? e->len - in : len;
        struct vmdk_fill fill = { .backing = n->backing, .base = e->start };
        if (e->access == VMDK_ACCESS_NOACCESS)
            return -EACCES;
        switch (e->kind) {
        case VMDK_EXT_FLAT:
            ret = bd_pread(e->file, p, chunk, e->flat_off + in);
            break;
        case VMDK_EXT_ZERO:
            memset(p, 0, chunk);
            break;
        case VMDK_EXT_SPARSE:
            ret = vmdk_sparse_pread(e->sp, p, chunk, in, &fill);
            break;
        case VMDK_EXT_SESPARSE:
            ret = vmdk_se_pread(e->se, p, chunk, in, &fill);
            break;
        }
        if (ret < 0)
            return ret;
        p += chunk;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

static int vmdk_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vmdk_state *st = n->state;

    lock_read(st);
    int ret = read_extents(n, buf, len, off);
    pthread_rwlock_unlock(&st->lock);
    return ret;
}

static uint32_t new_cid(uint32_t old)
{
    uint32_t c = 0;

    do {
        if (getrandom(&c, sizeof(c), 0) != sizeof(c))
            c = (uint32_t)rand() ^ old;
    } while (c == old || c >= 0xfffffffeu);
    return c;
}

/* A new descriptor text t (taken, freed on failure) replaces the old one
 * on disk and in st; -ENOSPC when an embedded area is too small. */
int vmdk_desc_store(struct bd_node *n, struct vmdk_state *st, char *t,
                    size_t nlen)
{
    int ret;

    if (st->embedded) {
        if (nlen > st->desc_area) {
            free(t);
            return -ENOSPC;
        }
        size_t wlen = nlen < st->desc_len ? st->desc_len : nlen;
        char *w = calloc(1, wlen);
        if (!w) {
            free(t);
            return -ENOMEM;
        }
        memcpy(w, t, nlen);
        ret = bd_pwrite(n->file, w, wlen, st->desc_off, 0);
        free(w);
    } else {
        /* keep NUL padding after the text (qemu pads descriptor files) */
        struct bd_err e = {0};
        int64_t fsize = bd_size(n->file);
        size_t wlen = fsize > 0 && (uint64_t)fsize > st->desc_len &&
                      (uint64_t)fsize > nlen ? (size_t)fsize : nlen;
        char *w = calloc(1, wlen);
        if (!w) {
            free(t);
            return -ENOMEM;
        }
        memcpy(w, t, nlen);
        ret = 0;
        if (fsize < 0 || (uint64_t)fsize != wlen)
            ret = bd_truncate(n->file, wlen, BD_PREALLOC_OFF, &e);
        if (ret == 0)
            ret = bd_pwrite(n->file, w, wlen, 0, 0);
        free(w);
    }
    if (ret < 0) {
        free(t);
        return ret;
    }
    free(st->desc_text);
    st->desc_text = t;
    st->desc_len = nlen;
    return 0;
}

/* VMware tools notice a changed disk by its CID: change it on first write. */
int vmdk_update_cid(struct bd_node *n, struct vmdk_state *st)
{
    size_t nlen;
    char *t;
    int ret;

    st->cid_done = true;
    if (!st->desc_text || !st->desc.has_cid)
        return 0;
    uint32_t cid = new_cid(st->desc.cid);
    t = vmdk_desc_with_cid(st->desc_text, st->desc_len, cid, &nlen);
    if (!t)
        return 0;
    if (st->embedded && nlen > st->desc_area) {
        free(t);
        return 0;
    }
    ret = vmdk_desc_store(n, st, t, nlen);
    if (ret < 0)
        return ret;
    st->desc.cid = cid;
    return 0;
}

static int write_extents(struct bd_node *n, const void *buf, uint64_t len,
                         uint64_t off, unsigned flags)
{
    struct vmdk_state *st = n->state;
    const uint8_t *p = buf;
    int ret;

    if (!st->cid_done && (ret = vmdk_update_cid(n, st)) < 0)
        return ret;
    while (len) {
        struct vmdk_extent *e = find_extent(st, off);
        uint64_t in, chunk;

        if (!e)
            return -EIO;
        in = off - e->start;
        chunk = e->len - in < len ? e->len - in : len;
        struct vmdk_fill fill = { .backing = n->backing, .base = e->start };
        if (e->access != VMDK_ACCESS_RW)
            return -EACCES;
        switch (e->kind) {
        case VMDK_EXT_FLAT:
            ret = bd_pwrite(e->file, p, chunk, e->flat_off + in, flags);
            break;
        case VMDK_EXT_ZERO:
        case VMDK_EXT_SESPARSE:
            ret = -EACCES;
            break;
        case VMDK_EXT_SPARSE:
            ret = vmdk_sparse_pwrite(e->sp, p, chunk, in, &fill);
            break;
        }
        if (ret < 0)
            return ret;
        p += chunk;
        off += chunk;
        len -= chunk;
    }
    if (flags & BD_REQ_FUA) {
        for (size_t i = 0; i < st->n_ext; i++) {
            if (st->ext[i].own_file && (ret = bd_flush(st->ext[i].file)) < 0)
                return ret;
        }
    }
    return 0;
}

static int vmdk_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                       uint64_t off, unsigned flags)
{
    struct vmdk_state *st = n->state;

    pthread_rwlock_wrlock(&st->lock);
    int ret = write_extents(n, buf, len, off, flags);
    pthread_rwlock_unlock(&st->lock);
    return ret;
}

static int zero_extents(struct bd_node *n, uint64_t len, uint64_t off,
                        unsigned flags)
{
    struct vmdk_state *st = n->state;
    int ret;

    if (!st->cid_done && (ret = vmdk_update_cid(n, st)) < 0)
        return ret;
    while (len) {
        struct vmdk_extent *e = find_extent(st, off);
        uint64_t in, chunk;

        if (!e)
            return -EIO;
        in = off - e->start;
        chunk = e->len - in < len ? e->len - in : len;
        struct vmdk_fill fill = { .backing = n->backing, .base = e->start };
        if (e->access != VMDK_ACCESS_RW)
            return -EACCES;
        switch (e->kind) {
        case VMDK_EXT_FLAT:
            ret = bd_pwrite_zeroes(e->file, chunk, e->flat_off + in,
                                   flags & ~BD_REQ_MAY_UNMAP);
            break;
        case VMDK_EXT_ZERO:
            ret = 0;
            break;
        case VMDK_EXT_SESPARSE:
            ret = -EACCES;
            break;
        case VMDK_EXT_SPARSE:
            ret = vmdk_sparse_pwrite_zeroes(e->sp, chunk, in, &fill);
            break;
        }
        if (ret < 0)
            return ret;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

static int vmdk_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                              unsigned flags)
{
    struct vmdk_state *st = n->state;

    pthread_rwlock_wrlock(&st->lock);
    int ret = zero_extents(n, len, off, flags);
    pthread_rwlock_unlock(&st->lock);
    return ret;
}

static int vmdk_flush(struct bd_node *n)
{
    struct vmdk_state *st = n->state;
    int ret = 0;

    pthread_rwlock_wrlock(&st->lock);
    for (size_t i = 0; i < st->n_ext && ret == 0; i++) {
        struct vmdk_extent *e = &st->ext[i];
        if (e->sp)
            ret = vmdk_sparse_flush(e->sp);
        if (ret == 0 && e->own_file)
            ret = bd_flush(e->file);
    }
    pthread_rwlock_unlock(&st->lock);
    return ret;
}

static int extent_status(struct bd_node *n, uint64_t off, uint64_t len,
                         uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vmdk_state *st = n->state;
    struct vmdk_extent *e = find_extent(st, off);
    enum vmdk_grain_state gs;
    uint64_t in, chunk, foff;
    int ret;

    if (!e)
        return -EIO;
    in = off - e->start;
    chunk = e->len - in < len ? e->len - in : len;
    *pnum = chunk;
    switch (e->kind) {
    case VMDK_EXT_FLAT:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        if (e->file == n->file) {
            *status |= BD_STATUS_OFFSET;
            *map = e->flat_off + in;
        }
        return 0;
    case VMDK_EXT_ZERO:
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        return 0;
    case VMDK_EXT_SPARSE:
    case VMDK_EXT_SESPARSE:
        break;
    }
    if (e->se)
        ret = vmdk_se_status(e->se, in, chunk, pnum, &gs, &foff);
    else
        ret = vmdk_sparse_status(e->sp, in, chunk, pnum, &gs, &foff);
    if (ret < 0)
        return ret;
    switch (gs) {
    case VMDK_GRAIN_UNALLOCATED:
        *status = 0;
        break;
    case VMDK_GRAIN_ZERO:
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        break;
    case VMDK_GRAIN_DATA:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        if (e->file == n->file) {
            *status |= BD_STATUS_OFFSET;
            *map = foff;
        }
        break;
    case VMDK_GRAIN_COMPRESSED:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
        break;
    }
    return 0;
}

static int vmdk_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                             uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vmdk_state *st = n->state;

    lock_read(st);
    int ret = extent_status(n, off, len, pnum, status, map);
    pthread_rwlock_unlock(&st->lock);
    return ret;
}

static int64_t vmdk_allocated_size(struct bd_node *n)
{
    struct vmdk_state *st = n->state;
    int64_t total = bd_allocated_size(n->file);

    for (size_t i = 0; i < st->n_ext && total >= 0; i++) {
        if (st->ext[i].own_file) {
            int64_t a = bd_allocated_size(st->ext[i].file);
            total = a < 0 ? a : total + a;
        }
    }
    return total;
}

static int vmdk_check(struct bd_node *n, unsigned fix, struct bd_check *res,
                      struct bd_err *err)
{
    struct vmdk_state *st = n->state;
    int ret = 0;
    size_t i;

    pthread_rwlock_wrlock(&st->lock);
    for (i = 0; i < st->n_ext && ret == 0; i++)
        ret = st->ext[i].sp ? vmdk_sparse_check(st->ext[i].sp, fix, res) : 0;
    pthread_rwlock_unlock(&st->lock);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: checking extent %zu: %s", n->name, i,
                          strerror(-ret));
    return 0;
}

static void vmdk_info(struct bd_node *n, struct bd_info *info)
{
    struct vmdk_state *st = n->state;
    static const char *const kinds[] = {"FLAT", "SPARSE", "ZERO", "SESPARSE"};

    if (st->desc.create_type)
        bd_info_add(info, "create type", "%s", st->desc.create_type);
    if (st->desc.has_cid)
        bd_info_add(info, "cid", "%08" PRIx32, st->desc.cid);
    bd_info_add(info, "parent cid", "%08" PRIx32, st->desc.parent_cid);
    if (st->desc.parent_hint)
        bd_info_add(info, "parent file name hint", "%s", st->desc.parent_hint);
    if (st->desc.adapter_type)
        bd_info_add(info, "adapter type", "%s", st->desc.adapter_type);
    if (st->desc.hw_version)
        bd_info_add(info, "hardware version", "%s", st->desc.hw_version);
    for (size_t i = 0; i < st->n_ext; i++) {
        const struct vmdk_extent *e = &st->ext[i];
        char key[32], detail[128] = "";
        if (e->sp)
            vmdk_sparse_describe(e->sp, detail, sizeof(detail));
        snprintf(key, sizeof(key), "extent %zu", i + 1);
        bd_info_add(info, key, "%s %" PRIu64 " bytes%s%s%s%s%s", kinds[e->kind],
                    e->len, e->fname ? " '" : "", e->fname ? e->fname : "",
                    e->fname ? "'" : "", *detail ? ", " : "", detail);
    }
}

static const struct bd_create_ops vmdk_create_ops = {
    .options = vmdk_create_opts,
    .create = vmdk_create,
};

const struct bd_driver bd_drv_vmdk = {
    .name = "vmdk",
    .kind = BD_FORMAT,
    .state_size = sizeof(struct vmdk_state),
    .parallel = true,
    .probe = vmdk_probe,
    .open = vmdk_open,
    .close = vmdk_close,
    .limits = vmdk_limits,
    .size = vmdk_size,
    .pread = vmdk_pread,
    .pwrite = vmdk_pwrite,
    .pwrite_zeroes = vmdk_pwrite_zeroes,
    .flush = vmdk_flush,
    .block_status = vmdk_block_status,
    .allocated_size = vmdk_allocated_size,
    .info = vmdk_info,
    .check = vmdk_check,
    .truncate = vmdk_truncate,
    .create = &vmdk_create_ops,
};
