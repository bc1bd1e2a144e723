/*
 * The iscsi protocol driver: one LUN of an iSCSI target, through libiscsi's
 * synchronous API, as a block node. A small pool of sessions, each behind
 * its own mutex, lets FUSE workers run in parallel; a lost session is
 * logged in again, bounded by reconnect-retries. Where to connect and
 * with which credentials is worked out in target.c.
 */
#include "session.h"
#include "core/overflow.h"

#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

#define ISCSI_LBA_DESCS 64u             /* GET LBA STATUS descriptors asked */

static const char *const iscsi_schemes[] = {"iscsi", NULL};

static const char *const iscsi_options[] = {
    "portal", "target", "lun", "user", "password", "target-user",
    "target-password", "initiator-name", "header-digest", "config", "timeout",
    "reconnect-retries", "connections", "filename", PR_OPTIONS, NULL,
};

/* Kept out of argv (ps) when a SOURCE spells them. */
static const char *const iscsi_secret_options[] = {
    "password", "target-password", NULL,
};

/* ---- sessions ----------------------------------------------------------- */

/* Hide the secrets if a library message ever quotes them. */
static void scrub(const struct iscsi_conf *c, char *msg)
{
    const char *secrets[] = {c->password, c->target_password};
    for (int i = 0; i < 2; i++) {
        char *p;
        size_t n = secrets[i] ? strlen(secrets[i]) : 0;
        while (n && (p = strstr(msg, secrets[i])))
            memset(p, '*', n);
    }
}

const char *iscsi_ctx_error(const struct iscsi_conf *c,
                             struct iscsi_context *ctx, char *buf, size_t n)
{
    const char *e = ctx ? iscsi_get_error(ctx) : NULL;
    snprintf(buf, n, "%s", e && *e ? e : "unknown error");
    scrub(c, buf);
    return buf;
}

/* A TCP connect with a deadline before libiscsi's own, which waits as long
 * as the kernel does: an unreachable portal fails fast and clearly. */
static int probe_portal(struct iscsi_state *s, struct bd_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int gai, last = ECONNREFUSED;

    gai = getaddrinfo(s->conf.host, s->conf.port, &hints, &res);
    if (gai != 0)
        return bd_err_set(err, EHOSTUNREACH, "%s: cannot resolve '%s': %s",
                          s->display, s->conf.host, gai_strerror(gai));
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            close(fd);
            freeaddrinfo(res);
            return 0;
        }
        if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            int pr = poll(&p, 1, (int)s->conf.timeout_s * 1000);
            if (pr == 0) {
                last = ETIMEDOUT;
            } else if (pr > 0 &&
                       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0) {
                if (soerr == 0) {
                    close(fd);
                    freeaddrinfo(res);
                    return 0;
                }
                last = soerr;
            } else {
                last = errno;
            }
        } else {
            last = errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (last == ECONNREFUSED)
        return bd_err_set(err, last, "%s: connection refused; is the iSCSI "
                          "target running on %s?", s->display, s->conf.portal);
    if (last == ETIMEDOUT)
        return bd_err_set(err, last, "%s: no answer from %s within %u s",
                          s->display, s->conf.portal, s->conf.timeout_s);
    return bd_err_set(err, last, "%s: cannot connect to %s: %s", s->display,
                      s->conf.portal, strerror(last));
}

/* Turn libiscsi's login failure text into a sentence a user can act on. */
static int login_error(struct iscsi_state *s, struct iscsi_context *ctx,
                       struct bd_err *err)
{
    char msg[512];
    iscsi_ctx_error(&s->conf, ctx, msg, sizeof(msg));
    if (strcasestr(msg, "authentication") || strcasestr(msg, "authoriz") ||
        strcasestr(msg, "chap"))
        return bd_err_set(err, EACCES, "%s: login refused, %s: %s; check the "
                          "CHAP user and password%s", s->display,
                          s->conf.user ? "wrong CHAP credentials"
                                       : "the target wants CHAP credentials",
                          msg, s->conf.target_user ? " and the target's mutual "
                          "CHAP secret" : "");
    if (strcasestr(msg, "not found") || strcasestr(msg, "target removed"))
        return bd_err_set(err, ENOENT, "%s: no target '%s' on %s (%s)",
                          s->display, s->conf.target, s->conf.portal, msg);
    if (strcasestr(msg, "not supported") || strcasestr(msg, "logical unit") ||
        strcasestr(msg, "logical_unit") ||
        strcasestr(msg, "LUN"))
        return bd_err_set(err, ENOENT, "%s: target '%s' has no lun %u (%s)",
                          s->display, s->conf.target, s->conf.lun, msg);
    if (strcasestr(msg, "timed out"))
        return bd_err_set(err, ETIMEDOUT, "%s: no answer to the login within "
                          "%u s; is %s an iSCSI target?", s->display,
                          s->conf.timeout_s, s->conf.portal);
    return bd_err_set(err, EIO, "%s: login failed: %s", s->display, msg);
}

/* libiscsi does not tell which header digest the login settled on, but
 * logs the target's answer: catch it while one thread logs in. */
static __thread char *login_digest;

static void login_log(int level, const char *msg)
{
    static const char key[] = "TargetLoginReply: HeaderDigest=";
    const char *p = strstr(msg, key);
    (void)level;
    if (p && login_digest) {
        p += sizeof(key) - 1;
        snprintf(login_digest, sizeof(((struct iscsi_state *)0)->digest_used),
                 "%.*s", (int)strcspn(p, " ["), p);
    }
}

static int conn_open(struct iscsi_state *s, unsigned idx, struct bd_err *err)
{
    const struct iscsi_conf *c = &s->conf;
    struct iscsi_context *ctx;
    uint32_t rnd = 0;

    ctx = iscsi_create_context(c->initiator);
    if (!ctx)
        return bd_err_set(err, ENOMEM, "%s: cannot create an iscsi context",
                          s->display);
    /* Distinct session ids, or the target would take each new login as a
     * reinstatement of the previous session and drop it. */
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint32_t)getpid();
    iscsi_set_isid_random(ctx, rnd & 0xffffff, idx);
    if (iscsi_set_targetname(ctx, c->target) != 0 ||
        iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL) != 0 ||
        iscsi_set_header_digest(ctx, (enum iscsi_header_digest)c->digest) != 0)
        goto out_ctx_err;
    if (c->user &&
        iscsi_set_initiator_username_pwd(ctx, c->user, c->password) != 0)
        goto out_ctx_err;
    if (c->target_user &&
        iscsi_set_target_username_pwd(ctx, c->target_user,
                                      c->target_password) != 0)
        goto out_ctx_err;
    iscsi_set_timeout(ctx, (int)c->timeout_s);
    /* Reconnecting is ours (conn_run): bounded, and a session that could
     * not come back is retried by the next request, not given up for good. */
    iscsi_set_noautoreconnect(ctx, 1);
    iscsi_set_tcp_keepalive(ctx, 10, 3, 3);
    bool catch_digest = !getenv("LIBISCSI_DEBUG") && !s->digest_used[0];
    if (catch_digest) {
        login_digest = s->digest_used;
        iscsi_set_log_fn(ctx, login_log);
        iscsi_set_log_level(ctx, 6);
    }
    int cr = iscsi_full_connect_sync(ctx, c->portal, (int)c->lun);
    if (catch_digest) {
        iscsi_set_log_level(ctx, 0);
        login_digest = NULL;
    }
    if (cr != 0) {
        int r = login_error(s, ctx, err);
        iscsi_destroy_context(ctx);
        return r;
    }
    s->conns[idx].ctx = ctx;
    return 0;

out_ctx_err: {
        char msg[512];
        int r = bd_err_set(err, EINVAL, "%s: %s", s->display,
                           iscsi_ctx_error(c, ctx, msg, sizeof(msg)));
        iscsi_destroy_context(ctx);
        return r;
    }
}

static struct iscsi_conn *conn_get(struct iscsi_state *s)
{
    unsigned start = atomic_fetch_add(&s->next, 1) % s->nconns;
    for (unsigned i = 0; i < s->nconns; i++) {
        struct iscsi_conn *c = &s->conns[(start + i) % s->nconns];
        if (pthread_mutex_trylock(&c->lock) == 0)
            return c;
    }
    pthread_mutex_lock(&s->conns[start].lock);
    return &s->conns[start];
}

static void conn_put(struct iscsi_conn *c)
{
    pthread_mutex_unlock(&c->lock);
}

/* Log in again on a lost session: up to 1 + reconnect-retries attempts,
 * each bounded by the connect check and the command timeout. Called with
 * the session's lock held. */
static int conn_reopen(struct iscsi_state *s, struct iscsi_conn *c)
{
    unsigned idx = (unsigned)(c - s->conns);
    struct bd_err e = {0};

    if (c->ctx) {
        iscsi_destroy_context(c->ctx);
        c->ctx = NULL;
    }
    for (unsigned i = 0; i <= s->conf.retries; i++) {
        bd_err_clear(&e);
        if (i > 0)
            usleep(200000u << (i < 4 ? i - 1 : 3));
        if (probe_portal(s, &e) == 0 && conn_open(s, idx, &e) == 0) {
            log_info("%s: session %u logged in again", s->display, idx);
            /* the target dropped our registration with the old session */
            if (s->pr_held)
                iscsi_pr_rejoin(s, c->ctx);
            return 0;
        }
    }
    if (atomic_fetch_add(&s->logged, 1) < 8)
        log_err("%s: session %u lost, logging in again failed: %s",
                s->display, idx, e.msg);
    return -EIO;
}

/* ---- SCSI commands ------------------------------------------------------- */

enum iscsi_op { OP_READ, OP_WRITE, OP_SYNC, OP_UNMAP, OP_WRITE_SAME,
                OP_LBA_STATUS };

static const char *const op_names[] = {
    [OP_READ] = "READ(16)", [OP_WRITE] = "WRITE(16)",
    [OP_SYNC] = "SYNCHRONIZE CACHE(16)", [OP_UNMAP] = "UNMAP",
    [OP_WRITE_SAME] = "WRITE SAME(16)", [OP_LBA_STATUS] = "GET LBA STATUS",
};

struct iscsi_cmd {
    enum iscsi_op op;
    void *buf;
    uint32_t len;           /* bytes of buf (READ, WRITE, WRITE SAME) */
    uint64_t lba;
    uint32_t blocks;        /* UNMAP, WRITE SAME */
    bool fua, unmap;
};

static struct scsi_task *issue(struct iscsi_state *s, struct iscsi_context *ctx,
                               const struct iscsi_cmd *m)
{
    int lun = (int)s->conf.lun, bs = (int)s->bs;
    struct scsi_iovec iov = {.iov_base = m->buf, .iov_len = m->len};
    struct unmap_list ul = {.lba = m->lba, .num = m->blocks};

    switch (m->op) {
    case OP_READ:
        return iscsi_read16_iov_sync(ctx, lun, m->lba, m->len, bs, 0, 0, 0, 0,
                                     0, &iov, 1);
    case OP_WRITE:
        return iscsi_write16_sync(ctx, lun, m->lba, m->buf, m->len, bs, 0, 0,
                                  m->fua, 0, 0);
    case OP_SYNC:
        return iscsi_synchronizecache16_sync(ctx, lun, 0, 0, 0, 0);
    case OP_UNMAP:
        return iscsi_unmap_sync(ctx, lun, 0, 0, &ul, 1);
    case OP_WRITE_SAME:
        return iscsi_writesame16_sync(ctx, lun, m->lba, m->buf, m->len,
                                      m->blocks, 0, m->unmap, 0, 0);
    case OP_LBA_STATUS:
        return iscsi_get_lba_status_sync(ctx, lun, m->lba,
                                         8 + 16 * ISCSI_LBA_DESCS);
    }
    return NULL;
}

/* No answer from the target: the session is gone or stuck. */
static bool session_lost(const struct scsi_task *t)
{
    return !t || t->status == SCSI_STATUS_ERROR ||
           t->status == SCSI_STATUS_CANCELLED ||
           t->status == SCSI_STATUS_TIMEOUT;
}

static bool is_unsupported(const struct scsi_task *t)
{
    return t && t->status == SCSI_STATUS_CHECK_CONDITION &&
           t->sense.key == SCSI_SENSE_ILLEGAL_REQUEST &&
           (t->sense.ascq == SCSI_SENSE_ASCQ_INVALID_OPERATION_CODE ||
            t->sense.ascq == SCSI_SENSE_ASCQ_INVALID_FIELD_IN_CDB);
}

/* 0 for GOOD, else -errno; the first failures of a node are logged. */
static int task_errno(struct iscsi_state *s, struct iscsi_context *ctx,
                      struct scsi_task *t, const char *what)
{
    char msg[512];
    int r;

    if (t && t->status == SCSI_STATUS_GOOD)
        return 0;
    if (!t || t->status != SCSI_STATUS_CHECK_CONDITION)
        r = t && t->status == SCSI_STATUS_TIMEOUT ? -ETIMEDOUT : -EIO;
    else if (t->sense.key == SCSI_SENSE_DATA_PROTECTION)
        r = -EROFS;
    else if (t->sense.key == SCSI_SENSE_ILLEGAL_REQUEST)
        r = is_unsupported(t) ? -ENOTSUP : -EINVAL;
    else
        r = -EIO;
    if (r != -ENOTSUP && atomic_fetch_add(&s->logged, 1) < 8) {
        if (t && t->status == SCSI_STATUS_CHECK_CONDITION)
            log_err("%s: %s failed: %s (%s)", s->display, what,
                    scsi_sense_key_str(t->sense.key),
                    scsi_sense_ascq_str(t->sense.ascq));
        else if (t && t->status == SCSI_STATUS_RESERVATION_CONFLICT)
            log_err("%s: %s failed: reservation conflict (another initiator "
                    "holds a persistent reservation)", s->display, what);
        else
            log_err("%s: %s failed: %s", s->display, what,
                    ctx ? iscsi_ctx_error(&s->conf, ctx, msg, sizeof(msg))
                        : "no session");
    }
    return r;
}

/* RESERVATION CONFLICT while we hold the reservation: this session lost
 * its registration (our own takeover after another session's re-login
 * drops it); register it again when the reservation is still ours. */
static bool pr_healed(struct iscsi_state *s, struct iscsi_conn *c,
                      const struct scsi_task *t)
{
    return t && t->status == SCSI_STATUS_RESERVATION_CONFLICT &&
           s->pr_held && iscsi_pr_recover(s, c->ctx) == 0;
}

/*
 * Run one command on a free session. After a unit attention, or on a lost
 * session once it is logged in again, the command is sent once more (reads
 * and writes of whole blocks are idempotent); if that fails too, -EIO, and
 * the next request tries again. A session that lost its reservation
 * registration gets it back once (pr_healed).
 * On success with out != NULL the task is the caller's to free.
 */
static int conn_run(struct iscsi_state *s, const struct iscsi_cmd *m,
                    struct scsi_task **out)
{
    struct iscsi_conn *c = conn_get(s);
    struct scsi_task *t = NULL;
    bool attention = false, lost = false, healed = false;
    int r;

    for (;;) {
        if (!c->ctx && conn_reopen(s, c) < 0)
            break;
        t = issue(s, c->ctx, m);
        if (!attention && t && t->status == SCSI_STATUS_CHECK_CONDITION &&
            t->sense.key == SCSI_SENSE_UNIT_ATTENTION) {
            /* the target reports an event (reset, reservation change):
             * it has been delivered, the command can go again */
            log_debug("iscsi", "%s: unit attention: %s", s->display,
                      scsi_sense_ascq_str(t->sense.ascq));
            attention = true;
        } else if (!healed && pr_healed(s, c, t)) {
            healed = true;
        } else if (!lost && session_lost(t)) {
            log_debug("iscsi", "%s: %s: session lost", s->display,
                      op_names[m->op]);
            lost = true;
            iscsi_destroy_context(c->ctx);
            c->ctx = NULL;
        } else {
            break;
        }
        if (t)
            scsi_free_scsi_task(t);
        t = NULL;
    }
    r = task_errno(s, c->ctx, t, op_names[m->op]);
    if (r == 0 && m->op == OP_READ &&
        t->residual_status != SCSI_RESIDUAL_NO_RESIDUAL && t->residual > 0)
        r = -EIO;           /* a short read would leave stale bytes */
    conn_put(c);
    if (r == 0 && out)
        *out = t;
    else if (t)
        scsi_free_scsi_task(t);
    return r;
}

/* ---- driver callbacks ------------------------------------------------------ */

static int collect_target(const struct bd_opts *o, struct iscsit *t,
                          struct bd_err *err)
{
    const char *fn = bd_opts_get(o, "filename");
    int r;

    if (fn && *fn && (r = iscsit_parse(fn, t, err)) < 0)
        return r;
    for (int k = 0; k < ISCSIT_NKEYS; k++) {
        const char *v = bd_opts_get(o, iscsit_keys[k]);
        if (v && (r = iscsit_set(t, (enum iscsit_key)k, v)) < 0)
            return r;
    }
    return 0;
}

/* The parts become options; "filename" gets the URL without the password,
 * which core uses to name the node. */
static int iscsi_parse_uri(const char *uri, struct bd_opts *o, struct bd_err *err)
{
    struct iscsit t = {0};
    char *display = NULL;
    int r = iscsit_parse(uri, &t, err);

    if (r == 0 && asprintf(&display, "iscsi://%s%s%s/%s/%s",
                           t.v[ISCSIT_USER] ? t.v[ISCSIT_USER] : "",
                           t.v[ISCSIT_USER] ? "@" : "", t.v[ISCSIT_PORTAL],
                           t.v[ISCSIT_TARGET], t.v[ISCSIT_LUN]) < 0) {
        display = NULL;
        r = -ENOMEM;
    }
    if (r == 0)
        r = bd_opts_set(o, "filename", display);
    for (int k = 0; r == 0 && k < ISCSIT_NKEYS; k++) {
        if (t.v[k])
            r = bd_opts_set(o, iscsit_keys[k], t.v[k]);
    }
    free(display);
    iscsit_free(&t);
    return r;
}

static int iscsi_open(struct bd_node *n, const struct bd_opts *o,
                      struct bd_err *err)
{
    struct iscsi_state *s = n->state;
    struct iscsit t = {0};
    int r;

    r = collect_target(o, &t, err);
    if (r == 0)
        r = iscsi_conf_resolve(&t, environ, &s->conf, err);
    iscsit_free(&t);
    if (r < 0) {
        const char *fn = bd_opts_get(o, "filename");
        bd_err_prefix(err, "%s", fn && *fn ? fn : "iscsi");
        return r;
    }
    if (!(s->display = iscsi_conf_display(&s->conf)))
        return bd_err_set(err, ENOMEM, "iscsi: out of memory");
    for (; s->locks_init < s->conf.conns; s->locks_init++)
        pthread_mutex_init(&s->conns[s->locks_init].lock, NULL);
    if ((r = probe_portal(s, err)) < 0 || (r = conn_open(s, 0, err)) < 0)
        return r;
    s->nconns = 1;
    if ((r = iscsi_lun_check(s, s->conns[0].ctx, err)) < 0 ||
        (r = iscsi_lun_capacity(s, s->conns[0].ctx, err)) < 0)
        return r;
    iscsi_lun_vpd(s, s->conns[0].ctx);
    s->read_only = iscsi_lun_write_protected(s, s->conns[0].ctx);
    if (s->read_only && !n->flags.read_only)
        return bd_err_set(err, EROFS, "%s: the lun is write-protected; mount "
                          "with -r", s->display);
    if ((r = pr_conf_parse(o, s->display, n->flags.read_only, &s->pr,
                           err)) < 0 ||
        (s->pr.on && (r = iscsi_pr_acquire(s, err)) < 0))
        return r;
    /* Further sessions only speed things up: stop at the first refusal. */
    while (s->nconns < s->conf.conns) {
        struct bd_err e = {0};
        if (conn_open(s, s->nconns, &e) < 0) {
            log_debug("iscsi", "%s: extra session refused (%s); using %u",
                      s->display, e.msg, s->nconns);
            break;
        }
        if (s->pr_held && iscsi_pr_join(s, s->conns[s->nconns].ctx) < 0) {
            log_debug("iscsi", "%s: extra session cannot register for the "
                      "reservation; using %u", s->display, s->nconns);
            iscsi_logout_sync(s->conns[s->nconns].ctx);
            iscsi_destroy_context(s->conns[s->nconns].ctx);
            s->conns[s->nconns].ctx = NULL;
            break;
        }
        s->nconns++;
    }
    log_debug("iscsi", "%s: %llu bytes, block %u, max transfer %u, lbpme %d "
              "lbprz %d lbpu %d lbpws %d, %u session(s)", s->display,
              (unsigned long long)s->size, s->bs, s->max_xfer, s->lbpme,
              s->lbprz, s->lbpu, s->lbpws, s->nconns);
    return 0;
}

static void iscsi_close_node(struct bd_node *n)
{
    struct iscsi_state *s = n->state;
    if (s->pr_held)
        iscsi_pr_release(s);
    for (unsigned i = 0; i < s->locks_init; i++) {
        if (s->conns[i].ctx) {
            /* a target that stopped answering must not hold up unmount */
            iscsi_set_timeout(s->conns[i].ctx, 2);
            iscsi_logout_sync(s->conns[i].ctx);
            iscsi_destroy_context(s->conns[i].ctx);
        }
        pthread_mutex_destroy(&s->conns[i].lock);
    }
    free(s->display);
    iscsi_conf_free(&s->conf);
}

static void iscsi_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct iscsi_state *s = n->state;
    lim->request_alignment = s->bs;
    lim->max_transfer = s->max_xfer;
    lim->opt_transfer = s->opt_xfer;
}

static int64_t iscsi_size(struct bd_node *n)
{
    struct iscsi_state *s = n->state;
    return (int64_t)s->size;
}

static int iscsi_pread_cb(struct bd_node *n, void *buf, uint64_t len,
                          uint64_t off)
{
    struct iscsi_state *s = n->state;
    struct iscsi_cmd m = {.op = OP_READ, .buf = buf, .len = (uint32_t)len,
                          .lba = off / s->bs};
    return conn_run(s, &m, NULL);
}

static int iscsi_pwrite_cb(struct bd_node *n, const void *buf, uint64_t len,
                           uint64_t off, unsigned flags)
{
    struct iscsi_state *s = n->state;
    struct iscsi_cmd m = {.op = OP_WRITE, .buf = (void *)buf,
                          .len = (uint32_t)len, .lba = off / s->bs,
                          .fua = (flags & BD_REQ_FUA) != 0};
    return conn_run(s, &m, NULL);
}

static int iscsi_flush_cb(struct bd_node *n)
{
    struct iscsi_state *s = n->state;
    struct iscsi_cmd m = {.op = OP_SYNC};
    int r;

    if (atomic_load(&s->no_sync))
        return 0;
    r = conn_run(s, &m, NULL);
    if (r == -ENOTSUP) {
        /* No cache to write back, says the target. */
        atomic_store(&s->no_sync, true);
        r = 0;
    }
    return r;
}

static int iscsi_discard_cb(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct iscsi_state *s = n->state;
    uint64_t lba = off / s->bs, blocks = len / s->bs;
    uint64_t max = s->max_unmap ? s->max_unmap : UINT32_MAX;
    int r = 0;

    if (!s->lbpu)
        return -ENOTSUP;
    while (r == 0 && blocks > 0) {
        struct iscsi_cmd m = {.op = OP_UNMAP, .lba = lba,
                              .blocks = (uint32_t)(blocks < max ? blocks : max)};
        r = conn_run(s, &m, NULL);
        lba += m.blocks;
        blocks -= m.blocks;
    }
    return r;
}

/* WRITE SAME(16) of a zero block; with UNMAP when the caller allows holes
 * and the LUN reads unmapped blocks as zeroes. */
static int iscsi_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                               unsigned flags)
{
    struct iscsi_state *s = n->state;
    uint64_t lba = off / s->bs, blocks = len / s->bs;
    uint64_t max = s->max_ws ? s->max_ws : 65536;
    bool unmap = (flags & BD_REQ_MAY_UNMAP) && s->lbpws && s->lbprz;
    unsigned char *zero;
    int r = 0;

    if (atomic_load(&s->no_ws))
        return -ENOTSUP;
    /* Without UNMAP the target writes every block: no faster than ours. */
    if ((flags & BD_REQ_NO_FALLBACK) && !unmap)
        return -ENOTSUP;
    if (max > UINT32_MAX)
        max = UINT32_MAX;
    if (!(zero = calloc(1, s->bs)))
        return -ENOMEM;
    while (r == 0 && blocks > 0) {
        struct iscsi_cmd m = {.op = OP_WRITE_SAME, .buf = zero, .len = s->bs,
                              .lba = lba, .unmap = unmap,
                              .blocks = (uint32_t)(blocks < max ? blocks : max)};
        r = conn_run(s, &m, NULL);
        lba += m.blocks;
        blocks -= m.blocks;
    }
    free(zero);
    if (r == -ENOTSUP)
        atomic_store(&s->no_ws, true);
    if (r == 0 && (flags & BD_REQ_FUA))
        r = iscsi_flush_cb(n);
    return r;
}

/* GET LBA STATUS: mapped blocks are data, unmapped ones read as zeroes
 * only when the LUN says so (LBPRZ); otherwise they are called data,
 * which is always right. */
static int iscsi_block_status_cb(struct bd_node *n, uint64_t off, uint64_t len,
                                 uint64_t *pnum, unsigned *status,
                                 uint64_t *map)
{
    struct iscsi_state *s = n->state;
    uint64_t lba = off / s->bs;
    struct iscsi_cmd m = {.op = OP_LBA_STATUS, .lba = lba};
    struct scsi_get_lba_status *ls;
    struct scsi_task *t = NULL;
    int r;

    (void)map;
    *pnum = len;
    *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED;
    if (!s->lbpme || atomic_load(&s->no_lba_status))
        return 0;
    r = conn_run(s, &m, &t);
    if (r == -ENOTSUP || r == -EINVAL) {
        atomic_store(&s->no_lba_status, true);
        return 0;
    }
    if (r < 0)
        return r;
    if ((ls = scsi_datain_unmarshall(t)) != NULL) {
        for (uint32_t i = 0; i < ls->num_descriptors; i++) {
            const struct scsi_lba_status_descriptor *d = &ls->descriptors[i];
            uint64_t end, bytes;
            if (d->lba > lba || ovf_add_u64(d->lba, d->num_blocks, &end) ||
                end <= lba)
                continue;
            bytes = (end - lba) * s->bs;    /* end - lba <= 2^32 */
            *pnum = bytes < len ? bytes : len;
            if (d->provisioning != SCSI_PROVISIONING_TYPE_MAPPED && s->lbprz)
                *status = BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
            break;
        }
    }
    scsi_free_scsi_task(t);
    return 0;
}

static void iscsi_info_cb(struct bd_node *n, struct bd_info *info)
{
    struct iscsi_state *s = n->state;
    const struct iscsi_conf *c = &s->conf;

    bd_info_add(info, "portal", "%s", c->portal);
    bd_info_add(info, "target", "%s", c->target);
    bd_info_add(info, "lun", "%u", c->lun);
    if (s->vendor[0] || s->product[0])
        bd_info_add(info, "device", "%s %s", s->vendor, s->product);
    bd_info_add(info, "initiator", "%s", c->initiator);
    bd_info_add(info, "chap", "%s%s%s", c->user ? "user " : "off",
                c->user ? c->user : "", c->target_user ? ", mutual" : "");
    if (s->digest_used[0])
        bd_info_add(info, "header digest", "%s (asked %s)", s->digest_used,
                    iscsi_digest_name(c->digest));
    else
        bd_info_add(info, "header digest", "asked %s",
                    iscsi_digest_name(c->digest));
    bd_info_add(info, "block size", "%u", s->bs);
    bd_info_add(info, "max transfer", "%u", s->max_xfer);
    bd_info_add(info, "sessions", "%u", s->nconns);
    bd_info_add(info, "lun features", "%s%s%s%s%s",
                s->read_only ? "write-protected, " : "",
                s->lbpme ? "thin-provisioned" : "fully provisioned",
                s->lbprz ? ", unmapped reads zero" : "",
                s->lbpu ? ", unmap" : "", s->lbpws ? ", write-same-unmap" : "");
    iscsi_pr_info(s, info);
}

static const struct bd_uri_ops iscsi_uri_ops = {
    .schemes = iscsi_schemes,
    .parse = iscsi_parse_uri,
};

const struct bd_driver bd_drv_iscsi = {
    .name = "iscsi",
    .kind = BD_PROTOCOL,
    .options = iscsi_options,
    .secret_options = iscsi_secret_options,
    .state_size = sizeof(struct iscsi_state),
    .parallel = true,
    .open = iscsi_open,
    .close = iscsi_close_node,
    .limits = iscsi_limits,
    .size = iscsi_size,
    .pread = iscsi_pread_cb,
    .pwrite = iscsi_pwrite_cb,
    .pwrite_zeroes = iscsi_pwrite_zeroes,
    .discard = iscsi_discard_cb,
    .flush = iscsi_flush_cb,
    .block_status = iscsi_block_status_cb,
    .info = iscsi_info_cb,
    .uri = &iscsi_uri_ops,
};
