/*
 * The ssh protocol driver: one file on an ssh server, through libssh's SFTP
 * client, as a block node. This file connects, checks the host key,
 * authenticates (ssh-agent, a key file, default keys) and maps block-node
 * calls to SFTP requests; parsing the target is target.c.
 * One SSH session per node: libssh SFTP handles are not thread-safe, so the
 * driver is not parallel and core serializes calls with the node mutex.
 */
#include "ssh.h"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SSH_CHUNK (64u << 10)           /* bytes per SFTP read/write request */
#define SSH_READ_WINDOW 32u             /* read requests in flight */
#define SSH_MAX_TRANSFER (4u << 20)

struct ssh_state {
    struct sshc target;
    struct ssh_conf conf;
    char *display;              /* ssh://user@host:port/path, no secrets */
    char *hostport;             /* host:port for messages */
    char *user;                 /* the login name actually used */
    ssh_session sess;
    sftp_session sftp;
    sftp_file file;
    int64_t size;
    bool can_fsync;
    bool warned_fsync;
    /* watchdog: libssh waits forever in blocking SFTP calls, so a thread
     * shuts the socket down when one outlives its deadline */
    int fd;
    ino_t sock_ino;             /* to close our socket, not a reused fd */
    bool wd_started;
    bool wd_stop;
    int64_t wd_deadline_ms;     /* 0: no call in progress */
    atomic_bool timed_out;      /* the connection is gone for good */
    pthread_t wd_thread;
    pthread_mutex_t wd_lock;
    pthread_cond_t wd_cond;
};

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

/* ---- watchdog ------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watchdog(void *arg)
{
    struct ssh_state *s = arg;

    pthread_mutex_lock(&s->wd_lock);
    while (!s->wd_stop) {
        if (s->wd_deadline_ms == 0) {
            pthread_cond_wait(&s->wd_cond, &s->wd_lock);
        } else if (now_ms() >= s->wd_deadline_ms) {
            /* the blocked call then fails, and every later one at once */
            atomic_store(&s->timed_out, true);
            shutdown(s->fd, SHUT_RDWR);
            s->wd_deadline_ms = 0;
        } else {
            struct timespec ts = {
                .tv_sec = s->wd_deadline_ms / 1000,
                .tv_nsec = (long)(s->wd_deadline_ms % 1000) * 1000000,
            };
            pthread_cond_timedwait(&s->wd_cond, &s->wd_lock, &ts);
        }
    }
    pthread_mutex_unlock(&s->wd_lock);
    return NULL;
}

static int watchdog_start(struct ssh_state *s)
{
    pthread_condattr_t ca;
    int r;

    s->fd = ssh_get_fd(s->sess);
    if (s->fd < 0)
        return -EIO;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->wd_lock, NULL);
    r = pthread_create(&s->wd_thread, NULL, watchdog, s);
    if (r != 0) {
        pthread_cond_destroy(&s->wd_cond);
        pthread_mutex_destroy(&s->wd_lock);
        return -r;
    }
    s->wd_started = true;
    return 0;
}

static void watchdog_stop(struct ssh_state *s)
{
    if (!s->wd_started)
        return;
    pthread_mutex_lock(&s->wd_lock);
    s->wd_stop = true;
    pthread_cond_signal(&s->wd_cond);
    pthread_mutex_unlock(&s->wd_lock);
    pthread_join(s->wd_thread, NULL);
    pthread_cond_destroy(&s->wd_cond);
    pthread_mutex_destroy(&s->wd_lock);
    s->wd_started = false;
}

/* Bracket every blocking libssh call: false when the connection is gone. */
static bool call_begin(struct ssh_state *s, unsigned secs)
{
    if (atomic_load(&s->timed_out))
        return false;
    if (s->wd_started) {
        pthread_mutex_lock(&s->wd_lock);
        s->wd_deadline_ms = now_ms() + (int64_t)secs * 1000;
        pthread_cond_signal(&s->wd_cond);
        pthread_mutex_unlock(&s->wd_lock);
    }
    return true;
}

static void call_end(struct ssh_state *s)
{
    if (s->wd_started) {
        pthread_mutex_lock(&s->wd_lock);
        s->wd_deadline_ms = 0;
        pthread_mutex_unlock(&s->wd_lock);
    }
}

/* ---- connecting ------------------------------------------------------------ */

static int set_session_options(struct ssh_state *s, struct bd_err *err)
{
    const struct ssh_conf *c = &s->conf;
    long timeout = (long)c->connect_timeout;
    int no = 0, yes = 1;
    unsigned port = c->port;

    if (ssh_options_set(s->sess, SSH_OPTIONS_HOST, c->host) < 0 ||
        ssh_options_set(s->sess, SSH_OPTIONS_PORT, &port) < 0 ||
        ssh_options_set(s->sess, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
        /* everything comes from our options, not ~/.ssh/config */
        ssh_options_set(s->sess, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
        /* one request at a time: Nagle plus delayed acks cost 40 ms each */
        ssh_options_set(s->sess, SSH_OPTIONS_NODELAY, &yes) < 0 ||
        (c->user && ssh_options_set(s->sess, SSH_OPTIONS_USER, c->user) < 0))
        return bd_err_set(err, EINVAL, "%s: %s", s->display,
                          ssh_get_error(s->sess));
    if (c->known_hosts &&
        (ssh_options_set(s->sess, SSH_OPTIONS_KNOWNHOSTS, c->known_hosts) < 0 ||
         ssh_options_set(s->sess, SSH_OPTIONS_GLOBAL_KNOWNHOSTS,
                         "/dev/null") < 0))
        return bd_err_set(err, EINVAL, "%s: %s", s->display,
                          ssh_get_error(s->sess));
    return 0;
}

/* One address, bounded by the deadline; 0 or -errno. */
static int tcp_try(const struct addrinfo *ai, int64_t deadline, int *fd_out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    int e = 0;
    socklen_t el = sizeof(e);

    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            e = errno;
            goto out_close;
        }
        for (;;) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int64_t left = deadline - now_ms();
            int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0) {
                e = ETIMEDOUT;
                goto out_close;
            }
            break;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
            e = errno;
        if (e)
            goto out_close;
    }
    *fd_out = fd;
    return 0;
out_close:
    close(fd);
    return -e;
}

/* Our own TCP connect: libssh's loses the reason (refused, unreachable,
 * timed out) and we want to name it. */
static int tcp_connect(struct ssh_state *s, int *fd, struct bd_err *err)
{
    const struct ssh_conf *c = &s->conf;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res, *ai;
    int64_t deadline = now_ms() + (int64_t)c->connect_timeout * 1000;
    char port[16];
    int r = -EHOSTUNREACH;

    snprintf(port, sizeof(port), "%u", c->port);
    int g = getaddrinfo(c->host, port, &hints, &res);
    if (g != 0)
        return bd_err_set(err, EHOSTUNREACH, "%s: cannot resolve host '%s': %s",
                          s->display, c->host, gai_strerror(g));
    for (ai = res; ai; ai = ai->ai_next) {
        r = tcp_try(ai, deadline, fd);
        if (r == 0 || r == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (r == 0)
        return 0;
    if (r == -ECONNREFUSED)
        return bd_err_set(err, ECONNREFUSED, "%s: connection to %s refused; "
                          "is the ssh server running?", s->display,
                          s->hostport);
    if (r == -ETIMEDOUT)
        return bd_err_set(err, ETIMEDOUT, "%s: no answer from %s within %u s "
                          "(connect-timeout)", s->display, s->hostport,
                          c->connect_timeout);
    return bd_err_set(err, -r, "%s: cannot connect to %s: %s", s->display,
                      s->hostport, strerror(-r));
}

/* The ssh handshake failed on an open TCP connection. */
static int connect_error(struct ssh_state *s, struct bd_err *err)
{
    const char *e = ssh_get_error(s->sess);

    if (strcasestr(e, "timeout") || strcasestr(e, "timed out"))
        return bd_err_set(err, ETIMEDOUT, "%s: %s accepted the connection but "
                          "did not complete the ssh handshake within %u s",
                          s->display, s->hostport, s->conf.connect_timeout);
    return bd_err_set(err, EPROTO, "%s: ssh handshake with %s failed: %s",
                      s->display, s->hostport, e);
}

static const char *hash_name(enum ssh_hkc_type t)
{
    return t == SSH_HKC_MD5 ? "md5" : t == SSH_HKC_SHA1 ? "sha1" : "sha256";
}

static enum ssh_publickey_hash_type hash_type(enum ssh_hkc_type t)
{
    return t == SSH_HKC_MD5    ? SSH_PUBLICKEY_HASH_MD5
           : t == SSH_HKC_SHA1 ? SSH_PUBLICKEY_HASH_SHA1
                               : SSH_PUBLICKEY_HASH_SHA256;
}

/* The server key's sha256 fingerprint as ssh-keygen prints it. */
static char *server_fingerprint(ssh_key key)
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;

    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0) {
        fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
        ssh_clean_pubkey_hash(&hash);
    }
    return fp;
}

static int check_pinned(struct ssh_state *s, ssh_key key, const char *fp,
                        struct bd_err *err)
{
    const struct ssh_hkc *h = &s->conf.hkc;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    bool ok;

    if (ssh_get_publickey_hash(key, hash_type(h->type), &hash, &hlen) < 0)
        return bd_err_set(err, EIO, "%s: cannot hash the host key of %s",
                          s->display, s->hostport);
    ok = hlen == h->hash_len && memcmp(hash, h->hash, hlen) == 0;
    ssh_clean_pubkey_hash(&hash);
    if (!ok)
        return bd_err_set(err, EPERM, "%s: the host key of %s does not match "
                          "host_key_check=%s:...; the server's key is %s; if "
                          "it changed on purpose, update the fingerprint",
                          s->display, s->hostport, hash_name(h->type),
                          fp ? fp : "(unknown)");
    return 0;
}

static int check_known_hosts(struct ssh_state *s, const char *fp,
                             struct bd_err *err)
{
    const char *file = s->conf.known_hosts ? s->conf.known_hosts
                                           : "~/.ssh/known_hosts";
    const char *fps = fp ? fp : "(unknown)";

    switch (ssh_session_is_known_server(s->sess)) {
    case SSH_KNOWN_HOSTS_OK:
        return 0;
    case SSH_KNOWN_HOSTS_CHANGED:
        return bd_err_set(err, EPERM, "%s: the host key of %s has CHANGED "
                          "since it was stored in %s (now %s); someone may be "
                          "intercepting the connection; if the change is "
                          "expected, fix the known_hosts entry", s->display,
                          s->hostport, file, fps);
    case SSH_KNOWN_HOSTS_OTHER:
        return bd_err_set(err, EPERM, "%s: %s offers a different type of host "
                          "key (%s) than the one stored in %s; refusing to "
                          "connect", s->display, s->hostport, fps, file);
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
        return bd_err_set(err, EPERM, "%s: the host key of %s is unknown (not "
                          "in %s); its fingerprint is %s; add the host to "
                          "known_hosts (ssh-keyscan -p %u %s) or give "
                          "host_key_check=%s", s->display, s->hostport, file,
                          fps, s->conf.port, s->conf.host,
                          fp && !strncmp(fp, "SHA256:", 7) ? fp : "sha256:...");
    default:
        return bd_err_set(err, EIO, "%s: cannot check the host key of %s: %s",
                          s->display, s->hostport, ssh_get_error(s->sess));
    }
}

static int check_host_key(struct ssh_state *s, struct bd_err *err)
{
    ssh_key key = NULL;
    char *fp = NULL;
    int r;

    if (s->conf.hkc.mode == SSH_HKC_NONE)
        return 0;
    if (ssh_get_server_publickey(s->sess, &key) < 0)
        return bd_err_set(err, EIO, "%s: %s sent no host key", s->display,
                          s->hostport);
    fp = server_fingerprint(key);
    if (s->conf.hkc.mode == SSH_HKC_HASH)
        r = check_pinned(s, key, fp, err);
    else
        r = check_known_hosts(s, fp, err);
    ssh_string_free_char(fp);
    ssh_key_free(key);
    return r;
}

static int authenticate(struct ssh_state *s, struct bd_err *err)
{
    const char *id = s->conf.identity;
    int r;

    if (id) {
        ssh_key key = NULL;
        if (ssh_pki_import_privkey_file(id, NULL, NULL, NULL, &key) != SSH_OK)
            return bd_err_set(err, EACCES, "%s: cannot read the private key "
                              "'%s' (missing, unreadable or passphrase-"
                              "protected; add such keys to ssh-agent instead)",
                              s->display, id);
        r = ssh_userauth_publickey(s->sess, NULL, key);
        ssh_key_free(key);
        if (r == SSH_AUTH_SUCCESS)
            return 0;
        if (r == SSH_AUTH_ERROR)
            return bd_err_set(err, EIO, "%s: authentication failed: %s",
                              s->display, ssh_get_error(s->sess));
        return bd_err_set(err, EACCES, "%s: %s did not accept the key '%s' "
                          "for user '%s'", s->display, s->hostport, id,
                          s->user);
    }
    /* the agent first, then the default keys in ~/.ssh */
    r = ssh_userauth_publickey_auto(s->sess, NULL, NULL);
    if (r == SSH_AUTH_SUCCESS)
        return 0;
    if (r == SSH_AUTH_ERROR)
        return bd_err_set(err, EIO, "%s: authentication failed: %s",
                          s->display, ssh_get_error(s->sess));
    return bd_err_set(err, EACCES, "%s: authentication as '%s' failed: %s "
                      "accepted no key from ssh-agent%s or ~/.ssh; add the key "
                      "to the agent or give identity=KEYFILE", s->display,
                      s->user, s->hostport,
                      getenv("SSH_AUTH_SOCK") ? "" : " (SSH_AUTH_SOCK is not set)");
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

static int open_remote(struct bd_node *n, struct bd_err *err)
{
    struct ssh_state *s = n->state;
    bool ro = n->flags.read_only;
    sftp_attributes st;
    int e;

    s->sftp = sftp_new(s->sess);
    if (!s->sftp || sftp_init(s->sftp) < 0)
        return bd_err_set(err, EIO, "%s: %s has no SFTP service (%s)",
                          s->display, s->hostport, ssh_get_error(s->sess));
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
    return 0;
}

/* ---- driver callbacks ------------------------------------------------------ */

static int ssh_open(struct bd_node *n, const struct bd_opts *o,
                    struct bd_err *err)
{
    struct ssh_state *s = n->state;
    struct bd_err step = {0};
    struct stat st;
    long timeout;
    int fd = -1, r;

    if ((r = collect_target(o, &s->target, err)) < 0 ||
        (r = sshc_conf(&s->target, &s->conf, err)) < 0)
        return r;
    s->display = sshc_display(&s->conf);
    if (!s->display ||
        asprintf(&s->hostport, strchr(s->conf.host, ':') ? "[%s]:%u" : "%s:%u",
                 s->conf.host, s->conf.port) < 0) {
        s->hostport = NULL;
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    s->sess = ssh_new();
    if (!s->sess)
        return bd_err_set(err, ENOMEM, "%s: cannot create an ssh session",
                          s->display);
    if ((r = set_session_options(s, err)) < 0)
        return r;
    if (s->conf.user) {
        s->user = strdup(s->conf.user);
    } else {
        /* the local login name, as ssh does; said in messages and info */
        struct passwd *pw = getpwuid(geteuid());
        s->user = strdup(pw ? pw->pw_name : "root");
        if (s->user && ssh_options_set(s->sess, SSH_OPTIONS_USER, s->user) < 0)
            return bd_err_set(err, EINVAL, "%s: %s", s->display,
                              ssh_get_error(s->sess));
    }
    if (!s->user)
        return bd_err_set(err, ENOMEM, "out of memory");
    if ((r = tcp_connect(s, &fd, err)) < 0)
        return r;
    /* libssh does not close a socket it was given: close does */
    s->fd = fd;
    if (fstat(fd, &st) == 0)
        s->sock_ino = st.st_ino;
    if (ssh_options_set(s->sess, SSH_OPTIONS_FD, &fd) < 0)
        return bd_err_set(err, EIO, "%s: %s", s->display,
                          ssh_get_error(s->sess));
    if (ssh_connect(s->sess) != SSH_OK)
        return connect_error(s, err);
    /* libssh bounds only the connect itself; the watchdog does the rest */
    if ((r = watchdog_start(s)) < 0)
        return bd_err_set(err, -r, "%s: cannot start the timeout thread: %s",
                          s->display, strerror(-r));
    timeout = (long)s->conf.timeout;
    ssh_options_set(s->sess, SSH_OPTIONS_TIMEOUT, &timeout);
    call_begin(s, s->conf.connect_timeout);
    r = check_host_key(s, &step);
    if (r == 0)
        r = authenticate(s, &step);
    if (r == 0)
        r = open_remote(n, &step);
    call_end(s);
    if (r < 0 && atomic_load(&s->timed_out))
        return bd_err_set(err, ETIMEDOUT, "%s: %s stopped answering during "
                          "login (no answer within %u s)", s->display,
                          s->hostport, s->conf.connect_timeout);
    if (r < 0)
        return bd_err_set(err, step.errnum, "%s", step.msg);
    log_debug("ssh", "%s: size %lld, fsync %s", s->display,
              (long long)s->size, s->can_fsync ? "yes" : "no");
    return 0;
}

static void ssh_close_node(struct bd_node *n)
{
    struct ssh_state *s = n->state;
    bool live = call_begin(s, s->conf.timeout);

    /* after a timeout the socket is shut down: these fail fast */
    if (s->file)
        sftp_close(s->file);
    if (s->sftp)
        sftp_free(s->sftp);
    if (s->sess && live && ssh_is_connected(s->sess))
        ssh_disconnect(s->sess);
    call_end(s);
    watchdog_stop(s);
    if (s->sess)
        ssh_free(s->sess);
    if (s->sock_ino) {
        struct stat st;
        if (fstat(s->fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_ino == s->sock_ino)
            close(s->fd);
    }
    free(s->display);
    free(s->hostport);
    free(s->user);
    sshc_free(&s->target);
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

    if (!call_begin(s, s->conf.timeout))
        return io_error(n, "read");
    r = pread_pipelined(n, buf, len, off);
    call_end(s);
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

    if (!call_begin(s, s->conf.timeout))
        return io_error(n, "write");
    r = pwrite_chunks(n, buf, len, off, flags);
    call_end(s);
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
    if (!call_begin(s, s->conf.timeout))
        return io_error(n, "fsync");
    r = sftp_fsync(s->file) < 0 ? io_error(n, "fsync") : 0;
    call_end(s);
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
    if (!call_begin(s, s->conf.timeout))
        return bd_err_set(err, EIO, "%s: the connection to %s timed out",
                          s->display, s->hostport);
    r = sftp_setstat(s->sftp, s->conf.path, &attr);
    call_end(s);
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
                : h->mode == SSH_HKC_HASH ? hash_name(h->type)
                                          : "known_hosts");
    bd_info_add(info, "fsync", "%s", s->can_fsync ? "fsync@openssh.com"
                                                  : "not supported by the server");
}

const struct bd_driver bd_drv_ssh = {
    .name = "ssh",
    .kind = BD_PROTOCOL,
    .schemes = ssh_schemes,
    .options = ssh_options,
    .state_size = sizeof(struct ssh_state),
    .parallel = false,
    .parse_uri = ssh_parse_uri,
    .open = ssh_open,
    .close = ssh_close_node,
    .limits = ssh_limits,
    .size = ssh_size,
    .pread = ssh_pread,
    .pwrite = ssh_pwrite,
    .flush = ssh_flush,
    .truncate = ssh_truncate,
    .info = ssh_info,
};
