/*
 * vvfat scan: walk the host directory breadth first, so that the children
 * of each directory sit side by side in objs[]. Symbolic links are followed
 * only when they lead inside DIR (and not to a directory above them);
 * other links, sockets, devices and FIFOs are left out. What is left out
 * and what is renamed is said in one warning each.
 */
#include "vvfat.h"

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_MAX 12         /* names a warning lists before "and N more" */

struct notes {
    char list[1024];
    unsigned count;
};

static void note(struct notes *nt, const char *fmt, const char *a,
                 const char *b)
{
    size_t l = strlen(nt->list);
    if (nt->count++ < LIST_MAX)
        snprintf(nt->list + l, sizeof(nt->list) - l, fmt, l ? ", " : "", a, b);
}

static void say(const struct notes *nt, const char *dir, const char *what)
{
    if (!nt->count)
        return;
    if (nt->count > LIST_MAX)
        log_warn("%s: %s (%u): %s and %u more", dir, what, nt->count,
                 nt->list, nt->count - LIST_MAX);
    else
        log_warn("%s: %s (%u): %s", dir, what, nt->count, nt->list);
}

static int grow(struct vvfat_state *s, struct bd_err *err)
{
    if (s->nobjs < s->cap)
        return 0;
    if (s->cap >= VVFAT_MAX_OBJECTS)
        return bd_err_set(err, EFBIG, "%s: more than %u files and directories; "
                          "FAT images of this size are not supported, give a "
                          "smaller directory", s->root, VVFAT_MAX_OBJECTS);
    uint32_t cap = s->cap ? s->cap * 2 : 256;
    struct vvfat_obj *o = realloc(s->objs, cap * sizeof(*o));
    if (!o)
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->root);
    memset(o + s->cap, 0, (cap - s->cap) * sizeof(*o));
    s->objs = o;
    s->cap = cap;
    return 0;
}

static bool inside(const char *root, const char *path)
{
    size_t l = strlen(root);
    if (l == 1)
        return path[0] == '/';
    return strncmp(root, path, l) == 0 && (path[l] == '/' || path[l] == 0);
}

/* Is (dev, ino) the directory `dir` or one above it? */
static bool is_ancestor(const struct vvfat_state *s, uint32_t dir,
                        const struct stat *st)
{
    for (;;) {
        const struct vvfat_obj *o = &s->objs[dir];
        if (o->dev == st->st_dev && o->ino == st->st_ino)
            return true;
        if (dir == 0)
            return false;
        dir = o->parent;
    }
}

static void set_stat(struct vvfat_obj *o, const struct stat *st)
{
    o->dev = st->st_dev;
    o->ino = st->st_ino;
    o->mtime = st->st_mtim;
    o->atime = st->st_atim;
    o->ctime = st->st_ctim;
    o->is_dir = S_ISDIR(st->st_mode);
    o->size = o->is_dir ? 0 : (uint64_t)st->st_size;
}

/*
 * Look at the entry `name` of directory objs[dir]: *path (malloc'd) and *st
 * of what to show, 1 to show it, 0 to leave it out (noted), -errno.
 */
static int examine(struct vvfat_state *s, uint32_t dir, const char *name,
                   char **path, struct stat *st, struct notes *skipped)
{
    const char *dpath = s->objs[dir].path;
    char *p = malloc(strlen(dpath) + strlen(name) + 2);
    if (!p)
        return -ENOMEM;
    sprintf(p, "%s/%s", strcmp(dpath, "/") ? dpath : "", name);
    if (lstat(p, st) != 0) {
        note(skipped, "%s%s (%s)", p, strerror(errno));
        free(p);
        return 0;
    }
    if (S_ISLNK(st->st_mode)) {
        char *real = realpath(p, NULL);
        if (!real || !inside(s->root, real) || stat(real, st) != 0) {
            note(skipped, "%s%s (%s)", p, real ? "a link leading outside the "
                 "directory" : "a dangling link");
            free(real);
            free(p);
            return 0;
        }
        free(p);
        p = real;
    }
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) {
        note(skipped, "%s%s (%s)", p, "not a file or directory");
        free(p);
        return 0;
    }
    if (S_ISDIR(st->st_mode) && is_ancestor(s, dir, st)) {
        note(skipped, "%s%s (%s)", p, "a link to a directory above it");
        free(p);
        return 0;
    }
    if (S_ISREG(st->st_mode) && (uint64_t)st->st_size > VVFAT_FILE_MAX) {
        int r = -EFBIG;
        free(p);
        return r;
    }
    *path = p;
    return 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory path, sorted; *out and each name malloc'd. */
static int list_dir(const char *path, char ***out, uint32_t *count,
                    struct bd_err *err)
{
    DIR *d = opendir(path);
    char **names = NULL;
    uint32_t n = 0, cap = 0;
    struct dirent *de;

    if (!d)
        return bd_err_set(err, errno, "%s: cannot read the directory: %s",
                          path, strerror(errno));
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = cap <= VVFAT_DIR_MAX * 2u ? realloc(names, cap * sizeof(*nn))
                                                   : NULL;
            if (!nn)
                goto fail;
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name)))
            goto fail;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    *out = names;
    *count = n;
    return 0;
fail:
    closedir(d);
    for (uint32_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return bd_err_set(err, ENOMEM, "%s: too many entries or out of memory "
                      "(FAT holds at most %u in one directory)", path,
                      VVFAT_DIR_MAX);
}

static int add_child(struct vvfat_state *s, uint32_t dir, char *name,
                     struct notes *skipped, struct bd_err *err)
{
    struct stat st;
    char *path = NULL;
    int r = examine(s, dir, name, &path, &st, skipped);
    if (r == -EFBIG)
        return bd_err_set(err, EFBIG, "%s/%s: a FAT file holds at most 4 GiB "
                          "- 1 byte; leave it out of the directory",
                          s->objs[dir].path, name);
    if (r <= 0) {
        free(name);
        return r == 0 ? 0 : bd_err_set(err, -r, "%s: out of memory", s->root);
    }
    if ((r = grow(s, err)) < 0) {
        free(path);
        free(name);
        return r;
    }
    struct vvfat_obj *o = &s->objs[s->nobjs++];
    const char *dh = s->objs[dir].hpath;
    o->path = path;
    o->name = name;
    o->parent = dir;
    o->keep_fd = -1;
    if (asprintf(&o->hpath, "%s/%s", strcmp(dh, "/") ? dh : "", name) < 0) {
        o->hpath = NULL;
        return bd_err_set(err, ENOMEM, "%s: out of memory", s->root);
    }
    set_stat(o, &st);
    return 0;
}

static int name_kids(struct vvfat_state *s, uint32_t dir, struct notes *renamed,
                     struct bd_err *err)
{
    struct vvfat_obj *d = &s->objs[dir];
    struct vvfat_obj *kids = s->objs + d->first_child;
    uint16_t buf[VVFAT_LFN_MAX];

    for (uint32_t i = 0; i < d->children; i++) {
        size_t len;
        kids[i].renamed = vvfat_lfn_from_host(kids[i].name, buf, &len) != 0;
        /* room for a " (N)" that makes it unique */
        kids[i].lfn = malloc((len + 8) * sizeof(uint16_t));
        if (!kids[i].lfn)
            return bd_err_set(err, ENOMEM, "%s: out of memory", s->root);
        memcpy(kids[i].lfn, buf, len * 2);
        kids[i].lfn_len = (uint16_t)len;
    }
    int r = vvfat_name_children(kids, d->children);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot name its entries in FAT: %s",
                          d->path, strerror(-r));
    for (uint32_t i = 0; i < d->children; i++) {
        char shown[VVFAT_LFN_MAX * 3 + 1];
        if (!kids[i].renamed)
            continue;
        vvfat_utf16_to_utf8(kids[i].lfn, kids[i].lfn_len, shown, sizeof(shown));
        note(renamed, "%s'%s' as '%s'", kids[i].path, shown);
    }
    return 0;
}

static int scan_dir(struct vvfat_state *s, uint32_t dir, struct notes *skipped,
                    struct notes *renamed, struct bd_err *err)
{
    char **names = NULL;
    uint32_t count = 0;
    int r = list_dir(s->objs[dir].path, &names, &count, err);
    if (r < 0)
        return r;
    s->objs[dir].first_child = s->nobjs;
    uint32_t i;
    for (i = 0; i < count && r == 0; i++)
        r = add_child(s, dir, names[i], skipped, err);
    for (; i < count; i++)
        free(names[i]);
    free(names);
    if (r < 0)
        return r;
    s->objs[dir].children = s->nobjs - s->objs[dir].first_child;
    return name_kids(s, dir, renamed, err);
}

int vvfat_scan(struct vvfat_state *s, const char *dir, struct bd_err *err)
{
    struct notes skipped = { .count = 0 }, renamed = { .count = 0 };
    struct stat st;
    int r;

    s->root = realpath(dir, NULL);
    if (!s->root) {
        if (errno == ENOENT)
            return bd_err_set(err, ENOENT, "%s: no such directory; check the "
                              "path given to vvfat", dir);
        return bd_err_set(err, errno, "%s: %s", dir, strerror(errno));
    }
    if (stat(s->root, &st) != 0)
        return bd_err_set(err, errno, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return bd_err_set(err, ENOTDIR, "%s: is not a directory; vvfat shows "
                          "a directory as a FAT disk", dir);
    if ((r = grow(s, err)) < 0)
        return r;
    s->nobjs = 1;
    s->objs[0].keep_fd = -1;
    if (!(s->objs[0].path = strdup(s->root)) ||
        !(s->objs[0].hpath = strdup(s->root)))
        return bd_err_set(err, ENOMEM, "%s: out of memory", dir);
    set_stat(&s->objs[0], &st);
    for (uint32_t i = 0; i < s->nobjs; i++) {
        if (!s->objs[i].is_dir)
            continue;
        r = scan_dir(s, i, &skipped, &renamed, err);
        if (r < 0)
            return r;
    }
    say(&skipped, dir, "left out of the FAT disk");
    say(&renamed, dir, "names FAT cannot hold, shown changed");
    return 0;
}

void vvfat_free_tree(struct vvfat_state *s)
{
    for (uint32_t i = 0; i < s->nobjs; i++) {
        free(s->objs[i].path);
        free(s->objs[i].name);
        free(s->objs[i].lfn);
        free(s->objs[i].dirbuf);
        free(s->objs[i].hpath);
        if (s->objs[i].keep_fd > 0)
            close(s->objs[i].keep_fd);
    }
    free(s->objs);
    free(s->alloc);
    free(s->root);
    s->objs = NULL;
    s->alloc = NULL;
    s->root = NULL;
    s->nobjs = s->cap = 0;
}
