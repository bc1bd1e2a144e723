/*
 * vvfat rw: carry what the guest wrote back into DIR, at flush and close.
 * The tree the disk now holds (tree.c) is compared by FAT path with the
 * tree DIR holds (the base): files whose cluster chain, size and sectors
 * are untouched stay as they are; new and changed files are written whole
 * to a temporary file beside their place and renamed over it; directories
 * are made; what is gone is removed. A host file that changed since the
 * base was taken is never touched (a message names it). Nothing is written
 * outside DIR: names are checked by tree.c and every directory written into
 * must resolve inside DIR. A host file that a commit replaces or removes
 * while the disk still reads clusters from it is kept open for those reads.
 */
#include "tree.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_rel(const void *a, const void *b)
{
    return strcmp(((const struct vvfat_base *)a)->rel,
                  ((const struct vvfat_base *)b)->rel);
}

static struct vvfat_base *base_find(struct vvfat_state *s, const char *rel)
{
    struct vvfat_base key = { .rel = (char *)rel };
    return bsearch(&key, s->base, s->nbase, sizeof(key), by_rel);
}

static void base_stat(struct vvfat_base *b)
{
    struct stat st;
    if (stat(b->host, &st) == 0) {
        b->dev = st.st_dev;
        b->ino = st.st_ino;
        b->mtime = st.st_mtim;
    }
}

void vvfat_base_free(struct vvfat_state *s)
{
    for (uint32_t i = 0; i < s->nbase; i++) {
        free(s->base[i].rel);
        free(s->base[i].host);
    }
    free(s->base);
    s->base = NULL;
    s->nbase = 0;
}

/* The base from the scan: FAT paths of the long names, host entry paths. */
int vvfat_base_init(struct vvfat_state *s, struct bd_err *err)
{
    s->base = calloc(s->nobjs, sizeof(*s->base));
    if (!s->base)
        return bd_err_set(err, ENOMEM, "vvfat: out of memory");
    for (uint32_t i = 1; i < s->nobjs; i++) {
        const struct vvfat_obj *o = &s->objs[i];
        struct vvfat_base *b = &s->base[s->nbase];
        const char *prel = o->parent ? s->base[o->parent - 1].rel : "";
        char name[VVFAT_LFN_MAX * 3 + 1];
        vvfat_utf16_to_utf8(o->lfn, o->lfn_len, name, sizeof(name));
        if (asprintf(&b->rel, "%s%s%s", prel, *prel ? "/" : "", name) < 0 ||
            !(b->host = strdup(o->hpath)))
            return bd_err_set(err, ENOMEM, "vvfat: out of memory");
        s->nbase++;
        b->is_dir = o->is_dir;
        b->size = o->size;
        b->nclusters = o->is_dir ? 0 : o->clusters;
        uint64_t h = 0xcbf29ce484222325ull;
        for (uint32_t c = 0; c < b->nclusters; c++)
            h = vvfat_chain_hash(h, o->first_cluster + c);
        b->chain_hash = h;
        b->dev = o->dev;
        b->ino = o->ino;
        b->mtime = o->mtime;
    }
    /* objs[i] is base[i - 1] until sorted: parents were looked up above */
    qsort(s->base, s->nbase, sizeof(*s->base), by_rel);
    return 0;
}

/* Did the host change b since the base was taken? Says so once. */
static bool host_changed(struct bd_node *n, const struct vvfat_base *b)
{
    struct stat st;
    if (stat(b->host, &st) != 0) {
        log_err("%s: %s: gone from the host since the disk was opened; the "
                "disk's change to it is not carried back", n->name, b->host);
        return true;
    }
    if (st.st_dev != b->dev || st.st_ino != b->ino ||
        (!b->is_dir && ((uint64_t)st.st_size != b->size ||
                        st.st_mtim.tv_sec != b->mtime.tv_sec ||
                        st.st_mtim.tv_nsec != b->mtime.tv_nsec))) {
        log_err("%s: %s: changed on the host since the disk was opened; "
                "refusing to carry the disk's change to it back (the host's "
                "version is kept)", n->name, b->host);
        return true;
    }
    return false;
}

/* Is dir (a directory the commit writes into) inside DIR? */
static bool dir_inside(struct vvfat_state *s, const char *dir)
{
    char *real = realpath(dir, NULL);
    size_t l = strlen(s->root);
    bool ok = real && !strncmp(real, s->root, l) &&
              (real[l] == '/' || real[l] == 0 || l == 1);
    free(real);
    return ok;
}

static bool chain_dirty(struct vvfat_state *s, const struct vvfat_tree *t,
                        uint32_t first)
{
    uint64_t data = (uint64_t)s->g.part_start + s->g.data_start;
    for (uint32_t c = first; c; c = vvfat_tree_next(s, t, c)) {
        uint64_t sec = data + (uint64_t)(c - 2) * s->g.spc;
        for (uint32_t k = 0; k < s->g.spc; k++) {
            if (vvfat_overlay_has(&s->ov, sec + k, true))
                return true;
        }
    }
    return false;
}

/* Keep the host file of every original object whose path b names open, so
 * that the disk still reads its clusters once b is replaced or removed. */
static void keep_open(struct vvfat_state *s, const struct vvfat_base *b)
{
    for (uint32_t i = 1; i < s->nobjs; i++) {
        struct vvfat_obj *o = &s->objs[i];
        if (o->is_dir || o->keep_fd >= 0 || !o->clusters ||
            strcmp(o->hpath, b->host) != 0)
            continue;
        o->keep_fd = open(o->path, O_RDONLY | O_CLOEXEC);
    }
}

static time_t fat_to_time(uint16_t date, uint16_t tm)
{
    struct tm t = {
        .tm_year = (date >> 9) + 80, .tm_mon = ((date >> 5) & 15) - 1,
        .tm_mday = date & 31, .tm_hour = tm >> 11, .tm_min = (tm >> 5) & 63,
        .tm_sec = (tm & 31) * 2, .tm_isdst = -1,
    };
    return mktime(&t);
}

/* Write the file x from the disk to a temporary file (mode as given),
 * then rename it to x->host. */
static int write_file(struct bd_node *n, const struct vvfat_tree *t,
                      const struct vvfat_new *x, const char *dir, mode_t mode)
{
    struct vvfat_state *s = n->state;
    uint64_t data = ((uint64_t)s->g.part_start + s->g.data_start) * BD_SECTOR;
    char tmpl[PATH_MAX];
    uint8_t *buf = malloc(t->cb);
    int r = 0;

    snprintf(tmpl, sizeof(tmpl), "%s/.vvfat-XXXXXX", dir);
    int fd = buf ? mkstemp(tmpl) : -1;
    if (fd < 0) {
        free(buf);
        log_err("%s: %s: cannot write it: %s", n->name, x->host, strerror(errno));
        return -EIO;
    }
    uint64_t left = x->size;
    for (uint32_t c = x->first; c && left && r == 0; c = vvfat_tree_next(s, t, c)) {
        uint64_t k = left < t->cb ? left : t->cb;
        r = vvfat_read_disk(n, buf, t->cb, data + (uint64_t)(c - 2) * t->cb);
        if (r == 0 && write(fd, buf, k) != (ssize_t)k)
            r = errno ? -errno : -EIO;
        left -= k;
    }
    struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
                              { .tv_sec = fat_to_time(x->date, x->time) } };
    fchmod(fd, mode);
    if (r == 0 && futimens(fd, ts) != 0)
        r = -errno;
    if (close(fd) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmpl, x->host) != 0)
        r = -errno;
    if (r < 0) {
        unlink(tmpl);
        log_err("%s: %s: cannot write it: %s", n->name, x->host, strerror(-r));
    }
    free(buf);
    return r;
}

/* Where each new entry goes on the host; what happens to it. MOVE: a file
 * the disk holds unchanged under a new path (a rename): moved on the host
 * too, which keeps its inode, mode and owner. */
enum act { KEEP, MAKE, WRITE, MOVE };

struct plan {
    enum act *acts;
    uint32_t *from;             /* MOVE: the base index it comes from */
    bool *gone;                 /* base entries the disk no longer holds */
};

static int place(struct bd_node *n, struct vvfat_tree *t, uint32_t i,
                 enum act *act)
{
    struct vvfat_state *s = n->state;
    struct vvfat_new *x = &t->e[i];
    struct vvfat_base *b = base_find(s, x->rel);
    if (b && b->is_dir == x->is_dir) {
        x->host = strdup(b->host);
        *act = KEEP;
        if (!x->is_dir && (b->chain_hash != x->chain_hash ||
                           b->nclusters != x->nclusters || b->size != x->size ||
                           chain_dirty(s, t, x->first)))
            *act = WRITE;
    } else {
        const char *dir = x->parent == VVFAT_NONE ? s->root : t->e[x->parent].host;
        if (asprintf(&x->host, "%s/%s", dir, x->name) < 0)
            x->host = NULL;
        *act = MAKE;
    }
    return x->host ? 0 : -ENOMEM;
}

/* Move base file b to x->host; when the host changed it, or the rename
 * fails, write x from the disk instead. */
static void move_file(struct bd_node *n, const struct vvfat_tree *t,
                      const struct vvfat_new *x, const struct vvfat_base *b,
                      const char *dir)
{
    if (!host_changed(n, b) && rename(b->host, x->host) == 0)
        return;
    if (write_file(n, t, x, dir, 0644) == 0 && !host_changed(n, b))
        unlink(b->host);
}

static void apply_new(struct bd_node *n, struct vvfat_tree *t,
                      const struct plan *p)
{
    struct vvfat_state *s = n->state;
    const enum act *acts = p->acts;
    for (uint32_t i = 0; i < t->n; i++) {
        struct vvfat_new *x = &t->e[i];
        const char *dir = x->parent == VVFAT_NONE ? s->root : t->e[x->parent].host;
        struct stat st;
        if (acts[i] == KEEP)
            continue;
        if (!dir_inside(s, dir)) {
            log_err("%s: %s: its directory is not inside %s; not written",
                    n->name, x->host, s->root);
            continue;
        }
        if (acts[i] == WRITE) {
            if (!host_changed(n, base_find(s, x->rel)))
                write_file(n, t, x, dir, stat(x->host, &st) == 0
                                         ? st.st_mode & 07777 : 0644);
        } else if (lstat(x->host, &st) == 0 && !(x->is_dir && S_ISDIR(st.st_mode))) {
            log_err("%s: %s: made on the host since the disk was opened; "
                    "refusing to replace it with the disk's '%s'", n->name,
                    x->host, x->rel);
        } else if (x->is_dir) {
            if (mkdir(x->host, 0755) != 0 && errno != EEXIST)
                log_err("%s: %s: cannot make it: %s", n->name, x->host,
                        strerror(errno));
        } else if (acts[i] == MOVE) {
            move_file(n, t, x, &s->base[p->from[i]], dir);
        } else {
            write_file(n, t, x, dir, 0644);
        }
    }
}

/* Remove what the disk no longer holds, files or directories (the
 * deepest first: the base is sorted, so walk it backwards). Directories
 * are tried before the new entries are placed (for a file taking the
 * place of an emptied directory) and after (once moves emptied them):
 * quiet the first time. */
static void apply_gone(struct bd_node *n, bool *gone, bool dirs, bool quiet)
{
    struct vvfat_state *s = n->state;
    for (uint32_t i = s->nbase; i-- > 0;) {
        const struct vvfat_base *b = &s->base[i];
        if (!gone[i] || b->is_dir != dirs || (quiet && rmdir(b->host) != 0))
            continue;
        if (!quiet && !host_changed(n, b) && (dirs ? rmdir(b->host)
                                                  : unlink(b->host)))
            log_err("%s: %s: cannot remove it: %s%s", n->name, b->host,
                    strerror(errno), errno == ENOTEMPTY
                    ? " (it holds what the disk does not show)" : "");
        gone[i] = false;
    }
}

static int by_hash(const void *a, const void *b)
{
    const struct vvfat_base *x = a, *y = b;
    return x->chain_hash < y->chain_hash ? -1 : x->chain_hash > y->chain_hash;
}

/* Renames: a new file whose clean chain, length and size are those of a
 * base file the disk no longer holds comes from it. */
static int find_moves(struct bd_node *n, struct vvfat_tree *t, struct plan *p)
{
    struct vvfat_state *s = n->state;
    uint32_t count = 0;
    struct vvfat_base *idx = malloc((s->nbase + 1) * sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->nbase; i++) {
        if (p->gone[i] && !s->base[i].is_dir && s->base[i].nclusters) {
            idx[count] = s->base[i];
            idx[count++].nclusters = i;     /* the copy keeps the index */
        }
    }
    qsort(idx, count, sizeof(*idx), by_hash);
    for (uint32_t i = 0; i < t->n && count; i++) {
        struct vvfat_new *x = &t->e[i];
        struct vvfat_base key = { .chain_hash = x->chain_hash };
        if (p->acts[i] != MAKE || x->is_dir || !x->nclusters)
            continue;
        struct vvfat_base *m = bsearch(&key, idx, count, sizeof(*idx), by_hash);
        if (!m)
            continue;
        const struct vvfat_base *b = &s->base[m->nclusters];
        if (!p->gone[m->nclusters] || b->nclusters != x->nclusters ||
            b->size != x->size || chain_dirty(s, t, x->first))
            continue;
        p->acts[i] = MOVE;
        p->from[i] = m->nclusters;
        p->gone[m->nclusters] = false;
        keep_open(s, b);
    }
    free(idx);
    return 0;
}

/* The new base: the tree just carried back. */
static int rebase(struct vvfat_state *s, struct vvfat_tree *t)
{
    struct vvfat_base *nb = calloc(t->n + 1, sizeof(*nb));
    if (!nb)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->n; i++) {
        struct vvfat_new *x = &t->e[i];
        nb[i] = (struct vvfat_base){
            .rel = x->rel, .host = x->host, .is_dir = x->is_dir, .size = x->size,
            .chain_hash = x->chain_hash, .nclusters = x->nclusters,
        };
        x->rel = x->host = NULL;
        base_stat(&nb[i]);
    }
    vvfat_base_free(s);
    s->base = nb;
    s->nbase = t->n;
    qsort(s->base, s->nbase, sizeof(*s->base), by_rel);
    return 0;
}

static int plan_and_apply(struct bd_node *n, struct vvfat_tree *t,
                          struct plan *p)
{
    struct vvfat_state *s = n->state;
    int r = 0;
    for (uint32_t i = 0; i < t->n && r == 0; i++)
        r = place(n, t, i, &p->acts[i]);
    if (r < 0)
        return r;
    /* what the disk no longer holds, or holds as the other kind */
    for (uint32_t i = 0; i < s->nbase; i++)
        p->gone[i] = true;
    for (uint32_t i = 0; i < t->n; i++) {
        struct vvfat_base *b = base_find(s, t->e[i].rel);
        if (b && b->is_dir == t->e[i].is_dir)
            p->gone[b - s->base] = false;
    }
    if ((r = find_moves(n, t, p)) < 0)
        return r;
    for (uint32_t i = 0; i < s->nbase; i++) {
        if (p->gone[i])
            keep_open(s, &s->base[i]);
    }
    for (uint32_t i = 0; i < t->n; i++) {
        if (p->acts[i] == WRITE)
            keep_open(s, base_find(s, t->e[i].rel));
    }
    apply_gone(n, p->gone, false, false);
    apply_gone(n, p->gone, true, true);
    apply_new(n, t, p);
    apply_gone(n, p->gone, true, false);
    return rebase(s, t);
}

int vvfat_commit(struct bd_node *n)
{
    struct vvfat_state *s = n->state;
    struct vvfat_tree t;
    struct plan p = { 0 };
    int r = vvfat_tree_read(n, &t);

    if (r == 0) {
        p.acts = calloc(t.n + 1, sizeof(*p.acts));
        p.from = calloc(t.n + 1, sizeof(*p.from));
        p.gone = calloc(s->nbase + 1, sizeof(*p.gone));
        r = p.acts && p.from && p.gone ? plan_and_apply(n, &t, &p) : -ENOMEM;
    }
    if (r == 0)
        vvfat_overlay_clean(&s->ov);
    else
        log_err("%s: the disk's changes are not carried back to %s: %s",
                n->name, s->root, strerror(-r));
    free(p.acts);
    free(p.from);
    free(p.gone);
    vvfat_tree_free(&t);
    return r;
}
