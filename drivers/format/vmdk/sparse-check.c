/*
 * Checking a hosted sparse extent: every grain table and grain lies inside
 * the file, and redundant tables equal the primary ones (rewritten from the
 * primary with BD_CHECK_FIX_ERRORS). COWD extents are not checked, and
 * nothing else is repaired.
 */
#include "vmdk.h"
#include "core/overflow.h"

#include <inttypes.h>
#include <stdlib.h>

static void check_note(struct vmdk_sparse *s, const char *what, uint64_t a,
                       uint64_t b)
{
    log_warn("%s: %s %" PRIu64 ": 0x%" PRIx64, s->name, what, a, b);
}

/* Compare the redundant copy of table gi with the primary; with fix, make
 * the copy equal again. */
static int check_redundant(struct vmdk_sparse *s, uint32_t gi, const uint32_t *t,
                           bool fix, struct bd_check *res)
{
    uint64_t off = (uint64_t)s->rgd[gi] * BD_SECTOR, n = (uint64_t)s->gtes * 4;
    uint8_t *raw = malloc(n);
    bool same = true;
    int ret;

    if (!raw)
        return -ENOMEM;
    if (!ovf_range_ok(off, n, s->file_size)) {
        check_note(s, "redundant grain table beyond the end of the file, entry",
                   gi, off);
        res->corruptions++;
        free(raw);
        return 0;
    }
    if ((ret = bd_pread(s->file, raw, n, off)) < 0)
        goto out;
    for (uint32_t i = 0; i < s->gtes; i++)
        same = same && bd_le32(raw + (size_t)i * 4) == t[i];
    if (same)
        goto out;
    if (!fix) {
        check_note(s, "redundant grain table differs from the primary, table",
                   gi, off);
        res->corruptions++;
        goto out;
    }
    for (uint32_t i = 0; i < s->gtes; i++)
        bd_put_le32(raw + (size_t)i * 4, t[i]);
    if ((ret = vmdk_sparse_file_write(s, raw, n, off)) == 0)
        res->corruptions_fixed++;
out:
    free(raw);
    return ret;
}

int vmdk_sparse_check(struct vmdk_sparse *s, unsigned fix, struct bd_check *res)
{
    int ret;

    if (s->cowd)
        return 0;
    for (uint32_t gi = 0; gi < s->gd_entries; gi++) {
        uint32_t *t;
        uint64_t toff = (uint64_t)s->gd[gi] * BD_SECTOR;
        if (s->gd[gi] && !s->keep_tables &&
            !ovf_range_ok(toff, (uint64_t)s->gtes * 4, s->file_size)) {
            check_note(s, "grain table beyond the end of the file, entry", gi, toff);
            res->corruptions++;
            continue;
        }
        if ((ret = vmdk_gt_get(s, gi, &t)) < 0)
            return ret;
        for (uint32_t i = 0; t && i < s->gtes; i++) {
            enum vmdk_grain_state st = vmdk_gte_state(s, t[i]);
            uint64_t need = st == VMDK_GRAIN_COMPRESSED ? 12 : s->grain;
            if ((st == VMDK_GRAIN_DATA || st == VMDK_GRAIN_COMPRESSED) &&
                !ovf_range_ok((uint64_t)t[i] * BD_SECTOR, need, s->file_size)) {
                check_note(s, "grain beyond the end of the file, grain",
                           (uint64_t)gi * s->gtes + i, (uint64_t)t[i] * BD_SECTOR);
                res->corruptions++;
            }
        }
        if (t && s->rgd && s->rgd[gi] &&
            (ret = check_redundant(s, gi, t, fix & BD_CHECK_FIX_ERRORS, res)) < 0)
            return ret;
    }
    return 0;
}
