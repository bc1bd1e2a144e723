/*
 * Progress of long work on the terminal (fusefs/progress.c).
 */
#ifndef IMGFUSE_PROGRESS_H
#define IMGFUSE_PROGRESS_H

#include "core/bd.h"

/* Show progress when stderr is a terminal, unless quiet (-q). */
void fusefs_progress_init(bool quiet);

#endif
