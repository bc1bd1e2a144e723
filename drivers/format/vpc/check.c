/*
 * vpc consistency check (`imgfuse check`): blocks that overlap each other
 * or the metadata, and a footer copy at the start that disagrees with the
 * one at the end (repaired from the end). Open's checks are header.c's.
 */
#include "vpc.h"

#include <stdlib.h>
#include <string.h>

struct vpc_extent {
    uint64_t off, end;
    int64_t blk;                /* -1: metadata */
};

static int vpc_extent_cmp(const void *a, const void *b)
{
    const struct vpc_extent *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * Blocks that overlap each other or the metadata are corruption (writes to
 * one land in the other); a footer copy at the start that differs from the
 * one at the end is repaired from the end (the copy writes keep current).
 */
int vpc_check(struct bd_node *n, unsigned fix, struct bd_check *res,
              struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint64_t nblocks, k = 0;
    struct vpc_extent *x;
    uint8_t head[VPC_FOOTER_SIZE];
    int r;

    if (s->ft.type == VPC_TYPE_FIXED)
        return 0;
    nblocks = (s->size + s->block_size - 1) / s->block_size;
    x = calloc(nblocks + 4, sizeof(*x));
    if (!x)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    x[k++] = (struct vpc_extent){ 0, VPC_FOOTER_SIZE, -1 };
    x[k++] = (struct vpc_extent){ s->ft.data_off, s->ft.data_off + VPC_DYN_SIZE, -1 };
    x[k++] = (struct vpc_extent){ s->dyn.table_off,
                                  s->dyn.table_off + (uint64_t)s->dyn.bat_entries * 4,
                                  -1 };
    for (uint64_t i = 0; i < nblocks; i++) {
        uint32_t e = s->bat[i];

        if (e != VPC_BAT_UNUSED)
            x[k++] = (struct vpc_extent){ (uint64_t)e * BD_SECTOR,
                                          vpc_block_data_off(s, e) + s->block_size,
                                          (int64_t)i };
    }
    qsort(x, k, sizeof(*x), vpc_extent_cmp);
    for (uint64_t i = 1; i < k; i++) {
        if (x[i].off < x[i - 1].end && (x[i].blk >= 0 || x[i - 1].blk >= 0)) {
            log_warn("%s: vhd block %lld overlaps %s at offset %llu", n->name,
                     (long long)(x[i].blk >= 0 ? x[i].blk : x[i - 1].blk),
                     x[i].blk >= 0 && x[i - 1].blk >= 0 ? "another block"
                                                        : "the metadata",
                     (unsigned long long)x[i].off);
            res->corruptions++;
        }
    }
    free(x);

    r = bd_pread(n->file, head, VPC_FOOTER_SIZE, 0);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the vhd header: %s", n->name,
                          strerror(-r));
    if (!s->end_footer_bad && memcmp(head, s->footer_raw, VPC_FOOTER_SIZE) != 0) {
        log_warn("%s: the footer copy at the start differs from the footer at "
                 "the end", n->name);
        if (fix & BD_CHECK_FIX_ERRORS) {
            r = bd_pwrite(n->file, s->footer_raw, VPC_FOOTER_SIZE, 0, 0);
            if (r < 0)
                return bd_err_set(err, -r, "%s: cannot write the footer copy: %s",
                                  n->name, strerror(-r));
            res->corruptions_fixed++;
        } else {
            res->corruptions++;
        }
    }
    return 0;
}
