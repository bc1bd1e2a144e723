/*
 * Private header of the ssh protocol driver: where to connect and how to
 * check the server's host key, parsed from a URI or dotted options
 * (target.c, no network, so unit tests can reach it), the session with its
 * timeouts (conn.c) and the SFTP-backed block node (ssh.c).
 */
#ifndef IMGFUSE_SSH_H
#define IMGFUSE_SSH_H

#include "core/bd.h"

#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define SSH_DEFAULT_PORT 22
#define SSH_HASH_MAX 32                 /* sha256 digest bytes */
#define SSH_DEFAULT_CONNECT_TIMEOUT 10  /* seconds */
#define SSH_DEFAULT_TIMEOUT 60          /* seconds per SFTP request */

/* Every option the driver reads, as spelled in struct bd_opts. */
enum sshc_key {
    SSHC_USER,              /* user: remote login name */
    SSHC_HOST,              /* host */
    SSHC_PORT,              /* port */
    SSHC_PATH,              /* path: remote file, absolute or home-relative */
    SSHC_HOST_KEY_CHECK,    /* host_key_check: yes|no|md5:|sha1:|sha256: */
    SSHC_IDENTITY,          /* identity: private key file (else the agent) */
    SSHC_KNOWN_HOSTS,       /* known_hosts: file for host_key_check=yes */
    SSHC_CONNECT_TIMEOUT,   /* connect-timeout: seconds */
    SSHC_TIMEOUT,           /* timeout: seconds per request */
    SSHC_NKEYS
};

extern const char *const sshc_keys[SSHC_NKEYS + 1];

/* A parsed target: one string (or NULL) per key; owns the strings. */
struct sshc {
    char *v[SSHC_NKEYS];
};

/*
 * Parse "ssh://[user@]host[:port]/path[?key=val&...]" into t (zeroed by the
 * caller; free with sshc_free even on failure). Query keys are the option
 * names above. A password in the URI is refused (agent or key file only).
 * 0 or -errno with err filled.
 */
int sshc_parse_uri(const char *uri, struct sshc *t, struct bd_err *err);
void sshc_free(struct sshc *t);
/* Set a key, replacing an earlier value; 0 or -ENOMEM. */
int sshc_set(struct sshc *t, enum sshc_key k, const char *val);

enum ssh_hkc_mode { SSH_HKC_KNOWN_HOSTS, SSH_HKC_NONE, SSH_HKC_HASH };
enum ssh_hkc_type { SSH_HKC_MD5, SSH_HKC_SHA1, SSH_HKC_SHA256 };

/* host_key_check decoded: for SSH_HKC_HASH the expected digest bytes. */
struct ssh_hkc {
    enum ssh_hkc_mode mode;
    enum ssh_hkc_type type;
    uint8_t hash[SSH_HASH_MAX];
    size_t hash_len;
};

/*
 * Decode "yes", "no", "md5:HEX", "sha1:HEX", "sha256:HEX" or
 * "sha256:BASE64" (ssh-keygen's form, with or without '=' padding; also
 * "SHA256:..." as ssh-keygen prints it). HEX may have ':' between bytes.
 */
int ssh_hkc_parse(const char *s, struct ssh_hkc *h, struct bd_err *err);

/* Settings after validation; strings borrowed from a struct sshc. */
struct ssh_conf {
    const char *user;       /* NULL: the local user name */
    const char *host;
    unsigned port;
    const char *path;
    const char *identity;
    const char *known_hosts;
    struct ssh_hkc hkc;
    unsigned connect_timeout;
    unsigned timeout;
};

int sshc_conf(const struct sshc *t, struct ssh_conf *c, struct bd_err *err);

/* "ssh://[user@]host[:port]/path" for messages and node names; caller
 * frees; NULL without memory. IPv6 hosts in brackets. */
char *sshc_display(const struct ssh_conf *c);

/* ---- the node's state and its session (conn.c) --------------------------- */

struct ssh_state {
    struct sshc target;
    struct ssh_conf conf;
    char *display;              /* ssh://user@host:port/path, no secrets */
    char *hostport;             /* host:port for messages */
    char *user;                 /* the login name actually used */
    char *server;               /* ssh://user@host:port, for sibling checks */
    char *canon;                /* the server's canonical path of the file */
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

/* Connect, check the host key and authenticate, all bounded by
 * connect-timeout; 0 or -errno with err naming host:port. Needs s->conf,
 * s->display and s->hostport. */
int sshs_login(struct ssh_state *s, struct bd_err *err);
/* Disconnect and free the session; copes with a half-finished login. */
void sshs_logout(struct ssh_state *s);
/* Bracket every blocking libssh call: the watchdog shuts the connection
 * down when the call outlives secs. begin is false when it is already down. */
bool sshs_call_begin(struct ssh_state *s, unsigned secs);
void sshs_call_end(struct ssh_state *s);

/* "md5", "sha1" or "sha256" */
const char *ssh_hkc_name(enum ssh_hkc_type t);

#endif
