/*
 * parallels: a bundle's DiskDescriptor.xml (docs/interop/prl-xml.rst) as
 * the image. Each <Storage> covers [Start, End) sectors of the disk with
 * one image file (Compressed: an expandable image read from its offset 0;
 * Plain: raw bytes). Names are resolved by core with the confinement
 * policy. Snapshot chains (several images in a storage) are refused.
 */
#include "parallels.h"
#include "core/overflow.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

#define PRL_XML_MAX         (1u << 20)  /* a descriptor is a few KiB */
#define PRL_MAX_STORAGES    4096u

/* ---- XML helpers ---------------------------------------------------------- */

static xmlNode *xml_elem(xmlNode *node)
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

static xmlNode *xml_child(xmlNode *node, const char *tag)
{
    for (xmlNode *c = xml_elem(node->children); c; c = xml_elem(c->next)) {
        if (xml_is(c, tag))
            return c;
    }
    return NULL;
}

/* Text children only: never entities (the document may declare none). */
static char *xml_text(const xmlNode *node)
{
    size_t len = 0, pos = 0;
    char *out;

    for (const xmlNode *c = node->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE && c->content)
            len += strlen((const char *)c->content);
    }
    out = malloc(len + 1);
    if (!out)
        return NULL;
    for (const xmlNode *c = node->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE && c->content) {
            size_t l = strlen((const char *)c->content);

            memcpy(out + pos, c->content, l);
            pos += l;
        }
    }
    out[pos] = 0;
    return out;
}

/* A count of sectors from <tag> under node, as bytes. */
static int xml_sectors(struct bd_node *n, xmlNode *node, const char *tag,
                       uint64_t *bytes, struct bd_err *err)
{
    xmlNode *c = xml_child(node, tag);
    char *text, *end, *p;
    unsigned long long v;
    int r = 0;

    if (!c)
        return bd_err_set(err, EINVAL, "%s: the descriptor has no <%s>",
                          n->name, tag);
    text = xml_text(c);
    if (!text)
        return bd_err_set(err, ENOMEM, "out of memory");
    for (p = text; *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'; p++)
        ;
    errno = 0;
    v = strtoull(p, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r')
        end++;
    if (*p < '0' || *p > '9' || *end || errno || v > (uint64_t)INT64_MAX / BD_SECTOR)
        r = bd_err_set(err, EINVAL, "%s: <%s> '%.40s' is not a sector count",
                       n->name, tag, text);
    else
        *bytes = v * BD_SECTOR;
    free(text);
    return r;
}

/* ---- storages --------------------------------------------------------------- */

static int prl_open_extent(struct bd_node *n, struct prl_extent *e,
                           xmlNode *image, struct bd_err *err)
{
    xmlNode *file = xml_child(image, "File"), *type = xml_child(image, "Type");
    char *name, *kind = type ? xml_text(type) : NULL, *path = NULL;
    int r;

    if (!file || !type)
        return bd_err_set(err, EINVAL, "%s: an <Image> lacks its <File> or "
                          "<Type>", n->name);
    name = xml_text(file);
    e->name = name;             /* freed by prl_bundle_close */
    e->img.name = name;
    if (!name || !kind) {
        r = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (strcmp(kind, "Plain") != 0 && strcmp(kind, "Compressed") != 0) {
        r = bd_err_set(err, ENOTSUP, "%s: image '%s' has type '%.20s' (Plain "
                       "or Compressed expected)", n->name, name, kind);
        goto out;
    }
    r = bd_resolve_related(n, name, &path, err);
    if (r == 0)
        r = bd_open_related(n, path, false, &e->img.file, err);
    if (r < 0)
        goto out;
    e->img.own_file = true;
    if (strcmp(kind, "Plain") == 0)
        r = prl_image_open_plain(&e->img, e->end - e->start, err);
    else
        r = prl_image_open(&e->img, err);
    if (r < 0)
        bd_err_prefix(err, "%s: storage %llu-%llu", n->name,
                      (unsigned long long)(e->start / BD_SECTOR),
                      (unsigned long long)(e->end / BD_SECTOR));
out:
    free(kind);
    free(path);
    return r;
}

static int prl_add_storage(struct bd_node *n, struct prl_bundle *b,
                           xmlNode *st, struct bd_err *err)
{
    struct prl_extent *e = &b->ext[b->n_ext];
    xmlNode *image = NULL;
    unsigned images = 0;
    int r;

    if ((r = xml_sectors(n, st, "Start", &e->start, err)) < 0 ||
        (r = xml_sectors(n, st, "End", &e->end, err)) < 0)
        return r;
    if (e->end <= e->start || e->end > b->size ||
        (b->n_ext && e->start < b->ext[b->n_ext - 1].end))
        return bd_err_set(err, EINVAL, "%s: storage %llu-%llu is empty, "
                          "overlaps the one before it or lies beyond the disk",
                          n->name, (unsigned long long)(e->start / BD_SECTOR),
                          (unsigned long long)(e->end / BD_SECTOR));
    for (xmlNode *c = xml_elem(st->children); c; c = xml_elem(c->next)) {
        if (xml_is(c, "Image")) {
            image = c;
            images++;
        }
    }
    if (images != 1)
        return bd_err_set(err, ENOTSUP, "%s: storage %llu-%llu has %u images; "
                          "snapshots in bundles are not supported (only one "
                          "image per storage)", n->name,
                          (unsigned long long)(e->start / BD_SECTOR),
                          (unsigned long long)(e->end / BD_SECTOR), images);
    b->n_ext++;
    return prl_open_extent(n, e, image, err);
}

static int prl_parse_descriptor(struct bd_node *n, struct prl_bundle *b,
                                xmlNode *root, struct bd_err *err)
{
    xmlNode *params = xml_child(root, "Disk_Parameters");
    xmlNode *data = xml_child(root, "StorageData");
    uint64_t padding = 0;
    size_t count = 0;
    int r;

    if (!params || !data)
        return bd_err_set(err, EINVAL, "%s: the descriptor lacks "
                          "<Disk_Parameters> or <StorageData>", n->name);
    if ((r = xml_sectors(n, params, "Disk_size", &b->size, err)) < 0)
        return r;
    if (xml_child(params, "Padding") &&
        (r = xml_sectors(n, params, "Padding", &padding, err)) < 0)
        return r;
    if (padding)
        return bd_err_set(err, ENOTSUP, "%s: disks with padding are not "
                          "supported", n->name);
    for (xmlNode *c = xml_elem(data->children); c; c = xml_elem(c->next))
        count += xml_is(c, "Storage");
    if (count == 0 || count > PRL_MAX_STORAGES)
        return bd_err_set(err, EINVAL, "%s: the descriptor lists %zu storages "
                          "(1 to %u expected)", n->name, count,
                          PRL_MAX_STORAGES);
    b->ext = calloc(count, sizeof(*b->ext));
    if (!b->ext)
        return bd_err_set(err, ENOMEM, "out of memory");
    for (xmlNode *c = xml_elem(data->children); c; c = xml_elem(c->next)) {
        if (xml_is(c, "Storage") && (r = prl_add_storage(n, b, c, err)) < 0)
            return r;
    }
    return 0;
}

int prl_bundle_open(struct bd_node *n, struct prl_bundle *b, struct bd_err *err)
{
    int64_t fsize = bd_size(n->file);
    xmlDoc *doc;
    xmlNode *root;
    char *text;
    int r;

    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    if (fsize > PRL_XML_MAX)
        return bd_err_set(err, EFBIG, "%s: a disk descriptor of %lld bytes is "
                          "too large", n->name, (long long)fsize);
    text = malloc((size_t)fsize + 1);
    if (!text)
        return bd_err_set(err, ENOMEM, "out of memory");
    r = bd_pread(n->file, text, (uint64_t)fsize, 0);
    if (r < 0) {
        free(text);
        return bd_err_set(err, -r, "%s: cannot read the disk descriptor: %s",
                          n->name, strerror(-r));
    }
    /* no network, no entities: the descriptor needs neither */
    doc = xmlReadMemory(text, (int)fsize, "DiskDescriptor.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR |
                        XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS);
    free(text);
    if (!doc)
        return bd_err_set(err, EINVAL, "%s: the disk descriptor is not "
                          "well-formed XML", n->name);
    root = xmlDocGetRootElement(doc);
    if (doc->intSubset && doc->intSubset->entities)
        r = bd_err_set(err, EINVAL, "%s: the disk descriptor declares "
                       "entities; refusing it", n->name);
    else if (!xml_is(root, "Parallels_disk_image"))
        r = bd_err_set(err, EINVAL, "%s: not a Parallels disk descriptor",
                       n->name);
    else
        r = prl_parse_descriptor(n, b, root, err);
    xmlFreeDoc(doc);
    return r;
}

void prl_bundle_close(struct prl_bundle *b)
{
    for (size_t i = 0; i < b->n_ext; i++) {
        prl_image_close(&b->ext[i].img);
        free(b->ext[i].name);
    }
    free(b->ext);
    b->ext = NULL;
    b->n_ext = 0;
}

/* ---- I/O ------------------------------------------------------------------- */

/* The first extent that ends after off, or n_ext. */
static size_t prl_find(const struct prl_bundle *b, uint64_t off)
{
    size_t lo = 0, hi = b->n_ext;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (b->ext[mid].end <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int prl_bundle_pread(struct prl_bundle *b, uint8_t *buf, uint64_t len,
                     uint64_t off)
{
    while (len) {
        size_t i = prl_find(b, off);
        struct prl_extent *e = i < b->n_ext ? &b->ext[i] : NULL;
        uint64_t chunk;
        int r;

        if (!e || off < e->start) {
            /* between storages, or after the last: zeroes */
            chunk = e && e->start - off < len ? e->start - off : len;
            memset(buf, 0, chunk);
        } else {
            chunk = e->end - off < len ? e->end - off : len;
            r = prl_image_pread(&e->img, buf, chunk, off - e->start);
            if (r < 0)
                return r;
        }
        buf += chunk;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

void prl_bundle_status(struct prl_bundle *b, uint64_t off, uint64_t len,
                       uint64_t *pnum, unsigned *status, uint64_t *map)
{
    size_t i = prl_find(b, off);
    struct prl_extent *e = i < b->n_ext ? &b->ext[i] : NULL;

    if (!e || off < e->start) {
        *pnum = e && e->start - off < len ? e->start - off : len;
        *status = 0;
        return;
    }
    if (e->end - off < len)
        len = e->end - off;
    prl_image_status(&e->img, off - e->start, len, pnum, status, map);
    /* an offset in an extent's file is not one in the descriptor's */
    *status &= ~BD_STATUS_OFFSET;
}
