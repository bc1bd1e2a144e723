/*
 * Creating vmdk images: the five hosted subformats (monolithicSparse,
 * monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat, streamOptimized)
 * with their descriptor, extent files next to it and an optional parent.
 * Sparse extent layout is sparse-create.c's job; this file decides the files.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

enum subformat { MONO_SPARSE, MONO_FLAT, SPLIT_SPARSE, SPLIT_FLAT, STREAM };

static const char *const subformats[] = {
    "monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat", "streamOptimized", NULL,
};
static const char *const adapters[] = {
    "ide", "lsilogic", "buslogic", "legacyESX", NULL,
};

/* VMware splits twoGbMaxExtent* disks into extents of at most 2047 MiB */
#define SPLIT_EXTENT_BYTES (2047ull << 20)

struct parent_info {
    uint32_t cid;
    uint64_t size;
};

static uint32_t random_cid(void)
{
    uint32_t c = 0;

    do {
        if (getrandom(&c, sizeof(c), 0) != sizeof(c))
            c = (uint32_t)rand();
    } while (c >= 0xfffffffeu);
    return c;
}

/* CID and size of the parent image named by backing_file. */
static int read_parent(struct bd_node *file, const char *name,
                       struct parent_info *pi, struct bd_err *err)
{
    struct vmdk_desc d = {0};
    struct bd_node *pn = NULL;
    struct vmdk_sparse *sp = NULL;
    char *path = NULL, *text = NULL;
    uint8_t head[4] = {0};
    uint64_t doff = 0, dlen = 0;
    int64_t psize;
    int ret;

    if ((ret = bd_resolve_related(file, name, &path, err)) < 0)
        goto out;
    if ((ret = bd_open_related(file, path, false, &pn, err)) < 0)
        goto out;
    psize = bd_size(pn);
    if (psize < 0) {
        ret = bd_err_set(err, (int)-psize, "%s: %s", name, strerror((int)-psize));
        goto out;
    }
    if (psize >= 4 && (ret = bd_pread(pn, head, 4, 0)) < 0)
        goto out_io;
    if (bd_le32(head) == VMDK4_MAGIC) {
        if ((ret = vmdk_sparse_open(pn, name, false, &sp, err)) < 0)
            goto out;
        pi->size = vmdk_sparse_capacity(sp);
        vmdk_sparse_desc_area(sp, &doff, &dlen);
    } else if ((uint64_t)psize <= VMDK_DESC_MAX) {
        dlen = (uint64_t)psize;
    } else {
        ret = bd_err_set(err, EINVAL, "backing file '%s' is not a vmdk image "
                         "(vmdk parents must be vmdk)", name);
        goto out;
    }
    text = calloc(1, dlen + 1);
    if (!text) {
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (dlen && (ret = bd_pread(pn, text, dlen, doff)) < 0)
        goto out_io;
    if ((ret = vmdk_desc_parse(text, dlen, &d, name, err)) < 0)
        goto out;
    if (!d.has_cid) {
        ret = bd_err_set(err, EINVAL, "backing file '%s' is not a vmdk image "
                         "(no CID in its descriptor)", name);
        goto out;
    }
    pi->cid = d.cid;
    if (!sp) {
        pi->size = 0;
        for (size_t i = 0; i < d.n_ext; i++) {
            if (d.ext[i].sectors > (UINT64_MAX >> 12))
                break;
            pi->size += d.ext[i].sectors * BD_SECTOR;
        }
    }
    ret = 0;
    goto out;

out_io:
    ret = bd_err_set(err, -ret, "backing file '%s': %s", name, strerror(-ret));
out:
    vmdk_desc_free(&d);
    free(text);
    vmdk_sparse_close(sp);
    if (pn)
        bd_node_close(pn);
    free(path);
    return ret;
}

/* "disk.vmdk" -> "disk": the stem extent names are made from. */
static char *name_stem(struct bd_node *file)
{
    const char *f = file->filename ? file->filename : file->name;
    const char *b = strrchr(f, '/');
    char *stem = strdup(b ? b + 1 : f);
    size_t l;

    if (!stem)
        return NULL;
    l = strlen(stem);
    if (l > 5 && !strcasecmp(stem + l - 5, ".vmdk"))
        stem[l - 5] = '\0';
    return stem;
}

struct create_plan {
    enum subformat fmt;
    uint64_t size;
    bool zeroed_grain;
    char *stem;
    char **names;               /* extent file names, n entries */
    char **paths;               /* where each was made (bd_create_related) */
    char **lines;               /* descriptor extent lines, NULL-terminated */
    uint64_t *lens;
    size_t n;
};

static void plan_free(struct create_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->names[i]);
        free(p->lines[i]);
        free(p->paths[i]);
    }
    free(p->names);
    free(p->paths);
    free(p->lines);
    free(p->lens);
    free(p->stem);
}

static int plan_extents(struct bd_node *file, struct create_plan *p)
{
    bool split = p->fmt == SPLIT_SPARSE || p->fmt == SPLIT_FLAT;
    bool flat = p->fmt == MONO_FLAT || p->fmt == SPLIT_FLAT;
    size_t n = split ? (size_t)((p->size + SPLIT_EXTENT_BYTES - 1) / SPLIT_EXTENT_BYTES)
                     : 1;
    const char *base = NULL;

    if (n == 0)
        n = 1;
    p->stem = name_stem(file);
    p->names = calloc(n, sizeof(char *));
    p->lines = calloc(n + 1, sizeof(char *));
    p->lens = calloc(n, sizeof(uint64_t));
    p->paths = calloc(n, sizeof(char *));
    if (!p->stem || !p->names || !p->lines || !p->lens || !p->paths)
        return -ENOMEM;
    if (p->fmt == MONO_SPARSE || p->fmt == STREAM) {
        const char *f = file->filename ? file->filename : file->name;
        base = strrchr(f, '/') ? strrchr(f, '/') + 1 : f;
    }
    for (size_t i = 0; i < n; i++, p->n++) {
        uint64_t left = p->size - (uint64_t)i * SPLIT_EXTENT_BYTES;
        p->lens[i] = split && left > SPLIT_EXTENT_BYTES ? SPLIT_EXTENT_BYTES : left;
        int r;
        if (base)
            r = asprintf(&p->names[i], "%s", base);
        else if (split)
            r = asprintf(&p->names[i], "%s-%c%03zu.vmdk", p->stem, flat ? 'f' : 's',
                         i + 1);
        else
            r = asprintf(&p->names[i], "%s-flat.vmdk", p->stem);
        if (r < 0) {
            p->names[i] = NULL;
            return -ENOMEM;
        }
        if (asprintf(&p->lines[i], "RW %" PRIu64 " %s \"%s\"%s",
                     p->lens[i] / BD_SECTOR, flat ? "FLAT" : "SPARSE", p->names[i],
                     flat ? " 0" : "") < 0) {
            p->lines[i] = NULL;
            free(p->names[i]);
            return -ENOMEM;
        }
    }
    return 0;
}

/* Each extent file next to the descriptor, on the descriptor's storage
 * (a local directory or the same server); an existing file is refused. */
static int write_extents(struct bd_node *file, struct create_plan *p,
                         size_t *made, struct bd_err *err)
{
    for (size_t i = 0; i < p->n; i++) {
        struct bd_node *ef;
        int ret = bd_create_related(file, p->names[i], true, &ef, &p->paths[i],
                                    err);
        if (ret < 0) {
            bd_err_prefix(err, "cannot create the extent file '%s'",
                          p->names[i]);
            return ret;
        }
        (*made)++;
        if (p->fmt == MONO_FLAT || p->fmt == SPLIT_FLAT) {
            ret = bd_truncate(ef, p->lens[i], BD_PREALLOC_OFF, err);
        } else {
            struct vmdk_sparse_create c = { .capacity = p->lens[i],
                                            .zeroed_grain = p->zeroed_grain };
            ret = vmdk_sparse_create(ef, &c, err);
        }
        if (ret == 0)
            ret = bd_flush(ef);
        bd_node_close(ef);
        if (ret < 0) {
            bd_err_prefix(err, "%s", p->names[i]);
            return ret;
        }
    }
    return 0;
}

int vmdk_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                struct bd_err *err)
{
    struct create_plan p = {0};
    struct parent_info pi = { .cid = VMDK_CID_NONE };
    const char *hw = bd_opts_get(o, "hwversion");
    const char *tools = bd_opts_get(o, "toolsversion");
    const char *backing = bd_opts_get(o, "backing_file");
    const char *bfmt = bd_opts_get(o, "backing_fmt");
    bool compat6 = false;
    char *desc = NULL;
    size_t made = 0;
    int ret, adapter;

    p.fmt = bd_opts_get_enum(o, "subformat", subformats, MONO_SPARSE, err);
    if ((int)p.fmt < 0)
        return (int)p.fmt;
    if ((adapter = bd_opts_get_enum(o, "adapter_type", adapters, 0, err)) < 0)
        return adapter;
    if ((ret = bd_opts_get_bool(o, "compat6", false, &compat6, err)) < 0 &&
        ret != -ENOENT)
        return ret;
    if ((ret = bd_opts_get_bool(o, "zeroed_grain", false, &p.zeroed_grain, err)) < 0 &&
        ret != -ENOENT)
        return ret;
    if (compat6 && hw)
        return bd_err_set(err, EINVAL, "compat6 and hwversion cannot be used "
                          "together; hwversion=6 is what compat6 means");
    if (hw && (!*hw || strspn(hw, "0123456789") != strlen(hw) || strlen(hw) > 3))
        return bd_err_set(err, EINVAL, "hwversion '%s' is not a number", hw);
    if (tools && (strlen(tools) > 16 || strpbrk(tools, "\"\n")))
        return bd_err_set(err, EINVAL, "toolsversion '%s' is not valid", tools);
    if (bfmt && strcmp(bfmt, "vmdk"))
        return bd_err_set(err, EINVAL, "the parent of a vmdk image must be vmdk, "
                          "not %s", bfmt);
    if (p.zeroed_grain && p.fmt == STREAM)
        p.zeroed_grain = false;     /* stream images have no zeroed grains */
    if (backing) {
        if (p.fmt == STREAM)
            return bd_err_set(err, ENOTSUP, "streamOptimized images cannot have "
                              "a backing file");
        if (p.fmt == MONO_FLAT || p.fmt == SPLIT_FLAT)
            return bd_err_set(err, EINVAL, "a flat image cannot have a backing "
                              "file: every sector is its own");
        if (strpbrk(backing, "\"\n"))
            return bd_err_set(err, EINVAL, "backing file name '%s' cannot be "
                              "written into a descriptor", backing);
        if ((ret = read_parent(file, backing, &pi, err)) < 0)
            return ret;
        if (size == 0)
            size = pi.size;
    }
    if (size > (1ull << 62))
        return bd_err_set(err, EFBIG, "size is too large for vmdk");
    p.size = bd_align_up(size, BD_SECTOR);

    if ((ret = plan_extents(file, &p)) < 0) {
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    struct vmdk_desc_params dp = {
        .cid = random_cid(),
        .parent_cid = pi.cid,
        .create_type = subformats[p.fmt],
        .parent_hint = backing,
        .extent_lines = (const char *const *)p.lines,
        .hw_version = compat6 ? "6" : hw ? hw : "4",
        .adapter_type = adapters[adapter],
        .tools_version = tools ? tools : "2147483647",
        .size = p.size,
    };
    desc = vmdk_desc_format(&dp);
    if (!desc) {
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (p.fmt == MONO_SPARSE || p.fmt == STREAM) {
        struct vmdk_sparse_create c = { .capacity = p.size, .desc = desc,
                                        .stream = p.fmt == STREAM,
                                        .zeroed_grain = p.zeroed_grain };
        ret = vmdk_sparse_create(file, &c, err);
        goto out;
    }
    ret = bd_truncate(file, strlen(desc), BD_PREALLOC_OFF, err);
    if (ret == 0)
        ret = bd_pwrite(file, desc, strlen(desc), 0, 0);
    if (ret < 0) {
        bd_err_set(err, -ret, "writing the descriptor: %s", strerror(-ret));
        goto out;
    }
    ret = write_extents(file, &p, &made, err);
    if (ret < 0) {
        for (size_t i = 0; i < made; i++)
            bd_remove_related(file, p.paths[i]);
    }
out:
    free(desc);
    plan_free(&p);
    return ret;
}
