/*
 * Private header of the iscsi driver's session side: the per-node state
 * (a pool of libiscsi sessions), shared by iscsi.c (sessions, I/O,
 * callbacks), lun.c (what the LUN says about itself) and reserve.c
 * (persistent reservations on every session). Needs libiscsi's headers,
 * unlike iscsi.h, which the unit tests and the fuzz target include.
 */
#ifndef IMGFUSE_ISCSI_SESSION_H
#define IMGFUSE_ISCSI_SESSION_H

#include "iscsi.h"
#include "locks/pr.h"

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <stdatomic.h>

#define ISCSI_MAX_XFER (8u << 20)       /* bytes per READ/WRITE we send */

struct iscsi_conn {
    pthread_mutex_t lock;
    struct iscsi_context *ctx;
};

struct iscsi_state {
    struct iscsi_conf conf;
    char *display;                  /* URL without the password */
    struct iscsi_conn conns[ISCSI_MAX_CONNS];
    unsigned nconns;
    atomic_uint next;

    uint64_t size;
    uint32_t bs;                    /* logical block size */
    uint32_t max_xfer;              /* bytes */
    uint32_t opt_xfer;
    bool lbpme, lbprz;              /* thin provisioning; unmapped reads 0 */
    bool lbpu, lbpws;               /* UNMAP; WRITE SAME(16) with UNMAP */
    uint32_t max_unmap;             /* blocks per UNMAP descriptor, 0: none */
    uint64_t max_ws;                /* blocks per WRITE SAME, 0: none given */
    atomic_bool no_ws, no_lba_status, no_sync;
    atomic_uint logged;             /* failures logged, for log-once */
    unsigned locks_init;
    char vendor[9], product[17];
    char digest_used[16];           /* what the target's login reply said */
    bool read_only;                 /* MODE SENSE says write-protected */

    struct pr_conf pr;              /* --pr: what was asked */
    bool pr_held;                   /* we hold the reservation */
};

/* libiscsi's last error on ctx with secrets blanked, into buf. */
const char *iscsi_ctx_error(const struct iscsi_conf *c,
                            struct iscsi_context *ctx, char *buf, size_t n);

/* lun.c: each 0 or -errno with err filled (the last two cannot fail). */
int iscsi_lun_check(struct iscsi_state *s, struct iscsi_context *ctx,
                    struct bd_err *err);
int iscsi_lun_capacity(struct iscsi_state *s, struct iscsi_context *ctx,
                       struct bd_err *err);
bool iscsi_lun_write_protected(struct iscsi_state *s,
                               struct iscsi_context *ctx);
void iscsi_lun_vpd(struct iscsi_state *s, struct iscsi_context *ctx);

/*
 * reserve.c, persistent reservations (--pr) through the sessions. Each is
 * called with the session's lock held (or before other threads run).
 *   acquire: on session 0 at open, before the others exist
 *   join:    on each further session at open
 *   rejoin:  a session logged in again (its registration was lost)
 *   recover: a command on ctx got RESERVATION CONFLICT
 *   release: at close, on the first live session
 */
int iscsi_pr_acquire(struct iscsi_state *s, struct bd_err *err);
int iscsi_pr_join(struct iscsi_state *s, struct iscsi_context *ctx);
int iscsi_pr_rejoin(struct iscsi_state *s, struct iscsi_context *ctx);
int iscsi_pr_recover(struct iscsi_state *s, struct iscsi_context *ctx);
void iscsi_pr_release(struct iscsi_state *s);
void iscsi_pr_info(struct iscsi_state *s, struct bd_info *info);

#endif
