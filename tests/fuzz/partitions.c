/*
 * Fuzz target for partition tables (core/partition.c over libblkid): the
 * input is a raw disk; its table and the filesystems in its partitions are
 * read as `imgfuse info` and directory mounts read them, and every
 * partition reported must lie inside the disk.
 *
 * Built by meson as fuzz-partitions; seeds in tests/data/partitions/ (an
 * MBR with a chain of logical partitions, a GPT), mutated in their first
 * 64 KiB, where both tables and the EBRs are.
 */
#include "harness.h"
#include "core/graph.h"

#include <stdlib.h>

static void read_table(struct bd_node *n, void *arg)
{
    struct bd_partition_table t;
    struct bd_err err = { 0 };
    int64_t size = bd_size(n);
    (void)arg;
    if (bd_node_partitions(n, &t, &err) < 0)
        return;
    for (size_t i = 0; i < t.n; i++) {
        if (t.v[i].off > (uint64_t)size || t.v[i].len > (uint64_t)size - t.v[i].off)
            abort();
    }
    bd_partition_table_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bd_flags flags = { .read_only = true };
    fuzz_image(data, size, "raw", &flags, read_table, NULL);
    return 0;
}

static size_t mutate(uint8_t *m, size_t len)
{
    size_t mlen = len;
    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = len < 65536 ? len : 65536;
        size_t at = (size_t)rand() % span;
        m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 8 == 0)
        mlen = 1 + (size_t)rand() % len;
    return mlen;
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 0,
    .mutate = mutate,
};
