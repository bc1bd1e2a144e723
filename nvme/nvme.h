/*
 * Userspace NVMe over VFIO: one controller bound to vfio-pci, driven from
 * this process (polled queues, DMA through a pool mapped once). This is the
 * interface the nvme protocol driver uses; VFIO, queues and admin commands
 * stay behind it. It knows nothing of nodes or FUSE.
 */
#ifndef IMGFUSE_NVME_H
#define IMGFUSE_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bd.h"

#define NVME_BDF_LEN 12                 /* "hhhh:bb:ss.f" */
#define NVME_MAX_QUEUES 16u             /* I/O queue pairs we ask for */

/* What Identify Controller and Identify Namespace said. */
struct nvme_ident {
    char model[41], serial[21], firmware[9];     /* trimmed, NUL-ended */
    uint16_t vendor;
    uint32_t namespaces;                /* NN: the highest namespace id */
    uint64_t mdts_bytes;                /* 0: no limit from the controller */
    bool write_cache;                   /* VWC: a volatile write cache */
    bool has_write_zeroes, has_dsm;     /* ONCS bits */
    uint32_t nsid;
    uint64_t blocks;                    /* NSZE */
    uint32_t lba_size;                  /* bytes, 512..4096 */
    unsigned lba_format, lba_formats;   /* in use (from 0), how many */
    bool dealloc_reads_zero;            /* DLFEAT read behaviour 001b */
    bool zeroes_dealloc;                /* DLFEAT bit 3: WRITE ZEROES DEAC */
};

struct nvme_ctrl;

/*
 * Open the controller at PCI address bdf (normalized, see nvme_bdf_parse),
 * reset it, bring up the admin queue, identify it and namespace nsid, and
 * create up to `queues` I/O queue pairs (1..NVME_MAX_QUEUES). A command
 * not completed within timeout_ms fails. `name` names the source in
 * messages. 0 or -errno with err filled.
 */
int nvme_open(const char *bdf, uint32_t nsid, unsigned queues,
              unsigned timeout_ms, const char *name, struct nvme_ctrl **out,
              struct bd_err *err);
/* Disable the controller and release VFIO; NULL is fine. */
void nvme_close(struct nvme_ctrl *c);
const struct nvme_ident *nvme_ident_get(const struct nvme_ctrl *c);
unsigned nvme_queue_count(const struct nvme_ctrl *c);
/* Whether waits sleep on MSI-X interrupts after polling (else poll only). */
bool nvme_has_msix(const struct nvme_ctrl *c);
/* Largest read or write in one command, bytes (a multiple of lba_size). */
uint32_t nvme_max_transfer(const struct nvme_ctrl *c);
/* Turn the volatile write cache on or off (Set Features 06h). */
int nvme_set_write_cache(struct nvme_ctrl *c, bool on, struct bd_err *err);

/*
 * I/O on the namespace: off and len in bytes, multiples of lba_size,
 * len <= nvme_max_transfer for read and write. Thread-safe: a thread uses
 * "its" queue pair (given out round-robin on its first request), each
 * guarded by a mutex. 0 or -errno; a command the controller does not
 * complete in time is -EIO with one log line, and its queue is retired.
 */
int nvme_read(struct nvme_ctrl *c, void *buf, uint64_t len, uint64_t off);
int nvme_write(struct nvme_ctrl *c, const void *buf, uint64_t len,
               uint64_t off, bool fua);
int nvme_write_zeroes(struct nvme_ctrl *c, uint64_t len, uint64_t off,
                      bool deallocate);
int nvme_deallocate(struct nvme_ctrl *c, uint64_t len, uint64_t off);
int nvme_flush(struct nvme_ctrl *c);

/* ---- pure helpers (nvme/parse.c), unit-tested ---------------------------- */

/* "hhhh:bb:ss.f" or "bb:ss.f" (domain 0000), hex digits of either case,
 * into out as "hhhh:bb:ss.f" lower case. 0 or -EINVAL. */
int nvme_bdf_parse(const char *s, size_t len, char out[NVME_BDF_LEN + 1]);
/* nvme://BDF[/NAMESPACE]: namespace from 1, absent = 1. 0 or -EINVAL with
 * err naming the URI and what is wrong. */
int nvme_uri_parse(const char *uri, char bdf[NVME_BDF_LEN + 1],
                   uint32_t *nsid, struct bd_err *err);
/* A namespace id from text: 1..0xfffffffe. 0 or -EINVAL. */
int nvme_nsid_parse(const char *s, uint32_t *nsid);
/*
 * PRP entries for a buffer of len bytes (len >= 1) contiguous at IOVA iova
 * in pages of `page` bytes: *prp1 and *prp2 for the command and, when more
 * than two pages are touched, the list entries written to list[0..) (at
 * most list_cap; the list itself lives at list_iova). Returns the number of
 * list entries used, or -EINVAL when they do not fit in one list page.
 */
int nvme_prp_build(uint64_t iova, uint64_t len, uint32_t page,
                   uint64_t *list, size_t list_cap, uint64_t list_iova,
                   uint64_t *prp1, uint64_t *prp2);
/* A completion's status field (bits 15:1 of CQE DW3 shifted down: SC in
 * bits 7:0, SCT in 10:8) as a positive errno, 0 for success. */
int nvme_status_errno(uint16_t status);
/* Words for a status in messages ("invalid namespace or format"). */
const char *nvme_status_str(uint16_t status);

#endif
