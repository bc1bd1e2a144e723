/*
 * locks/pr.c and locks/pr-fd.c: CDB encoding, decoding of untrusted PR IN
 * data, the option parsing, the lock sequences against a small in-memory
 * SPC target (one registration per path, WE-RO semantics as SPC-4 5.13),
 * and the qemu-pr-helper client against a fake helper that checks the
 * protocol (features, 16-byte CDB, one fd by SCM_RIGHTS, reply layout) and
 * then breaks it.
 */
#include "core/bd-internal.h"
#include "locks/pr-fd.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- a fake SPC target: paths 0..3, each an I_T nexus ---- */

struct fake_lun {
    uint64_t reg[4];                /* 0: not registered */
    int holder;                     /* path, -1 none */
    uint8_t type;
    uint32_t gen;
    bool no_pr;
};
struct fake_path {
    struct fake_lun *lun;
    int id;
    struct pr_dev dev;
};

static int fake_in(struct fake_lun *l, uint8_t sa, uint8_t *buf, uint32_t len,
                   struct pr_reply *rep)
{
    uint32_t n = 8;
    memset(buf, 0, len);
    bd_put_be32(buf, l->gen);
    if (sa == PR_IN_READ_KEYS) {
        for (int i = 0; i < 4; i++) {
            if (l->reg[i]) {
                bd_put_be64(buf + n, l->reg[i]);
                n += 8;
            }
        }
        bd_put_be32(buf + 4, n - 8);
    } else if (l->holder >= 0) {
        bd_put_be32(buf + 4, 16);
        bd_put_be64(buf + 8, l->reg[l->holder]);
        buf[21] = l->type;
        n = 24;
    }
    rep->len = n;
    return 0;
}

static int fake_run(void *ctx, const uint8_t *cdb, uint8_t *buf, uint32_t len,
                    struct pr_reply *rep)
{
    struct fake_path *p = ctx;
    struct fake_lun *l = p->lun;
    uint64_t key = bd_be64(buf), sakey = bd_be64(buf + 8);
    uint64_t *mine = &l->reg[p->id];

    rep->status = PR_STATUS_GOOD;
    if (l->no_pr) {
        rep->status = PR_STATUS_CHECK;
        rep->sense_key = 5;
        rep->asc = 0x20;
        return 0;
    }
    if (cdb[0] == 0x5e)
        return fake_in(l, cdb[1], buf, len, rep);
    cr_assert_eq(bd_be32(cdb + 5), PR_PARAM_LEN);
    switch (cdb[1]) {
    case PR_OUT_REGISTER_IGNORE:
        *mine = sakey;
        if (!sakey && l->holder == p->id)
            l->holder = -1;
        l->gen++;
        return 0;
    case PR_OUT_RESERVE:
        if (!*mine || *mine != key || (l->holder >= 0 && l->holder != p->id))
            rep->status = PR_STATUS_CONFLICT;
        else
            l->holder = p->id, l->type = cdb[2] & 0xf;
        return 0;
    case PR_OUT_RELEASE:
        if (!*mine || *mine != key)
            rep->status = PR_STATUS_CONFLICT;
        else if (l->holder == p->id)
            l->holder = -1;
        return 0;
    case PR_OUT_PREEMPT:
        if (!*mine || *mine != key) {
            rep->status = PR_STATUS_CONFLICT;
            return 0;
        }
        if (l->holder >= 0 && l->reg[l->holder] == sakey)
            l->holder = p->id, l->type = cdb[2] & 0xf;
        for (int i = 0; i < 4; i++) {
            if (i != p->id && l->reg[i] == sakey)
                l->reg[i] = 0;
        }
        l->gen++;
        return 0;
    }
    cr_assert_fail("unexpected PR OUT service action %u", cdb[1]);
    return 0;
}

static struct fake_path path_of(struct fake_lun *l, int id)
{
    return (struct fake_path){.lun = l, .id = id};
}
#define DEV(p) (&(p)->dev)
static void attach(struct fake_path *p)
{
    p->dev = (struct pr_dev){.run = fake_run, .ctx = p, .name = "lun"};
}

static struct pr_conf conf(uint64_t key, bool preempt)
{
    return (struct pr_conf){.on = true, .preempt = preempt, .key = key};
}

Test(pr, acquire_reserves_write_exclusive_registrants_only)
{
    struct fake_lun l = {.holder = -1};
    struct fake_path a = path_of(&l, 0);
    struct pr_conf c = conf(0xa, false);
    struct bd_err err = {0};

    attach(&a);
    cr_assert_eq(pr_acquire(DEV(&a), &c, &err), 0, "%s", err.msg);
    cr_assert_eq(l.holder, 0);
    cr_assert_eq(l.type, PR_TYPE_WE_RO);
    cr_assert_eq(l.reg[0], 0xa);
    pr_release(DEV(&a), &c);
    cr_assert_eq(l.holder, -1);
    cr_assert_eq(l.reg[0], 0);
}

Test(pr, second_writer_is_refused_naming_the_holder)
{
    struct fake_lun l = {.holder = -1};
    struct fake_path a = path_of(&l, 0), b = path_of(&l, 1);
    struct pr_conf ca = conf(0xa11ce, false), cb = conf(0xb0b, false);
    struct bd_err err = {0};

    attach(&a);
    attach(&b);
    cr_assert_eq(pr_acquire(DEV(&a), &ca, &err), 0);
    cr_assert_eq(pr_acquire(DEV(&b), &cb, &err), -EBUSY);
    cr_assert(strstr(err.msg, "reserved by key 0x00000000000a11ce "
                     "(Write Exclusive - Registrants Only)"), "%s", err.msg);
    cr_assert(strstr(err.msg, "--pr=exclusive,preempt"), "%s", err.msg);
    cr_assert_eq(l.reg[1], 0, "a refused path left a registration");
    cr_assert_eq(l.holder, 0);
}

Test(pr, preempt_takes_a_dead_holders_reservation_over)
{
    struct fake_lun l = {.holder = -1};
    struct fake_path a = path_of(&l, 0), b = path_of(&l, 1);
    struct pr_conf ca = conf(0xa, false), cb = conf(0xb, true);
    struct bd_err err = {0};

    attach(&a);
    attach(&b);
    cr_assert_eq(pr_acquire(DEV(&a), &ca, &err), 0);
    /* a is killed: its registration and reservation stay */
    cr_assert_eq(pr_acquire(DEV(&b), &cb, &err), 0, "%s", err.msg);
    cr_assert_eq(l.holder, 1);
    cr_assert_eq(l.reg[0], 0, "the dead holder's key stays registered");
    cr_assert_eq(l.reg[1], 0xb);
}

Test(pr, a_relogged_path_takes_its_own_reservation_back)
{
    struct fake_lun l = {.holder = -1};
    struct fake_path a = path_of(&l, 0), a2 = path_of(&l, 2), x = path_of(&l, 3);
    struct pr_conf c = conf(0xa, false);
    struct bd_err err = {0};

    attach(&a);
    attach(&a2);
    attach(&x);
    cr_assert_eq(pr_acquire(DEV(&a), &c, &err), 0);
    /* path 0's session died: its nexus stays the holder; path 2 is new */
    cr_assert_eq(pr_rejoin(DEV(&a2), &c), 0);
    cr_assert_eq(l.holder, 2);
    cr_assert_eq(l.reg[0], 0, "the stale registration stays");
    /* someone else preempts: recovery must not re-register us */
    cr_assert_eq(pr_out(DEV(&x), PR_OUT_REGISTER_IGNORE, 0, 0, 0xe), 0);
    cr_assert_eq(pr_out(DEV(&x), PR_OUT_PREEMPT, PR_TYPE_WE_RO, 0xe, 0xa), 0);
    cr_assert_eq(pr_recover(DEV(&a2), &c), -EIO);
    cr_assert_eq(l.reg[2], 0);
}

Test(pr, recover_registers_again_while_the_reservation_is_ours)
{
    struct fake_lun l = {.holder = -1};
    struct fake_path a = path_of(&l, 0), b = path_of(&l, 1);
    struct pr_conf c = conf(0xa, false);
    struct bd_err err = {0};

    attach(&a);
    attach(&b);
    cr_assert_eq(pr_acquire(DEV(&a), &c, &err), 0);
    cr_assert_eq(pr_recover(DEV(&b), &c), 0);
    cr_assert_eq(l.reg[1], 0xa);
}

Test(pr, a_device_without_pr_is_named_so)
{
    struct fake_lun l = {.holder = -1, .no_pr = true};
    struct fake_path a = path_of(&l, 0);
    struct pr_conf c = conf(0xa, false);
    struct bd_err err = {0};

    attach(&a);
    cr_assert_eq(pr_acquire(DEV(&a), &c, &err), -ENOTSUP);
    cr_assert(strstr(err.msg, "does not support persistent reservations"));
}

/* ---- encoding and decoding ---- */

Test(pr, cdbs_follow_spc)
{
    uint8_t cdb[PR_CDB_LEN], param[PR_PARAM_LEN];

    pr_cdb_out(cdb, param, PR_OUT_PREEMPT, 5, 0x0102030405060708ull, 0xab);
    cr_assert_eq(cdb[0], 0x5f);
    cr_assert_eq(cdb[1], 4);
    cr_assert_eq(cdb[2], 0x05);
    cr_assert_eq(bd_be32(cdb + 5), 24);
    cr_assert_eq(bd_be64(param), 0x0102030405060708ull);
    cr_assert_eq(bd_be64(param + 8), 0xab);
    cr_assert_eq(param[20], 0, "APTPL and friends stay clear");
    pr_cdb_in(cdb, PR_IN_READ_RESERVATION, 8192);
    cr_assert_eq(cdb[0], 0x5e);
    cr_assert_eq(cdb[1], 1);
    cr_assert_eq(bd_be16(cdb + 7), 8192);
}

Test(pr, read_keys_are_clamped_to_the_data_received)
{
    uint8_t buf[24] = {0};
    struct pr_keys k;

    bd_put_be32(buf, 7);
    bd_put_be32(buf + 4, 0xfffffff8);       /* claims half a billion keys */
    bd_put_be64(buf + 8, 0x11);
    bd_put_be64(buf + 16, 0x22);
    cr_assert_eq(pr_keys_decode(buf, sizeof(buf), &k), 0);
    cr_assert_eq(k.generation, 7);
    cr_assert_eq(k.n, 2);
    cr_assert_eq(k.key[1], 0x22);
    cr_assert_eq(pr_keys_decode(buf, 7, &k), -EPROTO);
}

Test(pr, read_reservation_without_and_with_a_holder)
{
    uint8_t buf[24] = {0};
    struct pr_resv r;

    cr_assert_eq(pr_resv_decode(buf, 8, &r), 0);
    cr_assert_not(r.held);
    bd_put_be32(buf + 4, 16);
    cr_assert_eq(pr_resv_decode(buf, 12, &r), -EPROTO, "truncated holder");
    bd_put_be64(buf + 8, 0xa11ce);
    buf[21] = 5;
    cr_assert_eq(pr_resv_decode(buf, 24, &r), 0);
    cr_assert(r.held);
    cr_assert_eq(r.key, 0xa11ce);
    cr_assert_eq(r.type, 5);
    cr_assert_str_eq(pr_type_name(9), "an unknown type");
}

Test(pr, options_and_the_derived_key)
{
    struct bd_opts *o = bd_opts_new();
    struct bd_err err = {0};
    struct pr_conf c;

    cr_assert_neq(pr_key_derive("h", "img"), pr_key_derive("h", "img2"));
    cr_assert_neq(pr_key_derive("ab", "c"), pr_key_derive("a", "bc"));
    cr_assert_eq(pr_conf_parse(o, "img", false, &c, &err), 0);
    cr_assert_not(c.on);
    bd_opts_set(o, "pr", "exclusive");
    bd_opts_set(o, "pr-key", "0xA11CE");
    cr_assert_eq(pr_conf_parse(o, "img", false, &c, &err), 0);
    cr_assert(c.on && c.key == 0xa11ce && c.key_given && !c.preempt);
    cr_assert_eq(pr_conf_parse(o, "img", true, &c, &err), 0);
    cr_assert_not(c.on, "a read-only node takes no reservation");
    bd_opts_set(o, "pr-key", "12345678901234567");
    cr_assert_eq(pr_conf_parse(o, "img", false, &c, &err), -EINVAL);
    cr_assert(strstr(err.msg, "1 to 16 hex digits"));
    bd_opts_free(o);
}

/* ---- the qemu-pr-helper client against a fake helper ---- */

struct fake_helper {
    int listen_fd;
    bool ok;
};

static void *helper_thread(void *arg)
{
    struct fake_helper *h = arg;
    int c = accept(h->listen_fd, NULL, NULL);
    uint8_t feat[4] = {0}, cdb[16], param[24], reply[8 + 96 + 24] = {0};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = cdb, .iov_len = sizeof(cdb)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = ctl, .msg_controllen = sizeof(ctl)};
    int fd = -1;

    if (c < 0 || write(c, feat, 4) != 4 || recv(c, feat, 4, MSG_WAITALL) != 4)
        return NULL;
    /* PR OUT REGISTER: CDB with the fd, then 24 bytes of parameters */
    if (recvmsg(c, &m, MSG_WAITALL) != 16 || !CMSG_FIRSTHDR(&m) ||
        CMSG_FIRSTHDR(&m)->cmsg_type != SCM_RIGHTS)
        goto out;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
    if (cdb[0] != 0x5f || recv(c, param, 24, MSG_WAITALL) != 24 ||
        bd_be64(param + 8) != 0xabc)
        goto out;
    if (write(c, reply, 8 + 96) != 8 + 96)      /* GOOD, no payload */
        goto out;
    /* PR IN READ RESERVATION: CHECK CONDITION first, fixed-format sense */
    m.msg_controllen = sizeof(ctl);
    if (recvmsg(c, &m, MSG_WAITALL) != 16 || cdb[0] != 0x5e)
        goto out;
    close(fd);
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
    bd_put_be32(reply, 2);
    reply[8] = 0x70;
    reply[8 + 2] = 5;
    reply[8 + 12] = 0x20;
    if (write(c, reply, 8 + 96) != 8 + 96)
        goto out;
    /* a payload longer than the allocation length: not the protocol */
    m.msg_controllen = sizeof(ctl);
    if (recvmsg(c, &m, MSG_WAITALL) != 16)
        goto out;
    close(fd);
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
    memset(reply, 0, sizeof(reply));
    bd_put_be32(reply + 4, 0x10000);
    if (write(c, reply, 8 + 96) != 8 + 96)
        goto out;
    h->ok = true;
out:
    if (fd >= 0)
        close(fd);
    close(c);
    return NULL;
}

Test(pr, helper_client_speaks_the_pr_helper_protocol)
{
    char dir[] = "/tmp/test-pr.XXXXXX", path[64];
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct fake_helper h = {0};
    struct bd_err err = {0};
    struct pr_fd p;
    struct pr_resv r;
    pthread_t t;

    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/pr.sock", dir);
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    h.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(h.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(h.listen_fd, 1), 0);
    pthread_create(&t, NULL, helper_thread, &h);
    cr_assert_eq(pr_fd_open(&p, 0, "dev", path, &err), 0, "%s", err.msg);
    cr_assert_eq(pr_out(&p.dev, PR_OUT_REGISTER_IGNORE, 0, 0, 0xabc), 0);
    cr_assert_eq(pr_read_resv(&p.dev, &r), -ENOTSUP);
    cr_assert_eq(pr_read_resv(&p.dev, &r), -EPROTO);
    cr_assert_eq(pr_read_resv(&p.dev, &r), -ENOTCONN, "the stream is out of "
                 "step after a protocol error: the connection must be gone");
    pr_fd_close(&p);
    pthread_join(t, NULL);
    cr_assert(h.ok, "the fake helper saw something else than the protocol");
    close(h.listen_fd);
    unlink(path);
    rmdir(dir);
}
