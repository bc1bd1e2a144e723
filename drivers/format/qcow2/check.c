/*
 * qcow2 check (imgfuse check, bd_driver.check): counts the references to
 * every host cluster from all metadata, compares them with the stored
 * refcounts and repairs what it is asked to. A refcount structure beyond
 * repair is rebuilt by rebuild.c; nothing on the I/O path calls this file.
 */
#include "qcow2.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

/*
 * The check computes, from every piece of metadata, how many references
 * each host cluster of the file has, and compares that with the stored
 * refcounts. Pointers that lead outside the file or are misaligned are
 * corruptions; with BD_CHECK_FIX_ERRORS they are dropped (written as
 * unallocated) before any refcount changes. Refcounts are then corrected
 * in place, block by block, or by a full rebuild when the refcount
 * structure itself is damaged.
 */
struct ck {
    struct qcow2_state *s;
    unsigned fix;
    uint64_t n;                   /* clusters in the file */
    uint32_t *ref;                /* computed, saturating at UINT32_MAX */
    uint8_t *meta;                /* CK_FIXED, CK_L2: what a cluster holds */
    uint8_t *t;                   /* one cluster of scratch space */
    uint64_t corrupt, corrupt_fixed, leaks, leaks_fixed;
    bool need_rebuild;            /* a repair only a rebuild can do */
    bool wrote;
};

#define CK_FIXED 1                /* header, L1, refcount, snapshot tables */
#define CK_L2    2                /* an L2 table of the active layer */
#define CK_SEEN  4                /* pointed at by the L1 table being walked */

/* Note what the clusters of [off, off+bytes) hold (ranges outside the
 * file are ignored here and counted as corruptions by ck_add). */
static void ck_mark(struct ck *k, uint64_t off, uint64_t bytes, uint8_t what)
{
    uint32_t cb = k->s->cluster_bits;

    if (!bytes || !ovf_range_ok(off, bytes, k->n << cb))
        return;
    for (uint64_t c = off >> cb; c <= (off + bytes - 1) >> cb; c++)
        k->meta[c] |= what;
}

/* Does [off, off+bytes) touch a cluster holding metadata of kind mask? */
static bool ck_is_meta(const struct ck *k, uint64_t off, uint64_t bytes,
                       uint8_t mask)
{
    uint32_t cb = k->s->cluster_bits;

    for (uint64_t c = off >> cb; c <= (off + bytes - 1) >> cb; c++)
        if (k->meta[c] & mask)
            return true;
    return false;
}

/* Count one reference to every cluster of [off, off+bytes); a range
 * outside the file is a corruption. */
static void ck_add(struct ck *k, uint64_t off, uint64_t bytes)
{
    uint32_t cb = k->s->cluster_bits;

    if (!bytes)
        return;
    if (!ovf_range_ok(off, bytes, k->n << cb)) {
        k->corrupt++;
        return;
    }
    for (uint64_t c = off >> cb; c <= (off + bytes - 1) >> cb; c++)
        if (k->ref[c] != UINT32_MAX)
            k->ref[c]++;
}

/* A host cluster pointer: aligned and inside the file. */
static bool ck_ptr_ok(const struct ck *k, uint64_t off)
{
    return off % k->s->cluster_size == 0 &&
           off < (k->n << k->s->cluster_bits);
}

static int ck_write(struct ck *k, const void *buf, uint64_t len, uint64_t off)
{
    int ret = bd_pwrite(k->s->node->file, buf, len, off, 0);
    k->wrote = true;
    return ret;
}

/* Walk one L2 table at l2 (already counted); fix bad entries when asked. */
static int ck_l2(struct ck *k, uint64_t l2)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    bool dirty = false;
    int ret = bd_pread(s->node->file, k->t, cs, l2);

    if (ret < 0)
        return ret;
    for (uint64_t j = 0; j < s->l2_entries; j++) {
        uint64_t e = qcow2_l2_get(s, k->t, j);
        bool bad = false;
        if (e & QCOW2_OFLAG_COMPRESSED) {
            struct qcow2_extent x;
            if (e & QCOW2_OFLAG_COPIED) {
                /* never set for compressed clusters */
                k->corrupt++;
                if (k->fix & BD_CHECK_FIX_ERRORS) {
                    e &= ~QCOW2_OFLAG_COPIED;
                    qcow2_l2_set(s, k->t, j, e,
                                 qcow2_l2_get_bitmap(s, k->t, j));
                    dirty = true;
                    k->corrupt_fixed++;
                }
            }
            if (qcow2_l2_decode(s, e, 0, 0, &x) < 0 || !x.csize ||
                !ovf_range_ok(x.host, x.csize, k->n << s->cluster_bits) ||
                ck_is_meta(k, x.host, x.csize, CK_FIXED | CK_L2)) {
                bad = true;
            } else {
                uint64_t a = x.host & ~(cs - 1);
                ck_add(k, a, x.host + x.csize - a);
            }
        } else {
            if (e & QCOW2_L2_RESERVED_MASK) {
                k->corrupt++;
                if (k->fix & BD_CHECK_FIX_ERRORS) {
                    e &= ~QCOW2_L2_RESERVED_MASK;
                    qcow2_l2_set(s, k->t, j, e,
                                 qcow2_l2_get_bitmap(s, k->t, j));
                    dirty = true;
                    k->corrupt_fixed++;
                }
            }
            uint64_t host = e & QCOW2_L2_OFFSET_MASK;
            if (!host || s->data_node)
                continue;
            if (!ck_ptr_ok(k, host) ||
                ck_is_meta(k, host, cs, CK_FIXED | CK_L2))
                bad = true;
            else
                ck_add(k, host, cs);
        }
        if (!bad)
            continue;
        k->corrupt++;
        if (k->fix & BD_CHECK_FIX_ERRORS) {
            qcow2_l2_set(s, k->t, j, 0, 0);
            dirty = true;
            k->corrupt_fixed++;
        }
    }
    if (dirty) {
        qcow2_cache_discard(&s->l2c, l2);
        ret = ck_write(k, k->t, cs, l2);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* One L1 table (active when active, else a snapshot's, l1 in native order);
 * fixes update l1[] and the table on disk at l1_off. */
static int ck_l1(struct ck *k, uint64_t *l1, uint32_t entries, uint64_t l1_off)
{
    int ret = 0;

    ck_add(k, l1_off, (uint64_t)entries * 8);
    for (uint32_t i = 0; i < entries; i++) {
        if (l1[i] & QCOW2_L1_RESERVED_MASK) {
            k->corrupt++;
            if (k->fix & BD_CHECK_FIX_ERRORS) {
                uint8_t b[8];
                l1[i] &= ~QCOW2_L1_RESERVED_MASK;
                bd_put_be64(b, l1[i]);
                ret = ck_write(k, b, 8, l1_off + (uint64_t)i * 8);
                if (ret < 0)
                    return ret;
                k->corrupt_fixed++;
            }
        }
        uint64_t l2 = l1[i] & QCOW2_L1_OFFSET_MASK;
        if (!l2)
            continue;
        /* one L1 table names an L2 table once: a repeat would be walked
         * again and again (a hostile image could make that endless) */
        if (!ck_ptr_ok(k, l2) ||
            ck_is_meta(k, l2, k->s->cluster_size, CK_FIXED | CK_SEEN)) {
            k->corrupt++;
            if (k->fix & BD_CHECK_FIX_ERRORS) {
                uint8_t z[8] = { 0 };
                l1[i] = 0;
                ret = ck_write(k, z, 8, l1_off + (uint64_t)i * 8);
                if (ret < 0)
                    return ret;
                k->corrupt_fixed++;
            }
            continue;
        }
        k->meta[l2 >> k->s->cluster_bits] |= CK_SEEN;
        ck_add(k, l2, k->s->cluster_size);
        ret = ck_l2(k, l2);
        if (ret < 0)
            break;
        bd_progress("checking", "L2 tables", i + 1, entries);
    }
    bd_progress("checking", "L2 tables", entries, entries);
    for (uint32_t i = 0; i < entries; i++) {
        uint64_t l2 = l1[i] & QCOW2_L1_OFFSET_MASK;
        if (l2 && ck_ptr_ok(k, l2))
            k->meta[l2 >> k->s->cluster_bits] &= (uint8_t)~CK_SEEN;
    }
    return ret;
}

/* Persistent bitmaps: directory, bitmap tables and their data clusters. */
static void ck_bitmaps(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t dsize = s->x.bitmap_dir_size, doff = s->x.bitmap_dir_off;

    if (!s->x.has_bitmaps || !dsize)
        return;
    if (dsize > (64u << 20) || s->x.nb_bitmaps > 65535 ||
        !ck_ptr_ok(k, doff) ||
        !ovf_range_ok(doff, dsize, k->n << s->cluster_bits)) {
        k->corrupt++;
        return;
    }
    ck_add(k, doff, dsize);
    uint8_t *dir = malloc(dsize);
    if (!dir || bd_pread(s->node->file, dir, dsize, doff) < 0) {
        free(dir);
        k->corrupt++;
        return;
    }
    /* tables may not add up to more than the file: no endless rereading */
    uint64_t budget = k->n << s->cluster_bits;
    for (uint64_t pos = 0, i = 0; i < s->x.nb_bitmaps; i++) {
        if (dsize - pos < 24) {
            k->corrupt++;
            break;
        }
        const uint8_t *e = dir + pos;
        uint64_t toff = bd_be64(e);
        uint64_t tsize = bd_be32(e + 8);
        uint64_t len = 24 + (uint64_t)bd_be32(e + 20) + bd_be16(e + 18);
        if (tsize > (1u << 24) || len > dsize - pos) {
            k->corrupt++;
            break;
        }
        pos += bd_align_up(len, 8);
        if (pos > dsize)
            pos = dsize;
        if (!tsize)
            continue;
        if (!ck_ptr_ok(k, toff) ||
            !ovf_range_ok(toff, tsize * 8, k->n << s->cluster_bits) ||
            tsize * 8 > budget) {
            k->corrupt++;
            continue;
        }
        budget -= tsize * 8;
        ck_add(k, toff, tsize * 8);
        uint8_t *tab = malloc(tsize * 8);
        if (!tab || bd_pread(s->node->file, tab, tsize * 8, toff) < 0) {
            free(tab);
            k->corrupt++;
            continue;
        }
        for (uint64_t j = 0; j < tsize; j++) {
            uint64_t d = bd_be64(tab + j * 8) & QCOW2_L1_OFFSET_MASK;
            if (!d)
                continue;
            if (ck_ptr_ok(k, d))
                ck_add(k, d, s->cluster_size);
            else
                k->corrupt++;
        }
        free(tab);
    }
    free(dir);
}

static int ck_count(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    int ret;

    /* where metadata lives, so that data pointers into it are caught */
    uint64_t table = 0;
    ck_mark(k, 0, cs, CK_FIXED);
    ck_mark(k, s->x.crypt_off, s->x.crypt_len, CK_FIXED);   /* LUKS header */
    ck_mark(k, s->l1_off, (uint64_t)s->l1_entries * 8, CK_FIXED);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        ck_mark(k, s->snapshots[i].l1_off,
                (uint64_t)s->snapshots[i].l1_entries * 8, CK_FIXED);
        table += s->snapshots[i].entry_len;
    }
    if (s->nb_snapshots)
        ck_mark(k, s->h.snapshots_off, table, CK_FIXED);
    ck_mark(k, s->reftable_off, s->reftable_entries * 8, CK_FIXED);
    for (uint64_t bi = 0; bi < s->reftable_entries; bi++) {
        uint64_t e = s->reftable[bi];
        if (e && !(e & 0x1ff) && ck_ptr_ok(k, e))
            ck_mark(k, e, cs, CK_FIXED);
    }
    for (uint32_t i = 0; i < s->l1_entries; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1_OFFSET_MASK;
        if (l2 && ck_ptr_ok(k, l2) && !ck_is_meta(k, l2, cs, CK_FIXED))
            ck_mark(k, l2, cs, CK_L2);
    }

    ck_add(k, 0, cs);
    if (s->x.crypt_len)
        ck_add(k, s->x.crypt_off, s->x.crypt_len);
    ret = ck_l1(k, s->l1, s->l1_entries, s->l1_off);
    if (ret < 0)
        return ret;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        uint64_t bytes = (uint64_t)sn->l1_entries * 8;
        if (!bytes)
            continue;
        if (!ck_ptr_ok(k, sn->l1_off) ||
            !ovf_range_ok(sn->l1_off, bytes, k->n << s->cluster_bits) ||
            bytes > QCOW2_MAX_L1_BYTES) {
            k->corrupt++;
            continue;
        }
        uint64_t *l1 = calloc(sn->l1_entries, 8);
        uint8_t *raw = malloc(bytes);
        ret = l1 && raw ? 0 : -ENOMEM;
        if (ret == 0)
            ret = bd_pread(s->node->file, raw, bytes, sn->l1_off);
        for (uint32_t j = 0; ret == 0 && j < sn->l1_entries; j++)
            l1[j] = bd_be64(raw + (uint64_t)j * 8);
        if (ret == 0)
            ret = ck_l1(k, l1, sn->l1_entries, sn->l1_off);
        free(l1);
        free(raw);
        if (ret < 0)
            return ret;
    }
    if (s->nb_snapshots)
        ck_add(k, s->h.snapshots_off, table);
    ck_add(k, s->reftable_off, s->reftable_entries * 8);
    for (uint64_t bi = 0; bi < s->reftable_entries; bi++) {
        uint64_t e = s->reftable[bi];
        uint64_t off = e & QCOW2_REFTABLE_OFFSET_MASK;
        if (!e)
            continue;
        if ((e & 0x1ff) || !ck_ptr_ok(k, off)) {
            k->corrupt++;
            k->need_rebuild = true;
            continue;
        }
        ck_add(k, off, cs);
    }
    ck_bitmaps(k);
    return 0;
}

/* Compare computed and stored refcounts, correcting them in place when
 * asked and possible. */
static int ck_compare(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    bool fix_leaks = k->fix & BD_CHECK_FIX_LEAKS;
    bool fix_err = k->fix & BD_CHECK_FIX_ERRORS;
    int ret;

    for (uint64_t bi = 0; (bi << s->rb_bits) < k->n; bi++) {
        uint64_t first = bi << s->rb_bits;
        uint64_t e = bi < s->reftable_entries ? s->reftable[bi] : 0;
        uint64_t off = e & QCOW2_REFTABLE_OFFSET_MASK;
        bool have = off && !(e & 0x1ff) && ck_ptr_ok(k, off);
        bool dirty = false;

        if (e && !have) {
            /* a damaged block: every used cluster it covers is unaccounted */
            for (uint64_t j = 0; j < s->rb_entries && first + j < k->n; j++)
                if (k->ref[first + j])
                    k->corrupt++;
            continue;
        }
        if (have) {
            ret = bd_pread(s->node->file, k->t, cs, off);
            if (ret < 0)
                return ret;
        }
        for (uint64_t j = 0; j < s->rb_entries && first + j < k->n; j++) {
            uint64_t c = first + j;
            uint64_t want = k->ref[c];
            uint64_t got = 0;
            if (have)
                got = qcow2_rb_read(s, k->t, j);
            if (got == want)
                continue;
            if (want > s->refcount_max) {
                k->corrupt++;     /* more references than a refcount holds */
                continue;
            }
            if (got > want) {
                k->leaks++;
                if (!(fix_leaks || fix_err))
                    continue;
                qcow2_rb_write(s, k->t, j, want);
                dirty = true;
                k->leaks_fixed++;
            } else {
                k->corrupt++;
                if (!fix_err)
                    continue;
                if (!have) {
                    k->need_rebuild = true;
                    continue;
                }
                qcow2_rb_write(s, k->t, j, want);
                dirty = true;
                k->corrupt_fixed++;
            }
        }
        if (dirty) {
            qcow2_cache_discard(&s->rbc, off);
            ret = ck_write(k, k->t, cs, off);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

/* The stored refcount of cluster c through the cache; false when its
 * refcount block is damaged (counted as such already). */
static bool ck_rc(struct ck *k, uint64_t c, uint64_t *rc)
{
    struct qcow2_state *s = k->s;
    uint64_t bi = c >> s->rb_bits;

    *rc = 0;
    if (bi < s->reftable_entries) {
        uint64_t e = s->reftable[bi];
        uint64_t off = e & QCOW2_REFTABLE_OFFSET_MASK;
        if (e && ((e & 0x1ff) || off % s->cluster_size ||
                  off >= s->file_size))
            return false;
    }
    return qcow2_refcount_get(s, c, rc) == 0;
}

/* OFLAG_COPIED of the active tables must say "refcount is exactly 1",
 * judged against the stored refcounts once the repairs asked for are done
 * (as qemu-img check does). */
static int ck_copied(struct ck *k)
{
    struct qcow2_state *s = k->s;
    uint64_t cs = s->cluster_size;
    bool fix = k->fix & BD_CHECK_FIX_ERRORS;
    int ret;

    for (uint32_t i = 0; i < s->l1_entries; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_L1_OFFSET_MASK;
        uint64_t rc;
        if (!l2 || !ck_ptr_ok(k, l2))
            continue;
        uint64_t c = l2 >> s->cluster_bits;
        if (ck_rc(k, c, &rc) &&
            (rc == 1) != !!(s->l1[i] & QCOW2_OFLAG_COPIED)) {
            k->corrupt++;
            if (fix) {
                uint8_t b[8];
                s->l1[i] ^= QCOW2_OFLAG_COPIED;
                bd_put_be64(b, s->l1[i]);
                ret = ck_write(k, b, 8, s->l1_off + (uint64_t)i * 8);
                if (ret < 0)
                    return ret;
                k->corrupt_fixed++;
            }
        }
        ret = bd_pread(s->node->file, k->t, cs, l2);
        if (ret < 0)
            return ret;
        bool dirty = false;
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t e = qcow2_l2_get(s, k->t, j);
            uint64_t host = e & QCOW2_L2_OFFSET_MASK;
            if ((e & QCOW2_OFLAG_COMPRESSED) || !host || s->data_node ||
                !ck_ptr_ok(k, host))
                continue;
            c = host >> s->cluster_bits;
            if (!ck_rc(k, c, &rc) ||
                (rc == 1) == !!(e & QCOW2_OFLAG_COPIED))
                continue;
            k->corrupt++;
            if (fix) {
                qcow2_l2_set(s, k->t, j, e ^ QCOW2_OFLAG_COPIED,
                             qcow2_l2_get_bitmap(s, k->t, j));
                dirty = true;
                k->corrupt_fixed++;
            }
        }
        if (dirty) {
            qcow2_cache_discard(&s->l2c, l2);
            ret = ck_write(k, k->t, cs, l2);
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

int qcow2_check(struct bd_node *n, unsigned fix, struct bd_check *res,
                struct bd_err *err)
{
    struct qcow2_state *s = n->state;
    uint64_t cs = s->cluster_size;
    struct ck k = { .s = s, .fix = s->read_only ? 0 : fix };
    int ret;

    memset(res, 0, sizeof(*res));
    pthread_mutex_lock(&s->meta_lock);
    if (!s->read_only) {
        ret = qcow2_meta_flush(s, true);
        if (ret < 0) {
            ret = bd_err_set(err, -ret, "%s: cannot write metadata: %s",
                             n->name, strerror(-ret));
            goto out;
        }
    }
    k.n = (s->file_size + cs - 1) / cs;
    k.ref = calloc(k.n ? k.n : 1, sizeof(*k.ref));
    k.meta = calloc(k.n ? k.n : 1, 1);
    k.t = malloc(cs);
    if (!k.ref || !k.meta || !k.t) {
        ret = bd_err_set(err, ENOMEM, "%s: out of memory for the check",
                         n->name);
        goto out;
    }
    ret = ck_count(&k);
    if (ret == 0 && k.wrote)
        ret = bd_flush(n->file);  /* dropped pointers before refcounts */
    if (ret == 0)
        ret = ck_compare(&k);
    if (ret == 0 && k.need_rebuild && (k.fix & BD_CHECK_FIX_ERRORS)) {
        /* the refcount structure itself is damaged: start afresh */
        ret = bd_flush(n->file);
        if (ret == 0)
            ret = qcow2_rebuild_refcounts(s, err);
        if (ret < 0)
            goto out;
        k.corrupt_fixed = k.corrupt;
        k.leaks_fixed = k.leaks;
        k.wrote = true;
    } else if (ret == 0 && k.wrote) {
        ret = bd_flush(n->file);
    }
    if (ret == 0)
        ret = ck_copied(&k);
    if (ret == 0 && k.wrote)
        ret = bd_flush(n->file);
    if (ret < 0) {
        ret = bd_err_set(err, -ret, "%s: check failed: %s", n->name,
                         strerror(-ret));
        goto out;
    }
    if (k.wrote)
        s->free_hint = 0;
    res->corruptions = k.corrupt - k.corrupt_fixed;
    res->corruptions_fixed = k.corrupt_fixed;
    res->leaks = k.leaks - k.leaks_fixed;
    res->leaks_fixed = k.leaks_fixed;
out:
    pthread_mutex_unlock(&s->meta_lock);
    free(k.ref);
    free(k.meta);
    free(k.t);
    return ret;
}

