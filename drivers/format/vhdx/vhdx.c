/*
 * VHDX ([MS-VHDX]): open (the on-disk structures from metadata.c, the log
 * replay from log.c, the parent), reads through the BAT and sector bitmaps,
 * block status, probe and info. Writes live in write.c, creation in
 * create.c.
 */
#include "vhdx.h"
#include "core/overflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t vhdx_payload_index(const struct vhdx_state *s, uint64_t blk)
{
    return blk + blk / s->chunk_ratio;
}

static uint64_t vhdx_bitmap_index(const struct vhdx_state *s, uint64_t chunk)
{
    return chunk * (s->chunk_ratio + 1) + s->chunk_ratio;
}
/* ---- reading the file, with an in-memory log replay on top ------------- */

static void vhdx_apply_patches(const struct vhdx_state *s, uint8_t *buf,
                               uint64_t len, uint64_t off)
{
    uint64_t end = off + len;

    if (off >= s->patch_hi || end <= s->patch_lo)
        return;
    for (size_t i = 0; i < s->n_patches; i++) {
        const struct vhdx_patch *p = &s->patches[i];
        uint64_t lo = p->off > off ? p->off : off;
        uint64_t hi = p->off + p->len < end ? p->off + p->len : end;

        if (lo >= hi)
            continue;
        if (p->data)
            memcpy(buf + (lo - off), p->data + (lo - p->off), hi - lo);
        else
            memset(buf + (lo - off), 0, hi - lo);
    }
}

/*
 * Read the image file as the log says it is: bytes past the real end but
 * inside the size a replayed log declares read as zero.
 */
int vhdx_file_read(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vhdx_state *s = n->state;
    uint64_t real = len;
    int ret;

    if (!ovf_range_ok(off, len, s->eff_size > s->file_size ? s->eff_size
                                                            : s->file_size))
        return -EIO;
    if (off >= s->file_size)
        real = 0;
    else if (off + len > s->file_size)
        real = s->file_size - off;
    if (real) {
        ret = bd_pread(n->file, buf, real, off);
        if (ret < 0)
            return ret;
    }
    if (real < len)
        memset((uint8_t *)buf + real, 0, len - real);
    if (s->n_patches)
        vhdx_apply_patches(s, buf, len, off);
    return 0;
}
/* ---- parent (differencing images) -------------------------------------- */

static char *vhdx_unixify(const char *win)
{
    char *p = strdup(win), *q;

    if (!p)
        return NULL;
    for (q = p; *q; q++) {
        if (*q == '\\')
            *q = '/';
    }
    if (p[0] == '.' && p[1] == '/')
        memmove(p, p + 2, strlen(p + 2) + 1);
    return p;
}

/* Does name exist next to the image? (Policy is bd_open_backing's job.) */
static bool vhdx_candidate_exists(struct bd_node *n, const char *name)
{
    char *dir, *path;
    bool ok;

    if (name[0] == '/')
        return access(name, F_OK) == 0;
    dir = bd_node_dirname(n);
    if (!dir || asprintf(&path, "%s/%s", dir, name) < 0) {
        free(dir);
        return false;
    }
    ok = access(path, F_OK) == 0;
    free(path);
    free(dir);
    return ok;
}

static int vhdx_open_parent(struct bd_node *n, struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    char *cand[2] = { NULL, NULL };
    const char *use = NULL;
    int ret;

    if (s->parent_path)
        cand[0] = vhdx_unixify(s->parent_path);
    if (s->parent_abs) {
        char *u = vhdx_unixify(s->parent_abs);
        char *base = u ? strrchr(u, '/') : NULL;
        if (u && base) {
            cand[1] = strdup(base + 1);
            free(u);
        } else {
            cand[1] = u;
        }
    }
    for (int i = 0; i < 2 && !use; i++) {
        if (cand[i] && *cand[i] && vhdx_candidate_exists(n, cand[i]))
            use = cand[i];
    }
    if (!use)
        use = cand[0] ? cand[0] : cand[1];
    if (!use) {
        ret = bd_err_set(err, EINVAL, "%s: vhdx differencing image names no "
                         "parent (no relative_path or absolute_win32_path)",
                         n->name);
        goto out;
    }
    /* the parent of a vhdx is a vhdx (2.6.2.6): never probe it as raw */
    ret = bd_open_backing(n, use, "vhdx", err);
    if (ret < 0)
        goto out;
    if (n->backing && n->backing->drv == n->drv && s->has_linkage) {
        struct vhdx_state *ps = n->backing->state;
        if (memcmp(ps->hdr.data_write_guid, s->parent_linkage, 16) != 0)
            log_warn("%s: parent '%s' was modified after this differencing "
                     "image was made (parent_linkage does not match)",
                     n->name, use);
    }
out:
    free(cand[0]);
    free(cand[1]);
    return ret;
}

/* ---- open / close ------------------------------------------------------ */

static int vhdx_open(struct bd_node *n, const struct bd_opts *o,
                     struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    uint8_t sig[8];
    int64_t fsize;
    int ret;

    (void)o;
    if (pthread_rwlock_init(&s->lock, NULL) != 0)
        return bd_err_set(err, ENOMEM, "%s: cannot create a lock", n->name);
    s->lock_init = true;
    fsize = bd_size(n->file);
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    s->file_size = s->eff_size = (uint64_t)fsize;
    if (s->file_size < VHDX_MiB)
        return bd_err_set(err, EINVAL, "%s: file is %llu bytes, too small for a "
                          "vhdx image (truncated?)", n->name,
                          (unsigned long long)s->file_size);
    ret = bd_pread(n->file, sig, 8, VHDX_FILE_ID_OFF);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: cannot read: %s", n->name,
                          strerror(-ret));
    if (memcmp(sig, "vhdxfile", 8) != 0)
        return bd_err_set(err, EINVAL, "%s: not a vhdx image (no 'vhdxfile' "
                          "signature)", n->name);
    if ((ret = vhdx_read_headers(n, err)) < 0)
        return ret;
    if ((ret = vhdx_read_regions(n, err)) < 0)
        return ret;
    /* replay the log before the first metadata read, or it is stale (2.3) */
    if ((ret = vhdx_log_replay(n, err)) < 0)
        return ret;
    if ((ret = vhdx_read_metadata(n, err)) < 0)
        return ret;
    if ((ret = vhdx_read_bat(n, err)) < 0)
        return ret;
    if (s->has_parent && (ret = vhdx_open_parent(n, err)) < 0)
        return ret;
    return 0;
}

static void vhdx_close(struct bd_node *n)
{
    struct vhdx_state *s = n->state;

    if (s->session)
        vhdx_session_end(n);
    vhdx_patches_free(s);
    free(s->bat);
    s->bat = NULL;
    free(s->parent_path);
    free(s->parent_abs);
    s->parent_path = s->parent_abs = NULL;
    if (s->lock_init) {
        pthread_rwlock_destroy(&s->lock);
        s->lock_init = false;
    }
}

/* ---- reads --------------------------------------------------------------- */

static int vhdx_read_parent(struct bd_node *n, uint8_t *buf, uint64_t len,
                            uint64_t off)
{
    int64_t psize;
    uint64_t have = 0;

    if (n->backing) {
        psize = bd_size(n->backing);
        if (psize < 0)
            return (int)psize;
        if (off < (uint64_t)psize)
            have = (uint64_t)psize - off < len ? (uint64_t)psize - off : len;
        if (have) {
            int ret = bd_pread(n->backing, buf, have, off);
            if (ret < 0)
                return ret;
        }
    }
    memset(buf + have, 0, len - have);
    return 0;
}

/*
 * The sector bitmap bits for [off, off + len) inside one payload block of a
 * differencing image: *bits gets a malloc'd copy, bit 0 = first sector.
 */
static int vhdx_bitmap_get(struct bd_node *n, uint64_t off, uint64_t len,
                           uint8_t **bits, unsigned *shift)
{
    struct vhdx_state *s = n->state;
    uint64_t chunk_bytes = VHDX_SECTORS_PER_BITMAP << s->lsec_bits;
    uint64_t chunk = off / chunk_bytes;
    uint64_t e = s->bat[vhdx_bitmap_index(s, chunk)];
    uint64_t first = (off % chunk_bytes) >> s->lsec_bits;
    uint64_t nsec = len >> s->lsec_bits;
    uint64_t byte0 = first / 8, nbytes = (first + nsec + 7) / 8 - byte0;
    int ret;

    if (VHDX_BAT_STATE(e) != VHDX_SB_PRESENT)
        return -EIO;
    *bits = malloc(nbytes);
    if (!*bits)
        return -ENOMEM;
    ret = vhdx_file_read(n, *bits, nbytes, VHDX_BAT_OFF(e) + byte0);
    if (ret < 0) {
        free(*bits);
        return ret;
    }
    *shift = (unsigned)(first % 8);
    return 0;
}

static bool bit_at(const uint8_t *bits, uint64_t i)
{
    return bits[i / 8] >> (i % 8) & 1;
}

static int vhdx_read_partial(struct bd_node *n, uint8_t *buf, uint64_t len,
                             uint64_t off, uint64_t foff)
{
    struct vhdx_state *s = n->state;
    uint64_t nsec = len >> s->lsec_bits, i = 0;
    unsigned shift;
    uint8_t *bits;
    int ret;

    ret = vhdx_bitmap_get(n, off, len, &bits, &shift);
    if (ret < 0)
        return ret;
    while (i < nsec) {
        bool present = bit_at(bits, shift + i);
        uint64_t j = i + 1, boff, blen;

        while (j < nsec && bit_at(bits, shift + j) == present)
            j++;
        boff = i << s->lsec_bits;
        blen = (j - i) << s->lsec_bits;
        if (present)
            ret = vhdx_file_read(n, buf + boff, blen, foff + boff);
        else
            ret = vhdx_read_parent(n, buf + boff, blen, off + boff);
        if (ret < 0)
            break;
        i = j;
    }
    free(bits);
    return ret;
}

static int vhdx_pread_locked(struct bd_node *n, uint8_t *buf, uint64_t len,
                             uint64_t off)
{
    struct vhdx_state *s = n->state;
    int ret = 0;

    while (len) {
        uint64_t blk = off >> s->block_bits;
        uint64_t in = off & (s->block_size - 1);
        uint64_t chunk = s->block_size - in < len ? s->block_size - in : len;
        uint64_t e = s->bat[vhdx_payload_index(s, blk)];

        switch (VHDX_BAT_STATE(e)) {
        case VHDX_PAYLOAD_FULLY_PRESENT:
            ret = vhdx_file_read(n, buf, chunk, VHDX_BAT_OFF(e) + in);
            break;
        case VHDX_PAYLOAD_PARTIALLY_PRESENT:
            ret = vhdx_read_partial(n, buf, chunk, off, VHDX_BAT_OFF(e) + in);
            break;
        case VHDX_PAYLOAD_NOT_PRESENT:
            /* absent: the parent's data, or zeroes in a dynamic image */
            if (s->has_parent)
                ret = vhdx_read_parent(n, buf, chunk, off);
            else
                memset(buf, 0, chunk);
            break;
        default:
            memset(buf, 0, chunk);
            break;
        }
        if (ret < 0) {
            if (s->errs++ == 0)
                log_err("%s: read at offset %llu failed: %s", n->name,
                        (unsigned long long)off, strerror(-ret));
            return ret;
        }
        buf += chunk;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

static int vhdx_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vhdx_state *s = n->state;
    int ret;

    pthread_rwlock_rdlock(&s->lock);
    ret = vhdx_pread_locked(n, buf, len, off);
    pthread_rwlock_unlock(&s->lock);
    return ret;
}

/* ---- block status -------------------------------------------------------- */

/* Status of the block holding off, how far it holds (within the block). */
static int vhdx_status_one(struct bd_node *n, uint64_t off, uint64_t len,
                           uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vhdx_state *s = n->state;
    uint64_t blk = off >> s->block_bits;
    uint64_t in = off & (s->block_size - 1);
    uint64_t chunk = s->block_size - in < len ? s->block_size - in : len;
    uint64_t e = s->bat[vhdx_payload_index(s, blk)];

    *pnum = chunk;
    *map = 0;
    switch (VHDX_BAT_STATE(e)) {
    case VHDX_PAYLOAD_FULLY_PRESENT:
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        *map = VHDX_BAT_OFF(e) + in;
        return 0;
    case VHDX_PAYLOAD_PARTIALLY_PRESENT: {
        uint64_t nsec = chunk >> s->lsec_bits, j = 1;
        unsigned shift;
        uint8_t *bits;
        bool present;
        int ret = vhdx_bitmap_get(n, off, chunk, &bits, &shift);

        if (ret < 0)
            return ret;
        present = bit_at(bits, shift);
        while (j < nsec && bit_at(bits, shift + j) == present)
            j++;
        free(bits);
        *pnum = j << s->lsec_bits;
        if (present) {
            *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
            *map = VHDX_BAT_OFF(e) + in;
        } else {
            *status = 0;
        }
        return 0;
    }
    case VHDX_PAYLOAD_NOT_PRESENT:
        *status = s->has_parent ? 0 : BD_STATUS_ZERO;
        return 0;
    case VHDX_PAYLOAD_ZERO:
        *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
        return 0;
    default:        /* undefined, unmapped: we return zeroes */
        *status = BD_STATUS_ZERO | (s->has_parent ? BD_STATUS_ALLOCATED : 0);
        return 0;
    }
}

static int vhdx_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                             uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vhdx_state *s = n->state;
    uint64_t done = 0, p, m;
    unsigned st;
    int ret;

    pthread_rwlock_rdlock(&s->lock);
    ret = vhdx_status_one(n, off, len, pnum, status, map);
    if (ret < 0)
        goto out;
    done = *pnum;
    /* merge following blocks in the same state (and contiguous in the file) */
    while (done < len) {
        ret = vhdx_status_one(n, off + done, len - done, &p, &st, &m);
        if (ret < 0 || st != *status ||
            ((st & BD_STATUS_OFFSET) && m != *map + done))
            break;
        done += p;
    }
    ret = 0;
    *pnum = done;
out:
    pthread_rwlock_unlock(&s->lock);
    return ret;
}

/* ---- the rest of the ops ----------------------------------------------- */

static int vhdx_probe(const uint8_t *head, size_t len)
{
    return len >= 8 && memcmp(head, "vhdxfile", 8) == 0 ? 100 : 0;
}

static void vhdx_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct vhdx_state *s = n->state;

    lim->request_alignment = s->lsec;
    lim->opt_transfer = s->block_size;
}

static int64_t vhdx_size(struct bd_node *n)
{
    struct vhdx_state *s = n->state;
    return (int64_t)s->vsize;
}

static void vhdx_info(struct bd_node *n, struct bd_info *info)
{
    struct vhdx_state *s = n->state;
    char g[37];

    bd_info_add(info, "subformat", "%s", s->has_parent ? "differencing" :
                s->leave_alloc ? "fixed" : "dynamic");
    bd_info_add(info, "block size", "%u", s->block_size);
    bd_info_add(info, "logical sector size", "%u", s->lsec);
    bd_info_add(info, "physical sector size", "%u", s->psec);
    bd_info_add(info, "log size", "%u", s->hdr.log_len);
    vhdx_guid_format(s->disk_id, g);
    bd_info_add(info, "disk id", "%s", g);
    if (s->replayed)
        bd_info_add(info, "log replayed", "%llu entries%s",
                    (unsigned long long)s->replayed_entries,
                    s->n_patches ? " (in memory, read-only)" : "");
    if (s->has_parent) {
        if (s->parent_path)
            bd_info_add(info, "parent relative path", "%s", s->parent_path);
        if (s->parent_abs)
            bd_info_add(info, "parent absolute path", "%s", s->parent_abs);
    }
}

static const char *const vhdx_options[] = { NULL };

static const struct bd_create_ops vhdx_create_ops = {
    .options = vhdx_create_options,
    .create = vhdx_create,
};

const struct bd_driver bd_drv_vhdx = {
    .name = "vhdx",
    .kind = BD_FORMAT,
    .options = vhdx_options,
    .state_size = sizeof(struct vhdx_state),
    .parallel = true,
    .probe = vhdx_probe,
    .open = vhdx_open,
    .close = vhdx_close,
    .limits = vhdx_limits,
    .size = vhdx_size,
    .pread = vhdx_pread,
    .pwrite = vhdx_pwrite,
    .pwrite_zeroes = vhdx_pwrite_zeroes,
    .discard = vhdx_discard,
    .flush = vhdx_flush,
    .truncate = vhdx_truncate,
    .block_status = vhdx_block_status,
    .info = vhdx_info,
    .create = &vhdx_create_ops,
};
