/*
 * The VMDK descriptor: a small text file (or a text area inside a sparse
 * extent) naming the disk's extents, its content ID and its parent. This file
 * parses and writes that text; it does not open extents or parents.
 */
#include "vmdk.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_range(const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Trim trailing blanks and carriage returns from [p, end). */
static const char *trim_end(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    return end;
}

/* Next whitespace-separated word of [*p, end), or a "quoted string". */
static bool next_token(const char **p, const char *end, const char **tok,
                       size_t *tok_len, bool *quoted)
{
    const char *s = skip_ws(*p, end);

    if (s >= end)
        return false;
    if (*s == '"') {
        const char *q = memchr(s + 1, '"', (size_t)(end - s - 1));
        if (!q)
            return false;
        *tok = s + 1;
        *tok_len = (size_t)(q - s - 1);
        *quoted = true;
        *p = q + 1;
        return true;
    }
    *tok = s;
    while (s < end && *s != ' ' && *s != '\t')
        s++;
    *tok_len = (size_t)(s - *tok);
    *quoted = false;
    *p = s;
    return true;
}

static bool parse_u64(const char *s, size_t len, int base, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        if (__builtin_mul_overflow(v, (uint64_t)base, &v) ||
            __builtin_add_overflow(v, (uint64_t)d, &v))
            return false;
    }
    *out = v;
    return true;
}

static bool tok_is(const char *tok, size_t len, const char *word)
{
    return strlen(word) == len && strncmp(tok, word, len) == 0;
}

static int parse_extent(const char *line, const char *end, struct vmdk_desc *d,
                        unsigned lineno, const char *name, struct bd_err *err)
{
    struct vmdk_desc_extent e = {0};
    const char *p = line, *tok;
    size_t len;
    bool quoted;
    uint64_t v;

    if (d->n_ext >= VMDK_MAX_EXTENTS)
        return bd_err_set(err, EINVAL, "%s: more than %u extents in the descriptor",
                          name, VMDK_MAX_EXTENTS);
    next_token(&p, end, &tok, &len, &quoted);
    if (tok_is(tok, len, "RW"))
        e.access = VMDK_ACCESS_RW;
    else if (tok_is(tok, len, "RDONLY"))
        e.access = VMDK_ACCESS_RDONLY;
    else
        e.access = VMDK_ACCESS_NOACCESS;

    if (!next_token(&p, end, &tok, &len, &quoted) || !parse_u64(tok, len, 10, &v))
        return bd_err_set(err, EINVAL, "%s: descriptor line %u: bad extent size",
                          name, lineno);
    e.sectors = v;
    if (!next_token(&p, end, &tok, &len, &quoted) || len >= sizeof(e.type) || len == 0)
        return bd_err_set(err, EINVAL, "%s: descriptor line %u: missing extent type",
                          name, lineno);
    memcpy(e.type, tok, len);
    e.type[len] = '\0';
    if (!strcmp(e.type, "FLAT") || !strcmp(e.type, "VMFS"))
        e.kind = VMDK_EXT_FLAT;
    else if (!strcmp(e.type, "SPARSE") || !strcmp(e.type, "VMFSSPARSE"))
        e.kind = VMDK_EXT_SPARSE;
    else if (!strcmp(e.type, "ZERO"))
        e.kind = VMDK_EXT_ZERO;
    else if (!strcmp(e.type, "SESPARSE"))
        e.kind = VMDK_EXT_SESPARSE;
    else
        return bd_err_set(err, ENOTSUP, "%s: extent type '%s' is not supported",
                          name, e.type);

    if (e.kind != VMDK_EXT_ZERO) {
        if (!next_token(&p, end, &tok, &len, &quoted) || len == 0)
            return bd_err_set(err, EINVAL,
                              "%s: descriptor line %u: extent has no file name",
                              name, lineno);
        const char *fname = tok;
        size_t fname_len = len;
        if (next_token(&p, end, &tok, &len, &quoted) && e.kind == VMDK_EXT_FLAT) {
            if (!parse_u64(tok, len, 10, &v))
                return bd_err_set(err, EINVAL,
                                  "%s: descriptor line %u: bad extent offset",
                                  name, lineno);
            e.offset_sectors = v;
        }
        e.filename = dup_range(fname, fname_len);
        if (!e.filename)
            return -ENOMEM;
    }

    struct vmdk_desc_extent *n = realloc(d->ext, (d->n_ext + 1) * sizeof(*n));
    if (!n) {
        free(e.filename);
        return -ENOMEM;
    }
    d->ext = n;
    d->ext[d->n_ext++] = e;
    return 0;
}

static int set_str(char **dst, const char *v, size_t len)
{
    free(*dst);
    *dst = dup_range(v, len);
    return *dst ? 0 : -ENOMEM;
}

static int parse_keyval(const char *line, const char *end, struct vmdk_desc *d,
                        unsigned lineno, const char *name, struct bd_err *err)
{
    const char *eq = memchr(line, '=', (size_t)(end - line));
    const char *kend, *v;
    uint64_t x;

    if (!eq)
        return 0;   /* VMware ignores lines it does not understand */
    kend = trim_end(line, eq);
    v = skip_ws(eq + 1, end);
    if (v < end && *v == '"') {
        const char *q = memchr(v + 1, '"', (size_t)(end - v - 1));
        if (!q)
            return bd_err_set(err, EINVAL, "%s: descriptor line %u: unterminated quote",
                              name, lineno);
        end = q;
        v++;
    }
    size_t klen = (size_t)(kend - line), vlen = (size_t)(end - v);

    if (tok_is(line, klen, "version")) {
        if (!parse_u64(v, vlen, 10, &x) || x > 100)
            return bd_err_set(err, EINVAL, "%s: descriptor has a bad version", name);
        d->version = (int)x;
    } else if (tok_is(line, klen, "CID")) {
        if (!parse_u64(v, vlen, 16, &x) || x > UINT32_MAX)
            return bd_err_set(err, EINVAL, "%s: descriptor line %u: bad CID",
                              name, lineno);
        d->cid = (uint32_t)x;
        d->has_cid = true;
    } else if (tok_is(line, klen, "parentCID")) {
        if (!parse_u64(v, vlen, 16, &x) || x > UINT32_MAX)
            return bd_err_set(err, EINVAL, "%s: descriptor line %u: bad parentCID",
                              name, lineno);
        d->parent_cid = (uint32_t)x;
    } else if (tok_is(line, klen, "createType")) {
        return set_str(&d->create_type, v, vlen);
    } else if (tok_is(line, klen, "parentFileNameHint")) {
        if (memchr(v, '\0', vlen))
            return bd_err_set(err, EINVAL, "%s: bad parentFileNameHint", name);
        return set_str(&d->parent_hint, v, vlen);
    } else if (tok_is(line, klen, "ddb.adapterType")) {
        return set_str(&d->adapter_type, v, vlen);
    } else if (tok_is(line, klen, "ddb.virtualHWVersion")) {
        return set_str(&d->hw_version, v, vlen);
    }
    return 0;
}

static bool is_extent_line(const char *p, const char *end)
{
    static const char *const acc[] = {"RW ", "RDONLY ", "NOACCESS "};

    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(acc[i]);
        if ((size_t)(end - p) >= l && strncmp(p, acc[i], l) == 0)
            return true;
        if ((size_t)(end - p) >= l && strncmp(p, acc[i], l - 1) == 0 &&
            p[l - 1] == '\t')
            return true;
    }
    return false;
}

int vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *d,
                    const char *name, struct bd_err *err)
{
    const char *nul = memchr(text, '\0', len);
    const char *p = text, *end = nul ? nul : text + len;
    unsigned lineno = 0;
    int ret;

    memset(d, 0, sizeof(*d));
    d->parent_cid = VMDK_CID_NONE;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *lend = eol ? eol : end;
        const char *s = skip_ws(p, lend), *e = trim_end(s, lend);

        lineno++;
        if (s < e && *s != '#') {
            if (is_extent_line(s, e))
                ret = parse_extent(s, e, d, lineno, name, err);
            else
                ret = parse_keyval(s, e, d, lineno, name, err);
            if (ret < 0) {
                if (ret == -ENOMEM)
                    bd_err_set(err, ENOMEM, "%s: out of memory reading the descriptor",
                               name);
                vmdk_desc_free(d);
                return ret;
            }
        }
        p = eol ? eol + 1 : end;
    }
    return 0;
}

void vmdk_desc_free(struct vmdk_desc *d)
{
    for (size_t i = 0; i < d->n_ext; i++)
        free(d->ext[i].filename);
    free(d->ext);
    free(d->create_type);
    free(d->parent_hint);
    free(d->adapter_type);
    free(d->hw_version);
    memset(d, 0, sizeof(*d));
}

char *vmdk_desc_with_cid(const char *text, size_t len, uint32_t cid,
                         size_t *out_len)
{
    const char *nul = memchr(text, '\0', len);
    const char *end = nul ? nul : text + len, *p = text;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *lend = eol ? eol : end;
        const char *s = skip_ws(p, lend);

        if (lend - s >= 3 && strncmp(s, "CID", 3) == 0) {
            const char *q = skip_ws(s + 3, lend);
            if (q < lend && *q == '=') {
                char val[16];
                size_t head = (size_t)(s - text), tail = (size_t)(end - lend);
                int vl = snprintf(val, sizeof(val), "CID=%08" PRIx32, cid);
                char *out = malloc(head + (size_t)vl + tail + 1);
                if (!out)
                    return NULL;
                memcpy(out, text, head);
                memcpy(out + head, val, (size_t)vl);
                memcpy(out + head + vl, lend, tail);
                out[head + vl + tail] = '\0';
                *out_len = head + (size_t)vl + tail;
                return out;
            }
        }
        p = eol ? eol + 1 : end;
    }
    return NULL;
}

char *vmdk_desc_format(const struct vmdk_desc_params *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bool ide = !strcmp(p->adapter_type, "ide");
    unsigned heads = ide ? 16 : 255;
    uint64_t cyl = p->size / ((uint64_t)heads * 63 * BD_SECTOR);

    if (!f)
        return NULL;
    /* layout from the VMware Virtual Disk Format 1.1 specification, 4 */
    fprintf(f, "# Disk DescriptorFile\nversion=1\nCID=%08" PRIx32 "\n"
               "parentCID=%08" PRIx32 "\ncreateType=\"%s\"\n",
            p->cid, p->parent_cid, p->create_type);
    if (p->parent_hint)
        fprintf(f, "parentFileNameHint=\"%s\"\n", p->parent_hint);
    fprintf(f, "\n# Extent description\n");
    for (const char *const *l = p->extent_lines; *l; l++)
        fprintf(f, "%s\n", *l);
    if (cyl > 16383 && ide)
        cyl = 16383;
    if (cyl == 0)
        cyl = 1;
    fprintf(f, "\n# The Disk Data Base\n#DDB\n\n"
               "ddb.virtualHWVersion = \"%s\"\n"
               "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
               "ddb.geometry.heads = \"%u\"\n"
               "ddb.geometry.sectors = \"63\"\n"
               "ddb.adapterType = \"%s\"\n"
               "ddb.toolsVersion = \"%s\"\n",
            p->hw_version, cyl, heads, p->adapter_type, p->tools_version);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
