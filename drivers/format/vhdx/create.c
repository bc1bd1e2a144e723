/*
 * Creating VHDX images: file identifier, both headers, both region tables,
 * an empty log, the metadata region and the BAT, laid out on 1 MiB
 * boundaries; dynamic (blocks allocated on write), fixed (every block
 * allocated up front) or differencing (parent=FILE, another vhdx image).
 */
#include "vhdx.h"
#include "core/overflow.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const vhdx_create_options[] = {
    "subformat", "block_state_zero", "block_size", "log_size",
    "logical_sector_size", "physical_sector_size", "parent", NULL
};

static const char *const subformats[] = { "dynamic", "fixed", NULL };

struct vhdx_layout {
    uint64_t size;
    uint32_t block_size, lsec, psec;
    uint64_t log_off, log_len;
    uint64_t meta_off, meta_len;
    uint64_t bat_off, bat_len;
    uint64_t data_off;
    uint64_t payload_blocks, chunk_ratio, bat_entries;
    bool fixed, zero_state;
    /* differencing */
    char *parent_rel;               /* relative path, '\\' separators */
    uint8_t parent_guid[16];        /* parent's DataWriteGuid */
};

/* Block size when 0 ("automatic") is asked for: larger disks, larger blocks. */
static uint32_t vhdx_auto_block_size(uint64_t size)
{
    if (size > (32ull << 40))
        return 64 * VHDX_MiB;
    if (size > (100ull << 30))
        return 32 * VHDX_MiB;
    if (size > (1ull << 30))
        return 16 * VHDX_MiB;
    return 8 * VHDX_MiB;
}

/* Relative path from directory `from` to file `to` (both absolute and
 * canonical), with Windows separators, as relative_path stores it. */
static char *vhdx_relative_path(const char *from, const char *to)
{
    size_t common = 0, i = 0, ups = 0;
    char *out, *p;

    /* longest common prefix that ends at a directory boundary */
    while (from[i] && from[i] == to[i]) {
        i++;
        if (to[i] == '/' && (from[i] == '/' || from[i] == '\0'))
            common = i;
    }
    for (p = (char *)from + common; strcmp(from, "/") != 0 && *p; p++) {
        if (*p == '/')
            ups++;
    }
    out = malloc(3 * ups + strlen(to + common) + 2);
    if (!out)
        return NULL;
    strcpy(out, ups ? "" : ".");
    for (i = 0; i < ups; i++)
        strcat(out, i ? "/.." : "..");
    strcat(out, to + common);
    for (p = out; *p; p++) {
        if (*p == '/')
            *p = '\\';
    }
    return out;
}

/*
 * Read what a differencing child needs from its parent: size, sector size
 * and DataWriteGuid. Core opens the parent (alone, without its own parent)
 * beside the child, as it would open a backing file.
 */
static int vhdx_create_parent(struct bd_node *file, const char *name,
                              struct vhdx_layout *l, uint64_t *size,
                              struct bd_err *err)
{
    struct bd_node *pn = NULL;
    struct vhdx_state *ps;
    char *ppath = NULL, *cdir = NULL;
    int ret;

    /* the parent of a vhdx is a vhdx (2.6.2.6): never probe it as raw */
    ret = bd_open_image_related(file, name, "vhdx", &pn, err);
    if (ret < 0) {
        bd_err_prefix(err, "parent '%s'", name);
        return ret;
    }
    if (pn->drv != &bd_drv_vhdx) {
        ret = bd_err_set(err, EINVAL, "parent '%s' is a %s image, not vhdx",
                         name, pn->drv->name);
        goto out_close;
    }
    ps = pn->state;
    if (*size == 0)
        *size = ps->vsize;
    if (*size != ps->vsize) {
        ret = bd_err_set(err, EINVAL, "a differencing image has its parent's "
                         "size (%llu bytes), not %llu",
                         (unsigned long long)ps->vsize,
                         (unsigned long long)*size);
        goto out_close;
    }
    l->lsec = ps->lsec;
    l->psec = ps->psec;
    memcpy(l->parent_guid, ps->hdr.data_write_guid, 16);
    /* the relative path is made between the two on their storage: this
     * host, or for a child on a server (ssh://, gluster://) that server */
    ret = bd_node_location(pn, &ppath, NULL, err);
    if (ret == 0)
        ret = bd_node_location(file, NULL, &cdir, err);
    if (ret < 0)
        goto out_close;
    l->parent_rel = vhdx_relative_path(cdir, ppath);
    if (!l->parent_rel)
        ret = bd_err_set(err, ENOMEM, "out of memory");
out_close:
    free(ppath);
    free(cdir);
    bd_node_close(pn);
    return ret;
}

static int vhdx_create_opts(struct bd_node *file, const struct bd_opts *o,
                            uint64_t size, struct vhdx_layout *l,
                            struct bd_err *err)
{
    uint64_t bs, log, lsec, psec;
    const char *parent;
    int sub, ret;

    sub = bd_opts_get_enum(o, "subformat", subformats, 0, err);
    if (sub < 0)
        return sub;
    l->fixed = sub == 1;
    ret = bd_opts_get_bool(o, "block_state_zero", true, &l->zero_state, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = bd_opts_get_size(o, "block_size", 0, &bs, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = bd_opts_get_size(o, "log_size", VHDX_MiB, &log, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = bd_opts_get_size(o, "logical_sector_size", 512, &lsec, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;
    ret = bd_opts_get_size(o, "physical_sector_size", 4096, &psec, err);
    if (ret < 0 && ret != -ENOENT)
        return ret;

    parent = bd_opts_get(o, "parent");
    if (parent && *parent) {
        if (l->fixed)
            return bd_err_set(err, EINVAL, "a vhdx differencing image (parent) "
                              "cannot be fixed");
        l->zero_state = false;  /* ZERO blocks would hide the parent */
        ret = vhdx_create_parent(file, parent, l, &size, err);
        if (ret < 0)
            return ret;
        lsec = l->lsec;
        psec = l->psec;
        if (bs == 0)
            bs = 2 * VHDX_MiB;
    }
    if (bs == 0)
        bs = vhdx_auto_block_size(size);
    if (!bd_is_pow2(bs) || bs < VHDX_MIN_BLOCK || bs > VHDX_MAX_BLOCK)
        return bd_err_set(err, EINVAL, "vhdx block_size must be a power of two "
                          "from 1M to 256M (or 0 for automatic)");
    if (log < VHDX_MiB || log % VHDX_MiB || log > VHDX_MAX_LOG)
        return bd_err_set(err, EINVAL, "vhdx log_size must be a multiple of 1M "
                          "from 1M to 256M");
    if ((lsec != 512 && lsec != 4096) || (psec != 512 && psec != 4096))
        return bd_err_set(err, EINVAL, "vhdx sector sizes must be 512 or 4096");
    if (size > VHDX_MAX_VSIZE)
        return bd_err_set(err, EINVAL, "vhdx images are at most 64 TiB");
    if (size == 0)      /* QEMU cannot open an empty vhdx with a sane BAT */
        return bd_err_set(err, EINVAL, "vhdx images need a size above zero");
    if (size % lsec)
        return bd_err_set(err, EINVAL, "vhdx size must be a multiple of the "
                          "%llu-byte logical sector", (unsigned long long)lsec);
    l->size = size;
    l->block_size = (uint32_t)bs;
    l->lsec = (uint32_t)lsec;
    l->psec = (uint32_t)psec;
    l->log_len = log;
    return 0;
}

static void vhdx_layout(struct vhdx_layout *l)
{
    l->chunk_ratio = (VHDX_SECTORS_PER_BITMAP * l->lsec) / l->block_size;
    l->payload_blocks = (l->size + l->block_size - 1) / l->block_size;
    if (l->parent_rel)
        l->bat_entries = (l->payload_blocks + l->chunk_ratio - 1) /
                         l->chunk_ratio * (l->chunk_ratio + 1);
    else if (l->payload_blocks)
        l->bat_entries = l->payload_blocks +
                         (l->payload_blocks - 1) / l->chunk_ratio;
    else
        l->bat_entries = 0;
    l->log_off = VHDX_MiB;
    l->meta_off = l->log_off + l->log_len;
    l->meta_len = VHDX_MiB;
    l->bat_off = l->meta_off + l->meta_len;
    l->bat_len = bd_align_up(l->bat_entries ? l->bat_entries * 8 : 1,
                             VHDX_MiB);
    l->data_off = l->bat_off + l->bat_len;
}

static void put_region_table(uint8_t *t, const struct vhdx_layout *l)
{
    memset(t, 0, VHDX_REGION_SIZE);
    memcpy(t, "regi", 4);
    bd_put_le32(t + 8, 2);
    memcpy(t + 16, vhdx_guid_bat, 16);
    bd_put_le64(t + 32, l->bat_off);
    bd_put_le32(t + 40, (uint32_t)l->bat_len);
    bd_put_le32(t + 44, 1);
    memcpy(t + 48, vhdx_guid_metadata, 16);
    bd_put_le64(t + 64, l->meta_off);
    bd_put_le32(t + 72, (uint32_t)l->meta_len);
    bd_put_le32(t + 76, 1);
    bd_put_le32(t + 4, vhdx_crc32c_skip(t, VHDX_REGION_SIZE, 4));
}

static uint32_t put_utf16(uint8_t *p, const char *str)
{
    uint32_t n = 0;

    for (; *str; str++, n += 2)
        bd_put_le16(p + n, (uint8_t)*str);
    return n;
}

/* Parent locator (2.6.2.6): parent_linkage and relative_path; returns the
 * item's length. The caller guarantees the path fits (PATH_MAX). */
static uint32_t put_parent_locator(uint8_t *p, const struct vhdx_layout *l)
{
    const char *keys[2] = { "parent_linkage", "relative_path" };
    char guid[40];
    const char *vals[2] = { guid, l->parent_rel };
    uint32_t at = 20 + 12 * 2;
    const uint8_t *g = l->parent_guid;

    snprintf(guid, sizeof(guid),
             "{%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
             bd_le32(g), bd_le16(g + 4), bd_le16(g + 6), g[8], g[9], g[10],
             g[11], g[12], g[13], g[14], g[15]);
    memcpy(p, vhdx_guid_parent_type, 16);
    bd_put_le16(p + 18, 2);
    for (int i = 0; i < 2; i++) {
        uint8_t *e = p + 20 + 12 * i;
        uint32_t kl, vl;

        kl = put_utf16(p + at, keys[i]);
        bd_put_le32(e, at);
        bd_put_le16(e + 8, (uint16_t)kl);
        at += kl;
        vl = put_utf16(p + at, vals[i]);
        bd_put_le32(e + 4, at);
        bd_put_le16(e + 10, (uint16_t)vl);
        at += vl;
    }
    return at;
}

/* The metadata table (64 KiB) plus the items right after it. */
static int put_metadata(uint8_t *m, const struct vhdx_layout *l)
{
    static const struct {
        const uint8_t *guid;
        uint32_t len, flags;
    } items[] = {
        { vhdx_guid_file_params, 8, 4 },
        { vhdx_guid_vsize, 8, 6 },
        { vhdx_guid_disk_id, 16, 6 },
        { vhdx_guid_lsec, 4, 6 },
        { vhdx_guid_psec, 4, 6 },
    };
    uint32_t off = VHDX_META_TABLE_SIZE;
    uint8_t *v;
    int ret;

    memset(m, 0, VHDX_META_TABLE_SIZE + 3 * PATH_MAX);
    memcpy(m, "metadata", 8);
    bd_put_le16(m + 10, l->parent_rel ? 6 : 5);
    for (unsigned i = 0; i < 5; i++) {
        uint8_t *e = m + 32 + 32 * i;
        memcpy(e, items[i].guid, 16);
        bd_put_le32(e + 16, off + 32 * i);
        bd_put_le32(e + 20, items[i].len);
        bd_put_le32(e + 24, items[i].flags);
    }
    v = m + off;
    bd_put_le32(v, l->block_size);
    bd_put_le32(v + 4, l->fixed ? 1 : 0);       /* LeaveBlockAllocated */
    bd_put_le64(v + 32, l->size);
    if ((ret = vhdx_random_guid(v + 64)) < 0)
        return ret;
    bd_put_le32(v + 96, l->lsec);
    bd_put_le32(v + 128, l->psec);
    if (l->parent_rel) {
        uint8_t *e = m + 32 + 32 * 5;
        uint32_t len;

        bd_put_le32(v + 4, 2);                  /* HasParent */
        len = put_parent_locator(v + 256, l);
        memcpy(e, vhdx_guid_parent_locator, 16);
        bd_put_le32(e + 16, off + 256);
        bd_put_le32(e + 20, len);
        bd_put_le32(e + 24, 4);
    }
    return 0;
}

static int put_bat(struct bd_node *file, const struct vhdx_layout *l)
{
    const size_t chunk = VHDX_MiB;
    uint8_t *b;
    unsigned state;
    int ret = 0;

    if (!l->fixed && !l->zero_state)
        return 0;               /* all NOT_PRESENT: the file is zeroes */
    state = l->zero_state ? VHDX_PAYLOAD_ZERO : VHDX_PAYLOAD_FULLY_PRESENT;
    b = malloc(chunk);
    if (!b)
        return -ENOMEM;
    for (uint64_t base = 0; base < l->bat_entries && ret == 0;
         base += chunk / 8) {
        memset(b, 0, chunk);
        for (uint64_t i = base; i < l->bat_entries && i < base + chunk / 8; i++) {
            uint64_t blk;

            if (i % (l->chunk_ratio + 1) == l->chunk_ratio)
                continue;       /* sector bitmap entry: not present */
            blk = i - i / (l->chunk_ratio + 1);
            bd_put_le64(b + 8 * (i - base), VHDX_BAT_ENTRY(state,
                        l->fixed ? l->data_off + blk * l->block_size : 0));
        }
        ret = bd_pwrite(file, b, chunk, l->bat_off + base * 8, 0);
    }
    free(b);
    return ret;
}

static void put_file_id(uint8_t *b)
{
    static const char creator[] = "imgfuse";

    memset(b, 0, 4096);
    memcpy(b, "vhdxfile", 8);
    for (size_t i = 0; creator[i]; i++)
        bd_put_le16(b + 8 + 2 * i, (uint8_t)creator[i]);
}

int vhdx_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                struct bd_err *err)
{
    struct vhdx_layout l = { 0 };
    struct vhdx_header h = { 0 };
    uint64_t end;
    uint8_t *buf;
    int ret;

    if ((ret = vhdx_create_opts(file, o, size, &l, err)) < 0)
        goto out_free_rel;
    vhdx_layout(&l);
    end = l.data_off;
    if (l.fixed && ovf_add_u64(end, l.payload_blocks * (uint64_t)l.block_size,
                               &end)) {
        ret = bd_err_set(err, EINVAL, "vhdx image would be too large");
        goto out_free_rel;
    }
    buf = calloc(1, VHDX_META_TABLE_SIZE + 3 * PATH_MAX);
    if (!buf) {
        ret = bd_err_set(err, ENOMEM, "out of memory");
        goto out_free_rel;
    }
    ret = bd_truncate(file, end, BD_PREALLOC_OFF, err);
    if (ret < 0)
        goto out;

    put_file_id(buf);
    if ((ret = bd_pwrite(file, buf, 4096, VHDX_FILE_ID_OFF, 0)) < 0)
        goto io;

    h.version = 1;
    h.log_version = 0;
    h.log_len = (uint32_t)l.log_len;
    h.log_off = l.log_off;
    if ((ret = vhdx_random_guid(h.file_write_guid)) < 0 ||
        (ret = vhdx_random_guid(h.data_write_guid)) < 0)
        goto io;
    for (int i = 0; i < 2; i++) {
        h.seq = (uint64_t)i;
        vhdx_header_encode(buf, &h);
        ret = bd_pwrite(file, buf, VHDX_HEADER_SIZE,
                        i ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF, 0);
        if (ret < 0)
            goto io;
    }
    put_region_table(buf, &l);
    if ((ret = bd_pwrite(file, buf, VHDX_REGION_SIZE, VHDX_REGION1_OFF, 0)) < 0 ||
        (ret = bd_pwrite(file, buf, VHDX_REGION_SIZE, VHDX_REGION2_OFF, 0)) < 0)
        goto io;
    if ((ret = put_metadata(buf, &l)) < 0)
        goto io;
    if ((ret = bd_pwrite(file, buf, VHDX_META_TABLE_SIZE + 3 * PATH_MAX,
                         l.meta_off, 0)) < 0)
        goto io;
    if ((ret = put_bat(file, &l)) < 0)
        goto io;
    ret = bd_flush(file);
    if (ret < 0)
        goto io;
    goto out;
io:
    ret = bd_err_set(err, -ret, "%s: cannot write the vhdx image: %s",
                     file->name, strerror(-ret));
out:
    free(buf);
out_free_rel:
    free(l.parent_rel);
    return ret;
}
