/*
 * qcow2 header fields changed in place while the image is open: the
 * autoclear and dirty bits before the first change of a read-write open,
 * then single fields (size, dirty bit). The header is never rewritten as a
 * whole, and decoding it is header.c's job.
 */
#include "qcow2.h"

int qcow2_header_write_u64(struct qcow2_state *s, uint64_t field_off,
                           uint64_t val)
{
    uint8_t b[8];
    int ret;

    bd_put_be64(b, val);
    ret = bd_pwrite(s->node->file, b, 8, field_off, 0);
    if (ret < 0)
        return ret;
    return bd_flush(s->node->file);
}

int qcow2_prepare_write(struct qcow2_state *s)
{
    int ret;

    if (s->writes_started)
        return 0;
    if (s->read_only)
        return -EROFS;
    if (s->h.version >= 3) {
        uint64_t keep = s->h.autoclear & QCOW2_AUTOCLEAR_DATA_RAW;
        /* bitmaps we can keep up to date stay valid, as with QEMU */
        if ((s->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS) &&
            (!s->x.has_bitmaps || qcow2_bitmaps_load(s) == 0))
            keep |= QCOW2_AUTOCLEAR_BITMAPS;
        if (keep != s->h.autoclear) {
            bool bitmaps = s->h.autoclear & QCOW2_AUTOCLEAR_BITMAPS;
            ret = qcow2_header_write_u64(s, 88, keep);
            if (ret < 0)
                return ret;
            s->h.autoclear = keep;
            /* the bitmaps are now inconsistent for everyone (the spec's
             * rule for programs that do not update them): their clusters
             * would only leak */
            if (bitmaps) {
                pthread_mutex_lock(&s->meta_lock);
                ret = qcow2_free_bitmaps(s);
                pthread_mutex_unlock(&s->meta_lock);
                if (ret < 0)
                    return ret;
            }
        }
        /* the dirty bit doubles as an "open for writing" mark: after a
         * crash the next read-write open rebuilds the refcounts, so leaked
         * clusters do not survive (QEMU does the same on a dirty image) */
        if (!(s->h.incompat & QCOW2_INCOMPAT_DIRTY)) {
            ret = qcow2_header_write_u64(s, 72,
                                         s->h.incompat | QCOW2_INCOMPAT_DIRTY);
            if (ret < 0)
                return ret;
            s->h.incompat |= QCOW2_INCOMPAT_DIRTY;
        }
    }
    __atomic_store_n(&s->writes_started, true, __ATOMIC_RELEASE);
    return 0;
}
