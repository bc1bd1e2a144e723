/*
 * The cloop header and block index: find the header (start of the file,
 * or its last 136 bytes for V4's footer layout), read the n + 1 offsets
 * and check every one against the block size and the file size before any
 * block is read. Everything here is untrusted input.
 */
#include "cloop.h"

#include <stdlib.h>
#include <string.h>

#include "core/overflow.h"

unsigned cloop_head_version(const uint8_t *p)
{
    if (memcmp(p, "#!/bin/sh", 9) != 0)
        return 0;
    if (memcmp(p + CLOOP_SIG_OFF, "V2.0", 4) == 0)
        return 2;
    if (memcmp(p + CLOOP_SIG_OFF, "V4.0", 4) == 0)
        return 4;
    return 0;
}

struct cloop_extent cloop_block(const struct cloop_index *ix, uint32_t i)
{
    uint64_t start = ix->ptrs[i] & CLOOP_OFF_MASK;
    uint64_t end = ix->ptrs[i + 1] & CLOOP_OFF_MASK;

    return (struct cloop_extent){
        .off = start,
        .len = end - start,
        .codec = ix->version == 4 ? (unsigned)(ix->ptrs[i] >> 60)
                                  : CLOOP_CODEC_ZLIB,
    };
}

int cloop_index_check(struct cloop_index *ix, uint64_t file_size,
                      const char *name, struct bd_err *err)
{
    uint64_t max = cloop_max_stored(ix->block_size);

    ix->max_src = 0;
    ix->codecs_seen = 0;
    if (ix->version == 2) {
        /* V2 offsets are plain 64-bit numbers: no flag bits to strip */
        for (uint64_t i = 0; i <= ix->n_blocks; i++) {
            if (ix->ptrs[i] > CLOOP_OFF_MASK)
                return bd_err_set(err, EINVAL,
                                  "%s: block %llu starts at offset %llu, "
                                  "beyond any file", name,
                                  (unsigned long long)i,
                                  (unsigned long long)ix->ptrs[i]);
        }
    }
    for (uint32_t i = 0; i < ix->n_blocks; i++) {
        uint64_t start = ix->ptrs[i] & CLOOP_OFF_MASK;
        uint64_t end = ix->ptrs[i + 1] & CLOOP_OFF_MASK;
        struct cloop_extent e;

        if (end < start)
            return bd_err_set(err, EINVAL,
                              "%s: the block index goes backwards at block "
                              "%u (%llu after %llu); the image is corrupt",
                              name, i + 1, (unsigned long long)end,
                              (unsigned long long)start);
        e = cloop_block(ix, i);
        if (e.codec >= CLOOP_N_CODECS)
            return bd_err_set(err, ENOTSUP,
                              "%s: block %u uses unknown compression %u",
                              name, i, e.codec);
        if (e.len > max)
            return bd_err_set(err, EINVAL,
                              "%s: block %u is stored in %llu bytes, more "
                              "than a %u-byte block can need; the image is "
                              "corrupt", name, i, (unsigned long long)e.len,
                              ix->block_size);
        if (end > file_size)
            return bd_err_set(err, EINVAL,
                              "%s: block %u ends at offset %llu, beyond the "
                              "end of the file (%llu bytes); the image is "
                              "truncated", name, i, (unsigned long long)end,
                              (unsigned long long)file_size);
        if (e.len > ix->max_src)
            ix->max_src = e.len;
        ix->codecs_seen |= 1u << e.codec;
    }
    return 0;
}

/* Block size and count from a header; where the index is. */
static int parse_head(const uint8_t *h, uint64_t head_off, uint64_t file_size,
                      const char *name, struct cloop_index *ix,
                      uint64_t *index_off, struct bd_err *err)
{
    uint64_t index_len;

    ix->block_size = bd_be32(h + CLOOP_PREAMBLE);
    ix->n_blocks = bd_be32(h + CLOOP_PREAMBLE + 4);
    if (ix->block_size == 0 || ix->block_size % 512 != 0 ||
        ix->block_size > CLOOP_MAX_BLOCK)
        return bd_err_set(err, EINVAL,
                          "%s: block size %u is not a multiple of 512 "
                          "between 512 and %u", name, ix->block_size,
                          CLOOP_MAX_BLOCK);
    index_len = ((uint64_t)ix->n_blocks + 1) * 8;
    if (index_len > CLOOP_MAX_INDEX)
        return bd_err_set(err, EFBIG,
                          "%s: %u blocks need a %llu-byte index, more than "
                          "the %llu bytes allowed", name, ix->n_blocks,
                          (unsigned long long)index_len,
                          (unsigned long long)CLOOP_MAX_INDEX);
    if (index_len > file_size - CLOOP_HEAD_SIZE)
        return bd_err_set(err, EINVAL,
                          "%s: the file (%llu bytes) is too small for the "
                          "index of %u blocks; the image is truncated",
                          name, (unsigned long long)file_size, ix->n_blocks);
    *index_off = ix->footer ? head_off - index_len : CLOOP_HEAD_SIZE;
    return 0;
}

int cloop_index_load(struct bd_node *file, const char *name,
                     struct cloop_index *ix, struct bd_err *err)
{
    uint8_t h[CLOOP_HEAD_SIZE];
    int64_t fsize = bd_size(file);
    uint64_t head_off = 0, index_off = 0, index_len;
    int ret;

    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          name, strerror((int)-fsize));
    if ((uint64_t)fsize < CLOOP_HEAD_SIZE)
        return bd_err_set(err, EINVAL, "%s: %lld bytes is too short for a "
                          "cloop header", name, (long long)fsize);
    ret = bd_pread(file, h, CLOOP_HEAD_SIZE, 0);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: reading the header: %s", name,
                          strerror(-ret));
    ix->version = cloop_head_version(h);
    if (ix->version == 0) {
        head_off = (uint64_t)fsize - CLOOP_HEAD_SIZE;
        ret = bd_pread(file, h, CLOOP_HEAD_SIZE, head_off);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: reading the footer: %s", name,
                              strerror(-ret));
        ix->version = cloop_head_version(h);
        ix->footer = true;
    }
    if (ix->version == 0)
        return bd_err_set(err, EINVAL, "%s: no cloop V2.0 or V4.0 header "
                          "at the start or the end of the file", name);
    ret = parse_head(h, head_off, (uint64_t)fsize, name, ix, &index_off, err);
    if (ret < 0)
        return ret;
    index_len = ((uint64_t)ix->n_blocks + 1) * 8;
    ix->ptrs = malloc(index_len);
    if (!ix->ptrs)
        return bd_err_set(err, ENOMEM, "%s: no memory for an index of %u "
                          "blocks", name, ix->n_blocks);
    ret = bd_pread(file, ix->ptrs, index_len, index_off);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: reading the block index: %s", name,
                          strerror(-ret));
    for (uint64_t i = 0; i <= ix->n_blocks; i++)
        ix->ptrs[i] = bd_be64(&ix->ptrs[i]);
    return cloop_index_check(ix, (uint64_t)fsize, name, err);
}

void cloop_index_free(struct cloop_index *ix)
{
    free(ix->ptrs);
    ix->ptrs = NULL;
}
