/*
 * Unit tests of the pure parts of the NVMe driver: PCI addresses and
 * nvme:// URIs (also through core's source parsing), PRP entries and
 * lists, and completion status to errno. The device itself is tested in a
 * guest by tests/integration/nvme/test-nvme-guest.sh.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/bd-internal.h"
#include "core/registry.h"
#include "nvme/nvme.h"

static char bdf[NVME_BDF_LEN + 1];
static uint32_t nsid;
static struct bd_err err;

static int uri(const char *s)
{
    bd_err_clear(&err);
    memset(bdf, 0, sizeof(bdf));
    nsid = 0;
    return nvme_uri_parse(s, bdf, &nsid, &err);
}

Test(nvme_uri, address_and_namespace)
{
    cr_assert_eq(uri("nvme://0000:44:00.0/2"), 0, "%s", err.msg);
    cr_assert_str_eq(bdf, "0000:44:00.0");
    cr_assert_eq(nsid, 2);
}

Test(nvme_uri, missing_namespace_means_one)
{
    cr_assert_eq(uri("nvme://0000:00:04.0"), 0, "%s", err.msg);
    cr_assert_eq(nsid, 1);
    cr_assert_eq(uri("nvme://0000:00:04.0/"), 0, "%s", err.msg);
    cr_assert_eq(nsid, 1);
}

Test(nvme_uri, upper_case_and_short_address_are_normalized)
{
    cr_assert_eq(uri("NVME://0000:AB:1F.7/10"), 0, "%s", err.msg);
    cr_assert_str_eq(bdf, "0000:ab:1f.7");
    cr_assert_eq(nsid, 10);
    cr_assert_eq(uri("nvme://3b:00.1/1"), 0, "%s", err.msg);
    cr_assert_str_eq(bdf, "0000:3b:00.1");
}

Test(nvme_uri, bad_addresses_are_refused_with_the_form)
{
    const char *bad[] = {
        "nvme://0000:44:00/1", "nvme://0000:44:20.0/1", "nvme://0000:44:00.8/1",
        "nvme://00000:44:00.0/1", "nvme://host:44:00.0/1", "nvme:///1",
        "nvme://0000-44-00.0/1", "nbd://0000:44:00.0/1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(uri(bad[i]), -EINVAL, "%s accepted", bad[i]);
        cr_assert(strstr(err.msg, "nvme://hhhh:bb:ss.f"), "%s", err.msg);
    }
}

Test(nvme_uri, bad_namespaces_are_refused)
{
    const char *bad[] = {
        "nvme://0000:44:00.0/0", "nvme://0000:44:00.0/x",
        "nvme://0000:44:00.0/4294967295", "nvme://0000:44:00.0/1/2",
        "nvme://0000:44:00.0/-1", "nvme://0000:44:00.0/99999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(uri(bad[i]), -EINVAL, "%s accepted", bad[i]);
        cr_assert(strstr(err.msg, "namespace"), "%s", err.msg);
    }
    cr_assert_eq(uri("nvme://0000:44:00.0/4294967294"), 0);
    cr_assert_eq(nsid, 4294967294u);
}

Test(nvme_uri, sources_reach_the_driver_options)
{
    static const char *const forms[] = {
        "nvme://0000:01:00.0/3",
        "driver=nvme,device=0000:01:00.0,namespace=3",
        "json:{\"driver\":\"nvme\",\"device\":\"0000:01:00.0\",\"namespace\":3}",
    };
    cr_assert_not_null(bd_driver_for_scheme("nvme"));
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct bd_opts *o = bd_opts_new();
        bd_err_clear(&err);
        cr_assert_eq(bd_source_to_opts(forms[i], o, &err), 0, "%s: %s",
                     forms[i], err.msg);
        /* a URI names the protocol node under the format's "file" */
        struct bd_opts *v = i == 0 ? bd_opts_sub(o, "file") : o;
        cr_assert_str_eq(bd_opts_get(v, "driver"), "nvme", "%s", forms[i]);
        cr_assert_str_eq(bd_opts_get(v, "device"), "0000:01:00.0", "%s",
                         forms[i]);
        cr_assert_str_eq(bd_opts_get(v, "namespace"), "3", "%s", forms[i]);
        if (i == 0)
            bd_opts_free_view(v);
        bd_opts_free(o);
    }
}

static uint64_t list[512];

Test(nvme_prp, one_page_needs_prp1_only)
{
    uint64_t p1, p2;
    cr_assert_eq(nvme_prp_build(0x10000, 4096, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10000);
    cr_assert_eq(p2, 0);
    cr_assert_eq(nvme_prp_build(0x10200, 512, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10200);
    cr_assert_eq(p2, 0);
}

Test(nvme_prp, two_pages_use_prp2_as_the_second_page)
{
    uint64_t p1, p2;
    cr_assert_eq(nvme_prp_build(0x10000, 8192, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10000);
    cr_assert_eq(p2, 0x11000);
    /* an offset start: 512 bytes in the first page, the rest in the next */
    cr_assert_eq(nvme_prp_build(0x10e00, 4096, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10e00);
    cr_assert_eq(p2, 0x11000);
}

Test(nvme_prp, more_pages_go_to_a_list)
{
    uint64_t p1, p2;
    int k = nvme_prp_build(0x20000, 5 * 4096, 4096, list, 512, 0x9000, &p1,
                           &p2);
    cr_assert_eq(k, 4);
    cr_assert_eq(p1, 0x20000);
    cr_assert_eq(p2, 0x9000);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(list[i], 0x21000 + (uint64_t)i * 4096);
    /* 2 MiB + a partial first page: 512 list entries, the most one holds */
    k = nvme_prp_build(0x20800, 512 * 4096 + 2048, 4096, list, 512, 0x9000,
                       &p1, &p2);
    cr_assert_eq(k, 512);
    cr_assert_eq(list[511], 0x21000 + 511ull * 4096);
}

Test(nvme_prp, too_long_for_one_list_page_is_refused)
{
    uint64_t p1, p2;
    cr_assert_eq(nvme_prp_build(0x20000, 514 * 4096, 4096, list, 512, 0x9000,
                                &p1, &p2), -EINVAL);
    cr_assert_eq(nvme_prp_build(0x20000, 10 * 4096, 4096, list, 4, 0x9000,
                                &p1, &p2), -EINVAL);
}

Test(nvme_status, codes_map_to_errnos)
{
    cr_assert_eq(nvme_status_errno(0), 0);
    cr_assert_eq(nvme_status_errno(0x001), ENOTSUP);
    cr_assert_eq(nvme_status_errno(0x002), EINVAL);
    cr_assert_eq(nvme_status_errno(0x00b), ENODEV);
    cr_assert_eq(nvme_status_errno(0x080), EINVAL);
    cr_assert_eq(nvme_status_errno(0x081), ENOSPC);
    cr_assert_eq(nvme_status_errno(0x020), EROFS);
    cr_assert_eq(nvme_status_errno(0x006), EIO);
    cr_assert_eq(nvme_status_errno(0x182), EROFS);       /* SCT 1 */
    cr_assert_eq(nvme_status_errno(0x281), EIO);         /* unrecovered read */
    cr_assert_eq(nvme_status_errno(0x286), EACCES);
    /* DNR and More bits do not change the meaning */
    cr_assert_eq(nvme_status_errno(0x4002), EINVAL);
    cr_assert_str_eq(nvme_status_str(0x281), "unrecovered read error");
    cr_assert_str_eq(nvme_status_str(0x00b), "invalid namespace or format");
}

/* ---- the polled queue, without a device: completions posted by hand ---- */

#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "nvme/nvme-int.h"

static uint8_t sq_mem[4 * 64], cq_mem[4 * 16];
static uint32_t sq_db, cq_db;

static struct nvme_queue fake_queue(uint16_t depth)
{
    struct nvme_queue q = { 0 };
    memset(sq_mem, 0, sizeof(sq_mem));
    memset(cq_mem, 0, sizeof(cq_mem));
    sq_db = cq_db = 0;
    q.depth = depth;
    q.efd = -1;
    q.phase = 1;
    q.sq = sq_mem;
    q.cq = cq_mem;
    q.sq_db = &sq_db;
    q.cq_db = &cq_db;
    return q;
}

/* What a controller writes: DW0, SQ head, CID, status and phase tag. */
static void post(unsigned slot, uint32_t dw0, uint16_t cid, uint16_t status,
                 unsigned phase)
{
    bd_put_le32(cq_mem + slot * 16, dw0);
    bd_put_le16(cq_mem + slot * 16 + 12, cid);
    bd_put_le16(cq_mem + slot * 16 + 14, (uint16_t)(status << 1 | phase));
}

Test(nvme_queue, completion_gives_status_and_rings_both_doorbells)
{
    struct nvme_queue q = fake_queue(4);
    uint8_t sqe[64];
    uint16_t st = 0xffff;
    uint32_t dw0 = 0;

    nvme_sqe_init(sqe, 0x02, 1);
    post(0, 0x1234, 0, 0x002, 1);
    cr_assert_eq(nvme_queue_exec(&q, sqe, 1000, &st, &dw0), 0);
    cr_assert_eq(st, 0x002);
    cr_assert_eq(dw0, 0x1234);
    cr_assert_eq(sq_mem[0], 0x02);
    cr_assert_eq(bd_le32(sq_mem + 4), 1);
    cr_assert_eq(sq_db, 1);
    cr_assert_eq(cq_db, 1);
}

Test(nvme_queue, stale_completion_is_skipped_and_phase_flips_on_wrap)
{
    struct nvme_queue q = fake_queue(2);
    uint8_t sqe[64];
    uint16_t st = 0xffff;

    nvme_sqe_init(sqe, 0x00, 1);
    post(0, 0, 9, 0x006, 1);            /* not ours */
    post(1, 0, 0, 0, 1);
    cr_assert_eq(nvme_queue_exec(&q, sqe, 1000, &st, NULL), 0);
    cr_assert_eq(st, 0);
    cr_assert_eq(q.cq_head, 0);
    cr_assert_eq(q.phase, 0);           /* the next lap's entries carry 0 */
    post(0, 0, 1, 0x281, 0);
    cr_assert_eq(nvme_queue_exec(&q, sqe, 1000, &st, NULL), 0);
    cr_assert_eq(st, 0x281);
    cr_assert_eq(nvme_status_errno(st), EIO);
}

Test(nvme_queue, silent_controller_times_out_and_retires_the_queue)
{
    struct nvme_queue q = fake_queue(4);
    struct timespec a, b;
    uint8_t sqe[64];
    uint16_t st;

    nvme_sqe_init(sqe, 0x02, 1);
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(nvme_queue_exec(&q, sqe, 100, &st, NULL), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert(secs >= 0.09 && secs < 5, "took %.3f s", secs);
    cr_assert(q.dead);
    /* a late completion must not be taken for the next command */
    post(0, 0, 0, 0, 1);
    cr_assert_eq(nvme_queue_exec(&q, sqe, 100, &st, NULL), -EIO);
}

/* A controller that answers late, with an interrupt: what it does. */
static void *late_device(void *arg)
{
    struct nvme_queue *q = arg;
    struct timespec ts = { 0, 200 * 1000000L };
    uint64_t one = 1;

    nanosleep(&ts, NULL);
    post(0, 0, 0, 0, 1);
    if (write(q->efd, &one, sizeof(one)) != sizeof(one))
        abort();
    return NULL;
}

Test(nvme_queue, sleeping_waiter_wakes_on_the_interrupt)
{
    struct nvme_queue q = fake_queue(4);
    struct timespec a, b;
    pthread_t t;
    uint8_t sqe[64];
    uint16_t st = 0xffff;

    q.efd = eventfd(0, EFD_NONBLOCK);
    cr_assert_geq(q.efd, 0);
    nvme_sqe_init(sqe, 0x02, 1);
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_create(&t, NULL, late_device, &q);
    cr_assert_eq(nvme_queue_exec(&q, sqe, 5000, &st, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(t, NULL);
    cr_assert_eq(st, 0);
    double secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert(secs >= 0.19 && secs < 2, "took %.3f s", secs);
    close(q.efd);
}
