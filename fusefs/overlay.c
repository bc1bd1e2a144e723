/*
 * --overlay=FILE|temp: the SOURCE opened read-only and never written, a
 * qcow2 overlay over it taking every write. FILE is created when absent
 * and reused when it is an overlay of this SOURCE; temp is a new file in
 * $TMPDIR removed as soon as it is open, so nothing is left behind however
 * the mount ends.
 */
#include "cmds.h"
#include "core/graph.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct backing_name {
    char *name;
};

static void get_backing_name(void *arg, const char *key, const char *val)
{
    struct backing_name *b = arg;
    if (strcmp(key, "backing_file") == 0 && !b->name)
        b->name = strdup(val);
}

/* A reused overlay must be one made for this image (a local file: the
 * same inode), or its writes would land over the wrong disk. */
static int check_reused(const char *overlay, struct bd_node *ov,
                        struct bd_err *err)
{
    const char *src = bd_node_image_name(ov->backing);
    struct backing_name b = { 0 };
    struct stat s1, s2;
    int r = 0;
    if (stat(src, &s1) != 0)
        return 0;                   /* not a local file: nothing to compare */
    bd_node_info(ov, BD_INFO_FORMAT, get_backing_name, &b);
    if (b.name && b.name[0] == '/' &&
        (stat(b.name, &s2) != 0 || s1.st_dev != s2.st_dev || s1.st_ino != s2.st_ino))
        r = bd_err_set(err, EINVAL, "overlay %s: was made for the image %s, "
                       "not %s; name another overlay file (it is created)",
                       overlay, b.name, src);
    free(b.name);
    return r;
}

int fusefs_open_overlay(struct cli *c, const char *opts, struct bd_node **out,
                        struct bd_err *err)
{
    struct bd_flags sf = c->flags;
    struct bd_node *src;
    char tdir[PATH_MAX] = "", tfile[PATH_MAX + 32];
    const char *path = c->overlay;
    bool temp = strcmp(c->overlay, "temp") == 0;
    struct stat st;
    int r;

    sf.read_only = true;            /* the source is never written */
    r = bd_open_image(c->sources[0], c->format, opts, &sf, &src, err);
    if (r < 0)
        return r;
    if (temp) {
        const char *tmp = getenv("TMPDIR");
        snprintf(tdir, sizeof(tdir), "%s/imgfuse-overlay.XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tdir)) {
            bd_node_close(src);
            return bd_err_set(err, errno, "--overlay=temp: cannot make a "
                              "directory in %s: %s (set TMPDIR)",
                              tmp && *tmp ? tmp : "/tmp", strerror(errno));
        }
        snprintf(tfile, sizeof(tfile), "%s/overlay.qcow2", tdir);
        path = tfile;
    }
    bool reuse = !temp && stat(path, &st) == 0;
    struct stat ss;
    if (reuse && stat(bd_node_image_name(src), &ss) == 0 &&
        ss.st_dev == st.st_dev && ss.st_ino == st.st_ino) {
        bd_node_close(src);
        return bd_err_set(err, EINVAL, "--overlay=%s: is the source image "
                          "itself; name a new file for the overlay", path);
    }
    if (!reuse) {
        r = bd_create_overlay(path, src, err);
        if (r < 0) {
            bd_node_close(src);
            goto out;
        }
    }
    c->flags.read_only = c->flags.force_share = false;
    r = bd_open_overlay(path, src, &c->flags, out, err);
    if (r == 0 && reuse)
        r = check_reused(path, *out, err);
    if (r < 0 && *out) {
        bd_node_close(*out);
        *out = NULL;
    }
    if (r < 0 && !reuse && !temp)
        unlink(path);
out:
    if (temp) {
        unlink(tfile);
        rmdir(tdir);
    }
    return r;
}
