/*
 * Fuzz target for the nvme driver's pure parsers (nvme/parse.c): nvme://
 * URIs and PCI addresses. A URI that parses must print back as
 * nvme://BDF/NS and parse again to the same address and namespace; one
 * that fails must say why. The PRP builder is driven by the input's bytes
 * too, and its entries must cover the buffer page by page.
 *
 * Built by meson as fuzz-nvme (see harness.h); seeds: tests/fuzz/nvme.seeds.
 */
#include "harness.h"
#include "nvme/nvme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_uri(const char *s)
{
    char bdf[NVME_BDF_LEN + 1], bdf2[NVME_BDF_LEN + 1], canon[64];
    struct bd_err err = {0};
    uint32_t ns, ns2;

    if (nvme_uri_parse(s, bdf, &ns, &err) != 0) {
        if (!err.msg[0]) {
            fprintf(stderr, "'%s' failed without a message\n", s);
            abort();
        }
        return;
    }
    snprintf(canon, sizeof(canon), "nvme://%s/%u", bdf, ns);
    bd_err_clear(&err);
    if (nvme_uri_parse(canon, bdf2, &ns2, &err) != 0 || strcmp(bdf, bdf2) ||
        ns != ns2 || ns == 0) {
        fprintf(stderr, "'%s' -> '%s' does not parse back: %s\n", s, canon,
                err.msg);
        abort();
    }
}

static void check_prp(const uint8_t *data, size_t size)
{
    static uint64_t list[512];
    uint64_t iova = 0, len = 0, p1, p2;
    int k;

    for (size_t i = 0; i < size && i < 8; i++)
        iova = iova << 8 | data[i];
    for (size_t i = 8; i < size && i < 12; i++)
        len = len << 8 | data[i];
    iova &= (1ull << 48) - 1;
    len = len % (3u << 20) + 1;
    k = nvme_prp_build(iova, len, 4096, list, 512, 0x1000, &p1, &p2);
    if (k < 0)
        return;
    if (p1 != iova || (k > 0 && p2 != 0x1000) ||
        (k == 0 && len > 4096 - (iova & 4095) && p2 != ((iova | 4095) + 1))) {
        fprintf(stderr, "prp: bad entries for iova %#llx len %llu\n",
                (unsigned long long)iova, (unsigned long long)len);
        abort();
    }
    for (int i = 0; i < k; i++) {
        if (list[i] & 4095 || list[i] != ((iova | 4095) + 1) + (uint64_t)i * 4096)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_uri(s);
    check_prp(data, size);
    free(s);
    return 0;
}

static const char alphabet[] = "nvme:/0123456789abcdefABCDEF.x-";

static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_text(m, len, alphabet);
}

const struct fuzz_target fuzz_target = {
    .text_seeds = true,
    .mutate = mutate,
};
