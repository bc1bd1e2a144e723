/*
 * The human error channel: struct bd_err keeps the first failure's errno
 * and sentence; callers going outward add context in front. Printing is the
 * front-end's job, never done here.
 */
#include "bd.h"

#include <stdio.h>
#include <string.h>

int bd_err_set(struct bd_err *err, int errnum, const char *fmt, ...)
{
    if (errnum <= 0)
        errnum = EIO;
    if (err && err->errnum == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->errnum = errnum;
    }
    return -errnum;
}

void bd_err_prefix(struct bd_err *err, const char *fmt, ...)
{
    char ctx[512], old[sizeof(err->msg)];
    va_list ap;

    if (!err || err->errnum == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof(ctx), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    size_t cl = strlen(ctx);
    if (cl > sizeof(err->msg) - 3)
        cl = sizeof(err->msg) - 3;
    memcpy(err->msg, ctx, cl);
    memcpy(err->msg + cl, ": ", 2);
    size_t room = sizeof(err->msg) - cl - 3, ol = strlen(old);
    if (ol > room)
        ol = room;
    memcpy(err->msg + cl + 2, old, ol);
    err->msg[cl + 2 + ol] = '\0';
}

void bd_err_clear(struct bd_err *err)
{
    err->errnum = 0;
    err->msg[0] = '\0';
}
