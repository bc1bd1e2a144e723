/*
 * Core's private structures: the option tree, info lists, probing and node
 * construction. Only core/ and the front-end's tests include this.
 */
#ifndef IMGFUSE_BD_INTERNAL_H
#define IMGFUSE_BD_INTERNAL_H

#include "bd.h"

/* ---- option tree ---- */
struct bd_opt_entry {
    char *key;                  /* full dotted key */
    char *val;
    bool used;
};

struct bd_opt_owner {           /* which driver read keys under a prefix */
    char *prefix;               /* "" or "file." ... */
    const struct bd_driver *drv;
};

struct bd_opt_tree {
    struct bd_opt_entry *v;
    size_t n, cap;
    struct bd_opt_owner *owners;
    size_t nowners;
    pthread_mutex_t lock;
};

struct bd_opts {
    struct bd_opt_tree *tree;
    char *prefix;               /* "" at the root, "file." below */
    bool owns_tree;
};

struct bd_opts *bd_opts_new(void);
/* Copy the keys of view src into dst, as keys relative to src's prefix
 * (keys dst has already stay); 0 or -ENOMEM. */
int bd_opts_copy_view(struct bd_opts *dst, const struct bd_opts *src);
/* Mark used in view src each key whose copy in dst was used. */
void bd_opts_used_back(const struct bd_opts *src, const struct bd_opts *dst);
void bd_opts_free(struct bd_opts *o);
/* "a=1,b.c=x" with ",," escaping a comma; an element without '=' is the
 * value of implied_key (NULL: an error). */
int bd_opts_parse_dotted(struct bd_opts *o, const char *s, const char *implied_key,
                         struct bd_err *err);
/* json:{...} body (without the "json:" prefix), flattened to dotted keys. */
int bd_opts_parse_json(struct bd_opts *o, const char *json, struct bd_err *err);
void bd_opts_set_owner(struct bd_opts *view, const struct bd_driver *drv);
/* Rename every key that starts with `from` (full keys, "file.") to start
 * with `to` instead ("file.file."): a node pushed down the graph. */
int bd_opts_move_prefix(struct bd_opts *o, const char *from, const char *to);
/* First unused key as an "unknown option" error with a did-you-mean. */
int bd_opts_check_unused(struct bd_opts *root, struct bd_err *err);
/* Keys under this view that nobody has read yet exist? */
bool bd_opts_view_empty(const struct bd_opts *view);
bool bd_key_eq(const char *a, const char *b);   /* '-' and '_' are equal */

/* ---- sources ---- */
enum bd_source_kind { BD_SRC_FILE, BD_SRC_URI, BD_SRC_JSON, BD_SRC_DOTTED };
/* Classify a SOURCE argument; for URIs *scheme gets the scheme (caller
 * frees). */
enum bd_source_kind bd_source_classify(const char *src, char **scheme);
/* Turn SOURCE into options at the root of o. */
int bd_source_to_opts(const char *src, struct bd_opts *o, struct bd_err *err);

/* ---- probing ---- */
#define BD_PROBE_BYTES 4096
#define BD_PROBE_TAIL_BYTES 512
/* tail: the file's last bytes (tail_len 0 when the head is the whole file). */
const struct bd_driver *bd_probe(const uint8_t *head, size_t len,
                                 const uint8_t *tail, size_t tail_len, int *score);

/* ---- info ---- */
struct bd_info_kv { char *key, *val; };
struct bd_info {
    struct bd_info_kv *v;
    size_t n, cap;
};
void bd_info_free(struct bd_info *info);
const char *bd_info_get(const struct bd_info *info, const char *key);

/* ---- nodes ---- */
struct bd_node *bd_node_alloc(const struct bd_driver *drv, const char *name,
                              const struct bd_flags *flags, struct bd_err *err);
int bd_node_open_protocol(const char *filename, const struct bd_driver *drv,
                          struct bd_opts *o, const struct bd_flags *flags,
                          unsigned depth, struct bd_node **out, struct bd_err *err);
/*
 * Open the node the options under view describe: a protocol driver given
 * as driver=, or a format (fmt, or driver=, or probed) over the protocol
 * node for filename=/file.*. depth 0 is the top image; parent owns the new
 * node (NULL at the top). 0 with *out set, or -errno with err filled.
 */
int bd_node_open_opts(struct bd_opts *view, const char *fmt,
                      const struct bd_flags *flags, unsigned depth,
                      struct bd_node *parent, struct bd_node **out,
                      struct bd_err *err);
void bd_node_refresh_limits(struct bd_node *n);
/* The protocol node at the bottom of n's file chain. */
struct bd_node *bd_node_protocol(struct bd_node *n);
/* The node bd_open_overlay gives as the backing of the top image n, now
 * n's (parent set), or NULL: open the backing file as usual. */
struct bd_node *bd_take_given_backing(struct bd_node *n);

/* ---- permissions (core/perm.c) ---- */
/*
 * The (perm, shared) pair of BD_PERM_* bits a node takes, as QEMU would for
 * the same use: a read-write top image (a guest disk without share-rw), a
 * read-only mount (qemu-img reading), a backing file (a read-only chain
 * member, is_backing); share_rw lets another writer in; force_share (-U)
 * takes nothing. locks/ turns the pair into lock bytes.
 */
void bd_perms_for(const struct bd_flags *f, bool is_backing, unsigned *perm,
                  unsigned *shared);

#endif
