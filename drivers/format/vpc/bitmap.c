/*
 * vpc sector bitmaps: the bitmap in front of each block that says, on a
 * differencing disk, which sectors are here and which still come from the
 * parent. Reading runs of bits for reads and block status, and marking
 * sectors present after a write; which block holds what is the BAT's.
 */
#include "vpc.h"

#include <stdlib.h>

/* Bitmap bytes covering sectors [s0, s1) of a block; caller frees *out. */
int vpc_read_bitmap(struct bd_node *n, uint32_t entry, uint64_t s0,
                    uint64_t s1, uint8_t **out, uint64_t *first)
{
    uint64_t b0 = s0 / 8, nb = (s1 - 1) / 8 - b0 + 1;
    uint8_t *bm = malloc(nb);
    int r;

    if (!bm)
        return -ENOMEM;
    r = bd_pread(n->file, bm, nb, (uint64_t)entry * BD_SECTOR + b0);
    if (r < 0) {
        free(bm);
        return r;
    }
    *out = bm;
    *first = b0 * 8;
    return 0;
}

/* Differencing disks: mark sectors [in, in+len) of a block as present here.
 * Runs after the data is written, so a crash shows the parent's old data. */
int vpc_mark_present(struct bd_node *n, uint32_t entry, uint64_t in,
                     uint64_t len)
{
    struct vpc_state *s = n->state;
    uint64_t s0 = in / BD_SECTOR, s1 = (in + len) / BD_SECTOR, first;
    bool all = true;
    uint8_t *bm;
    int r;

    pthread_mutex_lock(&s->lock);
    r = vpc_read_bitmap(n, entry, s0, s1, &bm, &first);
    if (r < 0)
        goto out_unlock;
    for (uint64_t i = s0; i < s1; i++) {
        uint64_t b = i - first;

        if (!vpc_bit(bm, b)) {
            bm[b / 8] |= (uint8_t)(0x80u >> (b % 8));
            all = false;
        }
    }
    if (!all)
        r = bd_pwrite(n->file, bm, (s1 - 1 - first) / 8 + 1,
                      (uint64_t)entry * BD_SECTOR + first / 8, 0);
    free(bm);
out_unlock:
    pthread_mutex_unlock(&s->lock);
    return r;
}
