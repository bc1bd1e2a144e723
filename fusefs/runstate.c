/*
 * A live mount's traces outside itself: the state file `imgfuse list` reads
 * and systemd's readiness notification. The state file is lines of
 * "KEY VALUE", a backslash and a newline in VALUE written as \\ and \n.
 */
#include "config.h"
#include "runstate.h"
#include "core/graph.h"
#include "locks/lease.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

static char state_path[PATH_MAX];

int runstate_dir(char *buf, size_t size)
{
    const char *env = getenv("IMGFUSE_RUNTIME_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (env && *env)
        n = snprintf(buf, size, "%s", env);
    else if (getuid() == 0)
        n = snprintf(buf, size, "/run/imgfuse");
    else if (xdg && *xdg == '/')
        n = snprintf(buf, size, "%s/imgfuse", xdg);
    else
        n = snprintf(buf, size, "/tmp/imgfuse-%u", (unsigned)getuid());
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static void put(FILE *f, const char *key, const char *val)
{
    fprintf(f, "%s ", key);
    for (const char *p = val ? val : ""; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", f);
        else if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
    fputc('\n', f);
}

/* The locks the mount holds on its images, as the flags asked for them. */
static const char *locks_held(const struct cli *c)
{
    if (c->flags.force_share || c->flags.locking == BD_LOCKING_OFF)
        return "none";
    if (c->flags.read_only)
        return "read";
    return c->flags.share_rw ? "write,shared" : "write";
}

static int write_state(const struct cli *c, const struct fusefs *fs,
                       const char *mountpoint)
{
    char dir[PATH_MAX - 64], tmp[PATH_MAX], num[32];
    struct stat st;
    int r = runstate_dir(dir, sizeof(dir));
    if (r < 0)
        return r;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    /* someone else's directory would let them forge or hide our state */
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
        return -EPERM;
    snprintf(state_path, sizeof(state_path), "%s/%d.state", dir, (int)getpid());
    snprintf(tmp, sizeof(tmp), "%s/.%d.tmp", dir, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    snprintf(num, sizeof(num), "%d", (int)getpid());
    put(f, "pid", num);
    put(f, "mountpoint", mountpoint);
    for (size_t i = 0; i < c->nsources; i++)
        put(f, "source", c->sources[i]);
    for (size_t i = 0; i < fs->nfiles; i++)
        if (!fs->files[i].is_slice && !fs->files[i].shares_node)
            put(f, "format", fs->files[i].node->drv->name);
    put(f, "read-only", c->flags.read_only ? "yes" : "no");
    put(f, "locks", locks_held(c));
    snprintf(num, sizeof(num), "%u", lease_count());
    put(f, "lease", c->flags.lease ? c->flags.lease : "none");
    put(f, "leases-held", num);
    if (fclose(f) != 0 || rename(tmp, state_path) != 0) {
        r = -errno;
        unlink(tmp);
        state_path[0] = '\0';
        return r;
    }
    return 0;
}

void runstate_publish(const struct cli *c, const struct fusefs *fs,
                      const char *mountpoint)
{
    int r = write_state(c, fs, mountpoint);
    if (r < 0) {
        state_path[0] = '\0';
        log_warn("%s: no state file for imgfuse list: %s", mountpoint,
                 strerror(-r));
    }
#if HAVE_LIBSYSTEMD
    r = sd_notifyf(0, "READY=1\nSTATUS=serving %s on %s", c->sources[0],
                   mountpoint);
    if (r < 0)
        log_warn("%s: cannot notify systemd: %s", mountpoint, strerror(-r));
#endif
}

void runstate_remove(void)
{
#if HAVE_LIBSYSTEMD
    sd_notify(0, "STOPPING=1");
#endif
    if (state_path[0])
        unlink(state_path);
    state_path[0] = '\0';
}
