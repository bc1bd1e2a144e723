/*
 * vvfat overlay (rw): the sectors the guest wrote, stored at their own
 * offsets in an unlinked temporary file (sparse), with two bitmaps per
 * chunk of sectors, allocated when the chunk is first written: "written"
 * (read from the overlay, not from the generated disk) and "dirty"
 * (written since the last commit into DIR).
 */
#include "vvfat.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vvfat_overlay_open(struct vvfat_overlay *ov, uint64_t sectors,
                       struct bd_err *err)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];

    snprintf(path, sizeof(path), "%s/imgfuse-vvfat.XXXXXX",
             dir && *dir ? dir : "/tmp");
    ov->fd = mkstemp(path);
    if (ov->fd < 0)
        return bd_err_set(err, errno, "vvfat: cannot make the file for the "
                          "disk's writes in %s: %s (set TMPDIR)",
                          dir && *dir ? dir : "/tmp", strerror(errno));
    unlink(path);
    ov->sectors = sectors;
    ov->chunks = (sectors + VVFAT_CHUNK - 1) / VVFAT_CHUNK;
    ov->written = calloc(ov->chunks, sizeof(*ov->written));
    ov->dirty = calloc(ov->chunks, sizeof(*ov->dirty));
    if (!ov->written || !ov->dirty)
        return bd_err_set(err, ENOMEM, "vvfat: out of memory");
    return 0;
}

void vvfat_overlay_close(struct vvfat_overlay *ov)
{
    for (uint64_t i = 0; ov->written && i < ov->chunks; i++) {
        free(ov->written[i]);
        free(ov->dirty[i]);
    }
    free(ov->written);
    free(ov->dirty);
    if (ov->fd > 0)
        close(ov->fd);
    memset(ov, 0, sizeof(*ov));
}

static bool bit(uint8_t *const *map, uint64_t sec)
{
    const uint8_t *c = map[sec / VVFAT_CHUNK];
    uint32_t i = sec % VVFAT_CHUNK;
    return c && (c[i / 8] >> (i % 8) & 1);
}

bool vvfat_overlay_has(const struct vvfat_overlay *ov, uint64_t sec, bool dirty)
{
    if (!ov->written || sec >= ov->sectors)
        return false;
    return bit(dirty ? ov->dirty : ov->written, sec);
}

/* Sectors from sec on (at most max) that are all written or all not. */
uint64_t vvfat_overlay_run(const struct vvfat_overlay *ov, uint64_t sec,
                           uint64_t max, bool *written)
{
    uint64_t n = 1;
    *written = vvfat_overlay_has(ov, sec, false);
    while (n < max && vvfat_overlay_has(ov, sec + n, false) == *written)
        n++;
    return n;
}

static int mark(uint8_t **map, uint64_t sec)
{
    uint8_t **c = &map[sec / VVFAT_CHUNK];
    uint32_t i = sec % VVFAT_CHUNK;
    if (!*c && !(*c = calloc(1, VVFAT_CHUNK / 8)))
        return -ENOMEM;
    (*c)[i / 8] |= (uint8_t)(1u << (i % 8));
    return 0;
}

int vvfat_overlay_write(struct vvfat_overlay *ov, const void *buf, uint64_t len,
                        uint64_t off)
{
    const uint8_t *p = buf;
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(ov->fd, p + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        done += (uint64_t)r;
    }
    for (uint64_t s = off / BD_SECTOR; s < (off + len) / BD_SECTOR; s++) {
        if (mark(ov->written, s) < 0 || mark(ov->dirty, s) < 0)
            return -ENOMEM;
    }
    return 0;
}

int vvfat_overlay_read(struct vvfat_overlay *ov, void *buf, uint64_t len,
                       uint64_t off)
{
    uint8_t *p = buf;
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = pread(ov->fd, p + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0) {
            memset(p + done, 0, len - done);
            break;
        }
        done += (uint64_t)r;
    }
    return 0;
}

/* A commit carried everything back: nothing is dirty any more. */
void vvfat_overlay_clean(struct vvfat_overlay *ov)
{
    for (uint64_t i = 0; ov->dirty && i < ov->chunks; i++) {
        free(ov->dirty[i]);
        ov->dirty[i] = NULL;
    }
}
