/*
 * parallels: a bundle's DiskDescriptor.xml (docs/interop/prl-xml.rst) as
 * the image. Each <Storage> covers [Start, End) sectors of the disk with
 * one image file (Compressed: an expandable image read from its offset 0;
 * Plain: raw bytes), or from its snapshot chain, top first. Names are
 * resolved by core with the confinement policy.
 */
#include "parallels.h"
#include "core/overflow.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Open the next layer of e from its <Image>; the root may be Plain. */
static int prl_open_layer(struct bd_node *n, struct prl_extent *e,
                          xmlNode *image, bool is_root, struct bd_err *err)
{
    struct prl_image *img = &e->layers[e->n_layers];
    xmlNode *file = xml_child(image, "File"), *type = xml_child(image, "Type");
    char *name, *kind = type ? xml_text(type) : NULL, *path = NULL;
    int r;

    if (!file || !type) {
        free(kind);
        return bd_err_set(err, EINVAL, "%s: an <Image> lacks its <File> or "
                          "<Type>", n->name);
    }
    name = xml_text(file);
    e->names[e->n_layers++] = name;     /* freed by prl_bundle_close */
    img->name = name;
    if (!name || !kind) {
        r = bd_err_set(err, ENOMEM, "out of memory");
        goto out;
    }
    if (strcmp(kind, "Compressed") != 0 &&
        (strcmp(kind, "Plain") != 0 || !is_root)) {
        r = bd_err_set(err, ENOTSUP, "%s: image '%s' has type '%.20s' "
                       "(Compressed, or Plain for a root image, expected)",
                       n->name, name, kind);
        goto out;
    }
    r = bd_resolve_related(n, name, &path, err);
    if (r == 0)
        r = bd_open_related(n, path, false, &img->file, err);
    if (r < 0)
        goto out;
    img->own_file = true;
    if (strcmp(kind, "Plain") == 0)
        r = prl_image_open_plain(img, e->end - e->start, err);
    else
        r = prl_image_open(img, err);
    if (r < 0)
        bd_err_prefix(err, "%s: storage %llu-%llu", n->name,
                      (unsigned long long)(e->start / BD_SECTOR),
                      (unsigned long long)(e->end / BD_SECTOR));
out:
    free(kind);
    free(path);
    return r;
}

static bool xml_text_is(xmlNode *node, const char *tag, const char *want)
{
    xmlNode *c = node ? xml_child(node, tag) : NULL;
    char *text = c ? xml_text(c) : NULL;
    bool is = text && strcasecmp(text, want) == 0;

    free(text);
    return is;
}

/* The <Shot> or the <Image> (among imgs) whose GUID is guid. */
static xmlNode *prl_find_guid(xmlNode *parent, const char *tag,
                              const char *guid)
{
    for (xmlNode *c = xml_elem(parent->children); c; c = xml_elem(c->next)) {
        if (xml_is(c, tag) && xml_text_is(c, "GUID", guid))
            return c;
    }
    return NULL;
}

/*
 * A storage with snapshots: from the top snapshot (<TopGUID>, else the
 * predefined top GUID) follow <ParentGUID> to the root, collecting each
 * snapshot's image of this storage (prl-xml.rst, "Snapshots").
 */
static int prl_chain(struct bd_node *n, xmlNode *root, xmlNode *st,
                     xmlNode **chain, size_t max, size_t *depth,
                     struct bd_err *err)
{
    static const char zero[] = "{00000000-0000-0000-0000-000000000000}";
    xmlNode *snaps = xml_child(root, "Snapshots");
    xmlNode *top = snaps ? xml_child(snaps, "TopGUID") : NULL;
    char *guid = top ? xml_text(top) :
        strdup("{5fbaabe3-6958-40ff-92a7-860e329aab41}");
    int r = 0;

    *depth = 0;
    while (guid && strcasecmp(guid, zero) != 0) {
        xmlNode *img = prl_find_guid(st, "Image", guid);
        xmlNode *shot = snaps ? prl_find_guid(snaps, "Shot", guid) : NULL;
        xmlNode *parent = shot ? xml_child(shot, "ParentGUID") : NULL;

        if (!img || !parent || *depth == max) {
            r = bd_err_set(err, EINVAL, "%s: snapshot %.40s %s", n->name,
                           guid, !img ? "has no image in a storage" :
                           !parent ? "has no <Shot> with a <ParentGUID>" :
                           "is in a loop of snapshots");
            break;
        }
        chain[(*depth)++] = img;
        free(guid);
        guid = xml_text(parent);
    }
    if (!guid && !r)
        r = bd_err_set(err, ENOMEM, "out of memory");
    free(guid);
    return r;
}

static int prl_add_storage(struct bd_node *n, struct prl_bundle *b,
                           xmlNode *root, xmlNode *st, struct bd_err *err)
{
    struct prl_extent *e = &b->ext[b->n_ext];
    xmlNode *chain[PRL_MAX_LAYERS];
    size_t images = 0, depth = 0;
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
        if (xml_is(c, "Image") && images++ == 0)
            chain[0] = c;
    }
    if (images == 0 || images > PRL_MAX_LAYERS)
        return bd_err_set(err, EINVAL, "%s: storage %llu-%llu has %zu images "
                          "(1 to %u expected)", n->name,
                          (unsigned long long)(e->start / BD_SECTOR),
                          (unsigned long long)(e->end / BD_SECTOR), images,
                          PRL_MAX_LAYERS);
    depth = 1;
    if (images > 1 &&
        (r = prl_chain(n, root, st, chain, PRL_MAX_LAYERS, &depth, err)) < 0)
        return r;
    e->layers = calloc(depth, sizeof(*e->layers));
    e->names = calloc(depth, sizeof(*e->names));
    b->n_ext++;
    if (!e->layers || !e->names)
        return bd_err_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < depth; i++) {
        r = prl_open_layer(n, e, chain[i], i + 1 == depth, err);
        if (r < 0)
            return r;
    }
    return 0;
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
        if (xml_is(c, "Storage") &&
            (r = prl_add_storage(n, b, root, c, err)) < 0)
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
        struct prl_extent *e = &b->ext[i];

        for (size_t j = 0; j < e->n_layers; j++) {
            prl_image_close(&e->layers[j]);
            free(e->names[j]);
        }
        free(e->layers);
        free(e->names);
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

/*
 * Which layer of e decides [off, off + *len) (extent offsets): the first
 * that has it allocated, or e->n_layers when none has (zeroes). *len
 * shrinks to the run for which that answer holds.
 */
static size_t prl_layer_at(struct prl_extent *e, uint64_t off, uint64_t *len,
                           unsigned *status, uint64_t *map)
{
    size_t i;

    for (i = 0; i < e->n_layers; i++) {
        prl_image_status(&e->layers[i], off, *len, len, status, map);
        if (*status & BD_STATUS_ALLOCATED)
            break;
    }
    return i;
}

static int prl_extent_pread(struct prl_extent *e, uint8_t *buf, uint64_t len,
                            uint64_t off)
{
    while (len) {
        uint64_t chunk = len, map;
        unsigned status;
        size_t i = prl_layer_at(e, off, &chunk, &status, &map);
        int r = 0;

        if (i < e->n_layers)
            r = prl_image_pread(&e->layers[i], buf, chunk, off);
        else
            memset(buf, 0, chunk);
        if (r < 0)
            return r;
        buf += chunk;
        off += chunk;
        len -= chunk;
    }
    return 0;
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
            r = prl_extent_pread(e, buf, chunk, off - e->start);
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
    if (prl_layer_at(e, off - e->start, &len, status, map) == e->n_layers)
        *status = 0;
    *pnum = len;
    /* an offset in an extent's file is not one in the descriptor's */
    *status &= ~BD_STATUS_OFFSET;
}
