/*
 * Logging: stderr in the foreground, syslog once daemonized. Debug output
 * is enabled per module (-o debug=qcow2,nbd) and costs one branch when off.
 */
#include "bd.h"
#include "graph.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

unsigned log_debug_mask;
static bool log_to_syslog;
static char debug_mods[256];
static char context[PATH_MAX + 300];

void log_set_context(const char *ctx)
{
    snprintf(context, sizeof(context), "%s", ctx ? ctx : "");
}

void log_use_syslog(bool on)
{
    log_to_syslog = on;
    if (on)
        openlog("imgfuse", LOG_PID, LOG_DAEMON);
}

void log_set_debug(const char *mods)
{
    snprintf(debug_mods, sizeof(debug_mods), ",%s,", mods ? mods : "");
    log_debug_mask = mods && *mods ? 1u : 0u;
}

static void log_v(int prio, const char *tag, const char *fmt, va_list ap)
{
    char line[2048];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (log_to_syslog) {
        /* detached: say which mount and image the message is about */
        if (context[0])
            syslog(prio, "%s: %s%s", context, tag, line);
        else
            syslog(prio, "%s%s", tag, line);
        return;
    }
    fprintf(stderr, "imgfuse: %s%s\n", tag, line);
}

#define LOG_FN(fn, prio, tag)                  \
    void fn(const char *fmt, ...)              \
    {                                          \
        va_list ap;                            \
        va_start(ap, fmt);                     \
        log_v(prio, tag, fmt, ap);             \
        va_end(ap);                            \
    }
LOG_FN(log_err, LOG_ERR, "error: ")
LOG_FN(log_warn, LOG_WARNING, "warning: ")
LOG_FN(log_info, LOG_INFO, "")

unsigned log_debug_bit(const char *mod)
{
    char pat[64];
    snprintf(pat, sizeof(pat), ",%s,", mod);
    return strstr(debug_mods, pat) || strstr(debug_mods, ",all,") ? 1u : 0u;
}

void log_debug_(const char *mod, const char *fmt, ...)
{
    char tag[64];
    va_list ap;

    if (!log_debug_bit(mod))
        return;
    snprintf(tag, sizeof(tag), "debug %s: ", mod);
    va_start(ap, fmt);
    log_v(LOG_DEBUG, tag, fmt, ap);
    va_end(ap);
}
