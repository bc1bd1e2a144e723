/*
 * qcow2 refcount rebuild: after a crash with lazy refcounts (dirty bit set)
 * the refcounts are recomputed from the active and snapshot L1/L2 tables
 * and written as a new refcount table and blocks at the end of the file;
 * the header is switched over and the dirty bit cleared, each step flushed.
 * Finding and reporting damage is check.c's job, not this file's.
 */
#include "qcow2.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct counts {
    uint32_t *c;
    uint64_t n;
};

static int add(struct qcow2_state *s, struct counts *k, uint64_t off,
               uint64_t nclusters, struct bd_err *err)
{
    uint64_t first = off >> s->cluster_bits;

    for (uint64_t i = first; i < first + nclusters; i++) {
        if (i >= k->n)
            return bd_err_set(err, EIO,
                              "%s: metadata points beyond the end of the file "
                              "(cluster %" PRIu64 "); repair it with qemu-img "
                              "check -r all", s->node->name, i);
        if (k->c[i] == UINT32_MAX || k->c[i] >= s->refcount_max)
            return bd_err_set(err, EIO, "%s: refcount overflow at cluster %"
                              PRIu64, s->node->name, i);
        k->c[i]++;
    }
    return 0;
}

static int add_l1(struct qcow2_state *s, struct counts *k, const uint64_t *l1,
                  uint32_t l1_entries, uint64_t l1_off, uint8_t *t,
                  struct bd_err *err)
{
    uint64_t cs = s->cluster_size;
    int ret;

    if (l1_entries) {
        ret = add(s, k, l1_off, ((uint64_t)l1_entries * 8 + cs - 1) / cs, err);
        if (ret < 0)
            return ret;
    }
    for (uint32_t i = 0; i < l1_entries; i++) {
        uint64_t l2 = l1[i] & QCOW2_L1_OFFSET_MASK;
        if (!l2)
            continue;
        if (l2 % cs)
            return bd_err_set(err, EIO, "%s: misaligned L2 table offset",
                              s->node->name);
        ret = add(s, k, l2, 1, err);
        if (ret < 0)
            return ret;
        ret = bd_pread(s->node->file, t, cs, l2);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: cannot read an L2 table: %s",
                              s->node->name, strerror(-ret));
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = qcow2_l2_get(s, t, j);
            if (e & QCOW2_OFLAG_COMPRESSED) {
                struct qcow2_extent x;
                qcow2_l2_decode(s, e, 0, 0, &x);
                uint64_t a = x.host & ~(cs - 1);
                uint64_t b = (x.host + x.csize - 1) & ~(cs - 1);
                ret = add(s, k, a, (b - a) / cs + 1, err);
            } else {
                uint64_t host = e & QCOW2_L2_OFFSET_MASK;
                ret = (host && !s->data_node) ? add(s, k, host, 1, err) : 0;
            }
            if (ret < 0)
                return ret;
        }
        bd_progress("rebuilding refcounts", "L2 tables", i + 1, l1_entries);
    }
    if (l1_entries)
        bd_progress("rebuilding refcounts", "L2 tables", l1_entries, l1_entries);
    return 0;
}

static int count_all(struct qcow2_state *s, struct counts *k, struct bd_err *err)
{
    uint64_t cs = s->cluster_size;
    uint8_t *t = malloc(cs);
    int ret;

    if (!t)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
    ret = add(s, k, 0, 1, err);
    if (ret == 0 && s->x.crypt_len)     /* the LUKS header's clusters */
        ret = add(s, k, s->x.crypt_off,
                  (s->x.crypt_len + cs - 1) / cs, err);
    if (ret == 0)
        ret = add_l1(s, k, s->l1, s->l1_entries, s->l1_off, t, err);
    uint64_t table = 0;
    for (uint32_t i = 0; i < s->nb_snapshots && ret == 0; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        uint64_t *l1 = calloc(sn->l1_entries ? sn->l1_entries : 1, 8);
        uint8_t *raw = malloc((uint64_t)sn->l1_entries * 8 + 1);
        table += sn->entry_len;
        if (!l1 || !raw) {
            ret = bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
        } else {
            ret = bd_pread(s->node->file, raw, (uint64_t)sn->l1_entries * 8,
                           sn->l1_off);
            if (ret < 0)
                ret = bd_err_set(err, -ret, "%s: cannot read a snapshot L1 "
                                 "table", s->node->name);
            for (uint32_t j = 0; ret == 0 && j < sn->l1_entries; j++)
                l1[j] = bd_be64(raw + j * 8);
            if (ret == 0)
                ret = add_l1(s, k, l1, sn->l1_entries, sn->l1_off, t, err);
        }
        free(l1);
        free(raw);
    }
    if (ret == 0 && table)
        ret = add(s, k, s->h.snapshots_off, (table + cs - 1) / cs, err);
    free(t);
    return ret;
}

int qcow2_rebuild_refcounts(struct qcow2_state *s, struct bd_err *err)
{
    uint64_t cs = s->cluster_size;
    struct counts k = { 0 };
    uint8_t *buf = NULL, *table = NULL;
    int ret;

    /* consistent bitmaps (autoclear bit set) own clusters too; a damaged
     * directory we cannot count is left to qemu-img check */
    uint64_t *bmv = NULL;
    size_t bmn = 0;
    if (s->x.has_bitmaps && (s->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS) &&
        qcow2_bitmap_clusters(s, &bmv, &bmn) < 0)
        return bd_err_set(err, ENOTSUP,
                          "%s: cannot rebuild the refcounts of an image with "
                          "damaged persistent bitmaps; repair it with qemu-img "
                          "check -r all",
                          s->node->name);
    bool was_dirty = s->h.incompat & QCOW2_INCOMPAT_DIRTY;
    uint64_t p = (s->file_size + cs - 1) / cs;
    uint64_t nk = 1, nm = 1;
    for (int it = 0; it < 64; it++) {
        uint64_t m2 = (p + nk + nm + s->rb_entries - 1) / s->rb_entries;
        uint64_t k2 = (m2 * 8 + cs - 1) / cs;
        if (m2 == nm && k2 == nk)
            break;
        nm = m2;
        nk = k2;
    }
    if (nk * cs > QCOW2_MAX_REFTABLE_BYTES) {
        free(bmv);
        return bd_err_set(err, EFBIG, "%s: image too large to rebuild its "
                          "refcounts", s->node->name);
    }
    k.n = p + nk + nm;
    k.c = calloc(k.n, sizeof(*k.c));
    buf = malloc(cs);
    table = calloc(nk, cs);
    if (!k.c || !buf || !table) {
        ret = bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
        goto out_free;
    }
    ret = count_all(s, &k, err);
    for (size_t i = 0; ret == 0 && i < bmn; i++)
        ret = add(s, &k, bmv[i], 1, err);
    if (ret < 0)
        goto out_free;
    for (uint64_t i = p; i < k.n; i++)
        k.c[i] = 1;
    for (uint64_t b = 0; b < nm; b++) {
        uint64_t boff = (p + nk + b) * cs;
        memset(buf, 0, cs);
        for (uint64_t j = 0; j < s->rb_entries; j++) {
            uint64_t c = b * s->rb_entries + j;
            if (c >= k.n)
                break;
            if (k.c[c])
                qcow2_rb_write(s, buf, j, k.c[c]);
        }
        bd_put_be64(table + b * 8, boff);
        ret = bd_pwrite(s->node->file, buf, cs, boff, 0);
        if (ret < 0)
            goto out_io;
    }
    ret = bd_pwrite(s->node->file, table, nk * cs, p * cs, 0);
    if (ret < 0)
        goto out_io;
    ret = bd_flush(s->node->file);
    if (ret < 0)
        goto out_io;
    uint8_t hdr[12];
    bd_put_be64(hdr, p * cs);
    bd_put_be32(hdr + 8, (uint32_t)nk);
    ret = bd_pwrite(s->node->file, hdr, sizeof(hdr), 48, 0);
    if (ret < 0)
        goto out_io;
    ret = bd_flush(s->node->file);
    if (ret < 0)
        goto out_io;
    ret = qcow2_header_write_u64(s, 72, s->h.incompat & ~QCOW2_INCOMPAT_DIRTY);
    if (ret < 0)
        goto out_io;
    s->h.incompat &= ~QCOW2_INCOMPAT_DIRTY;

    uint64_t entries = nk * cs / 8;
    uint64_t *rt = calloc(entries, sizeof(uint64_t));
    if (!rt) {
        ret = bd_err_set(err, ENOMEM, "%s: out of memory", s->node->name);
        goto out_free;
    }
    for (uint64_t i = 0; i < entries; i++)
        rt[i] = bd_be64(table + i * 8);
    free(s->reftable);
    s->reftable = rt;
    s->reftable_entries = entries;
    s->reftable_off = p * cs;
    s->h.reftable_off = p * cs;
    s->h.reftable_clusters = (uint32_t)nk;
    s->file_size = k.n * cs;
    s->free_hint = 0;
    if (was_dirty)
        log_info("%s: image was not closed cleanly; refcounts rebuilt",
                 s->node->name);
    ret = 0;
    goto out_free;

out_io:
    ret = bd_err_set(err, -ret, "%s: cannot write rebuilt refcounts: %s",
                     s->node->name, strerror(-ret));
out_free:
    free(bmv);
    free(k.c);
    free(buf);
    free(table);
    return ret;
}
