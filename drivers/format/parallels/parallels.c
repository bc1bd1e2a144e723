/*
 * parallels: Parallels expandable disk images, read-only. One image file
 * (v1 "WithoutFreeSpace" or v2 "WithouFreSpacExt", image.c) is one disk.
 * Writing, snapshots and repairing a dirty image are not supported.
 */
#include "parallels.h"
#include "core/overflow.h"

#include <string.h>

struct prl_state {
    struct prl_image img;
};

static int prl_probe(const uint8_t *head, size_t len)
{
    if (len < PRL_HEADER_BYTES)
        return 0;
    if (memcmp(head, "WithoutFreeSpace", 16) != 0 &&
        memcmp(head, "WithouFreSpacExt", 16) != 0)
        return 0;
    return bd_le32(head + 16) == PRL_VERSION ? 100 : 0;
}

static int prl_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    struct prl_state *s = n->state;

    (void)o;
    s->img.file = n->file;
    s->img.name = n->name;
    return prl_image_open(&s->img, err);
}

static void prl_close(struct bd_node *n)
{
    struct prl_state *s = n->state;

    prl_image_close(&s->img);
}

static void prl_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct prl_state *s = n->state;

    lim->request_alignment = BD_SECTOR;
    lim->opt_transfer = s->img.cluster_size;
}

static int64_t prl_size(struct bd_node *n)
{
    struct prl_state *s = n->state;

    return (int64_t)s->img.size;
}

static int prl_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct prl_state *s = n->state;

    return prl_image_pread(&s->img, buf, len, off);
}

static int prl_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                            uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct prl_state *s = n->state;

    prl_image_status(&s->img, off, len, pnum, status, map);
    return 0;
}

static void prl_info(struct bd_node *n, struct bd_info *info)
{
    struct prl_state *s = n->state;

    prl_image_info(&s->img, "subformat", info);
}

const struct bd_driver bd_drv_parallels = {
    .name = "parallels",
    .kind = BD_FORMAT,
    .state_size = sizeof(struct prl_state),
    .parallel = true,
    .read_only = true,
    .probe = prl_probe,
    .open = prl_open,
    .close = prl_close,
    .limits = prl_limits,
    .size = prl_size,
    .pread = prl_pread,
    .block_status = prl_block_status,
    .info = prl_info,
};
