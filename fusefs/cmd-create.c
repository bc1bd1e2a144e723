/*
 * `imgfuse create` and `imgfuse check`: thin front-ends over core's image
 * creation and the format drivers' check callbacks.
 */
#include "cmds.h"
#include "core/graph.h"

#include <inttypes.h>
#include <stdio.h>

int cmd_create(struct cli *c)
{
    struct bd_err err = { 0 };
    uint64_t size;
    if (bd_parse_size(c->create_size, &size) < 0) {
        fprintf(stderr, "imgfuse: '%s' is not a size; use bytes or a suffix "
                "such as 64M, 10G\n", c->create_size);
        return 1;
    }
    if (bd_create_image(c->sources[0], c->format, size, c->create_opts, &err) < 0) {
        fprintf(stderr, "imgfuse: %s\n", err.msg);
        return 1;
    }
    printf("created %s: %s, %" PRIu64 " bytes\n", c->sources[0], c->format, size);
    return 0;
}

int cmd_check(struct cli *c)
{
    struct bd_err err = { 0 };
    struct bd_node *n;
    struct bd_flags f = c->flags;
    char xopts[sizeof(c->fmt_opts) + 512];
    unsigned fix = 0;
    if (c->check_repair)
        fix = c->check_repair[0] == 'a' ? BD_CHECK_FIX_LEAKS | BD_CHECK_FIX_ERRORS
                                        : BD_CHECK_FIX_LEAKS;
    f.read_only = fix == 0;
    if (bd_open_image(c->sources[0], c->format,
                              cli_source_opts(c, c->sources[0], xopts, sizeof(xopts)), &f, &n, &err) < 0) {
        fprintf(stderr, "imgfuse: %s\n", err.msg);
        return 1;
    }
    bool can = bd_node_can_check(n);
    struct bd_check res = { 0 };
    int r = bd_check_image(n, fix, &res, &err);
    bd_node_close(n);
    if (r < 0) {
        fprintf(stderr, "imgfuse: %s\n", err.msg);
        return can ? 1 : 63;
    }
    if (res.corruptions_fixed || res.leaks_fixed)
        printf("repaired %" PRIu64 " corruptions and %" PRIu64 " leaked clusters\n",
               res.corruptions_fixed, res.leaks_fixed);
    if (res.corruptions)
        printf("%" PRIu64 " errors were found on the image; data may be corrupted\n",
               res.corruptions);
    if (res.leaks)
        printf("%" PRIu64 " leaked clusters were found on the image; this means "
               "waste of disk space, but no harm to data\n", res.leaks);
    if (!res.corruptions && !res.leaks)
        printf("no errors were found on the image\n");
    return res.corruptions ? 2 : res.leaks ? 3 : 0;
}
