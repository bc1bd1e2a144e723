/*
 * The two VHDX headers (2.2.2): decoding both and choosing the current one
 * at open, and writing both copies in crash-safe order. What the log and
 * write session change in them (LogGuid, the write GUIDs) is decided by
 * log.c and write.c; the region table and metadata are metadata.c's.
 */
#include "vhdx.h"
#include "core/overflow.h"

#include <stdlib.h>
#include <string.h>

static const uint64_t hdr_where[2] = { VHDX_HEADER1_OFF, VHDX_HEADER2_OFF };

static bool vhdx_header_decode(const uint8_t *b, struct vhdx_header *h)
{
    if (memcmp(b, "head", 4) != 0)
        return false;
    if (bd_le32(b + 4) != vhdx_crc32c_skip(b, VHDX_HEADER_SIZE, 4))
        return false;
    h->seq = bd_le64(b + 8);
    memcpy(h->file_write_guid, b + 16, 16);
    memcpy(h->data_write_guid, b + 32, 16);
    memcpy(h->log_guid, b + 48, 16);
    h->log_version = bd_le16(b + 64);
    h->version = bd_le16(b + 66);
    h->log_len = bd_le32(b + 68);
    h->log_off = bd_le64(b + 72);
    return true;
}

void vhdx_header_encode(uint8_t *out, const struct vhdx_header *h)
{
    memset(out, 0, VHDX_HEADER_SIZE);
    memcpy(out, "head", 4);
    bd_put_le64(out + 8, h->seq);
    memcpy(out + 16, h->file_write_guid, 16);
    memcpy(out + 32, h->data_write_guid, 16);
    memcpy(out + 48, h->log_guid, 16);
    bd_put_le16(out + 64, h->log_version);
    bd_put_le16(out + 66, h->version);
    bd_put_le32(out + 68, h->log_len);
    bd_put_le64(out + 72, h->log_off);
    bd_put_le32(out + 4, vhdx_crc32c_skip(out, VHDX_HEADER_SIZE, 4));
}

int vhdx_read_headers(struct bd_node *n, struct bd_err *err)
{
    struct vhdx_state *s = n->state;
    struct vhdx_header h[2];
    bool ok[2];
    uint8_t *buf;
    int ret;

    buf = malloc(VHDX_HEADER_SIZE);
    if (!buf)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    for (int i = 0; i < 2; i++) {
        ret = bd_pread(n->file, buf, VHDX_HEADER_SIZE, hdr_where[i]);
        if (ret < 0) {
            free(buf);
            return bd_err_set(err, -ret, "%s: cannot read vhdx header %d: %s",
                              n->name, i + 1, strerror(-ret));
        }
        ok[i] = vhdx_header_decode(buf, &h[i]);
    }
    free(buf);
    if (!ok[0] && !ok[1])
        return bd_err_set(err, EINVAL, "%s: both vhdx headers are corrupt "
                          "(bad signature or checksum)", n->name);
    if (ok[0] && ok[1] && h[0].seq == h[1].seq &&
        memcmp(&h[0], &h[1], sizeof(h[0])) != 0)
        return bd_err_set(err, EINVAL, "%s: the two vhdx headers have the same "
                          "sequence number but differ", n->name);
    s->cur_hdr = (ok[0] && (!ok[1] || h[0].seq > h[1].seq)) ? 0 : 1;
    s->hdr = h[s->cur_hdr];

    if (s->hdr.version != 1)
        return bd_err_set(err, ENOTSUP, "%s: vhdx version %u is not supported",
                          n->name, s->hdr.version);
    if (s->hdr.log_version != 0)
        return bd_err_set(err, ENOTSUP, "%s: vhdx log version %u is not "
                          "supported", n->name, s->hdr.log_version);
    if (s->hdr.log_len % VHDX_MiB || s->hdr.log_off % VHDX_MiB ||
        s->hdr.log_off < VHDX_MiB || s->hdr.log_len == 0)
        return bd_err_set(err, EINVAL, "%s: vhdx log location is invalid "
                          "(offset %llu, length %u)", n->name,
                          (unsigned long long)s->hdr.log_off, s->hdr.log_len);
    if (!ovf_range_ok(s->hdr.log_off, s->hdr.log_len, s->file_size))
        return bd_err_set(err, EINVAL, "%s: vhdx log lies beyond the end of "
                          "the file (truncated image?)", n->name);
    return 0;
}

int vhdx_headers_write(struct bd_node *n)
{
    struct vhdx_state *s = n->state;
    uint8_t *b = malloc(VHDX_HEADER_SIZE);
    int ret = 0;

    if (!b)
        return -ENOMEM;
    /* update the stale copy first, so one good header survives a crash */
    for (int i = 0; i < 2; i++) {
        int slot = 1 - s->cur_hdr;

        s->hdr.seq++;
        vhdx_header_encode(b, &s->hdr);
        ret = bd_pwrite(n->file, b, VHDX_HEADER_SIZE, hdr_where[slot], 0);
        if (ret < 0)
            break;
        ret = bd_flush(n->file);
        if (ret < 0)
            break;
        s->cur_hdr = slot;
    }
    free(b);
    return ret;
}
