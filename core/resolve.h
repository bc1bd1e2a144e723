/*
 * Core-private: where a name stored in an image leads (core/resolve.c),
 * for the backing chain code (core/chain.c). Confinement is decided here;
 * which names to open, and loops, are the caller's.
 */
#ifndef IMGFUSE_RESOLVE_H
#define IMGFUSE_RESOLVE_H

#include "core/bd.h"

/* A protocol node whose objects are paths on a server (ssh, gluster): its
 * driver has bd_remote_ops. */
bool bd_node_is_remote(const struct bd_node *p);
/* A protocol node with no paths at all (nbd, iscsi): a name stored in an
 * image on it has no directory to be looked up in. */
bool bd_node_is_pathless(const struct bd_node *p);
/* The error for a file name stored in n whose protocol node p is pathless:
 * worded for a backing file (backing) or for an extent or data file.
 * Returns -EINVAL. */
int bd_pathless_error(struct bd_node *n, struct bd_node *p, const char *name,
                      bool backing, struct bd_err *err);
/* Directory of the file behind the remote protocol node p, on its server
 * ("." when the server gives no absolute path); caller frees, NULL
 * without memory. */
char *bd_remote_dir(struct bd_node *p);

/*
 * Resolve `name` (stored in n; `what` it is, for messages: "backing file",
 * "file", ...) against the directory of the file behind n, on this host:
 * *out gets the canonical path (caller frees). With confine, that path must
 * lie inside root_dir after symlinks are followed: -EACCES otherwise. Other
 * failures (-ENOENT, -ELOOP, ...) with err filled naming the object.
 */
int bd_resolve_local(struct bd_node *n, const char *name, const char *what,
                     bool confine, const char *root_dir, char **out,
                     struct bd_err *err);
/*
 * The same for n whose protocol node p is remote: lexically against the
 * directory of the file on the server (an absolute name is a path on the
 * same server, never a local file), then the server's canonical form, which
 * must lie inside root (a path there) when confine is set.
 */
int bd_resolve_remote(struct bd_node *n, struct bd_node *p, const char *name,
                      const char *what, bool confine, const char *root,
                      char **out, struct bd_err *err);
/* Fill o (a view) with the options that open the absolute `path` on the
 * server of the remote protocol node p with p's driver and connection
 * settings; 0 or -errno with err filled. */
int bd_sibling_opts(struct bd_node *p, const char *path, struct bd_opts *o,
                    struct bd_err *err);

#endif
