/*
 * Reads of a hosted sparse extent: the state of a range (block status, runs
 * across grains and across whole missing tables) and reading it from grains,
 * pending stream grains, inflate.c, the backing image or zeroes. Tables come
 * from grain-table.c; nothing here writes.
 */
#include "vmdk.h"

#include <pthread.h>
#include <string.h>

/* No grain table covers grain g, and no pending grain lies in its span. */
static bool table_absent(const struct vmdk_sparse *s, uint64_t g)
{
    uint64_t gi = g / s->gtes;

    if (gi < s->gd_entries && !s->gt_empty[gi] &&
        (s->keep_tables ? s->gt[gi] != NULL : s->gd[gi] != 0))
        return false;
    return !vmdk_stream_pending_in(s, gi);
}

static int status_locked(struct vmdk_sparse *s, uint64_t off, uint64_t len,
                         uint64_t *pnum, enum vmdk_grain_state *state,
                         uint64_t *file_off)
{
    uint64_t g = off / s->grain, in = off % s->grain, done = 0;
    enum vmdk_grain_state st0 = VMDK_GRAIN_UNALLOCATED;
    uint64_t foff0 = 0;

    if (off >= s->capacity) {
        *pnum = len;
        *state = VMDK_GRAIN_UNALLOCATED;
        return 0;
    }
    if (len > s->capacity - off)
        len = s->capacity - off;
    while (done < len) {
        enum vmdk_grain_state st;
        uint32_t gte;
        uint64_t foff = 0, n = s->grain - in;
        int ret;

        uint64_t step = 1;

        if (vmdk_stream_slot(s, g) >= 0) {
            st = VMDK_GRAIN_COMPRESSED;
        } else if (table_absent(s, g)) {
            /* a whole missing grain table at once: big holes stay cheap */
            st = VMDK_GRAIN_UNALLOCATED;
            step = s->gtes - g % s->gtes;
            n += (step - 1) * s->grain;
        } else {
            if ((ret = vmdk_gt_entry(s, g, &gte)) < 0)
                return ret;
            st = vmdk_gte_state(s, gte);
            foff = (uint64_t)gte * BD_SECTOR + in;
        }
        if (done == 0) {
            st0 = st;
            foff0 = foff;
        } else if (st != st0 || st == VMDK_GRAIN_COMPRESSED ||
                   (st == VMDK_GRAIN_DATA && foff != foff0 + done)) {
            break;
        }
        done += n;
        g += step;
        in = 0;
        if (st0 == VMDK_GRAIN_COMPRESSED)
            break;
    }
    *pnum = done < len ? done : len;
    *state = st0;
    *file_off = foff0;
    return 0;
}

int vmdk_sparse_status(struct vmdk_sparse *s, uint64_t off, uint64_t len,
                       uint64_t *pnum, enum vmdk_grain_state *state,
                       uint64_t *file_off)
{
    pthread_mutex_lock(&s->gt_lock);
    int ret = status_locked(s, off, len, pnum, state, file_off);
    pthread_mutex_unlock(&s->gt_lock);
    return ret;
}

/* Compressed grains only read here, and readers share nothing but the table
 * cache and the grain cache, which have locks: many may run at once. */
int vmdk_sparse_pread(struct vmdk_sparse *s, void *buf, uint64_t len,
                      uint64_t off, const struct vmdk_fill *fill)
{
    struct vmdk_zctx *z = NULL;
    uint8_t *p = buf;
    int ret = 0;

    while (len && ret == 0) {
        enum vmdk_grain_state st;
        uint64_t n, foff;

        if ((ret = vmdk_sparse_status(s, off, len, &n, &st, &foff)) < 0)
            break;
        switch (st) {
        case VMDK_GRAIN_UNALLOCATED:
            ret = vmdk_fill_read(fill, p, n, off);
            break;
        case VMDK_GRAIN_ZERO:
            memset(p, 0, n);
            break;
        case VMDK_GRAIN_DATA:
            ret = vmdk_sparse_file_read(s, p, n, foff, "grain");
            break;
        case VMDK_GRAIN_COMPRESSED: {
            uint64_t g = off / s->grain, in = off % s->grain;
            int slot = vmdk_stream_slot(s, g);
            if (slot >= 0) {
                memcpy(p, s->pend[slot].buf + in, n);
                break;
            }
            if (!z && !(z = vmdk_zctx_get(s))) {
                ret = -ENOMEM;
                break;
            }
            /* a whole grain inflates straight into the caller's buffer */
            if (n == s->grain)
                ret = vmdk_grain_inflate(s, z, foff, p);
            else
                ret = vmdk_grain_inflate_part(s, z, g, foff - in, p, in, n);
            break;
        }
        }
        p += n;
        off += n;
        len -= n;
    }
    vmdk_zctx_put(s, z);
    return ret;
}
