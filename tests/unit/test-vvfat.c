/*
 * Unit tests of the vvfat driver: the name mapping (long names FAT cannot
 * hold, short-name basis and numeric tails, uniqueness in a directory, LFN
 * entries and checksum), the geometry of each disk kind (QEMU's sizes and
 * cluster counts inside each FAT type's range), and whole opens through
 * bd_open_image() of fat:... sources, with the MBR, boot sector, FAT chain
 * and a file's bytes read back, the errors for bad options, and rw: a
 * write into a file's cluster carried back at flush.
 */
#include "core/graph.h"
#include "drivers/format/vvfat/vvfat.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMPDIR_PREFIX "test-vvfat"
#include "tmpdir.h"

static size_t lfn_of(const char *host, uint16_t *out, int *changed)
{
    size_t len;
    *changed = vvfat_lfn_from_host(host, out, &len);
    return len;
}

static void expect_short(const char *host, const char *want, bool tail)
{
    uint16_t l[VVFAT_LFN_MAX];
    uint8_t sn[11];
    size_t base;
    int ch;
    size_t len = lfn_of(host, l, &ch);
    cr_expect_eq(vvfat_short_basis(l, len, sn, &base), tail, "%s: tail", host);
    cr_expect(memcmp(sn, want, 11) == 0, "%s: got '%.11s', want '%s'", host,
              (char *)sn, want);
}

Test(vvfat_names, short_basis)
{
    expect_short("README.TXT", "README  TXT", false);
    expect_short("readme.txt", "README  TXT", false);
    expect_short("a", "A          ", false);
    expect_short("LongFileName.txt", "LONGFILETXT", true);
    expect_short("archive.tar.gz", "ARCHIVE GZ ", true);
    expect_short("my file.c", "MYFILE  C  ", true);
    expect_short("a+b.txt", "A_B     TXT", true);
    expect_short(".bashrc", "BASHRC     ", true);
    expect_short("x.html", "X       HTM", true);
    expect_short("caf\xc3\xa9.txt", "CAF_    TXT", true);
}

Test(vvfat_names, tail)
{
    uint8_t sn[11];
    memcpy(sn, "LONGFILETXT", 11);
    vvfat_short_tail(sn, 8, 1);
    cr_expect(memcmp(sn, "LONGFI~1TXT", 11) == 0);
    memcpy(sn, "AB      TXT", 11);
    vvfat_short_tail(sn, 2, 12);
    cr_expect(memcmp(sn, "AB~12   TXT", 11) == 0);
    vvfat_short_tail(sn, 2, 123456);
    cr_expect(memcmp(sn, "A~123456TXT", 11) == 0);
}

Test(vvfat_names, long_names_fat_cannot_hold)
{
    uint16_t l[VVFAT_LFN_MAX];
    char back[VVFAT_LFN_MAX * 3 + 1];
    int ch;
    size_t len = lfn_of("a:b*c?.txt", l, &ch);
    vvfat_utf16_to_utf8(l, len, back, sizeof(back));
    cr_expect_str_eq(back, "a_b_c_.txt");
    cr_expect(ch);
    len = lfn_of("trailing. . ", l, &ch);
    vvfat_utf16_to_utf8(l, len, back, sizeof(back));
    cr_expect_str_eq(back, "trailing");
    len = lfn_of("bad\xff\xfe", l, &ch);
    vvfat_utf16_to_utf8(l, len, back, sizeof(back));
    cr_expect_str_eq(back, "bad__");
    len = lfn_of("...", l, &ch);
    cr_expect(len == 1 && l[0] == '_');
    len = lfn_of("\xf0\x9f\x98\x80.txt", l, &ch);     /* U+1F600: a pair */
    cr_expect(!ch);
    cr_expect(len == 6 && l[0] == 0xd83d && l[1] == 0xde00);
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    len = lfn_of(big, l, &ch);
    cr_expect(ch && len == VVFAT_LFN_MAX);
    len = lfn_of("Plain Name.txt", l, &ch);
    cr_expect(!ch && len == 14);
}

Test(vvfat_names, checksum_and_entries)
{
    /* checksum by the FAT specification's rotate-and-add */
    uint8_t sn[11];
    memcpy(sn, "LONGFI~1TXT", 11);
    uint8_t sum = 0;
    for (int i = 0; i < 11; i++)
        sum = (uint8_t)((sum >> 1 | sum << 7) + sn[i]);
    cr_expect_eq(vvfat_lfn_checksum(sn), sum);

    uint16_t l[VVFAT_LFN_MAX];
    int ch;
    size_t len = lfn_of("LongFileName.txt", l, &ch);   /* 16: two slots */
    uint8_t e[64];
    vvfat_put_lfn(e, l, len, 0x5a);
    cr_expect_eq(e[0], 0x42);           /* last slot first, 0x40 flag */
    cr_expect_eq(e[32], 0x01);
    cr_expect_eq(e[11], 0x0f);
    cr_expect_eq(e[13], 0x5a);
    cr_expect_eq(bd_le16(e + 32 + 1), 'L');
    cr_expect_eq(bd_le16(e + 1), 't');                  /* unit 13 */
    cr_expect_eq(bd_le16(e + 7), 0);                    /* NUL after 16 */
    cr_expect_eq(bd_le16(e + 9), 0xffff);               /* then padding */
}

static void set_kid(struct vvfat_obj *o, const char *name)
{
    memset(o, 0, sizeof(*o));
    o->lfn = malloc((VVFAT_LFN_MAX + 8) * sizeof(uint16_t));
    size_t len;
    o->renamed = vvfat_lfn_from_host(name, o->lfn, &len) != 0;
    o->lfn_len = (uint16_t)len;
}

Test(vvfat_names, unique_in_directory)
{
    const char *names[] = { "A.TXT", "LongFileName1.txt", "LongFileName2.txt",
                            "a.txt", "longfi~1.txt", "README" };
    struct vvfat_obj kids[6];
    char back[64];
    for (int i = 0; i < 6; i++)
        set_kid(&kids[i], names[i]);
    cr_assert_eq(vvfat_name_children(kids, 6), 0);
    cr_expect(memcmp(kids[0].short_name, "A       TXT", 11) == 0);
    cr_expect(!kids[0].has_lfn);
    /* "a.txt" equals "A.TXT" without case: renamed as Windows would */
    vvfat_utf16_to_utf8(kids[3].lfn, kids[3].lfn_len, back, sizeof(back));
    cr_expect_str_eq(back, "a (2).txt");
    cr_expect(kids[3].renamed && kids[3].has_lfn);
    /* an existing name that looks like a tail keeps it; others go around */
    cr_expect(memcmp(kids[4].short_name, "LONGFI~1TXT", 11) == 0);
    cr_expect(memcmp(kids[1].short_name, "LONGFI~2TXT", 11) == 0);
    cr_expect(memcmp(kids[2].short_name, "LONGFI~3TXT", 11) == 0);
    cr_expect(kids[4].has_lfn);          /* lower case: needs its LFN */
    cr_expect(!kids[5].has_lfn);
    for (int i = 0; i < 6; i++)
        free(kids[i].lfn);
}

/* ---- geometry ---- */

static struct vvfat_geom geom(unsigned type, bool floppy, uint64_t size)
{
    struct vvfat_geom g;
    struct bd_err err = { 0 };
    cr_assert_eq(vvfat_geometry(&g, type, floppy, size, "t", &err), 0, "%s",
                 err.msg);
    return g;
}

Test(vvfat_geometry, qemu_sizes)
{
    struct vvfat_geom g = geom(0, false, 0);
    cr_expect_eq(g.disk_bytes, 528482304ull);
    cr_expect_eq(g.fat_type, 16);
    cr_expect_eq(g.part_start, 63);
    cr_expect(g.clusters >= 4085 && g.clusters <= 65524);
    g = geom(32, false, 0);
    cr_expect_eq(g.disk_bytes, 528482304ull);
    cr_expect(g.clusters >= 65525);
    cr_expect_eq(g.reserved, 32);
    g = geom(12, false, 0);
    cr_expect_eq(g.disk_bytes, 64ull * 16 * 63 * 512);
    cr_expect(g.clusters < 4085);
    g = geom(0, true, 0);
    cr_expect_eq(g.disk_bytes, 2949120ull);
    cr_expect_eq(g.fat_type, 12);
    cr_expect_eq(g.part_start, 0);
    g = geom(12, true, 0);
    cr_expect_eq(g.disk_bytes, 1474560ull);
    cr_expect(g.clusters < 4085);
    g = geom(16, true, 0);
    cr_expect_eq(g.disk_bytes, 2949120ull);
    cr_expect(g.clusters >= 4085);
    g = geom(32, false, 4ull << 30);
    cr_expect_eq(g.disk_bytes, 4ull << 30);
    cr_expect(g.clusters >= 65525);
    /* the FAT is large enough for every cluster */
    uint64_t fat_entries = (uint64_t)g.fat_sectors * 512 / 4;
    cr_expect(fat_entries >= (uint64_t)g.clusters + 2);
    cr_expect_eq(g.data_start, g.reserved + 2 * g.fat_sectors);
}

Test(vvfat_geometry, refused)
{
    struct vvfat_geom g;
    struct bd_err err = { 0 };
    cr_expect_eq(vvfat_geometry(&g, 32, true, 0, "t", &err), -EINVAL);
    cr_expect(strstr(err.msg, "floppy"));
    bd_err_clear(&err);
    cr_expect_eq(vvfat_geometry(&g, 16, false, 1ull << 30, "t", &err), -EINVAL);
    cr_expect(strstr(err.msg, "fat-type=32"));
    bd_err_clear(&err);
    cr_expect_eq(vvfat_geometry(&g, 32, false, 1ull << 20, "t", &err), -EINVAL);
}

/* ---- whole opens ---- */

static void put_file(const char *name, const char *text)
{
    FILE *f = fopen(tmp(name), "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static int open_src(const char *src, struct bd_node **n, struct bd_err *err)
{
    struct bd_flags flags = { .read_only = false };
    return bd_open_image(src, NULL, NULL, &flags, n, err);
}

/* The first data cluster of the root entry whose short name is sn. */
static uint32_t root_cluster_of(struct bd_node *n, uint64_t vol,
                                const struct vvfat_geom *g, const char *sn,
                                uint32_t *size)
{
    uint8_t dir[512];
    uint64_t root = vol + (uint64_t)(g->reserved + 2 * g->fat_sectors) * 512;
    for (uint32_t s = 0; s < g->root_sectors; s++) {
        cr_assert_eq(bd_pread(n, dir, 512, root + s * 512), 0);
        for (int e = 0; e < 16; e++) {
            if (memcmp(dir + 32 * e, sn, 11) == 0) {
                *size = bd_le32(dir + 32 * e + 28);
                return bd_le16(dir + 32 * e + 26);
            }
        }
    }
    return 0;
}

Test(vvfat_open, disk_reads_back, .init = tmpdir_setup, .fini = tmpdir_teardown)
{
    char src[600], text[3000];
    for (int i = 0; i < (int)sizeof(text) - 1; i++)
        text[i] = (char)('a' + i % 26);
    text[sizeof(text) - 1] = 0;
    cr_assert_eq(mkdir(tmp("d"), 0755), 0);
    put_file("d/HELLO.TXT", text);
    put_file("d/empty", "");
    cr_assert_eq(mkdir(tmp("d/sub"), 0755), 0);
    snprintf(src, sizeof(src), "fat:%s", tmp("d"));
    struct bd_node *n = NULL;
    struct bd_err err = { 0 };
    cr_assert_eq(open_src(src, &n, &err), 0, "%s", err.msg);
    cr_expect(n->flags.read_only);
    cr_expect_eq(bd_size(n), 528482304);
    uint8_t s[512];
    cr_assert_eq(bd_pread(n, s, 512, 0), 0);
    cr_expect_eq(s[446], 0x80);
    cr_expect_eq(s[450], 0x06);
    cr_expect_eq(bd_le32(s + 454), 63);
    cr_expect(s[510] == 0x55 && s[511] == 0xaa);
    cr_assert_eq(bd_pread(n, s, 512, 63 * 512), 0);
    cr_expect(memcmp(s + 43, "QEMU VVFAT ", 11) == 0);
    cr_expect(memcmp(s + 54, "FAT16   ", 8) == 0);

    struct vvfat_state *st = n->state;
    uint32_t size = 0;
    uint32_t c = root_cluster_of(n, 63 * 512, &st->g, "HELLO   TXT", &size);
    cr_assert(c >= 2);
    cr_expect_eq(size, sizeof(text) - 1);
    /* follow the chain in the FAT and compare the bytes */
    uint64_t fat = (63 + st->g.reserved) * 512ull;
    uint64_t data = (63 + st->g.data_start) * 512ull, cb = st->g.spc * 512ull;
    uint8_t *buf = malloc(cb);
    size_t got = 0;
    while (c >= 2 && c < 0xfff8 && got < size) {
        cr_assert_eq(bd_pread(n, buf, cb, data + (c - 2) * cb), 0);
        size_t k = size - got < cb ? size - got : cb;
        cr_expect(memcmp(buf, text + got, k) == 0);
        got += k;
        uint8_t e[512];
        cr_assert_eq(bd_pread(n, e, 512, fat + c * 2 / 512 * 512), 0);
        c = bd_le16(e + c * 2 % 512);
    }
    cr_expect_eq(got, size);
    cr_expect(c >= 0xfff8);
    free(buf);
    /* metadata and used clusters are data; the free rest reads as zeroes */
    uint64_t pnum;
    unsigned status;
    cr_assert_eq(bd_block_status(n, 0, 4096, &pnum, &status, NULL), 0);
    cr_expect(status & BD_STATUS_DATA);
    uint64_t tail = (uint64_t)bd_size(n) - (100u << 20);
    cr_assert_eq(bd_block_status(n, tail, 1 << 20, &pnum, &status, NULL), 0);
    cr_expect(status & BD_STATUS_ZERO);
    cr_expect_eq(pnum, 1u << 20);
    uint8_t z[4096], zeros[4096] = { 0 };
    cr_assert_eq(bd_pread(n, z, sizeof(z), tail), 0);
    cr_expect(memcmp(z, zeros, sizeof(z)) == 0);
    bd_node_close(n);
}

Test(vvfat_open, floppy_and_options, .init = tmpdir_setup, .fini = tmpdir_teardown)
{
    char src[700];
    struct bd_node *n = NULL;
    struct bd_err err = { 0 };
    cr_assert_eq(mkdir(tmp("f"), 0755), 0);
    put_file("f/a.txt", "hi");
    snprintf(src, sizeof(src), "driver=vvfat,dir=%s,floppy=on,fat-type=12,"
             "label=mydisk", tmp("f"));
    cr_assert_eq(open_src(src, &n, &err), 0, "%s", err.msg);
    cr_expect_eq(bd_size(n), 1474560);
    uint8_t s[512];
    cr_assert_eq(bd_pread(n, s, 512, 0), 0);
    cr_expect(memcmp(s + 43, "MYDISK     ", 11) == 0);
    cr_expect_eq(s[21], 0xf0);
    bd_node_close(n);

    const char *bad[] = { "driver=vvfat,dir=%s,fat-type=8",
                          "driver=vvfat,dir=%s,label=waytoolonglabel",
                          "driver=vvfat,dir=%s,label=a/b",
                          "driver=vvfat,dir=%s,floppy=on,fat-type=32",
                          "driver=vvfat,dir=%s/missing",
                          "driver=vvfat,dir=%s/a.txt",
                          "driver=vvfat,dir=%s,bogus=1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bd_err_clear(&err);
        n = NULL;
        snprintf(src, sizeof(src), bad[i], tmp("f"));
        cr_expect_lt(open_src(src, &n, &err), 0, "%s opened", src);
        cr_expect(err.msg[0], "%s: no message", src);
        cr_expect_null(n);
    }
}

Test(vvfat_open, does_not_fit, .init = tmpdir_setup, .fini = tmpdir_teardown)
{
    char src[600];
    struct bd_node *n = NULL;
    struct bd_err err = { 0 };
    cr_assert_eq(mkdir(tmp("big"), 0755), 0);
    int fd = open(tmp("big/sparse.bin"), O_CREAT | O_WRONLY, 0644);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, 3 << 20), 0);       /* 3 MiB, sparse */
    close(fd);
    snprintf(src, sizeof(src), "fat:floppy:%s", tmp("big"));
    cr_expect_eq(open_src(src, &n, &err), -ENOSPC);
    cr_expect(strstr(err.msg, "needs 3.0 MiB"), "%s", err.msg);
}

/* rw: a write into a file's cluster, once flushed, is in the host file;
 * a write to a free cluster changes nothing in DIR. */
Test(vvfat_open, rw_write_back, .init = tmpdir_setup, .fini = tmpdir_teardown)
{
    char src[600], text[1000];
    struct bd_node *n = NULL;
    struct bd_err err = { 0 };
    struct bd_flags flags = { .read_only = false };

    memset(text, 'o', sizeof(text) - 1);
    text[sizeof(text) - 1] = 0;
    cr_assert_eq(mkdir(tmp("w"), 0755), 0);
    put_file("w/DATA.TXT", text);
    snprintf(src, sizeof(src), "driver=vvfat,dir=%s,rw=on", tmp("w"));
    cr_assert_eq(bd_open_image(src, NULL, NULL, &flags, &n, &err), 0, "%s", err.msg);
    cr_expect(!n->flags.read_only);
    struct vvfat_state *st = n->state;
    uint32_t size = 0;
    uint32_t c = root_cluster_of(n, 63 * 512, &st->g, "DATA    TXT", &size);
    cr_assert(c >= 2);
    uint64_t at = (63 + st->g.data_start) * 512ull + (c - 2) * st->g.spc * 512ull;

    uint8_t s[512], back[512];
    memset(s, 'N', sizeof(s));
    cr_assert_eq(bd_pwrite(n, s, 512, bd_size(n) - 512, 0), 0);
    cr_assert_eq(bd_pread(n, back, 512, bd_size(n) - 512), 0);
    cr_expect(memcmp(s, back, 512) == 0);
    cr_assert_eq(bd_flush(n), 0);
    FILE *f = fopen(tmp("w/DATA.TXT"), "r");
    char got[1100] = "";
    cr_assert(f);
    cr_expect_eq(fread(got, 1, sizeof(got), f), sizeof(text) - 1);
    fclose(f);
    cr_expect(memcmp(got, text, sizeof(text) - 1) == 0, "a free cluster's write "
              "changed the file");

    cr_assert_eq(bd_pwrite(n, s, 512, at, 0), 0);
    cr_assert_eq(bd_flush(n), 0);
    f = fopen(tmp("w/DATA.TXT"), "r");
    cr_assert(f);
    cr_expect_eq(fread(got, 1, sizeof(got), f), sizeof(text) - 1);
    fclose(f);
    cr_expect(got[0] == 'N' && got[511] == 'N' && got[512] == 'o');
    bd_node_close(n);
}
