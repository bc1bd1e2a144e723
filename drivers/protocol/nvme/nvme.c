/*
 * The nvme protocol driver: nvme://hhhh:bb:ss.f/NAMESPACE (or driver=nvme,
 * device=...,namespace=N) as a block node. A thin layer over nvme/, which
 * owns the controller (VFIO, queues, commands); this file maps the node's
 * options, limits and I/O callbacks onto it.
 */
#include "core/bd.h"
#include "nvme/nvme.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NVME_DEFAULT_QUEUES 8u          /* the FUSE front-end's workers */
#define NVME_DEFAULT_TIMEOUT 30u        /* seconds per command */

struct nvme_state {
    struct nvme_ctrl *ctrl;
    const struct nvme_ident *id;
    bool write_cache_on;
};

static const char *const nvme_schemes[] = {"nvme", NULL};

static const char *const nvme_options[] = {
    "device", "namespace", "queues", "timeout", "filename", NULL,
};

static int nvme_parse_uri(const char *uri, struct bd_opts *o, struct bd_err *err)
{
    char bdf[NVME_BDF_LEN + 1], ns[16], canon[48];
    uint32_t nsid;
    int r;

    if ((r = nvme_uri_parse(uri, bdf, &nsid, err)) < 0)
        return r;
    snprintf(ns, sizeof(ns), "%u", nsid);
    snprintf(canon, sizeof(canon), "nvme://%s/%u", bdf, nsid);
    if ((r = bd_opts_set(o, "device", bdf)) < 0 ||
        (r = bd_opts_set(o, "namespace", ns)) < 0 ||
        (r = bd_opts_set(o, "filename", canon)) < 0)
        return bd_err_set(err, -r, "out of memory");
    return 0;
}

/* device= and namespace=, or the URI in filename= alone. */
static int target(const struct bd_opts *o, char bdf[NVME_BDF_LEN + 1],
                  uint32_t *nsid, struct bd_err *err)
{
    const char *dev = bd_opts_get(o, "device");
    const char *ns = bd_opts_get(o, "namespace");
    const char *fn = bd_opts_get(o, "filename");
    int r;

    *nsid = 1;
    if (!dev && fn && strncasecmp(fn, "nvme://", 7) == 0 &&
        (r = nvme_uri_parse(fn, bdf, nsid, err)) < 0)
        return r;
    if (!dev && !(fn && strncasecmp(fn, "nvme://", 7) == 0))
        return bd_err_set(err, EINVAL, "nvme: give the controller's PCI "
                          "address: device=hhhh:bb:ss.f (or nvme://hhhh:bb:"
                          "ss.f/NAMESPACE)");
    if (dev && nvme_bdf_parse(dev, strlen(dev), bdf) < 0)
        return bd_err_set(err, EINVAL, "nvme: device=%s is not a PCI address "
                          "hhhh:bb:ss.f", dev);
    if (ns && nvme_nsid_parse(ns, nsid) < 0)
        return bd_err_set(err, EINVAL, "nvme: namespace=%s: give a namespace "
                          "id from 1", ns);
    return 0;
}

static int number_opt(const struct bd_opts *o, const char *key, unsigned def,
                      unsigned max, unsigned *out, struct bd_err *err)
{
    const char *v = bd_opts_get(o, key);
    char *end;
    unsigned long x;

    *out = def;
    if (!v)
        return 0;
    x = strtoul(v, &end, 10);
    if (!*v || *end || x < 1 || x > max)
        return bd_err_set(err, EINVAL, "nvme: %s=%s: give a number from 1 to "
                          "%u", key, v, max);
    *out = (unsigned)x;
    return 0;
}

static int nvme_open_node(struct bd_node *n, const struct bd_opts *o,
                          struct bd_err *err)
{
    struct nvme_state *s = n->state;
    char bdf[NVME_BDF_LEN + 1], name[48];
    unsigned queues, timeout;
    uint32_t nsid;
    int r;

    if ((r = target(o, bdf, &nsid, err)) < 0 ||
        (r = number_opt(o, "queues", NVME_DEFAULT_QUEUES, NVME_MAX_QUEUES,
                        &queues, err)) < 0 ||
        (r = number_opt(o, "timeout", NVME_DEFAULT_TIMEOUT, 3600, &timeout,
                        err)) < 0)
        return r;
    snprintf(name, sizeof(name), "nvme://%s/%u", bdf, nsid);
    if (!n->filename && !(n->filename = strdup(name)))
        return bd_err_set(err, ENOMEM, "out of memory");
    if ((r = nvme_open(bdf, nsid, queues, timeout * 1000u, name, &s->ctrl,
                       err)) < 0)
        return r;
    s->id = nvme_ident_get(s->ctrl);
    /* a volatile write cache follows --cache: on for writeback, off so
     * that every completed write is durable for cache=none */
    if (s->id->write_cache && !n->flags.read_only) {
        struct bd_err step = { 0 };
        bool on = n->flags.cache == BD_CACHE_WRITEBACK;
        if (nvme_set_write_cache(s->ctrl, on, &step) < 0)
            log_warn("%s", step.msg);
        else
            s->write_cache_on = on;
    }
    return 0;
}

static void nvme_close_node(struct bd_node *n)
{
    struct nvme_state *s = n->state;

    nvme_close(s->ctrl);
    s->ctrl = NULL;
}

static void nvme_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct nvme_state *s = n->state;

    lim->request_alignment = s->id->lba_size;
    lim->max_transfer = nvme_max_transfer(s->ctrl);
    lim->opt_transfer = s->id->lba_size > 4096 ? s->id->lba_size : 4096;
}

static int64_t nvme_size(struct bd_node *n)
{
    struct nvme_state *s = n->state;
    return (int64_t)(s->id->blocks * s->id->lba_size);
}

static int nvme_pread_node(struct bd_node *n, void *buf, uint64_t len,
                           uint64_t off)
{
    struct nvme_state *s = n->state;
    return nvme_read(s->ctrl, buf, len, off);
}

static int nvme_pwrite_node(struct bd_node *n, const void *buf, uint64_t len,
                            uint64_t off, unsigned flags)
{
    struct nvme_state *s = n->state;
    return nvme_write(s->ctrl, buf, len, off, flags & BD_REQ_FUA);
}

static int nvme_zeroes_node(struct bd_node *n, uint64_t len, uint64_t off,
                            unsigned flags)
{
    struct nvme_state *s = n->state;
    return nvme_write_zeroes(s->ctrl, len, off, flags & BD_REQ_MAY_UNMAP);
}

static int nvme_discard_node(struct bd_node *n, uint64_t len, uint64_t off)
{
    struct nvme_state *s = n->state;
    return nvme_deallocate(s->ctrl, len, off);
}

static int nvme_flush_node(struct bd_node *n)
{
    struct nvme_state *s = n->state;
    return nvme_flush(s->ctrl);
}

static void nvme_info(struct bd_node *n, struct bd_info *info)
{
    struct nvme_state *s = n->state;
    const struct nvme_ident *id = s->id;

    bd_info_add(info, "protocol", "nvme");
    bd_info_add(info, "filename", "%s", n->filename);
    bd_info_add(info, "controller", "%s (serial %s, firmware %s, vendor "
                "%04x)", id->model, id->serial, id->firmware, id->vendor);
    bd_info_add(info, "namespace", "%u of %u", id->nsid, id->namespaces);
    bd_info_add(info, "namespace size", "%llu blocks of %u bytes",
                (unsigned long long)id->blocks, id->lba_size);
    bd_info_add(info, "lba format", "%u of %u: %u-byte blocks, no metadata",
                id->lba_format, id->lba_formats, id->lba_size);
    bd_info_add(info, "write cache", "%s", !id->write_cache ? "none"
                : s->write_cache_on ? "enabled" : "disabled");
    bd_info_add(info, "commands", "write zeroes %s, deallocate %s",
                id->has_write_zeroes ? "yes" : "no", id->has_dsm ? "yes" : "no");
    bd_info_add(info, "io queues", "%u (%s)", nvme_queue_count(s->ctrl),
                nvme_has_msix(s->ctrl) ? "polled, then MSI-X interrupts"
                                       : "polled");
    bd_info_add(info, "max transfer", "%u bytes", nvme_max_transfer(s->ctrl));
}

static const struct bd_uri_ops nvme_uri_ops = {
    .schemes = nvme_schemes,
    .parse = nvme_parse_uri,
};

const struct bd_driver bd_drv_nvme = {
    .name = "nvme",
    .kind = BD_PROTOCOL,
    .options = nvme_options,
    .state_size = sizeof(struct nvme_state),
    .parallel = true,
    .open = nvme_open_node,
    .close = nvme_close_node,
    .limits = nvme_limits,
    .size = nvme_size,
    .pread = nvme_pread_node,
    .pwrite = nvme_pwrite_node,
    .pwrite_zeroes = nvme_zeroes_node,
    .discard = nvme_discard_node,
    .flush = nvme_flush_node,
    .info = nvme_info,
    .uri = &nvme_uri_ops,
};
