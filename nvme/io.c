/*
 * I/O commands on the namespace: READ, WRITE (through the queue's bounce
 * buffer and a PRP list), FLUSH, WRITE ZEROES and DATASET MANAGEMENT
 * deallocate. A thread keeps the queue pair it got first, so FUSE workers
 * up to the number of queues never wait for each other.
 */
#include "nvme-int.h"

#include <string.h>

#define IO_FLUSH 0x00
#define IO_WRITE 0x01
#define IO_READ 0x02
#define IO_WRITE_ZEROES 0x08
#define IO_DSM 0x09

#define RW_FUA (1u << 30)
#define WZ_DEAC (1u << 25)
#define DSM_AD (1u << 2)
#define WZ_MAX_BLOCKS 0x10000u          /* NLB is 16 bits, 0-based */

static _Thread_local struct {
    const struct nvme_ctrl *c;
    unsigned q;
} mine;

static struct nvme_queue *queue_lock(struct nvme_ctrl *c)
{
    struct nvme_queue *q;

    if (mine.c != c || mine.q >= c->queues) {
        mine.c = c;
        mine.q = atomic_fetch_add(&c->next_queue, 1) % c->queues;
    }
    q = &c->io[mine.q];
    pthread_mutex_lock(&q->lock);
    return q;
}

/* Run sqe on q (locked); the status as -errno, a timeout logged once. */
static int run(struct nvme_ctrl *c, struct nvme_queue *q, uint8_t sqe[64],
               const char *what, uint64_t off)
{
    uint16_t st = 0;
    int r = nvme_queue_exec(q, sqe, c->io_timeout_ms, &st, NULL);

    if (r == -ETIMEDOUT) {
        if (atomic_fetch_add(&c->timeouts, 1) == 0)
            log_err("%s: the controller did not complete a %s at offset %llu "
                    "within %u ms; I/O queue %u is retired, requests fail "
                    "with EIO", c->name, what, (unsigned long long)off,
                    c->io_timeout_ms, q->qid);
        return -EIO;
    }
    if (r < 0)
        return r;
    if (st) {
        log_debug("nvme", "%s: %s at %llu: %s (status %#x)", c->name, what,
                  (unsigned long long)off, nvme_status_str(st), st);
        return -nvme_status_errno(st);
    }
    return 0;
}

static void sqe_lba(struct nvme_ctrl *c, uint8_t sqe[64], uint8_t opcode,
                    uint64_t off, uint32_t blocks)
{
    uint64_t lba = off / c->id.lba_size;

    nvme_sqe_init(sqe, opcode, c->id.nsid);
    nvme_sqe_dw(sqe, 10, (uint32_t)lba);
    nvme_sqe_dw(sqe, 11, (uint32_t)(lba >> 32));
    nvme_sqe_dw(sqe, 12, blocks - 1);
}

/* A READ or WRITE of len bytes from/to the queue's buffer. */
static int rw(struct nvme_ctrl *c, struct nvme_queue *q, uint8_t opcode,
              uint64_t len, uint64_t off, uint32_t extra)
{
    uint64_t prp1, prp2;
    uint8_t sqe[64];

    int k = nvme_prp_build(q->buf_iova, len, NVME_PAGE, q->prp_list,
                           NVME_PAGE / 8, q->prp_iova, &prp1, &prp2);

    if (k < 0)
        return -EINVAL;
    for (int i = 0; i < k; i++)                 /* the device reads LE */
        bd_put_le64(&q->prp_list[i], q->prp_list[i]);
    sqe_lba(c, sqe, opcode, off, (uint32_t)(len / c->id.lba_size));
    nvme_sqe_dw(sqe, 12, (uint32_t)(len / c->id.lba_size - 1) | extra);
    nvme_sqe_prp(sqe, prp1, prp2);
    return run(c, q, sqe, opcode == IO_READ ? "read" : "write", off);
}

int nvme_read(struct nvme_ctrl *c, void *buf, uint64_t len, uint64_t off)
{
    struct nvme_queue *q;
    int r;

    if (len == 0)
        return 0;
    if (len > c->max_transfer)
        return -EINVAL;
    q = queue_lock(c);
    r = rw(c, q, IO_READ, len, off, 0);
    if (r == 0)
        memcpy(buf, q->buf, len);
    pthread_mutex_unlock(&q->lock);
    return r;
}

int nvme_write(struct nvme_ctrl *c, const void *buf, uint64_t len,
               uint64_t off, bool fua)
{
    struct nvme_queue *q;
    int r;

    if (len == 0)
        return 0;
    if (len > c->max_transfer)
        return -EINVAL;
    q = queue_lock(c);
    memcpy(q->buf, buf, len);
    r = rw(c, q, IO_WRITE, len, off, fua ? RW_FUA : 0);
    pthread_mutex_unlock(&q->lock);
    return r;
}

int nvme_write_zeroes(struct nvme_ctrl *c, uint64_t len, uint64_t off,
                      bool deallocate)
{
    uint64_t blocks = len / c->id.lba_size;
    struct nvme_queue *q;
    uint8_t sqe[64];
    int r = 0;

    if (!c->id.has_write_zeroes)
        return -ENOTSUP;
    q = queue_lock(c);
    while (r == 0 && blocks) {
        uint32_t n = blocks > WZ_MAX_BLOCKS ? WZ_MAX_BLOCKS : (uint32_t)blocks;
        sqe_lba(c, sqe, IO_WRITE_ZEROES, off, n);
        if (deallocate && c->id.zeroes_dealloc)
            nvme_sqe_dw(sqe, 12, (n - 1) | WZ_DEAC);
        r = run(c, q, sqe, "write zeroes", off);
        blocks -= n;
        off += (uint64_t)n * c->id.lba_size;
    }
    pthread_mutex_unlock(&q->lock);
    return r;
}

int nvme_deallocate(struct nvme_ctrl *c, uint64_t len, uint64_t off)
{
    uint64_t blocks = len / c->id.lba_size;
    struct nvme_queue *q;
    uint8_t sqe[64];
    int r = 0;

    if (!c->id.has_dsm)
        return -ENOTSUP;
    q = queue_lock(c);
    while (r == 0 && blocks) {
        uint32_t n = blocks > UINT32_MAX ? UINT32_MAX : (uint32_t)blocks;
        /* one range: context attributes, length in blocks, first LBA */
        memset(q->buf, 0, 16);
        bd_put_le32(q->buf + 4, n);
        bd_put_le64(q->buf + 8, off / c->id.lba_size);
        nvme_sqe_init(sqe, IO_DSM, c->id.nsid);
        nvme_sqe_prp(sqe, q->buf_iova, 0);
        nvme_sqe_dw(sqe, 10, 0);                /* one range (0-based) */
        nvme_sqe_dw(sqe, 11, DSM_AD);
        r = run(c, q, sqe, "deallocate", off);
        blocks -= n;
        off += (uint64_t)n * c->id.lba_size;
    }
    pthread_mutex_unlock(&q->lock);
    return r;
}

int nvme_flush(struct nvme_ctrl *c)
{
    struct nvme_queue *q = queue_lock(c);
    uint8_t sqe[64];
    int r;

    nvme_sqe_init(sqe, IO_FLUSH, c->id.nsid);
    r = run(c, q, sqe, "flush", 0);
    pthread_mutex_unlock(&q->lock);
    return r;
}
