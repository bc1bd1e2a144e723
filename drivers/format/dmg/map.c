/*
 * dmg chunk map: reads the koly trailer at the end of the file, the XML
 * property list (or the older resource fork) it points to, and the blkx
 * ("mish") tables inside, into one sorted array of chunks. Every number read
 * here is untrusted. Decoding chunk data is codec.c's job, not this file's.
 */
#include "dmg.h"
#include "core/overflow.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

/* ---- koly trailer ------------------------------------------------------ */

struct dmg_koly {
    uint32_t version;
    uint64_t data_fork_off, data_fork_len;
    uint64_t rsrc_fork_off, rsrc_fork_len;
    uint32_t segment_count;
    uint64_t xml_off, xml_len;
    uint64_t sectors;
};

static void dmg_koly_decode(const uint8_t *p, struct dmg_koly *k)
{
    k->version = bd_be32(p + 4);
    k->data_fork_off = bd_be64(p + 24);
    k->data_fork_len = bd_be64(p + 32);
    k->rsrc_fork_off = bd_be64(p + 40);
    k->rsrc_fork_len = bd_be64(p + 48);
    k->segment_count = bd_be32(p + 60);
    k->xml_off = bd_be64(p + 216);
    k->xml_len = bd_be64(p + 224);
    k->sectors = bd_be64(p + 492);
}

/* ---- chunk types ------------------------------------------------------- */

unsigned dmg_type_bit(uint32_t type)
{
    switch (type) {
    case DMG_CHUNK_ZERO:   return 0;
    case DMG_CHUNK_RAW:    return 1;
    case DMG_CHUNK_IGNORE: return 2;
    case DMG_CHUNK_ADC:    return 3;
    case DMG_CHUNK_ZLIB:   return 4;
    case DMG_CHUNK_BZIP2:  return 5;
    case DMG_CHUNK_LZFSE:  return 6;
    case DMG_CHUNK_LZMA:   return 7;
    default:               return 31;
    }
}

const char *dmg_type_name(uint32_t type)
{
    switch (type) {
    case DMG_CHUNK_ZERO:   return "zero";
    case DMG_CHUNK_RAW:    return "raw";
    case DMG_CHUNK_IGNORE: return "ignore";
    case DMG_CHUNK_ADC:    return "adc";
    case DMG_CHUNK_ZLIB:   return "zlib";
    case DMG_CHUNK_BZIP2:  return "bzip2";
    case DMG_CHUNK_LZFSE:  return "lzfse";
    case DMG_CHUNK_LZMA:   return "lzma";
    default:               return "unknown";
    }
}

static bool dmg_type_has_data(uint32_t type)
{
    return type != DMG_CHUNK_ZERO && type != DMG_CHUNK_IGNORE;
}

/* ---- mish tables ------------------------------------------------------- */

static int dmg_map_push(struct dmg_map *m, const struct dmg_chunk *c)
{
    if (m->n_chunks == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct dmg_chunk *nc;

        if (cap > DMG_MAX_CHUNKS)
            return -EFBIG;
        nc = realloc(m->chunks, cap * sizeof(*nc));
        if (!nc)
            return -ENOMEM;
        m->chunks = nc;
        m->cap = cap;
    }
    m->chunks[m->n_chunks++] = *c;
    return 0;
}

int dmg_map_add_mish(struct dmg_map *m, const uint8_t *p, size_t len,
                     uint64_t file_size, const char *name, struct bd_err *err)
{
    unsigned table = m->n_tables;
    uint64_t first_sector, base;
    uint32_t n;

    if (len < DMG_MISH_HDR || memcmp(p, "mish", 4) != 0)
        return bd_err_set(err, EINVAL, "%s: blkx table %u is not a 'mish' table",
                          name, table);
    if (bd_be32(p + 4) != 1)
        return bd_err_set(err, ENOTSUP, "%s: blkx table %u has version %u, "
                          "only version 1 is supported", name, table,
                          bd_be32(p + 4));
    first_sector = bd_be64(p + 8);
    if (ovf_add_u64(m->data_fork_off, bd_be64(p + 24), &base))
        return bd_err_set(err, EINVAL, "%s: blkx table %u has a data offset "
                          "beyond any file", name, table);
    n = bd_be32(p + 200);
    if (n > (len - DMG_MISH_HDR) / DMG_MISH_ENTRY)
        return bd_err_set(err, EINVAL, "%s: blkx table %u claims %u chunks but "
                          "holds only %zu", name, table, n,
                          (len - DMG_MISH_HDR) / DMG_MISH_ENTRY);

    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = p + DMG_MISH_HDR + (size_t)i * DMG_MISH_ENTRY;
        uint32_t type = bd_be32(e);
        uint64_t sector, count = bd_be64(e + 16);
        struct dmg_chunk c = { .type = type };
        int ret;

        if (type == DMG_CHUNK_TERMINATOR)
            break;
        if (type == DMG_CHUNK_COMMENT || count == 0)
            continue;
        if (dmg_type_bit(type) == 31)
            return bd_err_set(err, ENOTSUP, "%s: chunk %u of blkx table %u has "
                              "unknown type 0x%08x", name, i, table, type);
        if (ovf_add_u64(first_sector, bd_be64(e + 8), &sector) ||
            ovf_mul_u64(sector, BD_SECTOR, &c.off) ||
            ovf_mul_u64(count, BD_SECTOR, &c.len) ||
            !ovf_range_ok(c.off, c.len, INT64_MAX))
            return bd_err_set(err, EINVAL, "%s: chunk %u of blkx table %u lies "
                              "beyond any disk size", name, i, table);
        if (dmg_type_has_data(type)) {
            c.src_len = bd_be64(e + 32);
            if (ovf_add_u64(base, bd_be64(e + 24), &c.src_off) ||
                !ovf_range_ok(c.src_off, c.src_len, file_size))
                return bd_err_set(err, EINVAL, "%s: chunk %u of blkx table %u "
                                  "points beyond the end of the file (the image "
                                  "may be truncated)", name, i, table);
            if (type == DMG_CHUNK_RAW && c.src_len < c.len)
                return bd_err_set(err, EINVAL, "%s: raw chunk %u of blkx table "
                                  "%u holds %llu bytes for %llu sectors", name,
                                  i, table, (unsigned long long)c.src_len,
                                  (unsigned long long)count);
            if (type != DMG_CHUNK_RAW &&
                (c.len > DMG_MAX_CHUNK_LEN || c.src_len > DMG_MAX_CHUNK_LEN))
                return bd_err_set(err, EFBIG, "%s: compressed chunk %u of blkx "
                                  "table %u is too large (%llu sectors)", name,
                                  i, table, (unsigned long long)count);
            if (type != DMG_CHUNK_RAW && c.len > m->max_len)
                m->max_len = c.len;
        }
        ret = dmg_map_push(m, &c);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: too many chunks in the blkx "
                              "tables", name);
        m->types_seen |= 1u << dmg_type_bit(type);
    }
    m->n_tables++;
    return 0;
}

static int dmg_chunk_cmp(const void *a, const void *b)
{
    const struct dmg_chunk *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

int dmg_map_finish(struct dmg_map *m, uint64_t koly_sectors, const char *name,
                   struct bd_err *err)
{
    uint64_t end = 0;

    if (m->n_chunks == 0 && koly_sectors == 0)
        return bd_err_set(err, EINVAL, "%s: the blkx tables describe no data",
                          name);
    qsort(m->chunks, m->n_chunks, sizeof(*m->chunks), dmg_chunk_cmp);
    for (size_t i = 0; i < m->n_chunks; i++) {
        const struct dmg_chunk *c = &m->chunks[i];

        if (c->off < end)
            return bd_err_set(err, EINVAL, "%s: blkx chunks overlap at sector "
                              "%llu", name,
                              (unsigned long long)(c->off / BD_SECTOR));
        end = c->off + c->len;
    }
    /* The trailer's sector count is the disk size; chunks reaching past it
     * (a damaged trailer) still get read rather than cut off. */
    if (koly_sectors > (uint64_t)INT64_MAX / BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: the trailer claims an absurd disk "
                          "size (%llu sectors)", name,
                          (unsigned long long)koly_sectors);
    m->size = koly_sectors * BD_SECTOR;
    if (end > m->size)
        m->size = end;
    return 0;
}

size_t dmg_map_find(const struct dmg_map *m, uint64_t off)
{
    size_t lo = 0, hi = m->n_chunks;

    /* first chunk whose end is beyond off */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct dmg_chunk *c = &m->chunks[mid];

        if (c->off + c->len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void dmg_map_free(struct dmg_map *m)
{
    free(m->chunks);
    memset(m, 0, sizeof(*m));
}

/* ---- base64 ------------------------------------------------------------ */

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

int dmg_base64_decode(const char *s, uint8_t **out, size_t *out_len)
{
    size_t slen = strlen(s), n = 0;
    uint8_t *buf = malloc(slen / 4 * 3 + 3);
    uint32_t acc = 0;
    unsigned bits = 0;
    bool pad = false;

    if (!buf)
        return -ENOMEM;
    for (size_t i = 0; i < slen; i++) {
        unsigned char ch = (unsigned char)s[i];
        int v;

        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
            continue;
        if (ch == '=') {
            pad = true;
            continue;
        }
        v = b64_value(ch);
        if (v < 0 || pad) {
            free(buf);
            return -EINVAL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    *out = buf;
    *out_len = n;
    return 0;
}

/* ---- XML property list ------------------------------------------------- */

static xmlNode *xml_first_elem(xmlNode *node)
{
    while (node && node->type != XML_ELEMENT_NODE)
        node = node->next;
    return node;
}

static bool xml_is(const xmlNode *node, const char *tag)
{
    return node && node->type == XML_ELEMENT_NODE &&
           strcmp((const char *)node->name, tag) == 0;
}

/* The text of an element: its text and CDATA children only. Never entity
 * references (xmlNodeGetContent would expand them, and nested entities are
 * the classic way to blow up memory); dmg_parse_plist refuses them anyway. */
static char *xml_text(const xmlNode *node)
{
    size_t len = 0, pos = 0;
    char *out;

    for (const xmlNode *c = node->children; c; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
            c->content)
            len += strlen((const char *)c->content);
    }
    out = malloc(len + 1);
    if (!out)
        return NULL;
    for (const xmlNode *c = node->children; c; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
            c->content) {
            size_t l = strlen((const char *)c->content);

            memcpy(out + pos, c->content, l);
            pos += l;
        }
    }
    out[pos] = 0;
    return out;
}

/* In a plist <dict>, the value element following <key>key</key>. */
static xmlNode *plist_dict_get(xmlNode *dict, const char *key)
{
    for (xmlNode *k = xml_first_elem(dict->children); k;
         k = xml_first_elem(k->next)) {
        char *text;
        bool match;

        if (!xml_is(k, "key"))
            continue;
        text = xml_text(k);
        match = text && strcmp(text, key) == 0;
        free(text);
        if (match)
            return xml_first_elem(k->next);
    }
    return NULL;
}

static int dmg_parse_blkx_entry(struct dmg_map *m, xmlNode *dict,
                                uint64_t file_size, const char *name,
                                struct bd_err *err)
{
    xmlNode *data = plist_dict_get(dict, "Data");
    char *text;
    uint8_t *bin;
    size_t bin_len;
    int ret;

    if (!xml_is(data, "data"))
        return bd_err_set(err, EINVAL, "%s: blkx entry %u of the property list "
                          "has no Data", name, m->n_tables);
    text = xml_text(data);
    if (!text)
        return bd_err_set(err, ENOMEM, "%s: %s", name, strerror(ENOMEM));
    ret = dmg_base64_decode(text, &bin, &bin_len);
    free(text);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: blkx entry %u of the property list "
                          "is not valid base64", name, m->n_tables);
    ret = dmg_map_add_mish(m, bin, bin_len, file_size, name, err);
    free(bin);
    return ret;
}

static int dmg_parse_plist(struct dmg_map *m, const uint8_t *xml, size_t len,
                           uint64_t file_size, const char *name,
                           struct bd_err *err)
{
    xmlDoc *doc;
    xmlNode *root, *node;
    int ret = 0;

    if (len > INT32_MAX)
        return bd_err_set(err, EFBIG, "%s: property list too large", name);
    /* No network, no entity expansion, no external DTD: the plist names
     * Apple's DTD by URL and we never fetch it. HUGE lifts libxml2's 10 MB
     * limit on one text node (the blkx data of a large partition); the
     * input itself is bounded by DMG_MAX_META_LEN. */
    doc = xmlReadMemory((const char *)xml, (int)len, "dmg.plist", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR |
                        XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS |
                        XML_PARSE_HUGE);
    if (!doc)
        return bd_err_set(err, EINVAL, "%s: the XML property list the trailer "
                          "points to is not well-formed XML", name);
    if (doc->intSubset && doc->intSubset->entities) {
        ret = bd_err_set(err, EINVAL, "%s: the XML property list declares "
                         "entities, which no dmg plist does; refusing it",
                         name);
        goto out_free_doc;
    }
    root = xmlDocGetRootElement(doc);
    if (!xml_is(root, "plist") || !xml_is(node = xml_first_elem(root->children),
                                          "dict")) {
        ret = bd_err_set(err, EINVAL, "%s: the XML metadata is not a property "
                         "list dictionary", name);
        goto out_free_doc;
    }
    node = plist_dict_get(node, "resource-fork");
    if (!xml_is(node, "dict") || !xml_is(node = plist_dict_get(node, "blkx"),
                                         "array")) {
        ret = bd_err_set(err, EINVAL, "%s: the property list has no "
                         "resource-fork/blkx array", name);
        goto out_free_doc;
    }
    for (xmlNode *e = xml_first_elem(node->children); e;
         e = xml_first_elem(e->next)) {
        if (!xml_is(e, "dict"))
            continue;
        ret = dmg_parse_blkx_entry(m, e, file_size, name, err);
        if (ret < 0)
            break;
    }
out_free_doc:
    xmlFreeDoc(doc);
    return ret;
}

/* ---- resource fork (images without an XML plist) ----------------------- */

/*
 * A classic Mac resource fork: a 16-byte header (data offset, map offset,
 * data length, map length, all relative to the fork), then the data area,
 * a sequence of resources each prefixed by its 32-bit length. The blkx
 * resources are the ones whose data is a mish table.
 */
static int dmg_parse_rsrc(struct dmg_map *m, const uint8_t *p, size_t len,
                          uint64_t file_size, const char *name,
                          struct bd_err *err)
{
    uint32_t data_off, data_len;
    size_t pos, end;

    if (len < 16)
        return bd_err_set(err, EINVAL, "%s: the resource fork is too short",
                          name);
    data_off = bd_be32(p);
    data_len = bd_be32(p + 8);
    if (!ovf_range_ok(data_off, data_len, len))
        return bd_err_set(err, EINVAL, "%s: the resource fork's data area lies "
                          "beyond the fork", name);
    pos = data_off;
    end = (size_t)data_off + data_len;
    while (end - pos >= 4) {
        uint32_t rlen = bd_be32(p + pos);

        pos += 4;
        if (rlen > end - pos)
            return bd_err_set(err, EINVAL, "%s: a resource in the resource fork "
                              "runs past its data area", name);
        if (rlen >= 4 && memcmp(p + pos, "mish", 4) == 0) {
            int ret = dmg_map_add_mish(m, p + pos, rlen, file_size, name, err);

            if (ret < 0)
                return ret;
        }
        pos += rlen;
    }
    if (m->n_tables == 0)
        return bd_err_set(err, EINVAL, "%s: the resource fork holds no blkx "
                          "tables", name);
    return 0;
}

/* ---- the whole map ----------------------------------------------------- */

static int dmg_read_meta(struct bd_node *file, uint64_t off, uint64_t len,
                         uint64_t file_size, const char *what, uint8_t **out,
                         const char *name, struct bd_err *err)
{
    uint8_t *buf;
    int ret;

    if (!ovf_range_ok(off, len, file_size))
        return bd_err_set(err, EINVAL, "%s: the %s lies beyond the end of the "
                          "file (the image may be truncated)", name, what);
    if (len > DMG_MAX_META_LEN)
        return bd_err_set(err, EFBIG, "%s: the %s is too large (%llu bytes)",
                          name, what, (unsigned long long)len);
    buf = malloc(len + 1);
    if (!buf)
        return bd_err_set(err, ENOMEM, "%s: %s", name, strerror(ENOMEM));
    ret = bd_pread(file, buf, len, off);
    if (ret < 0) {
        free(buf);
        return bd_err_set(err, -ret, "%s: reading the %s: %s", name, what,
                          strerror(-ret));
    }
    buf[len] = 0;
    *out = buf;
    return 0;
}

int dmg_map_load(struct bd_node *file, const char *name, struct dmg_map *m,
                 struct bd_err *err)
{
    uint8_t koly_buf[DMG_KOLY_SIZE], head[8];
    struct dmg_koly k;
    int64_t fsize = bd_size(file);
    uint64_t file_size;
    uint8_t *meta;
    int ret;

    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: %s", name,
                          strerror((int)-fsize));
    file_size = (uint64_t)fsize;
    if (file_size >= sizeof(head)) {
        ret = bd_pread(file, head, sizeof(head), 0);
        if (ret < 0)
            return bd_err_set(err, -ret, "%s: %s", name, strerror(-ret));
        if (memcmp(head, "encrcdsa", 8) == 0)
            return bd_err_set(err, ENOTSUP, "%s: encrypted disk images are not "
                              "supported; decrypt it on macOS first "
                              "(hdiutil convert -format UDZO)", name);
    }
    if (file_size < DMG_KOLY_SIZE)
        return bd_err_set(err, EINVAL, "%s: too short for a dmg trailer (%llu "
                          "bytes)", name, (unsigned long long)file_size);
    ret = bd_pread(file, koly_buf, sizeof(koly_buf), file_size - DMG_KOLY_SIZE);
    if (ret < 0)
        return bd_err_set(err, -ret, "%s: reading the trailer: %s", name,
                          strerror(-ret));
    /* version 1 encrypted images end in a "cdsaencr" trailer */
    if (memcmp(koly_buf + DMG_KOLY_SIZE - 8, "cdsaencr", 8) == 0)
        return bd_err_set(err, ENOTSUP, "%s: encrypted disk images are not "
                          "supported; decrypt it on macOS first", name);
    if (memcmp(koly_buf, "koly", 4) != 0)
        return bd_err_set(err, EINVAL, "%s: no UDIF trailer ('koly') at the end "
                          "of the file: not a dmg, or a truncated one", name);
    dmg_koly_decode(koly_buf, &k);
    if (k.segment_count > 1)
        return bd_err_set(err, ENOTSUP, "%s: segmented dmg images (%u segments) "
                          "are not supported", name, k.segment_count);
    if (!ovf_range_ok(k.data_fork_off, k.data_fork_len, file_size))
        return bd_err_set(err, EINVAL, "%s: the data fork lies beyond the end "
                          "of the file (the image may be truncated)", name);
    m->data_fork_off = k.data_fork_off;

    if (k.xml_len > 0) {
        ret = dmg_read_meta(file, k.xml_off, k.xml_len, file_size,
                            "XML property list", &meta, name, err);
        if (ret < 0)
            return ret;
        ret = dmg_parse_plist(m, meta, k.xml_len, file_size, name, err);
    } else if (k.rsrc_fork_len > 0) {
        ret = dmg_read_meta(file, k.rsrc_fork_off, k.rsrc_fork_len, file_size,
                            "resource fork", &meta, name, err);
        if (ret < 0)
            return ret;
        ret = dmg_parse_rsrc(m, meta, k.rsrc_fork_len, file_size, name, err);
    } else {
        return bd_err_set(err, EINVAL, "%s: the trailer points to neither an "
                          "XML property list nor a resource fork", name);
    }
    free(meta);
    if (ret < 0)
        return ret;
    return dmg_map_finish(m, k.sectors, name, err);
}
