/*
 * What a live mount tells the rest of the system: a state file per mount
 * (read back by `imgfuse list`) and, under systemd, READY=1 once the mount
 * answers. The state files live in runstate_dir(): $IMGFUSE_RUNTIME_DIR,
 * else /run/imgfuse for root, else $XDG_RUNTIME_DIR/imgfuse, else
 * /tmp/imgfuse-UID.
 */
#ifndef IMGFUSE_RUNSTATE_H
#define IMGFUSE_RUNSTATE_H

#include "cli.h"
#include "fusefs.h"

#include <stddef.h>

/* The directory of the state files into buf; -errno when none fits. */
int runstate_dir(char *buf, size_t size);

/* The mount on `mountpoint` answers: write its state file (a failure is
 * logged, not fatal) and notify systemd when NOTIFY_SOCKET is set. */
void runstate_publish(const struct cli *c, const struct fusefs *fs,
                      const char *mountpoint);

/* The mount ends: tell systemd, remove the state file. */
void runstate_remove(void);

#endif
