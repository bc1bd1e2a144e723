/*
 * vpc: Virtual PC / Hyper-V VHD images, fixed, dynamic and differencing.
 * Decodes the footer, the dynamic disk header and the block allocation
 * table, maps guest offsets to blocks, allocates blocks on write and finds
 * a differencing disk's parent. Walking the chain for block status is
 * core's job; the parent is opened through bd_open_backing().
 */
#include "bd.h"
#include "overflow.h"

extern const struct bd_driver bd_drv_vpc;

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define VPC_FOOTER_SIZE     512u
#define VPC_DYN_SIZE        1024u
#define VPC_BAT_UNUSED      0xffffffffu
#define VPC_TYPE_FIXED      2u
#define VPC_TYPE_DYNAMIC    3u
#define VPC_TYPE_DIFF       4u
#define VPC_EPOCH           946684800   /* 2000-01-01T00:00:00Z, VHD's time base */
#define VPC_CHS_MAX_SECTORS (65535ull * 16 * 255)
#define VPC_MAX_SECTORS     0xff000000ull   /* 2040 GiB, as QEMU allows */
#define VPC_MAX_BAT_ENTRIES (1u << 24)      /* 64 MiB of table in memory */
#define VPC_MAX_BLOCK_SIZE  (256u << 20)
#define VPC_DEFAULT_BLOCK   (2u << 20)
#define VPC_MAX_LOCATOR     4096u           /* bytes of one parent path */

struct vpc_footer {
    uint32_t features;
    uint32_t version;
    uint64_t data_off;
    uint32_t timestamp;
    char creator[5];
    uint32_t creator_ver;
    char creator_os[5];
    uint64_t orig_size;
    uint64_t cur_size;
    uint16_t cyls;
    uint8_t heads;
    uint8_t spt;
    uint32_t type;
    uint32_t checksum;
    uint8_t uuid[16];
};

struct vpc_dyn {
    uint64_t table_off;
    uint32_t version;
    uint32_t bat_entries;
    uint32_t block_size;
    uint32_t checksum;
    uint8_t parent_uuid[16];
    uint32_t parent_time;
};

struct vpc_state {
    uint8_t footer_raw[VPC_FOOTER_SIZE];    /* written again at each growth */
    struct vpc_footer ft;
    struct vpc_dyn dyn;
    uint64_t size;              /* guest bytes, a multiple of 512 */
    uint64_t footer_off;        /* where the trailing footer copy is now */
    uint32_t *bat;              /* native byte order; atomics for readers */
    uint32_t block_size;
    uint32_t bitmap_size;       /* bytes before each block's data, 512-aligned */
    bool end_footer_bad;        /* opened through the copy at offset 0 */
    bool size_from_chs;
    bool ignore_checksum;       /* data recovery: the chain below inherits it */
    char *parent_name;          /* what we opened the parent as, for info */
    pthread_mutex_t lock;       /* block allocation and bitmap updates */
    bool lock_init;
};

/* ---- on-disk structures ------------------------------------------------ */

/* One's complement of the byte sum, skipping the checksum field (spec 2006). */
static uint32_t vpc_checksum(const uint8_t *p, size_t len, size_t csum_off)
{
    uint32_t sum = 0;

    for (size_t i = 0; i < len; i++) {
        if (i < csum_off || i >= csum_off + 4)
            sum += p[i];
    }
    return ~sum;
}

static void vpc_footer_decode(const uint8_t *b, struct vpc_footer *f)
{
    f->features = bd_be32(b + 8);
    f->version = bd_be32(b + 12);
    f->data_off = bd_be64(b + 16);
    f->timestamp = bd_be32(b + 24);
    memcpy(f->creator, b + 28, 4);
    f->creator[4] = 0;
    f->creator_ver = bd_be32(b + 32);
    memcpy(f->creator_os, b + 36, 4);
    f->creator_os[4] = 0;
    f->orig_size = bd_be64(b + 40);
    f->cur_size = bd_be64(b + 48);
    f->cyls = bd_be16(b + 56);
    f->heads = b[58];
    f->spt = b[59];
    f->type = bd_be32(b + 60);
    f->checksum = bd_be32(b + 64);
    memcpy(f->uuid, b + 68, 16);
}

static void vpc_dyn_decode(const uint8_t *b, struct vpc_dyn *d)
{
    d->table_off = bd_be64(b + 16);
    d->version = bd_be32(b + 24);
    d->bat_entries = bd_be32(b + 28);
    d->block_size = bd_be32(b + 32);
    d->checksum = bd_be32(b + 36);
    memcpy(d->parent_uuid, b + 40, 16);
    d->parent_time = bd_be32(b + 56);
}

static bool vpc_is_footer(const uint8_t *b)
{
    return memcmp(b, "conectix", 8) == 0;
}

/* Creator's printable name for messages and info ("d2v\0" -> "d2v"). */
static void vpc_printable(char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            s[i] = '?';
    }
}

/*
 * The CHS geometry for a sector count, as the VHD specification's appendix
 * computes it. Sizes that need more than 65535/16/255 get the maximum.
 */
static void vpc_chs_for(uint64_t sectors, uint16_t *c, uint8_t *h, uint8_t *s)
{
    uint64_t cth;
    unsigned spt, heads;

    if (sectors > VPC_CHS_MAX_SECTORS)
        sectors = VPC_CHS_MAX_SECTORS;
    if (sectors >= 65535ull * 16 * 63) {
        spt = 255;
        heads = 16;
        cth = sectors / spt;
    } else {
        spt = 17;
        cth = sectors / spt;
        heads = (unsigned)((cth + 1023) / 1024);
        if (heads < 4)
            heads = 4;
        if (cth >= heads * 1024ull || heads > 16) {
            spt = 31;
            heads = 16;
            cth = sectors / spt;
        }
        if (cth >= heads * 1024ull) {
            spt = 63;
            heads = 16;
            cth = sectors / spt;
        }
    }
    *c = (uint16_t)(cth / heads);
    *h = (uint8_t)heads;
    *s = (uint8_t)spt;
}

static bool vpc_chs_is_max(const struct vpc_footer *f)
{
    return f->cyls == 65535 && f->heads == 16 && f->spt == 255;
}

/* ---- helpers ------------------------------------------------------------ */

static uint32_t vpc_bat_get(struct vpc_state *s, uint64_t blk)
{
    return __atomic_load_n(&s->bat[blk], __ATOMIC_ACQUIRE);
}

static uint64_t vpc_block_data_off(struct vpc_state *s, uint32_t entry)
{
    return (uint64_t)entry * BD_SECTOR + s->bitmap_size;
}

/* Read from the parent, zeroes where it has nothing (or there is none). */
static int vpc_read_parent(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    int64_t psize;
    uint64_t have = 0;
    int r;

    if (n->backing) {
        psize = bd_size(n->backing);
        if (psize < 0)
            return (int)psize;
        if (off < (uint64_t)psize) {
            have = len < (uint64_t)psize - off ? len : (uint64_t)psize - off;
            r = bd_pread(n->backing, buf, have, off);
            if (r < 0)
                return r;
        }
    }
    memset((uint8_t *)buf + have, 0, len - have);
    return 0;
}

/* Sector bits: the first sector of a block is the top bit of byte 0. */
static bool vpc_bit(const uint8_t *bm, uint64_t sector)
{
    return bm[sector / 8] & (0x80u >> (sector % 8));
}

/* Bitmap bytes covering sectors [s0, s1) of a block; caller frees *out. */
static int vpc_read_bitmap(struct bd_node *n, uint32_t entry, uint64_t s0,
                           uint64_t s1, uint8_t **out, uint64_t *first)
{
    uint64_t b0 = s0 / 8, nb = (s1 - 1) / 8 - b0 + 1;
    uint8_t *bm = malloc(nb);
    int r;

    if (!bm)
        return -ENOMEM;
    r = bd_pread(n->file, bm, nb, (uint64_t)entry * BD_SECTOR + b0);
    if (r < 0) {
        free(bm);
        return r;
    }
    *out = bm;
    *first = b0 * 8;
    return 0;
}

/* ---- open ---------------------------------------------------------------- */

static const char *const vpc_size_calc_choices[] = { "chs", "current_size", NULL };

struct vpc_open_opts {
    bool ignore_checksum;
    int size_calc;              /* -1 auto, 0 chs, 1 current_size */
};

static int vpc_read_opts(struct bd_node *n, const struct bd_opts *o,
                         struct vpc_open_opts *oo, struct bd_err *err)
{
    bool force = false;
    int r;

    (void)n;
    r = bd_opts_get_bool(o, "ignore_checksum", false, &oo->ignore_checksum, err);
    if (r < 0 && r != -ENOENT)
        return r;
    r = bd_opts_get_bool(o, "force_size", false, &force, err);
    if (r < 0 && r != -ENOENT)
        return r;
    oo->size_calc = force ? 1 : -1;
    if (bd_opts_has(o, "force_size_calc")) {
        r = bd_opts_get_enum(o, "force_size_calc", vpc_size_calc_choices, -1, err);
        if (r < 0)
            return r;
        oo->size_calc = r;
    }
    return 0;
}

/* Find and check the footer: the trailing copy first, then the one at 0. */
static int vpc_load_footer(struct bd_node *n, uint64_t fsize,
                           const struct vpc_open_opts *oo, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint8_t head[VPC_FOOTER_SIZE];
    uint32_t sum;
    int r;

    if (fsize < VPC_FOOTER_SIZE)
        return bd_err_set(err, EINVAL, "%s: file is too small to be a vhd image "
                          "(%llu bytes)", n->name, (unsigned long long)fsize);
    s->footer_off = fsize - VPC_FOOTER_SIZE;
    r = bd_pread(n->file, s->footer_raw, VPC_FOOTER_SIZE, s->footer_off);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the vhd footer: %s",
                          n->name, strerror(-r));
    if (!vpc_is_footer(s->footer_raw)) {
        r = bd_pread(n->file, head, VPC_FOOTER_SIZE, 0);
        if (r < 0)
            return bd_err_set(err, -r, "%s: cannot read the vhd header: %s",
                              n->name, strerror(-r));
        if (!vpc_is_footer(head))
            return bd_err_set(err, EINVAL, "%s: not a vhd image (no 'conectix' "
                              "footer at the end or the start)", n->name);
        memcpy(s->footer_raw, head, VPC_FOOTER_SIZE);
        s->end_footer_bad = true;
    }
    vpc_footer_decode(s->footer_raw, &s->ft);
    sum = vpc_checksum(s->footer_raw, VPC_FOOTER_SIZE, 64);
    if (sum != s->ft.checksum) {
        if (!oo->ignore_checksum)
            return bd_err_set(err, EINVAL, "%s: vhd footer checksum mismatch "
                              "(stored 0x%08x, computed 0x%08x); the image may be "
                              "damaged, use -o ignore_checksum=on to read it anyway",
                              n->name, s->ft.checksum, sum);
        log_warn("%s: ignoring vhd footer checksum mismatch", n->name);
    }
    if (s->ft.type != VPC_TYPE_FIXED && s->ft.type != VPC_TYPE_DYNAMIC &&
        s->ft.type != VPC_TYPE_DIFF)
        return bd_err_set(err, ENOTSUP, "%s: vhd disk type %u is not supported "
                          "(only fixed, dynamic and differencing)",
                          n->name, s->ft.type);
    if (s->end_footer_bad && s->ft.type == VPC_TYPE_FIXED)
        return bd_err_set(err, EINVAL, "%s: fixed vhd without a footer at the end",
                          n->name);
    return 0;
}

/*
 * Virtual size. Virtual PC and QEMU ("vpc ", "qemu") size disks by their CHS
 * geometry; Hyper-V ("win "), Disk2VHD ("d2v"), XenServer and QEMU with
 * force_size ("qem2") by the footer's current size. A maximal geometry
 * cannot describe the disk, so current size wins there too.
 */
static int vpc_compute_size(struct bd_node *n, const struct vpc_open_opts *oo,
                            struct bd_err *err)
{
    struct vpc_state *s = n->state;
    const struct vpc_footer *f = &s->ft;
    uint64_t chs = (uint64_t)f->cyls * f->heads * f->spt;
    bool use_chs;

    if (oo->size_calc >= 0)
        use_chs = oo->size_calc == 0;
    else
        use_chs = memcmp(f->creator, "vpc ", 4) == 0 ||
                  memcmp(f->creator, "qemu", 4) == 0;
    if (vpc_chs_is_max(f))
        use_chs = false;
    s->size_from_chs = use_chs;
    s->size = use_chs ? chs * BD_SECTOR : bd_align_down(f->cur_size, BD_SECTOR);
    if (s->ft.type != VPC_TYPE_FIXED && s->size / BD_SECTOR > VPC_MAX_SECTORS)
        return bd_err_set(err, EFBIG, "%s: virtual size %llu is larger than a "
                          "vhd can be (2040 GiB)", n->name,
                          (unsigned long long)s->size);
    return 0;
}

static int vpc_load_dyn(struct bd_node *n, uint64_t fsize,
                        const struct vpc_open_opts *oo, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint8_t raw[VPC_DYN_SIZE];
    uint32_t sum;
    int r;

    /* a header cut short by the end of the file reads as zeroes there and
     * fails the checks below with a message that says what is wrong */
    if (s->ft.data_off >= fsize || s->ft.data_off % BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: dynamic disk header offset %llu lies "
                          "beyond the end of the file", n->name,
                          (unsigned long long)s->ft.data_off);
    r = bd_pread(n->file, raw, VPC_DYN_SIZE, s->ft.data_off);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the dynamic disk header: %s",
                          n->name, strerror(-r));
    if (memcmp(raw, "cxsparse", 8) != 0)
        return bd_err_set(err, EINVAL, "%s: no dynamic disk header ('cxsparse') "
                          "at offset %llu", n->name,
                          (unsigned long long)s->ft.data_off);
    vpc_dyn_decode(raw, &s->dyn);
    if (s->dyn.bat_entries > VPC_MAX_BAT_ENTRIES)
        return bd_err_set(err, EINVAL, "%s: max table entries too large (%u, at "
                          "most %u supported)", n->name, s->dyn.bat_entries,
                          VPC_MAX_BAT_ENTRIES);
    s->block_size = s->dyn.block_size;
    if (!bd_is_pow2(s->block_size) || s->block_size < BD_SECTOR ||
        s->block_size > VPC_MAX_BLOCK_SIZE)
        return bd_err_set(err, EINVAL, "%s: invalid vhd block size %u (a power of "
                          "two from 512 bytes to 256 MiB expected)", n->name,
                          s->block_size);
    s->bitmap_size = (uint32_t)bd_align_up(s->block_size / BD_SECTOR / 8, BD_SECTOR);
    if ((uint64_t)s->dyn.bat_entries * s->block_size < s->size)
        return bd_err_set(err, EINVAL, "%s: block allocation table too small: %u "
                          "entries of %u bytes cannot hold the %llu-byte disk",
                          n->name, s->dyn.bat_entries, s->block_size,
                          (unsigned long long)s->size);
    if (!ovf_range_ok(s->dyn.table_off, (uint64_t)s->dyn.bat_entries * 4, fsize))
        return bd_err_set(err, EINVAL, "%s: block allocation table (%u entries at "
                          "offset %llu) lies beyond the end of the file", n->name,
                          s->dyn.bat_entries, (unsigned long long)s->dyn.table_off);
    sum = vpc_checksum(raw, VPC_DYN_SIZE, 36);
    if (sum != s->dyn.checksum) {
        if (!oo->ignore_checksum)
            return bd_err_set(err, EINVAL, "%s: vhd dynamic header checksum "
                              "mismatch (stored 0x%08x, computed 0x%08x); the image "
                              "may be damaged, use -o ignore_checksum=on to read it "
                              "anyway", n->name, s->dyn.checksum, sum);
        log_warn("%s: ignoring vhd dynamic header checksum mismatch", n->name);
    }
    return 0;
}

static int vpc_load_bat(struct bd_node *n, uint64_t fsize, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint64_t nblocks = (s->size + s->block_size - 1) / s->block_size;
    size_t bytes = (size_t)s->dyn.bat_entries * 4;
    uint8_t *raw;
    int r;

    s->bat = malloc(bytes ? bytes : 4);
    raw = malloc(bytes ? bytes : 4);
    if (!s->bat || !raw) {
        free(raw);
        return bd_err_set(err, ENOMEM, "%s: no memory for the block allocation "
                          "table", n->name);
    }
    r = bd_pread(n->file, raw, bytes, s->dyn.table_off);
    if (r < 0) {
        free(raw);
        return bd_err_set(err, -r, "%s: cannot read the block allocation table: %s",
                          n->name, strerror(-r));
    }
    for (uint32_t i = 0; i < s->dyn.bat_entries; i++) {
        uint32_t e = bd_be32(raw + 4 * (size_t)i);
        uint64_t need;

        s->bat[i] = e;
        if (e == VPC_BAT_UNUSED || i >= nblocks)
            continue;
        /* the last block may stop at the end of the disk */
        need = s->size - (uint64_t)i * s->block_size;
        if (need > s->block_size)
            need = s->block_size;
        if (!ovf_range_ok(vpc_block_data_off(s, e), need, fsize)) {
            free(raw);
            return bd_err_set(err, EINVAL, "%s: block %u at offset %llu lies "
                              "beyond the end of the file (%llu bytes)", n->name, i,
                              (unsigned long long)e * BD_SECTOR,
                              (unsigned long long)fsize);
        }
    }
    free(raw);
    return 0;
}

/* UTF-16 (le or be) to UTF-8; NUL ends it. Caller frees; NULL if invalid. */
static char *vpc_utf16_to_utf8(const uint8_t *p, size_t len, bool le)
{
    char *out = malloc(len / 2 * 3 + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint32_t c = le ? bd_le16(p + i) : bd_be16(p + i);

        if (c == 0)
            break;
        if (c >= 0xd800 && c < 0xdc00) {
            uint32_t lo;

            if (i + 3 >= len)
                goto bad;
            lo = le ? bd_le16(p + i + 2) : bd_be16(p + i + 2);
            if (lo < 0xdc00 || lo >= 0xe000)
                goto bad;
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
            i += 2;
        } else if (c >= 0xdc00 && c < 0xe000) {
            goto bad;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xc0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xe0 | c >> 12);
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else {
            out[o++] = (char)(0xf0 | c >> 18);
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3f));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    out[o] = 0;
    if (o == 0)
        goto bad;
    return out;
bad:
    free(out);
    return NULL;
}

/* Windows path to a POSIX one: backslashes become slashes. */
static void vpc_unixify(char *p)
{
    for (; *p; p++) {
        if (*p == '\\')
            *p = '/';
    }
}

/* "file://host/path" or "file:///path" (MacX locators) to a path. */
static char *vpc_file_url_path(const char *url)
{
    const char *p;

    if (strncmp(url, "file://", 7) != 0)
        return strdup(url);
    p = url + 7;
    if (*p != '/') {
        p = strchr(p, '/');
        if (!p)
            return NULL;
    }
    return strdup(p);
}

/* The parent's path from one locator entry, or NULL if it has none usable. */
static char *vpc_locator_path(struct bd_node *n, const uint8_t *e, uint64_t fsize,
                              const char *code)
{
    uint32_t len = bd_be32(e + 8);
    uint64_t off = bd_be64(e + 16);
    uint8_t *raw;
    char *path = NULL;

    if (memcmp(e, code, 4) != 0 || len == 0 || len > VPC_MAX_LOCATOR ||
        !ovf_range_ok(off, len, fsize))
        return NULL;
    raw = malloc(len + 1);
    if (!raw)
        return NULL;
    if (bd_pread(n->file, raw, len, off) == 0) {
        if (memcmp(code, "MacX", 4) == 0 || memcmp(code, "Wi2", 3) == 0) {
            /* UTF-8 file URL (Mac OS X) or 8-bit path (deprecated Wi2r/Wi2k) */
            raw[len] = 0;
            if (strlen((char *)raw) > 0)
                path = code[0] == 'M' ? vpc_file_url_path((char *)raw)
                                      : strdup((char *)raw);
        } else {
            path = vpc_utf16_to_utf8(raw, len, true);
        }
    }
    free(raw);
    if (path)
        vpc_unixify(path);
    return path;
}

/* The spec ties a child to its parent by the parent's footer id. */
static void vpc_check_parent_id(struct bd_node *n)
{
    struct vpc_state *s = n->state, *ps;

    if (!n->backing || n->backing->drv != &bd_drv_vpc)
        return;
    ps = n->backing->state;
    if (memcmp(ps->ft.uuid, s->dyn.parent_uuid, 16) != 0)
        log_warn("%s: parent '%s' has a different unique id than the one recorded "
                 "in the child; it may have been changed since", n->name,
                 s->parent_name);
}

/* Locators hold file paths: never let one be taken for a URI, json: or
 * key=value options, which core would otherwise open as such. */
static int vpc_open_parent_path(struct bd_node *n, const char *path,
                                struct bd_err *err)
{
    char *name;
    int r;

    if (!strpbrk(path, ":=,"))
        return bd_open_backing(n, path, "vpc", err);
    if (asprintf(&name, "file:%s", path) < 0)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    r = bd_open_backing(n, name, "vpc", err);
    free(name);
    return r;
}

/*
 * A differencing disk's parent: relative locators (W2ru, the older Wi2r),
 * absolute ones (W2ku, Wi2k), a Mac file URL (MacX), then the parent's name
 * from the header, each opened through core, which resolves it and applies
 * confinement.
 */
static int vpc_open_parent(struct bd_node *n, uint64_t fsize, struct bd_err *err)
{
    static const char *const codes[] = { "W2ru", "Wi2r", "W2ku", "Wi2k", "MacX",
                                         NULL };
    struct vpc_state *s = n->state;
    uint8_t raw[VPC_DYN_SIZE];
    char *cand[5 * 8 + 1];
    char tried[512] = "";
    size_t ncand = 0, tl = 0;
    struct bd_err e2;
    int r;

    r = bd_pread(n->file, raw, VPC_DYN_SIZE, s->ft.data_off);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the dynamic disk header: %s",
                          n->name, strerror(-r));
    for (const char *const *c = codes; *c; c++) {
        for (int i = 0; i < 8; i++) {
            char *p = vpc_locator_path(n, raw + 576 + 24 * i, fsize, *c);
            if (p)
                cand[ncand++] = p;
        }
    }
    cand[ncand] = vpc_utf16_to_utf8(raw + 64, 512, false);
    if (cand[ncand]) {
        vpc_unixify(cand[ncand]);
        ncand++;
    }
    if (ncand == 0)
        return bd_err_set(err, EINVAL, "%s: differencing vhd names no parent (no "
                          "parent locator and no parent name)", n->name);

    r = -ENOENT;
    for (size_t i = 0; i < ncand; i++) {
        bd_err_clear(&e2);
        r = vpc_open_parent_path(n, cand[i], &e2);
        if (r == 0) {
            s->parent_name = cand[i];
            cand[i] = NULL;
            break;
        }
        if (r != -ENOENT) {
            /* a policy refusal or a broken parent: that is the answer */
            bd_err_set(err, -r, "%s", e2.errnum ? e2.msg : strerror(-r));
            break;
        }
        tl += (size_t)snprintf(tried + tl, tl < sizeof(tried) ? sizeof(tried) - tl : 0,
                               "%s'%s'", i ? ", " : "", cand[i]);
        if (tl >= sizeof(tried))
            tl = sizeof(tried);
    }
    if (r == -ENOENT)
        bd_err_set(err, ENOENT, "%s: parent image not found (tried %s)",
                   n->name, tried);
    if (r == 0)
        vpc_check_parent_id(n);
    for (size_t i = 0; i < ncand; i++)
        free(cand[i]);
    return r;
}

static int vpc_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    struct vpc_open_opts oo;
    int64_t fsize;
    int r;

    r = vpc_read_opts(n, o, &oo, err);
    if (r < 0)
        return r;
    /* a parent opened for a child read with ignore_checksum=on is read the
     * same way: the option is for recovering the whole disk */
    if (n->parent && n->parent->drv == &bd_drv_vpc &&
        ((struct vpc_state *)n->parent->state)->ignore_checksum)
        oo.ignore_checksum = true;
    s->ignore_checksum = oo.ignore_checksum;
    fsize = bd_size(n->file);
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    r = vpc_load_footer(n, (uint64_t)fsize, &oo, err);
    if (r < 0)
        return r;
    r = vpc_compute_size(n, &oo, err);
    if (r < 0)
        return r;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return bd_err_set(err, ENOMEM, "%s: cannot create a lock", n->name);
    s->lock_init = true;

    if (s->ft.type == VPC_TYPE_FIXED) {
        if (s->size > s->footer_off)
            return bd_err_set(err, EINVAL, "%s: fixed vhd is truncated: virtual "
                              "size %llu but only %llu bytes of data", n->name,
                              (unsigned long long)s->size,
                              (unsigned long long)s->footer_off);
        return 0;
    }
    if (!n->flags.read_only && s->footer_off % BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: vhd file size is not a multiple of 512; "
                          "mount it read-only (-r)", n->name);
    r = vpc_load_dyn(n, (uint64_t)fsize, &oo, err);
    if (r < 0)
        return r;
    r = vpc_load_bat(n, (uint64_t)fsize, err);
    if (r < 0)
        return r;
    if (s->end_footer_bad) {
        if (!n->flags.read_only)
            return bd_err_set(err, EROFS, "%s: the footer at the end of the vhd "
                              "is damaged; mount read-only (-r) to read the image "
                              "through the copy at its start", n->name);
        log_warn("%s: footer at the end is damaged, using the copy at the start",
                 n->name);
    }
    if (s->ft.type == VPC_TYPE_DIFF)
        return vpc_open_parent(n, (uint64_t)fsize, err);
    return 0;
}

static void vpc_close(struct bd_node *n)
{
    struct vpc_state *s = n->state;

    free(s->bat);
    free(s->parent_name);
    if (s->lock_init)
        pthread_mutex_destroy(&s->lock);
}

static int vpc_probe(const uint8_t *head, size_t len)
{
    /* dynamic and differencing disks start with a footer copy */
    if (len >= VPC_FOOTER_SIZE && vpc_is_footer(head))
        return 100;
    return 0;
}

static void vpc_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct vpc_state *s = n->state;

    lim->request_alignment = BD_SECTOR;
    if (s->block_size)
        lim->opt_transfer = s->block_size;
}

static int64_t vpc_size(struct bd_node *n)
{
    struct vpc_state *s = n->state;

    return (int64_t)s->size;
}

/* ---- I/O ----------------------------------------------------------------- */

/* Part of one allocated block of a differencing disk: runs of sectors here
 * or in the parent, as the block's sector bitmap says. */
static int vpc_read_diff_block(struct bd_node *n, uint32_t entry, uint8_t *buf,
                               uint64_t len, uint64_t off, uint64_t in)
{
    struct vpc_state *s = n->state;
    uint64_t s0 = in / BD_SECTOR, s1 = (in + len) / BD_SECTOR, first;
    uint8_t *bm;
    int r;

    r = vpc_read_bitmap(n, entry, s0, s1, &bm, &first);
    if (r < 0)
        return r;
    for (uint64_t i = s0; i < s1;) {
        bool here = vpc_bit(bm, i - first);
        uint64_t j = i + 1, blen, boff;

        while (j < s1 && vpc_bit(bm, j - first) == here)
            j++;
        blen = (j - i) * BD_SECTOR;
        boff = (i - s0) * BD_SECTOR;
        if (here)
            r = bd_pread(n->file, buf + boff, blen,
                         vpc_block_data_off(s, entry) + i * BD_SECTOR);
        else
            r = vpc_read_parent(n, buf + boff, blen, off + boff);
        if (r < 0)
            break;
        i = j;
    }
    free(bm);
    return r;
}

static int vpc_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vpc_state *s = n->state;
    uint8_t *p = buf;
    int r = 0;

    if (s->ft.type == VPC_TYPE_FIXED)
        return bd_pread(n->file, buf, len, off);
    while (len) {
        uint64_t blk = off / s->block_size, in = off % s->block_size;
        uint64_t chunk = s->block_size - in;
        uint32_t e;

        if (chunk > len)
            chunk = len;
        e = vpc_bat_get(s, blk);
        if (e == VPC_BAT_UNUSED)
            r = vpc_read_parent(n, p, chunk, off);
        else if (s->ft.type == VPC_TYPE_DIFF)
            r = vpc_read_diff_block(n, e, p, chunk, off, in);
        else
            r = bd_pread(n->file, p, chunk, vpc_block_data_off(s, e) + in);
        if (r < 0)
            return r;
        p += chunk;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

/*
 * Give block blk space at the end of the file, crash-safely: grow the file
 * and put the footer at the new end, write the block's bitmap over the old
 * footer (all ones for a dynamic disk: the zeroed data is its content; all
 * zeroes for a differencing disk: the parent still shows), flush, and only
 * then point the BAT at it. A crash at any step leaves a valid image.
 */
static int vpc_alloc_block(struct bd_node *n, uint64_t blk, uint32_t *entry)
{
    struct vpc_state *s = n->state;
    uint64_t new_off, new_end, sect;
    uint8_t *bm, be[4];
    struct bd_err e2;
    int r;

    pthread_mutex_lock(&s->lock);
    *entry = vpc_bat_get(s, blk);
    if (*entry != VPC_BAT_UNUSED) {
        r = 0;
        goto out_unlock;
    }
    new_off = s->footer_off;
    sect = new_off / BD_SECTOR;
    new_end = new_off + s->bitmap_size + s->block_size + VPC_FOOTER_SIZE;
    if (sect >= VPC_BAT_UNUSED) {
        r = -EFBIG;
        goto out_unlock;
    }
    bm = malloc(s->bitmap_size);
    if (!bm) {
        r = -ENOMEM;
        goto out_unlock;
    }
    memset(bm, s->ft.type == VPC_TYPE_DIFF ? 0 : 0xff, s->bitmap_size);
    bd_err_clear(&e2);
    r = bd_truncate(n->file, new_end, BD_PREALLOC_OFF, &e2);
    if (r < 0)
        goto out_free;
    r = bd_pwrite(n->file, s->footer_raw, VPC_FOOTER_SIZE,
                  new_end - VPC_FOOTER_SIZE, 0);
    if (r < 0)
        goto out_free;
    s->footer_off = new_end - VPC_FOOTER_SIZE;
    r = bd_pwrite(n->file, bm, s->bitmap_size, new_off, 0);
    if (r < 0)
        goto out_free;
    r = bd_flush(n->file);
    if (r < 0)
        goto out_free;
    bd_put_be32(be, (uint32_t)sect);
    r = bd_pwrite(n->file, be, 4, s->dyn.table_off + blk * 4, 0);
    if (r < 0)
        goto out_free;
    __atomic_store_n(&s->bat[blk], (uint32_t)sect, __ATOMIC_RELEASE);
    *entry = (uint32_t)sect;
out_free:
    free(bm);
out_unlock:
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Differencing disks: mark sectors [in, in+len) of a block as present here.
 * Runs after the data is written, so a crash shows the parent's old data. */
static int vpc_mark_present(struct bd_node *n, uint32_t entry, uint64_t in,
                            uint64_t len)
{
    struct vpc_state *s = n->state;
    uint64_t s0 = in / BD_SECTOR, s1 = (in + len) / BD_SECTOR, first;
    bool all = true;
    uint8_t *bm;
    int r;

    pthread_mutex_lock(&s->lock);
    r = vpc_read_bitmap(n, entry, s0, s1, &bm, &first);
    if (r < 0)
        goto out_unlock;
    for (uint64_t i = s0; i < s1; i++) {
        uint64_t b = i - first;

        if (!vpc_bit(bm, b)) {
            bm[b / 8] |= (uint8_t)(0x80u >> (b % 8));
            all = false;
        }
    }
    if (!all)
        r = bd_pwrite(n->file, bm, (s1 - 1 - first) / 8 + 1,
                      (uint64_t)entry * BD_SECTOR + first / 8, 0);
    free(bm);
out_unlock:
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int vpc_pwrite(struct bd_node *n, const void *buf, uint64_t len,
                      uint64_t off, unsigned flags)
{
    struct vpc_state *s = n->state;
    const uint8_t *p = buf;
    bool grew = false;
    int r;

    if (s->ft.type == VPC_TYPE_FIXED)
        return bd_pwrite(n->file, buf, len, off, flags);
    while (len) {
        uint64_t blk = off / s->block_size, in = off % s->block_size;
        uint64_t chunk = s->block_size - in;
        uint32_t e;

        if (chunk > len)
            chunk = len;
        e = vpc_bat_get(s, blk);
        if (e == VPC_BAT_UNUSED) {
            r = vpc_alloc_block(n, blk, &e);
            if (r < 0)
                return r;
            grew = true;
        }
        r = bd_pwrite(n->file, p, chunk, vpc_block_data_off(s, e) + in, flags);
        if (r < 0)
            return r;
        if (s->ft.type == VPC_TYPE_DIFF) {
            r = vpc_mark_present(n, e, in, chunk);
            if (r < 0)
                return r;
        }
        p += chunk;
        off += chunk;
        len -= chunk;
    }
    /* FUA covers the map entries that make the data reachable */
    if (grew && (flags & BD_REQ_FUA))
        return bd_flush(n->file);
    return 0;
}

/*
 * Zeroes without allocating: an unused block of a dynamic disk already reads
 * as zeroes. A differencing disk must hide its parent there, so it takes
 * the write path's allocation and marks the sectors present.
 */
static int vpc_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                             unsigned flags)
{
    struct vpc_state *s = n->state;
    int r;

    if (s->ft.type == VPC_TYPE_FIXED)
        return bd_pwrite_zeroes(n->file, len, off, flags);
    while (len) {
        uint64_t blk = off / s->block_size, in = off % s->block_size;
        uint64_t chunk = s->block_size - in;
        uint32_t e;

        if (chunk > len)
            chunk = len;
        e = vpc_bat_get(s, blk);
        if (e == VPC_BAT_UNUSED && s->ft.type == VPC_TYPE_DIFF) {
            r = vpc_alloc_block(n, blk, &e);
            if (r < 0)
                return r;
        }
        if (e != VPC_BAT_UNUSED) {
            r = bd_pwrite_zeroes(n->file, chunk, vpc_block_data_off(s, e) + in,
                                 flags);
            if (r == 0 && s->ft.type == VPC_TYPE_DIFF)
                r = vpc_mark_present(n, e, in, chunk);
            if (r < 0)
                return r;
        }
        off += chunk;
        len -= chunk;
    }
    return 0;
}

static int vpc_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                            uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vpc_state *s = n->state;
    uint64_t blk, in, chunk, first;
    uint32_t e;
    uint8_t *bm;
    int r;

    if (s->ft.type == VPC_TYPE_FIXED) {
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        *map = off;
        return 0;
    }
    blk = off / s->block_size;
    in = off % s->block_size;
    chunk = s->block_size - in;
    if (chunk > len)
        chunk = len;
    e = vpc_bat_get(s, blk);
    if (e == VPC_BAT_UNUSED) {
        /* merge following unallocated blocks */
        uint64_t done = chunk;

        while (done < len && vpc_bat_get(s, ++blk) == VPC_BAT_UNUSED)
            done += len - done < s->block_size ? len - done : s->block_size;
        *pnum = done;
        *status = 0;
        return 0;
    }
    *map = vpc_block_data_off(s, e) + in;
    if (s->ft.type != VPC_TYPE_DIFF) {
        *pnum = chunk;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        return 0;
    }
    r = vpc_read_bitmap(n, e, in / BD_SECTOR, (in + chunk) / BD_SECTOR, &bm, &first);
    if (r < 0)
        return r;
    {
        uint64_t i = in / BD_SECTOR, end = (in + chunk) / BD_SECTOR;
        bool here = vpc_bit(bm, i - first);

        while (i < end && vpc_bit(bm, i - first) == here)
            i++;
        *pnum = i * BD_SECTOR - in;
        *status = here ? BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET : 0;
    }
    free(bm);
    return 0;
}

static void vpc_info(struct bd_node *n, struct bd_info *info)
{
    struct vpc_state *s = n->state;
    static const char *const types[] = { [VPC_TYPE_FIXED] = "fixed",
                                         [VPC_TYPE_DYNAMIC] = "dynamic",
                                         [VPC_TYPE_DIFF] = "differencing" };
    char creator[5];

    memcpy(creator, s->ft.creator, sizeof(creator));
    vpc_printable(creator);
    bd_info_add(info, "subformat", "%s", types[s->ft.type]);
    bd_info_add(info, "creator", "%s", creator);
    bd_info_add(info, "geometry", "%u/%u/%u", s->ft.cyls, s->ft.heads, s->ft.spt);
    bd_info_add(info, "size from", "%s", s->size_from_chs ? "chs geometry"
                                                          : "current size");
    if (s->ft.type != VPC_TYPE_FIXED)
        bd_info_add(info, "block size", "%u", s->block_size);
    if (s->parent_name)
        bd_info_add(info, "parent", "%s", s->parent_name);
}

/* ---- check --------------------------------------------------------------- */

struct vpc_extent {
    uint64_t off, end;
    int64_t blk;                /* -1: metadata */
};

static int vpc_extent_cmp(const void *a, const void *b)
{
    const struct vpc_extent *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * Blocks that overlap each other or the metadata are corruption (writes to
 * one land in the other); a footer copy at the start that differs from the
 * one at the end is repaired from the end (the copy writes keep current).
 */
static int vpc_check(struct bd_node *n, unsigned fix, struct bd_check *res,
                     struct bd_err *err)
{
    struct vpc_state *s = n->state;
    uint64_t nblocks, k = 0;
    struct vpc_extent *x;
    uint8_t head[VPC_FOOTER_SIZE];
    int r;

    if (s->ft.type == VPC_TYPE_FIXED)
        return 0;
    nblocks = (s->size + s->block_size - 1) / s->block_size;
    x = calloc(nblocks + 4, sizeof(*x));
    if (!x)
        return bd_err_set(err, ENOMEM, "%s: out of memory", n->name);
    x[k++] = (struct vpc_extent){ 0, VPC_FOOTER_SIZE, -1 };
    x[k++] = (struct vpc_extent){ s->ft.data_off, s->ft.data_off + VPC_DYN_SIZE, -1 };
    x[k++] = (struct vpc_extent){ s->dyn.table_off,
                                  s->dyn.table_off + (uint64_t)s->dyn.bat_entries * 4,
                                  -1 };
    for (uint64_t i = 0; i < nblocks; i++) {
        uint32_t e = s->bat[i];

        if (e != VPC_BAT_UNUSED)
            x[k++] = (struct vpc_extent){ (uint64_t)e * BD_SECTOR,
                                          vpc_block_data_off(s, e) + s->block_size,
                                          (int64_t)i };
    }
    qsort(x, k, sizeof(*x), vpc_extent_cmp);
    for (uint64_t i = 1; i < k; i++) {
        if (x[i].off < x[i - 1].end && (x[i].blk >= 0 || x[i - 1].blk >= 0)) {
            log_warn("%s: vhd block %lld overlaps %s at offset %llu", n->name,
                     (long long)(x[i].blk >= 0 ? x[i].blk : x[i - 1].blk),
                     x[i].blk >= 0 && x[i - 1].blk >= 0 ? "another block"
                                                        : "the metadata",
                     (unsigned long long)x[i].off);
            res->corruptions++;
        }
    }
    free(x);

    r = bd_pread(n->file, head, VPC_FOOTER_SIZE, 0);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot read the vhd header: %s", n->name,
                          strerror(-r));
    if (!s->end_footer_bad && memcmp(head, s->footer_raw, VPC_FOOTER_SIZE) != 0) {
        log_warn("%s: the footer copy at the start differs from the footer at "
                 "the end", n->name);
        if (fix & BD_CHECK_FIX_ERRORS) {
            r = bd_pwrite(n->file, s->footer_raw, VPC_FOOTER_SIZE, 0, 0);
            if (r < 0)
                return bd_err_set(err, -r, "%s: cannot write the footer copy: %s",
                                  n->name, strerror(-r));
            res->corruptions_fixed++;
        } else {
            res->corruptions++;
        }
    }
    return 0;
}

/* ---- create -------------------------------------------------------------- */

static const char *const vpc_subformats[] = { "dynamic", "fixed", NULL };

static void vpc_footer_build(uint8_t *b, uint32_t type, uint64_t size,
                             uint16_t c, uint8_t h, uint8_t spt, bool force)
{
    memset(b, 0, VPC_FOOTER_SIZE);
    memcpy(b, "conectix", 8);
    bd_put_be32(b + 8, 2);                      /* reserved bit, always set */
    bd_put_be32(b + 12, 0x00010000);
    bd_put_be64(b + 16, type == VPC_TYPE_FIXED ? UINT64_MAX : VPC_FOOTER_SIZE);
    bd_put_be32(b + 24, (uint32_t)(time(NULL) - VPC_EPOCH));
    /* QEMU sizes "qemu" disks by CHS and "qem2" by current size */
    memcpy(b + 28, force ? "qem2" : "qemu", 4);
    bd_put_be32(b + 32, 0x00050003);
    memcpy(b + 36, "Wi2k", 4);
    bd_put_be64(b + 40, size);
    bd_put_be64(b + 48, size);
    bd_put_be16(b + 56, c);
    b[58] = h;
    b[59] = spt;
    bd_put_be32(b + 60, type);
    if (getrandom(b + 68, 16, 0) != 16) {
        for (int i = 0; i < 16; i++)
            b[68 + i] = (uint8_t)rand();
    }
    b[68 + 6] = (uint8_t)((b[68 + 6] & 0x0f) | 0x40);
    b[68 + 8] = (uint8_t)((b[68 + 8] & 0x3f) | 0x80);
    bd_put_be32(b + 64, vpc_checksum(b, VPC_FOOTER_SIZE, 64));
}

static int vpc_create(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                      struct bd_err *err)
{
    uint8_t footer[VPC_FOOTER_SIZE], dyn[VPC_DYN_SIZE];
    uint64_t sectors = size / BD_SECTOR, entries, bat_bytes, total;
    uint16_t c = 0;
    uint8_t h = 0, spt = 0;
    bool force = false;
    uint8_t *bat;
    int type, r;

    type = bd_opts_get_enum(o, "subformat", vpc_subformats, 0, err);
    if (type < 0)
        return type;
    r = bd_opts_get_bool(o, "force_size", false, &force, err);
    if (r < 0 && r != -ENOENT)
        return r;
    if (size % BD_SECTOR)
        sectors++;
    if (force) {
        c = 65535;
        h = 16;
        spt = 255;
    } else {
        /* the smallest geometry that holds the size: QEMU rounds up too */
        for (uint64_t i = 0; sectors > (uint64_t)c * h * spt; i++) {
            if (sectors + i > VPC_CHS_MAX_SECTORS) {
                c = 65535;
                h = 16;
                spt = 255;
                break;
            }
            vpc_chs_for(sectors + i, &c, &h, &spt);
        }
    }
    total = (uint64_t)c * h * spt;
    if (total == VPC_CHS_MAX_SECTORS)
        total = sectors;
    if (total > VPC_MAX_SECTORS)
        return bd_err_set(err, EFBIG, "disk size %llu is too large for vhd (at "
                          "most 2040 GiB)", (unsigned long long)size);
    size = total * BD_SECTOR;
    vpc_footer_build(footer, type == 1 ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC, size,
                     c, h, spt, force);

    if (type == 1) {
        r = bd_truncate(file, size + VPC_FOOTER_SIZE, BD_PREALLOC_OFF, err);
        if (r < 0)
            return r;
        r = bd_pwrite(file, footer, VPC_FOOTER_SIZE, size, 0);
        if (r < 0)
            return bd_err_set(err, -r, "cannot write the vhd footer: %s",
                              strerror(-r));
        return 0;
    }

    entries = (size + VPC_DEFAULT_BLOCK - 1) / VPC_DEFAULT_BLOCK;
    bat_bytes = bd_align_up(entries * 4, BD_SECTOR);
    memset(dyn, 0, sizeof(dyn));
    memcpy(dyn, "cxsparse", 8);
    bd_put_be64(dyn + 8, UINT64_MAX);
    bd_put_be64(dyn + 16, VPC_FOOTER_SIZE + VPC_DYN_SIZE);
    bd_put_be32(dyn + 24, 0x00010000);
    bd_put_be32(dyn + 28, (uint32_t)entries);
    bd_put_be32(dyn + 32, VPC_DEFAULT_BLOCK);
    bd_put_be32(dyn + 36, vpc_checksum(dyn, VPC_DYN_SIZE, 36));
    bat = malloc(bat_bytes ? bat_bytes : 1);
    if (!bat)
        return bd_err_set(err, ENOMEM, "no memory for the block allocation table");
    memset(bat, 0xff, bat_bytes);
    r = bd_truncate(file, VPC_FOOTER_SIZE + VPC_DYN_SIZE + bat_bytes + VPC_FOOTER_SIZE,
                    BD_PREALLOC_OFF, err);
    if (r == 0)
        r = bd_pwrite(file, footer, VPC_FOOTER_SIZE, 0, 0);
    if (r == 0)
        r = bd_pwrite(file, dyn, VPC_DYN_SIZE, VPC_FOOTER_SIZE, 0);
    if (r == 0)
        r = bd_pwrite(file, bat, bat_bytes, VPC_FOOTER_SIZE + VPC_DYN_SIZE, 0);
    if (r == 0)
        r = bd_pwrite(file, footer, VPC_FOOTER_SIZE,
                      VPC_FOOTER_SIZE + VPC_DYN_SIZE + bat_bytes, 0);
    free(bat);
    if (r < 0 && !err->errnum)
        bd_err_set(err, -r, "cannot write the vhd metadata: %s", strerror(-r));
    return r;
}

static const char *const vpc_options[] = {
    "force_size", "force_size_calc", "ignore_checksum", NULL
};
static const char *const vpc_create_options[] = { "subformat", "force_size", NULL };

static const struct bd_create_ops vpc_create_ops = {
    .options = vpc_create_options,
    .create = vpc_create,
};

const struct bd_driver bd_drv_vpc = {
    .name = "vpc",
    .kind = BD_FORMAT,
    .options = vpc_options,
    .state_size = sizeof(struct vpc_state),
    .parallel = true,
    .probe = vpc_probe,
    .open = vpc_open,
    .close = vpc_close,
    .limits = vpc_limits,
    .size = vpc_size,
    .pread = vpc_pread,
    .pwrite = vpc_pwrite,
    .pwrite_zeroes = vpc_pwrite_zeroes,
    .block_status = vpc_block_status,
    .info = vpc_info,
    .check = vpc_check,
    .create = &vpc_create_ops,
};
