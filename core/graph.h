/*
 * Core's face towards the front-end and tests: build a whole node graph
 * from a SOURCE string (file, /dev/..., URI, json:{...}, dotted options),
 * create images, and describe them. Drivers never include this.
 */
#ifndef IMGFUSE_GRAPH_H
#define IMGFUSE_GRAPH_H

#include "bd.h"

/*
 * Open SOURCE as a raw view: probe the format unless fmt is given (-F),
 * open the protocol node, the format node, its backing chain, take locks.
 * extra: "key=val,..." applied to the top format node (may be NULL).
 * On failure err names the object and what to do. The top node is returned
 * in *out; bd_node_close() closes the whole graph.
 */
int bd_open_image(const char *source, const char *fmt, const char *extra,
                  const struct bd_flags *flags, struct bd_node **out,
                  struct bd_err *err);

/* Create FILE as format fmt of size bytes with "key=val,..." options;
 * refuses an existing file. */
int bd_create_image(const char *filename, const char *fmt, uint64_t size,
                    const char *opts, struct bd_err *err);

/* Did-you-mean: the closest of a NULL-terminated list, or NULL. */
const char *bd_suggest(const char *word, const char *const *choices);

#endif
