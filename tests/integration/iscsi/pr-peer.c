/*
 * pr-peer: another initiator on an iSCSI LUN, the tests' independent view
 * of persistent reservations (libiscsi's own PR IN/OUT encoding, not
 * imgfuse's). One session, kept for all steps, so registrations made in
 * it live until the program exits.
 *
 *   pr-peer URL INITIATOR-NAME STEP...
 *     keys           print "keys: K1 K2 ..." (hex, in the target's order)
 *     res            print "res: KEY TYPE" or "res: none"
 *     register:KEY   REGISTER AND IGNORE EXISTING KEY, print "register: STATUS"
 *     reserve:KEY    RESERVE type 5 (WE-RO), print "reserve: STATUS"
 *     write / read   one block at LBA 0, print "write: STATUS"
 *   STATUS is good, conflict, or check; exit 1 when a step cannot be sent.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

static const char *status(struct scsi_task *t)
{
    if (!t)
        return "lost";
    if (t->status == SCSI_STATUS_GOOD)
        return "good";
    if (t->status == SCSI_STATUS_RESERVATION_CONFLICT)
        return "conflict";
    return "check";
}

/* A unit attention (reservation change) is delivered once; send again. */
#define AGAIN(t, call)                                                     \
    do {                                                                   \
        t = call;                                                          \
        if (t && t->status == SCSI_STATUS_CHECK_CONDITION &&               \
            t->sense.key == SCSI_SENSE_UNIT_ATTENTION) {                   \
            scsi_free_scsi_task(t);                                        \
            t = call;                                                      \
        }                                                                  \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: pr-peer URL INITIATOR STEP...\n");
        return 2;
    }
    struct iscsi_context *ctx = iscsi_create_context(argv[2]);
    struct iscsi_url *u = ctx ? iscsi_parse_full_url(ctx, argv[1]) : NULL;
    if (!u) {
        fprintf(stderr, "pr-peer: bad url: %s\n", ctx ? iscsi_get_error(ctx) : "");
        return 1;
    }
    iscsi_set_targetname(ctx, u->target);
    iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
    if (iscsi_full_connect_sync(ctx, u->portal, u->lun) != 0) {
        fprintf(stderr, "pr-peer: login: %s\n", iscsi_get_error(ctx));
        return 1;
    }
    int lun = u->lun;
    unsigned char block[512];
    memset(block, 0x5a, sizeof(block));
    for (int i = 3; i < argc; i++) {
        const char *s = argv[i];
        struct scsi_task *t;
        if (!strcmp(s, "keys") || !strcmp(s, "res")) {
            bool keys = s[0] == 'k';
            AGAIN(t, iscsi_persistent_reserve_in_sync(ctx, lun,
                  keys ? SCSI_PERSISTENT_RESERVE_READ_KEYS
                       : SCSI_PERSISTENT_RESERVE_READ_RESERVATION, 4096));
            void *d = t && t->status == SCSI_STATUS_GOOD
                      ? scsi_datain_unmarshall(t) : NULL;
            if (!d) {
                fprintf(stderr, "pr-peer: %s: %s\n", s, iscsi_get_error(ctx));
                return 1;
            }
            if (keys) {
                struct scsi_persistent_reserve_in_read_keys *k = d;
                printf("keys:");
                for (int j = 0; j < k->num_keys; j++)
                    printf(" %" PRIx64, k->keys[j]);
                printf("\n");
            } else {
                struct scsi_persistent_reserve_in_read_reservation *r = d;
                if (r->reserved)
                    printf("res: %" PRIx64 " %u\n", r->reservation_key,
                           r->pr_type);
                else
                    printf("res: none\n");
            }
        } else if (!strncmp(s, "register:", 9) || !strncmp(s, "reserve:", 8)) {
            bool reg = s[2] == 'g';
            struct scsi_persistent_reserve_out_basic b = {0};
            uint64_t key = strtoull(strchr(s, ':') + 1, NULL, 16);
            if (reg)
                b.service_action_reservation_key = key;
            else
                b.reservation_key = key;
            AGAIN(t, iscsi_persistent_reserve_out_sync(ctx, lun,
                  reg ? SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY
                      : SCSI_PERSISTENT_RESERVE_RESERVE,
                  SCSI_PERSISTENT_RESERVE_SCOPE_LU,
                  reg ? 0 : SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
                  &b));
            printf("%s: %s\n", reg ? "register" : "reserve", status(t));
        } else if (!strcmp(s, "write")) {
            AGAIN(t, iscsi_write10_sync(ctx, lun, 0, block, 512, 512, 0, 0, 0, 0, 0));
            printf("write: %s\n", status(t));
        } else if (!strcmp(s, "read")) {
            AGAIN(t, iscsi_read10_sync(ctx, lun, 0, 512, 512, 0, 0, 0, 0, 0));
            printf("read: %s\n", status(t));
        } else {
            fprintf(stderr, "pr-peer: unknown step %s\n", s);
            return 2;
        }
        if (!t)
            return 1;
        scsi_free_scsi_task(t);
    }
    fflush(stdout);
    iscsi_logout_sync(ctx);
    iscsi_destroy_context(ctx);
    return 0;
}
