/*
 * `imgfuse check`: run the format's own consistency check (and repair) on
 * an open image and make what it repaired durable. What counts as a leak
 * or a corruption is each format's; printing the verdict is the front-end's.
 */
#include "bd-internal.h"
#include "graph.h"

#include <string.h>

bool bd_node_can_check(struct bd_node *n)
{
    return n->drv->check != NULL;
}

int bd_check_image(struct bd_node *n, unsigned fix, struct bd_check *res,
                   struct bd_err *err)
{
    if (!n->drv->check)
        return bd_err_set(err, ENOTSUP, "%s: %s images have no metadata to "
                          "check", n->name, n->drv->name);
    int r = n->drv->check(n, fix, res, err);
    if (r == 0 && fix)
        r = bd_flush(n);
    if (r < 0 && err->errnum == 0)
        bd_err_set(err, -r, "%s: check failed: %s", n->name, strerror(-r));
    return r;
}
