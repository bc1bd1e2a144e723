/*
 * vpc on-disk metadata: decoding and checking the footer (and choosing the
 * copy to trust), the virtual size rule, the dynamic disk header and the
 * block allocation table, as open loads them. Writing metadata back is
 * write.c's and create.c's job; the parent locators are parent.c's.
 */
#include "vpc.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

/* One's complement of the byte sum, skipping the checksum field (spec 2006). */
uint32_t vpc_checksum(const uint8_t *p, size_t len, size_t csum_off)
{
    uint32_t sum = 0;

    for (size_t i = 0; i < len; i++) {
        if (i < csum_off || i >= csum_off + 4)
            sum += p[i];
    }
    return ~sum;
}

void vpc_footer_decode(const uint8_t *b, struct vpc_footer *f)
{
    f->features = bd_be32(b + 8);
    f->version = bd_be32(b + 12);
    f->data_off = bd_be64(b + 16);
    f->timestamp = bd_be32(b + 24);
    memcpy(f->creator, b + 28, 4);
    f->creator[4] = 0;
    f->creator_ver = bd_be32(b + 32);
    memcpy(f->creator_os, b + 36, 4);
    f->creator_os[4] = 0;
    f->orig_size = bd_be64(b + 40);
    f->cur_size = bd_be64(b + 48);
    f->cyls = bd_be16(b + 56);
    f->heads = b[58];
    f->spt = b[59];
    f->type = bd_be32(b + 60);
    f->checksum = bd_be32(b + 64);
    memcpy(f->uuid, b + 68, 16);
}

static void vpc_dyn_decode(const uint8_t *b, struct vpc_dyn *d)
{
    d->data_off = bd_be64(b + 8);
    d->table_off = bd_be64(b + 16);
    d->version = bd_be32(b + 24);
    d->bat_entries = bd_be32(b + 28);
    d->block_size = bd_be32(b + 32);
    d->checksum = bd_be32(b + 36);
    memcpy(d->parent_uuid, b + 40, 16);
    d->parent_time = bd_be32(b + 56);
}

bool vpc_is_footer(const uint8_t *b)
{
    return memcmp(b, "conectix", 8) == 0;
}

static bool vpc_chs_is_max(const struct vpc_footer *f)
{
    return f->cyls == 65535 && f->heads == 16 && f->spt == 255;
}

int vpc_footer_read(struct bd_node *file, uint64_t fsize, uint8_t *raw,
                    bool *at_start)
{
    int r;

    *at_start = false;
    r = bd_pread(file, raw, VPC_FOOTER_SIZE, fsize - VPC_FOOTER_SIZE);
    if (r < 0 || vpc_is_footer(raw))
        return r;
    *at_start = true;
    return bd_pread(file, raw, VPC_FOOTER_SIZE, 0);
}

/* Find and check the footer: the trailing copy first, then the one at 0. */
int vpc_load_footer(struct bd_node *n, uint64_t fsize,
                    const struct vpc_open_opts *oo, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint32_t sum;
    int r;

    if (fsize < VPC_FOOTER_SIZE)
        return bd_err_set(err, EINVAL, "%s: file is too small to be a vhd image "
                          "(%llu bytes)", n->name, (unsigned long long)fsize);
    s->footer_off = fsize - VPC_FOOTER_SIZE;
    r = vpc_footer_read(n->file, fsize, s->footer_raw, &s->end_footer_bad);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the vhd %s: %s", n->name,
                          s->end_footer_bad ? "header" : "footer", strerror(-r));
    if (!vpc_is_footer(s->footer_raw))
        return bd_err_set(err, EINVAL, "%s: not a vhd image (no 'conectix' "
                          "footer at the end or the start)", n->name);
    vpc_footer_decode(s->footer_raw, &s->ft);
    sum = vpc_checksum(s->footer_raw, VPC_FOOTER_SIZE, 64);
    if (sum != s->ft.checksum) {
        if (oo->ignore_checksum) {
            log_warn("%s: ignoring vhd footer checksum mismatch", n->name);
        } else if (n->flags.read_only) {
            /* some writers leave the sum stale (dfvfs' samples, which
             * libvhdi reads): judged with the other fields at the end */
            s->ft_sum_bad = true;
            s->ft_sum = sum;
        } else {
            return bd_err_set(err, EINVAL, "%s: vhd footer checksum mismatch "
                              "(stored 0x%08x, computed 0x%08x); the image may be "
                              "damaged, use -o ignore_checksum=on to read it anyway",
                              n->name, s->ft.checksum, sum);
        }
    }
    if (s->ft.type != VPC_TYPE_FIXED && s->ft.type != VPC_TYPE_DYNAMIC &&
        s->ft.type != VPC_TYPE_DIFF)
        return bd_err_set(err, ENOTSUP, "%s: vhd disk type %u is not supported "
                          "(only fixed, dynamic and differencing)",
                          n->name, s->ft.type);
    if (s->end_footer_bad && s->ft.type == VPC_TYPE_FIXED)
        return bd_err_set(err, EINVAL, "%s: fixed vhd without a footer at the end",
                          n->name);
    return 0;
}

/*
 * Virtual size. Virtual PC and QEMU ("vpc ", "qemu") size disks by their CHS
 * geometry; Hyper-V ("win "), Disk2VHD ("d2v"), XenServer and QEMU with
 * force_size ("qem2") by the footer's current size. A maximal geometry
 * cannot describe the disk, so current size wins there too.
 */
int vpc_compute_size(struct bd_node *n, const struct vpc_open_opts *oo,
                     struct bd_err *err)
{
    struct vpc_state *s = n->state;
    const struct vpc_footer *f = &s->ft;
    uint64_t chs = (uint64_t)f->cyls * f->heads * f->spt;
    bool use_chs;

    if (oo->size_calc >= 0)
        use_chs = oo->size_calc == 0;
    else
        use_chs = memcmp(f->creator, "vpc ", 4) == 0 ||
                  memcmp(f->creator, "qemu", 4) == 0;
    if (vpc_chs_is_max(f))
        use_chs = false;
    s->size_from_chs = use_chs;
    s->size = use_chs ? chs * BD_SECTOR : bd_align_down(f->cur_size, BD_SECTOR);
    if (s->ft.type != VPC_TYPE_FIXED && s->size / BD_SECTOR > VPC_MAX_SECTORS)
        return bd_err_set(err, EFBIG, "%s: virtual size %llu is larger than a "
                          "vhd can be (2040 GiB)", n->name,
                          (unsigned long long)s->size);
    return 0;
}

int vpc_load_dyn(struct bd_node *n, uint64_t fsize,
                 const struct vpc_open_opts *oo, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint8_t raw[VPC_DYN_SIZE];
    uint32_t sum;
    int r;

    /* a header cut short by the end of the file reads as zeroes there and
     * fails the checks below with a message that says what is wrong */
    if (s->ft.data_off >= fsize || s->ft.data_off % BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: dynamic disk header offset %llu lies "
                          "beyond the end of the file", n->name,
                          (unsigned long long)s->ft.data_off);
    r = bd_pread(n->file, raw, VPC_DYN_SIZE, s->ft.data_off);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the dynamic disk header: %s",
                          n->name, strerror(-r));
    if (memcmp(raw, "cxsparse", 8) != 0)
        return bd_err_set(err, EINVAL, "%s: no dynamic disk header ('cxsparse') "
                          "at offset %llu", n->name,
                          (unsigned long long)s->ft.data_off);
    vpc_dyn_decode(raw, &s->dyn);
    if (s->dyn.bat_entries > VPC_MAX_BAT_ENTRIES)
        return bd_err_set(err, EINVAL, "%s: max table entries too large (%u, at "
                          "most %u supported)", n->name, s->dyn.bat_entries,
                          VPC_MAX_BAT_ENTRIES);
    s->block_size = s->dyn.block_size;
    if (!bd_is_pow2(s->block_size) || s->block_size < BD_SECTOR ||
        s->block_size > VPC_MAX_BLOCK_SIZE)
        return bd_err_set(err, EINVAL, "%s: invalid vhd block size %u (a power of "
                          "two from 512 bytes to 256 MiB expected)", n->name,
                          s->block_size);
    s->bitmap_size = (uint32_t)bd_align_up(s->block_size / BD_SECTOR / 8, BD_SECTOR);
    if ((uint64_t)s->dyn.bat_entries * s->block_size < s->size)
        return bd_err_set(err, EINVAL, "%s: block allocation table too small: %u "
                          "entries of %u bytes cannot hold the %llu-byte disk",
                          n->name, s->dyn.bat_entries, s->block_size,
                          (unsigned long long)s->size);
    if (!ovf_range_ok(s->dyn.table_off, (uint64_t)s->dyn.bat_entries * 4, fsize))
        return bd_err_set(err, EINVAL, "%s: block allocation table (%u entries at "
                          "offset %llu) lies beyond the end of the file", n->name,
                          s->dyn.bat_entries, (unsigned long long)s->dyn.table_off);
    sum = vpc_checksum(raw, VPC_DYN_SIZE, 36);
    if (sum != s->dyn.checksum) {
        if (oo->ignore_checksum) {
            log_warn("%s: ignoring vhd dynamic header checksum mismatch", n->name);
        } else if (n->flags.read_only) {
            s->dyn_sum_bad = true;
            s->dyn_sum = sum;
        } else {
            return bd_err_set(err, EINVAL, "%s: vhd dynamic header checksum "
                              "mismatch (stored 0x%08x, computed 0x%08x); the image "
                              "may be damaged, use -o ignore_checksum=on to read it "
                              "anyway", n->name, s->dyn.checksum, sum);
        }
    }
    return 0;
}

int vpc_load_bat(struct bd_node *n, uint64_t fsize, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint64_t nblocks = (s->size + s->block_size - 1) / s->block_size;
    int r;

    r = bd_read_u32_table(n->file, s->dyn.table_off, s->dyn.bat_entries, true,
                          &s->bat, n->name, "block allocation table", err);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < s->dyn.bat_entries; i++) {
        uint32_t e = s->bat[i];
        uint64_t need;

        if (e == VPC_BAT_UNUSED || i >= nblocks)
            continue;
        /* the last block may stop at the end of the disk */
        need = s->size - (uint64_t)i * s->block_size;
        if (need > s->block_size)
            need = s->block_size;
        if (!ovf_range_ok(vpc_block_data_off(s, e), need, fsize))
            return bd_err_set(err, EINVAL, "%s: block %u at offset %llu lies "
                              "beyond the end of the file (%llu bytes)", n->name, i,
                              (unsigned long long)e * BD_SECTOR,
                              (unsigned long long)fsize);
    }
    return 0;
}

/* What is wrong with the footer and dynamic header beyond their checksums,
 * in words for a message, or NULL when they agree with each other. */
static const char *vpc_inconsistent_field(const struct vpc_state *s)
{
    const struct vpc_footer *f = &s->ft;
    uint64_t chs = (uint64_t)f->cyls * f->heads * f->spt * BD_SECTOR;

    if (f->version != 0x00010000)
        return "footer version is not 1.0";
    if (f->cur_size == 0 || f->cur_size % BD_SECTOR)
        return "footer's current size is not a whole number of sectors";
    if (chs > f->cur_size && !vpc_chs_is_max(f))
        return "footer's geometry is larger than its current size";
    if (f->type == VPC_TYPE_FIXED)
        return f->data_off == UINT64_MAX ? NULL
                                         : "fixed disk's footer has a data offset";
    if (f->data_off + VPC_DYN_SIZE > s->footer_off)
        return "dynamic disk header overlaps the footer";
    if (s->dyn.data_off != UINT64_MAX)
        return "dynamic header's unused data offset is set";
    if (s->dyn.version != 0x00010000)
        return "dynamic header version is not 1.0";
    return NULL;
}

int vpc_judge_checksums(struct bd_node *n, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    const char *bad = vpc_inconsistent_field(s);
    char what[160] = "", dyn[96] = "";

    if (!s->ft_sum_bad && !s->dyn_sum_bad)
        return 0;
    if (s->ft_sum_bad)
        snprintf(what, sizeof(what), "footer checksum mismatch (stored 0x%08x, "
                 "computed 0x%08x)", s->ft.checksum, s->ft_sum);
    if (s->dyn_sum_bad)
        snprintf(dyn, sizeof(dyn), "%sdynamic header checksum mismatch (stored "
                 "0x%08x, computed 0x%08x)", s->ft_sum_bad ? " and " : "",
                 s->dyn.checksum, s->dyn_sum);
    if (bad)
        return bd_err_set(err, EINVAL, "%s: vhd %s%s, and the %s; the image is "
                          "damaged, use -o ignore_checksum=on to read it anyway",
                          n->name, what, dyn, bad);
    log_warn("%s: vhd %s%s; the other fields are consistent, reading it "
             "read-only", n->name, what, dyn);
    return 0;
}
