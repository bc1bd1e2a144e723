/*
 * Controller bring-up and tear-down (NVMe 1.4, 7.6.1): reset, the admin
 * queue, Identify Controller and Namespace, the I/O queue pairs, and the
 * shutdown at close. Register access is through the BAR0 mapping; every
 * wait has a deadline. I/O commands are io.c's.
 */
#include "nvme-int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define REG_CAP 0x00
#define REG_INTMS 0x0c
#define REG_CC 0x14
#define REG_CSTS 0x1c
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30

#define CC_EN 1u
#define CC_SHN_NORMAL (1u << 14)
#define CC_IOSQES (6u << 16)            /* 64-byte SQEs */
#define CC_IOCQES (4u << 20)            /* 16-byte CQEs */
#define CSTS_RDY 1u
#define CSTS_CFS 2u
#define CSTS_SHST_DONE (2u << 2)

#define ADM_DELETE_SQ 0x00
#define ADM_CREATE_SQ 0x01
#define ADM_DELETE_CQ 0x04
#define ADM_CREATE_CQ 0x05
#define ADM_IDENTIFY 0x06
#define ADM_SET_FEATURES 0x09
#define FEAT_NUM_QUEUES 0x07
#define FEAT_WRITE_CACHE 0x06

#define ADMIN_DEPTH 32u
#define IO_DEPTH 32u
#define MAX_TRANSFER (512u << 10)       /* bounce buffer per queue */

static uint32_t reg_read(struct nvme_ctrl *c, unsigned off)
{
    return *(volatile uint32_t *)(void *)(c->vfio.bar0 + off);
}

static void reg_write(struct nvme_ctrl *c, unsigned off, uint32_t v)
{
    *(volatile uint32_t *)(void *)(c->vfio.bar0 + off) = v;
}

static void reg_write64(struct nvme_ctrl *c, unsigned off, uint64_t v)
{
    reg_write(c, off, (uint32_t)v);
    reg_write(c, off + 4, (uint32_t)(v >> 32));
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Wait until (CSTS & mask) == want, at most timeout_ms. */
static bool wait_csts(struct nvme_ctrl *c, uint32_t mask, uint32_t want,
                      unsigned timeout_ms)
{
    for (unsigned t = 0; t <= timeout_ms; t += 1) {
        uint32_t s = reg_read(c, REG_CSTS);
        if (s == 0xffffffffu)
            return false;               /* the device is gone */
        if ((s & mask) == want)
            return true;
        sleep_ms(1);
    }
    return false;
}

int nvme_admin(struct nvme_ctrl *c, uint8_t sqe[64], void *data4k,
               const char *what, uint32_t *dw0, struct bd_err *err)
{
    struct nvme_queue *q = &c->admin;
    uint16_t st = 0;
    int r;

    pthread_mutex_lock(&q->lock);
    if (data4k) {
        memcpy(q->buf, data4k, NVME_PAGE);
        nvme_sqe_prp(sqe, q->buf_iova, 0);
    }
    r = nvme_queue_exec(q, sqe, c->io_timeout_ms, &st, dw0);
    if (r == 0 && st == 0 && data4k)
        memcpy(data4k, q->buf, NVME_PAGE);
    pthread_mutex_unlock(&q->lock);
    if (r == -ETIMEDOUT)
        return bd_err_set(err, EIO, "%s: the controller did not answer %s "
                          "within %u ms", c->name, what, c->io_timeout_ms);
    if (r < 0)
        return bd_err_set(err, -r, "%s: %s failed: %s", c->name, what,
                          strerror(-r));
    if (st)
        return bd_err_set(err, nvme_status_errno(st), "%s: %s failed: %s "
                          "(status %#x)", c->name, what, nvme_status_str(st),
                          st);
    return 0;
}

/* Reset (CC.EN 0), set up the admin queue, enable. */
static int start(struct nvme_ctrl *c, struct bd_err *err)
{
    uint64_t cap = reg_read(c, REG_CAP) | (uint64_t)reg_read(c, REG_CAP + 4) << 32;
    unsigned mqes = (unsigned)(cap & 0xffff) + 1;
    int r;

    if (cap == ~0ull)
        return bd_err_set(err, ENODEV, "%s: %s does not answer on its BAR0",
                          c->name, c->bdf);
    if (!(cap >> 37 & 1))
        return bd_err_set(err, ENOTSUP, "%s: the controller does not support "
                          "the NVM command set", c->name);
    if ((cap >> 48 & 0xf) != 0)
        return bd_err_set(err, ENOTSUP, "%s: the controller's smallest memory "
                          "page is %u KiB; only 4 KiB pages are supported",
                          c->name, 4u << (cap >> 48 & 0xf));
    c->dstrd = 4u << (cap >> 32 & 0xf);
    c->ready_timeout_ms = (unsigned)(cap >> 24 & 0xff) * 500;
    if (c->ready_timeout_ms < 2000)
        c->ready_timeout_ms = 2000;
    if (c->ready_timeout_ms > 30000)
        c->ready_timeout_ms = 30000;
    if (0x1000 + (2 * NVME_MAX_QUEUES + 2) * (size_t)c->dstrd > c->vfio.bar0_size)
        return bd_err_set(err, ENODEV, "%s: BAR0 is too small for the "
                          "doorbells", c->name);

    reg_write(c, REG_CC, reg_read(c, REG_CC) & ~CC_EN);
    if (!wait_csts(c, CSTS_RDY, 0, c->ready_timeout_ms))
        return bd_err_set(err, EIO, "%s: the controller did not reset within "
                          "%u ms", c->name, c->ready_timeout_ms);
    if ((r = nvme_queue_init(&c->admin, &c->vfio, 0,
                             (uint16_t)(mqes < ADMIN_DEPTH ? mqes : ADMIN_DEPTH),
                             NVME_PAGE, err)) < 0)
        return r;
    c->admin.sq_db = (volatile uint32_t *)(void *)(c->vfio.bar0 + 0x1000);
    c->admin.cq_db = (volatile uint32_t *)(void *)(c->vfio.bar0 + 0x1000 +
                                                   c->dstrd);
    reg_write(c, REG_AQA, (uint32_t)(c->admin.depth - 1) << 16 |
                          (uint32_t)(c->admin.depth - 1));
    reg_write64(c, REG_ASQ, c->admin.sq_iova);
    reg_write64(c, REG_ACQ, c->admin.cq_iova);
    if (!c->msix)                   /* INTMS is not for MSI-X (NVMe 7.5) */
        reg_write(c, REG_INTMS, 0xffffffffu);
    c->admin.efd = c->efd[0];
    reg_write(c, REG_CC, CC_IOCQES | CC_IOSQES | CC_EN);
    if (!wait_csts(c, CSTS_RDY | CSTS_CFS, CSTS_RDY, c->ready_timeout_ms))
        return bd_err_set(err, EIO, "%s: the controller did not become ready "
                          "within %u ms (CSTS %#x)", c->name,
                          c->ready_timeout_ms, reg_read(c, REG_CSTS));
    c->admin.ready = true;
    return 0;
}

/* Bytes [off, off+len) of an identify page as a trimmed string. */
static void id_string(char *out, const uint8_t *p, size_t len)
{
    memcpy(out, p, len);
    out[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
            out[i] = '?';
    }
    while (len && (out[len - 1] == ' ' || out[len - 1] == '\0'))
        out[--len] = '\0';
}

static int identify_ctrl(struct nvme_ctrl *c, uint8_t *page,
                         struct bd_err *err)
{
    uint8_t sqe[64];
    uint16_t oncs;
    int r;

    nvme_sqe_init(sqe, ADM_IDENTIFY, 0);
    nvme_sqe_dw(sqe, 10, 1);                    /* CNS 01h: controller */
    if ((r = nvme_admin(c, sqe, page, "Identify Controller", NULL, err)) < 0)
        return r;
    c->id.vendor = bd_le16(page);
    id_string(c->id.serial, page + 4, 20);
    id_string(c->id.model, page + 24, 40);
    id_string(c->id.firmware, page + 64, 8);
    c->id.mdts_bytes = page[77] && page[77] < 32
                           ? ((uint64_t)NVME_PAGE << page[77]) : 0;
    c->id.namespaces = bd_le32(page + 516);
    oncs = bd_le16(page + 520);
    c->id.has_dsm = oncs & (1u << 2);
    c->id.has_write_zeroes = oncs & (1u << 3);
    c->id.write_cache = page[525] & 1u;
    return 0;
}

/* The active namespace ids, for the message about a missing one. */
static void active_list(struct nvme_ctrl *c, uint8_t *page, char *out,
                        size_t size)
{
    struct bd_err ignore = { 0 };
    uint8_t sqe[64];
    size_t used = 0;

    snprintf(out, size, "none");
    nvme_sqe_init(sqe, ADM_IDENTIFY, 0);
    nvme_sqe_dw(sqe, 10, 2);                    /* CNS 02h: active ids */
    memset(page, 0, NVME_PAGE);
    if (nvme_admin(c, sqe, page, "Identify", NULL, &ignore) < 0)
        return;
    for (unsigned i = 0; i < 16; i++) {
        uint32_t id = bd_le32(page + 4 * i);
        if (!id || used + 16 > size)
            break;
        used += (size_t)snprintf(out + used, size - used, "%s%u",
                                 used ? ", " : "", id);
    }
}

static int missing_ns(struct nvme_ctrl *c, uint32_t nsid, uint8_t *page,
                      struct bd_err *err)
{
    char list[160];

    active_list(c, page, list, sizeof(list));
    return bd_err_set(err, ENOENT, "%s: namespace %u does not exist on %s "
                      "(active namespaces: %s)", c->name, nsid, c->bdf, list);
}

static int identify_ns(struct nvme_ctrl *c, uint32_t nsid, uint8_t *page,
                       struct bd_err *err)
{
    struct bd_err step = { 0 };
    uint8_t sqe[64];
    unsigned fmt, lbads;
    uint16_t ms;
    int r;

    if (nsid > c->id.namespaces)
        return missing_ns(c, nsid, page, err);
    nvme_sqe_init(sqe, ADM_IDENTIFY, nsid);     /* CNS 00h: namespace */
    memset(page, 0, NVME_PAGE);
    r = nvme_admin(c, sqe, page, "Identify Namespace", NULL, &step);
    if (r == -ENODEV || (r == 0 && bd_le64(page) == 0))
        return missing_ns(c, nsid, page, err);
    if (r < 0)
        return bd_err_set(err, -r, "%s", step.msg);
    c->id.nsid = nsid;
    c->id.blocks = bd_le64(page);
    c->id.lba_formats = page[25] + 1u;
    fmt = (page[26] & 0xfu) | (unsigned)(page[26] >> 5 & 3u) << 4;
    c->id.lba_format = fmt;
    if (fmt >= c->id.lba_formats || fmt >= 64)
        return bd_err_set(err, EINVAL, "%s: namespace %u uses LBA format %u "
                          "of %u", c->name, nsid, fmt, c->id.lba_formats);
    ms = bd_le16(page + 128 + 4 * fmt);
    lbads = page[128 + 4 * fmt + 2];
    if (ms)
        return bd_err_set(err, ENOTSUP, "%s: namespace %u has %u bytes of "
                          "metadata per block; formats with metadata are not "
                          "supported", c->name, nsid, ms);
    if (lbads < 9 || lbads > 12)
        return bd_err_set(err, ENOTSUP, "%s: namespace %u has blocks of 2^%u "
                          "bytes; 512 to 4096 are supported", c->name, nsid,
                          lbads);
    c->id.lba_size = 1u << lbads;
    if (c->id.blocks > UINT64_MAX / c->id.lba_size)
        return bd_err_set(err, EINVAL, "%s: namespace %u claims %llu blocks",
                          c->name, nsid, (unsigned long long)c->id.blocks);
    c->id.dealloc_reads_zero = (page[33] & 7u) == 1;
    c->id.zeroes_dealloc = page[33] & 8u;
    return 0;
}

static int create_io_queue(struct nvme_ctrl *c, struct nvme_queue *q,
                           uint16_t qid, uint16_t depth, struct bd_err *err)
{
    uint8_t sqe[64];
    int r;

    if ((r = nvme_queue_init(q, &c->vfio, qid, depth, c->max_transfer, err)) < 0)
        return r;
    q->sq_db = (volatile uint32_t *)(void *)(c->vfio.bar0 + 0x1000 +
                                             2u * qid * c->dstrd);
    q->cq_db = (volatile uint32_t *)(void *)(c->vfio.bar0 + 0x1000 +
                                             (2u * qid + 1) * c->dstrd);
    nvme_sqe_init(sqe, ADM_CREATE_CQ, 0);
    nvme_sqe_prp(sqe, q->cq_iova, 0);
    nvme_sqe_dw(sqe, 10, (uint32_t)(depth - 1) << 16 | qid);
    /* contiguous; interrupts on vector qid when it has an eventfd */
    q->efd = c->efd[qid];
    nvme_sqe_dw(sqe, 11, q->efd >= 0 ? (uint32_t)qid << 16 | 3u : 1u);
    if ((r = nvme_admin(c, sqe, NULL, "Create I/O Completion Queue", NULL,
                        err)) < 0)
        return r;
    nvme_sqe_init(sqe, ADM_CREATE_SQ, 0);
    nvme_sqe_prp(sqe, q->sq_iova, 0);
    nvme_sqe_dw(sqe, 10, (uint32_t)(depth - 1) << 16 | qid);
    nvme_sqe_dw(sqe, 11, (uint32_t)qid << 16 | 1);
    if ((r = nvme_admin(c, sqe, NULL, "Create I/O Submission Queue", NULL,
                        err)) < 0)
        return r;
    q->ready = true;
    return 0;
}

static int create_io_queues(struct nvme_ctrl *c, unsigned want,
                            struct bd_err *err)
{
    uint64_t cap = reg_read(c, REG_CAP);
    unsigned mqes = (unsigned)(cap & 0xffff) + 1;
    uint16_t depth = (uint16_t)(mqes < IO_DEPTH ? mqes : IO_DEPTH);
    uint8_t sqe[64];
    uint32_t dw0 = 0;
    unsigned got;
    int r;

    nvme_sqe_init(sqe, ADM_SET_FEATURES, 0);
    nvme_sqe_dw(sqe, 10, FEAT_NUM_QUEUES);
    nvme_sqe_dw(sqe, 11, (want - 1) << 16 | (want - 1));
    if ((r = nvme_admin(c, sqe, NULL, "Set Features (Number of Queues)", &dw0,
                        err)) < 0)
        return r;
    got = (dw0 & 0xffff) + 1;
    if ((dw0 >> 16) + 1 < got)
        got = (dw0 >> 16) + 1;
    if (got > want)
        got = want;
    for (c->queues = 0; c->queues < got; c->queues++) {
        struct bd_err step = { 0 };
        r = create_io_queue(c, &c->io[c->queues], (uint16_t)(c->queues + 1),
                            depth, &step);
        if (r < 0) {
            nvme_queue_fini(&c->io[c->queues]);
            if (c->queues == 0)
                return bd_err_set(err, -r, "%s", step.msg);
            break;                      /* fewer queues will do */
        }
    }
    return 0;
}

static void limits_from_ident(struct nvme_ctrl *c)
{
    uint64_t mt = MAX_TRANSFER;

    if (c->id.mdts_bytes && c->id.mdts_bytes < mt)
        mt = c->id.mdts_bytes;
    mt -= mt % c->id.lba_size;
    c->max_transfer = (uint32_t)mt;
}

/* MSI-X: vector 0 for the admin queue, vector i for I/O queue i, each to
 * an eventfd its waiter sleeps on after polling. Without them every queue
 * is polled only. */
static void setup_irqs(struct nvme_ctrl *c, unsigned vectors)
{
    int r;

    for (unsigned i = 0; i < vectors; i++) {
        if ((c->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
            goto polled;
    }
    if ((r = nvme_vfio_irqs(&c->vfio, c->efd, vectors)) == 0) {
        c->msix = true;
        return;
    }
    log_debug("nvme", "%s: no MSI-X (%s): polling only", c->name,
              strerror(-r));
polled:
    for (unsigned i = 0; i <= NVME_MAX_QUEUES; i++) {
        if (c->efd[i] >= 0)
            close(c->efd[i]);
        c->efd[i] = -1;
    }
}

int nvme_open(const char *bdf, uint32_t nsid, unsigned queues,
              unsigned timeout_ms, const char *name, struct nvme_ctrl **out,
              struct bd_err *err)
{
    struct nvme_ctrl *c = calloc(1, sizeof(*c));
    uint8_t *page = NULL;
    int r;

    if (!c || !(c->name = strdup(name)) || !(page = calloc(1, NVME_PAGE))) {
        free(page);
        nvme_close(c);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    snprintf(c->bdf, sizeof(c->bdf), "%s", bdf);
    c->io_timeout_ms = timeout_ms;
    for (unsigned i = 0; i <= NVME_MAX_QUEUES; i++)
        c->efd[i] = -1;
    if (queues < 1)
        queues = 1;
    if (queues > NVME_MAX_QUEUES)
        queues = NVME_MAX_QUEUES;
    if ((r = nvme_vfio_open(&c->vfio, bdf, name, err)) < 0)
        goto fail;
    setup_irqs(c, queues + 1);
    if ((r = start(c, err)) < 0 || (r = identify_ctrl(c, page, err)) < 0 ||
        (r = identify_ns(c, nsid, page, err)) < 0)
        goto fail;
    limits_from_ident(c);
    if ((r = create_io_queues(c, queues, err)) < 0)
        goto fail;
    free(page);
    *out = c;
    return 0;
fail:
    free(page);
    nvme_close(c);
    return r;
}

/* Normal shutdown (the controller writes its cache back), then disable. */
static void stop(struct nvme_ctrl *c)
{
    uint32_t cc = reg_read(c, REG_CC);

    if (cc & CC_EN) {
        reg_write(c, REG_CC, (cc & ~(3u << 14)) | CC_SHN_NORMAL);
        wait_csts(c, 3u << 2, CSTS_SHST_DONE, c->ready_timeout_ms);
        reg_write(c, REG_CC, reg_read(c, REG_CC) & ~CC_EN);
        wait_csts(c, CSTS_RDY, 0, c->ready_timeout_ms);
    }
}

void nvme_close(struct nvme_ctrl *c)
{
    if (!c)
        return;
    if (c->vfio.bar0 && c->admin.mem)
        stop(c);
    for (unsigned i = 0; i < NVME_MAX_QUEUES; i++) {
        if (c->io[i].mem)
            nvme_queue_fini(&c->io[i]);
    }
    if (c->admin.mem)
        nvme_queue_fini(&c->admin);
    if (c->vfio.bar0 || c->vfio.container > 0)
        nvme_vfio_close(&c->vfio);
    for (unsigned i = 0; i <= NVME_MAX_QUEUES; i++) {
        if (c->efd[i] >= 0)
            close(c->efd[i]);
    }
    free(c->name);
    free(c);
}

const struct nvme_ident *nvme_ident_get(const struct nvme_ctrl *c)
{
    return &c->id;
}

unsigned nvme_queue_count(const struct nvme_ctrl *c)
{
    return c->queues;
}

bool nvme_has_msix(const struct nvme_ctrl *c)
{
    return c->msix;
}

uint32_t nvme_max_transfer(const struct nvme_ctrl *c)
{
    return c->max_transfer;
}

int nvme_set_write_cache(struct nvme_ctrl *c, bool on, struct bd_err *err)
{
    uint8_t sqe[64];

    nvme_sqe_init(sqe, ADM_SET_FEATURES, 0);
    nvme_sqe_dw(sqe, 10, FEAT_WRITE_CACHE);
    nvme_sqe_dw(sqe, 11, on ? 1 : 0);
    return nvme_admin(c, sqe, NULL, "Set Features (Volatile Write Cache)",
                      NULL, err);
}
