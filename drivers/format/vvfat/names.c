/*
 * vvfat names: a host name becomes a FAT long name (UTF-16, at most 255
 * units, without the characters FAT refuses) and an 8.3 short name made
 * the way the FAT specification's basis-name algorithm makes it (upper
 * case, invalid characters as '_', a "~N" numeric tail when the long name
 * does not fit 8.3 or lost characters), unique in its directory.
 */
#include "vvfat.h"

#include <stdlib.h>
#include <string.h>

/* Characters a long name cannot hold (besides controls below 0x20). */
static bool lfn_bad(uint32_t c)
{
    return c < 0x20 || (c < 0x80 && strchr("\"*/:<>?\\|", (int)c) != NULL);
}

/* Characters an 8.3 name can hold, after upper-casing. */
static bool short_ok(uint16_t c)
{
    if (c >= 'A' && c <= 'Z')
        return true;
    if (c >= '0' && c <= '9')
        return true;
    return c < 0x80 && c > 0x20 && strchr("!#$%&'()-@^_`{}~", c) != NULL;
}

static uint16_t upper16(uint16_t c)
{
    if (c >= 'a' && c <= 'z')
        return (uint16_t)(c - 0x20);
    if (c >= 0xe0 && c <= 0xfe && c != 0xf7)
        return (uint16_t)(c - 0x20);
    return c;
}

/* One UTF-8 character at s (NUL-terminated) into *cp; its length, or 0
 * for a byte that starts no valid character. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    uint32_t c = s[0];
    size_t n, i;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        c &= 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/*
 * The FAT long name of a host name: bytes that are no UTF-8 and characters
 * FAT refuses become '_', trailing spaces and dots go (Windows drops them),
 * an empty result is "_", and the name is cut at 255 units (never inside a
 * surrogate pair). Returns 1 when the name changed, else 0.
 */
int vvfat_lfn_from_host(const char *host, uint16_t *out, size_t *len)
{
    const unsigned char *p = (const unsigned char *)host;
    size_t n = 0;
    int changed = 0;

    while (*p) {
        uint32_t c;
        size_t l = utf8_next(p, &c);
        if (l == 0) {
            c = '_';
            l = 1;
            changed = 1;
        } else if (lfn_bad(c)) {
            c = '_';
            changed = 1;
        }
        p += l;
        size_t need = c >= 0x10000 ? 2 : 1;
        if (n + need > VVFAT_LFN_MAX) {
            changed = 1;
            break;
        }
        if (c >= 0x10000) {
            c -= 0x10000;
            out[n++] = (uint16_t)(0xd800 | c >> 10);
            out[n++] = (uint16_t)(0xdc00 | (c & 0x3ff));
        } else {
            out[n++] = (uint16_t)c;
        }
    }
    while (n && (out[n - 1] == ' ' || out[n - 1] == '.')) {
        n--;
        changed = 1;
    }
    if (n == 0) {
        out[n++] = '_';
        changed = 1;
    }
    *len = n;
    return changed;
}

/*
 * The basis of the short name of lfn: upper case, spaces and leading dots
 * dropped, up to 8 characters before the first dot and 3 after the last.
 * *base_len is the length of the primary part. Returns true when a numeric
 * tail is needed: a character was lost or replaced, or lfn is no 8.3 name
 * (upper case aside).
 */
bool vvfat_short_basis(const uint16_t *lfn, size_t len, uint8_t out[11],
                       size_t *base_len)
{
    bool lossy = false;
    size_t start = 0, last_dot = len, i, b = 0, e = 0;

    memset(out, ' ', 11);
    for (i = 0; i < len; i++) {
        if (lfn[i] == '.')
            last_dot = i;
    }
    while (start < len && (lfn[start] == '.' || lfn[start] == ' ')) {
        start++;
        lossy = true;
    }
    if (last_dot < start)
        last_dot = len;
    for (i = start; i < len && lfn[i] != '.'; i++) {
        uint16_t c = upper16(lfn[i]);
        if (c == ' ') {
            lossy = true;
            continue;
        }
        if (b == 8) {
            lossy = true;
            break;
        }
        if (!short_ok(c)) {
            c = '_';
            lossy = true;
        }
        out[b++] = (uint8_t)c;
    }
    /* a dot before the last one, or text between them, cannot be kept */
    if (i < len && i != last_dot)
        lossy = true;
    for (i = last_dot + 1; last_dot < len && i < len; i++) {
        uint16_t c = upper16(lfn[i]);
        if (c == ' ') {
            lossy = true;
            continue;
        }
        if (e == 3) {
            lossy = true;
            break;
        }
        if (!short_ok(c)) {
            c = '_';
            lossy = true;
        }
        out[8 + e++] = (uint8_t)c;
    }
    if (b == 0) {
        out[b++] = '_';
        lossy = true;
    }
    *base_len = b;
    return lossy;
}

/* Put "~n" into the primary part, cutting the basis so that it fits. */
void vvfat_short_tail(uint8_t name[11], size_t base_len, unsigned n)
{
    char tail[12];
    int tl = snprintf(tail, sizeof(tail), "~%u", n);
    size_t keep = base_len;
    if (keep + (size_t)tl > 8)
        keep = 8 - (size_t)tl;
    memset(name + keep, ' ', 8 - keep);
    memcpy(name + keep, tail, (size_t)tl);
}

/* Does the short name spell lfn exactly (case included)? Then no LFN
 * entries are needed. */
bool vvfat_short_is_lfn(const uint8_t name[11], const uint16_t *lfn,
                        size_t len)
{
    uint16_t s[12];
    size_t n = 0;
    for (size_t i = 0; i < 8 && name[i] != ' '; i++)
        s[n++] = name[i];
    if (name[8] != ' ') {
        s[n++] = '.';
        for (size_t i = 8; i < 11 && name[i] != ' '; i++)
            s[n++] = name[i];
    }
    return n == len && memcmp(s, lfn, n * 2) == 0;
}

uint8_t vvfat_lfn_checksum(const uint8_t name[11])
{
    uint8_t sum = 0;
    for (int i = 0; i < 11; i++)
        sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + name[i]);
    return sum;
}

/* The LFN entries of lfn, last part first, as they precede the short
 * entry: ents holds vvfat_lfn_slots(len) entries of 32 bytes. */
void vvfat_put_lfn(uint8_t *ents, const uint16_t *lfn, size_t len, uint8_t csum)
{
    static const uint8_t pos[13] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24,
                                     28, 30 };
    size_t slots = vvfat_lfn_slots(len);
    for (size_t k = 0; k < slots; k++) {
        uint8_t *e = ents + 32 * (slots - 1 - k);
        memset(e, 0, 32);
        e[0] = (uint8_t)((k + 1) | (k + 1 == slots ? 0x40 : 0));
        e[11] = 0x0f;
        e[13] = csum;
        for (size_t j = 0; j < 13; j++) {
            size_t at = k * 13 + j;
            uint16_t c = at < len ? lfn[at] : at == len ? 0 : 0xffff;
            bd_put_le16(e + pos[j], c);
        }
    }
}

/* UTF-16 to UTF-8 for messages; returns the length written. */
size_t vvfat_utf16_to_utf8(const uint16_t *in, size_t len, char *out,
                           size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t c = in[i];
        if (c >= 0xd800 && c < 0xdc00 && i + 1 < len &&
            in[i + 1] >= 0xdc00 && in[i + 1] < 0xe000) {
            c = 0x10000 + ((c - 0xd800) << 10) + (in[i + 1] - 0xdc00);
            i++;
        }
        char b[4];
        size_t n;
        if (c < 0x80) {
            b[0] = (char)c;
            n = 1;
        } else if (c < 0x800) {
            b[0] = (char)(0xc0 | c >> 6);
            b[1] = (char)(0x80 | (c & 0x3f));
            n = 2;
        } else if (c < 0x10000) {
            b[0] = (char)(0xe0 | c >> 12);
            b[1] = (char)(0x80 | (c >> 6 & 0x3f));
            b[2] = (char)(0x80 | (c & 0x3f));
            n = 3;
        } else {
            b[0] = (char)(0xf0 | c >> 18);
            b[1] = (char)(0x80 | (c >> 12 & 0x3f));
            b[2] = (char)(0x80 | (c >> 6 & 0x3f));
            b[3] = (char)(0x80 | (c & 0x3f));
            n = 4;
        }
        if (o + n + 1 > size)
            break;
        memcpy(out + o, b, n);
        o += n;
    }
    if (size)
        out[o] = 0;
    return o;
}

/* ---- uniqueness in one directory: a set of 64-bit hashes ---- */

struct hset {
    uint64_t *h;
    size_t cap;
};

static uint64_t fnv(const void *p, size_t len, bool fold)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i += 2) {
        uint16_t c = (uint16_t)(b[i] | (i + 1 < len ? b[i + 1] << 8 : 0));
        if (fold)
            c = upper16(c);
        h = (h ^ (c & 0xff)) * 0x100000001b3ull;
        h = (h ^ (c >> 8)) * 0x100000001b3ull;
    }
    return h | 1;       /* 0 marks an empty slot */
}

/* Add h; false when it was there already. */
static bool hset_add(struct hset *s, uint64_t h)
{
    size_t i = h & (s->cap - 1);
    while (s->h[i]) {
        if (s->h[i] == h)
            return false;
        i = (i + 1) & (s->cap - 1);
    }
    s->h[i] = h;
    return true;
}

static int hset_init(struct hset *s, size_t count)
{
    s->cap = 64;
    while (s->cap < 4 * count + 64)
        s->cap <<= 1;
    s->h = calloc(s->cap, sizeof(*s->h));
    return s->h ? 0 : -ENOMEM;
}

/* Make lfn unique without case: "name (2).ext", "name (3).ext", ... */
static int dedup_lfn(struct vvfat_obj *o, struct hset *seen)
{
    uint16_t *l = o->lfn;
    size_t len = o->lfn_len, dot = len;
    for (size_t i = len; i-- > 1;) {
        if (l[i] == '.') {
            dot = i;
            break;
        }
    }
    for (unsigned k = 2; k < 100000; k++) {
        char num[16];
        int nl = snprintf(num, sizeof(num), " (%u)", k);
        size_t ext = len - dot;
        size_t base = dot;
        if (base + (size_t)nl + ext > VVFAT_LFN_MAX)
            base = VVFAT_LFN_MAX - (size_t)nl - ext;
        uint16_t t[VVFAT_LFN_MAX];
        memcpy(t, l, base * 2);
        for (int j = 0; j < nl; j++)
            t[base + (size_t)j] = (uint16_t)num[j];
        memcpy(t + base + nl, l + dot, ext * 2);
        size_t tl = base + (size_t)nl + ext;
        if (hset_add(seen, fnv(t, tl * 2, true))) {
            memcpy(l, t, tl * 2);
            o->lfn_len = (uint16_t)tl;
            o->renamed = true;
            return 0;
        }
    }
    return -ENOSPC;
}

/*
 * Name the children of one directory (sorted by host name, each with its
 * lfn set from the host name): long names unique without case, then short
 * names unique, the ones that need no tail first. -ENOSPC when tails run
 * out, -ENOMEM.
 */
int vvfat_name_children(struct vvfat_obj *kids, uint32_t count)
{
    struct hset longs, shorts;
    size_t *base = malloc((count ? count : 1) * sizeof(*base));
    bool *tail = malloc((count ? count : 1) * sizeof(*tail));
    int r = -ENOMEM;

    if (!base || !tail || hset_init(&longs, count) < 0)
        goto out;
    if (hset_init(&shorts, count) < 0)
        goto out_longs;
    r = 0;
    for (uint32_t i = 0; i < count && r == 0; i++) {
        struct vvfat_obj *o = &kids[i];
        if (!hset_add(&longs, fnv(o->lfn, o->lfn_len * 2u, true)))
            r = dedup_lfn(o, &longs);
    }
    for (uint32_t i = 0; i < count && r == 0; i++) {
        struct vvfat_obj *o = &kids[i];
        tail[i] = vvfat_short_basis(o->lfn, o->lfn_len, o->short_name, &base[i]);
        if (!tail[i])
            hset_add(&shorts, fnv(o->short_name, 11, false));
    }
    for (uint32_t i = 0; i < count && r == 0; i++) {
        struct vvfat_obj *o = &kids[i];
        unsigned n = 1;
        while (tail[i]) {
            if (n > 999999) {
                r = -ENOSPC;
                break;
            }
            vvfat_short_tail(o->short_name, base[i], n++);
            if (hset_add(&shorts, fnv(o->short_name, 11, false)))
                break;
        }
        o->has_lfn = !vvfat_short_is_lfn(o->short_name, o->lfn, o->lfn_len);
    }
    free(shorts.h);
out_longs:
    free(longs.h);
out:
    free(base);
    free(tail);
    return r;
}
