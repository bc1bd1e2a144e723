/*
 * The on-disk layout of the logwrites filter's log, shared by the filter
 * and by whoever reads the log (tests/tools/replay-writes.py follows it
 * too). The log is a header, then records appended in order of completion.
 */
#ifndef IMGFUSE_LOGWRITES_H
#define IMGFUSE_LOGWRITES_H

#include <stdint.h>

/* header: 8 magic bytes, then version (u32 LE), then 4 reserved bytes */
#define LOGW_MAGIC "IMGFLOGW"
#define LOGW_VERSION 1u
#define LOGW_HEADER_SIZE 16

/*
 * A record: type (u32 LE), flags (u32 LE, the request's BD_REQ_*), off
 * (u64 LE), len (u64 LE); a write is followed by its len bytes of data.
 * A truncate's new size is in off (len 0). A flush has off = len = 0 and
 * is appended only once the file's flush has returned: everything before
 * it in the log is durable.
 */
enum logw_type {
    LOGW_WRITE = 1,
    LOGW_ZEROES = 2,
    LOGW_DISCARD = 3,
    LOGW_FLUSH = 4,
    LOGW_TRUNCATE = 5,
};
#define LOGW_RECORD_SIZE 24

#endif
