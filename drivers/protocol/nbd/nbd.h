/*
 * Private header of the nbd protocol driver: where to connect (parsed from a
 * URI, a legacy "nbd:host:port" string or dotted options) and the tunables.
 * Parsing is target.c, connections conn.c, the replay journal journal.c,
 * the block-node callbacks nbd.c.
 */
#ifndef IMGFUSE_NBD_H
#define IMGFUSE_NBD_H

#include "core/bd.h"

#include <pthread.h>

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
    NBDT_REPLAY,            /* replay-buffer: bytes of unflushed writes kept */
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
    uint64_t replay_bytes;          /* journal limit, 0: none */
};

/* Check the values in t and fill c (borrowing t's strings). */
int nbdt_conf(const struct nbdt *t, struct nbd_conf *c, struct bd_err *err);
/* "nbd://host:port/export" or "nbd+unix:///export?socket=PATH": no secrets,
 * for messages and info; caller frees. */
char *nbdt_display(const struct nbd_conf *c);

/* ---- connections and requests (conn.c) ---------------------------------- */

struct nbd_handle;

/*
 * One NBD connection. Many threads may have requests in flight on it at
 * once: each issues its own command, and whichever waiter is free drives
 * libnbd's state machine (one "poller" at a time, woken through a pipe when
 * a new command changes what to wait for). Lock order: libnbd's handle lock
 * (held while completion callbacks run) before lock; nothing calls into
 * libnbd while holding lock.
 */
struct nbd_conn {
    pthread_mutex_t lock;
    pthread_cond_t cv;              /* reconnected, or the last user left */
    int wake[2];                    /* pipe that interrupts the poller */
    bool ready;                     /* lock, cv and pipe are set up */
    struct nbd_handle *h;           /* NULL: to be (re)connected */
    bool polling;                   /* a thread is inside poll() for h */
    bool dead;                      /* h failed; replaced once users is 0 */
    bool connecting;                /* a thread is (re)connecting */
    unsigned users;                 /* threads with requests on h */
    struct nbd_req *waiters;        /* requests waiting for replies on h */
    uint64_t dirty_seq;             /* last acknowledged unflushed write */
};

#define NBD_EXTENTS_MAX 64u

/* One base:allocation extent as the server sent it. */
struct nbd_extent {
    uint32_t len;
    uint32_t flags;                 /* LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO */
};

enum nbd_op { NBD_OP_READ, NBD_OP_WRITE, NBD_OP_ZERO, NBD_OP_TRIM,
              NBD_OP_FLUSH, NBD_OP_STATUS };

/* An acknowledged write kept until a flush covers it (journal.c). */
struct nbd_jentry {
    uint64_t seq, off, len;
    enum nbd_op op;                 /* write, zero or trim */
    uint32_t flags;
    void *data;                     /* write: a copy of the bytes */
};

struct nbd_journal {
    pthread_rwlock_t order;         /* writes share it; replay owns it */
    pthread_mutex_t lock;           /* the entries below */
    bool init;
    struct nbd_jentry *e;           /* e[head..n) in seq order */
    size_t head, n, cap;
    uint64_t bytes, limit;          /* limit 0: no journal */
    uint64_t seq;
    _Atomic bool need_replay;       /* a connection with entries dropped */
};

struct nbd_state {
    struct nbdt target;             /* owns the strings conf points into */
    struct nbd_conf conf;
    char *display;                  /* URI for messages, without secrets */

    struct nbd_conn conns[NBD_MAX_CONNS];
    unsigned nconns;                /* connections in the pool */

    /* What the server said on the first connection. */
    int64_t size;
    bool read_only, can_flush, can_fua, can_trim, can_zero, can_fast_zero;
    bool can_multi_conn, has_allocation, tls_negotiated;
    uint32_t bs_min, bs_pref, bs_max;

    /* Acknowledged writes vs. flushes, to report writes a drop may lose. */
    _Atomic uint64_t write_seq;
    _Atomic uint64_t flushed_seq;
    _Atomic bool lost_writes;
    _Atomic bool down;              /* the last reconnect gave up */
    _Atomic unsigned long drops;

    /* The last block status reply, for SEEK_DATA/HOLE and st_blocks walks;
     * valid while change_gen is ext_gen and for a second at most. */
    pthread_mutex_t ext_lock;
    bool ext_lock_init;
    uint64_t ext_start;
    unsigned ext_n;
    struct nbd_extent ext[NBD_EXTENTS_MAX];
    uint64_t ext_gen;
    int64_t ext_time_ms;
    _Atomic uint64_t change_gen;    /* bumped around every write */
    _Atomic unsigned writes_in_flight;

    struct nbd_journal journal;
};

struct nbd_req {
    enum nbd_op op;
    void *buf;
    uint64_t len, off;
    uint32_t flags;                 /* LIBNBD_CMD_FLAG_* */
    /* filled while it runs */
    struct nbd_conn *conn;
    bool done;                      /* under conn->lock */
    int err;
    pthread_cond_t cv;              /* signalled when done or to poll */
    struct nbd_req *next;           /* in conn->waiters */
    struct nbd_extent *ext;         /* NBD_OP_STATUS: NBD_EXTENTS_MAX slots */
    unsigned nr_ext;                /* base:allocation extents from off */
};

/* One connection attempt within timeout_ms; err names the server and what
 * went wrong. */
int nbdc_connect(struct nbd_state *s, unsigned timeout_ms,
                 struct nbd_handle **out, struct bd_err *err);
/* Set up conns[i] around an open handle (or NULL); 0 or -errno. */
int nbdc_init(struct nbd_conn *c, struct nbd_handle *h);
/* Disconnect politely (bounded) and free everything of c. */
void nbdc_fini(struct nbd_conn *c);
/* Run one request on the least busy connection, reconnecting a dropped
 * one with a bounded retry; 0 or -errno (-ETIMEDOUT, -EIO, server's). */
int nbdc_run(struct nbd_state *s, struct nbd_req *r);
/* ---- the replay journal (journal.c) --------------------------------------- */

/* limit: bytes of unflushed writes to keep; 0 keeps none. */
int nbdj_init(struct nbd_journal *j, uint64_t limit);
void nbdj_fini(struct nbd_journal *j);
bool nbdj_enabled(const struct nbd_journal *j);
/* Around a write, zero or trim and its nbdj_add: replay waits for these. */
void nbdj_enter(struct nbd_journal *j);
void nbdj_leave(struct nbd_journal *j);
/* Keep an acknowledged request (copying a write's bytes); 0 or -ENOMEM. */
int nbdj_add(struct nbd_journal *j, const struct nbd_req *r);
/* More than the limit kept: time to flush. */
bool nbdj_full(struct nbd_journal *j);
/* Before a flush: the entries it will cover are those up to this mark. */
uint64_t nbdj_mark(struct nbd_journal *j);
void nbdj_flushed(struct nbd_journal *j, uint64_t upto);
/* A connection dropped: entries must be replayed; false when none. */
bool nbdj_dropped(struct nbd_journal *j);
/* Replay after a drop (no-op otherwise), then flush; called without the
 * journal's order lock. 0 or -EIO, and then it is tried again later. */
int nbdj_replay(struct nbd_state *s);

/* Monotonic milliseconds. */
int64_t nbdc_now_ms(void);
/* libnbd's last error text without the API function name in front. */
const char *nbdc_msg(const char *msg);

#endif
