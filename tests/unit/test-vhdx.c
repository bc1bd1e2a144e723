/*
 * Unit tests of the vhdx driver through bd_open_image()/bd_create_image():
 * CRC-32C, probing, the dirty-log sample replayed in memory (file left
 * untouched) and on disk, write round trips for each subformat, differencing
 * images with sector bitmaps, and hostile headers giving clear errors.
 */
#include "core/graph.h"
#include "drivers/format/vhdx/vhdx.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMPDIR_PREFIX "test-vhdx"
#include "tmpdir.h"

static const char *data_dir(void)
{
    static char dir[4096];
    char src[4096];
    struct stat st;

    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(dir, sizeof(dir), "%s/../data/vhdx", dirname(src));
    if (stat(dir, &st) == 0)
        return dir;
    return "tests/data/vhdx";
}

/* Decompress tests/data/vhdx/<name> (.bz2 or .gz) into the scratch dir. */
static char *unpack(const char *name, const char *out)
{
    char cmd[8192];
    char *dst = tmp(out);
    const char *tool = strstr(name, ".bz2") ? "bunzip2" : "gzip -d";

    snprintf(cmd, sizeof(cmd), "%s -c '%s/%s' > '%s'", tool, data_dir(), name,
             dst);
    cr_assert_eq(system(cmd), 0, "cannot unpack %s", name);
    return dst;
}

static int open_vhdx(const char *path, bool ro, struct bd_node **n,
                     struct bd_err *err)
{
    struct bd_flags flags = { .read_only = ro };

    memset(err, 0, sizeof(*err));
    return bd_open_image(path, "vhdx", NULL, &flags, n, err);
}

static uint32_t file_crc(const char *path)
{
    uint8_t buf[65536];
    uint32_t crc = 0;
    ssize_t r;
    int fd = open(path, O_RDONLY);

    cr_assert(fd >= 0);
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        crc = vhdx_crc32c(crc, buf, (size_t)r);
    close(fd);
    return crc;
}

static void patch_file(const char *path, uint64_t off, const void *data,
                       size_t len)
{
    int fd = open(path, O_WRONLY);

    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

TestSuite(vhdx, .init = tmpdir_setup, .fini = tmpdir_teardown);

Test(vhdx, crc32c_matches_the_castagnoli_check_value)
{
    cr_assert_eq(vhdx_crc32c(0, "123456789", 9), 0xe3069283u);
    /* chaining gives the same as one pass */
    cr_assert_eq(vhdx_crc32c(vhdx_crc32c(0, "1234", 4), "56789", 5),
                 0xe3069283u);
}

Test(vhdx, probe_recognises_the_file_identifier)
{
    uint8_t head[512] = "vhdxfile";

    cr_assert_eq(bd_drv_vhdx.probe(head, sizeof(head)), 100);
    head[0] = 'x';
    cr_assert_eq(bd_drv_vhdx.probe(head, sizeof(head)), 0);
}

Test(vhdx, windows_image_reads_and_maps)
{
    char *path = unpack("iotest-dynamic-1G.vhdx.bz2", "w8.vhdx");
    struct bd_node *n;
    struct bd_err err;
    uint8_t *buf = malloc(1 << 20);
    uint64_t pnum, map;
    unsigned st;

    cr_assert_eq(open_vhdx(path, true, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_size(n), 1ll << 30);
    cr_assert_eq(bd_pread(n, buf, 1 << 20, 0), 0);
    cr_assert_eq(bd_block_status(n, 0, 1ull << 30, &pnum, &st, &map), 0);
    cr_assert(pnum > 0);
    free(buf);
    bd_node_close(n);
}

Test(vhdx, dirty_log_is_replayed_in_memory_on_a_read_only_open)
{
    char *ro = unpack("iotest-dirtylog-10G-4M.vhdx.bz2", "dirty-ro.vhdx");
    char *rw = unpack("iotest-dirtylog-10G-4M.vhdx.bz2", "dirty-rw.vhdx");
    uint32_t before = file_crc(ro);
    struct bd_node *a, *b;
    struct bd_err err;
    const uint64_t len = 32 << 20;
    uint8_t *x = malloc(len), *y = malloc(len);
    struct vhdx_state *s;

    cr_assert_eq(open_vhdx(ro, true, &a, &err), 0, "%s", err.msg);
    s = a->state;
    cr_assert(s->replayed && s->n_patches > 0, "log not replayed in memory");
    cr_assert_eq(open_vhdx(rw, false, &b, &err), 0, "%s", err.msg);
    s = b->state;
    cr_assert(s->replayed && s->n_patches == 0, "log not replayed on disk");
    for (uint64_t off = 0; off < (10ull << 30); off += 1ull << 30) {
        cr_assert_eq(bd_pread(a, x, len, off), 0);
        cr_assert_eq(bd_pread(b, y, len, off), 0);
        cr_assert(memcmp(x, y, len) == 0, "differ at %llu",
                  (unsigned long long)off);
    }
    bd_node_close(a);
    bd_node_close(b);
    cr_assert_eq(file_crc(ro), before, "read-only open wrote to the file");
    /* the read-write open left a clean log behind */
    cr_assert_eq(open_vhdx(rw, true, &b, &err), 0, "%s", err.msg);
    s = b->state;
    cr_assert(!s->replayed, "log still dirty after a read-write replay");
    bd_node_close(b);
    free(x);
    free(y);
}

static void roundtrip(const char *opts, uint64_t size, unsigned align)
{
    char *path = tmp("rt.vhdx");
    struct bd_node *n;
    struct bd_err err = { 0 };
    const uint64_t offs[] = { 0, 3 << 20, (5 << 20) + 4096, size - 65536,
                              (17 << 20) - 4096 };
    uint8_t *w = malloc(3 << 20), *r = malloc(3 << 20);

    unlink(path);
    cr_assert_eq(bd_create_image(path, "vhdx", size, opts, &err), 0, "%s: %s",
                 opts, err.msg);
    cr_assert_eq(open_vhdx(path, false, &n, &err), 0, "%s", err.msg);
    for (unsigned i = 0; i < 5; i++) {
        uint64_t len = i % 2 ? (2 << 20) + align : align * 8;
        if (offs[i] + len > size)
            len = size - offs[i];
        fill(w, len, i);
        cr_assert_eq(bd_pwrite(n, w, len, offs[i], 0), 0, "write %u", i);
    }
    bd_node_close(n);
    cr_assert_eq(open_vhdx(path, true, &n, &err), 0, "%s", err.msg);
    for (unsigned i = 0; i < 5; i++) {
        uint64_t len = i % 2 ? (2 << 20) + align : align * 8;
        if (offs[i] + len > size)
            len = size - offs[i];
        fill(w, len, i);
        cr_assert_eq(bd_pread(n, r, len, offs[i]), 0);
        cr_assert(memcmp(w, r, len) == 0, "%s: data %u differs", opts, i);
    }
    /* an untouched range reads as zeroes */
    cr_assert_eq(bd_pread(n, r, 4096, 40 << 20), 0);
    for (unsigned i = 0; i < 4096; i++)
        cr_assert_eq(r[i], 0);
    bd_node_close(n);
    free(w);
    free(r);
}

Test(vhdx, dynamic_image_round_trips)
{
    roundtrip("", 64 << 20, 512);
}

Test(vhdx, dynamic_image_without_zero_state_round_trips)
{
    roundtrip("block_state_zero=off,block_size=1M", 64 << 20, 512);
}

Test(vhdx, fixed_image_round_trips)
{
    roundtrip("subformat=fixed", 64 << 20, 512);
}

Test(vhdx, four_k_sector_image_round_trips)
{
    roundtrip("logical_sector_size=4096,block_size=2M", 64 << 20, 4096);
}

Test(vhdx, differencing_image_reads_through_its_parent)
{
    char *base = tmp("base.vhdx"), *child = tmp("child.vhdx");
    const uint64_t size = 16 << 20;
    uint8_t *exp = calloc(1, size), *got = malloc(size);
    struct bd_node *n;
    struct bd_err err = { 0 };
    char opts[600];
    uint64_t pnum, map;
    unsigned st;

    cr_assert_eq(bd_create_image(base, "vhdx", size, "block_size=1M", &err), 0,
                 "%s", err.msg);
    cr_assert_eq(open_vhdx(base, false, &n, &err), 0, "%s", err.msg);
    fill(exp, 8 << 20, 1);
    cr_assert_eq(bd_pwrite(n, exp, 8 << 20, 0, 0), 0);
    bd_node_close(n);

    snprintf(opts, sizeof(opts), "parent=%s", base);
    cr_assert_eq(bd_create_image(child, "vhdx", 0, opts, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(open_vhdx(child, false, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_size(n), (int64_t)size);
    /* partial blocks: sector bitmaps; one over the parent's data, one not */
    fill(exp + 4096, 1536, 7);
    cr_assert_eq(bd_pwrite(n, exp + 4096, 1536, 4096, 0), 0);
    fill(exp + (10 << 20) + 512, 512, 8);
    cr_assert_eq(bd_pwrite(n, exp + (10 << 20) + 512, 512, (10 << 20) + 512, 0),
                 0);
    fill(exp + (12 << 20), 2 << 20, 9);     /* a whole block */
    cr_assert_eq(bd_pwrite(n, exp + (12 << 20), 2 << 20, 12 << 20, 0), 0);
    /* a second write into a partially present block */
    fill(exp + 8192, 512, 10);
    cr_assert_eq(bd_pwrite(n, exp + 8192, 512, 8192, 0), 0);
    bd_node_close(n);

    cr_assert_eq(open_vhdx(child, true, &n, &err), 0, "%s", err.msg);
    cr_assert(n->backing, "parent not opened");
    cr_assert_eq(bd_pread(n, got, size, 0), 0);
    for (uint64_t i = 0; i < size; i++)
        cr_assert_eq(exp[i], got[i], "differencing read differs at %llu",
                     (unsigned long long)i);
    /* this layer: the first sectors come from the parent */
    cr_assert_eq(bd_block_status(n, 0, size, &pnum, &st, &map), 0);
    cr_assert_eq(pnum, 4096);
    cr_assert_eq(st & BD_STATUS_ALLOCATED, 0);
    cr_assert_eq(bd_block_status(n, 4096, size, &pnum, &st, &map), 0);
    cr_assert_eq(pnum, 1536);
    cr_assert(st & BD_STATUS_DATA);
    bd_node_close(n);
    free(exp);
    free(got);
}

/* ---- hostile images ----------------------------------------------------- */

static char *fresh_image(const char *name)
{
    char *path = tmp(name);
    struct bd_err err = { 0 };

    unlink(path);
    cr_assert_eq(bd_create_image(path, "vhdx", 64 << 20, "block_size=1M",
                                 &err), 0, "%s", err.msg);
    return path;
}

static void expect_open_error(const char *path, const char *words)
{
    struct bd_node *n = NULL;
    struct bd_err err;
    int r = open_vhdx(path, true, &n, &err);

    cr_assert(r < 0, "hostile image opened");
    cr_assert(strstr(err.msg, words), "message '%s' lacks '%s'", err.msg, words);
}

Test(vhdx, corrupt_headers_are_refused)
{
    char *p = fresh_image("h.vhdx");
    uint8_t junk[4] = { 1, 2, 3, 4 };

    patch_file(p, VHDX_HEADER1_OFF + 100, junk, 4);
    patch_file(p, VHDX_HEADER2_OFF + 100, junk, 4);
    expect_open_error(p, "both vhdx headers are corrupt");
}

Test(vhdx, one_good_header_is_enough)
{
    char *p = fresh_image("h1.vhdx");
    uint8_t junk[4] = { 1, 2, 3, 4 };
    struct bd_node *n;
    struct bd_err err;

    patch_file(p, VHDX_HEADER2_OFF + 100, junk, 4);
    cr_assert_eq(open_vhdx(p, true, &n, &err), 0, "%s", err.msg);
    bd_node_close(n);
}

Test(vhdx, corrupt_region_tables_are_refused)
{
    char *p = fresh_image("r.vhdx");
    uint8_t junk[4] = { 1, 2, 3, 4 };

    patch_file(p, VHDX_REGION1_OFF + 100, junk, 4);
    patch_file(p, VHDX_REGION2_OFF + 100, junk, 4);
    expect_open_error(p, "region tables are corrupt");
}

Test(vhdx, bat_entry_beyond_the_file_is_refused)
{
    char *p = fresh_image("b.vhdx");
    uint8_t e[8];

    /* layout of our create: log at 1 MiB (1 MiB), metadata, then the BAT */
    bd_put_le64(e, VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, 1ull << 40));
    patch_file(p, 3 * VHDX_MiB + 8, e, 8);
    expect_open_error(p, "outside the file");
}

Test(vhdx, absurd_block_size_is_refused)
{
    char *p = fresh_image("bs.vhdx");
    uint8_t v[4];

    bd_put_le32(v, 3u << 20);
    patch_file(p, 2 * VHDX_MiB + VHDX_META_TABLE_SIZE, v, 4);
    expect_open_error(p, "block size");
}

Test(vhdx, absurd_virtual_size_is_refused)
{
    char *p = fresh_image("vs.vhdx");
    uint8_t v[8];

    bd_put_le64(v, 1ull << 62);
    patch_file(p, 2 * VHDX_MiB + VHDX_META_TABLE_SIZE + 32, v, 8);
    expect_open_error(p, "virtual size");
}

Test(vhdx, truncated_file_is_refused)
{
    char *p = fresh_image("t.vhdx");

    cr_assert_eq(truncate(p, 1536 * 1024), 0);
    expect_open_error(p, "truncated");
    cr_assert_eq(truncate(p, 4096), 0);
    expect_open_error(p, "too small");
}

Test(vhdx, differencing_image_that_is_its_own_parent_is_refused)
{
    char *base = fresh_image("loopbase.vhdx");
    char *child = tmp("loop.vhdx");
    struct bd_err err = { 0 };
    char opts[600];
    int fd;
    uint8_t *m = malloc(VHDX_MiB);
    const char *from = "loopbase.vhdx", *to = "loop.vhdx\0\0\0\0";

    snprintf(opts, sizeof(opts), "parent=%s", base);
    cr_assert_eq(bd_create_image(child, "vhdx", 0, opts, &err), 0, "%s",
                 err.msg);
    /* rewrite relative_path ".\loopbase.vhdx" to ".\loop.vhdx" + NULs */
    fd = open(child, O_RDWR);
    cr_assert(fd >= 0);
    cr_assert_eq(pread(fd, m, VHDX_MiB, 2 * VHDX_MiB), VHDX_MiB);
    for (size_t i = 0; i + 26 < VHDX_MiB; i++) {
        bool hit = true;
        for (size_t k = 0; k < 13 && hit; k++)
            hit = m[i + 2 * k] == (uint8_t)from[k] && m[i + 2 * k + 1] == 0;
        if (hit) {
            for (size_t k = 0; k < 13; k++)
                m[i + 2 * k] = (uint8_t)to[k];
        }
    }
    cr_assert_eq(pwrite(fd, m, VHDX_MiB, 2 * VHDX_MiB), VHDX_MiB);
    close(fd);
    free(m);
    expect_open_error(child, "");
}

Test(vhdx, bat_entry_into_the_metadata_is_refused)
{
    char *p = fresh_image("bm.vhdx");
    uint8_t e[8];

    /* block 0 "present" at 2 MiB: our metadata region */
    bd_put_le64(e, VHDX_BAT_ENTRY(VHDX_PAYLOAD_FULLY_PRESENT, 2 * VHDX_MiB));
    patch_file(p, 3 * VHDX_MiB, e, 8);
    expect_open_error(p, "into the log, metadata or bat region");
}

/* Give both headers a LogGuid (so the log counts) and fix their CRCs. */
static void set_log_guid(const char *p, const uint8_t guid[16])
{
    uint8_t h[VHDX_HEADER_SIZE];
    int fd = open(p, O_RDWR);

    cr_assert(fd >= 0);
    for (int i = 0; i < 2; i++) {
        off_t at = i ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF;
        cr_assert_eq(pread(fd, h, sizeof(h), at), (ssize_t)sizeof(h));
        memcpy(h + 48, guid, 16);
        bd_put_le32(h + 4, vhdx_crc32c_skip(h, sizeof(h), 4));
        cr_assert_eq(pwrite(fd, h, sizeof(h), at), (ssize_t)sizeof(h));
    }
    close(fd);
}

Test(vhdx, log_of_overlapping_huge_entries_is_refused_quickly)
{
    char *p = fresh_image("hlog.vhdx");
    static const uint8_t guid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    uint8_t *log = calloc(1, VHDX_MiB);
    struct timespec t0, t1;

    set_log_guid(p, guid);
    /* a "loge" header claiming the whole log at every 4 KiB */
    for (uint32_t at = 0; at < VHDX_MiB; at += 4096) {
        memcpy(log + at, "loge", 4);
        bd_put_le32(log + at + 8, VHDX_MiB);
        bd_put_le64(log + at + 16, 1);
        memcpy(log + at + 32, guid, 16);
    }
    patch_file(p, VHDX_MiB, log, VHDX_MiB);
    free(log);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_open_error(p, "damaged beyond scanning");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert(t1.tv_sec - t0.tv_sec < 10, "log scan took %ld s",
              (long)(t1.tv_sec - t0.tv_sec));
}

Test(vhdx, dirty_header_with_an_empty_log_opens)
{
    char *p = fresh_image("elog.vhdx");
    static const uint8_t guid[16] = { 9, 8, 7 };
    struct bd_node *n;
    struct bd_err err;

    /* a LogGuid but no entry carrying it: nothing to replay */
    set_log_guid(p, guid);
    cr_assert_eq(open_vhdx(p, true, &n, &err), 0, "%s", err.msg);
    cr_assert(!((struct vhdx_state *)n->state)->replayed);
    bd_node_close(n);
}

Test(vhdx, read_write_open_clears_a_log_guid_with_nothing_to_replay)
{
    char *p = fresh_image("clog.vhdx");
    static const uint8_t guid[16] = { 4, 4, 4 };
    struct bd_node *n;
    struct bd_err err;
    uint8_t h[VHDX_HEADER_SIZE];
    int fd;

    set_log_guid(p, guid);
    cr_assert_eq(open_vhdx(p, false, &n, &err), 0, "%s", err.msg);
    bd_node_close(n);
    fd = open(p, O_RDONLY);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pread(fd, h, sizeof(h), i ? VHDX_HEADER2_OFF
                                                : VHDX_HEADER1_OFF),
                     (ssize_t)sizeof(h));
        cr_assert(vhdx_guid_is_zero(h + 48), "header %d keeps its LogGuid", i);
    }
    close(fd);
}

/* ---- threads ---------------------------------------------------------------- */

struct worker {
    struct bd_node *n;
    uint64_t base, len;
    unsigned seed;
    uint8_t *shadow;
    int failed;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    uint8_t *buf = malloc(256 << 10);

    for (int i = 0; i < 200 && !w->failed; i++) {
        uint64_t len = ((uint64_t)(rand_r(&w->seed) % 512) + 1) * 512;
        uint64_t off = (uint64_t)(rand_r(&w->seed) % (w->len / 512)) * 512;
        if (off + len > w->len)
            len = w->len - off;
        if (rand_r(&w->seed) % 3) {
            fill(buf, len, w->seed);
            memcpy(w->shadow + off, buf, len);
            w->failed |= bd_pwrite(w->n, buf, len, w->base + off, 0) != 0;
        } else {
            w->failed |= bd_pread(w->n, buf, len, w->base + off) != 0;
            w->failed |= memcmp(buf, w->shadow + off, len) != 0;
        }
    }
    free(buf);
    return NULL;
}

Test(vhdx, parallel_readers_and_writers_see_their_own_data)
{
    char *p = tmp("par.vhdx");
    struct bd_node *n;
    struct bd_err err = { 0 };
    struct worker w[4];
    pthread_t t[4];
    const uint64_t part = (12 << 20) + (512 << 10);   /* blocks are shared */

    cr_assert_eq(bd_create_image(p, "vhdx", 4 * part, "block_size=1M", &err),
                 0, "%s", err.msg);
    cr_assert_eq(open_vhdx(p, false, &n, &err), 0, "%s", err.msg);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){ n, i * part, part, (unsigned)i + 1,
                                calloc(1, part), 0 };
        pthread_create(&t[i], NULL, worker_run, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert(!w[i].failed, "worker %d saw wrong data or an error", i);
    }
    bd_node_close(n);
    /* and all of it survives a reopen */
    cr_assert_eq(open_vhdx(p, true, &n, &err), 0, "%s", err.msg);
    uint8_t *buf = malloc(part);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(bd_pread(n, buf, w[i].len, w[i].base), 0);
        cr_assert(memcmp(buf, w[i].shadow, w[i].len) == 0, "part %d differs", i);
        free(w[i].shadow);
    }
    free(buf);
    bd_node_close(n);
}
