/*
 * Private to nvme/: the VFIO device (vfio.c), a polled queue pair
 * (queue.c) and the controller that owns them (ctrl.c, io.c). The protocol
 * driver sees only nvme.h.
 */
#ifndef IMGFUSE_NVME_INT_H
#define IMGFUSE_NVME_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "nvme.h"

#define NVME_PAGE 4096u                 /* CC.MPS 0: the host's page size */
#define NVME_MAX_IOVA_RANGES 16

/* ---- VFIO (vfio.c) ------------------------------------------------------- */

struct nvme_vfio {
    int container, group, device;       /* -1 when not open */
    int group_no;
    volatile uint8_t *bar0;             /* mmap of BAR0 */
    size_t bar0_size;
    uint64_t config_off;                /* config space region offset */
    struct { uint64_t start, end; } iova[NVME_MAX_IOVA_RANGES];  /* end incl. */
    unsigned iova_ranges;
    unsigned range;                     /* the range being handed out */
    uint64_t next_iova;
};

/* Container, group (viable, set to type1), device fd, BAR0 mapped, bus
 * mastering on. name/bdf for messages. 0 or -errno with err filled. */
int nvme_vfio_open(struct nvme_vfio *v, const char *bdf, const char *name,
                   struct bd_err *err);
void nvme_vfio_close(struct nvme_vfio *v);
/* Map buf (page-aligned, len a multiple of NVME_PAGE) for device DMA at the
 * next free IOVA of the usable ranges; *iova gets it. 0 or -errno. */
int nvme_vfio_map(struct nvme_vfio *v, void *buf, size_t len, uint64_t *iova);

/* Route MSI-X vectors 0..count-1 to the eventfds fds[0..count-1]. 0, or
 * -errno (-ENOTSUP: fewer vectors); the device keeps its other vectors
 * off. */
int nvme_vfio_irqs(struct nvme_vfio *v, const int *fds, unsigned count);

/* ---- memory the device reads and writes ----------------------------------- */

/* Shared anonymous pages, so that a process forked after open keeps the
 * very pages VFIO pinned (a private mapping would be copied on write). */
void *nvme_dma_alloc(size_t len);
void nvme_dma_free(void *p, size_t len);

/* ---- a polled submission/completion queue pair (queue.c) ------------------ */

struct nvme_queue {
    pthread_mutex_t lock;               /* held around a whole request */
    uint16_t qid, depth;
    uint8_t *mem;                       /* one DMA area: SQ, CQ, PRP list, buf */
    size_t mem_len;
    uint8_t *sq, *cq;
    uint64_t sq_iova, cq_iova;
    uint64_t *prp_list;
    uint64_t prp_iova;
    uint8_t *buf;                       /* bounce buffer for data */
    uint64_t buf_iova;
    size_t buf_len;
    volatile uint32_t *sq_db, *cq_db;
    uint16_t sq_tail, cq_head, cid;
    uint8_t phase;
    int efd;                            /* its MSI-X vector's eventfd, or -1:
                                           polled only */
    bool dead;                          /* a command timed out: unusable */
    bool ready;                         /* created on the controller */
};

/* Allocate and map the queue's memory: depth entries, buf_len bytes of
 * bounce buffer. Doorbells are set by the caller. */
int nvme_queue_init(struct nvme_queue *q, struct nvme_vfio *v, uint16_t qid,
                    uint16_t depth, size_t buf_len, struct bd_err *err);
void nvme_queue_fini(struct nvme_queue *q);
/* Submit the 64-byte command sqe (its CID is set here) and poll for its
 * completion for at most timeout_ms. Returns 0 with *status (0: success)
 * and *dw0 (may be NULL) set, or -ETIMEDOUT (the queue is then dead), or
 * -EIO for a dead queue. The caller holds q->lock. */
int nvme_queue_exec(struct nvme_queue *q, uint8_t sqe[64],
                    unsigned timeout_ms, uint16_t *status, uint32_t *dw0);

/* ---- the controller (ctrl.c, io.c) ---------------------------------------- */

struct nvme_ctrl {
    char *name;
    char bdf[NVME_BDF_LEN + 1];
    struct nvme_vfio vfio;
    uint32_t dstrd;                     /* doorbell stride, bytes */
    unsigned ready_timeout_ms;          /* CAP.TO */
    unsigned io_timeout_ms;
    struct nvme_queue admin;
    struct nvme_queue io[NVME_MAX_QUEUES];
    unsigned queues;
    int efd[NVME_MAX_QUEUES + 1];       /* per vector; -1 when polled only */
    bool msix;
    atomic_uint next_queue;
    uint32_t max_transfer;
    struct nvme_ident id;
    atomic_ulong timeouts;
};

/* SQE field setters (NVMe 1.4, 4.2). */
void nvme_sqe_init(uint8_t sqe[64], uint8_t opcode, uint32_t nsid);
void nvme_sqe_dw(uint8_t sqe[64], unsigned dw, uint32_t v);     /* 10..15 */
void nvme_sqe_prp(uint8_t sqe[64], uint64_t prp1, uint64_t prp2);

/* Admin command with an optional 4 KiB data buffer (in/out via the admin
 * queue's bounce buffer). 0, or -errno with err filled naming what. */
int nvme_admin(struct nvme_ctrl *c, uint8_t sqe[64], void *data4k,
               const char *what, uint32_t *dw0, struct bd_err *err);

#endif
