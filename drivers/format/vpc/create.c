/*
 * vpc image creation (`imgfuse create`): the CHS geometry QEMU would pick,
 * the footer, and for dynamic disks the header and an empty BAT. Opening
 * and growing images is the rest of the driver's job.
 */
#include "vpc.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char *const vpc_subformats[] = { "dynamic", "fixed", NULL };

/*
 * The CHS geometry for a sector count, as the VHD specification's appendix
 * computes it. Sizes that need more than 65535/16/255 get the maximum.
 */
void vpc_chs_for(uint64_t sectors, uint16_t *c, uint8_t *h, uint8_t *s)
{
    uint64_t cth;
    unsigned spt, heads;

    if (sectors > VPC_CHS_MAX_SECTORS)
        sectors = VPC_CHS_MAX_SECTORS;
    if (sectors >= 65535ull * 16 * 63) {
        spt = 255;
        heads = 16;
        cth = sectors / spt;
    } else {
        spt = 17;
        cth = sectors / spt;
        heads = (unsigned)((cth + 1023) / 1024);
        if (heads < 4)
            heads = 4;
        if (cth >= heads * 1024ull || heads > 16) {
            spt = 31;
            heads = 16;
            cth = sectors / spt;
        }
        if (cth >= heads * 1024ull) {
            spt = 63;
            heads = 16;
            cth = sectors / spt;
        }
    }
    *c = (uint16_t)(cth / heads);
    *h = (uint8_t)heads;
    *s = (uint8_t)spt;
}

static void vpc_footer_build(uint8_t *b, uint32_t type, uint64_t size,
                             uint16_t c, uint8_t h, uint8_t spt, bool force)
{
    memset(b, 0, VPC_FOOTER_SIZE);
    memcpy(b, "conectix", 8);
    bd_put_be32(b + 8, 2);                      /* reserved bit, always set */
    bd_put_be32(b + 12, 0x00010000);
    bd_put_be64(b + 16, type == VPC_TYPE_FIXED ? UINT64_MAX : VPC_FOOTER_SIZE);
    bd_put_be32(b + 24, (uint32_t)(time(NULL) - VPC_EPOCH));
    /* QEMU sizes "qemu" disks by CHS and "qem2" by current size */
    memcpy(b + 28, force ? "qem2" : "qemu", 4);
    bd_put_be32(b + 32, 0x00050003);
    memcpy(b + 36, "Wi2k", 4);
    bd_put_be64(b + 40, size);
    bd_put_be64(b + 48, size);
    bd_put_be16(b + 56, c);
    b[58] = h;
    b[59] = spt;
    bd_put_be32(b + 60, type);
    if (getrandom(b + 68, 16, 0) != 16) {
        for (int i = 0; i < 16; i++)
            b[68 + i] = (uint8_t)rand();
    }
    b[68 + 6] = (uint8_t)((b[68 + 6] & 0x0f) | 0x40);
    b[68 + 8] = (uint8_t)((b[68 + 8] & 0x3f) | 0x80);
    bd_put_be32(b + 64, vpc_checksum(b, VPC_FOOTER_SIZE, 64));
}

int vpc_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
               struct bd_err *err)
{
    uint8_t footer[VPC_FOOTER_SIZE], dyn[VPC_DYN_SIZE];
    uint64_t sectors = size / BD_SECTOR, entries, bat_bytes, total;
    uint16_t c = 0;
    uint8_t h = 0, spt = 0;
    bool force = false;
    uint8_t *bat;
    int type, r;

    type = bd_opts_get_enum(o, "subformat", vpc_subformats, 0, err);
    if (type < 0)
        return type;
    r = bd_opts_get_bool(o, "force_size", false, &force, err);
    if (r < 0 && r != -ENOENT)
        return r;
    if (size % BD_SECTOR)
        sectors++;
    if (force) {
        c = 65535;
        h = 16;
        spt = 255;
    } else {
        /* the smallest geometry that holds the size: QEMU rounds up too */
        for (uint64_t i = 0; sectors > (uint64_t)c * h * spt; i++) {
            if (sectors + i > VPC_CHS_MAX_SECTORS) {
                c = 65535;
                h = 16;
                spt = 255;
                break;
            }
            vpc_chs_for(sectors + i, &c, &h, &spt);
        }
    }
    total = (uint64_t)c * h * spt;
    if (total == VPC_CHS_MAX_SECTORS)
        total = sectors;
    if (total > VPC_MAX_SECTORS)
        return bd_err_set(err, EFBIG, "disk size %llu is too large for vhd (at "
                          "most 2040 GiB)", (unsigned long long)size);
    size = total * BD_SECTOR;
    vpc_footer_build(footer, type == 1 ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC, size,
                     c, h, spt, force);

    if (type == 1) {
        r = bd_truncate(file, size + VPC_FOOTER_SIZE, BD_PREALLOC_OFF, err);
        if (r < 0)
            return r;
        r = bd_pwrite(file, footer, VPC_FOOTER_SIZE, size, 0);
        if (r < 0)
            return bd_err_set(err, -r, "cannot write the vhd footer: %s",
                              strerror(-r));
        return 0;
    }

    entries = (size + VPC_DEFAULT_BLOCK - 1) / VPC_DEFAULT_BLOCK;
    bat_bytes = bd_align_up(entries * 4, BD_SECTOR);
    memset(dyn, 0, sizeof(dyn));
    memcpy(dyn, "cxsparse", 8);
    bd_put_be64(dyn + 8, UINT64_MAX);
    bd_put_be64(dyn + 16, VPC_FOOTER_SIZE + VPC_DYN_SIZE);
    bd_put_be32(dyn + 24, 0x00010000);
    bd_put_be32(dyn + 28, (uint32_t)entries);
    bd_put_be32(dyn + 32, VPC_DEFAULT_BLOCK);
    bd_put_be32(dyn + 36, vpc_checksum(dyn, VPC_DYN_SIZE, 36));
    bat = malloc(bat_bytes ? bat_bytes : 1);
    if (!bat)
        return bd_err_set(err, ENOMEM, "no memory for the block allocation table");
    memset(bat, 0xff, bat_bytes);
    r = bd_truncate(file, VPC_FOOTER_SIZE + VPC_DYN_SIZE + bat_bytes + VPC_FOOTER_SIZE,
                    BD_PREALLOC_OFF, err);
    if (r == 0)
        r = bd_pwrite(file, footer, VPC_FOOTER_SIZE, 0, 0);
    if (r == 0)
        r = bd_pwrite(file, dyn, VPC_DYN_SIZE, VPC_FOOTER_SIZE, 0);
    if (r == 0)
        r = bd_pwrite(file, bat, bat_bytes, VPC_FOOTER_SIZE + VPC_DYN_SIZE, 0);
    if (r == 0)
        r = bd_pwrite(file, footer, VPC_FOOTER_SIZE,
                      VPC_FOOTER_SIZE + VPC_DYN_SIZE + bat_bytes, 0);
    free(bat);
    if (r < 0 && !err->errnum)
        bd_err_set(err, -r, "cannot write the vhd metadata: %s", strerror(-r));
    return r;
}
