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

/*
 * Check d against the rules of core/bd.h (the required callbacks of its kind, a
 * sub-table complete or absent, no ops that do not belong to its kind, no
 * write ops on a read-only format). 0 when it keeps them; -EINVAL with the
 * first broken rule in why (a sentence naming the driver).
 */
int bd_driver_contract_check(const struct bd_driver *d, char *why, size_t size);

#endif
