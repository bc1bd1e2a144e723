/*
 * qcow2 format driver: open (header, extensions, tables, snapshot choice,
 * external data file, backing file), close, info, probe and the ops table.
 * The mapping, refcounts, caches, guest I/O and creation live in the other
 * files of this folder; this file only wires them to struct bd_driver.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QCOW2_L2_CACHE_MAX (128ull << 20)
#define QCOW2_SNAPSHOT_TABLE_MAX (64ull << 20)

static const char *const qcow2_options[] = {
    "l2-cache-size", "refcount-cache-size", "snapshot", "compress",
    "data-file", "encrypt.key-secret", "encrypt.format", NULL,
};

static int read_at(struct bd_node *n, uint64_t off, uint64_t len, void **out,
                   struct bd_err *err, const char *what)
{
    void *b = malloc(len ? len : 1);
    int ret;

    *out = NULL;
    if (!b)
        return bd_err_set(err, ENOMEM, "%s: out of memory for the %s (%" PRIu64
                          " bytes)", n->name, what, len);
    ret = len ? bd_pread(n->file, b, len, off) : 0;
    if (ret < 0) {
        free(b);
        return bd_err_set(err, -ret, "%s: cannot read the %s: %s", n->name,
                          what, strerror(-ret));
    }
    *out = b;
    return 0;
}

static int load_header(struct bd_node *n, struct qcow2_state *s,
                       uint64_t fsize, struct bd_err *err)
{
    uint64_t len = fsize < 65536 ? fsize : 65536;
    uint8_t *buf;
    int ret;

    ret = read_at(n, 0, len, (void **)&buf, err, "header");
    if (ret < 0)
        return ret;
    if (len >= 24 && bd_be32(buf) == QCOW2_MAGIC) {
        uint32_t cb = bd_be32(buf + 20);
        if (cb > 16 && cb <= QCOW2_MAX_CLUSTER_BITS && fsize > len) {
            free(buf);
            len = fsize < (1ull << cb) ? fsize : (1ull << cb);
            ret = read_at(n, 0, len, (void **)&buf, err, "header");
            if (ret < 0)
                return ret;
        }
    }
    ret = qcow2_header_decode(buf, len, fsize, n->name, &s->h, err);
    if (ret == 0)
        ret = qcow2_exts_decode(buf, len, &s->h, n->name, &s->x, err);
    if (ret == 0 && s->h.backing_off) {
        s->backing_name = malloc(s->h.backing_len + 1);
        if (!s->backing_name) {
            ret = bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
        } else {
            memcpy(s->backing_name, buf + s->h.backing_off, s->h.backing_len);
            s->backing_name[s->h.backing_len] = 0;
            if (strlen(s->backing_name) != s->h.backing_len)
                ret = bd_err_set(err, EINVAL,
                                 "%s: backing file name contains a NUL byte",
                                 n->name);
        }
    }
    free(buf);
    return ret;
}

static int check_features(struct bd_node *n, struct qcow2_state *s,
                          struct bd_err *err)
{
    char names[512];
    uint64_t unknown = s->h.incompat & ~QCOW2_INCOMPAT_KNOWN;

    if (unknown) {
        qcow2_feature_names(&s->x, 0, unknown, names, sizeof(names));
        return bd_err_set(err, ENOTSUP,
                          "%s: image uses incompatible features imgfuse does "
                          "not know: %s", n->name, names);
    }
    if ((s->h.incompat & QCOW2_INCOMPAT_CORRUPT) && !n->flags.read_only)
        return bd_err_set(err, EROFS,
                          "%s: image is marked corrupt; open it read-only (-r) "
                          "or repair it with qemu-img check -r all", n->name);
    return 0;
}

static int load_tables(struct bd_node *n, struct qcow2_state *s,
                       struct bd_err *err)
{
    uint8_t *b;
    int ret;

    s->l1_entries = s->h.l1_entries;
    s->l1_off = s->h.l1_off;
    s->l1 = calloc(s->l1_entries ? s->l1_entries : 1, sizeof(uint64_t));
    if (!s->l1)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    ret = read_at(n, s->l1_off, (uint64_t)s->l1_entries * 8, (void **)&b, err,
                  "L1 table");
    if (ret < 0)
        return ret;
    for (uint32_t i = 0; i < s->l1_entries; i++)
        s->l1[i] = bd_be64(b + i * 8);
    free(b);

    uint64_t rt_bytes = (uint64_t)s->h.reftable_clusters * s->cluster_size;
    s->reftable_entries = rt_bytes / 8;
    s->reftable_off = s->h.reftable_off;
    s->reftable = calloc(s->reftable_entries, sizeof(uint64_t));
    if (!s->reftable)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    ret = read_at(n, s->reftable_off, rt_bytes, (void **)&b, err,
                  "refcount table");
    if (ret < 0)
        return ret;
    for (uint64_t i = 0; i < s->reftable_entries; i++)
        s->reftable[i] = bd_be64(b + i * 8);
    free(b);
    return 0;
}

static int load_snapshots(struct bd_node *n, struct qcow2_state *s,
                          uint64_t fsize, struct bd_err *err)
{
    uint64_t want = 1u << 16;
    int ret;

    if (!s->h.nb_snapshots)
        return 0;
    for (;;) {
        uint64_t avail = fsize - s->h.snapshots_off;
        uint64_t len = want < avail ? want : avail;
        uint8_t *b;
        ret = read_at(n, s->h.snapshots_off, len, (void **)&b, err,
                      "snapshot table");
        if (ret < 0)
            return ret;
        ret = qcow2_snapshots_decode(b, len, s->h.nb_snapshots, &s->h, fsize,
                                     n->name, &s->snapshots, err);
        free(b);
        if (ret != -ENODATA)
            break;
        if (len == avail || want >= QCOW2_SNAPSHOT_TABLE_MAX)
            return bd_err_set(err, EINVAL,
                              "%s: snapshot table is truncated", n->name);
        want *= 4;
    }
    if (ret == 0)
        s->nb_snapshots = s->h.nb_snapshots;
    return ret;
}

static int use_snapshot(struct bd_node *n, struct qcow2_state *s,
                        const char *want, struct bd_err *err)
{
    int found = -1;
    uint8_t *b;
    int ret;

    for (uint32_t i = 0; i < s->nb_snapshots && found < 0; i++)
        if (!strcmp(s->snapshots[i].id, want))
            found = (int)i;
    for (uint32_t i = 0; i < s->nb_snapshots && found < 0; i++)
        if (!strcmp(s->snapshots[i].name, want))
            found = (int)i;
    if (found < 0)
        return bd_err_set(err, ENOENT,
                          "%s: no snapshot with id or name '%s' (imgfuse info "
                          "lists them)", n->name, want);
    const struct qcow2_snapshot *sn = &s->snapshots[found];
    uint64_t per_l1 = s->cluster_size << s->l2_bits;
    uint64_t size = sn->disk_size ? sn->disk_size : s->h.size;
    if (size > (uint64_t)sn->l1_entries * per_l1)
        size = (uint64_t)sn->l1_entries * per_l1;
    free(s->l1);
    s->l1 = calloc(sn->l1_entries ? sn->l1_entries : 1, sizeof(uint64_t));
    if (!s->l1)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    ret = read_at(n, sn->l1_off, (uint64_t)sn->l1_entries * 8, (void **)&b,
                  err, "snapshot L1 table");
    if (ret < 0)
        return ret;
    for (uint32_t i = 0; i < sn->l1_entries; i++)
        s->l1[i] = bd_be64(b + i * 8);
    free(b);
    s->l1_entries = sn->l1_entries;
    s->l1_off = sn->l1_off;
    s->size = size;
    s->snapshot_index = found;
    s->read_only = true;
    return 0;
}

static int open_data_file(struct bd_node *n, struct qcow2_state *s,
                          const struct bd_opts *o, struct bd_err *err)
{
    const char *name = bd_opts_get(o, "data-file");
    char *path = NULL;
    int ret;

    if (!name)
        name = s->x.data_file;
    if (!name)
        return bd_err_set(err, EINVAL,
                          "%s: image uses an external data file but does not "
                          "name it; give it with -o data-file=PATH", n->name);
    ret = bd_resolve_related(n, name, &path, err);
    if (ret < 0)
        return ret;
    ret = bd_open_related(n, path, !s->read_only, &s->data_node, err);
    free(path);
    if (ret < 0) {
        bd_err_prefix(err, "external data file '%s'", name);
        return ret;
    }
    int64_t sz = bd_size(s->data_node);
    if (sz < 0)
        return bd_err_set(err, (int)-sz, "%s: external data file '%s': %s",
                          n->name, name, strerror((int)-sz));
    s->data_size = (uint64_t)sz;
    s->data = s->data_node;
    s->data_raw = s->h.autoclear & QCOW2_AUTOCLEAR_DATA_RAW;
    return 0;
}

static int qcow2_open(struct bd_node *n, const struct bd_opts *o,
                      struct bd_err *err)
{
    struct qcow2_state *s = n->state;
    int64_t fsz = bd_size(n->file);
    int ret;

    s->node = n;
    s->snapshot_index = -1;
    s->l1_dirty_lo = 1;
    s->l1_dirty_hi = 0;
    if (fsz < 0)
        return bd_err_set(err, (int)-fsz, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsz));
    s->file_size = (uint64_t)fsz;
    s->data = n->file;
    s->read_only = n->flags.read_only;

    ret = load_header(n, s, (uint64_t)fsz, err);
    if (ret < 0)
        return ret;
    ret = check_features(n, s, err);
    if (ret < 0)
        return ret;

    s->cluster_bits = s->h.cluster_bits;
    s->cluster_size = 1ull << s->cluster_bits;
    s->ext_l2 = s->h.incompat & QCOW2_INCOMPAT_EXTL2;
    s->l2_entry_bytes = s->ext_l2 ? 16 : 8;
    s->l2_bits = s->cluster_bits - (s->ext_l2 ? 4 : 3);
    s->l2_entries = 1ull << s->l2_bits;
    s->sc_bits = s->ext_l2 ? s->cluster_bits - 5 : s->cluster_bits;
    s->sc_size = 1ull << s->sc_bits;
    s->refcount_order = s->h.refcount_order;
    s->refcount_max = s->refcount_order == 6 ? UINT64_MAX
                                             : (1ull << (1u << s->refcount_order)) - 1;
    s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
    s->rb_entries = 1ull << s->rb_bits;
    s->size = s->h.size;
    s->lazy_refcounts = s->h.compat & QCOW2_COMPAT_LAZY_REFCOUNTS;

    ret = qcow2_crypt_open(n, s, o, err);
    if (ret < 0)
        return ret;
    ret = load_tables(n, s, err);
    if (ret < 0)
        return ret;
    ret = load_snapshots(n, s, (uint64_t)fsz, err);
    if (ret < 0)
        return ret;

    const char *snap = bd_opts_get(o, "snapshot");
    if (snap) {
        ret = use_snapshot(n, s, snap, err);
        if (ret < 0)
            return ret;
    }
    ret = bd_opts_get_bool(o, "compress", false, &s->compress_writes, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    if (s->compress_writes && s->crypt)
        return bd_err_set(err, EINVAL, "%s: compress=on cannot be used with "
                          "an encrypted image", n->name);

    uint64_t per_table = s->cluster_size << s->l2_bits;
    uint64_t cover = (s->size + per_table - 1) / per_table * s->cluster_size;
    uint64_t l2_bytes, rc_bytes;
    if (cover > QCOW2_L2_CACHE_MAX)
        cover = QCOW2_L2_CACHE_MAX;
    ret = bd_opts_get_size(o, "l2-cache-size", cover, &l2_bytes, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = bd_opts_get_size(o, "refcount-cache-size", l2_bytes / 4, &rc_bytes,
                           err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    if (qcow2_cache_init(&s->l2c, s, "l2", l2_bytes) < 0 ||
        qcow2_cache_init(&s->rbc, s, "refcount", rc_bytes) < 0)
        return bd_err_set(err, ENOMEM, "%s: out of memory for the caches",
                          n->name);
    s->l2c.before_write = qcow2_refcounts_stable;

    /* a waiting discard goes before new readers, or a steady read load
     * would hold it off for ever; nothing takes io_lock twice in a thread */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int lr = pthread_rwlock_init(&s->io_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (lr)
        return bd_err_set(err, ENOMEM, "%s: cannot create locks", n->name);
    if (pthread_mutex_init(&s->meta_lock, NULL) ||
        pthread_mutex_init(&s->alloc_lock, NULL)) {
        pthread_rwlock_destroy(&s->io_lock);
        return bd_err_set(err, ENOMEM, "%s: cannot create locks", n->name);
    }
    s->locks_ready = true;
    if (qcow2_ra_init(s) < 0)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);

    if (s->h.incompat & QCOW2_INCOMPAT_DATA_FILE) {
        ret = open_data_file(n, s, o, err);
        if (ret < 0)
            return ret;
    }

    if ((s->h.incompat & QCOW2_INCOMPAT_DIRTY) && !s->read_only) {
        ret = qcow2_rebuild_refcounts(s, err);
        if (ret < 0)
            return ret;
    }

    if (s->backing_name) {
        struct bd_opts *bo = bd_opts_sub(o, "backing");
        if (!bo)
            return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
        ret = bd_open_backing_opts(n, s->backing_name, s->x.backing_fmt, bo,
                                   err);
        bd_opts_free_view(bo);
        if (ret < 0)
            return ret;
        if (n->backing) {
            int64_t bs = bd_size(n->backing);
            if (bs < 0)
                return bd_err_set(err, (int)-bs, "%s: backing file '%s': %s",
                                  n->name, s->backing_name,
                                  strerror((int)-bs));
            s->backing_size = (uint64_t)bs;
        }
    }
    return 0;
}

static void qcow2_close(struct bd_node *n)
{
    struct qcow2_state *s = n->state;

    if (!s)
        return;
    if (s->locks_ready && !s->read_only && s->writes_started) {
        pthread_mutex_lock(&s->meta_lock);
        int ret = qcow2_bitmaps_store(s);
        if (ret < 0)
            log_err("%s: cannot store the persistent bitmaps: %s (they stay "
                    "marked in use)", n->name, strerror(-ret));
        ret = qcow2_meta_flush(s, true);
        if (ret == 0 && (s->h.incompat & QCOW2_INCOMPAT_DIRTY)) {
            ret = qcow2_header_write_u64(s, 72,
                                         s->h.incompat & ~QCOW2_INCOMPAT_DIRTY);
            if (ret == 0)
                s->h.incompat &= ~QCOW2_INCOMPAT_DIRTY;
        }
        if (ret < 0)
            log_err("%s: cannot write metadata at close: %s", n->name,
                    strerror(-ret));
        pthread_mutex_unlock(&s->meta_lock);
    }
    qcow2_ra_free(s);
    qcow2_bitmaps_free(s);
    qcow2_crypt_close(s);
    if (s->data_node)
        bd_node_close(s->data_node);
    s->data_node = NULL;
    qcow2_cache_free(&s->l2c);
    qcow2_cache_free(&s->rbc);
    if (s->locks_ready) {
        pthread_mutex_destroy(&s->meta_lock);
        pthread_mutex_destroy(&s->alloc_lock);
        pthread_rwlock_destroy(&s->io_lock);
        s->locks_ready = false;
    }
    free(s->l1);
    free(s->reftable);
    free(s->backing_name);
    qcow2_snapshots_free(s->snapshots, s->nb_snapshots);
    qcow2_exts_free(&s->x);
    s->l1 = NULL;
    s->reftable = NULL;
    s->backing_name = NULL;
    s->snapshots = NULL;
}

static int qcow2_probe(const uint8_t *head, size_t len)
{
    if (len < 8 || bd_be32(head) != QCOW2_MAGIC)
        return 0;
    uint32_t v = bd_be32(head + 4);
    return (v == 2 || v == 3) ? 100 : 0;
}

static void qcow2_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct qcow2_state *s = n->state;

    lim->request_alignment = s->crypt ? 512 : 1;   /* whole cipher sectors */
    lim->opt_transfer = (uint32_t)s->cluster_size;
    lim->discard_alignment = (uint32_t)s->cluster_size;
}

static int64_t qcow2_size(struct bd_node *n)
{
    struct qcow2_state *s = n->state;
    return (int64_t)s->size;
}

/* a range mapped through block status is read (spliced) after we return */
static void qcow2_pin(struct bd_node *n)
{
    struct qcow2_state *s = n->state;
    pthread_rwlock_rdlock(&s->io_lock);
}

static void qcow2_unpin(struct bd_node *n)
{
    struct qcow2_state *s = n->state;
    pthread_rwlock_unlock(&s->io_lock);
}

static int qcow2_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct qcow2_state *s = n->state;

    pthread_rwlock_rdlock(&s->io_lock);
    int ret = qcow2_read(s, buf, len, off);
    pthread_rwlock_unlock(&s->io_lock);
    return ret;
}

static int qcow2_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                        uint64_t off, unsigned flags)
{
    struct qcow2_state *s = n->state;

    if (s->read_only)
        return -EROFS;
    qcow2_ra_changed(s);
    pthread_rwlock_rdlock(&s->io_lock);
    int ret = qcow2_write(s, buf, len, off, flags);
    pthread_rwlock_unlock(&s->io_lock);
    qcow2_ra_changed(s);
    return ret;
}

static int qcow2_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                               unsigned flags)
{
    struct qcow2_state *s = n->state;

    if (s->read_only)
        return -EROFS;
    qcow2_ra_changed(s);
    int ret = qcow2_write_zeroes(s, len, off, flags);
    qcow2_ra_changed(s);
    return ret;
}

static int qcow2_discard(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct qcow2_state *s = n->state;

    if (s->read_only)
        return -EROFS;
    qcow2_ra_changed(s);
    int ret = qcow2_discard_range(s, len, off);
    qcow2_ra_changed(s);
    return ret;
}

static int qcow2_flush(struct bd_node *n)
{
    return qcow2_flush_all(n->state);
}

static int qcow2_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                              uint64_t *pnum, unsigned *status, uint64_t *map)
{
    return qcow2_status(n->state, off, len, pnum, status, map);
}

static int qcow2_do_truncate(struct bd_node *n, uint64_t size,
                             enum bd_prealloc prealloc, struct bd_err *err)
{
    struct qcow2_state *s = n->state;

    (void)prealloc;     /* new space stays unallocated (reads as zeroes) */
    if (size < s->size && size % s->cluster_size) {
        /* the kept cluster's tail reads as zeroes if the image grows again */
        uint64_t end = bd_align_up(size, s->cluster_size);
        struct qcow2_extent e;
        if (end > s->size)
            end = s->size;
        int r = qcow2_map(s, size, end - size, &e);
        if (r == 0 && (e.type == QCOW2_NORMAL || e.type == QCOW2_COMPRESSED))
            r = qcow2_write_zeroes(s, end - size, size, 0);
        if (r < 0)
            return bd_err_set(err, -r, "%s: cannot shrink: %s", n->name,
                              strerror(-r));
    }
    uint64_t old = s->size;
    pthread_rwlock_wrlock(&s->io_lock);     /* a shrink frees clusters */
    int ret = qcow2_resize(s, size, err);
    pthread_rwlock_unlock(&s->io_lock);
    /* as QEMU: a longer backing file must not show through the new space */
    int64_t blen = n->backing && ret == 0 && size > old ? bd_size(n->backing) : 0;
    if (blen > (int64_t)old) {
        uint64_t end = size < (uint64_t)blen ? size : (uint64_t)blen;
        ret = qcow2_write_zeroes(s, end - old, old, 0);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: cannot zero the grown space: %s",
                              n->name, strerror(-ret));
    }
    return ret;
}

static int qcow2_truncate(struct bd_node *n, uint64_t size,
                          enum bd_prealloc prealloc, struct bd_err *err)
{
    struct qcow2_state *s = n->state;
    int ret;

    qcow2_ra_changed(s);
    ret = qcow2_do_truncate(n, size, prealloc, err);
    qcow2_ra_changed(s);
    return ret;
}

static int64_t qcow2_allocated_size(struct bd_node *n)
{
    struct qcow2_state *s = n->state;
    int64_t a = bd_allocated_size(n->file);

    if (a >= 0 && s->data_node) {
        int64_t d = bd_allocated_size(s->data_node);
        if (d > 0)
            a += d;
    }
    return a;
}

static void qcow2_info(struct bd_node *n, struct bd_info *info)
{
    struct qcow2_state *s = n->state;
    char names[512];

    bd_info_add(info, "compat", "%s", s->h.version == 2 ? "0.10" : "1.1");
    bd_info_add(info, "cluster_size", "%" PRIu64, s->cluster_size);
    bd_info_add(info, "refcount_bits", "%u", 1u << s->refcount_order);
    if (s->h.version >= 3) {
        bd_info_add(info, "compression_type", "%s",
                    s->h.compression_type == QCOW2_COMPRESS_ZSTD ? "zstd"
                                                                 : "zlib");
        bd_info_add(info, "lazy_refcounts", "%s",
                    s->lazy_refcounts ? "true" : "false");
        bd_info_add(info, "extended_l2", "%s", s->ext_l2 ? "true" : "false");
        bd_info_add(info, "corrupt", "%s",
                    (s->h.incompat & QCOW2_INCOMPAT_CORRUPT) ? "true" : "false");
        bd_info_add(info, "dirty", "%s",
                    (s->h.incompat & QCOW2_INCOMPAT_DIRTY) ? "true" : "false");
        static const char *const keys[] = { "incompatible_features",
                                            "compatible_features",
                                            "autoclear_features" };
        const uint64_t masks[] = { s->h.incompat, s->h.compat,
                                   s->h.autoclear };
        for (int k = 0; k < 3; k++) {
            if (!masks[k])
                continue;
            qcow2_feature_names(&s->x, k, masks[k], names, sizeof(names));
            bd_info_add(info, keys[k], "%s", names);
        }
    }
    if (s->h.crypt_method)
        bd_info_add(info, "encrypt.format", "%s",
                    s->h.crypt_method == QCOW2_CRYPT_AES ? "aes" : "luks");
    if (s->backing_name)
        bd_info_add(info, "backing_file", "%s", s->backing_name);
    if (s->x.backing_fmt)
        bd_info_add(info, "backing_fmt", "%s", s->x.backing_fmt);
    if (s->h.incompat & QCOW2_INCOMPAT_DATA_FILE) {
        bd_info_add(info, "data_file", "%s",
                    s->x.data_file ? s->x.data_file : "");
        bd_info_add(info, "data_file_raw", "%s",
                    s->data_raw ? "true" : "false");
    }
    if (s->x.has_bitmaps)
        bd_info_add(info, "bitmaps", "%" PRIu32, s->x.nb_bitmaps);
    bd_info_add(info, "snapshots", "%" PRIu32, s->nb_snapshots);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        char key[32];
        snprintf(key, sizeof(key), "snapshot.%" PRIu32, i);
        bd_info_add(info, key,
                    "id=%s name=%s date=%" PRIu32 ".%09" PRIu32
                    " vm_clock_ns=%" PRIu64 " vm_state_size=%" PRIu64
                    " disk_size=%" PRIu64, sn->id, sn->name, sn->date_sec,
                    sn->date_nsec, sn->vm_clock_nsec, sn->vm_state_size,
                    sn->disk_size ? sn->disk_size : s->h.size);
    }
    if (s->snapshot_index >= 0)
        bd_info_add(info, "mounted_snapshot", "%s",
                    s->snapshots[s->snapshot_index].name);
}

static const struct bd_create_ops qcow2_create_ops = {
    .options = qcow2_create_options,
    .create = qcow2_create,
};

static const struct bd_pin_ops qcow2_pin_ops = {
    .pin = qcow2_pin,
    .unpin = qcow2_unpin,
};

const struct bd_driver bd_drv_qcow2 = {
    .name = "qcow2",
    .kind = BD_FORMAT,
    .options = qcow2_options,
    .state_size = sizeof(struct qcow2_state),
    .parallel = true,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .limits = qcow2_limits,
    .size = qcow2_size,
    .pread = qcow2_pread,
    .pwrite = qcow2_pwrite,
    .pwrite_zeroes = qcow2_pwrite_zeroes,
    .discard = qcow2_discard,
    .flush = qcow2_flush,
    .block_status = qcow2_block_status,
    .truncate = qcow2_truncate,
    .allocated_size = qcow2_allocated_size,
    .snapshots = qcow2_snapshot_names,
    .info = qcow2_info,
    .check = qcow2_check,
    .create = &qcow2_create_ops,
    .pin = &qcow2_pin_ops,
};
