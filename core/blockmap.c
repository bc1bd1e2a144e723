/*
 * Walking a byte range block by block for block-table formats: which
 * block, where in it, how much of it. What a block holds (table lookups,
 * allocation, data I/O) is the caller's, done in its callback.
 */
#include "core/bd.h"

int bd_for_each_block(uint64_t off, uint64_t len, uint32_t block_size,
                      int (*fn)(void *ctx, uint64_t block, uint32_t in_block,
                                uint32_t chunk, uint64_t done),
                      void *ctx)
{
    /* off + done never wraps while done < len, even when the range ends
     * at 2^64, so the end is never computed */
    for (uint64_t done = 0; done < len;) {
        uint64_t pos = off + done;
        uint32_t in = (uint32_t)(pos % block_size);
        uint32_t chunk = block_size - in;
        int r;

        if (chunk > len - done)
            chunk = (uint32_t)(len - done);
        r = fn(ctx, pos / block_size, in, chunk, done);
        if (r != 0)
            return r;
        done += chunk;
    }
    return 0;
}
