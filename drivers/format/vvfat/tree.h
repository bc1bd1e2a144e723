/*
 * vvfat rw: the tree as the FAT volume on the disk now holds it (tree.c),
 * which commit.c compares with what DIR holds and carries back. Everything
 * in it comes from the guest: untrusted, checked as it is read.
 */
#ifndef IMGFUSE_VVFAT_TREE_H
#define IMGFUSE_VVFAT_TREE_H

#include "vvfat.h"

struct vvfat_new {
    char *rel;                  /* FAT path below the root, UTF-8 */
    const char *name;           /* its last component, inside rel */
    char *host;                 /* commit.c: where it goes in DIR */
    uint32_t parent;            /* index of its directory, UINT32_MAX: root */
    bool is_dir;
    uint32_t first;             /* first cluster, 0 for an empty file */
    uint64_t size;
    uint64_t chain_hash;
    uint32_t nclusters;
    uint16_t date, time;        /* modification, FAT format */
};

struct vvfat_tree {
    struct vvfat_new *e;
    uint32_t n, cap;
    uint32_t *fat;              /* FAT 1, decoded */
    uint32_t entries;           /* of fat: clusters + 2 */
    uint8_t *seen;              /* clusters already in a chain */
    uint32_t cb;                /* cluster bytes */
};

int vvfat_tree_read(struct bd_node *n, struct vvfat_tree *t);
void vvfat_tree_free(struct vvfat_tree *t);
/* The cluster after c in the chain, 0 at the end (checked by tree_read). */
uint32_t vvfat_tree_next(const struct vvfat_state *s, const struct vvfat_tree *t,
                         uint32_t c);
uint64_t vvfat_chain_hash(uint64_t h, uint32_t cluster);

#define VVFAT_NONE UINT32_MAX

#endif
