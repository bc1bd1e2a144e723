/*
 * One polled NVMe queue pair: its DMA memory (submission queue, completion
 * queue, a PRP list page and a bounce buffer, mapped once), submitting a
 * command and polling the completion queue's phase bit with a deadline.
 * One command is in flight per queue; creating it on the controller is
 * ctrl.c's job.
 */
#include "nvme-int.h"

#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SQE_SIZE 64u
#define CQE_SIZE 16u

static size_t round_page(size_t n)
{
    return (n + NVME_PAGE - 1) & ~(size_t)(NVME_PAGE - 1);
}

int nvme_queue_init(struct nvme_queue *q, struct nvme_vfio *v, uint16_t qid,
                    uint16_t depth, size_t buf_len, struct bd_err *err)
{
    size_t sq_len = round_page((size_t)depth * SQE_SIZE);
    size_t cq_len = round_page((size_t)depth * CQE_SIZE);
    uint64_t iova;
    int r;

    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    q->qid = qid;
    q->efd = -1;
    q->depth = depth;
    q->phase = 1;
    q->buf_len = round_page(buf_len);
    q->mem_len = sq_len + cq_len + NVME_PAGE + q->buf_len;
    if (!(q->mem = nvme_dma_alloc(q->mem_len)))
        return bd_err_set(err, ENOMEM, "cannot allocate %zu bytes for NVMe "
                          "queue %u", q->mem_len, qid);
    if ((r = nvme_vfio_map(v, q->mem, q->mem_len, &iova)) < 0)
        return bd_err_set(err, -r, "cannot map NVMe queue %u for DMA: %s",
                          qid, strerror(-r));
    q->sq = q->mem;
    q->sq_iova = iova;
    q->cq = q->mem + sq_len;
    q->cq_iova = iova + sq_len;
    q->prp_list = (uint64_t *)(void *)(q->cq + cq_len);
    q->prp_iova = q->cq_iova + cq_len;
    q->buf = q->mem + sq_len + cq_len + NVME_PAGE;
    q->buf_iova = q->prp_iova + NVME_PAGE;
    return 0;
}

void nvme_queue_fini(struct nvme_queue *q)
{
    /* the IOVA mappings go with the container */
    nvme_dma_free(q->mem, q->mem_len);
    q->mem = NULL;
    pthread_mutex_destroy(&q->lock);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The phase tag of the CQE at the head, read as the device wrote it. */
static unsigned head_phase(const struct nvme_queue *q)
{
    const volatile uint8_t *e = q->cq + (size_t)q->cq_head * CQE_SIZE;
    return e[14] & 1u;
}

#define SPINS 2000u
#define YIELDS 64u
#define IRQ_WAIT_MS 10      /* a lost interrupt costs this much, no more */

/* Sleep until the queue's MSI-X vector fires (its eventfd counts). An
 * interrupt that came before the wait leaves the count set, so nothing is
 * missed; the timeout only bounds a wait on a stuck controller. */
static void wait_irq(struct nvme_queue *q)
{
    struct pollfd p = { .fd = q->efd, .events = POLLIN };
    uint64_t n;

    if (poll(&p, 1, IRQ_WAIT_MS) > 0 && read(q->efd, &n, sizeof(n)) < 0) {
        /* EAGAIN: another waiter of a shared vector took it */
    }
}

int nvme_queue_exec(struct nvme_queue *q, uint8_t sqe[64],
                    unsigned timeout_ms, uint16_t *status, uint32_t *dw0)
{
    uint64_t deadline = 0;
    unsigned spins = 0;
    const uint8_t *cqe;
    uint16_t cid, got, st;
    uint32_t d0;

    if (q->dead)
        return -EIO;
    cid = q->cid++;
    bd_put_le16(sqe + 2, cid);
    memcpy(q->sq + (size_t)q->sq_tail * SQE_SIZE, sqe, SQE_SIZE);
    q->sq_tail = (uint16_t)((q->sq_tail + 1) % q->depth);
    /* the entry must be in memory before the device sees the new tail */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    *q->sq_db = q->sq_tail;

    for (;;) {
        while (head_phase(q) != q->phase) {
            /* spin briefly (a fast device answers in microseconds), then
             * yield the CPU a few times, then sleep until the queue's
             * interrupt; look at the clock now and then */
            if (++spins < SPINS)
                continue;
            if (q->efd >= 0 && spins >= SPINS + YIELDS)
                wait_irq(q);
            else
                sched_yield();
            if (q->efd >= 0 || (spins & 63) == 0) {
                uint64_t t = now_ms();
                if (!deadline)
                    deadline = t + timeout_ms;
                else if (t > deadline) {
                    q->dead = true;
                    return -ETIMEDOUT;
                }
            }
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        cqe = q->cq + (size_t)q->cq_head * CQE_SIZE;
        got = bd_le16(cqe + 12);
        st = (uint16_t)(bd_le16(cqe + 14) >> 1) & 0x7fffu;
        d0 = bd_le32(cqe);
        if (++q->cq_head == q->depth) {
            q->cq_head = 0;
            q->phase ^= 1;
        }
        *q->cq_db = q->cq_head;
        /* a stale completion (none should come: one command at a time) */
        if (got != cid)
            continue;
        *status = st;
        if (dw0)
            *dw0 = d0;
        return 0;
    }
}

void nvme_sqe_init(uint8_t sqe[64], uint8_t opcode, uint32_t nsid)
{
    memset(sqe, 0, SQE_SIZE);
    sqe[0] = opcode;
    bd_put_le32(sqe + 4, nsid);
}

void nvme_sqe_dw(uint8_t sqe[64], unsigned dw, uint32_t v)
{
    bd_put_le32(sqe + dw * 4, v);
}

void nvme_sqe_prp(uint8_t sqe[64], uint64_t prp1, uint64_t prp2)
{
    bd_put_le64(sqe + 24, prp1);
    bd_put_le64(sqe + 32, prp2);
}
