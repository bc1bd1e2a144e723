/*
 * imgfuse list: this user's mounts. Each live mount leaves a state file
 * (fusefs/runstate.c); a file is shown only while its daemon runs and its
 * mountpoint is an imgfuse mount in /proc/self/mountinfo, so the files of
 * a killed daemon are skipped (and removed).
 */
#include "cmds.h"
#include "runstate.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIST_MAX_VALS 64

struct mount_state {
    char *pid, *mountpoint, *read_only, *locks, *lease, *leases_held;
    char *sources[LIST_MAX_VALS], *formats[LIST_MAX_VALS];
    size_t nsources, nformats;
    char buf[16384];
};

/* Undo the state file's escapes in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && (p[1] == 'n' || p[1] == '\\'))
            *w++ = *++p == 'n' ? '\n' : '\\';
        else
            *w++ = *p;
    }
    *w = '\0';
}

static int read_state(const char *path, struct mount_state *st)
{
    memset(st, 0, sizeof(*st));
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t len = fread(st->buf, 1, sizeof(st->buf) - 1, f);
    fclose(f);
    st->buf[len] = '\0';
    for (char *line = st->buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *val = strchr(line, ' ');
        if (!val)
            continue;
        *val++ = '\0';
        unescape(val);
        if (!strcmp(line, "pid")) st->pid = val;
        else if (!strcmp(line, "mountpoint")) st->mountpoint = val;
        else if (!strcmp(line, "read-only")) st->read_only = val;
        else if (!strcmp(line, "locks")) st->locks = val;
        else if (!strcmp(line, "lease")) st->lease = val;
        else if (!strcmp(line, "leases-held")) st->leases_held = val;
        else if (!strcmp(line, "source") && st->nsources < LIST_MAX_VALS)
            st->sources[st->nsources++] = val;
        else if (!strcmp(line, "format") && st->nformats < LIST_MAX_VALS)
            st->formats[st->nformats++] = val;
    }
    return st->pid && st->mountpoint && st->read_only && st->locks &&
           st->lease && st->leases_held ? 0 : -EINVAL;
}

/* Is `dir` an imgfuse mount? mountinfo writes space, tab, newline and
 * backslash in paths as \ooo. */
static bool is_imgfuse_mount(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[PATH_MAX * 2 + 512];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        char mp[PATH_MAX], *p = line, *w = mp;
        for (int field = 0; field < 4 && p; field++)
            p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
        if (!p)
            continue;
        for (; *p && *p != ' ' && w < mp + sizeof(mp) - 1; p++) {
            unsigned o;
            if (*p == '\\' && sscanf(p + 1, "%3o", &o) == 1) {
                *w++ = (char)o;
                p += 3;
            } else {
                *w++ = *p;
            }
        }
        *w = '\0';
        char *sep = strstr(p, " - ");
        found = !strcmp(mp, dir) && sep && !strncmp(sep + 3, "fuse.imgfuse ", 13);
    }
    fclose(f);
    return found;
}

static bool pid_alive(const char *s)
{
    char *end;
    long pid = strtol(s, &end, 10);
    return !*end && pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void json_strs(char *const *v, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            printf(", ");
        json_str(v[i]);
    }
    putchar(']');
}

static void print_json(const struct mount_state *st, bool first)
{
    printf("%s\n    {\n        \"mountpoint\": ", first ? "" : ",");
    json_str(st->mountpoint);
    printf(",\n        \"sources\": ");
    json_strs(st->sources, st->nsources);
    printf(",\n        \"formats\": ");
    json_strs(st->formats, st->nformats);
    printf(",\n        \"read-only\": %s,\n        \"pid\": %s,\n        \"locks\": ",
           !strcmp(st->read_only, "yes") ? "true" : "false", st->pid);
    json_str(st->locks);
    printf(",\n        \"lease\": ");
    json_str(st->lease);
    printf(",\n        \"leases-held\": %s\n    }", st->leases_held);
}

static void print_text(const struct mount_state *st)
{
    printf("%s\n", st->mountpoint);
    for (size_t i = 0; i < st->nsources; i++)
        printf("  source:     %s%s%s\n", st->sources[i], i < st->nformats ? ", " : "",
               i < st->nformats ? st->formats[i] : "");
    printf("  read-only:  %s\n  pid:        %s\n  locks:      %s\n"
           "  lease:      %s (%s held)\n", st->read_only, st->pid, st->locks,
           st->lease, st->leases_held);
}

int cmd_list(struct cli *c)
{
    char dir[PATH_MAX - 300], path[PATH_MAX];
    struct mount_state *st = malloc(sizeof(*st));
    size_t shown = 0;
    if (!st || runstate_dir(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "imgfuse: list: out of memory or runtime directory too long\n");
        free(st);
        return 1;
    }
    DIR *d = opendir(dir);
    if (!d && errno != ENOENT) {
        fprintf(stderr, "imgfuse: list: %s: %s\n", dir, strerror(errno));
        free(st);
        return 1;
    }
    if (c->json)
        printf("[");
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 7 || strcmp(e->d_name + n - 6, ".state"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (read_state(path, st) < 0)
            continue;
        if (!pid_alive(st->pid)) {
            unlink(path);       /* a daemon that died without cleaning up */
            continue;
        }
        if (!is_imgfuse_mount(st->mountpoint))
            continue;           /* unmounted, or in another mount namespace */
        if (c->json)
            print_json(st, shown == 0);
        else
            print_text(st);
        shown++;
    }
    if (d)
        closedir(d);
    if (c->json)
        printf("%s]\n", shown ? "\n" : "");
    free(st);
    return 0;
}
