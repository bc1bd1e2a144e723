/*
 * vmdk resize on growable mounts. The last extent grows: a hosted sparse
 * extent gets directory entries (sparse-resize.c), a FLAT extent's file is
 * extended, a ZERO extent just gets longer; the descriptor's extent line
 * and ddb.geometry.cylinders follow. The format has no way to shrink (QEMU
 * cannot either), streamOptimized extents are written once, seSparse ones
 * are read-only, and twoGbMaxExtent extents stay under 2 GiB (adding extent
 * files is not done): all refused with a message naming the image.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_GB_EXTENT   (2ull << 30)

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool is_extent_line(const char *s, const char *lend)
{
    static const char *const acc[] = { "RW", "RDONLY", "NOACCESS" };

    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(acc[i]);

        if ((size_t)(lend - s) > l && !strncmp(s, acc[i], l) && is_ws(s[l]))
            return true;
    }
    return false;
}

/* Text with [from, to) of text replaced by rep; NULL when out of memory. */
static char *splice(const char *text, size_t len, size_t from, size_t to,
                    const char *rep, size_t *out_len)
{
    size_t rl = strlen(rep), nl = len - (to - from) + rl;
    char *out = malloc(nl + 1);

    if (!out)
        return NULL;
    memcpy(out, text, from);
    memcpy(out + from, rep, rl);
    memcpy(out + from + rl, text + to, len - to);
    out[nl] = '\0';
    *out_len = nl;
    return out;
}

/*
 * The descriptor with the sector count of its extent line number idx (from
 * 0) set to sectors and the cylinders for size bytes; NULL when a line is
 * missing or out of memory. Other bytes are kept as they are.
 */
static char *desc_resized(const char *text, size_t len, size_t idx,
                          uint64_t sectors, uint64_t size, size_t *out_len)
{
    const char *p = text, *end = text + len;
    size_t seen = 0, from = 0, to = 0, cfrom = 0, cto = 0;
    unsigned heads = 16, secs = 63;
    char val[32];

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *lend = eol ? eol : end, *s = p, *q;

        while (s < lend && is_ws(*s))
            s++;
        if (is_extent_line(s, lend) && seen++ == idx) {
            for (q = s; q < lend && !is_ws(*q); q++)
                ;
            while (q < lend && is_ws(*q))
                q++;
            from = (size_t)(q - text);
            while (q < lend && *q >= '0' && *q <= '9')
                q++;
            to = (size_t)(q - text);
        } else if (!strncmp(s, "ddb.geometry.", 13) && (q = memchr(s, '"', (size_t)(lend - s)))) {
            const char *q2 = memchr(q + 1, '"', (size_t)(lend - q - 1));

            if (!q2)
                ;
            else if (!strncmp(s + 13, "cylinders", 9))
                cfrom = (size_t)(q + 1 - text), cto = (size_t)(q2 - text);
            else if (!strncmp(s + 13, "heads", 5))
                heads = (unsigned)strtoul(q + 1, NULL, 10);
            else if (!strncmp(s + 13, "sectors", 7))
                secs = (unsigned)strtoul(q + 1, NULL, 10);
        }
        p = eol ? eol + 1 : end;
    }
    if (to <= from)
        return NULL;
    char *a, *b;
    size_t alen;

    /* the later span first, so the earlier offsets stay right */
    if (cto > cfrom && heads && secs && heads <= 255 && secs <= 63) {
        uint64_t cyl = size / ((uint64_t)heads * secs * BD_SECTOR);

        if (cyl > 16383 && heads == 16)
            cyl = 16383;
        snprintf(val, sizeof(val), "%" PRIu64, cyl);
        if (cfrom > from) {
            a = splice(text, len, cfrom, cto, val, &alen);
            snprintf(val, sizeof(val), "%" PRIu64, sectors);
            b = a ? splice(a, alen, from, to, val, out_len) : NULL;
        } else {
            char sv[32];

            snprintf(sv, sizeof(sv), "%" PRIu64, sectors);
            a = splice(text, len, from, to, sv, &alen);
            b = a ? splice(a, alen, cfrom, cto, val, out_len) : NULL;
        }
        free(a);
        return b;
    }
    snprintf(val, sizeof(val), "%" PRIu64, sectors);
    return splice(text, len, from, to, val, out_len);
}

static int refuse_kind(struct bd_node *n, struct vmdk_state *st, struct bd_err *err)
{
    const char *ct = st->desc.create_type ? st->desc.create_type : "";

    for (size_t i = 0; i < st->n_ext; i++) {
        struct vmdk_extent *e = &st->ext[i];

        if (e->kind == VMDK_EXT_SESPARSE)
            return bd_err_set(err, ENOTSUP, "%s: seSparse vmdk images cannot be "
                              "resized (they are read-only)", n->name);
        if (e->kind == VMDK_EXT_SPARSE &&
            (e->sp->compressed || e->sp->gd_at_end || e->sp->cowd))
            return bd_err_set(err, ENOTSUP, "%s: %s vmdk extents cannot be "
                              "resized; convert the image to monolithicSparse "
                              "first", n->name,
                              e->sp->cowd ? "COWD (vmfsSparse)" : "streamOptimized");
    }
    if (!strcmp(ct, "streamOptimized"))
        return bd_err_set(err, ENOTSUP, "%s: streamOptimized vmdk images cannot "
                          "be resized; convert the image to monolithicSparse "
                          "first", n->name);
    if (!st->n_ext || st->ext[st->n_ext - 1].access != VMDK_ACCESS_RW)
        return bd_err_set(err, ENOTSUP, "%s: the last vmdk extent is not "
                          "read-write, it cannot grow", n->name);
    return 0;
}

static int grow_last(struct vmdk_state *st, struct vmdk_extent *e, uint64_t len)
{
    struct bd_err e2 = { 0 };
    int64_t fsize;

    switch (e->kind) {
    case VMDK_EXT_SPARSE:
        return vmdk_sparse_grow(e->sp, len);
    case VMDK_EXT_FLAT:
        fsize = bd_size(e->file);
        if (fsize < 0)
            return (int)fsize;
        if ((uint64_t)fsize < e->flat_off + len)
            return bd_truncate(e->file, e->flat_off + len, BD_PREALLOC_OFF, &e2);
        return 0;
    case VMDK_EXT_ZERO:
        return 0;
    default:
        (void)st;
        return -ENOTSUP;
    }
}

int vmdk_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                  struct bd_err *err)
{
    struct vmdk_state *st = n->state;
    struct vmdk_extent *e;
    uint64_t len;
    char *t = NULL;
    size_t nlen = 0;
    int ret;

    (void)prealloc;
    pthread_rwlock_wrlock(&st->lock);
    if (size == st->size) {
        ret = 0;
        goto out;
    }
    if (size < st->size) {
        ret = bd_err_set(err, ENOTSUP, "%s: cannot shrink from %" PRIu64 " to %"
                         PRIu64 " bytes: vmdk images cannot shrink (they only "
                         "grow)", n->name, st->size, size);
        goto out;
    }
    if (size % BD_SECTOR) {
        ret = bd_err_set(err, EINVAL, "%s: a vmdk's size is a whole number of "
                         "512-byte sectors, %" PRIu64 " is not", n->name, size);
        goto out;
    }
    if ((ret = refuse_kind(n, st, err)) < 0)
        goto out;
    e = &st->ext[st->n_ext - 1];
    len = e->len + (size - st->size);
    if (st->desc.create_type && !strncmp(st->desc.create_type, "twoGbMaxExtent", 14) &&
        len > TWO_GB_EXTENT) {
        ret = bd_err_set(err, ENOTSUP, "%s: cannot grow to %" PRIu64 " bytes: the "
                         "last extent of a %s vmdk would pass 2 GiB (adding extent "
                         "files is not supported)", n->name, size,
                         st->desc.create_type);
        goto out;
    }
    if (st->desc_text && st->desc.n_ext == st->n_ext) {
        t = desc_resized(st->desc_text, st->desc_len, st->n_ext - 1,
                         len / BD_SECTOR, size, &nlen);
        if (!t) {
            ret = bd_err_set(err, EINVAL, "%s: cannot update the vmdk descriptor "
                             "(no extent line found, or out of memory)", n->name);
            goto out;
        }
        if (st->embedded && nlen > st->desc_area) {
            free(t);
            ret = bd_err_set(err, ENOSPC, "%s: the resized vmdk descriptor does not "
                             "fit its area in the file", n->name);
            goto out;
        }
    }
    if (!st->cid_done && (ret = vmdk_update_cid(n, st)) < 0)
        goto fail;
    if (t) {
        /* the CID changed: apply the new sizes to the current text */
        free(t);
        t = desc_resized(st->desc_text, st->desc_len, st->n_ext - 1,
                         len / BD_SECTOR, size, &nlen);
        if (!t) {
            ret = -ENOMEM;
            goto fail;
        }
    }
    ret = grow_last(st, e, len);
    if (ret == 0 && t) {
        ret = vmdk_desc_store(n, st, t, nlen);
        t = NULL;
    }
    if (ret == 0)
        ret = bd_flush(n->file);
    if (ret < 0)
        goto fail;
    e->len = len;
    st->size = size;
    if (st->desc.n_ext == st->n_ext)
        st->desc.ext[st->n_ext - 1].sectors = len / BD_SECTOR;
    ret = 0;
    goto out;
fail:
    free(t);
    ret = bd_err_set(err, -ret, "%s: cannot grow to %" PRIu64 " bytes: %s",
                     n->name, size, strerror(-ret));
out:
    pthread_rwlock_unlock(&st->lock);
    return ret;
}
