/*
 * `imgfuse lease init SPEC`: prepare a lease manager's shared storage
 * before the first mount: lockd's lockspace directory, sanlock's
 * lockspace (formatted through the sanlock daemon). Lease files are
 * made on first use by the mounts themselves.
 */
#include "cmds.h"
#include "locks/lease.h"

#include <stdio.h>

int cmd_lease(struct cli *c)
{
    struct bd_err err = { 0 };
    if (lease_init(c->lease_spec, &err) < 0) {
        fprintf(stderr, "imgfuse: lease init: %s\n", err.msg);
        return 1;
    }
    return 0;
}
