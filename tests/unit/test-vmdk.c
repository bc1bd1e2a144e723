/*
 * Unit tests of the vmdk driver: the descriptor parser and writer, probing,
 * whole images from tests/data/vmdk read through bd_open_image() + bd_pread()
 * (checked against CRCs of qemu-img's raw output), and images created and
 * written here (sparse grain allocation, redundant directory, stream append,
 * stream grains read from parallel threads).
 */
#include "core/graph.h"
#include "drivers/format/vmdk/vmdk.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char *data_dir(void)
{
    static char dir[4096];
    char src[4096];
    struct stat st;

    snprintf(src, sizeof(src), "%s", __FILE__);
    snprintf(dir, sizeof(dir), "%s/../data/vmdk", dirname(src));
    if (stat(dir, &st) == 0)
        return dir;
    return "tests/data/vmdk";
}

static char *data_path(const char *name)
{
    static char path[4096];
    int len = snprintf(path, sizeof(path), "%s/%s", data_dir(), name);

    cr_assert(len > 0 && (size_t)len < sizeof(path),
              "test data path too long: %s/%s", data_dir(), name);
    return path;
}

static int open_vmdk(const char *path, bool rw, struct bd_node **n,
                     struct bd_err *err)
{
    struct bd_flags flags = { .read_only = !rw };

    memset(err, 0, sizeof(*err));
    return bd_open_image(path, "vmdk", NULL, &flags, n, err);
}

/* CRC-32 of the whole disk, read in chunks of `chunk` bytes. */
static uint32_t disk_crc(struct bd_node *n, uint64_t chunk)
{
    int64_t size = bd_size(n);
    uint8_t *buf = malloc(chunk);
    uLong crc = crc32(0, NULL, 0);

    cr_assert(buf);
    for (uint64_t off = 0; off < (uint64_t)size; off += chunk) {
        uint64_t l = (uint64_t)size - off < chunk ? (uint64_t)size - off : chunk;
        cr_assert_eq(bd_pread(n, buf, l, off), 0, "read at %llu",
                     (unsigned long long)off);
        crc = crc32(crc, buf, (uInt)l);
    }
    free(buf);
    return (uint32_t)crc;
}

static char *scratch_dir(void)
{
    static char dir[64];

    snprintf(dir, sizeof(dir), "/tmp/vmdk-unit.XXXXXX");
    cr_assert(mkdtemp(dir));
    return dir;
}

/* ---- descriptor ----------------------------------------------------------- */

Test(vmdk_desc, flat_descriptor_gives_extents_cid_and_type)
{
    const char *t = "# Disk DescriptorFile\nversion=1\nCID=717d8e04\r\n"
                    "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n"
                    "RW 4096 FLAT \"disk-flat.vmdk\" 8\n"
                    "RDONLY 100 ZERO\n"
                    "ddb.adapterType = \"lsilogic\"\n";
    struct vmdk_desc d;
    struct bd_err err = {0};

    cr_assert_eq(vmdk_desc_parse(t, strlen(t), &d, "t", &err), 0, "%s", err.msg);
    cr_assert(d.has_cid);
    cr_assert_eq(d.cid, 0x717d8e04u);
    cr_assert_eq(d.parent_cid, 0xffffffffu);
    cr_assert_str_eq(d.create_type, "monolithicFlat");
    cr_assert_str_eq(d.adapter_type, "lsilogic");
    cr_assert_eq(d.n_ext, 2);
    cr_assert_eq(d.ext[0].kind, VMDK_EXT_FLAT);
    cr_assert_eq(d.ext[0].sectors, 4096);
    cr_assert_eq(d.ext[0].offset_sectors, 8);
    cr_assert_str_eq(d.ext[0].filename, "disk-flat.vmdk");
    cr_assert_eq(d.ext[1].kind, VMDK_EXT_ZERO);
    cr_assert_eq(d.ext[1].access, VMDK_ACCESS_RDONLY);
    cr_assert_null(d.ext[1].filename);
    vmdk_desc_free(&d);
}

Test(vmdk_desc, quoted_name_with_spaces_and_parent_hint)
{
    const char *t = "CID=1\nparentCID=2\nparentFileNameHint=\"my base.vmdk\"\n"
                    "RW 128 SPARSE \"my disk-s001.vmdk\"\n";
    struct vmdk_desc d;
    struct bd_err err = {0};

    cr_assert_eq(vmdk_desc_parse(t, strlen(t), &d, "t", &err), 0, "%s", err.msg);
    cr_assert_str_eq(d.parent_hint, "my base.vmdk");
    cr_assert_eq(d.parent_cid, 2);
    cr_assert_str_eq(d.ext[0].filename, "my disk-s001.vmdk");
    vmdk_desc_free(&d);
}

Test(vmdk_desc, bad_extent_lines_are_errors_with_a_line_number)
{
    static const char *const bad[] = {
        "RW 12x4 FLAT \"a\" 0\n",
        "RW 99999999999999999999999 FLAT \"a\" 0\n",
        "RW 100 FLAT\n",
        "RW 100 VMFSRDM \"a\"\n",
        "RW 100 FLAT \"a\" zz\n",
        "CID=nothex\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vmdk_desc d;
        struct bd_err err = {0};
        cr_assert_lt(vmdk_desc_parse(bad[i], strlen(bad[i]), &d, "t", &err), 0,
                     "accepted: %s", bad[i]);
        cr_assert(strstr(err.msg, "t: "), "%s", err.msg);
        vmdk_desc_free(&d);
    }
}

Test(vmdk_desc, text_after_a_nul_byte_is_ignored)
{
    char t[64] = "CID=12\nRW 8 ZERO\n";
    struct vmdk_desc d;
    struct bd_err err = {0};

    memcpy(t + 20, "RW 5 FLAT", 9);
    cr_assert_eq(vmdk_desc_parse(t, sizeof(t), &d, "t", &err), 0, "%s", err.msg);
    cr_assert_eq(d.n_ext, 1);
    vmdk_desc_free(&d);
}

Test(vmdk_desc, cid_rewrite_changes_only_the_cid_line)
{
    const char *t = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n";
    size_t len;
    char *o = vmdk_desc_with_cid(t, strlen(t), 0x1234abcd, &len);

    cr_assert(o);
    cr_assert_str_eq(o, "# Disk DescriptorFile\nversion=1\nCID=1234abcd\n"
                        "parentCID=ffffffff\n");
    cr_assert_eq(len, strlen(o));
    free(o);
}

Test(vmdk_desc, formatted_descriptor_parses_back)
{
    const char *lines[] = {"RW 4192256 SPARSE \"d-s001.vmdk\"",
                           "RW 2048 SPARSE \"d-s002.vmdk\"", NULL};
    struct vmdk_desc_params p = {
        .cid = 0xabc, .parent_cid = 0x123, .create_type = "twoGbMaxExtentSparse",
        .parent_hint = "base.vmdk", .extent_lines = lines, .hw_version = "6",
        .adapter_type = "ide", .tools_version = "2147483647", .size = 1u << 30,
    };
    char *t = vmdk_desc_format(&p);
    struct vmdk_desc d;
    struct bd_err err = {0};

    cr_assert(t);
    cr_assert_eq(vmdk_desc_parse(t, strlen(t), &d, "t", &err), 0, "%s", err.msg);
    cr_assert_eq(d.cid, 0xabc);
    cr_assert_eq(d.parent_cid, 0x123);
    cr_assert_str_eq(d.parent_hint, "base.vmdk");
    cr_assert_str_eq(d.hw_version, "6");
    cr_assert_eq(d.n_ext, 2);
    cr_assert_eq(d.ext[1].sectors, 2048);
    cr_assert(strstr(t, "ddb.geometry.cylinders = \"2080\""), "%s", t);
    vmdk_desc_free(&d);
    free(t);
}

/* ---- probing -------------------------------------------------------------- */

extern const struct bd_driver bd_drv_vmdk;

Test(vmdk_probe, magic_and_descriptor_text_score_and_others_do_not)
{
    const uint8_t kdmv[8] = {'K', 'D', 'M', 'V', 1, 0, 0, 0};
    const char *desc = "# Disk DescriptorFile\nversion=1\n";
    const uint8_t junk[16] = {1, 2, 3, 4};

    cr_assert_eq(bd_drv_vmdk.probe(kdmv, sizeof(kdmv)), 100);
    cr_assert_eq(bd_drv_vmdk.probe((const uint8_t *)desc, strlen(desc)), 100);
    cr_assert_eq(bd_drv_vmdk.probe(junk, sizeof(junk)), 0);
}

/* ---- real images ---------------------------------------------------------- */

Test(vmdk_image, qemu_made_and_public_images_read_like_qemu)
{
    static const struct { const char *name; uint64_t size; uint32_t crc; } img[] = {
        {"gen-vmdk-monolithicSparse.vmdk", 8388608, 0x9f6a2ff2},
        {"gen-vmdk-streamOptimized.vmdk", 8388608, 0x9f6a2ff2},
        {"gen-vmdk-twoGbMaxExtentSparse.vmdk", 8388608, 0x9f6a2ff2},
        {"ext2.vmdk", 4194304, 0x46f988ae},
    };
    for (size_t i = 0; i < sizeof(img) / sizeof(img[0]); i++) {
        struct bd_node *n;
        struct bd_err err;
        cr_assert_eq(open_vmdk(data_path(img[i].name), false, &n, &err), 0,
                     "%s: %s", img[i].name, err.msg);
        cr_assert_eq(bd_size(n), (int64_t)img[i].size, "%s", img[i].name);
        cr_assert_eq(disk_crc(n, 1u << 20), img[i].crc, "%s", img[i].name);
        /* unaligned small reads go through the same maps */
        cr_assert_eq(disk_crc(n, 96 * 1024), img[i].crc, "%s", img[i].name);
        bd_node_close(n);
    }
}

Test(vmdk_image, stream_footer_image_reads_like_qemu)
{
    struct bd_node *n;
    struct bd_err err;

    cr_assert_eq(open_vmdk(data_path("iotest-version3-2013.vmdk"), false, &n, &err),
                 0, "%s", err.msg);
    cr_assert_eq(disk_crc(n, 8u << 20), 0x5b64c2b0u);
    bd_node_close(n);
}

Test(vmdk_image, fuzzed_header_fails_with_a_message)
{
    struct bd_node *n;
    struct bd_err err;

    cr_assert_lt(open_vmdk(data_path("afl9-2014.vmdk"), false, &n, &err), 0);
    cr_assert(strstr(err.msg, "afl9-2014.vmdk"), "%s", err.msg);
}

Test(vmdk_image, truncated_stream_image_fails_with_a_message)
{
    char *dir = scratch_dir(), path[128], cmd[8192];
    struct bd_node *n;
    struct bd_err err;

    snprintf(path, sizeof(path), "%s/cut.vmdk", dir);
    snprintf(cmd, sizeof(cmd), "head -c 60000 '%s' > '%s'",
             data_path("iotest-version3-2013.vmdk"), path);
    cr_assert_eq(system(cmd), 0);
    cr_assert_lt(open_vmdk(path, false, &n, &err), 0);
    cr_assert(strstr(err.msg, "footer"), "%s", err.msg);
    unlink(path);
    rmdir(dir);
}

/* ---- created and written images ---------------------------------------------- */

static void fill_pattern(uint8_t *b, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)((i * 7 + seed * 13 + (i >> 9)) & 0xff);
}

Test(vmdk_write, sparse_partial_grains_allocate_and_keep_both_directories)
{
    char *dir = scratch_dir(), path[128];
    struct bd_node *n;
    struct bd_err err = {0};
    uint8_t *w = malloc(200000), *r = malloc(200000);

    snprintf(path, sizeof(path), "%s/s.vmdk", dir);
    cr_assert_eq(bd_create_image(path, "vmdk", 64u << 20, "zeroed_grain=on", &err),
                 0, "%s", err.msg);
    cr_assert_eq(open_vmdk(path, true, &n, &err), 0, "%s", err.msg);
    fill_pattern(w, 200000, 1);
    cr_assert_eq(bd_pwrite(n, w, 200000, 33u << 20 | 4096, 0), 0);
    cr_assert_eq(bd_pwrite(n, w, 512, 1536, 0), 0);
    bd_node_close(n);

    cr_assert_eq(open_vmdk(path, false, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_pread(n, r, 200000, 33u << 20 | 4096), 0);
    cr_assert_eq(memcmp(r, w, 200000), 0);
    cr_assert_eq(bd_pread(n, r, 4096, 0), 0);
    for (int i = 0; i < 4096; i++) {
        uint8_t want = i >= 1536 && i < 2048 ? w[i - 1536] : 0;
        cr_assert_eq(r[i], want, "byte %d", i);
    }
    bd_node_close(n);

    /* the redundant grain tables must hold the same grain offsets */
    FILE *f = fopen(path, "rb");
    uint8_t h[512];
    cr_assert(f && fread(h, 1, 512, f) == 512);
    uint64_t rgd = bd_le64(h + 48) * 512, gd = bd_le64(h + 56) * 512;
    for (uint32_t gi = 0; gi < 2; gi++) {
        uint8_t e1[4], e2[4], t1[2048], t2[2048];
        fseek(f, (long)(gd + gi * 4), SEEK_SET);
        cr_assert_eq(fread(e1, 1, 4, f), 4);
        fseek(f, (long)(rgd + gi * 4), SEEK_SET);
        cr_assert_eq(fread(e2, 1, 4, f), 4);
        fseek(f, (long)bd_le32(e1) * 512, SEEK_SET);
        cr_assert_eq(fread(t1, 1, 2048, f), 2048);
        fseek(f, (long)bd_le32(e2) * 512, SEEK_SET);
        cr_assert_eq(fread(t2, 1, 2048, f), 2048);
        cr_assert_eq(memcmp(t1, t2, 2048), 0, "table %u differs", gi);
    }
    fclose(f);
    unlink(path);
    rmdir(dir);
    free(w);
    free(r);
}

Test(vmdk_write, stream_appends_new_grains_and_refuses_overwrites)
{
    char *dir = scratch_dir(), path[128];
    struct bd_node *n;
    struct bd_err err = {0};
    const uint32_t len = 5 * 65536 + 4096;
    uint8_t *w = malloc(len), *r = malloc(len);

    snprintf(path, sizeof(path), "%s/st.vmdk", dir);
    cr_assert_eq(bd_create_image(path, "vmdk", 16u << 20, "subformat=streamOptimized",
                                 &err), 0, "%s", err.msg);
    cr_assert_eq(open_vmdk(path, true, &n, &err), 0, "%s", err.msg);
    fill_pattern(w, len, 2);
    /* sequential, in pieces smaller than a grain, like cp with a small buffer */
    for (uint32_t off = 0; off < len; off += 16384)
        cr_assert_eq(bd_pwrite(n, w + off, len - off < 16384 ? len - off : 16384,
                               off, 0), 0);
    cr_assert_eq(bd_pread(n, r, len, 0), 0);
    cr_assert_eq(memcmp(r, w, len), 0);
    cr_assert_eq(bd_pwrite(n, w, 512, 65536, 0), -EOPNOTSUPP);
    bd_node_close(n);

    /* reopened: old grains read back, new ones append after them */
    cr_assert_eq(open_vmdk(path, true, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_pwrite(n, w, 65536, 8u << 20, 0), 0);
    cr_assert_eq(bd_pwrite(n, w, 512, 0, 0), -EOPNOTSUPP);
    bd_node_close(n);
    cr_assert_eq(open_vmdk(path, false, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_pread(n, r, len, 0), 0);
    cr_assert_eq(memcmp(r, w, len), 0);
    cr_assert_eq(bd_pread(n, r, 65536, 8u << 20), 0);
    cr_assert_eq(memcmp(r, w, 65536), 0);
    bd_node_close(n);
    unlink(path);
    rmdir(dir);
    free(w);
    free(r);
}

Test(vmdk_write, stream_accepts_pieces_of_several_grains_out_of_order)
{
    char *dir = scratch_dir(), path[128];
    struct bd_node *n;
    struct bd_err err = {0};
    const uint32_t g = 65536, len = 4 * g;
    uint8_t *w = malloc(len), *r = malloc(len);
    /* pieces of grains 0-3 in a shuffled order, as a writeback cache or
     * parallel workers may deliver them */
    static const uint32_t order[][2] = {
        {32768, 32768}, {65536 + 4096, 8192}, {3 * 65536, 65536}, {0, 32768},
        {2 * 65536 + 512, 65024}, {65536, 4096}, {65536 + 12288, 53248},
        {2 * 65536, 512},
    };

    snprintf(path, sizeof(path), "%s/ooo.vmdk", dir);
    cr_assert_eq(bd_create_image(path, "vmdk", 1u << 20, "subformat=streamOptimized",
                                 &err), 0, "%s", err.msg);
    cr_assert_eq(open_vmdk(path, true, &n, &err), 0, "%s", err.msg);
    fill_pattern(w, len, 4);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        cr_assert_eq(bd_pwrite(n, w + order[i][0], order[i][1], order[i][0], 0), 0,
                     "piece %zu", i);
    bd_node_close(n);
    cr_assert_eq(open_vmdk(path, false, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_pread(n, r, len, 0), 0);
    cr_assert_eq(memcmp(r, w, len), 0);
    bd_node_close(n);
    unlink(path);
    rmdir(dir);
    free(w);
    free(r);
}

/* Grains that compress well and grains that do not, alternating in runs, so
 * a read guessing the size of a grain from the one before is sometimes short. */
static void fill_mixed(uint8_t *b, size_t len, uint32_t grain)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (i / grain) % 3 == 1 ? (uint8_t)(i >> 10) : (uint8_t)x;
    }
}

struct reader {
    struct bd_node *n;
    const uint8_t *want;
    uint32_t len, chunk, first;
    int bad;
};

static void *read_all(void *arg)
{
    struct reader *rd = arg;
    uint8_t *r = malloc(rd->chunk);

    for (int pass = 0; pass < 4 && r; pass++) {
        for (uint32_t off = rd->first; off < rd->len; off += rd->chunk) {
            uint32_t l = rd->len - off < rd->chunk ? rd->len - off : rd->chunk;
            if (bd_pread(rd->n, r, l, off) != 0 || memcmp(r, rd->want + off, l))
                rd->bad++;
        }
    }
    free(r);
    return NULL;
}

Test(vmdk_image, stream_grains_read_alike_from_parallel_readers)
{
    char *dir = scratch_dir(), path[128];
    struct bd_node *n;
    struct bd_err err = {0};
    const uint32_t g = 65536, len = 48 * g;
    uint8_t *w = malloc(len);
    /* whole grains, several grains, and pieces that share grains */
    struct reader rd[] = {
        { .chunk = g }, { .chunk = 8 * g }, { .chunk = 4096 },
        { .chunk = 3 * 4096, .first = 512 }, { .chunk = g + 512, .first = 1024 },
    };
    pthread_t t[sizeof(rd) / sizeof(rd[0])];

    snprintf(path, sizeof(path), "%s/par.vmdk", dir);
    cr_assert_eq(bd_create_image(path, "vmdk", len, "subformat=streamOptimized",
                                 &err), 0, "%s", err.msg);
    cr_assert_eq(open_vmdk(path, true, &n, &err), 0, "%s", err.msg);
    fill_mixed(w, len, g);
    cr_assert_eq(bd_pwrite(n, w, len, 0, 0), 0);
    bd_node_close(n);

    cr_assert_eq(open_vmdk(path, false, &n, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < sizeof(rd) / sizeof(rd[0]); i++) {
        rd[i].n = n;
        rd[i].want = w;
        rd[i].len = len;
        cr_assert_eq(pthread_create(&t[i], NULL, read_all, &rd[i]), 0);
    }
    for (size_t i = 0; i < sizeof(rd) / sizeof(rd[0]); i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(rd[i].bad, 0, "reader of %u-byte chunks saw %d bad reads",
                     rd[i].chunk, rd[i].bad);
    }
    bd_node_close(n);
    unlink(path);
    rmdir(dir);
    free(w);
}

Test(vmdk_create, compat6_with_hwversion_is_refused)
{
    char *dir = scratch_dir(), path[128];
    struct bd_err err = {0};
    struct stat st;

    snprintf(path, sizeof(path), "%s/x.vmdk", dir);
    cr_assert_lt(bd_create_image(path, "vmdk", 1u << 20, "compat6=on,hwversion=7",
                                 &err), 0);
    cr_assert(strstr(err.msg, "compat6"), "%s", err.msg);
    cr_assert_neq(stat(path, &st), 0);
    rmdir(dir);
}

Test(vmdk_create, split_flat_image_names_its_extents_after_the_descriptor)
{
    char *dir = scratch_dir(), path[128], ext[160];
    struct bd_node *n;
    struct bd_err err = {0};
    struct stat st;
    uint8_t b[4096];

    snprintf(path, sizeof(path), "%s/split.vmdk", dir);
    cr_assert_eq(bd_create_image(path, "vmdk", 3ull << 30,
                                 "subformat=twoGbMaxExtentFlat", &err), 0, "%s",
                 err.msg);
    snprintf(ext, sizeof(ext), "%s/split-f002.vmdk", dir);
    cr_assert_eq(stat(ext, &st), 0);
    cr_assert_eq(st.st_size, (3ll << 30) - (2047ll << 20));
    cr_assert_eq(open_vmdk(path, true, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_size(n), 3ll << 30);
    fill_pattern(b, sizeof(b), 3);
    /* straddles the two extents */
    cr_assert_eq(bd_pwrite(n, b, sizeof(b), (2047ull << 20) - 2048, 0), 0);
    bd_node_close(n);
    cr_assert_eq(open_vmdk(path, false, &n, &err), 0, "%s", err.msg);
    uint8_t r[4096];
    cr_assert_eq(bd_pread(n, r, sizeof(r), (2047ull << 20) - 2048), 0);
    cr_assert_eq(memcmp(r, b, sizeof(b)), 0);
    bd_node_close(n);
    unlink(ext);
    snprintf(ext, sizeof(ext), "%s/split-f001.vmdk", dir);
    unlink(ext);
    unlink(path);
    rmdir(dir);
}
