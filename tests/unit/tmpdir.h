/*
 * A temporary directory per test for the unit tests of image drivers, and
 * an open that must succeed. Define TMPDIR_PREFIX ("test-qcow") before the
 * include; use `.init = tmpdir_setup, .fini = tmpdir_teardown` on the suite
 * and tmp("a.img") for a path inside the directory (the last eight stay
 * valid, so a test may hold several at once); open_image_ok() and
 * expect_fill() for what a test reads back.
 */
#ifndef IMGFUSE_TEST_TMPDIR_H
#define IMGFUSE_TEST_TMPDIR_H

#include "core/graph.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef TMPDIR_PREFIX
#error "define TMPDIR_PREFIX before including tmpdir.h"
#endif

static char tmpdir[256];

static inline void tmpdir_setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/" TMPDIR_PREFIX ".XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static inline void tmpdir_teardown(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static inline char *tmp(const char *name)
{
    static char path[8][512];
    static int k;

    k = (k + 1) % 8;
    snprintf(path[k], sizeof(path[k]), "%s/%s", tmpdir, name);
    return path[k];
}

/* Opens path as format fmt (read-only unless rw); the test fails if it cannot. */
static inline struct bd_node *open_image_ok(const char *path, const char *fmt,
                                            bool rw)
{
    struct bd_flags flags = { .read_only = !rw };
    struct bd_err err = { 0 };
    struct bd_node *n = NULL;

    cr_assert_eq(bd_open_image(path, fmt, NULL, &flags, &n, &err), 0,
                 "open %s: %s", path, err.msg);
    return n;
}

/* Reads len bytes of n at off; the test fails unless every one is v. */
static inline void expect_fill(struct bd_node *n, uint64_t off, uint64_t len, uint8_t v)
{
    uint8_t *buf = malloc(len);

    cr_assert(buf);
    cr_assert_eq(bd_pread(n, buf, len, off), 0);
    for (uint64_t i = 0; i < len; i++)
        cr_assert_eq(buf[i], v, "offset %llu is 0x%02x, not 0x%02x",
                     (unsigned long long)(off + i), buf[i], v);
    free(buf);
}

#endif
