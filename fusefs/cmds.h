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

#endif
