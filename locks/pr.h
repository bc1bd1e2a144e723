/*
 * SCSI persistent reservations (SPC-4 PERSISTENT RESERVE IN/OUT) as a lock:
 * register a key, reserve WRITE EXCLUSIVE - REGISTRANTS ONLY, report the
 * holder on conflict, take a dead holder's reservation over, release. The
 * CDBs and their answers are built and decoded here; carrying a CDB to the
 * device (libiscsi, SG_IO, qemu-pr-helper) is the caller's pr_dev.
 */
#ifndef IMGFUSE_PR_H
#define IMGFUSE_PR_H

#include <stdbool.h>
#include <stdint.h>
#include "core/bd.h"

#define PR_CDB_LEN 10u
#define PR_PARAM_LEN 24u        /* PR OUT basic parameter list */
#define PR_IN_MAX 8192u         /* what we ask for (qemu-pr-helper's limit) */
#define PR_MAX_KEYS 64u

/* SCSI status bytes a transport reports (SAM-5). */
#define PR_STATUS_GOOD      0x00
#define PR_STATUS_CHECK     0x02
#define PR_STATUS_CONFLICT  0x18

/* PR OUT service actions and PR IN ones (SPC-4 6.15, 6.16). */
enum pr_out_sa { PR_OUT_REGISTER = 0, PR_OUT_RESERVE = 1, PR_OUT_RELEASE = 2,
                 PR_OUT_CLEAR = 3, PR_OUT_PREEMPT = 4,
                 PR_OUT_REGISTER_IGNORE = 6 };
enum pr_in_sa { PR_IN_READ_KEYS = 0, PR_IN_READ_RESERVATION = 1 };

/* Reservation types (SPC-4 table 212). */
#define PR_TYPE_WE_RO 5         /* write exclusive, registrants only */

/* What one command came back with. */
struct pr_reply {
    uint8_t status;             /* PR_STATUS_* (SCSI status byte) */
    uint8_t sense_key, asc, ascq;   /* valid for PR_STATUS_CHECK */
    uint32_t len;               /* PR IN: bytes of data received */
};

/*
 * A device to send PR commands to. run sends the 10-byte cdb; for PR OUT
 * (cdb[0] 0x5F) buf holds len bytes of parameter list, for PR IN (0x5E) it
 * receives up to len bytes. Returns 0 when the device answered (rep
 * filled, whatever the status), -errno when the command could not be
 * carried (no session, helper gone).
 */
struct pr_dev {
    int (*run)(void *ctx, const uint8_t *cdb, uint8_t *buf, uint32_t len,
               struct pr_reply *rep);
    void *ctx;
    const char *name;           /* the device or LUN, for messages */
};

/* What --pr asked for, per node. */
struct pr_conf {
    bool on;                    /* pr=exclusive */
    bool preempt;               /* take a held reservation over */
    uint64_t key;               /* never 0 */
    bool key_given;             /* pr-key= rather than derived */
};

/* Options a protocol node reads for this (add them to its option list). */
#define PR_OPTIONS "pr", "pr-preempt", "pr-key"

/*
 * Read pr=off|exclusive, pr-preempt=on|off and pr-key=HEX (0x optional,
 * 1..16 digits, not 0) from o. Without pr-key the key is derived from this
 * host's name and `image` (a stable name of the LUN or device), so the same
 * host mounting the same image uses the same key. A read-only node
 * (read_only) with pr=exclusive gets on = false: readers take nothing.
 */
int pr_conf_parse(const struct bd_opts *o, const char *image, bool read_only,
                  struct pr_conf *c, struct bd_err *err);
/* The derived key: FNV-1a 64 of "host\0image", never 0. */
uint64_t pr_key_derive(const char *host, const char *image);

/* CDBs: PR IN with an allocation length; PR OUT with its parameter list
 * (param gets PR_PARAM_LEN bytes). */
void pr_cdb_in(uint8_t *cdb, enum pr_in_sa sa, uint16_t alloc);
void pr_cdb_out(uint8_t *cdb, uint8_t *param, enum pr_out_sa sa, uint8_t type,
                uint64_t key, uint64_t sa_key);

struct pr_keys {
    uint32_t generation;
    unsigned n;                 /* listed (at most PR_MAX_KEYS) */
    unsigned total;             /* the device's count */
    uint64_t key[PR_MAX_KEYS];
};
struct pr_resv {
    uint32_t generation;
    bool held;
    uint64_t key;               /* 0 for the all-registrants types */
    uint8_t scope, type;
};
/* Decode READ KEYS / READ RESERVATION data of len bytes (untrusted: the
 * lists are clamped to what len holds). -EPROTO when too short. */
int pr_keys_decode(const uint8_t *buf, uint32_t len, struct pr_keys *k);
int pr_resv_decode(const uint8_t *buf, uint32_t len, struct pr_resv *r);
/* "Write Exclusive - Registrants Only", or "type N". */
const char *pr_type_name(uint8_t type);

/* The commands, through d. 0 for GOOD; -EBUSY for RESERVATION CONFLICT;
 * -ENOTSUP when the device does not do PR; other -errno. */
int pr_read_keys(const struct pr_dev *d, struct pr_keys *k);
int pr_read_resv(const struct pr_dev *d, struct pr_resv *r);
int pr_out(const struct pr_dev *d, enum pr_out_sa sa, uint8_t type,
           uint64_t key, uint64_t sa_key);

/*
 * Take the reservation for a read-write mount through d: refuse (-EBUSY,
 * err naming the image, the holder's key and type, and the preempt
 * option) when someone holds it, unless c->preempt, which takes it over
 * and logs so. On success d is registered with c->key and holds a
 * WRITE EXCLUSIVE - REGISTRANTS ONLY reservation. On failure nothing of
 * ours is left registered.
 */
int pr_acquire(const struct pr_dev *d, const struct pr_conf *c,
               struct bd_err *err);
/* Register c->key on one more path (another session) to the device. */
int pr_join(const struct pr_dev *d, const struct pr_conf *c);
/*
 * A path that came back (a re-login) after losing its registration: register
 * again and preempt our own key, so that this path holds the reservation
 * and stale registrations of ours are dropped. Other paths of ours lose
 * theirs and rejoin through pr_recover.
 */
int pr_rejoin(const struct pr_dev *d, const struct pr_conf *c);
/*
 * A command on d got RESERVATION CONFLICT while we think we hold the
 * reservation: when it is still ours (our key, our type), register d again
 * and return 0 (send the command again); otherwise -EIO, logged: someone
 * else took the reservation over.
 */
int pr_recover(const struct pr_dev *d, const struct pr_conf *c);
/* At unmount: end our reservation (also one held by a stale path of ours)
 * and unregister. Failures are logged. */
void pr_release(const struct pr_dev *d, const struct pr_conf *c);

struct bd_info;
/* "pr registrations" and "pr reservation" lines for imgfuse info. */
void pr_info(const struct pr_dev *d, struct bd_info *info);

#endif
