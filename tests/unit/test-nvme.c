/*
 * Unit tests of the pure parts of the NVMe driver: PCI addresses and
 * nvme:// URIs (also through core's source parsing), PRP entries and
 * lists, and completion status to errno. The device itself is tested in a
 * guest by tests/integration/nvme/test-nvme-guest.sh.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/bd-internal.h"
#include "core/registry.h"
#include "nvme/nvme.h"

static char bdf[NVME_BDF_LEN + 1];
static uint32_t nsid;
static struct bd_err err;

static int uri(const char *s)
{
    bd_err_clear(&err);
    memset(bdf, 0, sizeof(bdf));
    nsid = 0;
    return nvme_uri_parse(s, bdf, &nsid, &err);
}

Test(nvme_uri, address_and_namespace)
{
    cr_assert_eq(uri("nvme://0000:44:00.0/2"), 0, "%s", err.msg);
    cr_assert_str_eq(bdf, "0000:44:00.0");
    cr_assert_eq(nsid, 2);
}

Test(nvme_uri, missing_namespace_means_one)
{
    cr_assert_eq(uri("nvme://0000:00:04.0"), 0, "%s", err.msg);
    cr_assert_eq(nsid, 1);
    cr_assert_eq(uri("nvme://0000:00:04.0/"), 0, "%s", err.msg);
    cr_assert_eq(nsid, 1);
}

Test(nvme_uri, upper_case_and_short_address_are_normalized)
{
    cr_assert_eq(uri("NVME://0000:AB:1F.7/10"), 0, "%s", err.msg);
    cr_assert_str_eq(bdf, "0000:ab:1f.7");
    cr_assert_eq(nsid, 10);
    cr_assert_eq(uri("nvme://3b:00.1/1"), 0, "%s", err.msg);
    cr_assert_str_eq(bdf, "0000:3b:00.1");
}

Test(nvme_uri, bad_addresses_are_refused_with_the_form)
{
    const char *bad[] = {
        "nvme://0000:44:00/1", "nvme://0000:44:20.0/1", "nvme://0000:44:00.8/1",
        "nvme://00000:44:00.0/1", "nvme://host:44:00.0/1", "nvme:///1",
        "nvme://0000-44-00.0/1", "nbd://0000:44:00.0/1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(uri(bad[i]), -EINVAL, "%s accepted", bad[i]);
        cr_assert(strstr(err.msg, "nvme://hhhh:bb:ss.f"), "%s", err.msg);
    }
}

Test(nvme_uri, bad_namespaces_are_refused)
{
    const char *bad[] = {
        "nvme://0000:44:00.0/0", "nvme://0000:44:00.0/x",
        "nvme://0000:44:00.0/4294967295", "nvme://0000:44:00.0/1/2",
        "nvme://0000:44:00.0/-1", "nvme://0000:44:00.0/99999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(uri(bad[i]), -EINVAL, "%s accepted", bad[i]);
        cr_assert(strstr(err.msg, "namespace"), "%s", err.msg);
    }
    cr_assert_eq(uri("nvme://0000:44:00.0/4294967294"), 0);
    cr_assert_eq(nsid, 4294967294u);
}

Test(nvme_uri, sources_reach_the_driver_options)
{
    static const char *const forms[] = {
        "nvme://0000:01:00.0/3",
        "driver=nvme,device=0000:01:00.0,namespace=3",
        "json:{\"driver\":\"nvme\",\"device\":\"0000:01:00.0\",\"namespace\":3}",
    };
    cr_assert_not_null(bd_driver_for_scheme("nvme"));
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct bd_opts *o = bd_opts_new();
        bd_err_clear(&err);
        cr_assert_eq(bd_source_to_opts(forms[i], o, &err), 0, "%s: %s",
                     forms[i], err.msg);
        /* a URI names the protocol node under the format's "file" */
        struct bd_opts *v = i == 0 ? bd_opts_sub(o, "file") : o;
        cr_assert_str_eq(bd_opts_get(v, "driver"), "nvme", "%s", forms[i]);
        cr_assert_str_eq(bd_opts_get(v, "device"), "0000:01:00.0", "%s",
                         forms[i]);
        cr_assert_str_eq(bd_opts_get(v, "namespace"), "3", "%s", forms[i]);
        if (i == 0)
            bd_opts_free_view(v);
        bd_opts_free(o);
    }
}

static uint64_t list[512];

Test(nvme_prp, one_page_needs_prp1_only)
{
    uint64_t p1, p2;
    cr_assert_eq(nvme_prp_build(0x10000, 4096, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10000);
    cr_assert_eq(p2, 0);
    cr_assert_eq(nvme_prp_build(0x10200, 512, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10200);
    cr_assert_eq(p2, 0);
}

Test(nvme_prp, two_pages_use_prp2_as_the_second_page)
{
    uint64_t p1, p2;
    cr_assert_eq(nvme_prp_build(0x10000, 8192, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10000);
    cr_assert_eq(p2, 0x11000);
    /* an offset start: 512 bytes in the first page, the rest in the next */
    cr_assert_eq(nvme_prp_build(0x10e00, 4096, 4096, list, 512, 0x9000, &p1,
                                &p2), 0);
    cr_assert_eq(p1, 0x10e00);
    cr_assert_eq(p2, 0x11000);
}

Test(nvme_prp, more_pages_go_to_a_list)
{
    uint64_t p1, p2;
    int k = nvme_prp_build(0x20000, 5 * 4096, 4096, list, 512, 0x9000, &p1,
                           &p2);
    cr_assert_eq(k, 4);
    cr_assert_eq(p1, 0x20000);
    cr_assert_eq(p2, 0x9000);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(list[i], 0x21000 + (uint64_t)i * 4096);
    /* 2 MiB + a partial first page: 512 list entries, the most one holds */
    k = nvme_prp_build(0x20800, 512 * 4096 + 2048, 4096, list, 512, 0x9000,
                       &p1, &p2);
    cr_assert_eq(k, 512);
    cr_assert_eq(list[511], 0x21000 + 511ull * 4096);
}

Test(nvme_prp, too_long_for_one_list_page_is_refused)
{
    uint64_t p1, p2;
    cr_assert_eq(nvme_prp_build(0x20000, 514 * 4096, 4096, list, 512, 0x9000,
                                &p1, &p2), -EINVAL);
    cr_assert_eq(nvme_prp_build(0x20000, 10 * 4096, 4096, list, 4, 0x9000,
                                &p1, &p2), -EINVAL);
}

Test(nvme_status, codes_map_to_errnos)
{
    cr_assert_eq(nvme_status_errno(0), 0);
    cr_assert_eq(nvme_status_errno(0x001), ENOTSUP);
    cr_assert_eq(nvme_status_errno(0x002), EINVAL);
    cr_assert_eq(nvme_status_errno(0x00b), ENODEV);
    cr_assert_eq(nvme_status_errno(0x080), EINVAL);
    cr_assert_eq(nvme_status_errno(0x081), ENOSPC);
    cr_assert_eq(nvme_status_errno(0x020), EROFS);
    cr_assert_eq(nvme_status_errno(0x006), EIO);
    cr_assert_eq(nvme_status_errno(0x182), EROFS);       /* SCT 1 */
    cr_assert_eq(nvme_status_errno(0x281), EIO);         /* unrecovered read */
    cr_assert_eq(nvme_status_errno(0x286), EACCES);
    /* DNR and More bits do not change the meaning */
    cr_assert_eq(nvme_status_errno(0x4002), EINVAL);
    cr_assert_str_eq(nvme_status_str(0x281), "unrecovered read error");
    cr_assert_str_eq(nvme_status_str(0x00b), "invalid namespace or format");
}
