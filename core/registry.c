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
    bd_drv_gluster, bd_drv_nvme, bd_drv_preallocate, bd_drv_logwrites;

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
#if HAVE_DRV_LOGWRITES
    &bd_drv_logwrites,
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
        if (!drivers[i]->uri)
            continue;
        const char *const *s = drivers[i]->uri->schemes;
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
    return drv->uri && pick(drv);
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
                         drivers[i]->uri->schemes[0], suffix);
        used = w < 0 ? size : used + (size_t)w;
    }
    return listed;
}

/* ---- the contract every driver keeps (core/bd.h) ---- */

#define BROKEN(...) (snprintf(why, size, __VA_ARGS__), -EINVAL)

static bool has_write_ops(const struct bd_driver *d)
{
    return d->pwrite || d->pwrite_zeroes || d->discard || d->truncate ||
           d->create || d->pin;
}

static int check_tables(const struct bd_driver *d, char *why, size_t size)
{
    if (d->uri && (!d->uri->schemes || !d->uri->schemes[0] || !d->uri->parse))
        return BROKEN("%s: its uri table needs schemes and parse", d->name);
    if (d->files && (!d->files->create_file || !d->files->remove_file))
        return BROKEN("%s: its files table needs create_file and remove_file",
                      d->name);
    if (d->remote && (!d->remote->where || !d->remote->realpath ||
                      !d->remote->sibling))
        return BROKEN("%s: its remote table needs where, realpath and "
                      "sibling", d->name);
    if (d->remote && (!d->uri || !d->files))
        return BROKEN("%s: a remote protocol also needs the uri and files "
                      "tables (siblings are opened, made and removed by URI)",
                      d->name);
    if (d->create && !d->create->create)
        return BROKEN("%s: its create table needs create", d->name);
    if (d->pin && (!d->pin->pin || !d->pin->unpin))
        return BROKEN("%s: its pin table needs pin and unpin", d->name);
    if (d->pin && (!d->block_status || d->map_fd))
        return BROKEN("%s: pin is for formats that map through block_status, "
                      "without map_fd", d->name);
    return 0;
}

static int check_kind(const struct bd_driver *d, char *why, size_t size)
{
    switch (d->kind) {
    case BD_PROTOCOL:
        if (d->probe || d->probe_tail || d->create || d->pin || d->check ||
            d->snapshots || d->bundle_entry)
            return BROKEN("%s: a protocol has no format ops (probe, create, "
                          "pin, check, snapshots, bundle_entry)", d->name);
        if (!d->size)
            return BROKEN("%s: a protocol must give its size", d->name);
        if (d->read_only)
            return BROKEN("%s: read_only is for formats; a protocol refuses "
                          "writes by leaving pwrite NULL", d->name);
        return 0;
    case BD_FORMAT:
        if (d->bundle_entry && (!*d->bundle_entry || strchr(d->bundle_entry, '/')))
            return BROKEN("%s: bundle_entry is a file name in the directory, "
                          "without '/'", d->name);
        if ((d->uri && !d->no_file) || d->files || d->remote)
            return BROKEN("%s: a format has no protocol ops (uri, files, "
                          "remote); only a no_file format has uri", d->name);
        if (!d->probe && d->probe_tail)
            return BROKEN("%s: probe_tail without probe", d->name);
        if (d->read_only && has_write_ops(d))
            return BROKEN("%s: a read-only format has no write ops (pwrite, "
                          "pwrite_zeroes, discard, truncate, create, pin)",
                          d->name);
        if (!d->read_only && !d->pwrite)
            return BROKEN("%s: a writable format needs pwrite (or set "
                          "read_only)", d->name);
        return 0;
    case BD_FILTER:
        if (d->probe || d->probe_tail || d->uri || d->files || d->remote ||
            d->create || d->pin || d->check || d->snapshots || d->read_only ||
            d->bundle_entry)
            return BROKEN("%s: a filter only passes I/O through: no probe, "
                          "uri, files, remote, create, pin, check, snapshots, "
                          "bundle_entry or read_only", d->name);
        return 0;
    }
    return BROKEN("%s: unknown kind %d", d->name, (int)d->kind);
}

int bd_driver_contract_check(const struct bd_driver *d, char *why, size_t size)
{
    if (!d->name || !*d->name)
        return BROKEN("a driver without a name");
    if (!d->open)
        return BROKEN("%s: open is required", d->name);
    /* a filter may leave pread to core, which forwards it to n->file */
    if (!d->pread && d->kind != BD_FILTER)
        return BROKEN("%s: pread is required", d->name);
    int r = check_tables(d, why, size);
    return r < 0 ? r : check_kind(d, why, size);
}
