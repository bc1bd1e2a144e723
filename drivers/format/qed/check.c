/*
 * qed consistency check (spec "Consistency checking"): every cluster is
 * used at most once, every offset is aligned and inside the file, and
 * clusters nothing uses are leaks. QED has no free list, so only leaks at
 * the end of the file (where a crash leaves them) can be given back, by
 * cutting the file; leaks between used clusters stay counted.
 */
#include "qed.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

#define QED_CHECK_LOG_MAX 10

struct qed_walk {
    struct qed_state *s;
    unsigned fix;
    struct bd_check *res;
    uint8_t *used;              /* one bit per cluster of the file */
    uint64_t nclusters;
    uint64_t fend;              /* file size, rounded up to a cluster */
    unsigned logged;
};

static void qed_complain(struct qed_walk *w, const char *what, uint64_t off)
{
    if (w->logged++ < QED_CHECK_LOG_MAX)
        log_warn("%s: qed %s at offset %llu", w->s->n->name, what,
                 (unsigned long long)off);
}

/* Mark clusters [off, off + len) used; false when one already was. */
static bool qed_mark(struct qed_walk *w, uint64_t off, uint64_t len)
{
    uint64_t first = off >> w->s->cluster_bits;
    uint64_t last = (off + len - 1) >> w->s->cluster_bits;
    bool fresh = true;

    for (uint64_t c = first; c <= last && c < w->nclusters; c++) {
        if (w->used[c / 8] & (1u << (c % 8)))
            fresh = false;
        w->used[c / 8] |= (uint8_t)(1u << (c % 8));
    }
    return fresh;
}

static bool qed_off_ok(struct qed_walk *w, uint64_t off, uint64_t len)
{
    return off % w->s->h.cluster_size == 0 && off >= w->s->header_bytes &&
           ovf_range_ok(off, len, w->fend);
}

/* An invalid entry at file offset at: point it at nothing when fixing. */
static int qed_bad_entry(struct qed_walk *w, const char *what, uint64_t at,
                         uint64_t val)
{
    uint8_t zero[8] = { 0 };
    int r;

    qed_complain(w, what, val);
    if (!(w->fix & BD_CHECK_FIX_ERRORS)) {
        w->res->corruptions++;
        return 0;
    }
    r = bd_pwrite(w->s->n->file, zero, 8, at, 0);
    if (r < 0)
        return r;
    w->res->corruptions_fixed++;
    return 0;
}

static int qed_walk_l2(struct qed_walk *w, uint64_t l2_off, uint8_t *raw)
{
    struct qed_state *s = w->s;
    int r;

    r = bd_pread(s->n->file, raw, s->table_bytes, l2_off);
    if (r < 0)
        return r;
    for (uint32_t j = 0; j < s->table_entries; j++) {
        uint64_t v = bd_le64(raw + 8 * (size_t)j);

        if (v <= QED_ZERO)
            continue;
        if (!qed_off_ok(w, v, s->h.cluster_size)) {
            r = qed_bad_entry(w, "data cluster offset is invalid", l2_off + 8 * j, v);
            if (r < 0)
                return r;
        } else if (!qed_mark(w, v, s->h.cluster_size)) {
            qed_complain(w, "data cluster is used more than once", v);
            w->res->corruptions++;
        }
    }
    return 0;
}

static int qed_walk_l1(struct qed_walk *w)
{
    struct qed_state *s = w->s;
    uint8_t *raw = malloc(s->table_bytes);
    int r = 0;

    if (!raw)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->table_entries && r == 0; i++) {
        uint64_t l1e = s->l1[i];

        if (l1e == 0)
            continue;
        if (!qed_off_ok(w, l1e, s->table_bytes)) {
            r = qed_bad_entry(w, "L2 table offset is invalid",
                              s->h.l1_off + 8 * (uint64_t)i, l1e);
            if (r == 0 && (w->fix & BD_CHECK_FIX_ERRORS))
                s->l1[i] = 0;
            continue;
        }
        if (!qed_mark(w, l1e, s->table_bytes)) {
            qed_complain(w, "L2 table is used more than once", l1e);
            w->res->corruptions++;
            continue;
        }
        r = qed_walk_l2(w, l1e, raw);
        bd_progress("checking", "L2 tables", i + 1, s->table_entries);
    }
    bd_progress("checking", "L2 tables", s->table_entries, s->table_entries);
    free(raw);
    return r;
}

/* Count unused clusters; with fix_leaks, cut those at the end of the file. */
static int qed_leaks(struct qed_walk *w, struct bd_err *err)
{
    struct qed_state *s = w->s;
    uint64_t leaks = 0, end = 0;
    int r;

    for (uint64_t c = 0; c < w->nclusters; c++) {
        if (w->used[c / 8] & (1u << (c % 8)))
            end = c + 1;
        else
            leaks++;
    }
    if (leaks)
        log_warn("%s: %llu qed clusters are not used (leaked)", s->n->name,
                 (unsigned long long)leaks);
    if ((w->fix & BD_CHECK_FIX_LEAKS) && end < w->nclusters) {
        uint64_t cut = w->nclusters - end;

        r = bd_truncate(s->n->file, end << s->cluster_bits, BD_PREALLOC_OFF, err);
        if (r < 0)
            return r;
        __atomic_store_n(&s->file_end, end << s->cluster_bits, __ATOMIC_RELEASE);
        w->res->leaks_fixed += cut;
        leaks -= cut;
    }
    w->res->leaks += leaks;
    return 0;
}

int qed_check_run(struct qed_state *s, unsigned fix, struct bd_check *res,
                  struct bd_err *err)
{
    struct qed_walk w = { .s = s, .fix = fix, .res = res };
    int64_t fsize = bd_size(s->n->file);
    int r;

    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          s->n->name, strerror((int)-fsize));
    w.fend = bd_align_up((uint64_t)fsize, s->h.cluster_size);
    w.nclusters = w.fend >> s->cluster_bits;
    w.used = calloc(w.nclusters / 8 + 1, 1);
    if (!w.used)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->n->name);
    qed_mark(&w, 0, s->header_bytes);
    qed_mark(&w, s->h.l1_off, s->table_bytes);
    r = qed_walk_l1(&w);
    if (r < 0) {
        bd_err_set(err, -r, "%s: cannot check the qed tables: %s", s->n->name,
                   strerror(-r));
        goto out_free;
    }
    /* repairs changed tables under the cache: read them again */
    if (res->corruptions_fixed)
        qed_tables_free_l2(s);
    r = qed_leaks(&w, err);
out_free:
    free(w.used);
    return r;
}

int qed_check(struct bd_node *n, unsigned fix, struct bd_check *res,
              struct bd_err *err)
{
    struct qed_state *s = n->state;
    int r;

    r = qed_check_run(s, fix, res, err);
    /* what the check at open already repaired is part of this run's work */
    res->leaks_fixed += s->open_fixed.leaks_fixed;
    res->corruptions_fixed += s->open_fixed.corruptions_fixed;
    memset(&s->open_fixed, 0, sizeof(s->open_fixed));
    return r;
}
