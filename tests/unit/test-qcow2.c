/*
 * qcow2 driver: header and extension decoding (good and hostile headers),
 * L2 entry decoding, and whole-image round trips through bd_create_image(),
 * bd_open_image(), bd_pwrite() and bd_pread() on scratch files.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "drivers/format/qcow2/qcow2.h"
#include "core/graph.h"
#include "core/overflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A minimal valid v3 header: 64 KiB clusters, 1 GiB, L1 at 0x30000. */
static void make_v3(uint8_t *b, size_t len)
{
    memset(b, 0, len);
    bd_put_be32(b, QCOW2_MAGIC);
    bd_put_be32(b + 4, 3);
    bd_put_be32(b + 20, 16);
    bd_put_be64(b + 24, 1ull << 30);
    bd_put_be32(b + 36, 2);
    bd_put_be64(b + 40, 0x30000);
    bd_put_be64(b + 48, 0x10000);
    bd_put_be32(b + 56, 1);
    bd_put_be32(b + 96, 4);
    bd_put_be32(b + 100, 104);
}

#define FSIZE (4ull << 16)

static int decode(const uint8_t *b, size_t len, struct qcow2_header *h,
                  struct bd_err *err)
{
    memset(err, 0, sizeof(*err));
    return qcow2_header_decode(b, len, FSIZE, "t.qcow2", h, err);
}

Test(qcow2_header, valid_v3_decodes)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    cr_assert_eq(decode(b, sizeof(b), &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h.version, 3);
    cr_assert_eq(h.cluster_bits, 16);
    cr_assert_eq(h.size, 1ull << 30);
    cr_assert_eq(h.refcount_order, 4);
}

Test(qcow2_header, v2_assumes_refcount_order_4)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be32(b + 4, 2);
    bd_put_be32(b + 96, 6);     /* ignored for v2 */
    cr_assert_eq(decode(b, sizeof(b), &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h.refcount_order, 4);
    cr_assert_eq(h.header_len, 72);
}

Test(qcow2_header, bad_magic_is_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    b[3] = 0;
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    cr_assert(strstr(err.msg, "not a qcow2 image"), "%s", err.msg);
}

Test(qcow2_header, unknown_version_is_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be32(b + 4, 4);
    cr_assert_eq(decode(b, sizeof(b), &h, &err), -ENOTSUP);
    cr_assert(strstr(err.msg, "version 4"), "%s", err.msg);
}

Test(qcow2_header, cluster_bits_out_of_range_are_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be32(b + 20, 8);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    bd_put_be32(b + 20, 22);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    bd_put_be32(b + 20, 0xffffffff);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    cr_assert(strstr(err.msg, "cluster size"), "%s", err.msg);
}

Test(qcow2_header, l1_beyond_the_file_is_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be64(b + 40, 0x7fffffffffff0000ull);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    cr_assert(strstr(err.msg, "L1 table"), "%s", err.msg);
}

Test(qcow2_header, l1_too_small_for_size_is_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be64(b + 24, 1ull << 40);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    cr_assert(strstr(err.msg, "too small"), "%s", err.msg);
}

Test(qcow2_header, absurd_sizes_are_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be64(b + 24, UINT64_MAX);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    make_v3(b, sizeof(b));
    bd_put_be32(b + 36, 0xffffffff);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    make_v3(b, sizeof(b));
    bd_put_be32(b + 56, 0xffffffff);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    make_v3(b, sizeof(b));
    bd_put_be32(b + 60, 0xffffffff);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
}

Test(qcow2_header, refcount_table_beyond_the_file_is_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be64(b + 48, 0x100000);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    cr_assert(strstr(err.msg, "refcount table"), "%s", err.msg);
    make_v3(b, sizeof(b));
    bd_put_be64(b + 48, 0x10001);          /* misaligned */
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
}

Test(qcow2_header, bad_header_length_and_refcount_order_are_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be32(b + 100, 105);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    bd_put_be32(b + 100, 100);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    make_v3(b, sizeof(b));
    bd_put_be32(b + 96, 7);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
}

Test(qcow2_header, compression_type_needs_its_feature_bit)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be32(b + 100, 112);
    b[104] = 1;
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    bd_put_be64(b + 72, QCOW2_INCOMPAT_COMPRESSION);
    cr_assert_eq(decode(b, sizeof(b), &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h.compression_type, QCOW2_COMPRESS_ZSTD);
    b[104] = 7;
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
}

Test(qcow2_header, extended_l2_needs_16k_clusters)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be64(b + 72, QCOW2_INCOMPAT_EXTL2);
    bd_put_be32(b + 20, 13);
    bd_put_be64(b + 24, 1 << 20);
    bd_put_be64(b + 40, 0x2000);
    bd_put_be64(b + 48, 0x4000);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    cr_assert(strstr(err.msg, "extended L2"), "%s", err.msg);
}

Test(qcow2_header, backing_name_outside_the_header_cluster_is_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be64(b + 8, 0xfff0);
    bd_put_be32(b + 16, 100);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    bd_put_be64(b + 8, 200);
    bd_put_be32(b + 16, 2000);
    cr_assert_lt(decode(b, sizeof(b), &h, &err), 0);
    bd_put_be32(b + 16, 10);
    cr_assert_eq(decode(b, sizeof(b), &h, &err), 0, "%s", err.msg);
}

Test(qcow2_header, truncated_header_is_refused)
{
    uint8_t b[512];
    struct qcow2_header h;
    struct bd_err err;

    make_v3(b, sizeof(b));
    cr_assert_lt(decode(b, 50, &h, &err), 0);
    cr_assert_lt(decode(b, 80, &h, &err), 0);
}

/* ---- extensions -------------------------------------------------------- */

Test(qcow2_exts, known_and_unknown_extensions_are_read)
{
    uint8_t b[4096];
    struct qcow2_header h;
    struct qcow2_exts x;
    struct bd_err err;

    make_v3(b, sizeof(b));
    size_t o = 104;
    bd_put_be32(b + o, QCOW2_EXT_BACKING_FMT);
    bd_put_be32(b + o + 4, 5);
    memcpy(b + o + 8, "qcow2", 5);
    o += 16;
    bd_put_be32(b + o, 0x12345678);         /* unknown */
    bd_put_be32(b + o + 4, 3);
    o += 16;
    bd_put_be32(b + o, QCOW2_EXT_FEATURES);
    bd_put_be32(b + o + 4, 48);
    b[o + 8] = 0;
    b[o + 9] = 40;
    memcpy(b + o + 10, "shiny feature", 13);
    o += 56;
    cr_assert_eq(decode(b, sizeof(b), &h, &err), 0, "%s", err.msg);
    cr_assert_eq(qcow2_exts_decode(b, sizeof(b), &h, "t", &x, &err), 0, "%s",
                 err.msg);
    cr_assert_str_eq(x.backing_fmt, "qcow2");
    cr_assert_eq(x.nb_unknown, 1);
    cr_assert_eq(x.nb_features, 1);
    char names[128];
    qcow2_feature_names(&x, 0, (1ull << 40) | (1ull << 41) | 1, names,
                        sizeof(names));
    cr_assert_str_eq(names, "dirty bit, shiny feature, bit 41");
    qcow2_exts_free(&x);
}

Test(qcow2_exts, extension_running_past_the_cluster_is_refused)
{
    uint8_t b[4096];
    struct qcow2_header h;
    struct qcow2_exts x;
    struct bd_err err;

    make_v3(b, sizeof(b));
    bd_put_be32(b + 104, QCOW2_EXT_DATA_FILE);
    bd_put_be32(b + 108, 0xfffffff0);
    cr_assert_eq(decode(b, sizeof(b), &h, &err), 0, "%s", err.msg);
    cr_assert_lt(qcow2_exts_decode(b, sizeof(b), &h, "t", &x, &err), 0);
    cr_assert(strstr(err.msg, "runs past"), "%s", err.msg);
    qcow2_exts_free(&x);
}

/* ---- L2 entries --------------------------------------------------------- */

static struct qcow2_state state_for(uint32_t cluster_bits, bool ext)
{
    static struct bd_node node = { .name = "t" };
    struct qcow2_state s;

    memset(&s, 0, sizeof(s));
    s.node = &node;
    s.h.version = 3;
    s.cluster_bits = cluster_bits;
    s.cluster_size = 1ull << cluster_bits;
    s.ext_l2 = ext;
    s.sc_bits = ext ? cluster_bits - 5 : cluster_bits;
    s.sc_size = 1ull << s.sc_bits;
    return s;
}

Test(qcow2_l2, compressed_descriptor_gives_offset_and_size)
{
    struct qcow2_state s = state_for(16, false);
    struct qcow2_extent e;
    /* x = 62 - 8 = 54: offset bits 0-53, sector count above */
    uint64_t entry = QCOW2_OFLAG_COMPRESSED | (3ull << 54) | 0x50200;

    cr_assert_eq(qcow2_l2_decode(&s, entry, 0, 0x10100, &e), 0);
    cr_assert_eq(e.type, QCOW2_COMPRESSED);
    cr_assert_eq(e.host, 0x50200);
    cr_assert_eq(e.csize, 4 * 512);
    cr_assert_eq(e.coff, 0x10000);
}

Test(qcow2_l2, unallocated_zero_and_data_entries)
{
    struct qcow2_state s = state_for(16, false);
    struct qcow2_extent e;

    cr_assert_eq(qcow2_l2_decode(&s, 0, 0, 0, &e), 0);
    cr_assert_eq(e.type, QCOW2_UNALLOC);
    cr_assert_eq(qcow2_l2_decode(&s, QCOW2_OFLAG_ZERO, 0, 0, &e), 0);
    cr_assert_eq(e.type, QCOW2_ZERO);
    cr_assert_eq(qcow2_l2_decode(&s, QCOW2_OFLAG_COPIED | 0x70000, 0, 0x123,
                                 &e), 0);
    cr_assert_eq(e.type, QCOW2_NORMAL);
    cr_assert_eq(e.host, 0x70123);
    cr_assert_eq(e.len, 0x10000 - 0x123);
    /* misaligned host offset: corrupt */
    cr_assert_lt(qcow2_l2_decode(&s, 0x70200, 0, 0, &e), 0);
    /* reserved bits */
    cr_assert_lt(qcow2_l2_decode(&s, (1ull << 60) | 0x70000, 0, 0, &e), 0);
}

Test(qcow2_l2, v2_ignores_the_zero_bit)
{
    struct qcow2_state s = state_for(16, false);
    struct qcow2_extent e;

    s.h.version = 2;
    cr_assert_eq(qcow2_l2_decode(&s, QCOW2_OFLAG_ZERO, 0, 0, &e), 0);
    cr_assert_eq(e.type, QCOW2_UNALLOC);
}

Test(qcow2_l2, extended_entries_give_subcluster_runs)
{
    struct qcow2_state s = state_for(16, true);   /* 2 KiB subclusters */
    struct qcow2_extent e;
    uint64_t bitmap = 0x0000000full | (0x00000030ull << 32);

    cr_assert_eq(qcow2_l2_decode(&s, 0x80000 | QCOW2_OFLAG_COPIED, bitmap,
                                 0x800, &e), 0);
    cr_assert_eq(e.type, QCOW2_NORMAL);
    cr_assert_eq(e.host, 0x80800);
    cr_assert_eq(e.len, 3 * 2048);
    cr_assert_eq(qcow2_l2_decode(&s, 0x80000, bitmap, 4 * 2048, &e), 0);
    cr_assert_eq(e.type, QCOW2_ZERO);
    cr_assert_eq(e.len, 2 * 2048);
    cr_assert_eq(qcow2_l2_decode(&s, 0x80000, bitmap, 6 * 2048, &e), 0);
    cr_assert_eq(e.type, QCOW2_UNALLOC);
    cr_assert_eq(e.len, 26 * 2048);
    /* a subcluster both allocated and zero is corrupt */
    cr_assert_lt(qcow2_l2_decode(&s, 0x80000, 1 | (1ull << 32), 0, &e), 0);
    /* allocated without a host offset is corrupt */
    cr_assert_lt(qcow2_l2_decode(&s, 0, 1, 0, &e), 0);
}

/* ---- compression --------------------------------------------------------- */

Test(qcow2_compress, zlib_and_zstd_round_trip_with_trailing_garbage)
{
    size_t cs = 65536;
    uint8_t *src = malloc(cs), *c = malloc(cs + 1024), *d = malloc(cs);

    for (size_t i = 0; i < cs; i++)
        src[i] = (uint8_t)(i / 100);
    for (int type = 0; type < 2; type++) {
        ssize_t n = qcow2_compress(type, src, cs, c, cs);
        cr_assert_gt(n, 0);
        memset(c + n, 0xa5, 1024);
        cr_assert_eq(qcow2_decompress(type, c, (size_t)n + 1024, d, cs), 0);
        cr_assert_eq(memcmp(src, d, cs), 0);
        /* truncated data must fail, not crash */
        cr_assert_lt(qcow2_decompress(type, c, (size_t)n / 2, d, cs), 0);
    }
    free(src);
    free(c);
    free(d);
}

/* ---- whole images ------------------------------------------------------- */

static char tmpdir[64];

static void mk_tmp(void)
{
    strcpy(tmpdir, "/tmp/qcow2-unit.XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Random writes mirrored in memory, read back through a reopen. */
static void round_trip(const char *opts, uint64_t size)
{
    char path[128];
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    struct bd_flags fl = { 0 };
    uint8_t *shadow = calloc(1, size), *buf = malloc(1 << 20);

    mk_tmp();
    snprintf(path, sizeof(path), "%s/t.qcow2", tmpdir);
    cr_assert_eq(bd_create_image(path, "qcow2", size, opts, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(bd_open_image(path, "qcow2", NULL, &fl, &n, &err), 0, "%s",
                 err.msg);
    for (int i = 0; i < 300; i++) {
        uint64_t len = 1 + rnd() % (i % 10 == 0 ? (1 << 20) : 9000);
        uint64_t off = rnd() % (size - len);
        for (uint64_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rnd();
        if (i % 17 == 5) {
            cr_assert_eq(bd_pwrite_zeroes(n, len, off, BD_REQ_MAY_UNMAP), 0);
            memset(shadow + off, 0, len);
        } else {
            cr_assert_eq(bd_pwrite(n, buf, len, off, 0), 0, "write %d", i);
            memcpy(shadow + off, buf, len);
        }
        if (i % 50 == 0)
            cr_assert_eq(bd_flush(n), 0);
    }
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        uint64_t len = size - off < (1 << 20) ? size - off : (1 << 20);
        cr_assert_eq(bd_pread(n, buf, len, off), 0);
        cr_assert_eq(memcmp(buf, shadow + off, len), 0, "before reopen at %llu",
                     (unsigned long long)off);
    }
    bd_node_close(n);
    fl.read_only = true;
    cr_assert_eq(bd_open_image(path, "qcow2", NULL, &fl, &n, &err), 0, "%s",
                 err.msg);
    for (uint64_t off = 0; off < size; off += 1 << 20) {
        uint64_t len = size - off < (1 << 20) ? size - off : (1 << 20);
        cr_assert_eq(bd_pread(n, buf, len, off), 0);
        cr_assert_eq(memcmp(buf, shadow + off, len), 0, "after reopen at %llu",
                     (unsigned long long)off);
    }
    bd_node_close(n);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "qemu-img check -q %s >/dev/null 2>&1", path);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "qemu-img check failed for %s (rc %d)", opts, rc);
    free(shadow);
    free(buf);
    rm_tmp();
}

Test(qcow2_image, random_writes_v3_64k) { round_trip("", 64 << 20); }
Test(qcow2_image, random_writes_v2) { round_trip("compat=0.10", 32 << 20); }
Test(qcow2_image, random_writes_512b_clusters_refcount1)
{
    round_trip("cluster_size=512,refcount_bits=1", 8 << 20);
}
Test(qcow2_image, random_writes_refcount64_lazy)
{
    round_trip("refcount_bits=64,lazy_refcounts=on", 16 << 20);
}
Test(qcow2_image, random_writes_extended_l2)
{
    round_trip("extended_l2=on,cluster_size=128k", 32 << 20);
}
Test(qcow2_image, random_writes_2m_clusters) { round_trip("cluster_size=2M", 64 << 20); }

/* ---- snapshot table ------------------------------------------------------ */

static size_t put_snap(uint8_t *b, uint64_t l1_off, uint32_t l1_entries,
                       const char *id, const char *name, uint64_t disk_size)
{
    size_t idl = strlen(id), nl = strlen(name);
    memset(b, 0, 40 + 16 + idl + nl + 8);
    bd_put_be64(b, l1_off);
    bd_put_be32(b + 8, l1_entries);
    bd_put_be16(b + 12, (uint16_t)idl);
    bd_put_be16(b + 14, (uint16_t)nl);
    bd_put_be32(b + 36, 16);
    bd_put_be64(b + 48, disk_size);
    memcpy(b + 56, id, idl);
    memcpy(b + 56 + idl, name, nl);
    return bd_align_up(56 + idl + nl, 8);
}

Test(qcow2_snapshots, table_decodes_and_checks_l1)
{
    uint8_t b[512], hb[512];
    struct qcow2_header h;
    struct qcow2_snapshot *sn;
    struct bd_err err;

    make_v3(hb, sizeof(hb));
    cr_assert_eq(decode(hb, sizeof(hb), &h, &err), 0, "%s", err.msg);
    size_t o = put_snap(b, 0x20000, 2, "1", "first", 12345 * 512);
    size_t o2 = put_snap(b + o, 0x30000, 2, "2", "second", 0);
    cr_assert_eq(qcow2_snapshots_decode(b, o + o2, 2, &h, FSIZE, "t", &sn,
                                        &err), 0, "%s", err.msg);
    cr_assert_str_eq(sn[0].name, "first");
    cr_assert_str_eq(sn[1].id, "2");
    cr_assert_eq(sn[0].disk_size, 12345 * 512);
    cr_assert_eq(sn[0].entry_len, o);
    qcow2_snapshots_free(sn, 2);
    /* truncated: asks for more */
    cr_assert_eq(qcow2_snapshots_decode(b, o + 10, 2, &h, FSIZE, "t", &sn,
                                        &err), -ENODATA);
    /* an L1 table beyond the file */
    put_snap(b, 1ull << 40, 2, "1", "bad", 0);
    cr_assert_lt(qcow2_snapshots_decode(b, o, 1, &h, FSIZE, "t", &sn, &err), 0);
    cr_assert(strstr(err.msg, "invalid L1"), "%s", err.msg);
}

/* ---- a write racing a discard of the same cluster ------------------------ */

/* One thread rewrites cluster 0 while another discards it, and a third
 * fills fresh clusters. A write that mapped cluster 0 before the discard
 * freed its host cluster must not land in whatever the allocator gives
 * that host cluster next: every fresh cluster keeps its own pattern. */
enum { RACE_CLUSTERS = 512, RACE_CS = 4096 };

struct race {
    struct bd_node *n;
    volatile int stop;
    int failed;
};

static void *race_rewrite(void *arg)
{
    struct race *r = arg;
    uint8_t buf[RACE_CS];
    memset(buf, 0xAA, sizeof(buf));
    while (!r->stop)
        if (bd_pwrite(r->n, buf, sizeof(buf), 0, 0) < 0)
            r->failed = 1;
    return NULL;
}

static void *race_discard(void *arg)
{
    struct race *r = arg;
    while (!r->stop)
        if (bd_discard(r->n, RACE_CS, 0) < 0)
            r->failed = 1;
    return NULL;
}

Test(qcow2_race, write_racing_discard_keeps_other_clusters_intact)
{
    char path[128];
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;
    struct bd_flags fl = { 0 };
    uint8_t buf[RACE_CS];
    pthread_t t[2];
    struct race r = { 0 };

    mk_tmp();
    snprintf(path, sizeof(path), "%s/race.qcow2", tmpdir);
    cr_assert_eq(bd_create_image(path, "qcow2", (uint64_t)(RACE_CLUSTERS + 1) * RACE_CS,
                                 "cluster_size=4096", &err), 0, "%s", err.msg);
    cr_assert_eq(bd_open_image(path, "qcow2", NULL, &fl, &n, &err), 0, "%s",
                 err.msg);
    r.n = n;
    pthread_create(&t[0], NULL, race_rewrite, &r);
    pthread_create(&t[1], NULL, race_discard, &r);
    for (int round = 0; round < 50; round++) {
        for (int c = 1; c <= RACE_CLUSTERS; c++) {
            memset(buf, (uint8_t)(c * 7 + round), sizeof(buf));
            cr_assert_eq(bd_pwrite(n, buf, sizeof(buf), (uint64_t)c * RACE_CS, 0), 0);
        }
        for (int c = 1; c <= RACE_CLUSTERS; c++) {
            cr_assert_eq(bd_pread(n, buf, sizeof(buf), (uint64_t)c * RACE_CS), 0);
            for (int i = 0; i < RACE_CS; i++)
                cr_assert_eq(buf[i], (uint8_t)(c * 7 + round),
                             "round %d cluster %d byte %d overwritten", round, c, i);
        }
        /* free the fresh clusters again so the allocator reuses host space */
        cr_assert_eq(bd_discard(n, (uint64_t)RACE_CLUSTERS * RACE_CS, RACE_CS), 0);
    }
    r.stop = 1;
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    cr_assert_eq(r.failed, 0);
    cr_assert_eq(bd_pread(n, buf, sizeof(buf), 0), 0);
    for (int i = 0; i < RACE_CS; i++)
        cr_assert(buf[i] == 0 || buf[i] == 0xAA, "cluster 0 holds foreign data");
    bd_node_close(n);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "qemu-img check -q %s >/dev/null 2>&1", path);
    cr_assert_eq(system(cmd), 0, "qemu-img check found errors");
    rm_tmp();
}
