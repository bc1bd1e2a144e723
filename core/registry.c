/*
 * Every driver imgfuse knows, in one table. Optional drivers are guarded by
 * HAVE_DRV_<NAME> from config.h: 1 when the source is present and its
 * libraries were found, else 0 (meson leaves the driver out with a message).
 * Order matters only for listings; probing picks the highest score and a
 * tie is a bug (tests/unit/test-probe.c).
 */
#include "config.h"
#include "registry.h"

#include <stdio.h>
#include <string.h>

extern const struct bd_driver bd_drv_file, bd_drv_host_device, bd_drv_host_cdrom,
    bd_drv_raw, bd_drv_qcow2, bd_drv_qed, bd_drv_qcow, bd_drv_luks, bd_drv_vdi,
    bd_drv_vmdk, bd_drv_vpc, bd_drv_vhdx, bd_drv_bochs, bd_drv_cloop, bd_drv_dmg,
    bd_drv_parallels, bd_drv_vvfat, bd_drv_nbd, bd_drv_iscsi, bd_drv_ssh,
    bd_drv_gluster, bd_drv_nvme, bd_drv_preallocate;

static const struct bd_driver *const drivers[] = {
#if HAVE_DRV_QCOW2
    &bd_drv_qcow2,
#endif
#if HAVE_DRV_QED
    &bd_drv_qed,
#endif
#if HAVE_DRV_QCOW
    &bd_drv_qcow,
#endif
#if HAVE_DRV_LUKS
    &bd_drv_luks,
#endif
#if HAVE_DRV_VDI
    &bd_drv_vdi,
#endif
#if HAVE_DRV_VMDK
    &bd_drv_vmdk,
#endif
#if HAVE_DRV_VPC
    &bd_drv_vpc,
#endif
#if HAVE_DRV_VHDX
    &bd_drv_vhdx,
#endif
#if HAVE_DRV_BOCHS
    &bd_drv_bochs,
#endif
#if HAVE_DRV_CLOOP
    &bd_drv_cloop,
#endif
#if HAVE_DRV_DMG
    &bd_drv_dmg,
#endif
#if HAVE_DRV_PARALLELS
    &bd_drv_parallels,
#endif
#if HAVE_DRV_VVFAT
    &bd_drv_vvfat,
#endif
    &bd_drv_file, &bd_drv_host_device, &bd_drv_host_cdrom,
#if HAVE_DRV_NBD
    &bd_drv_nbd,
#endif
#if HAVE_DRV_ISCSI
    &bd_drv_iscsi,
#endif
#if HAVE_DRV_SSH
    &bd_drv_ssh,
#endif
#if HAVE_DRV_GLUSTER
    &bd_drv_gluster,
#endif
#if HAVE_DRV_NVME
    &bd_drv_nvme,
#endif
#if HAVE_DRV_PREALLOCATE
    &bd_drv_preallocate,
#endif
    &bd_drv_raw,                    /* probe score 1: the fallback */
};

const struct bd_driver *bd_driver_find(const char *name)
{
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    }
    return NULL;
}

const struct bd_driver *bd_driver_for_scheme(const char *scheme)
{
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
        const char *const *s = drivers[i]->schemes;
        for (; s && *s; s++) {
            if (strcasecmp(*s, scheme) == 0)
                return drivers[i];
        }
    }
    return NULL;
}

const struct bd_driver *const *bd_driver_all(size_t *count)
{
    *count = sizeof(drivers) / sizeof(drivers[0]);
    return drivers;
}

static bool has_scheme_and(const struct bd_driver *drv,
                           bool (*pick)(const struct bd_driver *drv))
{
    return drv->schemes && drv->schemes[0] && pick(drv);
}

size_t bd_driver_scheme_list(char *buf, size_t size, const char *suffix,
                             bool (*pick)(const struct bd_driver *drv))
{
    size_t n = sizeof(drivers) / sizeof(drivers[0]), total = 0, listed = 0;
    size_t used = 0;

    for (size_t i = 0; i < n; i++)
        total += has_scheme_and(drivers[i], pick);
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!has_scheme_and(drivers[i], pick))
            continue;
        listed++;
        if (used + 1 >= size)
            continue;
        int w = snprintf(buf + used, size - used, "%s%s%s",
                         listed == 1 ? "" : listed == total ? " and " : ", ",
                         drivers[i]->schemes[0], suffix);
        used = w < 0 ? size : used + (size_t)w;
    }
    return listed;
}
