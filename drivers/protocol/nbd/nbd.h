/*
 * Private header of the nbd protocol driver: where to connect (parsed from a
 * URI, a legacy "nbd:host:port" string or dotted options) and the tunables.
 * Connection handling and I/O live in nbd.c; parsing lives in target.c.
 */
#ifndef IMGFUSE_NBD_H
#define IMGFUSE_NBD_H

#include "bd.h"

#define NBD_DEFAULT_PORT "10809"
#define NBD_MAX_CONNS 16u

/* Every option the driver reads, as it is spelled in struct bd_opts. */
enum nbdt_key {
    NBDT_TYPE,              /* server.type: inet | unix */
    NBDT_HOST,              /* server.host */
    NBDT_PORT,              /* server.port */
    NBDT_PATH,              /* server.path: unix socket */
    NBDT_EXPORT,            /* export */
    NBDT_TLS,               /* tls: on | off */
    NBDT_TLS_CERTS,         /* tls-certificates: directory */
    NBDT_TLS_PSK,           /* tls-psk-file */
    NBDT_TLS_USER,          /* tls-username (the PSK identity) */
    NBDT_TLS_VERIFY,        /* tls-verify-peer: on | off */
    NBDT_CONNECT_TIMEOUT,   /* connect-timeout: seconds */
    NBDT_TIMEOUT,           /* timeout: seconds per request */
    NBDT_RETRIES,           /* reconnect-retries */
    NBDT_CONNECTIONS,       /* connections: multi-conn pool size */
    NBDT_NKEYS
};

extern const char *const nbdt_keys[NBDT_NKEYS + 1];

/* A parsed target: one string (or NULL) per key; owns the strings. */
struct nbdt {
    char *v[NBDT_NKEYS];
};

/*
 * Parse "nbd[s]://[user@]host[:port][/export][?query]",
 * "nbd[s]+unix:///[export]?socket=PATH[&...]", "nbd:host[:port][:exportname=N]"
 * or "nbd:unix:PATH[:exportname=N]" into t (zeroed by the caller; free with
 * nbdt_free even on failure). Query keys are the option names above plus
 * "socket". 0 or -errno with err filled.
 */
int nbdt_parse(const char *src, struct nbdt *t, struct bd_err *err);
void nbdt_free(struct nbdt *t);
/* Set a key, replacing an earlier value; 0 or -ENOMEM. */
int nbdt_set(struct nbdt *t, enum nbdt_key k, const char *val);

/* Connection settings after validation; strings borrowed from a struct nbdt. */
struct nbd_conf {
    bool is_unix;
    const char *host, *port, *path, *export;
    bool tls;
    const char *tls_certs, *tls_psk, *tls_user;
    int tls_verify;                 /* -1: libnbd's default */
    unsigned connect_timeout_ms;
    unsigned timeout_ms;
    unsigned retries;
    unsigned conns;
};

/* Check the values in t and fill c (borrowing t's strings). */
int nbdt_conf(const struct nbdt *t, struct nbd_conf *c, struct bd_err *err);
/* "nbd://host:port/export" or "nbd+unix:///export?socket=PATH": no secrets,
 * for messages and info; caller frees. */
char *nbdt_display(const struct nbd_conf *c);

#endif
