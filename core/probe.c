/*
 * Format probing: every format driver scores the image's first bytes and
 * the highest score wins (raw scores 1). A separate table of magics of all
 * formats imgfuse will know keeps a probed raw image from being written
 * when its first sector says it is something else.
 */
#include "bd-internal.h"
#include "registry.h"

#include <string.h>

const struct bd_driver *bd_probe(const uint8_t *head, size_t len,
                                 const uint8_t *tail, size_t tail_len, int *score)
{
    size_t n;
    const struct bd_driver *const *all = bd_driver_all(&n);
    const struct bd_driver *best = NULL;
    int best_score = 0;

    for (size_t i = 0; i < n; i++) {
        if (all[i]->kind != BD_FORMAT || !all[i]->probe)
            continue;
        int s = all[i]->probe(head, len);
        if (all[i]->probe_tail && tail && tail_len) {
            int t = all[i]->probe_tail(tail, tail_len);
            s = t > s ? t : s;
        }
        if (s > best_score) {
            best_score = s;
            best = all[i];
        }
    }
    if (score)
        *score = best_score;
    return best;
}

struct magic {
    const char *format;
    size_t off;
    size_t len;
    const char *bytes;
};

static const struct magic magics[] = {
    { "qcow2 or qcow", 0, 4, "QFI\xfb" },
    { "qed", 0, 4, "QED\0" },
    { "vmdk", 0, 4, "KDMV" },
    { "vmdk (COWD)", 0, 4, "COWD" },
    { "vmdk descriptor", 0, 21, "# Disk DescriptorFile" },
    { "vhdx", 0, 8, "vhdxfile" },
    { "vpc", 0, 8, "conectix" },
    { "vdi", 64, 4, "\x7f\x10\xda\xbe" },
    { "luks", 0, 6, "LUKS\xba\xbe" },
    { "bochs", 0, 22, "Bochs Virtual HD Image" },
    { "cloop", 0, 14, "#!/bin/sh\n#V2." },
    { "parallels", 0, 16, "WithoutFreeSpace" },
    { "parallels", 0, 16, "WithouFreSpacExt" },
    { "dmg (encrypted)", 0, 8, "encrcdsa" },
};

const char *bd_probe_known_magic(const uint8_t *head, size_t len)
{
    for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
        const struct magic *m = &magics[i];
        if (m->off + m->len <= len && memcmp(head + m->off, m->bytes, m->len) == 0)
            return m->format;
    }
    return NULL;
}
