/*
 * Mounting: open every SOURCE, prepare the mountpoint, daemonize so that
 * the parent returns only once the mount answers, run the session loop,
 * and tear everything down (flush, unlock, close) when it ends.
 */
#ifndef IMGFUSE_MOUNT_H
#define IMGFUSE_MOUNT_H

#include "cli.h"

/* Runs the whole mount; returns the process exit status. */
int fusefs_mount_main(const char *argv0, struct cli *c);

#endif
