/*
 * The static driver table: lookup by name, by URI scheme, and iteration for
 * probing. Nothing registers itself; core/registry.c lists every driver.
 */
#ifndef IMGFUSE_REGISTRY_H
#define IMGFUSE_REGISTRY_H

#include "bd.h"

const struct bd_driver *bd_driver_find(const char *name);
const struct bd_driver *bd_driver_for_scheme(const char *scheme);
const struct bd_driver *const *bd_driver_all(size_t *count);

#endif
