/*
 * VFIO for one PCI function: the type1 container, the device's IOMMU group,
 * the device fd, BAR0 mapped, bus mastering, the usable IOVA ranges and
 * DMA mappings in them. Each failure says what to do about it (bind the
 * device, turn the IOMMU on, free the group). No NVMe knowledge here.
 */
#include "nvme-int.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define SYSFS_PCI "/sys/bus/pci/devices/"
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

void *nvme_dma_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void nvme_dma_free(void *p, size_t len)
{
    if (p)
        munmap(p, len);
}

/* The basename of the symlink at path into out ("" when there is none). */
static void link_base(const char *path, char *out, size_t size)
{
    char buf[PATH_MAX];
    ssize_t k = readlink(path, buf, sizeof(buf) - 1);
    const char *b;

    out[0] = '\0';
    if (k <= 0)
        return;
    buf[k] = '\0';
    b = strrchr(buf, '/');
    b = b ? b + 1 : buf;
    k = (ssize_t)strlen(b);
    if ((size_t)k >= size)
        k = (ssize_t)size - 1;
    memcpy(out, b, (size_t)k);
    out[k] = '\0';
}

static void read_id(const char *bdf, const char *what, char out[8])
{
    char path[128];
    FILE *f;

    snprintf(out, 8, "VVVV");
    snprintf(path, sizeof(path), SYSFS_PCI "%s/%s", bdf, what);
    if ((f = fopen(path, "r"))) {
        unsigned v;
        if (fscanf(f, "%x", &v) == 1)
            snprintf(out, 8, "%04x", v & 0xffffu);
        fclose(f);
    }
}

static int group_number(const char *bdf, const char *name, int *no,
                        struct bd_err *err)
{
    char path[128], grp[32];

    snprintf(path, sizeof(path), SYSFS_PCI "%s/iommu_group", bdf);
    link_base(path, grp, sizeof(grp));
    if (!grp[0])
        return bd_err_set(err, ENODEV, "%s: PCI device %s has no IOMMU group: "
                          "the IOMMU is off; turn on VT-d or AMD-Vi in the "
                          "firmware and boot with intel_iommu=on (or "
                          "amd_iommu=on)", name, bdf);
    *no = atoi(grp);
    return 0;
}

/* The device exists, has an IOMMU group (*group) and vfio-pci has it;
 * else what to do: turn the IOMMU on, or the commands to bind it. */
static int check_binding(const char *bdf, const char *name, int *group,
                         struct bd_err *err)
{
    char path[128], drv[64], ven[8], dev[8], unbind[160] = "", state[128];
    int r;

    snprintf(path, sizeof(path), SYSFS_PCI "%s", bdf);
    if (access(path, F_OK) != 0)
        return bd_err_set(err, ENODEV, "%s: no PCI device %s on this machine "
                          "(lspci -D lists the addresses)", name, bdf);
    if ((r = group_number(bdf, name, group, err)) < 0)
        return r;
    snprintf(path, sizeof(path), SYSFS_PCI "%s/driver", bdf);
    link_base(path, drv, sizeof(drv));
    if (strcmp(drv, "vfio-pci") == 0)
        return 0;
    read_id(bdf, "vendor", ven);
    read_id(bdf, "device", dev);
    if (drv[0])
        snprintf(unbind, sizeof(unbind), "  echo %s > " SYSFS_PCI
                 "%s/driver/unbind\n", bdf, bdf);
    if (drv[0])
        snprintf(state, sizeof(state), "is bound to '%s', not to vfio-pci",
                 drv);
    else
        snprintf(state, sizeof(state), "is not bound to vfio-pci");
    return bd_err_set(err, ENODEV, "%s: PCI device %s %s; hand it over (it "
                      "leaves its driver, and its data is then only "
                      "imgfuse's) with:\n"
                      "  modprobe vfio-pci\n%s"
                      "  echo %s %s > /sys/bus/pci/drivers/vfio-pci/new_id",
                      name, bdf, state, unbind, ven, dev);
}

/* A group that is not viable: name its devices not bound to vfio-pci. */
static int not_viable(int no, const char *bdf, const char *name,
                      struct bd_err *err)
{
    char path[PATH_MAX], drv[64], list[512] = "";
    size_t used = 0;
    struct dirent *e;
    DIR *d;

    snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/devices", no);
    if ((d = opendir(path))) {
        while ((e = readdir(d)) && used < sizeof(list) - 64) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%d/devices/"
                     "%s/driver", no, e->d_name);
            link_base(path, drv, sizeof(drv));
            if (drv[0] && strcmp(drv, "vfio-pci") != 0)
                used += (size_t)snprintf(list + used, sizeof(list) - used,
                                         "%s%s (bound to %s)", used ? ", " : "",
                                         e->d_name, drv);
        }
        closedir(d);
    }
    return bd_err_set(err, EBUSY, "%s: IOMMU group %d of %s is not viable: "
                      "every device in it must be bound to vfio-pci or to no "
                      "driver; unbind %s", name, no, bdf,
                      used ? list : "the other devices of the group");
}

static int open_container(struct nvme_vfio *v, const char *name,
                          struct bd_err *err)
{
    v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (v->container < 0)
        return bd_err_set(err, errno, "%s: cannot open /dev/vfio/vfio: %s%s",
                          name, strerror(errno), errno == ENOENT ?
                          "; load the vfio-pci module (modprobe vfio-pci)" : "");
    if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
        return bd_err_set(err, ENOTSUP, "%s: the kernel's VFIO API version is "
                          "not %d", name, VFIO_API_VERSION);
    if (ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) <= 0)
        return bd_err_set(err, ENOTSUP, "%s: the kernel's VFIO has no type1 "
                          "IOMMU (no-IOMMU mode cannot be used: the device "
                          "needs DMA through an IOMMU)", name);
    return 0;
}

static int open_group(struct nvme_vfio *v, const char *bdf, const char *name,
                      struct bd_err *err)
{
    struct vfio_group_status st = { .argsz = sizeof(st) };
    char path[64];

    snprintf(path, sizeof(path), "/dev/vfio/%d", v->group_no);
    v->group = open(path, O_RDWR | O_CLOEXEC);
    if (v->group < 0 && errno == EBUSY)
        return bd_err_set(err, EBUSY, "%s: device busy: %s (IOMMU group %d) "
                          "is in use by another process (another imgfuse or "
                          "a virtual machine); stop it first", name, bdf,
                          v->group_no);
    if (v->group < 0)
        return bd_err_set(err, errno, "%s: cannot open %s: %s", name, path,
                          strerror(errno));
    if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &st) < 0)
        return bd_err_set(err, errno, "%s: %s: cannot get the group status: %s",
                          name, path, strerror(errno));
    if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
        return not_viable(v->group_no, bdf, name, err);
    if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0 ||
        ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0)
        return bd_err_set(err, errno, "%s: cannot attach IOMMU group %d to a "
                          "type1 container: %s", name, v->group_no,
                          strerror(errno));
    return 0;
}

/* The usable IOVA ranges from the capability chain; QEMU's fallback
 * [64 KiB, 2^39) when the kernel gives none. */
static void iova_ranges(struct nvme_vfio *v)
{
    struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) };
    struct vfio_iommu_type1_info *info = NULL;
    uint32_t off;

    v->iova_ranges = 0;
    if (ioctl(v->container, VFIO_IOMMU_GET_INFO, &probe) == 0 &&
        probe.argsz > sizeof(probe) && (info = calloc(1, probe.argsz))) {
        info->argsz = probe.argsz;
        if (ioctl(v->container, VFIO_IOMMU_GET_INFO, info) < 0 ||
            !(info->flags & VFIO_IOMMU_INFO_CAPS))
            info->cap_offset = 0;
        for (off = info->cap_offset; off && off + 16 <= info->argsz;) {
            struct vfio_info_cap_header *h = (void *)((char *)info + off);
            if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
                struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
                for (uint32_t i = 0; i < r->nr_iovas &&
                     v->iova_ranges < NVME_MAX_IOVA_RANGES &&
                     off + sizeof(*r) + (i + 1) * sizeof(r->iova_ranges[0])
                         <= info->argsz; i++) {
                    v->iova[v->iova_ranges].start = r->iova_ranges[i].start;
                    v->iova[v->iova_ranges++].end = r->iova_ranges[i].end;
                }
            }
            if (h->next <= off)
                break;
            off = h->next;
        }
        free(info);
    }
    if (v->iova_ranges == 0) {
        v->iova[0].start = 0x10000;
        v->iova[0].end = (1ull << 39) - 1;
        v->iova_ranges = 1;
    }
    v->range = 0;
    v->next_iova = v->iova[0].start < 0x10000 ? 0x10000 : v->iova[0].start;
    v->next_iova = (v->next_iova + NVME_PAGE - 1) & ~(uint64_t)(NVME_PAGE - 1);
}

static int open_device(struct nvme_vfio *v, const char *bdf, const char *name,
                       struct bd_err *err)
{
    struct vfio_region_info bar = { .argsz = sizeof(bar),
                                    .index = VFIO_PCI_BAR0_REGION_INDEX };
    struct vfio_region_info cfg = { .argsz = sizeof(cfg),
                                    .index = VFIO_PCI_CONFIG_REGION_INDEX };
    uint16_t cmd;
    void *p;

    v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
    if (v->device < 0)
        return bd_err_set(err, errno, "%s: cannot get the VFIO device %s: %s",
                          name, bdf, strerror(errno));
    if (ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0 ||
        ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
        return bd_err_set(err, errno, "%s: cannot get the PCI regions of %s: "
                          "%s", name, bdf, strerror(errno));
    if (bar.size < 0x2000 || !(bar.flags & VFIO_REGION_INFO_FLAG_MMAP))
        return bd_err_set(err, ENODEV, "%s: BAR0 of %s (%llu bytes) cannot be "
                          "mapped: is it an NVMe controller?", name, bdf,
                          (unsigned long long)bar.size);
    p = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device,
             (off_t)bar.offset);
    if (p == MAP_FAILED)
        return bd_err_set(err, errno, "%s: cannot map BAR0 of %s: %s", name,
                          bdf, strerror(errno));
    v->bar0 = p;
    v->bar0_size = bar.size;
    v->config_off = cfg.offset;
    /* the device must master the bus to reach the queues (DMA) */
    if (pread(v->device, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
        return bd_err_set(err, EIO, "%s: cannot read the PCI command register "
                          "of %s", name, bdf);
    cmd = (uint16_t)(bd_le16(&cmd) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    bd_put_le16(&cmd, cmd);
    if (pwrite(v->device, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
        return bd_err_set(err, EIO, "%s: cannot enable bus mastering on %s",
                          name, bdf);
    return 0;
}

int nvme_vfio_open(struct nvme_vfio *v, const char *bdf, const char *name,
                   struct bd_err *err)
{
    int r;

    v->container = v->group = v->device = -1;
    v->bar0 = NULL;
    if ((r = check_binding(bdf, name, &v->group_no, err)) < 0 ||
        (r = open_container(v, name, err)) < 0 ||
        (r = open_group(v, bdf, name, err)) < 0 ||
        (r = open_device(v, bdf, name, err)) < 0)
        return r;
    iova_ranges(v);
    return 0;
}

void nvme_vfio_close(struct nvme_vfio *v)
{
    if (v->bar0)
        munmap((void *)v->bar0, v->bar0_size);
    v->bar0 = NULL;
    if (v->device >= 0)
        close(v->device);
    if (v->group >= 0)
        close(v->group);
    if (v->container >= 0)
        close(v->container);
    v->device = v->group = v->container = -1;
}

int nvme_vfio_irqs(struct nvme_vfio *v, const int *fds, unsigned count)
{
    struct vfio_irq_info info = { .argsz = sizeof(info),
                                  .index = VFIO_PCI_MSIX_IRQ_INDEX };
    size_t len = sizeof(struct vfio_irq_set) + count * sizeof(int);
    struct vfio_irq_set *set;
    int r = 0;

    if (ioctl(v->device, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0)
        return -errno;
    if (info.count < count || !(info.flags & VFIO_IRQ_INFO_EVENTFD))
        return -ENOTSUP;
    if (!(set = calloc(1, len)))
        return -ENOMEM;
    set->argsz = (uint32_t)len;
    set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    set->index = VFIO_PCI_MSIX_IRQ_INDEX;
    set->start = 0;
    set->count = count;
    memcpy(set->data, fds, count * sizeof(int));
    if (ioctl(v->device, VFIO_DEVICE_SET_IRQS, set) < 0)
        r = -errno;
    free(set);
    return r;
}

int nvme_vfio_map(struct nvme_vfio *v, void *buf, size_t len, uint64_t *iova)
{
    struct vfio_iommu_type1_dma_map m = {
        .argsz = sizeof(m),
        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        .vaddr = (uintptr_t)buf,
        .size = len,
    };

    /* a bump allocator over the ranges: the pool is mapped once at open */
    while (v->range < v->iova_ranges &&
           (v->next_iova > v->iova[v->range].end ||
            v->iova[v->range].end - v->next_iova + 1 < len)) {
        if (++v->range < v->iova_ranges)
            v->next_iova = v->iova[v->range].start < 0x10000
                               ? 0x10000 : v->iova[v->range].start;
        v->next_iova = (v->next_iova + NVME_PAGE - 1) & ~(uint64_t)(NVME_PAGE - 1);
    }
    if (v->range >= v->iova_ranges)
        return -ENOSPC;
    m.iova = v->next_iova;
    if (m.iova & (NVME_PAGE - 1))
        return -EINVAL;
    if (ioctl(v->container, VFIO_IOMMU_MAP_DMA, &m) < 0)
        return -errno;
    *iova = m.iova;
    v->next_iova += len;
    return 0;
}
