/*
 * vpc differencing disks: finding the parent from the parent locators
 * (W2ru, Wi2r, W2ku, Wi2k, MacX) and the header's parent name, opening it
 * through core (which resolves names and applies confinement) and checking
 * its unique id. Reading through the parent is read.c's job.
 */
#include "vpc.h"
#include "core/overflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A parent path stored as UTF-16 in the given byte order; NULL when it is
 * empty, holds an unpaired surrogate, or memory runs out. Caller frees. */
static char *vpc_utf16_name(const uint8_t *p, size_t len, unsigned order)
{
    char *s;

    if (bd_utf16_to_utf8_dup(p, len, order | BD_UTF16_STRICT, &s) < 0)
        return NULL;
    if (!*s) {
        free(s);
        return NULL;
    }
    return s;
}

/* Windows path to a POSIX one: backslashes become slashes. */
static void vpc_unixify(char *p)
{
    for (; *p; p++) {
        if (*p == '\\')
            *p = '/';
    }
}

/* "file://host/path" or "file:///path" (MacX locators) to a path. */
static char *vpc_file_url_path(const char *url)
{
    const char *p;

    if (strncmp(url, "file://", 7) != 0)
        return strdup(url);
    p = url + 7;
    if (*p != '/') {
        p = strchr(p, '/');
        if (!p)
            return NULL;
    }
    return strdup(p);
}

/* The parent's path from one locator entry, or NULL if it has none usable. */
static char *vpc_locator_path(struct bd_node *n, const uint8_t *e, uint64_t fsize,
                              const char *code)
{
    uint32_t len = bd_be32(e + 8);
    uint64_t off = bd_be64(e + 16);
    uint8_t *raw;
    char *path = NULL;

    if (memcmp(e, code, 4) != 0 || len == 0 || len > VPC_MAX_LOCATOR ||
        !ovf_range_ok(off, len, fsize))
        return NULL;
    raw = malloc(len + 1);
    if (!raw)
        return NULL;
    if (bd_pread(n->file, raw, len, off) == 0) {
        if (memcmp(code, "MacX", 4) == 0 || memcmp(code, "Wi2", 3) == 0) {
            /* UTF-8 file URL (Mac OS X) or 8-bit path (deprecated Wi2r/Wi2k) */
            raw[len] = 0;
            if (strlen((char *)raw) > 0)
                path = code[0] == 'M' ? vpc_file_url_path((char *)raw)
                                      : strdup((char *)raw);
        } else {
            path = vpc_utf16_name(raw, len, BD_UTF16_LE);
        }
    }
    free(raw);
    if (path)
        vpc_unixify(path);
    return path;
}

/*
 * The spec ties a child to its parent by the parent's footer id. The parent
 * is a node of its own, so its id is read from its file, from the footer
 * copy its open trusted (the end, or the start when the end holds none).
 */
static void vpc_check_parent_id(struct bd_node *n)
{
    struct vpc_state *s = n->state;
    uint8_t raw[VPC_FOOTER_SIZE];
    struct vpc_footer ft;
    struct bd_node *pf;
    int64_t psize;
    bool at_start;

    if (!n->backing || n->backing->drv != &bd_drv_vpc)
        return;
    pf = n->backing->file;
    psize = bd_size(pf);
    if (psize < (int64_t)VPC_FOOTER_SIZE ||
        vpc_footer_read(pf, (uint64_t)psize, raw, &at_start) < 0 ||
        !vpc_is_footer(raw))
        return;
    vpc_footer_decode(raw, &ft);
    if (memcmp(ft.uuid, s->dyn.parent_uuid, 16) != 0)
        log_warn("%s: parent '%s' has a different unique id than the one recorded "
                 "in the child; it may have been changed since", n->name,
                 s->parent_name);
}

/* Locators hold file paths: never let one be taken for a URI, json: or
 * key=value options, which core would otherwise open as such. */
static int vpc_open_parent_path(struct bd_node *n, const char *path,
                                struct bd_err *err)
{
    char *name;
    int r;

    if (!strpbrk(path, ":=,"))
        return bd_open_backing(n, path, "vpc", err);
    if (asprintf(&name, "file:%s", path) < 0)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    r = bd_open_backing(n, name, "vpc", err);
    free(name);
    return r;
}

/*
 * A differencing disk's parent: relative locators (W2ru, the older Wi2r),
 * absolute ones (W2ku, Wi2k), a Mac file URL (MacX), then the parent's name
 * from the header, each opened through core, which resolves it and applies
 * confinement.
 */
int vpc_open_parent(struct bd_node *n, uint64_t fsize, struct bd_err *err)
{
    static const char *const codes[] = { "W2ru", "Wi2r", "W2ku", "Wi2k", "MacX",
                                         NULL };
    struct vpc_state *s = n->state;
    uint8_t raw[VPC_DYN_SIZE];
    char *cand[5 * 8 + 1];
    char tried[512] = "";
    size_t ncand = 0, tl = 0;
    struct bd_err e2;
    int r;

    r = bd_pread(n->file, raw, VPC_DYN_SIZE, s->ft.data_off);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the dynamic disk header: %s",
                          n->name, strerror(-r));
    for (const char *const *c = codes; *c; c++) {
        for (int i = 0; i < 8; i++) {
            char *p = vpc_locator_path(n, raw + 576 + 24 * i, fsize, *c);
            if (p)
                cand[ncand++] = p;
        }
    }
    cand[ncand] = vpc_utf16_name(raw + 64, 512, BD_UTF16_BE);
    if (cand[ncand]) {
        vpc_unixify(cand[ncand]);
        ncand++;
    }
    if (ncand == 0)
        return bd_err_set(err, EINVAL, "%s: differencing vhd names no parent (no "
                          "parent locator and no parent name)", n->name);

    r = -ENOENT;
    for (size_t i = 0; i < ncand; i++) {
        bd_err_clear(&e2);
        r = vpc_open_parent_path(n, cand[i], &e2);
        if (r == 0) {
            s->parent_name = cand[i];
            cand[i] = NULL;
            break;
        }
        if (r != -ENOENT) {
            /* a policy refusal or a broken parent: that is the answer */
            bd_err_set(err, -r, "%s", e2.errnum ? e2.msg : strerror(-r));
            break;
        }
        tl += (size_t)snprintf(tried + tl, tl < sizeof(tried) ? sizeof(tried) - tl : 0,
                               "%s'%s'", i ? ", " : "", cand[i]);
        if (tl >= sizeof(tried))
            tl = sizeof(tried);
    }
    if (r == -ENOENT)
        bd_err_set(err, ENOENT, "%s: parent image not found (tried %s)",
                   n->name, tried);
    if (r == 0)
        vpc_check_parent_id(n);
    for (size_t i = 0; i < ncand; i++)
        free(cand[i]);
    return r;
}
