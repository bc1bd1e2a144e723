/*
 * The mount command's life: open images (before any FUSE or fork work, so
 * errors reach the terminal), fork a daemon that reports back through a
 * pipe once the kernel answers on the mountpoint, serve, and on unmount or
 * signal flush, release locks, remove the pidfile and exit 0.
 */
#include "mount.h"
#include "cmds.h"
#include "fusefs.h"
#include "core/graph.h"
#include "locks/lease.h"
#include "runstate.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct report {
    int status;                     /* exit status for the parent */
    char msg[1100];
};

struct mount_ctx {
    struct cli *c;
    struct fusefs fs;
    int report_fd;                  /* -1 in the foreground */
    bool created_mountpoint;
    dev_t mp_dev_before;
    pthread_t ready_thread;
    char mountpoint[PATH_MAX];
};

static void send_report(struct mount_ctx *m, int status, const char *msg)
{
    if (m->report_fd < 0) {
        if (status && msg && *msg)
            fprintf(stderr, "imgfuse: %s\n", msg);
        return;
    }
    struct report rep = { .status = status };
    snprintf(rep.msg, sizeof(rep.msg), "%s", msg ? msg : "");
    ssize_t w = write(m->report_fd, &rep, sizeof(rep));
    (void)w;
    close(m->report_fd);
    m->report_fd = -1;
}

/* The parent: wait for the daemon's verdict. */
static int wait_for_child(pid_t pid, int fd)
{
    struct report rep;
    ssize_t got = 0;
    while (got < (ssize_t)sizeof(rep)) {
        ssize_t r = read(fd, (char *)&rep + got, sizeof(rep) - (size_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += r;
    }
    if (got != (ssize_t)sizeof(rep)) {
        int st = 0;
        waitpid(pid, &st, 0);
        fprintf(stderr, "imgfuse: the mount process ended before the mount was "
                "live (%s %d)\n", WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        return 1;
    }
    if (rep.status != 0) {
        int st;
        fprintf(stderr, "imgfuse: %s\n", rep.msg);
        waitpid(pid, &st, 0);
    }
    return rep.status;
}

static const char *base_without_ext(const char *src, char *buf, size_t size)
{
    const char *s = src;
    if (strncmp(s, "json:", 5) == 0 || strstr(s, "://"))
        s = "image";
    const char *slash = strrchr(s, '/');
    snprintf(buf, size, "%s", slash ? slash + 1 : s);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
    if (!*buf)
        snprintf(buf, size, "image");
    return buf;
}

static int prepare_mountpoint(struct mount_ctx *m, struct bd_err *err)
{
    struct cli *c = m->c;
    struct stat st;
    if (stat(c->mountpoint, &st) != 0) {
        if (errno != ENOENT)
            return bd_err_set(err, errno, "mountpoint %s: %s", c->mountpoint,
                              strerror(errno));
        if (c->nsources > 1)
            return bd_err_set(err, ENOENT, "mountpoint %s: does not exist; with "
                              "several sources it must be a directory",
                              c->mountpoint);
        int fd = open(c->mountpoint, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return bd_err_set(err, errno, "mountpoint %s: cannot create it: %s",
                              c->mountpoint, strerror(errno));
        close(fd);
        m->created_mountpoint = true;
        if (stat(c->mountpoint, &st) != 0)
            return bd_err_set(err, errno, "mountpoint %s: %s", c->mountpoint,
                              strerror(errno));
    }
    if (!realpath(c->mountpoint, m->mountpoint))
        return bd_err_set(err, errno, "mountpoint %s: %s", c->mountpoint,
                          strerror(errno));
    FILE *mounts = fopen("/proc/self/mounts", "r");
    if (mounts) {
        char line[PATH_MAX + 256], dev[256], dir[PATH_MAX];
        while (fgets(line, sizeof(line), mounts)) {
            if (sscanf(line, "%255s %4095s", dev, dir) == 2 &&
                strcmp(dir, m->mountpoint) == 0) {
                fclose(mounts);
                return bd_err_set(err, EBUSY, "mountpoint %s: something is "
                                  "already mounted there (%s); unmount it first "
                                  "with fusermount3 -u %s", c->mountpoint, dev,
                                  c->mountpoint);
            }
        }
        fclose(mounts);
    }
    m->mp_dev_before = st.st_dev;
    m->fs.dir_mode = S_ISDIR(st.st_mode);
    if (!m->fs.dir_mode && !S_ISREG(st.st_mode))
        return bd_err_set(err, EINVAL, "mountpoint %s: must be a regular file, "
                          "a directory or a new path", c->mountpoint);
    if (!m->fs.dir_mode && c->nsources > 1)
        return bd_err_set(err, EINVAL, "mountpoint %s: several sources need a "
                          "directory as the mountpoint", c->mountpoint);
    m->fs.dir_st = st;
    return 0;
}

static void image_stat(struct bd_node *n, struct stat *st)
{
    struct bd_node *p = n;
    while (p->file)
        p = p->file;
    if (p->filename && stat(p->filename, st) == 0) {
        if (S_ISDIR(st->st_mode))       /* vvfat: the image of a directory */
            st->st_mode &= ~(mode_t)0111;
        return;
    }
    memset(st, 0, sizeof(*st));
    st->st_mode = 0644;
    st->st_uid = getuid();
    st->st_gid = getgid();
    clock_gettime(CLOCK_REALTIME, &st->st_mtim);
    st->st_atim = st->st_ctim = st->st_mtim;
}

/* Add one entry; takes the node (closed on failure). */
static int add_file(struct mount_ctx *m, size_t *cap, const char *name,
                    const char *source, struct bd_node *n, struct bd_err *err)
{
    for (size_t j = 0; j < m->fs.nfiles; j++) {
        if (strcmp(m->fs.files[j].name, name) == 0) {
            bd_node_close(n);
            return bd_err_set(err, EEXIST, "%s and another source would both "
                              "appear as %s; mount them in separate "
                              "directories", source, name);
        }
    }
    if (m->fs.nfiles == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void *nf = realloc(m->fs.files, nc * sizeof(*m->fs.files));
        if (!nf) {
            bd_node_close(n);
            return bd_err_set(err, ENOMEM, "out of memory");
        }
        m->fs.files = nf;
        *cap = nc;
    }
    struct stat st;
    image_stat(n, &st);
    int r = fusefs_file_init(&m->fs.files[m->fs.nfiles], name, n, &st);
    if (r < 0) {
        bd_node_close(n);
        return bd_err_set(err, -r, "out of memory");
    }
    m->fs.nfiles++;
    return 0;
}

/* Add a partition of files[disk] as its own file over the same node. */
static int add_slice(struct mount_ctx *m, size_t *cap, const char *name,
                     const char *source, size_t disk,
                     const struct bd_partition *p, struct bd_err *err)
{
    for (size_t j = 0; j < m->fs.nfiles; j++) {
        if (strcmp(m->fs.files[j].name, name) == 0)
            return bd_err_set(err, EEXIST, "%s: partition %u and another "
                              "source would both appear as %s; mount them in "
                              "separate directories", source, p->number, name);
    }
    if (m->fs.nfiles == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void *nf = realloc(m->fs.files, nc * sizeof(*m->fs.files));
        if (!nf)
            return bd_err_set(err, ENOMEM, "out of memory");
        m->fs.files = nf;
        *cap = nc;
    }
    struct stat st;
    struct fusefs_file *ff = &m->fs.files[m->fs.nfiles];
    image_stat(m->fs.files[disk].node, &st);
    int r = fusefs_file_init(ff, name, m->fs.files[disk].node, &st);
    if (r < 0)
        return bd_err_set(err, -r, "out of memory");
    ff->is_slice = ff->shares_node = true;
    ff->slice_off = p->off;
    ff->slice_len = p->len;
    ff->io_idx = disk;
    m->fs.has_slices = true;
    m->fs.nfiles++;
    return 0;
}

/* Directory mode: every internal snapshot of `n` as NAME@SNAPSHOT.raw,
 * read-only. The mount's own node already holds the image's locks. */
static int add_snapshots(struct mount_ctx *m, size_t *cap, const char *source,
                         const char *base, struct bd_node *n, const char *opts,
                         struct bd_err *err)
{
    char **names = NULL;
    int count = bd_node_snapshots(n, &names);
    if (count < 0)
        return bd_err_set(err, -count, "%s: cannot list its snapshots", source);
    int r = 0;
    for (int k = 0; k < count; k++) {
        char sopts[sizeof(m->c->fmt_opts) + 1024], name[512];
        struct bd_flags f = m->c->flags;
        struct bd_node *sn;
        if (r < 0 || strchr(names[k], ',') || strchr(names[k], '/')) {
            if (r == 0)
                log_warn("%s: snapshot '%s' has a name that cannot be a file "
                         "name; mount it with --snapshot and its id", source,
                         names[k]);
            continue;
        }
        snprintf(sopts, sizeof(sopts), "%s%ssnapshot=%s", opts, *opts ? "," : "",
                 names[k]);
        f.read_only = f.force_share = true;
        r = bd_open_image(source, n->drv->name, sopts, &f, &sn, err);
        if (r == 0) {
            snprintf(name, sizeof(name), "%s@%s.raw", base, names[k]);
            r = add_file(m, cap, name, source, sn, err);
        }
    }
    for (int k = 0; k < count; k++)
        free(names[k]);
    free(names);
    return r;
}

/* Directory mode: each partition of the disk files[disk] as
 * NAME-pN.raw, a slice of the disk's node. */
static int add_partitions(struct mount_ctx *m, size_t *cap, size_t disk,
                          const char *source, const char *base,
                          struct bd_err *err)
{
    struct bd_partition_table t;
    struct bd_err perr = { 0 };
    struct bd_node *n = m->fs.files[disk].node;
    if (bd_node_partitions(n, &t, &perr) < 0) {
        log_warn("%s; its partitions are not shown", perr.msg);
        return 0;
    }
    int r = 0;
    for (size_t k = 0; k < t.n && r == 0; k++) {
        const struct bd_partition *p = &t.v[k];
        char name[300];
        if (p->container)
            continue;               /* the logical ones inside are shown */
        snprintf(name, sizeof(name), "%s-p%u.raw", base, p->number);
        r = add_slice(m, cap, name, source, disk, p, err);
    }
    bd_partition_table_free(&t);
    return r;
}

/* File mode, --partition=N: the one file becomes partition N. */
static int pick_partition(struct mount_ctx *m, const char *source,
                          struct bd_err *err)
{
    struct fusefs_file *ff = &m->fs.files[0];
    struct bd_partition_table t;
    int r = bd_node_partitions(ff->node, &t, err);
    if (r < 0)
        return r;
    const struct bd_partition *p = bd_partition_find(&t, m->c->partition);
    if (!p || p->container) {
        char list[256] = "";
        for (size_t k = 0; k < t.n; k++) {
            size_t l = strlen(list);
            if (!t.v[k].container && l + 16 < sizeof(list))
                snprintf(list + l, sizeof(list) - l, "%s%u", l ? ", " : "",
                         t.v[k].number);
        }
        r = bd_err_set(err, ENOENT, "%s: has no partition %u%s%s%s; see "
                       "imgfuse info %s", source, m->c->partition,
                       p ? " to mount (it is the extended partition that "
                       "holds the logical ones)" : "",
                       *list ? "; its partitions are " : " (it has no partition "
                       "table that libblkid reads)", list, source);
    } else {
        ff->is_slice = true;
        ff->slice_off = p->off;
        ff->slice_len = p->len;
    }
    bd_partition_table_free(&t);
    return r;
}

static int open_sources(struct mount_ctx *m, struct bd_err *err)
{
    struct cli *c = m->c;
    size_t cap = 0;
    if (c->partition && m->fs.dir_mode)
        return bd_err_set(err, EINVAL, "--partition=%u: in directory mode every "
                          "partition appears as NAME-pN.raw already; give a "
                          "file mountpoint to mount one partition",
                          c->partition);
    if (c->partition && c->flags.growable)
        return bd_err_set(err, EINVAL, "--partition and --growable do not go "
                          "together: a partition does not grow");
    for (size_t i = 0; i < c->nsources; i++) {
        char base[256], name[300], xopts[sizeof(c->fmt_opts) + 512];
        const char *opts = cli_source_opts(c, c->sources[i], xopts, sizeof(xopts));
        struct bd_node *n = NULL;
        unsigned leases = lease_count();
        int r = c->overlay ? fusefs_open_overlay(c, opts, &n, err)
                           : bd_open_image_filtered(c->sources[i], c->format, opts,
                                                    c->file_filter[0] ? c->file_filter : NULL,
                                                    &c->flags, &n, err);
        if (r < 0)
            return r;
        if (c->flags.lease && lease_count() == leases) {
            bd_node_close(n);
            return bd_err_set(err, ENOTSUP, "%s: --lease guards image files and "
                              "devices, and this source is neither (nbd://, "
                              "iscsi://, ...): no lease could be taken; mount "
                              "it without --lease", c->sources[i]);
        }
        /* Name it after the image file, whatever form SOURCE took (with
         * an overlay: after the source, the overlay's backing). */
        struct bd_node *pn = c->overlay ? n->backing : n;
        while (pn->file)
            pn = pn->file;
        base_without_ext(pn->filename ? pn->filename : c->sources[i], base,
                         sizeof(base));
        snprintf(name, sizeof(name), "%s.raw", base);
        size_t disk = m->fs.nfiles;
        r = add_file(m, &cap, name, c->sources[i], n, err);
        if (r == 0 && m->fs.dir_mode && !strstr(opts, "snapshot="))
            r = add_snapshots(m, &cap, c->sources[i], base, n, opts, err);
        /* A disk and its partitions are separate inodes over the same
         * bytes; with kernel write caching their dirty pages could not be
         * kept apart, so such mounts show the disk alone. */
        if (r == 0 && m->fs.dir_mode && !c->flags.growable && !c->writeback_cache)
            r = add_partitions(m, &cap, disk, c->sources[i], base, err);
        if (r == 0 && c->partition)
            r = pick_partition(m, c->sources[i], err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < m->fs.nfiles; i++) {
        struct fusefs_file *ff = &m->fs.files[i];
        ff->io = ff->shares_node ? &m->fs.files[ff->io_idx] : ff;
    }
    return 0;
}

static void close_sources(struct mount_ctx *m)
{
    for (size_t i = 0; i < m->fs.nfiles; i++) {
        struct fusefs_file *ff = &m->fs.files[i];
        if (ff->shares_node) {          /* the disk's file closes the node */
            fusefs_file_fini(ff);
            continue;
        }
        int r = wc_flush(ff);
        if (r < 0)
            log_err("%s: gathered writes were lost: %s", ff->node->name,
                    strerror(-r));
        r = bd_flush(ff->node);
        if (r < 0)
            log_err("%s: final flush failed: %s", ff->node->name, strerror(-r));
        bd_node_close(ff->node);
        fusefs_file_fini(ff);
    }
    free(m->fs.files);
    m->fs.files = NULL;
    m->fs.nfiles = 0;
}

static int write_pidfile(const char *path, struct bd_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return bd_err_set(err, errno, "pidfile %s: %s", path, strerror(errno));
    fprintf(f, "%d\n", (int)getpid());
    if (fclose(f) != 0)
        return bd_err_set(err, errno, "pidfile %s: %s", path, strerror(errno));
    return 0;
}

/*
 * With kernel write caching the kernel trusts only its own i_size, and the
 * root inode of a file mount is born with size 0. Storing the image's last
 * byte into the kernel's cache (FUSE_NOTIFY_STORE) extends i_size to the
 * image size, after which the kernel keeps it.
 */
static int teach_root_size(struct mount_ctx *m)
{
    struct fusefs_file *ff = &m->fs.files[0];
    int64_t size = ff->is_slice ? (int64_t)ff->slice_len : bd_size(ff->node);
    uint8_t last;
    if (size <= 0)
        return size < 0 ? (int)size : 0;
    int r = bd_pread(ff->node, &last, 1, ff->slice_off + (uint64_t)size - 1);
    if (r < 0)
        return r;
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(1);
    bv.buf[0].mem = &last;
    r = fuse_lowlevel_notify_store(m->fs.se, FUSE_ROOT_ID, size - 1, &bv, 0);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(m->mountpoint, &st) != 0 || st.st_size != size)
        return -EIO;
    return 0;
}

/* Runs beside the session loop: once a stat of the mountpoint is answered
 * by us, the mount is live and the parent may return. */
static void *ready_main(void *arg)
{
    struct mount_ctx *m = arg;
    struct stat st;
    struct bd_err err = { 0 };
    int r = stat(m->mountpoint, &st);
    if (r != 0 || st.st_dev == m->mp_dev_before) {
        send_report(m, 1, "the kernel did not answer on the mountpoint after "
                    "mounting; is /dev/fuse usable?");
        fuse_session_exit(m->fs.se);
        return NULL;
    }
    if (m->fs.writeback_cache && !m->fs.dir_mode && teach_root_size(m) < 0) {
        send_report(m, 1, "cannot tell the kernel the image size; try again "
                    "with --share-rw or --cache=none");
        fuse_session_exit(m->fs.se);
        return NULL;
    }
    if (m->c->pidfile && write_pidfile(m->c->pidfile, &err) < 0) {
        send_report(m, 1, err.msg);
        fuse_session_exit(m->fs.se);
        return NULL;
    }
    runstate_publish(m->c, &m->fs, m->mountpoint);
    if (m->report_fd >= 0) {
        char ctx[PATH_MAX + 300];
        snprintf(ctx, sizeof(ctx), "%s (%s)", m->mountpoint, m->c->sources[0]);
        log_set_context(ctx);
        log_use_syslog(true);   /* before the parent returns: no message lost */
        send_report(m, 0, "");
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            dup2(devnull, STDERR_FILENO);
            if (devnull > STDERR_FILENO)
                close(devnull);
        }
    }
    return NULL;
}

static int build_fuse_args(struct mount_ctx *m, const char *argv0,
                           struct fuse_args *args)
{
    struct cli *c = m->c;
    char opts[2048];
    const char *src = c->sources[0];
    char fsname[300];
    size_t k = 0;
    /* fsname shows in /proc/mounts; commas would split the option. */
    for (const char *p = src; *p && k < sizeof(fsname) - 1; p++)
        fsname[k++] = *p == ',' ? ';' : *p;
    fsname[k] = '\0';
    snprintf(opts, sizeof(opts), "fsname=%s,subtype=imgfuse,max_read=%u%s%s%s%s",
             fsname, m->fs.max_read, c->flags.read_only ? ",ro" : "",
             getuid() == 0 && !strstr(c->fuse_opts, "allow_other") ? ",allow_other" : "",
             *c->fuse_opts ? "," : "", c->fuse_opts);
    if (fuse_opt_add_arg(args, argv0) != 0 || fuse_opt_add_arg(args, "-o") != 0 ||
        fuse_opt_add_arg(args, opts) != 0)
        return -ENOMEM;
    if (c->debug && fuse_opt_add_arg(args, "-d") != 0)
        return -ENOMEM;
    return 0;
}

static int serve(struct mount_ctx *m, const char *argv0, struct bd_err *err)
{
    struct cli *c = m->c;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse_lowlevel_ops ops;
    int r;

    fusefs_ops(&ops);
    /* 512 KiB reads: the kernel splits an O_DIRECT 1 MiB read into two
     * requests served in parallel; measured 3-4x faster than one 1 MiB
     * request (bench/RESULTS.md). IMGFUSE_MAX_READ overrides, to measure. */
    const char *mr = getenv("IMGFUSE_MAX_READ");
    m->fs.max_read = mr && atoi(mr) >= 4096 && atoi(mr) <= (1 << 20)
                         ? (unsigned)atoi(mr) : 512u << 10;
    /* Kernel write caching merges small writes in the page cache, but the
     * kernel then owns i_size: a write past the end of a fixed-size disk
     * is accepted and fails only at writeback (close/fsync), not short at
     * EOF. So: on for growable mounts, and when asked (--writeback-cache);
     * never with another writer. A file mount's root inode learns its size
     * in ready_main. */
    m->fs.writeback_cache = (c->flags.growable || c->writeback_cache) &&
                            !c->flags.share_rw && c->flags.cache != BD_CACHE_NONE &&
                            !c->flags.read_only;
    m->fs.keep_cache = !c->flags.share_rw;
    /* Gather small sequential writes (fusefs/wcache.h), but not when the
     * user asked for no caching or shares the image with another writer,
     * who must see each write at once. IMGFUSE_WRITE_COMBINE=0 turns it
     * off, for measuring it. */
    /* IMGFUSE_DIRECT_WRONLY=0 keeps write-only opens on the page cache */
    const char *dw = getenv("IMGFUSE_DIRECT_WRONLY");
    m->fs.direct_wronly = !m->fs.writeback_cache && (!dw || strcmp(dw, "0") != 0);
    const char *wc = getenv("IMGFUSE_WRITE_COMBINE");
    m->fs.write_combine = !c->flags.read_only && !c->flags.share_rw &&
                          c->flags.cache != BD_CACHE_NONE &&
                          (!wc || strcmp(wc, "0") != 0);
    /* IMGFUSE_SPLICE=0 turns zero-copy replies off, for measuring them */
    const char *sp = getenv("IMGFUSE_SPLICE");
    m->fs.splice = !sp || strcmp(sp, "0") != 0;
    if (build_fuse_args(m, argv0, &args) < 0)
        return bd_err_set(err, ENOMEM, "out of memory");
    m->fs.se = fuse_session_new(&args, &ops, sizeof(ops), &m->fs);
    fuse_opt_free_args(&args);
    if (!m->fs.se)
        return bd_err_set(err, EINVAL, "cannot start a FUSE session (bad FUSE "
                          "option in -o?)");
    /* A shell starts background jobs with SIGINT ignored, and libfuse only
     * takes signals left at their default: SIGINT must end us too. */
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (fuse_set_signal_handlers(m->fs.se) != 0) {
        r = bd_err_set(err, EIO, "cannot install signal handlers");
        goto out_destroy;
    }
    if (fuse_session_mount(m->fs.se, m->mountpoint) != 0) {
        r = bd_err_set(err, EIO, "cannot mount on %s: is /dev/fuse available "
                       "and fusermount3 installed? (run as root or see the "
                       "messages above)", c->mountpoint);
        goto out_signals;
    }
    if (m->fs.write_combine && wc_start(&m->fs) < 0)
        m->fs.write_combine = false;
    if (pthread_create(&m->ready_thread, NULL, ready_main, m) != 0) {
        r = bd_err_set(err, EAGAIN, "cannot start a thread");
        wc_stop(&m->fs);
        goto out_unmount;
    }
    if (c->single_thread) {
        r = fuse_session_loop(m->fs.se);
    } else {
        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, c->clone_fd);
        fuse_loop_cfg_set_max_threads(cfg, c->threads ? c->threads : 8);
        fuse_loop_cfg_set_idle_threads(cfg, c->threads ? c->threads : 8);
        r = fuse_session_loop_mt(m->fs.se, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    pthread_join(m->ready_thread, NULL);
    wc_stop(&m->fs);        /* gathered writes reach the image */
    r = r < 0 ? bd_err_set(err, -r, "the FUSE session ended with an error: %s",
                           strerror(-r)) : 0;
out_unmount:
    fuse_session_unmount(m->fs.se);
out_signals:
    fuse_remove_signal_handlers(m->fs.se);
out_destroy:
    fuse_session_destroy(m->fs.se);
    m->fs.se = NULL;
    return r;
}

static int create_first(struct cli *c, struct bd_err *err)
{
    uint64_t size;
    if (bd_parse_size(c->create_size, &size) < 0)
        return bd_err_set(err, EINVAL, "--create %s: not a size; use bytes or "
                          "a suffix such as 64M, 10G", c->create_size);
    return bd_create_image(c->sources[0], c->format, size, c->create_opts, err);
}

int fusefs_mount_main(const char *argv0, struct cli *c)
{
    struct mount_ctx m = { .c = c, .report_fd = -1 };
    struct bd_err err = { 0 };
    int r, status = 0;

    if (c->debug_mods)
        log_set_debug(c->debug_mods);
    if (c->create_size) {
        r = create_first(c, &err);
        if (r < 0) {
            fprintf(stderr, "imgfuse: %s\n", err.msg);
            return 1;
        }
    }
    if (!c->foreground) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) {
            perror("imgfuse: pipe");
            return 1;
        }
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("imgfuse: fork");
            return 1;
        }
        if (pid > 0) {
            close(p[1]);
            return wait_for_child(pid, p[0]);
        }
        close(p[0]);
        m.report_fd = p[1];
        signal(SIGPIPE, SIG_IGN);
    }

    r = prepare_mountpoint(&m, &err);
    if (r == 0)
        r = open_sources(&m, &err);
    /* only now leave the terminal's session: --key-prompt asks on it */
    if (!c->foreground)
        setsid();
    if (r == 0)
        r = serve(&m, argv0, &err);
    runstate_remove();
    if (r < 0) {
        send_report(&m, 1, err.msg);
        status = 1;
    }
    close_sources(&m);
    if (c->pidfile && r == 0)
        unlink(c->pidfile);
    if (m.created_mountpoint)
        unlink(m.mountpoint[0] ? m.mountpoint : c->mountpoint);
    if (m.report_fd >= 0)
        send_report(&m, status, status ? err.msg : "");
    return status;
}
