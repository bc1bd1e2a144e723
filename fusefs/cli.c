/*
 * Parses `imgfuse [OPTIONS] SOURCE... MOUNTPOINT`, `imgfuse info`,
 * `imgfuse create` and `imgfuse check` into struct cli. Every long option
 * also works inside -o as key=value, so mount.fuse3 can pass them.
 */
#include "cli.h"
#include "core/graph.h"
#include "locks/lease.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_usage[] =
"usage: imgfuse [OPTIONS] SOURCE... MOUNTPOINT\n"
"       imgfuse info [--json] [--backing-chain] [-F FMT] [-U] SOURCE\n"
"       imgfuse create -F FMT [-o KEY=VAL,...] FILE SIZE\n"
"       imgfuse check [-r leaks|all] [-F FMT] [-o KEY=VAL,...] FILE\n"
"       imgfuse lease init lockd[,dir=DIR] | sanlock,lockspace=PATH,...\n"
"       imgfuse list [--json]   this user's mounts\n"
"       (every command also takes --object secret,... and --key-prompt)\n"
"\n"
"Mount a disk image (or a device, or a URI) as one raw file. MOUNTPOINT is a\n"
"regular file or a new path (that path becomes the raw image), or a\n"
"directory (each SOURCE appears in it as NAME.raw).\n"
"\n"
"SOURCE: a file name, /dev/DEVICE, json:{...}, key=value options\n"
"(driver=raw,file.filename=disk.img,offset=1M) or a URI.\n"
"\n"
"options:\n"
"  -F, --format=FMT        image format (probed when absent)\n"
"  -r, --read-only         mount read-only\n"
"  -U, --force-share       read-only, ignoring other holders' locks\n"
"      --locking=MODE      on, off or auto (default auto)\n"
"      --share-rw          let another writer use the image too\n"
"      --lease=SPEC        leases across hosts: none (default),\n"
"                          lockd[,dir=DIR|direct] (libvirt virtlockd's files),\n"
"                          sanlock,lockspace=PATH[:OFF],host_id=N\n"
"                          [,io_timeout=S][,dir=DIR]; in -o: lease=lockd,\n"
"                          lease.dir=DIR, lease.host_id=N, ... (docs/locking.md)\n"
"      --cache=MODE        writeback (default) or none (O_DIRECT)\n"
"      --discard=MODE      unmap (default) or ignore\n"
"      --aio=ENGINE        threads (default) or io_uring\n"
"      --growable          writes past the end grow the image\n"
"      --preallocate[=SIZE] grow the image file SIZE (default 128M) at a\n"
"                          time, cut back at flush (preallocate filter)\n"
"      --writeback-cache   let the kernel cache writes (fast small writes;\n"
"                          a write past the end then fails at close)\n"
"      --backing=POLICY    follow (default), confine or none\n"
"      --related=POLICY    confine (default) or follow: extents, data files\n"
"      --untrusted         confine backing files, refuse protocol backing\n"
"      --iscsi-config=FILE iscsi initiator settings and CHAP secrets\n"
"      --pr=MODE           SCSI persistent reservation of an iscsi:// LUN or\n"
"                          a SCSI device: off (default), exclusive, or\n"
"                          exclusive,preempt (take a dead holder's over)\n"
"      --pr-preempt        the same as ,preempt (-o pr=exclusive,pr-preempt)\n"
"      --pr-key=KEY        reservation key, hex (default: from host and image)\n"
"      --pr-helper=SOCKET  qemu-pr-helper socket for SCSI devices without\n"
"                          CAP_SYS_RAWIO\n"
"      --snapshot=NAME|ID  mount an internal snapshot (read-only)\n"
"      --partition=N       mount partition N of the disk (a file mountpoint)\n"
"      --overlay=FILE|temp writes go to a qcow2 overlay FILE (created when\n"
"                          absent; temp: deleted at unmount, as -o snapshot);\n"
"                          the SOURCE is opened read-only, never written\n"
"      --threads=N         FUSE worker threads (default 8)\n"
"      --pidfile=FILE      write the daemon's pid once the mount is live\n"
"      --create=SIZE       create FILE (-F FMT) of SIZE, then mount it\n"
"      --create-opts=OPTS  creation options for --create, KEY=VAL,...\n"
"      --json              info: machine-readable output (qemu-img's fields)\n"
"      --backing-chain     info: every image of the backing chain\n"
"      --object secret,id=ID,file=PATH[,format=raw|base64]\n"
"                          a secret (passphrase) that key-secret=ID or\n"
"                          encrypt.key-secret=ID names; data=STRING instead\n"
"                          of file= shows it to ps while imgfuse starts\n"
"      --key-prompt        ask for a passphrase on the terminal when an\n"
"                          encrypted image needs one and none is given\n"
"  -f                      stay in the foreground\n"
"  -d                      debug output (implies -f)\n"
"  -s                      single-threaded\n"
"  -q                      no progress display (shown on a terminal for\n"
"                          create preallocation=full, check, log replay)\n"
"  -o OPT[,OPT...]         FUSE options (allow_other, ...) and any option\n"
"                          above as KEY=VALUE (ro, format=qcow2, locking=off)\n"
"  -h, --help              this text\n"
"  -V, --version           the version\n";

enum {
    OPT_LOCKING = 256, OPT_SHARE_RW, OPT_CACHE, OPT_DISCARD, OPT_AIO,
    OPT_GROWABLE, OPT_BACKING, OPT_RELATED, OPT_UNTRUSTED, OPT_THREADS,
    OPT_PIDFILE, OPT_CREATE, OPT_CREATE_OPTS, OPT_JSON, OPT_DEBUG_MODS,
    OPT_WRITEBACK, OPT_ISCSI_CONFIG, OPT_SNAPSHOT, OPT_PR, OPT_PR_KEY,
    OPT_PR_HELPER, OPT_PR_PREEMPT, OPT_LEASE, OPT_PARTITION, OPT_OVERLAY,
    OPT_BACKING_CHAIN, OPT_PREALLOCATE, OPT_OBJECT, OPT_KEY_PROMPT,
};

static const struct option long_opts[] = {
    { "format", required_argument, NULL, 'F' },
    { "read-only", no_argument, NULL, 'r' },
    { "force-share", no_argument, NULL, 'U' },
    { "locking", required_argument, NULL, OPT_LOCKING },
    { "share-rw", no_argument, NULL, OPT_SHARE_RW },
    { "lease", required_argument, NULL, OPT_LEASE },
    { "cache", required_argument, NULL, OPT_CACHE },
    { "discard", required_argument, NULL, OPT_DISCARD },
    { "aio", required_argument, NULL, OPT_AIO },
    { "growable", no_argument, NULL, OPT_GROWABLE },
    { "preallocate", optional_argument, NULL, OPT_PREALLOCATE },
    { "writeback-cache", no_argument, NULL, OPT_WRITEBACK },
    { "iscsi-config", required_argument, NULL, OPT_ISCSI_CONFIG },
    { "snapshot", required_argument, NULL, OPT_SNAPSHOT },
    { "pr", required_argument, NULL, OPT_PR },
    { "pr-key", required_argument, NULL, OPT_PR_KEY },
    { "pr-helper", required_argument, NULL, OPT_PR_HELPER },
    { "pr-preempt", no_argument, NULL, OPT_PR_PREEMPT },
    { "partition", required_argument, NULL, OPT_PARTITION },
    { "overlay", required_argument, NULL, OPT_OVERLAY },
    { "backing-chain", no_argument, NULL, OPT_BACKING_CHAIN },
    { "backing", required_argument, NULL, OPT_BACKING },
    { "related", required_argument, NULL, OPT_RELATED },
    { "untrusted", no_argument, NULL, OPT_UNTRUSTED },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "pidfile", required_argument, NULL, OPT_PIDFILE },
    { "create", required_argument, NULL, OPT_CREATE },
    { "create-opts", required_argument, NULL, OPT_CREATE_OPTS },
    { "json", no_argument, NULL, OPT_JSON },
    { "object", required_argument, NULL, OPT_OBJECT },
    { "key-prompt", no_argument, NULL, OPT_KEY_PROMPT },
    { "debug-modules", required_argument, NULL, OPT_DEBUG_MODS },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* Options libfuse or the kernel mount understand; passed through. */
static const char *const fuse_flag_opts[] = {
    "allow_other", "allow_root", "auto_unmount", "default_permissions",
    "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime",
    "sync", "async", "dirsync", "nonempty", "clone_fd", "rw", NULL,
};
static const char *const fuse_value_opts[] = {
    "max_read", "fsname", "subtype", "max_threads", "max_idle_threads",
    "context", "fscontext", "defcontext", "rootcontext", NULL,
};
/* Options mount(8)/mount.fuse3 may hand over that mean nothing to us. */
static const char *const ignored_opts[] = {
    "user", "nouser", "users", "auto", "noauto", "_netdev", "nofail",
    "defaults", "x-systemd.automount", NULL,
};
/* imgfuse's own -o names (for did-you-mean). */
static const char *const own_opts[] = {
    "ro", "read-only", "format", "force-share", "locking", "share-rw",
    "cache", "discard", "aio", "growable", "backing", "related", "untrusted",
    "writeback-cache", "iscsi-config", "snapshot", "pr", "pr-key",
    "pr-helper", "pr-preempt", "lease", "partition", "overlay", "preallocate",
    "threads", "pidfile", "debug", "foreground", "object", "key-prompt", NULL,
};

static bool in_list(const char *w, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcmp(w, list[i]) == 0)
            return true;
    }
    return false;
}

static int append(char *buf, size_t size, const char *item)
{
    size_t l = strlen(buf);
    int n = snprintf(buf + l, size - l, "%s%s", l ? "," : "", item);
    return n < 0 || (size_t)n >= size - l ? -E2BIG : 0;
}

static int pick(const char *opt, const char *val, const char *const *choices,
                struct bd_err *err)
{
    for (int i = 0; choices[i]; i++) {
        if (strcmp(val, choices[i]) == 0)
            return i;
    }
    const char *hint = bd_suggest(val, choices);
    char list[256] = "";
    for (int i = 0; choices[i]; i++)
        append(list, sizeof(list), choices[i]);
    if (hint)
        return bd_err_set(err, EINVAL, "--%s=%s: not a valid value (did you "
                          "mean '%s'?)", opt, val, hint);
    return bd_err_set(err, EINVAL, "--%s=%s: not a valid value; use one of %s",
                      opt, val, list);
}

/* One long option, from argv or from -o key=value. */
static int apply(struct cli *c, int id, const char *val, struct bd_err *err)
{
    static const char *const locking[] = { "auto", "on", "off", NULL };
    static const char *const cache[] = { "writeback", "none", NULL };
    static const char *const discard[] = { "unmap", "ignore", NULL };
    static const char *const aio[] = { "default", "threads", "io_uring", NULL };
    static const char *const backing[] = { "follow", "confine", "none", NULL };
    static const char *const related[] = { "confine", "follow", NULL };
    int r;

    switch (id) {
    case 'F': c->format = val; return 0;
    case 'r': c->flags.read_only = true; return 0;
    case 'U': c->flags.force_share = true; c->flags.read_only = true; return 0;
    case OPT_LOCKING:
        if ((r = pick("locking", val, locking, err)) < 0)
            return r;
        c->flags.locking = (enum bd_locking)r;
        return 0;
    case OPT_SHARE_RW: c->flags.share_rw = true; return 0;
    case OPT_LEASE: {
        /* KIND[,KEY=VAL...]: the kind replaces, the options add up */
        size_t k = strcspn(val, ",");
        if (k >= sizeof(c->lease_kind))
            return bd_err_set(err, EINVAL, "--lease=%s: use none, lockd or "
                              "sanlock", val);
        memcpy(c->lease_kind, val, k);
        c->lease_kind[k] = '\0';
        if (val[k] && append(c->lease_opts, sizeof(c->lease_opts), val + k + 1) < 0)
            return bd_err_set(err, E2BIG, "--lease: too many options");
        return 0;
    }
    case OPT_CACHE:
        if ((r = pick("cache", val, cache, err)) < 0)
            return r;
        c->flags.cache = (enum bd_cache)r;
        return 0;
    case OPT_DISCARD:
        if ((r = pick("discard", val, discard, err)) < 0)
            return r;
        c->flags.discard = (enum bd_discard_mode)r;
        return 0;
    case OPT_AIO:
        if ((r = pick("aio", val, aio, err)) < 0)
            return r;
        c->flags.aio = (enum bd_aio)r;
        return 0;
    case OPT_GROWABLE: c->flags.growable = true; return 0;
    case OPT_PREALLOCATE:
        /* the filter goes under the top format; core checks the size */
        if (val && (!*val || strchr(val, ',')))
            return bd_err_set(err, EINVAL, "--preallocate=%s: give a size such "
                              "as 64M or 1G", val);
        snprintf(c->file_filter, sizeof(c->file_filter), "driver=preallocate%s%.64s",
                 val ? ",prealloc-size=" : "", val ? val : "");
        return 0;
    case OPT_WRITEBACK: c->writeback_cache = true; return 0;
    case OPT_ISCSI_CONFIG: c->iscsi_config = val; return 0;
    case OPT_PR: {
        static const char *const pr[] = { "off", "exclusive",
                                          "exclusive,preempt", NULL };
        if ((r = pick("pr", val, pr, err)) < 0)
            return r;
        c->pr_exclusive = r > 0;
        c->pr_preempt = r == 2;
        return 0;
    }
    case OPT_PR_KEY: c->pr_key = val; return 0;
    case OPT_PR_HELPER: c->pr_helper = val; return 0;
    case OPT_PR_PREEMPT: c->pr_preempt = true; return 0;
    case OPT_SNAPSHOT: {
        /* a snapshot is a frozen past state: always read-only */
        char item[300];
        if (strchr(val, ','))
            return bd_err_set(err, EINVAL, "--snapshot=%s: a snapshot name "
                              "with a comma cannot be given here; use its id",
                              val);
        snprintf(item, sizeof(item), "snapshot=%s", val);
        c->flags.read_only = true;
        return append(c->fmt_opts, sizeof(c->fmt_opts), item) < 0
                   ? bd_err_set(err, E2BIG, "too many options") : 0;
    }
    case OPT_PARTITION: {
        char *end;
        long p = strtol(val, &end, 10);
        if (*end || end == val || p < 1 || p > 4096)
            return bd_err_set(err, EINVAL, "--partition=%s: give a partition "
                              "number (1, 2, ...; MBR logical ones from 5), "
                              "as imgfuse info lists them", val);
        c->partition = (unsigned)p;
        return 0;
    }
    case OPT_OVERLAY:
        if (!*val)
            return bd_err_set(err, EINVAL, "--overlay=: name the overlay file "
                              "(created when absent), or temp");
        c->overlay = val;
        return 0;
    case OPT_BACKING_CHAIN: c->backing_chain = true; return 0;
    case OPT_BACKING:
        if ((r = pick("backing", val, backing, err)) < 0)
            return r;
        c->flags.backing = (enum bd_backing_policy)r;
        return 0;
    case OPT_RELATED:
        if ((r = pick("related", val, related, err)) < 0)
            return r;
        c->flags.related_follow = r == 1;
        return 0;
    case OPT_UNTRUSTED: c->flags.untrusted = true; return 0;
    case OPT_THREADS: {
        char *end;
        long t = strtol(val, &end, 10);
        if (*end || t < 1 || t > 256)
            return bd_err_set(err, EINVAL, "--threads=%s: give a number of "
                              "worker threads from 1 to 256", val);
        c->threads = (unsigned)t;
        return 0;
    }
    case OPT_PIDFILE: c->pidfile = val; return 0;
    case OPT_CREATE: c->create_size = val; return 0;
    case OPT_CREATE_OPTS: c->create_opts = val; return 0;
    case OPT_JSON: c->json = true; return 0;
    case OPT_DEBUG_MODS: c->debug_mods = val; return 0;
    case OPT_OBJECT: return cli_object(c, (char *)val, err);
    case OPT_KEY_PROMPT: c->key_prompt = true; return 0;
    default:
        return bd_err_set(err, EINVAL, "internal: unhandled option");
    }
}

static int long_id(const char *name)
{
    for (size_t i = 0; long_opts[i].name; i++) {
        if (strcmp(long_opts[i].name, name) == 0)
            return long_opts[i].val;
    }
    return 0;
}

/* One element of -o. Values are copied into c's buffers or point into
 * the strdup'd -o string, which lives as long as the process. */
static int apply_o_item(struct cli *c, char *item, struct bd_err *err)
{
    char *eq = strchr(item, '=');
    char *val = eq ? eq + 1 : NULL;
    if (eq)
        *eq = '\0';
    const char *key = item;

    if (!*key)
        return 0;
    if (!strcmp(key, "ro") && !val)
        return apply(c, 'r', NULL, err);
    if (!strcmp(key, "rw") && !val)
        return 0;
    if (!strcmp(key, "read-only") || !strcmp(key, "read_only"))
        return apply(c, 'r', NULL, err);
    if (!strcmp(key, "force-share") || !strcmp(key, "force_share"))
        return apply(c, 'U', NULL, err);
    if (!strcmp(key, "format") && val)
        return apply(c, 'F', val, err);
    if (!strcmp(key, "debug") && val) {
        c->debug_mods = val;
        return 0;
    }
    if (!strcmp(key, "snapshot") && !val) {
        c->overlay = "temp";        /* QEMU's -snapshot: a throw-away overlay */
        return 0;
    }
    if (!strcmp(key, "foreground") && !val) {
        c->foreground = true;
        return 0;
    }
    if (!strcmp(key, "debug") && !val) {
        c->debug = c->foreground = true;
        return 0;
    }
    if (in_list(key, ignored_opts))
        return 0;
    if (!strncmp(key, "lease.", 6) && val) {
        /* -o lease.dir=DIR: one option of the lease spec */
        char kv[1100];
        snprintf(kv, sizeof(kv), "%s=%s", key + 6, val);
        return append(c->lease_opts, sizeof(c->lease_opts), kv) < 0
                   ? bd_err_set(err, E2BIG, "-o: too many lease options") : 0;
    }
    if ((in_list(key, fuse_flag_opts) && !val) || (in_list(key, fuse_value_opts) && val)) {
        if (!strcmp(key, "clone_fd")) {
            c->clone_fd = true;
            return 0;
        }
        if (eq)
            *eq = '=';
        int r = append(c->fuse_opts, sizeof(c->fuse_opts), item);
        return r < 0 ? bd_err_set(err, E2BIG, "-o: too many FUSE options") : 0;
    }
    char norm[64];
    snprintf(norm, sizeof(norm), "%s", key);
    for (char *p = norm; *p; p++) {
        if (*p == '_')
            *p = '-';
    }
    int id = long_id(norm);
    if (id && id != 'h' && id != 'V' && id != OPT_JSON && id != OPT_BACKING_CHAIN) {
        int has_arg = no_argument;
        for (size_t i = 0; long_opts[i].name; i++) {
            if (long_opts[i].val == id)
                has_arg = long_opts[i].has_arg;
        }
        if (has_arg == required_argument && !val)
            return bd_err_set(err, EINVAL, "-o %s: needs a value (%s=...)", key, key);
        if (has_arg == no_argument && val && strcmp(val, "on") &&
            strcmp(val, "true"))
            return val && (!strcmp(val, "off") || !strcmp(val, "false")) ? 0
                   : bd_err_set(err, EINVAL, "-o %s=%s: this option is on or off",
                                key, val);
        return apply(c, id, val, err);
    }
    if (val) {
        /* key=value we do not know: the format driver's (checked later
         * against what that driver reads, with a did-you-mean). */
        *eq = '=';
        int r = append(c->fmt_opts, sizeof(c->fmt_opts), item);
        return r < 0 ? bd_err_set(err, E2BIG, "-o: too many options") : 0;
    }
    const char *hint = bd_suggest(key, own_opts);
    if (!hint)
        hint = bd_suggest(key, fuse_flag_opts);
    if (hint)
        return bd_err_set(err, EINVAL, "unknown option '%s' (did you mean '%s'?)",
                          key, hint);
    return bd_err_set(err, EINVAL, "unknown option '%s'; see imgfuse --help", key);
}

static int apply_o(struct cli *c, const char *arg, struct bd_err *err)
{
    if (c->n_o_copies == sizeof(c->o_copies) / sizeof(c->o_copies[0]))
        return bd_err_set(err, E2BIG, "too many -o options; join them with commas");
    char *copy = strdup(arg);       /* freed by cli_free() */
    if (!copy)
        return bd_err_set(err, ENOMEM, "out of memory");
    c->o_copies[c->n_o_copies++] = copy;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int r = cli_o_object_item(c, item, (char *)arg + (item - copy), err);
        if (r == 0)
            r = apply_o_item(c, item, err);
        if (r < 0)
            return r;
    }
    return cli_o_object_end(c, err);
}

static int unknown_long(const char *arg, struct bd_err *err)
{
    char name[64];
    const char *names[64];
    size_t k = 0;
    snprintf(name, sizeof(name), "%s", arg + 2);
    name[strcspn(name, "=")] = '\0';
    for (size_t i = 0; long_opts[i].name && k < 63; i++)
        names[k++] = long_opts[i].name;
    names[k] = NULL;
    const char *hint = bd_suggest(name, names);
    if (hint)
        return bd_err_set(err, EINVAL, "unknown option '--%s' (did you mean "
                          "'--%s'?)", name, hint);
    return bd_err_set(err, EINVAL, "unknown option '%s'; see imgfuse --help", arg);
}

/* Append ",KEY=VAL" to buf, doubling commas in VAL (",," keeps a comma
 * in a path from splitting the option). */
static void append_opt(char *buf, size_t size, const char *key,
                       const char *val)
{
    size_t l = strlen(buf);
    snprintf(buf + l, size - l, "%s%s=", l ? "," : "", key);
    for (const char *p = val; *p && strlen(buf) + 3 < size; p++) {
        l = strlen(buf);
        snprintf(buf + l, size - l, *p == ',' ? ",," : "%c", *p);
    }
}

const char *cli_source_opts(const struct cli *c, const char *src, char *buf,
                            size_t size)
{
    snprintf(buf, size, "%s", c->fmt_opts);
    if (c->iscsi_config && bd_source_takes_option(src, "config"))
        append_opt(buf, size, "file.config", c->iscsi_config);
    /* --pr goes to the protocol under the format: an iscsi LUN, or the
     * host_device of a device path, which alone takes a pr-helper (also
     * without --pr, for info) */
    if (c->pr_exclusive) {
        append_opt(buf, size, "file.pr", "exclusive");
        if (c->pr_preempt)
            append_opt(buf, size, "file.pr-preempt", "on");
        if (c->pr_key)
            append_opt(buf, size, "file.pr-key", c->pr_key);
    }
    if (c->pr_helper && strncmp(src, "/dev/", 5) == 0)
        append_opt(buf, size, "file.pr-helper", c->pr_helper);
    return buf;
}

void cli_free(struct cli *c)
{
    for (size_t i = 0; i < c->n_o_copies; i++)
        free(c->o_copies[i]);
    c->n_o_copies = 0;
    cli_objects_free(c);
}

/*
 * A SOURCE that spells a secret (a CHAP password in a URI, say): keep a
 * private copy of it and blank the secret in argv, so that ps and
 * /proc/PID/cmdline do not show it for the life of the mount.
 */
static int hide_secrets(struct cli *c, size_t i, struct bd_err *err)
{
    struct bd_span spans[8];
    char *src = (char *)c->sources[i];
    int n = bd_source_secrets(src, spans, sizeof(spans) / sizeof(spans[0]));
    if (n < 0)
        return bd_err_set(err, -n, "out of memory");
    if (n == 0)
        return 0;
    if (c->n_o_copies == sizeof(c->o_copies) / sizeof(c->o_copies[0]))
        return bd_err_set(err, E2BIG, "too many arguments");
    char *copy = strdup(src);
    if (!copy)
        return bd_err_set(err, ENOMEM, "out of memory");
    c->o_copies[c->n_o_copies++] = copy;
    c->sources[i] = copy;
    for (size_t k = 0; k < (size_t)n && k < sizeof(spans) / sizeof(spans[0]); k++)
        memset(src + spans[k].off, 'x', spans[k].len);
    return 0;
}

/* Join --lease / -o lease= with its options and check the whole; a
 * read-only mount takes no lease (as libvirt's lockd), but a bad spec is
 * still an error. */
static int lease_setup(struct cli *c, struct bd_err *err)
{
    if (!c->lease_kind[0]) {
        if (c->lease_opts[0])
            return bd_err_set(err, EINVAL, "lease options (%s) without a lease "
                              "manager: add --lease=lockd or --lease=sanlock "
                              "(-o lease=...)", c->lease_opts);
        return 0;
    }
    int n = snprintf(c->lease_spec, sizeof(c->lease_spec), "%s%s%s",
                     c->lease_kind, c->lease_opts[0] ? "," : "", c->lease_opts);
    if (n < 0 || (size_t)n >= sizeof(c->lease_spec))
        return bd_err_set(err, E2BIG, "--lease: the options are too long");
    int r = lease_spec_check(c->lease_spec, err);
    if (r < 0)
        return r;
    if (!c->flags.read_only && !lease_spec_is_none(c->lease_spec))
        c->flags.lease = c->lease_spec;
    return 0;
}

int cli_parse(int argc, char **argv, struct cli *c, struct bd_err *err)
{
    int first = 1, r;
    memset(c, 0, sizeof(*c));
    c->cmd = CLI_MOUNT;
    if (argc > 1) {
        if (!strcmp(argv[1], "info"))
            c->cmd = CLI_INFO, first = 2;
        else if (!strcmp(argv[1], "create"))
            c->cmd = CLI_CREATE, first = 2;
        else if (!strcmp(argv[1], "check"))
            c->cmd = CLI_CHECK, first = 2;
        else if (!strcmp(argv[1], "lease"))
            c->cmd = CLI_LEASE, first = 2;
        else if (!strcmp(argv[1], "list"))
            c->cmd = CLI_LIST, first = 2;
    }
    /* getopt wants argv[0] in front of what it parses. */
    int gargc = argc - first + 1;
    char **gargv = calloc((size_t)gargc + 1, sizeof(char *));
    if (!gargv)
        return bd_err_set(err, ENOMEM, "out of memory");
    gargv[0] = argv[0];
    for (int i = first; i < argc; i++)
        gargv[i - first + 1] = argv[i];

    const char *shorts = c->cmd == CLI_CHECK ? "+:F:r:Uo:qhV" : "+:F:rUfdso:qhV";
    optind = 1;
    opterr = 0;
    const char *positional[CLI_MAX_SOURCES + 3];
    size_t npos = 0;
    r = 0;
    while (r == 0 && optind < gargc) {
        int opt = getopt_long(gargc, gargv, shorts, long_opts, NULL);
        if (opt == -1) {
            /* A positional argument: collect it, continue after it, so
             * options may follow (mount.fuse3 puts -o last). */
            if (npos >= CLI_MAX_SOURCES + 2) {
                r = bd_err_set(err, E2BIG, "too many arguments");
                break;
            }
            positional[npos++] = gargv[optind++];
            continue;
        }
        switch (opt) {
        case 'f': c->foreground = true; break;
        case 'q': c->quiet = true; break;
        case 'd': c->debug = c->foreground = true; break;
        case 's': c->single_thread = true; break;
        case 'o':
            if (c->cmd == CLI_CREATE) {
                c->create_opts = optarg;
                break;
            }
            r = apply_o(c, optarg, err);
            break;
        case 'r':
            if (c->cmd == CLI_CHECK) {
                if (strcmp(optarg, "leaks") && strcmp(optarg, "all"))
                    r = bd_err_set(err, EINVAL, "check -r %s: use -r leaks or "
                                   "-r all", optarg);
                c->check_repair = optarg;
                break;
            }
            r = apply(c, 'r', NULL, err);
            break;
        case 'h': c->cmd = CLI_HELP; break;
        case 'V': c->cmd = CLI_VERSION; break;
        case ':':
            r = bd_err_set(err, EINVAL, "option '%s' needs a value",
                           gargv[optind - 1]);
            break;
        case '?':
            if (optopt)
                r = bd_err_set(err, EINVAL, "unknown option '-%c'; see imgfuse "
                               "--help", optopt);
            else
                r = unknown_long(gargv[optind - 1], err);
            break;
        default:
            r = apply(c, opt, optarg, err);
        }
    }
    free(gargv);
    if (r < 0)
        return r;
    if (c->cmd == CLI_HELP || c->cmd == CLI_VERSION)
        return 0;

    switch (c->cmd) {
    case CLI_LIST:
        return npos ? bd_err_set(err, EINVAL, "usage: imgfuse list [--json]") : 0;
    case CLI_INFO:
    case CLI_CHECK:
        if (npos != 1)
            return bd_err_set(err, EINVAL, "%s takes exactly one SOURCE; see "
                              "imgfuse --help", c->cmd == CLI_INFO ? "info" : "check");
        c->sources[c->nsources++] = positional[0];
        return hide_secrets(c, 0, err);
    case CLI_LEASE:
        if (npos != 2 || strcmp(positional[0], "init"))
            return bd_err_set(err, EINVAL, "usage: imgfuse lease init SPEC, "
                              "SPEC as for --lease (lockd,dir=DIR or sanlock,"
                              "lockspace=PATH,host_id=N,io_timeout=S)");
        c->lease_action = positional[0];
        snprintf(c->lease_spec, sizeof(c->lease_spec), "%s", positional[1]);
        return 0;
    case CLI_CREATE:
        if (npos != 2)
            return bd_err_set(err, EINVAL, "usage: imgfuse create -F FMT [-o "
                              "KEY=VAL,...] FILE SIZE");
        if (!c->format)
            return bd_err_set(err, EINVAL, "create needs the format: -F raw, "
                              "-F qcow2, ...");
        c->sources[c->nsources++] = positional[0];
        c->create_size = positional[1];
        return 0;
    default:
        break;
    }
    if (npos < 2)
        return bd_err_set(err, EINVAL, npos ? "missing MOUNTPOINT after the "
                          "SOURCE; usage: imgfuse [OPTIONS] SOURCE... MOUNTPOINT"
                          : "missing SOURCE and MOUNTPOINT; usage: imgfuse "
                          "[OPTIONS] SOURCE... MOUNTPOINT");
    for (size_t i = 0; i + 1 < npos; i++) {
        c->sources[c->nsources++] = positional[i];
        r = hide_secrets(c, c->nsources - 1, err);
        if (r < 0)
            return r;
    }
    c->mountpoint = positional[npos - 1];
    if (c->create_size && c->nsources != 1)
        return bd_err_set(err, EINVAL, "--create makes one image: give one FILE");
    if (c->create_size && !c->format)
        return bd_err_set(err, EINVAL, "--create needs the format: -F raw, -F "
                          "qcow2, ...");
    if (c->overlay && c->nsources != 1)
        return bd_err_set(err, EINVAL, "--overlay takes one SOURCE: mount "
                          "each image with its own overlay");
    if (c->overlay && (c->create_size || c->flags.growable ||
                       strstr(c->fmt_opts, "snapshot=")))
        return bd_err_set(err, EINVAL, "--overlay cannot go with --create, "
                          "--growable or --snapshot=NAME");
    if (c->flags.force_share && c->flags.share_rw)
        return bd_err_set(err, EINVAL, "-U (force-share) mounts read-only; "
                          "--share-rw makes no sense with it");
    return lease_setup(c, err);
}
