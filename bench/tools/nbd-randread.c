/* The random-read ceiling of an NBD server: JOBS threads, one connection
 * each, synchronous 4 KiB reads at random aligned offsets for SECS seconds,
 * no FUSE in the way. Prints the total IOPS.
 *   nbd-randread URI JOBS SECS */
#include <libnbd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *uri;
static double secs;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *job(void *arg)
{
    uint64_t *count = arg, seed = (uint64_t)(uintptr_t)arg | 1;
    char buf[4096];
    struct nbd_handle *h = nbd_create();
    if (!h || nbd_connect_uri(h, uri) < 0) {
        fprintf(stderr, "nbd-randread: %s\n", nbd_get_error());
        exit(1);
    }
    int64_t blocks = nbd_get_size(h) / 4096;
    double end = now() + secs;
    while (now() < end) {
        for (int i = 0; i < 64; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if (nbd_pread(h, buf, sizeof(buf), (seed % (uint64_t)blocks) * 4096, 0) < 0) {
                fprintf(stderr, "nbd-randread: %s\n", nbd_get_error());
                exit(1);
            }
        }
        *count += 64;
    }
    nbd_shutdown(h, 0);
    nbd_close(h);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: nbd-randread URI JOBS SECS\n");
        return 2;
    }
    uri = argv[1];
    int jobs = atoi(argv[2]);
    secs = atof(argv[3]);
    if (jobs < 1 || jobs > 64 || secs <= 0)
        return 2;
    pthread_t t[64];
    uint64_t count[64] = { 0 };
    for (int i = 0; i < jobs; i++)
        pthread_create(&t[i], NULL, job, &count[i]);
    uint64_t total = 0;
    for (int i = 0; i < jobs; i++) {
        pthread_join(t[i], NULL);
        total += count[i];
    }
    printf("%.0f\n", (double)total / secs);
    return 0;
}
