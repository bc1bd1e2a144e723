/*
 * The VHDX metadata log (2.3): finding the active sequence and replaying it
 * at open (into the file, or into memory for a read-only open), and
 * committing metadata sector updates through the log while writing.
 * What the updates mean (BAT, sector bitmaps) is write.c's business.
 */
#include "vhdx.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

#define LOG_HDR_SIZE    64u
#define LOG_DESC_SIZE   32u
#define LOG_MAX_TARGET  (1ull << 48)    /* replay never writes beyond this */

struct log_entry {
    uint32_t pos;           /* offset in the log */
    uint32_t len;
    uint32_t tail;
    uint32_t ndesc;
    uint32_t hdr_sectors;
    uint64_t seq;
    uint64_t flushed;       /* FlushedFileOffset */
    uint64_t last;          /* LastFileOffset */
};

struct log_ctx {
    const uint8_t *log;     /* the whole log region */
    uint32_t log_len;
    const uint8_t *guid;
    uint8_t *scratch;       /* log_len bytes: one entry, unwrapped */
    uint64_t work;          /* bytes checksummed so far */
    uint64_t budget;        /* ... and the most a sane log needs */
};

/* Copy len bytes of the circular log starting at pos. */
static void log_copy(struct log_ctx *c, uint8_t *out, uint32_t pos,
                     uint32_t len)
{
    uint32_t first = c->log_len - pos < len ? c->log_len - pos : len;

    memcpy(out, c->log + pos, first);
    memcpy(out + first, c->log, len - first);
}

/* Decode and fully validate the entry at pos; leaves it in c->scratch. */
static bool log_entry_valid(struct log_ctx *c, uint32_t pos,
                            struct log_entry *e)
{
    const uint8_t *h = c->log + pos;
    uint8_t *b = c->scratch;
    uint32_t ndata = 0;

    if (memcmp(h, "loge", 4) != 0)
        return false;
    e->pos = pos;
    e->len = bd_le32(h + 8);
    e->tail = bd_le32(h + 12);
    e->seq = bd_le64(h + 16);
    e->ndesc = bd_le32(h + 24);
    e->flushed = bd_le64(h + 48);
    e->last = bd_le64(h + 56);
    if (e->len < VHDX_LOG_SECTOR || e->len % VHDX_LOG_SECTOR ||
        e->len > c->log_len || e->tail % VHDX_LOG_SECTOR ||
        e->tail >= c->log_len || e->seq == 0 ||
        memcmp(h + 32, c->guid, 16) != 0)
        return false;
    if (e->ndesc > (e->len - LOG_HDR_SIZE) / LOG_DESC_SIZE)
        return false;
    e->hdr_sectors = (LOG_HDR_SIZE + e->ndesc * LOG_DESC_SIZE +
                      VHDX_LOG_SECTOR - 1) / VHDX_LOG_SECTOR;
    /* a hostile log of many huge "entries" must not make the scan endless */
    c->work += e->len;
    if (c->work > c->budget)
        return false;
    log_copy(c, b, pos, e->len);
    if (bd_le32(b + 4) != vhdx_crc32c_skip(b, e->len, 4))
        return false;
    for (uint32_t i = 0; i < e->ndesc; i++) {
        const uint8_t *d = b + LOG_HDR_SIZE + LOG_DESC_SIZE * i;
        bool is_zero = memcmp(d, "zero", 4) == 0;

        if (!is_zero && memcmp(d, "desc", 4) != 0)
            return false;
        if (bd_le64(d + 24) != e->seq || bd_le64(d + 16) % VHDX_LOG_SECTOR)
            return false;
        if (is_zero) {
            if (bd_le64(d + 8) % VHDX_LOG_SECTOR)
                return false;
            continue;
        }
        if ((uint64_t)e->hdr_sectors + ndata + 1 > e->len / VHDX_LOG_SECTOR)
            return false;
        const uint8_t *ds = b + (e->hdr_sectors + ndata) * VHDX_LOG_SECTOR;
        if (memcmp(ds, "data", 4) != 0 ||
            ((uint64_t)bd_le32(ds + 4) << 32 | bd_le32(ds + 4092)) != e->seq)
            return false;
        ndata++;
    }
    return true;
}

/*
 * The active sequence (2.3.3): scan the log for runs of valid entries, each
 * following the last with the next sequence number; a run whose head's Tail
 * names one of its entries is complete; the complete run with the highest
 * head sequence number is active, replayed from its Tail to its head.
 */
static bool log_find_active(struct log_ctx *c, struct log_entry *head,
                            uint32_t *start)
{
    bool found = false;
    uint32_t pos = 0;

    while (pos < c->log_len) {
        struct log_entry e, h;
        uint64_t span = 0;
        uint32_t p = pos, q;
        bool tail_in = false;

        if (!log_entry_valid(c, pos, &e)) {
            pos += VHDX_LOG_SECTOR;
            continue;
        }
        /* extend the run while the next entry follows in sequence */
        for (;;) {
            h = e;
            span += e.len;
            p = (uint32_t)((p + (uint64_t)e.len) % c->log_len);
            if (span >= c->log_len || !log_entry_valid(c, p, &e) ||
                e.seq != h.seq + 1)
                break;
        }
        /* complete only if the head's tail is one of the run's entries */
        q = pos;
        for (uint64_t walked = 0; walked < span; ) {
            struct log_entry t;

            if (q == h.tail) {
                tail_in = true;
                break;
            }
            if (!log_entry_valid(c, q, &t))
                break;
            walked += t.len;
            q = (uint32_t)((q + (uint64_t)t.len) % c->log_len);
        }
        if (tail_in && (!found || h.seq > head->seq)) {
            *head = h;
            *start = h.tail;
            found = true;
        }
        if ((uint64_t)pos + span >= c->log_len)
            break;
        pos += (uint32_t)span;
    }
    return found;
}

void vhdx_patches_free(struct vhdx_state *s)
{
    for (size_t i = 0; i < s->n_patches; i++)
        free(s->patches[i].data);
    free(s->patches);
    s->patches = NULL;
    s->n_patches = 0;
}

static int log_add_patch(struct vhdx_state *s, uint64_t off, uint64_t len,
                         uint8_t *data)
{
    struct vhdx_patch *p;

    p = realloc(s->patches, (s->n_patches + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    s->patches = p;
    p[s->n_patches++] = (struct vhdx_patch){ off, len, data };
    if (s->n_patches == 1 || off < s->patch_lo)
        s->patch_lo = off;
    if (off + len > s->patch_hi)
        s->patch_hi = off + len;
    return 0;
}

/* Apply one valid entry (in c->scratch): to the file or to the patch list. */
static int log_apply_entry(struct bd_node *n, struct log_ctx *c,
                           const struct log_entry *e, bool in_memory,
                           uint64_t *end)
{
    struct vhdx_state *s = n->state;
    const uint8_t *b = c->scratch;
    uint32_t ndata = 0;
    int ret;

    for (uint32_t i = 0; i < e->ndesc; i++) {
        const uint8_t *d = b + LOG_HDR_SIZE + LOG_DESC_SIZE * i;
        uint64_t off = bd_le64(d + 16);
        uint64_t len = memcmp(d, "zero", 4) == 0 ? bd_le64(d + 8)
                                                 : VHDX_LOG_SECTOR;
        uint8_t *sector = NULL;

        if (off < VHDX_MiB || !ovf_range_ok(off, len, LOG_MAX_TARGET))
            return -EINVAL;
        if (memcmp(d, "desc", 4) == 0) {
            const uint8_t *ds = b + (e->hdr_sectors + ndata++) * VHDX_LOG_SECTOR;
            sector = malloc(VHDX_LOG_SECTOR);
            if (!sector)
                return -ENOMEM;
            /* the first 8 and last 4 bytes live in the descriptor (2.3.1.3) */
            memcpy(sector, d + 8, 8);
            memcpy(sector + 8, ds + 8, VHDX_LOG_SECTOR - 12);
            memcpy(sector + VHDX_LOG_SECTOR - 4, d + 4, 4);
        }
        if (off + len > *end)
            *end = off + len;
        if (in_memory) {
            ret = log_add_patch(s, off, len, sector);
            if (ret < 0) {
                free(sector);
                return ret;
            }
            continue;
        }
        if (sector) {
            ret = bd_pwrite(n->file, sector, len, off, 0);
            free(sector);
        } else {
            ret = bd_pwrite_zeroes(n->file, len, off, 0);
        }
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int log_replay_sequence(struct bd_node *n, struct log_ctx *c,
                               const struct log_entry *head, uint32_t start,
                               bool in_memory, struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    uint64_t end = s->file_size > head->last ? s->file_size : head->last;
    uint32_t pos = start;
    uint64_t first_seq = 0;
    int ret;

    for (;;) {
        struct log_entry e;

        if (!log_entry_valid(c, pos, &e))
            return bd_err_set(err, EINVAL, "%s: vhdx log entry at %u vanished "
                              "during replay", n->name, pos);
        ret = log_apply_entry(n, c, &e, in_memory, &end);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: cannot replay the vhdx log: %s",
                              n->name, ret == -EINVAL ?
                              "an entry targets the header area or an absurd "
                              "offset" : strerror(-ret));
        s->replayed_entries++;
        if (pos == start)
            first_seq = e.seq;
        if (head->seq >= first_seq)
            bd_progress("replaying the vhdx log", "entries", e.seq - first_seq + 1,
                        head->seq - first_seq + 1);
        if (e.seq == head->seq)
            break;
        pos = (uint32_t)((pos + (uint64_t)e.len) % c->log_len);
    }
    s->replayed = true;
    if (in_memory) {
        s->eff_size = end;
        return 0;
    }
    if (end > s->file_size) {
        ret = bd_truncate(n->file, end, BD_PREALLOC_OFF, err);
        if (ret < 0)
            return ret;
        s->file_size = s->eff_size = end;
    }
    ret = bd_flush(n->file);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: cannot flush after log replay: %s",
                          n->name, strerror(-ret));
    memset(s->hdr.log_guid, 0, 16);
    ret = vhdx_headers_write(n);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: cannot write the vhdx headers after "
                          "log replay: %s", n->name, strerror(-ret));
    return 0;
}

int vhdx_log_replay(struct bd_node *n, struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    struct log_ctx c = { .log_len = s->hdr.log_len, .guid = s->hdr.log_guid };
    struct log_entry head;
    uint32_t start;
    uint8_t *log;
    int ret;

    if (vhdx_guid_is_zero(s->hdr.log_guid))
        return 0;
    if (s->hdr.log_len > VHDX_MAX_LOG)
        return bd_err_set(err, ENOTSUP, "%s: vhdx log of %u bytes is larger "
                          "than the %u bytes supported", n->name,
                          s->hdr.log_len, VHDX_MAX_LOG);
    log = malloc(s->hdr.log_len);
    c.scratch = malloc(s->hdr.log_len);
    if (!log || !c.scratch) {
        ret = bd_err_set(err, ENOMEM, "%s: out of memory for the vhdx log",
                         n->name);
        goto out;
    }
    ret = bd_pread(n->file, log, s->hdr.log_len, s->hdr.log_off);
    if (ret < 0) {
        ret = bd_err_set(err, -ret, "%s: cannot read the vhdx log: %s", n->name,
                         strerror(-ret));
        goto out;
    }
    c.log = log;
    /* every byte of a sane log is checksummed a few times at most */
    c.budget = 16ull * s->hdr.log_len + 64 * VHDX_MiB;
    ret = 0;
    if (!log_find_active(&c, &head, &start)) {
        if (c.work > c.budget) {
            ret = bd_err_set(err, EINVAL, "%s: the vhdx log is damaged beyond "
                             "scanning (too many overlapping entries)", n->name);
        } else if (!n->flags.read_only) {
            /* nothing valid to replay: mark the log empty again */
            memset(s->hdr.log_guid, 0, 16);
            ret = vhdx_headers_write(n);
            if (ret < 0)
                ret = bd_err_set(err, -ret, "%s: cannot write the vhdx "
                                 "headers: %s", n->name, strerror(-ret));
        }
        goto out;
    }
    if (c.work > c.budget) {
        ret = bd_err_set(err, EINVAL, "%s: the vhdx log is damaged beyond "
                         "scanning (too many overlapping entries)", n->name);
        goto out;
    }
    if (head.flushed > s->file_size) {
        ret = bd_err_set(err, EINVAL, "%s: the vhdx log says the file was at "
                         "least %llu bytes, it is %llu (truncated image)",
                         n->name, (unsigned long long)head.flushed,
                         (unsigned long long)s->file_size);
        goto out;
    }
    ret = log_replay_sequence(n, &c, &head, start, n->flags.read_only, err);
out:
    free(c.scratch);
    free(log);
    return ret;
}

/* ---- writing -------------------------------------------------------------- */

int vhdx_log_commit(struct bd_node *n, const uint64_t *offs,
                    const uint8_t *const *sectors, unsigned count)
{
    struct vhdx_state *s = n->state;
    uint32_t hs = (LOG_HDR_SIZE + count * LOG_DESC_SIZE + VHDX_LOG_SECTOR - 1) /
                  VHDX_LOG_SECTOR;
    uint64_t elen = (uint64_t)(hs + count) * VHDX_LOG_SECTOR;
    uint8_t *b;
    int ret;

    if (elen > s->hdr.log_len)
        return -ENOSPC;
    if (s->log_pos + elen > s->hdr.log_len)
        s->log_pos = 0;
    b = calloc(1, elen);
    if (!b)
        return -ENOMEM;
    memcpy(b, "loge", 4);
    bd_put_le32(b + 8, (uint32_t)elen);
    bd_put_le32(b + 12, s->log_pos);        /* everything before is applied */
    bd_put_le64(b + 16, s->log_seq);
    bd_put_le32(b + 24, count);
    memcpy(b + 32, s->hdr.log_guid, 16);
    bd_put_le64(b + 48, bd_align_down(s->file_size, VHDX_MiB));
    bd_put_le64(b + 56, bd_align_up(s->file_size, VHDX_MiB));
    for (unsigned i = 0; i < count; i++) {
        uint8_t *d = b + LOG_HDR_SIZE + LOG_DESC_SIZE * i;
        uint8_t *ds = b + (uint64_t)(hs + i) * VHDX_LOG_SECTOR;

        memcpy(d, "desc", 4);
        memcpy(d + 4, sectors[i] + VHDX_LOG_SECTOR - 4, 4);
        memcpy(d + 8, sectors[i], 8);
        bd_put_le64(d + 16, offs[i]);
        bd_put_le64(d + 24, s->log_seq);
        memcpy(ds, "data", 4);
        bd_put_le32(ds + 4, (uint32_t)(s->log_seq >> 32));
        memcpy(ds + 8, sectors[i] + 8, VHDX_LOG_SECTOR - 12);
        bd_put_le32(ds + VHDX_LOG_SECTOR - 4, (uint32_t)s->log_seq);
    }
    bd_put_le32(b + 4, vhdx_crc32c_skip(b, elen, 4));
    ret = bd_pwrite(n->file, b, elen, s->hdr.log_off + s->log_pos, 0);
    free(b);
    if (ret < 0)
        return ret;
    /* the entry is stable before the metadata changes in place (2.3) */
    if ((ret = bd_flush(n->file)) < 0)
        return ret;
    for (unsigned i = 0; i < count; i++) {
        ret = bd_pwrite(n->file, sectors[i], VHDX_LOG_SECTOR, offs[i], 0);
        if (ret < 0)
            return ret;
    }
    if ((ret = bd_flush(n->file)) < 0)
        return ret;
    s->log_pos += (uint32_t)elen;
    s->log_seq++;
    return 0;
}
