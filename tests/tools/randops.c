/*
 * randops: a random-operation tester for one file (the mounted raw file).
 *
 * It keeps a model of the file's bytes in memory and applies random
 * operations to both: pread/pwrite, reads and writes through mmap, the same
 * through a second O_DIRECT descriptor, truncate, fallocate (allocate, punch
 * hole, zero range), copy_file_range, fsync, close and reopen, and an
 * optional unmount/remount by a command in the middle. Every read is checked
 * against the model, and so is the whole file at each reopen and at the end.
 *
 * Everything random comes from --seed, so the same arguments replay the same
 * operations exactly; --log writes one line per operation, and a failure
 * prints the last operations and the command line that replays it.
 *
 * Written for imgfuse's test suite from the idea of a file-system exerciser;
 * no code of any other tester is in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#include <linux/falloc.h>
#endif

#define DIO_ALIGN 4096u
#define RING 32

enum op {
    OP_READ, OP_WRITE, OP_MAPREAD, OP_MAPWRITE, OP_DREAD, OP_DWRITE,
    OP_TRUNCATE, OP_FALLOC, OP_PUNCH, OP_ZERO, OP_COPY, OP_FSYNC, OP_REOPEN,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "read", "write", "mapread", "mapwrite", "dread", "dwrite", "truncate",
    "falloc", "punch", "zero", "copy", "fsync", "reopen",
};

/* Relative weights; 0 turns an operation off. */
static unsigned weight[OP_COUNT] = {
    [OP_READ] = 20, [OP_WRITE] = 20, [OP_MAPREAD] = 6, [OP_MAPWRITE] = 6,
    [OP_DREAD] = 0, [OP_DWRITE] = 0, [OP_TRUNCATE] = 0, [OP_FALLOC] = 3,
    [OP_PUNCH] = 6, [OP_ZERO] = 6, [OP_COPY] = 4, [OP_FSYNC] = 2,
    [OP_REOPEN] = 1,
};

struct cfg {
    const char *file;
    const char *log;
    const char *dump;
    const char *remount_cmd;
    const char *ops_off;         /* comma list of op names to turn off */
    uint64_t seed;
    unsigned long ops;
    unsigned long remount_at;    /* 0 = never */
    uint64_t maxsize;            /* growable: the largest size truncate picks */
    uint32_t size_align;         /* growable: sizes stay multiples of it */
    uint32_t maxlen;             /* largest single read/write */
    bool growable;
    bool direct;
    bool quiet;
};

static struct cfg C = { .ops = 10000, .maxlen = 256 * 1024 };

static uint8_t *model;           /* C.maxsize bytes; [0, size) is the file */
static uint64_t size;
static int fd = -1, dfd = -1;
static uint8_t *iobuf;           /* DIO_ALIGN-aligned scratch of 2*maxlen */
static FILE *oplog;
static unsigned long opno;
static char ring[RING][160];
static uint64_t rng_state;
static unsigned long counts[OP_COUNT];
static long pagesize;

/* ---- randomness: xorshift64*, fully determined by the seed ------------- */

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static void rnd_fill(uint8_t *p, size_t n)
{
    /* a tenth of the writes are zeroes: drivers detect those */
    if (rnd_below(10) == 0) {
        memset(p, 0, n);
        return;
    }
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rnd();
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* ---- reporting ---------------------------------------------------------- */

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
    char *line = ring[opno % RING];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof(ring[0]), "%lu ", opno);
    vsnprintf(line + n, sizeof(ring[0]) - (size_t)n, fmt, ap);
    va_end(ap);
    if (oplog)
        fprintf(oplog, "%s\n", line);
}

static void replay_hint(void)
{
    fprintf(stderr, "replay: randops --file %s --seed %" PRIu64 " --ops %lu "
            "--maxsize %" PRIu64 " --maxlen %" PRIu32 " --size-align %" PRIu32 "%s%s%s%s\n",
            C.file, C.seed, C.ops, C.maxsize, C.maxlen, C.size_align,
            C.growable ? " --growable" : "", C.direct ? " --direct" : "",
            C.ops_off ? " --no " : "", C.ops_off ? C.ops_off : "");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "randops: op %lu: ", opno);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "last operations:\n");
    for (unsigned long i = opno >= RING - 1 ? opno - (RING - 1) : 0; i <= opno; i++)
        fprintf(stderr, "  %s\n", ring[i % RING]);
    replay_hint();
    if (oplog)
        fflush(oplog);
    exit(1);
}

static void check_bytes(const uint8_t *got, uint64_t off, size_t len, const char *how)
{
    if (memcmp(got, model + off, len) == 0)
        return;
    size_t i = 0;
    while (got[i] == model[off + i])
        i++;
    size_t j = len;
    while (got[j - 1] == model[off + j - 1])
        j--;
    die("%s of [%" PRIu64 ", +%zu): bytes [%" PRIu64 ", %" PRIu64 ") differ "
        "from the model (first: got 0x%02x, expected 0x%02x)", how, off, len,
        off + i, off + j, got[i], model[off + i]);
}

/* ---- file descriptors ---------------------------------------------------- */

static void open_fds(void)
{
    fd = open(C.file, O_RDWR);
    if (fd < 0)
        die("open %s: %s", C.file, strerror(errno));
    if (C.direct) {
        dfd = open(C.file, O_RDWR | O_DIRECT);
        if (dfd < 0)
            die("open %s with O_DIRECT: %s", C.file, strerror(errno));
    }
}

static void close_fds(void)
{
    if (close(fd) < 0)
        die("close: %s", strerror(errno));
    fd = -1;
    if (dfd >= 0 && close(dfd) < 0)
        die("close (O_DIRECT): %s", strerror(errno));
    dfd = -1;
}

static void check_size(const char *after)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat: %s", strerror(errno));
    if ((uint64_t)st.st_size != size)
        die("after %s the file is %" PRIu64 " bytes, the model %" PRIu64,
            after, (uint64_t)st.st_size, size);
}

static void full_pread(int f, uint8_t *buf, size_t len, uint64_t off, const char *what)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("%s at %" PRIu64 " (+%zu): %s", what, off + done, len - done,
                n < 0 ? strerror(errno) : "unexpected end of file");
        done += (size_t)n;
    }
}

static void full_pwrite(int f, const uint8_t *buf, size_t len, uint64_t off, const char *what)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("%s at %" PRIu64 " (+%zu): %s", what, off + done, len - done,
                n < 0 ? strerror(errno) : "wrote nothing");
        done += (size_t)n;
    }
}

static void verify_all(const char *when)
{
    check_size(when);
    for (uint64_t off = 0; off < size; off += C.maxlen) {
        size_t len = size - off < C.maxlen ? (size_t)(size - off) : C.maxlen;
        full_pread(fd, iobuf, len, off, "read back");
        check_bytes(iobuf, off, len, when);
    }
}

/* ---- picking ranges ------------------------------------------------------ */

/* An offset and length inside [0, limit), biased towards boundaries the
 * formats care about (sectors, pages, clusters, grains). */
static void pick_range(uint64_t limit, uint32_t maxlen, uint64_t *off, size_t *len)
{
    static const uint32_t aligns[] = { 1, 512, 4096, 65536, 1u << 20 };
    uint32_t a = aligns[rnd_below(sizeof(aligns) / sizeof(aligns[0]))];
    uint64_t o = rnd_below(limit);
    o -= o % a;
    uint64_t l = rnd_below(8) == 0 ? rnd_below(maxlen) + 1 : rnd_below(maxlen / 8) + 1;
    if (a > 1 && l > a)
        l -= l % a;
    if (o + l > limit)
        l = limit - o;
    *off = o;
    *len = (size_t)(l ? l : 1);
    if (o + *len > limit)
        *len = 0;
}

static void pick_aligned(uint64_t limit, uint64_t *off, size_t *len)
{
    uint64_t blocks = limit / DIO_ALIGN;
    *len = 0;
    if (blocks == 0)
        return;
    uint64_t b = rnd_below(blocks);
    uint64_t n = rnd_below(C.maxlen / DIO_ALIGN) + 1;
    if (b + n > blocks)
        n = blocks - b;
    *off = b * DIO_ALIGN;
    *len = (size_t)(n * DIO_ALIGN);
}

/* Formats whose size is a whole number of sectors (--size-align): a range
 * ending past the end of the file is stretched to end on a boundary, or
 * dropped (len 0) when that passes maxsize. */
static void align_end(uint64_t off, size_t *len)
{
    uint64_t end = off + *len, a = C.size_align;
    if (a <= 1 || end <= size || end % a == 0)
        return;
    end += a - end % a;
    *len = end <= C.maxsize && end - off <= 2 * (uint64_t)C.maxlen
           ? (size_t)(end - off) : 0;
}

/* ---- the operations ------------------------------------------------------ */

static void do_read(void)
{
    uint64_t off;
    size_t len;
    pick_range(size, C.maxlen, &off, &len);
    if (!len)
        return;
    record("read %" PRIu64 " +%zu", off, len);
    full_pread(fd, iobuf, len, off, "pread");
    check_bytes(iobuf, off, len, "pread");
}

static void do_write(void)
{
    uint64_t off;
    size_t len;
    /* growable files may be written past their end */
    uint64_t limit = C.growable && rnd_below(8) == 0 ? C.maxsize : size;
    pick_range(limit, C.maxlen, &off, &len);
    align_end(off, &len);
    if (!len)
        return;
    record("write %" PRIu64 " +%zu", off, len);
    rnd_fill(iobuf, len);
    full_pwrite(fd, iobuf, len, off, "pwrite");
    if (off + len > size) {
        if (off > size)
            memset(model + size, 0, off - size);
        size = off + len;
    }
    memcpy(model + off, iobuf, len);
}

static void do_map(bool write)
{
    uint64_t off;
    size_t len;
    pick_range(size, C.maxlen, &off, &len);
    if (!len)
        return;
    uint64_t moff = off - off % (uint64_t)pagesize;
    size_t mlen = (size_t)(off - moff) + len;
    record("%s %" PRIu64 " +%zu", write ? "mapwrite" : "mapread", off, len);
    uint8_t *m = mmap(NULL, mlen, write ? PROT_READ | PROT_WRITE : PROT_READ,
                      MAP_SHARED, fd, (off_t)moff);
    if (m == MAP_FAILED)
        die("mmap [%" PRIu64 ", +%zu): %s", moff, mlen, strerror(errno));
    if (write) {
        rnd_fill(iobuf, len);
        memcpy(m + (off - moff), iobuf, len);
        memcpy(model + off, iobuf, len);
        if (rnd_below(2) && msync(m, mlen, MS_SYNC) < 0)
            die("msync: %s", strerror(errno));
    } else {
        check_bytes(m + (off - moff), off, len, "mmap read");
    }
    if (munmap(m, mlen) < 0)
        die("munmap: %s", strerror(errno));
}

static void do_direct(bool write)
{
    uint64_t off;
    size_t len;
    pick_aligned(size, &off, &len);
    if (!len)
        return;
    record("%s %" PRIu64 " +%zu", write ? "dwrite" : "dread", off, len);
    if (write) {
        rnd_fill(iobuf, len);
        full_pwrite(dfd, iobuf, len, off, "O_DIRECT pwrite");
        memcpy(model + off, iobuf, len);
    } else {
        full_pread(dfd, iobuf, len, off, "O_DIRECT pread");
        check_bytes(iobuf, off, len, "O_DIRECT pread");
    }
}

static void do_truncate(void)
{
    uint64_t to = rnd_below(C.maxsize + 1);
    if (rnd_below(2))
        to -= to % 512;
    if (C.size_align > 1)
        to -= to % C.size_align;
    record("truncate %" PRIu64 " (from %" PRIu64 ")", to, size);
    if (ftruncate(fd, (off_t)to) < 0)
        die("ftruncate to %" PRIu64 ": %s", to, strerror(errno));
    if (to > size)
        memset(model + size, 0, to - size);
    size = to;
    check_size("truncate");
}

static void do_falloc(enum op which)
{
    uint64_t off;
    size_t len;
    uint64_t limit = C.growable && which != OP_PUNCH && rnd_below(4) == 0
                     ? C.maxsize : size;
    pick_range(limit, C.maxlen, &off, &len);
    align_end(off, &len);
    if (!len)
        return;
    int mode = which == OP_PUNCH ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
             : which == OP_ZERO ? FALLOC_FL_ZERO_RANGE : 0;
    if (which != OP_PUNCH && rnd_below(3) == 0)
        mode |= FALLOC_FL_KEEP_SIZE;
    record("%s %" PRIu64 " +%zu mode 0x%x", op_names[which], off, len, mode);
    if (fallocate(fd, mode, (off_t)off, (off_t)len) < 0)
        die("fallocate mode 0x%x [%" PRIu64 ", +%zu): %s", mode, off, len,
            strerror(errno));
    uint64_t end = off + len;
    if (!(mode & FALLOC_FL_KEEP_SIZE) && end > size) {
        memset(model + size, 0, end - size);
        size = end;
    }
    if (which != OP_FALLOC && off < size)
        memset(model + off, 0, (end < size ? end : size) - off);
    check_size(op_names[which]);
}

static void do_copy(void)
{
    uint64_t src, dst;
    size_t len;
    pick_range(size, C.maxlen, &src, &len);
    if (!len || len > size / 2)
        return;
    dst = rnd_below(size - len + 1);
    if (dst < src + len && src < dst + len)
        return;  /* the kernel refuses overlapping ranges of one file */
    record("copy %" PRIu64 " -> %" PRIu64 " +%zu", src, dst, len);
    loff_t in = (loff_t)src, out = (loff_t)dst;
    size_t left = len;
    while (left > 0) {
        ssize_t n = copy_file_range(fd, &in, fd, &out, left, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("copy_file_range %" PRIu64 " -> %" PRIu64 " (+%zu): %s",
                (uint64_t)in, (uint64_t)out, left, n < 0 ? strerror(errno) : "copied nothing");
        left -= (size_t)n;
    }
    memmove(model + dst, model + src, len);
}

static void do_fsync(void)
{
    bool data = rnd_below(2);
    record("%s", data ? "fdatasync" : "fsync");
    if ((data ? fdatasync(fd) : fsync(fd)) < 0)
        die("%s: %s", data ? "fdatasync" : "fsync", strerror(errno));
}

static void do_reopen(const char *why)
{
    record("reopen (%s)", why);
    close_fds();
    open_fds();
    verify_all("reopen");
}

static void remount(void)
{
    record("remount: %s", C.remount_cmd);
    close_fds();
    int r = system(C.remount_cmd);
    if (r != 0)
        die("the remount command failed (status %d): %s", r, C.remount_cmd);
    open_fds();
    verify_all("remount");
}

static enum op pick_op(void)
{
    unsigned total = 0;
    for (int i = 0; i < OP_COUNT; i++)
        total += weight[i];
    uint64_t r = rnd_below(total);
    for (int i = 0; i < OP_COUNT; i++) {
        if (r < weight[i])
            return (enum op)i;
        r -= weight[i];
    }
    return OP_READ;
}

static void run_op(enum op o)
{
    switch (o) {
    case OP_READ: do_read(); break;
    case OP_WRITE: do_write(); break;
    case OP_MAPREAD: do_map(false); break;
    case OP_MAPWRITE: do_map(true); break;
    case OP_DREAD: do_direct(false); break;
    case OP_DWRITE: do_direct(true); break;
    case OP_TRUNCATE: do_truncate(); break;
    case OP_FALLOC: case OP_PUNCH: case OP_ZERO: do_falloc(o); break;
    case OP_COPY: do_copy(); break;
    case OP_FSYNC: do_fsync(); break;
    case OP_REOPEN: do_reopen("random"); break;
    case OP_COUNT: break;
    }
    counts[o]++;
}

/* ---- setup --------------------------------------------------------------- */

static void usage(int code)
{
    fprintf(code ? stderr : stdout,
"usage: randops --file FILE [options]\n"
"  --seed N          randomness (default: time); the same seed replays\n"
"  --ops N           operations to run (default 10000)\n"
"  --growable        also truncate and write/fallocate past the end\n"
"  --maxsize BYTES   growable: the largest size (default 2x the file)\n"
"  --maxlen BYTES    the longest single operation (default 256 KiB)\n"
"  --size-align N    growable: the file's size stays a multiple of N (formats\n"
"                    sized in sectors); writes past the end are stretched\n"
"  --direct          also O_DIRECT reads and writes (4 KiB aligned)\n"
"  --no OP[,OP...]   leave operations out (read write mapread mapwrite dread\n"
"                    dwrite truncate falloc punch zero copy fsync reopen)\n"
"  --remount-at N    before operation N close the file, run --remount-cmd,\n"
"  --remount-cmd SH  reopen it and check every byte\n"
"  --log FILE        one line per operation\n"
"  --dump FILE       at the end write the model there (compare it with the\n"
"                    image converted by another tool)\n"
"  --quiet           print only failures\n");
    exit(code);
}

static uint64_t num_arg(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end)
        fprintf(stderr, "randops: %s: not a number: '%s'\n", what, s), exit(2);
    return v;
}

static void turn_off(const char *list)
{
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < OP_COUNT && strcmp(op_names[i], t) != 0)
            i++;
        if (i == OP_COUNT)
            fprintf(stderr, "randops: --no: unknown operation '%s'\n", t), exit(2);
        weight[i] = 0;
    }
    free(copy);
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        { "file", required_argument, NULL, 'f' }, { "seed", required_argument, NULL, 's' },
        { "ops", required_argument, NULL, 'n' }, { "growable", no_argument, NULL, 'g' },
        { "maxsize", required_argument, NULL, 'M' }, { "maxlen", required_argument, NULL, 'L' },
        { "direct", no_argument, NULL, 'd' }, { "no", required_argument, NULL, 'x' },
        { "remount-at", required_argument, NULL, 'r' },
        { "remount-cmd", required_argument, NULL, 'R' }, { "log", required_argument, NULL, 'l' },
        { "dump", required_argument, NULL, 'D' },
        { "size-align", required_argument, NULL, 'A' }, { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    C.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f': C.file = optarg; break;
        case 's': C.seed = num_arg(optarg, "--seed"); break;
        case 'n': C.ops = (unsigned long)num_arg(optarg, "--ops"); break;
        case 'g': C.growable = true; break;
        case 'M': C.maxsize = num_arg(optarg, "--maxsize"); break;
        case 'L': C.maxlen = (uint32_t)num_arg(optarg, "--maxlen"); break;
        case 'd': C.direct = true; break;
        case 'x': C.ops_off = optarg; break;
        case 'r': C.remount_at = (unsigned long)num_arg(optarg, "--remount-at"); break;
        case 'R': C.remount_cmd = optarg; break;
        case 'l': C.log = optarg; break;
        case 'D': C.dump = optarg; break;
        case 'A': C.size_align = (uint32_t)num_arg(optarg, "--size-align"); break;
        case 'q': C.quiet = true; break;
        case 'h': usage(0); break;
        default: usage(2);
        }
    }
    if (!C.file || optind != argc)
        usage(2);
    if (C.maxlen < DIO_ALIGN || C.maxlen % DIO_ALIGN)
        fprintf(stderr, "randops: --maxlen must be a multiple of %u\n", DIO_ALIGN), exit(2);
    if (C.remount_at && !C.remount_cmd)
        fprintf(stderr, "randops: --remount-at needs --remount-cmd\n"), exit(2);
    if (C.direct)
        weight[OP_DREAD] = weight[OP_DWRITE] = 5;
    if (C.growable)
        weight[OP_TRUNCATE] = 3;
    if (C.ops_off)
        turn_off(C.ops_off);
}

static void load_model(void)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat: %s", strerror(errno));
    size = (uint64_t)st.st_size;
    if (!C.maxsize)
        C.maxsize = C.growable ? size * 2 + C.maxlen : size;
    if (C.maxsize < size)
        C.maxsize = size;
    if (C.size_align > 1)
        C.maxsize -= C.maxsize % C.size_align;
    if (C.maxsize < size)
        C.maxsize = size;
    model = calloc(1, C.maxsize ? C.maxsize : 1);
    if (!model || posix_memalign((void **)&iobuf, DIO_ALIGN, 2 * (size_t)C.maxlen))
        die("out of memory for a model of %" PRIu64 " bytes", C.maxsize);
    for (uint64_t off = 0; off < size; off += C.maxlen) {
        size_t len = size - off < C.maxlen ? (size_t)(size - off) : C.maxlen;
        full_pread(fd, model + off, len, off, "initial read");
    }
}

static void dump_model(void)
{
    FILE *f = fopen(C.dump, "w");
    if (!f || (size && fwrite(model, 1, size, f) != size) || fclose(f) != 0)
        die("writing the model to %s: %s", C.dump, strerror(errno));
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    pagesize = sysconf(_SC_PAGESIZE);
    rng_state = C.seed ? C.seed : 1;
    if (C.log && !(oplog = fopen(C.log, "w")))
        fprintf(stderr, "randops: %s: %s\n", C.log, strerror(errno)), exit(2);
    open_fds();
    load_model();
    for (opno = 1; opno <= C.ops; opno++) {
        if (opno == C.remount_at)
            remount();
        run_op(pick_op());
    }
    opno = C.ops;
    if (fsync(fd) < 0)
        die("final fsync: %s", strerror(errno));
    verify_all("the end");
    if (C.dump)
        dump_model();
    close_fds();
    if (!C.quiet) {
        printf("randops: %lu operations, seed %" PRIu64 ", final size %" PRIu64 ":",
               C.ops, C.seed, size);
        for (int i = 0; i < OP_COUNT; i++)
            if (counts[i])
                printf(" %s %lu", op_names[i], counts[i]);
        printf("\n");
    }
    if (oplog)
        fclose(oplog);
    free(model);
    free(iobuf);
    return 0;
}
