/*
 * Persistent reservations (--pr=exclusive) on an iSCSI LUN: carries
 * locks/pr.c's PR IN/OUT CDBs over a libiscsi session. Every session is an
 * I_T nexus of its own, so each registers our key; session 0 reserves.
 * Targets such as tgtd drop a registration with its session, so a session
 * that logs in again registers again and takes the reservation back.
 */
#include "session.h"

#include <string.h>

/* One session as a pr_dev. */
struct pr_path {
    struct iscsi_state *s;
    struct iscsi_context *ctx;
    struct pr_dev dev;
};

/* pr_dev.run over one session. */
static int run_cdb(void *ctx, const uint8_t *cdb, uint8_t *buf, uint32_t len,
                   struct pr_reply *rep)
{
    const struct pr_path *p = ctx;
    struct iscsi_context *ictx = p->ctx;
    struct iscsi_state *s = p->s;
    bool out = cdb[0] == 0x5f;
    struct iscsi_data data = {.size = len, .data = buf};
    struct scsi_task *t;

    if (!ictx)
        return -ENOTCONN;
    t = scsi_create_task(PR_CDB_LEN, (unsigned char *)cdb,
                         out ? SCSI_XFER_WRITE : SCSI_XFER_READ, (int)len);
    if (!t)
        return -ENOMEM;
    if (!iscsi_scsi_command_sync(ictx, (int)s->conf.lun, t,
                                 out ? &data : NULL) ||
        (t->status != SCSI_STATUS_GOOD &&
         t->status != SCSI_STATUS_CHECK_CONDITION &&
         t->status != SCSI_STATUS_RESERVATION_CONFLICT)) {
        scsi_free_scsi_task(t);
        return -EIO;
    }
    rep->status = (uint8_t)t->status;
    rep->sense_key = (uint8_t)t->sense.key;
    rep->asc = (uint8_t)(t->sense.ascq >> 8);
    rep->ascq = (uint8_t)t->sense.ascq;
    if (!out && t->status == SCSI_STATUS_GOOD) {
        size_t n = t->datain.size > 0 ? (size_t)t->datain.size : 0;
        if (n > len)
            n = len;
        memcpy(buf, t->datain.data, n);
        rep->len = (uint32_t)n;
    }
    scsi_free_scsi_task(t);
    return 0;
}

static const struct pr_dev *path(struct pr_path *p, struct iscsi_state *s,
                                 struct iscsi_context *ctx)
{
    *p = (struct pr_path){.s = s, .ctx = ctx};
    p->dev = (struct pr_dev){.run = run_cdb, .ctx = p, .name = s->display};
    return &p->dev;
}

int iscsi_pr_acquire(struct iscsi_state *s, struct bd_err *err)
{
    struct pr_path p;
    int r = pr_acquire(path(&p, s, s->conns[0].ctx), &s->pr, err);

    s->pr_held = r == 0;
    return r;
}

int iscsi_pr_join(struct iscsi_state *s, struct iscsi_context *ctx)
{
    struct pr_path p;
    return pr_join(path(&p, s, ctx), &s->pr);
}

int iscsi_pr_rejoin(struct iscsi_state *s, struct iscsi_context *ctx)
{
    struct pr_path p;
    return pr_rejoin(path(&p, s, ctx), &s->pr);
}

int iscsi_pr_recover(struct iscsi_state *s, struct iscsi_context *ctx)
{
    struct pr_path p;
    return pr_recover(path(&p, s, ctx), &s->pr);
}

void iscsi_pr_release(struct iscsi_state *s)
{
    for (unsigned i = 0; i < s->nconns; i++) {
        if (s->conns[i].ctx) {
            struct pr_path p;
            pr_release(path(&p, s, s->conns[i].ctx), &s->pr);
            break;
        }
    }
    s->pr_held = false;
}

void iscsi_pr_info(struct iscsi_state *s, struct bd_info *info)
{
    struct iscsi_conn *c = &s->conns[0];

    pthread_mutex_lock(&c->lock);
    if (c->ctx) {
        struct pr_path p;
        pr_info(path(&p, s, c->ctx), info);
    }
    pthread_mutex_unlock(&c->lock);
}
