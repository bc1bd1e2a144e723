/*
 * vvfat rw: read back the FAT volume the guest has written: the boot
 * sector must still be ours (a reformatted disk is not carried back), FAT 1
 * is decoded, and the directories are walked from the root breadth first.
 * Every chain must stay inside the volume, end properly and use no cluster
 * twice; names must be ones a host path can hold below DIR. Any breach
 * stops the commit with a message and nothing carried back.
 */
#include "tree.h"

#include <stdlib.h>
#include <string.h>

#define BAD(n, ...) (log_err(__VA_ARGS__), -EIO)

uint64_t vvfat_chain_hash(uint64_t h, uint32_t cluster)
{
    for (int i = 0; i < 4; i++)
        h = (h ^ (cluster >> (8 * i) & 0xff)) * 0x100000001b3ull;
    return h;
}

static uint32_t eoc_min(unsigned type)
{
    return type == 12 ? 0xff8 : type == 16 ? 0xfff8 : 0x0ffffff8;
}

uint32_t vvfat_tree_next(const struct vvfat_state *s, const struct vvfat_tree *t,
                         uint32_t c)
{
    uint32_t v = t->fat[c];
    return v >= eoc_min(s->g.fat_type) ? 0 : v;
}

static int read_fat(struct bd_node *n, struct vvfat_tree *t)
{
    struct vvfat_state *s = n->state;
    const struct vvfat_geom *g = &s->g;
    uint64_t bytes = (uint64_t)g->fat_sectors * BD_SECTOR;
    uint8_t *raw = malloc(bytes), boot[BD_SECTOR];
    uint64_t vol = (uint64_t)g->part_start * BD_SECTOR;
    int r;

    if (!raw)
        return -ENOMEM;
    r = vvfat_read_disk(n, boot, BD_SECTOR, vol);
    if (r == 0 && (bd_le16(boot + 11) != BD_SECTOR || boot[13] != g->spc ||
                   bd_le16(boot + 14) != g->reserved || boot[16] != 2)) {
        free(raw);
        return BAD(n, "%s: the disk's boot sector no longer describes the "
                   "volume vvfat made (reformatted?); nothing is carried back "
                   "to the directory", n->name);
    }
    if (r == 0)
        r = vvfat_read_disk(n, raw, bytes, vol + (uint64_t)g->reserved * BD_SECTOR);
    t->entries = g->clusters + 2;
    t->fat = malloc((size_t)t->entries * sizeof(*t->fat));
    t->seen = calloc(t->entries / 8 + 1, 1);
    if (r < 0 || !t->fat || !t->seen) {
        free(raw);
        return r < 0 ? r : -ENOMEM;
    }
    for (uint32_t c = 0; c < t->entries; c++) {
        if (g->fat_type == 12) {
            uint32_t b = c * 3 / 2;
            uint32_t v = raw[b] | (uint32_t)raw[b + 1] << 8;
            t->fat[c] = c & 1 ? v >> 4 : v & 0xfff;
        } else if (g->fat_type == 16) {
            t->fat[c] = bd_le16(raw + 2 * c);
        } else {
            t->fat[c] = bd_le32(raw + 4 * c) & 0x0fffffff;
        }
    }
    free(raw);
    return 0;
}

/* Walk the chain from first: its length and hash; -EIO when it breaks. */
static int walk(struct bd_node *n, struct vvfat_tree *t, const char *rel,
                uint32_t first, uint32_t *count, uint64_t *hash)
{
    struct vvfat_state *s = n->state;
    uint32_t c = first, k = 0;
    uint64_t h = 0xcbf29ce484222325ull;
    while (c) {
        if (c < 2 || c >= t->entries)
            return BAD(n, "%s: '%s': its cluster chain leaves the volume "
                       "(cluster %u); nothing is carried back (run fsck.fat "
                       "on the disk)", n->name, rel, c);
        if (t->seen[c / 8] >> (c % 8) & 1)
            return BAD(n, "%s: '%s': cluster %u is used twice; nothing is "
                       "carried back (run fsck.fat on the disk)", n->name, rel, c);
        t->seen[c / 8] |= (uint8_t)(1u << (c % 8));
        h = vvfat_chain_hash(h, c);
        k++;
        uint32_t v = t->fat[c];
        if (v < 2 && v < eoc_min(s->g.fat_type))
            return BAD(n, "%s: '%s': its cluster chain ends in a free cluster; "
                       "nothing is carried back", n->name, rel);
        c = vvfat_tree_next(s, t, c);
    }
    *count = k;
    *hash = h;
    return 0;
}

/* The name of a short entry, with the lower-case flags of byte 12. */
static void short_name(const uint8_t *e, char *out)
{
    size_t o = 0;
    for (int i = 0; i < 8 && e[i] != ' '; i++)
        out[o++] = (char)(e[12] & 0x08 && e[i] >= 'A' && e[i] <= 'Z' ? e[i] + 32
                                                                     : e[i]);
    if (e[0] == 0x05)
        out[0] = (char)0xe5;
    if (e[8] != ' ') {
        out[o++] = '.';
        for (int i = 8; i < 11 && e[i] != ' '; i++)
            out[o++] = (char)(e[12] & 0x10 && e[i] >= 'A' && e[i] <= 'Z'
                              ? e[i] + 32 : e[i]);
    }
    out[o] = 0;
}

static bool name_ok(const char *s)
{
    if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == '/' || *s == '\\')
            return false;
    }
    return true;
}

struct lfn_acc {
    uint16_t u[260];
    int expect;                 /* next sequence number wanted, 0: none */
    int slots;
    uint8_t csum;
};

static void lfn_piece(struct lfn_acc *a, const uint8_t *e)
{
    static const uint8_t pos[13] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24,
                                     28, 30 };
    int seq = e[0] & 0x1f;
    if (e[0] & 0x40) {
        a->slots = seq;
        a->expect = seq;
        a->csum = e[13];
        memset(a->u, 0xff, sizeof(a->u));
    }
    if (seq == 0 || seq > 20 || seq != a->expect || e[13] != a->csum) {
        a->expect = 0;
        a->slots = 0;           /* a broken sequence: the short name stands */
        return;
    }
    for (int j = 0; j < 13; j++)
        a->u[(seq - 1) * 13 + j] = bd_le16(e + pos[j]);
    a->expect = seq - 1;
}

static int add(struct bd_node *n, struct vvfat_tree *t, uint32_t parent,
               const char *name, const uint8_t *e)
{
    struct vvfat_state *s = n->state;
    const char *prel = parent == VVFAT_NONE ? "" : t->e[parent].rel;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        struct vvfat_new *ne = cap <= VVFAT_MAX_OBJECTS
                             ? realloc(t->e, cap * sizeof(*ne)) : NULL;
        if (!ne)
            return -ENOMEM;
        t->e = ne;
        t->cap = cap;
    }
    struct vvfat_new *x = &t->e[t->n];
    memset(x, 0, sizeof(*x));
    if (asprintf(&x->rel, "%s%s%s", prel, *prel ? "/" : "", name) < 0)
        return -ENOMEM;
    t->n++;
    x->name = x->rel + strlen(x->rel) - strlen(name);
    x->parent = parent;
    x->is_dir = e[11] & 0x10;
    x->first = bd_le16(e + 26) | (s->g.fat_type == 32 ? (uint32_t)bd_le16(e + 20) << 16 : 0);
    x->size = x->is_dir ? 0 : bd_le32(e + 28);
    x->time = bd_le16(e + 22);
    x->date = bd_le16(e + 24);
    if (strlen(x->rel) > 3000)
        return BAD(n, "%s: '%s': the path is too long to carry back", n->name,
                   x->rel);
    if (x->is_dir && !x->first)
        return BAD(n, "%s: directory '%s' has no cluster; nothing is carried "
                   "back", n->name, x->rel);
    int r = walk(n, t, x->rel, x->first, &x->nclusters, &x->chain_hash);
    if (r == 0 && !x->is_dir && (uint64_t)x->nclusters * t->cb < x->size)
        r = BAD(n, "%s: '%s' claims %llu bytes but its chain holds fewer; "
                "nothing is carried back", n->name, x->rel,
                (unsigned long long)x->size);
    return r;
}

/* Parse the entries of one directory (buf, len bytes) into t. */
static int parse_dir(struct bd_node *n, struct vvfat_tree *t, uint32_t parent,
                     const uint8_t *buf, uint64_t len)
{
    struct lfn_acc a = { .expect = 0 };
    char name[VVFAT_LFN_MAX * 3 + 1];
    for (uint64_t off = 0; off + 32 <= len; off += 32) {
        const uint8_t *e = buf + off;
        if (e[0] == 0)
            break;
        if (e[0] == 0xe5) {
            a.expect = 0;
            a.slots = 0;
            continue;
        }
        if ((e[11] & 0x3f) == 0x0f) {
            lfn_piece(&a, e);
            continue;
        }
        bool have_lfn = a.slots && a.expect == 0 &&
                        vvfat_lfn_checksum(e) == a.csum;
        if (have_lfn) {
            size_t l = 0;
            while (l < (size_t)a.slots * 13 && a.u[l] && a.u[l] != 0xffff)
                l++;
            vvfat_utf16_to_utf8(a.u, l, name, sizeof(name));
        } else {
            short_name(e, name);
        }
        a.slots = 0;
        a.expect = 0;
        if (e[11] & 0x08 || !strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (!name_ok(name))
            return BAD(n, "%s: an entry named '%s' cannot be carried back to "
                       "the directory; nothing is", n->name, name);
        int r = add(n, t, parent, name, e);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The bytes of directory t->e[i] (its whole chain) into a new buffer. */
static int read_chain(struct bd_node *n, struct vvfat_tree *t, uint32_t first,
                      uint32_t count, uint8_t **out)
{
    struct vvfat_state *s = n->state;
    uint64_t data = ((uint64_t)s->g.part_start + s->g.data_start) * BD_SECTOR;
    uint8_t *buf = malloc((size_t)count * t->cb);
    uint32_t c = first;
    if (!buf)
        return -ENOMEM;
    for (uint32_t k = 0; k < count; k++) {
        int r = vvfat_read_disk(n, buf + (uint64_t)k * t->cb, t->cb,
                                data + (uint64_t)(c - 2) * t->cb);
        if (r < 0) {
            free(buf);
            return r;
        }
        c = vvfat_tree_next(s, t, c);
    }
    *out = buf;
    return 0;
}

int vvfat_tree_read(struct bd_node *n, struct vvfat_tree *t)
{
    struct vvfat_state *s = n->state;
    const struct vvfat_geom *g = &s->g;
    uint8_t *buf = NULL;
    int r;

    memset(t, 0, sizeof(*t));
    t->cb = g->spc * BD_SECTOR;
    if ((r = read_fat(n, t)) < 0)
        return r;
    if (g->fat_type == 32) {
        uint32_t count;
        uint64_t h;
        if ((r = walk(n, t, "/", 2, &count, &h)) < 0 ||
            (r = read_chain(n, t, 2, count, &buf)) < 0)
            return r;
        r = parse_dir(n, t, VVFAT_NONE, buf, (uint64_t)count * t->cb);
    } else {
        uint64_t len = (uint64_t)g->root_sectors * BD_SECTOR;
        uint64_t at = ((uint64_t)g->part_start + g->reserved +
                       2ull * g->fat_sectors) * BD_SECTOR;
        if (!(buf = malloc(len)))
            return -ENOMEM;
        r = vvfat_read_disk(n, buf, len, at);
        if (r == 0)
            r = parse_dir(n, t, VVFAT_NONE, buf, len);
    }
    free(buf);
    for (uint32_t i = 0; i < t->n && r == 0; i++) {
        if (!t->e[i].is_dir)
            continue;
        buf = NULL;
        r = read_chain(n, t, t->e[i].first, t->e[i].nclusters, &buf);
        if (r == 0)
            r = parse_dir(n, t, i, buf, (uint64_t)t->e[i].nclusters * t->cb);
        free(buf);
    }
    return r;
}

void vvfat_tree_free(struct vvfat_tree *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        free(t->e[i].rel);
        free(t->e[i].host);
    }
    free(t->e);
    free(t->fat);
    free(t->seen);
    memset(t, 0, sizeof(*t));
}
