/* core/probe.c and the registry: no ties, raw is the fallback. */
#include <criterion/criterion.h>
#include "core/bd-internal.h"
#include "core/registry.h"

static const struct {
    const char *fmt;
    size_t off;
    const char *magic;
    size_t len;
} heads[] = {
    { "qcow2", 0, "QFI\xfb\0\0\0\3", 8 },
    { "qcow2", 0, "QFI\xfb\0\0\0\2", 8 },
    { "qcow", 0, "QFI\xfb\0\0\0\1", 8 },
    { "qed", 0, "QED\0", 4 },
    { "vmdk", 0, "KDMV", 4 },
    { "vhdx", 0, "vhdxfile", 8 },
    { "vpc", 0, "conectix", 8 },
    { "vdi", 64, "\x7f\x10\xda\xbe", 4 },
    { "luks", 0, "LUKS\xba\xbe\0\1", 8 },
    { "bochs", 0, "Bochs Virtual HD Image", 23 },
    { "parallels", 0, "WithoutFreeSpace\2\0\0\0", 20 },
    { "parallels", 0, "WithouFreSpacExt\2\0\0\0", 20 },
    { "cloop", 0, "#!/bin/sh\n#V2.0 Format\n", 23 },
};

Test(probe, zeros_probe_as_raw)
{
    uint8_t head[4096] = { 0 };
    int score;
    const struct bd_driver *d = bd_probe(head, sizeof(head), NULL, 0, &score);
    cr_assert_not_null(d);
    cr_assert_str_eq(d->name, "raw");
    cr_assert_null(bd_probe_known_magic(head, sizeof(head)));
}

Test(probe, no_two_drivers_tie_on_a_known_header)
{
    size_t count;
    const struct bd_driver *const *all = bd_driver_all(&count);
    for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
        uint8_t head[4096] = { 0 };
        memcpy(head + heads[h].off, heads[h].magic, heads[h].len);
        int best = 0, ties = 0;
        for (size_t i = 0; i < count; i++) {
            if (all[i]->kind != BD_FORMAT || !all[i]->probe)
                continue;
            int s = all[i]->probe(head, sizeof(head));
            if (s > best) {
                best = s;
                ties = 1;
            } else if (s == best && s > 0) {
                ties++;
            }
        }
        cr_assert_eq(ties, 1, "%s header: %d drivers share the top score %d",
                     heads[h].fmt, ties, best);
        cr_assert_not_null(bd_probe_known_magic(head, sizeof(head)), "%s", heads[h].fmt);
        const struct bd_driver *d = bd_probe(head, sizeof(head), NULL, 0, NULL);
        if (bd_driver_find(heads[h].fmt))
            cr_assert_str_eq(d->name, heads[h].fmt);
    }
}

Test(probe, every_driver_has_a_unique_name)
{
    size_t count;
    const struct bd_driver *const *all = bd_driver_all(&count);
    for (size_t i = 0; i < count; i++) {
        for (size_t j = i + 1; j < count; j++)
            cr_assert_str_neq(all[i]->name, all[j]->name);
    }
}
