/*
 * ssh sessions for the ssh driver: our own TCP connect (so refusals and
 * timeouts are named), the host key check (known_hosts or a pinned
 * fingerprint), key authentication, and the watchdog that bounds every
 * blocking libssh call. SFTP and the block-node callbacks are ssh.c.
 */
#include "ssh.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

bool sshs_call_begin(struct ssh_state *s, unsigned secs)
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

void sshs_call_end(struct ssh_state *s)
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

const char *ssh_hkc_name(enum ssh_hkc_type t)
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
                          s->display, s->hostport, ssh_hkc_name(h->type),
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

int sshs_login(struct ssh_state *s, struct bd_err *err)
{
    struct bd_err step = {0};
    struct stat st;
    long timeout;
    int fd = -1, r;

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
    /* libssh does not close a socket it was given: sshs_logout does */
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
    sshs_call_begin(s, s->conf.connect_timeout);
    r = check_host_key(s, &step);
    if (r == 0)
        r = authenticate(s, &step);
    sshs_call_end(s);
    if (r < 0 && atomic_load(&s->timed_out))
        return bd_err_set(err, ETIMEDOUT, "%s: %s stopped answering during "
                          "login (no answer within %u s)", s->display,
                          s->hostport, s->conf.connect_timeout);
    if (r < 0)
        return bd_err_set(err, step.errnum, "%s", step.msg);
    return 0;
}

void sshs_logout(struct ssh_state *s)
{
    bool live = sshs_call_begin(s, s->conf.timeout);

    if (s->sess && live && ssh_is_connected(s->sess))
        ssh_disconnect(s->sess);
    sshs_call_end(s);
    watchdog_stop(s);
    if (s->sess)
        ssh_free(s->sess);
    s->sess = NULL;
    if (s->sock_ino) {
        struct stat st;
        if (fstat(s->fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_ino == s->sock_ino)
            close(s->fd);
        s->sock_ino = 0;
    }
}
