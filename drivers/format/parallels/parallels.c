/*
 * parallels: Parallels disks, read-only. One expandable image file (v1
 * "WithoutFreeSpace" or v2 "WithouFreSpacExt", image.c) is a disk, and so
 * is a bundle's DiskDescriptor.xml with its extents (bundle.c). Writing,
 * snapshots and repairing a dirty image are not supported.
 */
#include "parallels.h"
#include "core/overflow.h"

#include <string.h>

struct prl_state {
    struct prl_image img;       /* first: a single image */
    bool is_bundle;
    struct prl_bundle bundle;
};

static bool prl_has_magic(const uint8_t *head, size_t len)
{
    return len >= PRL_HEADER_BYTES &&
           (memcmp(head, "WithoutFreeSpace", 16) == 0 ||
            memcmp(head, "WithouFreSpacExt", 16) == 0);
}

/* A descriptor: its root element near the start (after the XML
 * declaration and perhaps a comment). */
static bool prl_is_descriptor(const uint8_t *head, size_t len)
{
    static const char root[] = "<Parallels_disk_image";
    size_t rl = sizeof(root) - 1;

    if (len > 1024)
        len = 1024;
    for (size_t i = 0; i + rl <= len; i++) {
        if (head[i] == 0)
            return false;
        if (memcmp(head + i, root, rl) == 0)
            return true;
    }
    return false;
}

static int prl_probe(const uint8_t *head, size_t len)
{
    if (prl_has_magic(head, len))
        return bd_le32(head + 16) == PRL_VERSION ? 100 : 0;
    return prl_is_descriptor(head, len) ? 100 : 0;
}

static int prl_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    struct prl_state *s = n->state;
    uint8_t head[1024];
    int64_t fsize = bd_size(n->file);
    size_t len;
    int r;

    (void)o;
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    len = fsize < (int64_t)sizeof(head) ? (size_t)fsize : sizeof(head);
    r = bd_pread(n->file, head, len, 0);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the header: %s", n->name,
                          strerror(-r));
    if (!prl_has_magic(head, len) && prl_is_descriptor(head, len)) {
        s->is_bundle = true;
        return prl_bundle_open(n, &s->bundle, err);
    }
    s->img.file = n->file;
    s->img.name = n->name;
    return prl_image_open(&s->img, err);
}

static void prl_close(struct bd_node *n)
{
    struct prl_state *s = n->state;

    prl_bundle_close(&s->bundle);
    prl_image_close(&s->img);
}

static void prl_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct prl_state *s = n->state;

    lim->request_alignment = BD_SECTOR;
    lim->opt_transfer = s->is_bundle ? 0 : s->img.cluster_size;
}

static int64_t prl_size(struct bd_node *n)
{
    struct prl_state *s = n->state;

    return (int64_t)(s->is_bundle ? s->bundle.size : s->img.size);
}

static int prl_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct prl_state *s = n->state;

    if (s->is_bundle)
        return prl_bundle_pread(&s->bundle, buf, len, off);
    return prl_image_pread(&s->img, buf, len, off);
}

static int prl_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                            uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct prl_state *s = n->state;

    if (s->is_bundle)
        prl_bundle_status(&s->bundle, off, len, pnum, status, map);
    else
        prl_image_status(&s->img, off, len, pnum, status, map);
    return 0;
}

static void prl_info(struct bd_node *n, struct bd_info *info)
{
    struct prl_state *s = n->state;

    if (!s->is_bundle) {
        prl_image_info(&s->img, "subformat", info);
        return;
    }
    bd_info_add(info, "subformat", "bundle (DiskDescriptor.xml)");
    bd_info_add(info, "extents", "%zu", s->bundle.n_ext);
    for (size_t i = 0; i < s->bundle.n_ext; i++) {
        const struct prl_extent *e = &s->bundle.ext[i];
        const struct prl_image *root = &e->layers[e->n_layers - 1];

        bd_info_add(info, "extent", "%s: sectors %llu-%llu, %s, %zu "
                    "snapshot layer(s)", e->names[0],
                    (unsigned long long)(e->start / BD_SECTOR),
                    (unsigned long long)(e->end / BD_SECTOR),
                    root->plain ? "plain root" : "expandable", e->n_layers);
    }
}

const struct bd_driver bd_drv_parallels = {
    .name = "parallels",
    .kind = BD_FORMAT,
    .state_size = sizeof(struct prl_state),
    .parallel = true,
    .read_only = true,
    .bundle_entry = "DiskDescriptor.xml",
    .probe = prl_probe,
    .open = prl_open,
    .close = prl_close,
    .limits = prl_limits,
    .size = prl_size,
    .pread = prl_pread,
    .block_status = prl_block_status,
    .info = prl_info,
};
