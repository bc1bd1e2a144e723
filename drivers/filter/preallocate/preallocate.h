/*
 * The preallocate filter's arithmetic, apart from its I/O so that unit
 * tests reach it: how far the file is extended when the data outgrows it,
 * and whether an option value can be used. The filter itself is
 * preallocate.c.
 */
#ifndef IMGFUSE_PREALLOCATE_H
#define IMGFUSE_PREALLOCATE_H

#include "core/bd.h"
#include "core/overflow.h"

#define PREALLOC_ALIGN_DEFAULT (1ull << 20)
#define PREALLOC_SIZE_DEFAULT (128ull << 20)
/* a file length the file protocol can reach (off_t) */
#define PREALLOC_FILE_MAX ((uint64_t)INT64_MAX)

/*
 * The file length to extend to when the data must reach `end`: end plus
 * `size` bytes of zeroes, rounded up to a multiple of `align` (> 0), never
 * past PREALLOC_FILE_MAX. Never less than end, unless end itself lies past
 * PREALLOC_FILE_MAX (then 0: nothing to preallocate).
 */
static inline uint64_t prealloc_target(uint64_t end, uint64_t size,
                                       uint64_t align)
{
    uint64_t t;

    if (end > PREALLOC_FILE_MAX)
        return 0;
    if (ovf_add_u64(end, size, &t) || ovf_add_u64(t, align - 1, &t))
        t = PREALLOC_FILE_MAX;
    t = t / align * align;
    if (t > PREALLOC_FILE_MAX)
        t = PREALLOC_FILE_MAX / align * align;
    return t < end ? end : t;
}

/* prealloc-align is usable: non-zero, a multiple of the sector and of the
 * file's request alignment (QEMU refuses the rest the same way). */
static inline bool prealloc_align_ok(uint64_t align, uint32_t file_align)
{
    return align && align % BD_SECTOR == 0 && file_align &&
           align % file_align == 0;
}

#endif
