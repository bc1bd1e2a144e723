/*
 * The pure parts of the NVMe driver: PCI addresses and nvme:// URIs, PRP
 * lists, completion status to errno. No device access here, so all of it
 * is unit-tested (tests/unit/test-nvme.c).
 */
#include "nvme.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)tolower((unsigned char)ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Exactly n hex digits at s; their value in *v. */
static bool hex_field(const char *s, size_t n, unsigned *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hexval(s[i]);
        if (d < 0)
            return false;
        *v = *v << 4 | (unsigned)d;
    }
    return true;
}

int nvme_bdf_parse(const char *s, size_t len, char out[NVME_BDF_LEN + 1])
{
    unsigned dom = 0, bus, slot, fn;
    const char *p = s;

    if (len == NVME_BDF_LEN) {
        if (!hex_field(p, 4, &dom) || p[4] != ':')
            return -EINVAL;
        p += 5;
    } else if (len != NVME_BDF_LEN - 5) {
        return -EINVAL;
    }
    /* bb:ss.f: slot 0..1f, function 0..7 */
    if (!hex_field(p, 2, &bus) || p[2] != ':' || !hex_field(p + 3, 2, &slot) ||
        p[5] != '.' || !hex_field(p + 6, 1, &fn) || slot > 0x1f || fn > 7)
        return -EINVAL;
    snprintf(out, NVME_BDF_LEN + 1, "%04x:%02x:%02x.%x", dom & 0xffffu,
             bus & 0xffu, slot & 0x1fu, fn & 7u);
    return 0;
}

int nvme_nsid_parse(const char *s, uint32_t *nsid)
{
    unsigned long long v = 0;

    if (!*s || strlen(s) > 10)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*p - '0');
    }
    /* 0 is no namespace, 0xffffffff means all of them */
    if (v < 1 || v > 0xfffffffeull)
        return -EINVAL;
    *nsid = (uint32_t)v;
    return 0;
}

int nvme_uri_parse(const char *uri, char bdf[NVME_BDF_LEN + 1],
                   uint32_t *nsid, struct bd_err *err)
{
    static const char usage[] = "give nvme://hhhh:bb:ss.f/NAMESPACE, e.g. "
                                "nvme://0000:01:00.0/1";
    const char *p, *slash;

    if (strncasecmp(uri, "nvme://", 7) != 0)
        return bd_err_set(err, EINVAL, "%s: not an nvme:// URI; %s", uri, usage);
    p = uri + 7;
    slash = strchr(p, '/');
    if (nvme_bdf_parse(p, slash ? (size_t)(slash - p) : strlen(p), bdf) < 0)
        return bd_err_set(err, EINVAL, "%s: '%.*s' is not a PCI address; %s",
                          uri, slash ? (int)(slash - p) : (int)strlen(p), p,
                          usage);
    *nsid = 1;
    if (!slash || !slash[1])
        return 0;
    if (nvme_nsid_parse(slash + 1, nsid) < 0)
        return bd_err_set(err, EINVAL, "%s: namespace '%s' is not a number "
                          "from 1; %s", uri, slash + 1, usage);
    return 0;
}

int nvme_prp_build(uint64_t iova, uint64_t len, uint32_t page,
                   uint64_t *list, size_t list_cap, uint64_t list_iova,
                   uint64_t *prp1, uint64_t *prp2)
{
    /* PRP1 may start inside a page; every later entry is page-aligned
     * (NVMe 1.4, 4.3) */
    uint64_t first = page - (iova & (page - 1));
    uint64_t rest, next, pages;

    *prp1 = iova;
    *prp2 = 0;
    if (len <= first)
        return 0;
    rest = len - first;
    next = iova + first;
    pages = (rest + page - 1) / page;
    if (pages == 1) {
        *prp2 = next;
        return 0;
    }
    /* one list page; no chaining (its last entry would point onwards) */
    if (pages > list_cap || pages > page / 8)
        return -EINVAL;
    for (uint64_t i = 0; i < pages; i++)
        list[i] = next + i * page;
    *prp2 = list_iova;
    return (int)pages;
}

#define SCT(st) (((st) >> 8) & 7u)
#define SC(st) ((st) & 0xffu)

int nvme_status_errno(uint16_t status)
{
    if (SCT(status) == 0) {             /* generic command status */
        switch (SC(status)) {
        case 0x00: return 0;
        case 0x01: return ENOTSUP;      /* invalid opcode */
        case 0x02: return EINVAL;       /* invalid field */
        case 0x07: return ECANCELED;    /* abort requested */
        case 0x0b: return ENODEV;       /* invalid namespace or format */
        case 0x20: return EROFS;        /* namespace write protected */
        case 0x80: return EINVAL;       /* LBA out of range */
        case 0x81: return ENOSPC;       /* capacity exceeded */
        case 0x82: return EAGAIN;       /* namespace not ready */
        default:   return EIO;
        }
    }
    if (SCT(status) == 1 && SC(status) == 0x82)
        return EROFS;                   /* write to a read-only range */
    if (SCT(status) == 2 && SC(status) == 0x86)
        return EACCES;                  /* access denied */
    return EIO;
}

const char *nvme_status_str(uint16_t status)
{
    if (SCT(status) == 0) {
        switch (SC(status)) {
        case 0x00: return "success";
        case 0x01: return "invalid command opcode";
        case 0x02: return "invalid field in command";
        case 0x04: return "data transfer error";
        case 0x06: return "internal error";
        case 0x07: return "command abort requested";
        case 0x0b: return "invalid namespace or format";
        case 0x20: return "namespace is write protected";
        case 0x80: return "LBA out of range";
        case 0x81: return "capacity exceeded";
        case 0x82: return "namespace not ready";
        default: break;
        }
    }
    if (SCT(status) == 1)
        return SC(status) == 0x82 ? "write to a read-only range"
                                  : "command specific error";
    if (SCT(status) == 2) {
        switch (SC(status)) {
        case 0x80: return "write fault";
        case 0x81: return "unrecovered read error";
        case 0x86: return "access denied";
        default: return "media or data integrity error";
        }
    }
    return "error";
}
