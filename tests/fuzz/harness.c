/*
 * The driver shared by the fuzz targets: fuzz_image() and fuzz_read_all()
 * for image targets, and (with -DFUZZ_STANDALONE) a main() that runs seeds
 * and deterministic mutations of them without libFuzzer. See harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_image(const uint8_t *data, size_t size, const char *fmt,
                const struct bd_flags *flags,
                void (*use)(struct bd_node *n, void *arg), void *arg)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    struct bd_err err = { 0 };
    struct bd_node *n;
    int fd;

    if (!dir || !*dir)
        dir = "/tmp";
    if ((size_t)snprintf(path, sizeof(path), "%s/%s-fuzz.XXXXXX", dir, fmt) >=
        sizeof(path))
        return;
    fd = mkstemp(path);
    if (fd < 0)
        return;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return;
    }
    close(fd);
    if (bd_open_image(path, fmt, NULL, flags, &n, &err) == 0) {
        use(n, arg);
        bd_node_close(n);
    }
    unlink(path);
}

void fuzz_read_all(struct bd_node *n, uint8_t *buf, int64_t limit,
                   bool status)
{
    int64_t len = bd_size(n);

    for (int64_t off = 0; buf && off < len && off < limit; off += 1 << 20) {
        uint64_t l = len - off < (1 << 20) ? (uint64_t)(len - off)
                                            : (1u << 20);
        uint64_t pnum;
        unsigned st;

        if (status &&
            bd_block_status(n, (uint64_t)off, l, &pnum, &st, NULL) < 0)
            break;
        if (bd_pread(n, buf, l, (uint64_t)off) < 0)
            break;
    }
}

void fuzz_image_mode(const uint8_t *data, size_t size, const char *fmt,
                     void (*use)(struct bd_node *n, void *arg))
{
    struct bd_flags flags = { .backing = BD_BACKING_NONE };
    struct fuzz_input in;

    if (size < 2)
        return;
    in = (struct fuzz_input){ data + 1, size - 1, data[0] & 1 };
    flags.read_only = !in.rw;
    fuzz_image(in.data, in.size, fmt, &flags, use, &in);
}

void fuzz_read_then_write(struct bd_node *n, void *arg)
{
    const struct fuzz_input *in = arg;
    int64_t len = bd_size(n);
    uint8_t *buf = calloc(1, 1 << 20);

    fuzz_read_all(n, buf, 64 << 20, true);
    for (int i = 0; in->rw && buf && i < 4 && len > 0; i++) {
        uint64_t off = (uint64_t)(in->data[i % in->size] * 7919u) %
                       (uint64_t)len;
        uint64_t l = (uint64_t)len - off < 70000 ? (uint64_t)len - off : 70000;

        if (bd_pwrite(n, buf, l, off, 0) < 0)
            break;
    }
    free(buf);
}

void fuzz_read_status(struct bd_node *n, void *arg)
{
    uint8_t *buf = malloc(1 << 20);

    (void)arg;
    if (buf)
        fuzz_read_all(n, buf, 64 << 20, true);
    free(buf);
}

void fuzz_image_readonly(const uint8_t *data, size_t size, const char *fmt)
{
    struct bd_flags flags = { .read_only = true };

    if (size < 1)
        return;
    fuzz_image(data + 1, size - 1, fmt, &flags, fuzz_read_status, NULL);
}

size_t fuzz_mutate_head(uint8_t *m, size_t len, size_t head)
{
    size_t mlen = len;

    for (int k = rand() % 8 + 1; k > 0; k--) {
        size_t span = len - 1 < head ? len - 1 : head;
        size_t at = 1 + (size_t)rand() % span;
        m[at] = rand() % 3 ? (uint8_t)rand() : 0xff;
    }
    if (rand() % 8 == 0)
        mlen = 2 + (size_t)rand() % (len - 1);
    m[0] = (uint8_t)rand();
    return mlen;
}

size_t fuzz_mutate_text(uint8_t *m, size_t len, const char *alphabet)
{
    size_t ml = len, na = strlen(alphabet);

    for (int e = 0; e < 1 + rand() % 4; e++) {
        size_t at = ml ? (size_t)rand() % ml : 0;
        switch (rand() % 3) {
        case 0:
            if (ml)
                m[at] = (uint8_t)alphabet[rand() % (int)na];
            break;
        case 1:
            if (ml < len + 8) {
                memmove(m + at + 1, m + at, ml - at);
                m[at] = (uint8_t)alphabet[rand() % (int)na];
                ml++;
            }
            break;
        default:
            if (ml) {
                memmove(m + at, m + at + 1, ml - at - 1);
                ml--;
            }
        }
    }
    return ml;
}

#ifndef FUZZ_STANDALONE
/* libFuzzer: its own mutations, then (half of the time) the target's
 * checksum fixup, so checksummed metadata is not a wall. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    size_t n = LLVMFuzzerMutate(data, size, max_size);

    if (fuzz_target.fixup && n > 1 && (seed & 1))
        fuzz_target.fixup(data, n);
    return n;
}
#endif

#ifdef FUZZ_STANDALONE
#include <signal.h>
#include <time.h>

/* Present when built with a sanitizer: called when it reports an error. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static const char *crash_path;
static const uint8_t *volatile cur;
static volatile size_t cur_len;
static volatile sig_atomic_t dumped;
static unsigned input_timeout = 20;
static unsigned long inputs;

static void say(const char *s)
{
    if (write(2, s, strlen(s)) < 0)
        return;
}

/* Save the input being run; async-signal-safe. */
static void dump_input(void)
{
    const uint8_t *d = cur;
    size_t len = cur_len;
    int fd;

    if (!d || dumped)
        return;
    dumped = 1;
    if (!crash_path) {
        say("fuzz: the failing input was not saved (no -o)\n");
        return;
    }
    fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        say("fuzz: cannot write the failing input\n");
        return;
    }
    while (len > 0) {
        ssize_t w = write(fd, d, len);
        if (w <= 0)
            break;
        d += w;
        len -= (size_t)w;
    }
    close(fd);
    say("fuzz: failing input written to ");
    say(crash_path);
    say(" (replay: -r FILE)\n");
}

static void on_signal(int sig)
{
    if (sig == SIGALRM)
        say("fuzz: input timed out\n");
    dump_input();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_failures(void)
{
    static const int fatal[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL };

    signal(SIGABRT, on_signal);
    signal(SIGALRM, on_signal);
    if (__sanitizer_set_death_callback) {
        /* the sanitizer handles the fatal signals and reports them */
        __sanitizer_set_death_callback(dump_input);
        return;
    }
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        signal(fatal[i], on_signal);
}

static void run_one(const uint8_t *data, size_t size)
{
    /* an exact copy, so a sanitizer sees reads past the input's end */
    uint8_t *d = malloc(size ? size : 1);

    if (!d)
        return;
    memcpy(d, data, size);
    cur_len = size;
    cur = d;
    alarm(input_timeout);
    LLVMFuzzerTestOneInput(d, size);
    alarm(0);
    cur = NULL;
    inputs++;
    free(d);
}

/* The file at path, after pre bytes of room; NULL with errno on failure. */
static uint8_t *slurp(const char *path, size_t pre, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
        fclose(f);
        return NULL;
    }
    rewind(f);
    buf = malloc(pre + (size_t)n + FUZZ_MAX_GROW);
    if (!buf) {
        fclose(f);
        errno = ENOMEM;
        return NULL;
    }
    *len = pre + fread(buf + pre, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-n N] [-t SECONDS] [-T SECONDS] [-o CRASH] SEED...\n"
            "       %s [-T SECONDS] [-o CRASH] -r INPUT...\n",
            prog, prog);
    return 2;
}

int main(int argc, char **argv)
{
    long rounds = -1;
    double seconds = -1, start = now();
    bool replay = false;
    int opt, nseeds;

    while ((opt = getopt(argc, argv, "n:t:T:o:r")) != -1) {
        switch (opt) {
        case 'n':
            rounds = atol(optarg);
            break;
        case 't':
            seconds = atof(optarg);
            break;
        case 'T':
            input_timeout = (unsigned)atoi(optarg);
            break;
        case 'o':
            crash_path = optarg;
            break;
        case 'r':
            replay = true;
            break;
        default:
            return usage(argv[0]);
        }
    }
    nseeds = argc - optind;
    if (nseeds <= 0)
        return usage(argv[0]);
    if (rounds < 0 && seconds < 0)
        rounds = 0;
    catch_failures();

    for (int i = optind; i < argc; i++) {
        double deadline = now() + seconds / nseeds;
        size_t len;
        uint8_t *seed, *m;

        if (fuzz_target.text_seeds && !replay) {
            len = strlen(argv[i]);
            seed = malloc(len + FUZZ_MAX_GROW);
            if (seed)
                memcpy(seed, argv[i], len);
        } else {
            seed = slurp(argv[i], replay ? 0 : 1, &len);
            if (seed && !replay && len < 2) {
                free(seed);
                seed = NULL;
                errno = EINVAL;
            }
        }
        if (!seed) {
            perror(argv[i]);
            return 1;
        }
        if (!fuzz_target.text_seeds && !replay)
            seed[0] = fuzz_target.seed_mode;
        run_one(seed, len);
        m = malloc(len + FUZZ_MAX_GROW);
        srand(1);
        for (long r = 0; m && !replay; r++) {
            if (rounds >= 0 && r >= rounds)
                break;
            if (seconds >= 0 && now() >= deadline)
                break;
            memcpy(m, seed, len);
            size_t ml = fuzz_target.mutate(m, len);
            if (fuzz_target.fixup && ml > 1 && rand() % 2)
                fuzz_target.fixup(m, ml);
            run_one(m, ml);
        }
        free(m);
        free(seed);
    }
    printf("%lu inputs from %d %s in %.1f s\n", inputs, nseeds,
           replay ? "files" : "seeds", now() - start);
    return 0;
}
#endif
