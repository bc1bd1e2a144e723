/*
 * SCSI persistent reservations as a lock on a LUN or device (locks/pr.h):
 * PR IN/OUT CDBs, decoding what READ KEYS and READ RESERVATION return, and
 * the sequences that register, reserve, take over, recover and release.
 * Sending a CDB is the caller's transport; nothing here knows about iSCSI,
 * SG_IO or qemu-pr-helper.
 */
#include "pr.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SENSE_UNIT_ATTENTION    0x6
#define SENSE_ILLEGAL_REQUEST   0x5
#define ASC_INVALID_OPCODE      0x20
#define ASC_INVALID_FIELD       0x24

/* ---- options and the key ------------------------------------------------ */

uint64_t pr_key_derive(const char *host, const char *image)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const char *parts[2] = {host, image};

    for (int i = 0; i < 2; i++) {
        for (const char *p = parts[i]; *p; p++) {
            h ^= (uint8_t)*p;
            h *= 0x100000001b3ull;
        }
        h *= 0x100000001b3ull;      /* a NUL between: "ab"+"c" != "a"+"bc" */
    }
    return h ? h : 1;
}

static int parse_key(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    for (; s[n]; n++) {
        char c = s[n];
        int d = c >= '0' && c <= '9' ? c - '0'
              : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
              : -1;
        if (d < 0 || n >= 16)
            return -EINVAL;
        v = v << 4 | (uint64_t)d;
    }
    if (n == 0 || v == 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int pr_conf_parse(const struct bd_opts *o, const char *image, bool read_only,
                  struct pr_conf *c, struct bd_err *err)
{
    static const char *const modes[] = {"off", "exclusive", NULL};
    const char *key = bd_opts_get(o, "pr-key");
    char host[256] = "";
    int m, r;

    memset(c, 0, sizeof(*c));
    if ((m = bd_opts_get_enum(o, "pr", modes, 0, err)) < 0)
        return m;
    if ((r = bd_opts_get_bool(o, "pr-preempt", false, &c->preempt, err)) < 0 &&
        r != -ENOENT)
        return r;
    if (key) {
        if (parse_key(key, &c->key) < 0)
            return bd_err_set(err, EINVAL, "%s: pr-key=%s: give the "
                              "reservation key as 1 to 16 hex digits, not "
                              "all zero", image, key);
        c->key_given = true;
    } else {
        gethostname(host, sizeof(host) - 1);
        c->key = pr_key_derive(host, image);
    }
    c->on = m == 1 && !read_only;
    return 0;
}

/* ---- CDBs and what comes back -------------------------------------------- */

void pr_cdb_in(uint8_t *cdb, enum pr_in_sa sa, uint16_t alloc)
{
    memset(cdb, 0, PR_CDB_LEN);
    cdb[0] = 0x5e;
    cdb[1] = (uint8_t)sa;
    bd_put_be16(cdb + 7, alloc);
}

void pr_cdb_out(uint8_t *cdb, uint8_t *param, enum pr_out_sa sa, uint8_t type,
                uint64_t key, uint64_t sa_key)
{
    memset(cdb, 0, PR_CDB_LEN);
    cdb[0] = 0x5f;
    cdb[1] = (uint8_t)sa;
    cdb[2] = type & 0x0f;                   /* scope 0: the logical unit */
    bd_put_be32(cdb + 5, PR_PARAM_LEN);
    memset(param, 0, PR_PARAM_LEN);
    bd_put_be64(param, key);
    bd_put_be64(param + 8, sa_key);
}

int pr_keys_decode(const uint8_t *buf, uint32_t len, struct pr_keys *k)
{
    uint32_t bytes, have;

    memset(k, 0, sizeof(*k));
    if (len < 8)
        return -EPROTO;
    k->generation = bd_be32(buf);
    bytes = bd_be32(buf + 4);
    k->total = bytes / 8;
    have = (len - 8) / 8;
    k->n = k->total < have ? k->total : have;
    if (k->n > PR_MAX_KEYS)
        k->n = PR_MAX_KEYS;
    for (unsigned i = 0; i < k->n; i++)
        k->key[i] = bd_be64(buf + 8 + 8 * i);
    return 0;
}

int pr_resv_decode(const uint8_t *buf, uint32_t len, struct pr_resv *r)
{
    memset(r, 0, sizeof(*r));
    if (len < 8)
        return -EPROTO;
    r->generation = bd_be32(buf);
    if (bd_be32(buf + 4) < 16)
        return 0;                           /* no reservation */
    if (len < 24)
        return -EPROTO;
    r->held = true;
    r->key = bd_be64(buf + 8);
    r->scope = buf[21] >> 4;
    r->type = buf[21] & 0x0f;
    return 0;
}

const char *pr_type_name(uint8_t type)
{
    static const char *const names[] = {
        [1] = "Write Exclusive", [3] = "Exclusive Access",
        [5] = "Write Exclusive - Registrants Only",
        [6] = "Exclusive Access - Registrants Only",
        [7] = "Write Exclusive - All Registrants",
        [8] = "Exclusive Access - All Registrants",
    };
    return type < 9 && names[type] ? names[type] : "an unknown type";
}

/* ---- commands ------------------------------------------------------------ */

/* One command; a unit attention (the device telling of a reservation
 * change, a reset) has been delivered by failing it, so it goes again. */
static int pr_cmd(const struct pr_dev *d, const uint8_t *cdb, uint8_t *buf,
                  uint32_t len, struct pr_reply *rep)
{
    int r = 0;

    for (int attempt = 0; attempt < 3; attempt++) {
        memset(rep, 0, sizeof(*rep));
        if ((r = d->run(d->ctx, cdb, buf, len, rep)) < 0)
            return r;
        log_debug("pr", "%s: %s sa %u: status 0x%02x sense %x/%02x/%02x",
                  d->name, cdb[0] == 0x5e ? "PR IN" : "PR OUT", cdb[1] & 0x1f,
                  rep->status, rep->sense_key, rep->asc, rep->ascq);
        if (rep->status != PR_STATUS_CHECK ||
            rep->sense_key != SENSE_UNIT_ATTENTION)
            break;
    }
    switch (rep->status) {
    case PR_STATUS_GOOD:
        return 0;
    case PR_STATUS_CONFLICT:
        return -EBUSY;
    case PR_STATUS_CHECK:
        /* no PR at all: invalid opcode, or (qemu-pr-helper on a device
         * without SG_IO) an invalid field in a PR IN CDB */
        if (rep->sense_key == SENSE_ILLEGAL_REQUEST &&
            (rep->asc == ASC_INVALID_OPCODE ||
             (rep->asc == ASC_INVALID_FIELD && cdb[0] == 0x5e)))
            return -ENOTSUP;
        return rep->sense_key == SENSE_ILLEGAL_REQUEST ? -EINVAL : -EIO;
    default:
        return -EIO;
    }
}

static int pr_in(const struct pr_dev *d, enum pr_in_sa sa, uint8_t **buf,
                 uint32_t *len)
{
    uint8_t cdb[PR_CDB_LEN];
    struct pr_reply rep;
    int r;

    if (!(*buf = calloc(1, PR_IN_MAX)))
        return -ENOMEM;
    pr_cdb_in(cdb, sa, PR_IN_MAX);
    if ((r = pr_cmd(d, cdb, *buf, PR_IN_MAX, &rep)) < 0) {
        free(*buf);
        *buf = NULL;
        return r;
    }
    *len = rep.len < PR_IN_MAX ? rep.len : PR_IN_MAX;
    return 0;
}

int pr_read_keys(const struct pr_dev *d, struct pr_keys *k)
{
    uint8_t *buf;
    uint32_t len;
    int r = pr_in(d, PR_IN_READ_KEYS, &buf, &len);

    if (r == 0) {
        r = pr_keys_decode(buf, len, k);
        free(buf);
    }
    return r;
}

int pr_read_resv(const struct pr_dev *d, struct pr_resv *res)
{
    uint8_t *buf;
    uint32_t len;
    int r = pr_in(d, PR_IN_READ_RESERVATION, &buf, &len);

    if (r == 0) {
        r = pr_resv_decode(buf, len, res);
        free(buf);
    }
    return r;
}

int pr_out(const struct pr_dev *d, enum pr_out_sa sa, uint8_t type,
           uint64_t key, uint64_t sa_key)
{
    uint8_t cdb[PR_CDB_LEN], param[PR_PARAM_LEN];
    struct pr_reply rep;

    pr_cdb_out(cdb, param, sa, type, key, sa_key);
    return pr_cmd(d, cdb, param, PR_PARAM_LEN, &rep);
}

/* ---- the lock ------------------------------------------------------------ */

static int unregister(const struct pr_dev *d)
{
    return pr_out(d, PR_OUT_REGISTER_IGNORE, 0, 0, 0);
}

static int held_error(const struct pr_dev *d, const struct pr_conf *c,
                      const struct pr_resv *res, struct bd_err *err)
{
    char holder[64];

    if (res->key == 0)
        snprintf(holder, sizeof(holder), "every registrant");
    else
        snprintf(holder, sizeof(holder), "key 0x%016" PRIx64, res->key);
    return bd_err_set(err, EBUSY, "%s: reserved by %s (%s)%s; mount it "
                      "read-only (-r), or, if that holder is dead, take the "
                      "reservation over with --pr=exclusive,preempt",
                      d->name, holder, pr_type_name(res->type),
                      res->key == c->key ? ", the key this host uses for "
                      "this image: another mount here, or one that was "
                      "killed" : "");
}

static int cmd_error(const struct pr_dev *d, const char *what, int r,
                     struct bd_err *err)
{
    if (r == -ENOTSUP)
        return bd_err_set(err, ENOTSUP, "%s: the device does not support "
                          "persistent reservations; mount without --pr",
                          d->name);
    return bd_err_set(err, -r, "%s: persistent reservation: %s failed: %s",
                      d->name, what, r == -EBUSY ? "reservation conflict"
                      : strerror(-r));
}

/* Reserve, or preempt the holder `res` names. */
static int take(const struct pr_dev *d, const struct pr_conf *c,
                const struct pr_resv *res, struct bd_err *err)
{
    int r;

    if (!res->held) {
        r = pr_out(d, PR_OUT_RESERVE, PR_TYPE_WE_RO, c->key, 0);
        if (r == -EBUSY) {
            /* someone reserved between our look and our RESERVE */
            struct pr_resv now;
            if (pr_read_resv(d, &now) == 0 && now.held)
                return held_error(d, c, &now, err);
        }
        return r < 0 ? cmd_error(d, "RESERVE", r, err) : 0;
    }
    /* On a shared I_T nexus (two processes behind one kernel initiator)
     * our REGISTER replaced the dead holder's key: the reservation now
     * carries ours, and preempting our own key sets our type. */
    struct pr_resv now;
    uint64_t victim = res->key;
    if (pr_read_resv(d, &now) == 0 && now.held && now.key == c->key)
        victim = c->key;
    r = pr_out(d, PR_OUT_PREEMPT, PR_TYPE_WE_RO, c->key, victim);
    if (r < 0)
        return cmd_error(d, "PREEMPT", r, err);
    if (res->key == 0)
        log_info("%s: took the reservation over from all registrants (%s)",
                 d->name, pr_type_name(res->type));
    else
        log_info("%s: took the reservation of key 0x%016" PRIx64 " (%s) "
                 "over", d->name, res->key, pr_type_name(res->type));
    return 0;
}

int pr_acquire(const struct pr_dev *d, const struct pr_conf *c,
               struct bd_err *err)
{
    struct pr_resv res, now;
    int r;

    if ((r = pr_read_resv(d, &res)) < 0)
        return cmd_error(d, "READ RESERVATION", r, err);
    if (res.held && !c->preempt)
        return held_error(d, c, &res, err);
    if ((r = pr_out(d, PR_OUT_REGISTER_IGNORE, 0, 0, c->key)) < 0)
        return cmd_error(d, "REGISTER", r, err);
    if ((r = take(d, c, &res, err)) < 0)
        goto out_unregister;
    if ((r = pr_read_resv(d, &now)) < 0) {
        r = cmd_error(d, "READ RESERVATION", r, err);
        goto out_unregister;
    }
    if (!now.held || now.key != c->key || now.type != PR_TYPE_WE_RO) {
        r = now.held ? held_error(d, c, &now, err)
                     : bd_err_set(err, EIO, "%s: the device took our "
                                  "reservation but does not report it",
                                  d->name);
        goto out_unregister;
    }
    log_debug("pr", "%s: reserved with key 0x%016" PRIx64, d->name, c->key);
    return 0;

out_unregister:
    unregister(d);
    return r;
}

int pr_join(const struct pr_dev *d, const struct pr_conf *c)
{
    return pr_out(d, PR_OUT_REGISTER_IGNORE, 0, 0, c->key);
}

int pr_rejoin(const struct pr_dev *d, const struct pr_conf *c)
{
    struct pr_resv res = {0};
    int r;

    if ((r = pr_join(d, c)) < 0 || (r = pr_read_resv(d, &res)) < 0)
        goto out_lost;
    if (!res.held)
        r = pr_out(d, PR_OUT_RESERVE, PR_TYPE_WE_RO, c->key, 0);
    else if (res.key == c->key && res.type == PR_TYPE_WE_RO)
        r = pr_out(d, PR_OUT_PREEMPT, PR_TYPE_WE_RO, c->key, c->key);
    else
        r = -EBUSY;
    if (r == 0) {
        log_info("%s: registered again after a reconnect; the reservation "
                 "is held on the new path", d->name);
        return 0;
    }
out_lost:
    if (res.held && res.key != c->key)
        log_err("%s: reservation lost: held by key 0x%016" PRIx64 " (%s); "
                "writes fail", d->name, res.key, pr_type_name(res.type));
    else
        log_err("%s: could not take the reservation back after a reconnect: "
                "%s; writes fail", d->name, strerror(-r));
    unregister(d);
    return -EIO;
}

int pr_recover(const struct pr_dev *d, const struct pr_conf *c)
{
    struct pr_resv res;
    int r = pr_read_resv(d, &res);

    if (r == 0 && res.held && res.key == c->key && res.type == PR_TYPE_WE_RO)
        return pr_join(d, c);
    if (r == 0 && res.held)
        log_err("%s: reservation lost: held by key 0x%016" PRIx64 " (%s)",
                d->name, res.key, pr_type_name(res.type));
    else
        log_err("%s: reservation lost%s", d->name,
                r == 0 ? ": the device holds none" : "");
    return -EIO;
}

void pr_release(const struct pr_dev *d, const struct pr_conf *c)
{
    /* preempting our own key makes this path the holder (also of a
     * reservation a path of ours lost in a reconnect still holds) and
     * drops our other registrations */
    int r = pr_out(d, PR_OUT_PREEMPT, PR_TYPE_WE_RO, c->key, c->key);

    if (r == 0)
        r = pr_out(d, PR_OUT_RELEASE, PR_TYPE_WE_RO, c->key, 0);
    if (r < 0) {
        log_warn("%s: releasing the reservation failed (%s); it was not "
                 "ours any more", d->name,
                 r == -EBUSY ? "reservation conflict" : strerror(-r));
    }
    if ((r = unregister(d)) < 0)
        log_warn("%s: removing our registration failed: %s", d->name,
                 strerror(-r));
    log_debug("pr", "%s: released", d->name);
}

void pr_info(const struct pr_dev *d, struct bd_info *info)
{
    struct pr_keys k;
    struct pr_resv res;
    char list[PR_MAX_KEYS * 20 + 32] = "";
    size_t l = 0;
    int r = pr_read_keys(d, &k);

    if (r < 0) {
        bd_info_add(info, "pr", "%s", r == -ENOTSUP || r == -ENOTTY ||
                    r == -EINVAL ? "not supported" : strerror(-r));
        return;
    }
    for (unsigned i = 0; i < k.n; i++)
        l += (size_t)snprintf(list + l, sizeof(list) - l, "%s0x%016" PRIx64,
                              i ? ", " : "", k.key[i]);
    bd_info_add(info, "pr registrations", "%u%s%s (generation %u)", k.total,
                k.n ? ": " : "", list, k.generation);
    if ((r = pr_read_resv(d, &res)) < 0)
        bd_info_add(info, "pr reservation", "%s", strerror(-r));
    else if (!res.held)
        bd_info_add(info, "pr reservation", "none");
    else
        bd_info_add(info, "pr reservation", "key 0x%016" PRIx64 ", %s",
                    res.key, pr_type_name(res.type));
}
