/*
 * Fuzz target for vvfat's rw commit (the one parser of guest data in
 * vvfat): a small FAT12 floppy over a fresh directory, the input written
 * over its first sectors (boot sector, FATs, root directory, first
 * clusters), then a flush carries it back into the directory. It must not
 * crash, and nothing may appear beside the directory (never outside DIR).
 *
 * Built by meson as fuzz-vvfat; seeds in tests/data/vvfat/ (README.md there
 * says how they were made).
 */
#include "harness.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void put(const char *dir, const char *name, const char *text, size_t len)
{
    char p[4400];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f)
        abort();
    fwrite(text, 1, len, f);
    fclose(f);
}

/* Only "d" may be in top after the commit. */
static void check_confined(const char *top)
{
    DIR *d = opendir(top);
    struct dirent *e;
    if (!d)
        abort();
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            strcmp(e->d_name, "d")) {
            fprintf(stderr, "vvfat commit wrote outside DIR: %s\n", e->d_name);
            abort();
        }
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    char top[4096], dir[4200], src[4400], b[3000];
    struct bd_flags flags = { .read_only = false };
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    if (size < 2)
        return 0;
    snprintf(top, sizeof(top), "%s/vvfat-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(top))
        abort();
    snprintf(dir, sizeof(dir), "%s/d", top);
    snprintf(src, sizeof(src), "%s/sub", dir);
    if (mkdir(dir, 0755) || mkdir(src, 0755))
        abort();
    memset(b, 'b', sizeof(b));
    put(dir, "a.txt", "hello\n", 6);
    put(dir, "sub/b.bin", b, sizeof(b));
    snprintf(src, sizeof(src), "driver=vvfat,dir=%s,rw=on,floppy=on,fat-type=12",
             dir);
    if (bd_open_image(src, NULL, NULL, &flags, &n, &err) == 0) {
        size_t len = (size - 1 + 511) / 512 * 512;
        uint8_t *buf = calloc(1, len);
        if (!buf)
            abort();
        memcpy(buf, data + 1, size - 1);
        /* mode bit 0: keep vvfat's own boot sector */
        size_t skip = data[0] & 1 ? 512 : 0;
        if (len > skip)
            bd_pwrite(n, buf + skip, len - skip, skip, 0);
        bd_flush(n);
        bd_node_close(n);
        free(buf);
    }
    check_confined(top);
    nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static size_t mutate(uint8_t *m, size_t len)
{
    return fuzz_mutate_head(m, len, len);
}

const struct fuzz_target fuzz_target = {
    .seed_mode = 1,
    .min_len = 1024,
    .mutate = mutate,
};
