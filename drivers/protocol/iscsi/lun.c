/*
 * What a LUN says about itself, asked once at open on the first session:
 * INQUIRY (a disk, vendor and product), READ CAPACITY(16), the block
 * limits and provisioning VPD pages, and MODE SENSE's write protection.
 */
#include "session.h"
#include "core/overflow.h"

#include <stdio.h>
#include <string.h>

int iscsi_lun_capacity(struct iscsi_state *s, struct iscsi_context *ctx,
                         struct bd_err *err)
{
    struct scsi_task *t = iscsi_readcapacity16_sync(ctx, (int)s->conf.lun);
    struct scsi_readcapacity16 *rc;
    char msg[512];
    uint64_t blocks;

    if (!t || t->status != SCSI_STATUS_GOOD ||
        !(rc = scsi_datain_unmarshall(t))) {
        int r = bd_err_set(err, EIO, "%s: READ CAPACITY(16) failed: %s",
                           s->display, t && t->status == SCSI_STATUS_CHECK_CONDITION
                           ? scsi_sense_ascq_str(t->sense.ascq)
                           : iscsi_ctx_error(&s->conf, ctx, msg, sizeof(msg)));
        if (t)
            scsi_free_scsi_task(t);
        return r;
    }
    s->bs = rc->block_length;
    s->lbpme = rc->lbpme;
    s->lbprz = rc->lbprz;
    blocks = rc->returned_lba + 1;
    scsi_free_scsi_task(t);
    if (s->bs < 512 || s->bs > 65536 || !bd_is_pow2(s->bs))
        return bd_err_set(err, ENOTSUP, "%s: logical block size %u is not a "
                          "power of two from 512 to 65536", s->display, s->bs);
    if (blocks == 0 || ovf_mul_u64(blocks, s->bs, &s->size) ||
        s->size > (uint64_t)INT64_MAX)
        return bd_err_set(err, EPROTO, "%s: the lun reports an impossible size "
                          "(%llu blocks of %u bytes)", s->display,
                          (unsigned long long)blocks, s->bs);
    return 0;
}

static void rtrim(char *str)
{
    size_t n = strlen(str);
    while (n && str[n - 1] == ' ')
        str[--n] = '\0';
}

/* The standard INQUIRY: a disk, not the target's controller LUN 0. */
int iscsi_lun_check(struct iscsi_state *s, struct iscsi_context *ctx,
                        struct bd_err *err)
{
    struct scsi_task *t = iscsi_inquiry_sync(ctx, (int)s->conf.lun, 0, 0, 255);
    struct scsi_inquiry_standard *inq;
    int r = 0;

    if (!t || t->status != SCSI_STATUS_GOOD || !(inq = scsi_datain_unmarshall(t))) {
        if (t)
            scsi_free_scsi_task(t);
        return bd_err_set(err, EIO, "%s: INQUIRY failed", s->display);
    }
    if (inq->qualifier != SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED)
        r = bd_err_set(err, ENOENT, "%s: target '%s' has no lun %u",
                       s->display, s->conf.target, s->conf.lun);
    else if (inq->device_type != SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS)
        r = bd_err_set(err, ENOTSUP, "%s: lun %u is not a disk (SCSI device "
                       "type %d)%s", s->display, s->conf.lun, inq->device_type,
                       s->conf.lun == 0 ? "; lun 0 is often the target's "
                       "controller, data luns start at 1" : "");
    snprintf(s->vendor, sizeof(s->vendor), "%s", inq->vendor_identification);
    snprintf(s->product, sizeof(s->product), "%s",
             inq->product_identification);
    scsi_free_scsi_task(t);
    rtrim(s->vendor);
    rtrim(s->product);
    return r;
}

/* MODE SENSE(6): the WP bit of the device-specific parameter. A target
 * that does not answer is taken as writable (writes then fail with EROFS). */
bool iscsi_lun_write_protected(struct iscsi_state *s, struct iscsi_context *ctx)
{
    struct scsi_task *t = iscsi_modesense6_sync(ctx, (int)s->conf.lun, 1,
                                                SCSI_MODESENSE_PC_CURRENT,
                                                SCSI_MODEPAGE_RETURN_ALL_PAGES,
                                                0, 255);
    struct scsi_mode_sense *ms;
    bool wp = false;

    if (t && t->status == SCSI_STATUS_GOOD && (ms = scsi_datain_unmarshall(t)))
        wp = (ms->device_specific_parameter & 0x80) != 0;
    if (t)
        scsi_free_scsi_task(t);
    return wp;
}

/* Block limits and provisioning VPD pages; a LUN without them gets none
 * of the optional commands. */
void iscsi_lun_vpd(struct iscsi_state *s, struct iscsi_context *ctx)
{
    struct scsi_task *t;

    s->max_xfer = ISCSI_MAX_XFER;
    t = iscsi_inquiry_sync(ctx, (int)s->conf.lun, 1,
                           SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255);
    if (t && t->status == SCSI_STATUS_GOOD) {
        struct scsi_inquiry_block_limits *bl = scsi_datain_unmarshall(t);
        if (bl) {
            uint64_t b;
            if (bl->max_xfer_len && !ovf_mul_u64(bl->max_xfer_len, s->bs, &b) &&
                b < s->max_xfer)
                s->max_xfer = (uint32_t)b;
            if (bl->opt_xfer_len && !ovf_mul_u64(bl->opt_xfer_len, s->bs, &b) &&
                b <= s->max_xfer && bd_is_pow2(b))
                s->opt_xfer = (uint32_t)b;
            s->max_unmap = bl->max_unmap_bdc ? bl->max_unmap : 0;
            s->max_ws = bl->max_ws_len;
        }
    }
    if (t)
        scsi_free_scsi_task(t);
    s->max_xfer = (uint32_t)bd_align_down(s->max_xfer, s->bs);
    if (s->max_xfer < s->bs)
        s->max_xfer = s->bs;
    if (!s->lbpme)
        return;
    t = iscsi_inquiry_sync(ctx, (int)s->conf.lun, 1,
                           SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING, 255);
    if (t && t->status == SCSI_STATUS_GOOD) {
        struct scsi_inquiry_logical_block_provisioning *lbp =
            scsi_datain_unmarshall(t);
        if (lbp) {
            s->lbpu = lbp->lbpu;
            s->lbpws = lbp->lbpws;
        }
    }
    if (t)
        scsi_free_scsi_task(t);
}

