/*
 * Progress of long work: drivers report, the front-end (if it set a
 * display) shows. One display for the process; a job is one caller at a
 * time in practice (create, check, open), so no more than a pointer is kept.
 */
#include "bd.h"

#include <stdatomic.h>

static _Atomic(bd_progress_fn) display;

void bd_progress_set(bd_progress_fn fn)
{
    atomic_store(&display, fn);
}

void bd_progress(const char *what, const char *unit, uint64_t done,
                 uint64_t total)
{
    bd_progress_fn fn = atomic_load(&display);
    if (fn && total)
        fn(what, unit, done > total ? total : done, total);
}
