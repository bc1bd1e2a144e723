/*
 * The ssh protocol driver: one file on an ssh server, through libssh's SFTP
 * client, as a block node. This file opens the remote file and maps
 * block-node calls to SFTP requests; the session (connect, host key,
 * authentication, timeouts) is conn.c and parsing the target is target.c.
 * One SSH session per node: libssh SFTP handles are not thread-safe, so the
 * driver is not parallel and core serializes calls with the node mutex.
 */
#include "ssh.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SSH_CHUNK (64u << 10)           /* bytes per SFTP read/write request */
#define SSH_READ_WINDOW 32u             /* read requests in flight */
#define SSH_MAX_TRANSFER (4u << 20)

static const char *const ssh_schemes[] = {"ssh", NULL};

static const char *const ssh_options[] = {
    "user", "host", "port", "path", "host_key_check", "identity",
    "known_hosts", "connect-timeout", "timeout", "filename", NULL,
};

/* ---- target -------------------------------------------------------------- */

static int ssh_parse_uri(const char *uri, struct bd_opts *o, struct bd_err *err)
{
    struct sshc t = {0};
    struct ssh_conf c;
    char *display = NULL;
    int r = sshc_parse_uri(uri, &t, err);

    if (r == 0)
        r = sshc_conf(&t, &c, err);
    if (r == 0 && !(display = sshc_display(&c)))
        r = bd_err_set(err, ENOMEM, "out of memory");
    if (r == 0)
        r = bd_opts_set(o, "filename", display);
    for (int k = 0; r == 0 && k < SSHC_NKEYS; k++) {
        if (t.v[k])
            r = bd_opts_set(o, sshc_keys[k], t.v[k]);
    }
    free(display);
    sshc_free(&t);
    return r;
}

/* parse_uri gives every part as an option; "filename=ssh://..." alone (no
 * host option) is parsed here. Explicit options win over it. */
static int collect_target(const struct bd_opts *o, struct sshc *t,
                          struct bd_err *err)
{
    const char *fn = bd_opts_get(o, "filename");
    int r;

    if (fn && !bd_opts_has(o, "host") && strncasecmp(fn, "ssh://", 6) == 0 &&
        (r = sshc_parse_uri(fn, t, err)) < 0)
        return r;
    for (int k = 0; k < SSHC_NKEYS; k++) {
        const char *v = bd_opts_get(o, sshc_keys[k]);
        if (v && sshc_set(t, (enum sshc_key)k, v) < 0)
            return bd_err_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

static int sftp_errno(sftp_session sftp)
{
    switch (sftp ? sftp_get_error(sftp) : SSH_FX_FAILURE) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
        return ENOENT;
    case SSH_FX_PERMISSION_DENIED:
        return EACCES;
    case SSH_FX_WRITE_PROTECT:
        return EROFS;
    case SSH_FX_OP_UNSUPPORTED:
        return ENOTSUP;
    default:
        return EIO;
    }
}

static int sftp_start(struct ssh_state *s, struct bd_err *err)
{
    s->sftp = sftp_new(s->sess);
    if (!s->sftp || sftp_init(s->sftp) < 0)
        return bd_err_set(err, EIO, "%s: %s has no SFTP service (%s)",
                          s->display, s->hostport, ssh_get_error(s->sess));
    return 0;
}

static int open_remote(struct bd_node *n, struct bd_err *err)
{
    struct ssh_state *s = n->state;
    bool ro = n->flags.read_only;
    sftp_attributes st;
    int e;

    if ((e = sftp_start(s, err)) < 0)
        return e;
    s->file = sftp_open(s->sftp, s->conf.path, ro ? O_RDONLY : O_RDWR, 0);
    if (!s->file) {
        e = sftp_errno(s->sftp);
        if (e == ENOENT)
            return bd_err_set(err, e, "%s: no such file '%s' on %s",
                              s->display, s->conf.path, s->hostport);
        if (e == EACCES || e == EROFS)
            return bd_err_set(err, e, "%s: permission denied opening '%s' "
                              "%s as user '%s'%s", s->display, s->conf.path,
                              ro ? "for reading" : "for writing", s->user,
                              ro ? "" : "; mount with -r to read only");
        return bd_err_set(err, e, "%s: cannot open '%s': %s", s->display,
                          s->conf.path, ssh_get_error(s->sess));
    }
    st = sftp_fstat(s->file);
    if (!st)
        return bd_err_set(err, EIO, "%s: cannot stat '%s': %s", s->display,
                          s->conf.path, ssh_get_error(s->sess));
    e = 0;
    if (!(st->flags & SSH_FILEXFER_ATTR_SIZE))
        e = bd_err_set(err, EIO, "%s: the server did not give the size of "
                       "'%s'", s->display, s->conf.path);
    else if (st->type == SSH_FILEXFER_TYPE_DIRECTORY)
        e = bd_err_set(err, EISDIR, "%s: '%s' is a directory", s->display,
                       s->conf.path);
    else if (st->size > (uint64_t)INT64_MAX)
        e = bd_err_set(err, EIO, "%s: the server gives an impossible size "
                       "for '%s'", s->display, s->conf.path);
    else
        s->size = (int64_t)st->size;
    sftp_attributes_free(st);
    if (e < 0)
        return e;
    s->can_fsync = sftp_extension_supported(s->sftp, "fsync@openssh.com", "1");
    /* names stored in the image are resolved against this (core) */
    s->canon = sftp_canonicalize_path(s->sftp, s->conf.path);
    if (!s->canon && !(s->canon = strdup(s->conf.path)))
        return bd_err_set(err, ENOMEM, "out of memory");
    return 0;
}

/* ---- driver callbacks ------------------------------------------------------ */

/* Validate s->target, then connect and log in. */
static int session_start(struct ssh_state *s, struct bd_err *err)
{
    int r;

    if ((r = sshc_conf(&s->target, &s->conf, err)) < 0)
        return r;
    s->display = sshc_display(&s->conf);
    if (!s->display ||
        asprintf(&s->hostport, strchr(s->conf.host, ':') ? "[%s]:%u" : "%s:%u",
                 s->conf.host, s->conf.port) < 0) {
        s->hostport = NULL;
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    if ((r = sshs_login(s, err)) < 0)
        return r;
    if (asprintf(&s->server, "ssh://%s@%s", s->user, s->hostport) < 0) {
        s->server = NULL;
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

/* Undo session_start and whatever was opened on it; copes with a
 * half-finished start. */
static void session_end(struct ssh_state *s)
{
    /* after a timeout the socket is shut down: these fail fast */
    sshs_call_begin(s, s->conf.timeout);
    if (s->file)
        sftp_close(s->file);
    if (s->sftp)
        sftp_free(s->sftp);
    sshs_call_end(s);
    sshs_logout(s);
    free(s->display);
    free(s->hostport);
    free(s->user);
    free(s->server);
    free(s->canon);
    sshc_free(&s->target);
}

static int ssh_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    struct ssh_state *s = n->state;
    struct bd_err step = {0};
    int r;

    if ((r = collect_target(o, &s->target, err)) < 0 ||
        (r = session_start(s, err)) < 0)
        return r;
    sshs_call_begin(s, s->conf.connect_timeout);
    r = open_remote(n, &step);
    sshs_call_end(s);
    if (r < 0 && atomic_load(&s->timed_out))
        return bd_err_set(err, ETIMEDOUT, "%s: %s stopped answering while "
                          "opening the file (no answer within %u s)",
                          s->display, s->hostport, s->conf.connect_timeout);
    if (r < 0)
        return bd_err_set(err, step.errnum, "%s", step.msg);
    log_debug("ssh", "%s: size %lld, fsync %s", s->display,
              (long long)s->size, s->can_fsync ? "yes" : "no");
    return 0;
}

static void ssh_close_node(struct bd_node *n)
{
    session_end(n->state);
}

static void ssh_limits(struct bd_node *n, struct bd_limits *lim)
{
    (void)n;
    lim->request_alignment = 1;
    lim->max_transfer = SSH_MAX_TRANSFER;
    lim->opt_transfer = SSH_CHUNK;
}

static int64_t ssh_size(struct bd_node *n)
{
    struct ssh_state *s = n->state;
    return s->size;
}

static int io_error(struct bd_node *n, const char *what)
{
    struct ssh_state *s = n->state;
    int e = sftp_errno(s->sftp);

    if (atomic_load(&s->timed_out)) {
        if (n->io_errors++ == 0)
            log_err("%s: no answer from %s within %u s; the connection is "
                    "closed and all further i/o fails", s->display,
                    s->hostport, s->conf.timeout);
        return -EIO;
    }
    if (n->io_errors++ == 0)
        log_err("%s: %s failed: %s", s->display, what, ssh_get_error(s->sess));
    return -(e == ENOENT ? EIO : e);
}

/* Synchronous reads from off; the server may answer short. */
static int read_sync(struct bd_node *n, uint8_t *buf, uint64_t len,
                     uint64_t off)
{
    struct ssh_state *s = n->state;

    if (sftp_seek64(s->file, off) < 0)
        return io_error(n, "seek");
    while (len > 0) {
        size_t want = len < SSH_CHUNK ? (size_t)len : SSH_CHUNK;
        ssize_t got = sftp_read(s->file, buf, want);
        if (got < 0)
            return io_error(n, "read");
        if (got == 0) {
            /* the file shrank under us: what is gone reads as zeroes */
            memset(buf, 0, (size_t)len);
            return 0;
        }
        buf += got;
        len -= (uint64_t)got;
    }
    return 0;
}

/*
 * Pipelined reads: up to SSH_READ_WINDOW requests in flight, answered in
 * order. A short answer (end of file, or a server that caps reads) leaves
 * the rest to read_sync once every request in flight has been collected.
 */
static int pread_pipelined(struct bd_node *n, void *buf, uint64_t len,
                           uint64_t off)
{
    struct ssh_state *s = n->state;
    uint8_t *p = buf;
    int ids[SSH_READ_WINDOW];
    uint32_t lens[SSH_READ_WINDOW];

    if (len <= SSH_CHUNK)
        return read_sync(n, p, len, off);
    while (len > 0) {
        unsigned nreq = 0, i;
        uint64_t batch = 0, done = 0;
        bool short_read = false;
        int ret = 0;

        if (sftp_seek64(s->file, off) < 0)
            return io_error(n, "seek");
        while (nreq < SSH_READ_WINDOW && batch < len) {
            uint64_t rest = len - batch;
            lens[nreq] = rest < SSH_CHUNK ? (uint32_t)rest : SSH_CHUNK;
            ids[nreq] = sftp_async_read_begin(s->file, lens[nreq]);
            if (ids[nreq] < 0) {
                ret = io_error(n, "read request");
                break;
            }
            batch += lens[nreq++];
        }
        /* collect every answer, even after a failure, so none is left
         * queued in libssh */
        for (i = 0; i < nreq; i++) {
            int got = sftp_async_read(s->file, p + done, lens[i],
                                      (uint32_t)ids[i]);
            if (got < 0 && ret == 0)
                ret = io_error(n, "read");
            if (ret == 0 && !short_read) {
                done += (uint64_t)(got > 0 ? got : 0);
                short_read = (uint32_t)(got > 0 ? got : 0) < lens[i];
            }
        }
        if (ret < 0)
            return ret;
        p += done;
        off += done;
        len -= done;
        if (short_read)
            return read_sync(n, p, len, off);
    }
    return 0;
}

static int ssh_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct ssh_state *s = n->state;
    int r;

    if (!sshs_call_begin(s, s->conf.timeout))
        return io_error(n, "read");
    r = pread_pipelined(n, buf, len, off);
    sshs_call_end(s);
    return r;
}

static int pwrite_chunks(struct bd_node *n, const void *buf, uint64_t len,
                         uint64_t off, unsigned flags)
{
    struct ssh_state *s = n->state;
    const uint8_t *p = buf;
    uint64_t end = off + len;

    if (sftp_seek64(s->file, off) < 0)
        return io_error(n, "seek");
    while (len > 0) {
        size_t want = len < SSH_CHUNK ? (size_t)len : SSH_CHUNK;
        ssize_t put = sftp_write(s->file, p, want);
        if (put <= 0)
            return io_error(n, "write");
        p += put;
        len -= (uint64_t)put;
    }
    if (end > (uint64_t)s->size)
        s->size = (int64_t)end;
    if ((flags & BD_REQ_FUA) && s->can_fsync && sftp_fsync(s->file) < 0)
        return io_error(n, "fsync");
    return 0;
}

static int ssh_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                      uint64_t off, unsigned flags)
{
    struct ssh_state *s = n->state;
    int r;

    if (!sshs_call_begin(s, s->conf.timeout))
        return io_error(n, "write");
    r = pwrite_chunks(n, buf, len, off, flags);
    sshs_call_end(s);
    return r;
}

/*
 * Without fsync@openssh.com nothing can make the server's writes durable.
 * Like QEMU, warn once and report success: failing every flush would make
 * such servers unusable, and the warning says what is not guaranteed.
 */
static int ssh_flush(struct bd_node *n)
{
    struct ssh_state *s = n->state;
    int r;

    if (!s->can_fsync) {
        if (!s->warned_fsync) {
            log_warn("ssh server %s does not support fsync; flushes cannot "
                     "make writes durable", s->hostport);
            s->warned_fsync = true;
        }
        return 0;
    }
    if (!sshs_call_begin(s, s->conf.timeout))
        return io_error(n, "fsync");
    r = sftp_fsync(s->file) < 0 ? io_error(n, "fsync") : 0;
    sshs_call_end(s);
    return r;
}

static int ssh_truncate(struct bd_node *n, uint64_t size,
                        enum bd_prealloc prealloc, struct bd_err *err)
{
    struct ssh_state *s = n->state;
    struct sftp_attributes_struct attr;
    int r;

    if (prealloc != BD_PREALLOC_OFF)
        return bd_err_set(err, ENOTSUP, "%s: preallocation is not supported "
                          "over ssh", s->display);
    if (size > (uint64_t)INT64_MAX)
        return bd_err_set(err, EFBIG, "%s: size %llu is too large", s->display,
                          (unsigned long long)size);
    memset(&attr, 0, sizeof(attr));
    attr.flags = SSH_FILEXFER_ATTR_SIZE;
    attr.size = size;
    if (!sshs_call_begin(s, s->conf.timeout))
        return bd_err_set(err, EIO, "%s: the connection to %s timed out",
                          s->display, s->hostport);
    r = sftp_setstat(s->sftp, s->conf.path, &attr);
    sshs_call_end(s);
    if (r < 0)
        return bd_err_set(err, sftp_errno(s->sftp), "%s: cannot resize '%s' "
                          "to %llu bytes: %s", s->display, s->conf.path,
                          (unsigned long long)size, ssh_get_error(s->sess));
    s->size = (int64_t)size;
    return 0;
}

static void ssh_info(struct bd_node *n, struct bd_info *info)
{
    struct ssh_state *s = n->state;
    const struct ssh_hkc *h = &s->conf.hkc;

    bd_info_add(info, "server", "%s", s->hostport);
    bd_info_add(info, "user", "%s", s->user);
    bd_info_add(info, "path", "%s", s->conf.path);
    bd_info_add(info, "host key check", "%s",
                h->mode == SSH_HKC_NONE ? "no (not verified)"
                : h->mode == SSH_HKC_HASH ? ssh_hkc_name(h->type)
                                          : "known_hosts");
    bd_info_add(info, "fsync", "%s", s->can_fsync ? "fsync@openssh.com"
                                                  : "not supported by the server");
}

/* ---- creating and removing files ----------------------------------------- */

/* A session (no file open) for create_file/remove_file: from the options
 * sibling() filled when o has them, else from the URI. */
static int uri_session(const char *uri, const struct bd_opts *o,
                       struct ssh_state *s, struct bd_err *err)
{
    struct bd_err step = {0};
    int r;

    if (o && bd_opts_has(o, "host"))
        r = collect_target(o, &s->target, err);
    else if (strncasecmp(uri, "ssh://", 6) != 0)
        return bd_err_set(err, EINVAL, "%s: give the new file as a URI "
                          "ssh://[user@]host[:port]/path", uri);
    else
        r = sshc_parse_uri(uri, &s->target, err);
    if (r < 0 || (r = session_start(s, err)) < 0)
        return r;
    sshs_call_begin(s, s->conf.connect_timeout);
    r = sftp_start(s, &step);
    sshs_call_end(s);
    if (r < 0)
        return bd_err_set(err, step.errnum, "%s", step.msg);
    return 0;
}

static int ssh_create_file(const char *filename, const struct bd_opts *o,
                           struct bd_err *err)
{
    struct ssh_state s = {0};
    int r, e;

    if ((r = uri_session(filename, o, &s, err)) < 0)
        goto out;
    if (!sshs_call_begin(&s, s.conf.timeout)) {
        r = bd_err_set(err, EIO, "%s: the connection to %s timed out",
                       s.display, s.hostport);
        goto out;
    }
    /* O_EXCL: the server refuses an existing file, with no race */
    s.file = sftp_open(s.sftp, s.conf.path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    e = s.file ? 0 : sftp_errno(s.sftp);
    if (!s.file && e == EIO) {
        /* SFTP v3 has no "exists" status: tell it by looking */
        sftp_attributes st = sftp_lstat(s.sftp, s.conf.path);
        if (st)
            e = EEXIST;
        sftp_attributes_free(st);
    }
    sshs_call_end(&s);
    if (e == EEXIST)
        r = bd_err_set(err, EEXIST, "%s: already exists; imgfuse create never "
                       "overwrites: remove it first or pick another name",
                       s.display);
    else if (e)
        r = bd_err_set(err, e, "%s: cannot create '%s' on %s as user '%s': %s",
                       s.display, s.conf.path, s.hostport, s.user,
                       ssh_get_error(s.sess));
out:
    session_end(&s);
    return r;
}

static int ssh_remove_file(const char *filename, const struct bd_opts *o,
                           struct bd_err *err)
{
    struct ssh_state s = {0};
    int r;

    if ((r = uri_session(filename, o, &s, err)) < 0)
        goto out;
    if (!sshs_call_begin(&s, s.conf.timeout))
        r = -EIO;
    else if (sftp_unlink(s.sftp, s.conf.path) < 0)
        r = -sftp_errno(s.sftp);
    sshs_call_end(&s);
    if (r < 0)
        r = bd_err_set(err, -r, "%s: cannot remove the half-made file: %s",
                       s.display, ssh_get_error(s.sess));
out:
    session_end(&s);
    return r;
}

/* ---- names stored in images: paths on the same server ---------------------- */

static void ssh_remote_where(struct bd_node *n, const char **server,
                             const char **path)
{
    struct ssh_state *s = n->state;
    *server = s->server;
    *path = s->canon;
}

/* The server's realpath (OpenSSH's accepts a missing last component, so
 * the result is looked up as well). */
static int ssh_remote_realpath(struct bd_node *n, const char *path, char **out,
                               struct bd_err *err)
{
    struct ssh_state *s = n->state;
    sftp_attributes st = NULL;
    char *canon;
    int e = 0;

    if (!sshs_call_begin(s, s->conf.timeout))
        return bd_err_set(err, EIO, "%s: the connection to %s timed out",
                          s->display, s->hostport);
    canon = sftp_canonicalize_path(s->sftp, path);
    if (canon)
        st = sftp_stat(s->sftp, canon);
    if (!canon || !st)
        e = sftp_errno(s->sftp);
    sshs_call_end(s);
    sftp_attributes_free(st);
    if (e == ENOENT) {
        free(canon);
        return -ENOENT;
    }
    if (e) {
        free(canon);
        return bd_err_set(err, e, "cannot look up '%s' on %s: %s", path,
                          s->hostport, atomic_load(&s->timed_out)
                              ? "no answer" : ssh_get_error(s->sess));
    }
    *out = canon;
    return 0;
}

static int ssh_sibling(struct bd_node *n, const char *path, struct bd_opts *o,
                       struct bd_err *err)
{
    struct ssh_state *s = n->state;
    struct ssh_conf c = s->conf;
    char *display;
    int r = 0;

    /* the same settings, user included (also when it was the default) */
    for (int k = 0; r == 0 && k < SSHC_NKEYS; k++) {
        const char *v = k == SSHC_PATH ? path
                      : k == SSHC_USER ? s->user : s->target.v[k];
        if (v)
            r = bd_opts_set(o, sshc_keys[k], v);
    }
    c.path = path;
    c.user = s->user;
    display = sshc_display(&c);
    if (r == 0 && display)
        r = bd_opts_set(o, "filename", display);
    free(display);
    if (r < 0 || !display)
        return bd_err_set(err, ENOMEM, "out of memory");
    return 0;
}

static const struct bd_uri_ops ssh_uri_ops = {
    .schemes = ssh_schemes,
    .parse = ssh_parse_uri,
};

static const struct bd_files_ops ssh_files_ops = {
    .create_file = ssh_create_file,
    .remove_file = ssh_remove_file,
};

static const struct bd_remote_ops ssh_remote_ops = {
    .where = ssh_remote_where,
    .realpath = ssh_remote_realpath,
    .sibling = ssh_sibling,
};

const struct bd_driver bd_drv_ssh = {
    .name = "ssh",
    .kind = BD_PROTOCOL,
    .options = ssh_options,
    .state_size = sizeof(struct ssh_state),
    .parallel = false,
    .open = ssh_open,
    .close = ssh_close_node,
    .limits = ssh_limits,
    .size = ssh_size,
    .pread = ssh_pread,
    .pwrite = ssh_pwrite,
    .flush = ssh_flush,
    .truncate = ssh_truncate,
    .info = ssh_info,
    .uri = &ssh_uri_ops,
    .files = &ssh_files_ops,
    .remote = &ssh_remote_ops,
};
