/*
 * The subcommands besides mounting: info, create, check.
 */
#ifndef IMGFUSE_CMDS_H
#define IMGFUSE_CMDS_H

#include "cli.h"

int cmd_info(struct cli *c);
int cmd_create(struct cli *c);
int cmd_check(struct cli *c);
int cmd_lease(struct cli *c);
int cmd_list(struct cli *c);

/* --overlay: open c->sources[0] read-only (with opts), create or reuse the
 * overlay c->overlay (temp: a file removed once open) and open it writable
 * over the source, which becomes its backing node (*out)->backing. Clears
 * c->flags.read_only: the mount is writable. */
struct bd_node;
int fusefs_open_overlay(struct cli *c, const char *opts, struct bd_node **out,
                        struct bd_err *err);

#endif
