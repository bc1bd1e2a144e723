/*
 * The terminal's progress line, as qemu-img -p draws it, with a rate:
 *   preallocating: 42.00% (1.2 GiB/s)
 * redrawn at most ten times a second on stderr, ended by a newline when the
 * job is done. Installed only when stderr is a terminal and -q is not given.
 */
#include "progress.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static double start, last_draw;
static bool drawing;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rate_text(char *buf, size_t size, const char *unit, double per_s)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    if (strcmp(unit, "B") != 0) {
        snprintf(buf, size, "%.0f %s/s", per_s, unit);
        return;
    }
    unsigned u = 0;
    while (per_s >= 1024 && u < 4)
        per_s /= 1024, u++;
    snprintf(buf, size, "%.1f %s/s", per_s, units[u]);
}

static void draw(const char *what, const char *unit, uint64_t done,
                 uint64_t total)
{
    double t = now();
    bool end = done == total;
    pthread_mutex_lock(&lock);
    if (!drawing) {
        drawing = true;
        start = t;
        last_draw = 0;
    }
    if (end || t - last_draw >= 0.1) {
        char rate[48] = "";
        if (t - start > 0.05 || (end && t > start))
            rate_text(rate, sizeof(rate), unit, (double)done / (t - start));
        fprintf(stderr, "\r%s: %6.2f%%%s%s%s\033[K%s", what,
                100.0 * (double)done / (double)total, *rate ? " (" : "", rate,
                *rate ? ")" : "", end ? "\n" : "");
        last_draw = t;
    }
    if (end)
        drawing = false;
    pthread_mutex_unlock(&lock);
}

void fusefs_progress_init(bool quiet)
{
    if (!quiet && isatty(STDERR_FILENO))
        bd_progress_set(draw);
}
