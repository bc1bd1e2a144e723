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

/*
 * For messages that say what this build takes: writes "nbd, iscsi and ssh"
 * to buf, the first URI scheme of each driver in the table that pick()
 * accepts, followed by suffix ("" or "://"), in table order; "" when none is.
 * A list longer than size is cut short. Returns how many pick() accepted.
 */
size_t bd_driver_scheme_list(char *buf, size_t size, const char *suffix,
                             bool (*pick)(const struct bd_driver *drv));

#endif
