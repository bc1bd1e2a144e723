/*
 * The driver shared by the fuzz targets tests/fuzz/<name>.c.
 *
 * A target defines LLVMFuzzerTestOneInput() (the libFuzzer entry point)
 * and, for the standalone driver, `const struct fuzz_target fuzz_target`:
 * how a seed becomes an input and how an input is mutated. Image targets
 * use fuzz_image() to open an input as a whole image from a temporary file.
 *
 * meson (any compiler): build/fuzz-<name>, harness.c built with
 *   -DFUZZ_STANDALONE, which provides main():
 *     fuzz-<name> [-n N] [-t SECONDS] [-T SECONDS] [-o CRASH] SEED...
 *   runs each seed once, then N mutations of each (-n), or mutates the
 *   seeds for SECONDS in all (-t, split evenly between the seeds). The
 *   mutations are deterministic: srand(1) before each seed's. -T: an input
 *   running longer fails (default 20 s). -o: where the input that crashed
 *   or timed out is written, in libFuzzer's form (mode byte included).
 *     fuzz-<name> -r INPUT...
 *   runs inputs in libFuzzer's form once each (to replay a crash file).
 *
 * libFuzzer (clang), main() then comes from libFuzzer:
 *   CC=clang meson setup build-clang -Db_sanitize=address,undefined \
 *     -Db_lundef=false -Dfuzz=false && ninja -C build-clang libimgfuse-core.a
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -D_FILE_OFFSET_BITS=64 -I. -Icore -Ibuild-clang tests/fuzz/<name>.c \
 *     tests/fuzz/harness.c build-clang/libimgfuse-core.a \
 *     $(pkg-config --libs fuse3 zlib libzstd liburing libnbd libxml-2.0 \
 *       liblzma libssh libiscsi glusterfs-api libdeflate) -lbz2 -lm
 *   (the libraries of the drivers built: each driver's meson.build says)
 */
#ifndef IMGFUSE_FUZZ_HARNESS_H
#define IMGFUSE_FUZZ_HARNESS_H

#include "core/graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How many bytes a mutation may add to an input. */
#define FUZZ_MAX_GROW 64

struct fuzz_target {
    /* seeds are command-line strings taken as they are; otherwise seeds
     * are files, given to the target after one mode byte */
    bool text_seeds;
    /* the mode byte of an unmutated seed file */
    uint8_t seed_mode;
    /* seed files shorter than this (mode byte included) are refused */
    size_t min_len;
    /* change m, a copy of a seed's len input bytes with FUZZ_MAX_GROW bytes
     * of room after them, in place; return its new length */
    size_t (*mutate)(uint8_t *m, size_t len);
    /* optional: recompute the checksums of the input m (mode byte
     * included) after a mutation broke them, so the parsers behind the
     * checksums are reached. Under libFuzzer, half of libFuzzer's own
     * mutations get it (LLVMFuzzerCustomMutator in harness.c). */
    void (*fixup)(uint8_t *m, size_t len);
};

extern const struct fuzz_target fuzz_target;

/* A mutator for text targets (URIs, config files): replace, insert or
 * delete up to 4 characters drawn from alphabet; grows by at most 8. */
size_t fuzz_mutate_text(uint8_t *m, size_t len, const char *alphabet);

/*
 * Write data to a temporary file $TMPDIR/<fmt>-fuzz.XXXXXX (/tmp when
 * TMPDIR is unset), open it with bd_open_image() as format fmt with flags,
 * hand the node to use() when the open worked, then close it and remove
 * the file.
 */
void fuzz_image(const uint8_t *data, size_t size, const char *fmt,
                const struct bd_flags *flags,
                void (*use)(struct bd_node *n, void *arg), void *arg);

/* An input whose first byte picks the mode (bit 0: read-write) and whose
 * rest is a whole image. */
struct fuzz_input {
    const uint8_t *data;        /* the image */
    size_t size;
    bool rw;
};

/* fuzz_image() of such an input as format fmt, without backing files;
 * use() gets the node and the struct fuzz_input. */
void fuzz_image_mode(const uint8_t *data, size_t size, const char *fmt,
                     void (*use)(struct bd_node *n, void *arg));

/* A use() for fuzz_image_mode(): reads the first 64 MiB with block status,
 * then, read-write, 70000 bytes at 4 offsets drawn from the input. */
void fuzz_read_then_write(struct bd_node *n, void *arg);

/* A use() for read-only formats: reads the first 64 MiB with block status. */
void fuzz_read_status(struct bd_node *n, void *arg);

/* fuzz_image() of an input whose first byte is a (ignored) mode byte and
 * whose rest is a whole image, read-only, with fuzz_read_status(). */
void fuzz_image_readonly(const uint8_t *data, size_t size, const char *fmt);

/* A mutator for fuzz_image_mode() inputs: change 1 to 8 bytes among the
 * first head bytes of the image (0xff one time in 3), cut the input short
 * one time in 8, and draw a new mode byte. */
size_t fuzz_mutate_head(uint8_t *m, size_t len, size_t head);

/*
 * Read n from offset 0 in 1 MiB requests into buf (1 MiB), at most limit
 * bytes; with status, ask bd_block_status() for each range first. Stops at
 * the first error.
 */
void fuzz_read_all(struct bd_node *n, uint8_t *buf, int64_t limit,
                   bool status);

#endif
