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

/*
 * bd_open_image with a filter node put between the top format and its file
 * (the front-end's --preallocate): filter holds that node's options,
 * "driver=NAME[,KEY=VAL...]". The file options SOURCE and extra give
 * become the filter's file's. A source whose top node is not a format is
 * refused (-EINVAL): there is no file to filter.
 */
int bd_open_image_filtered(const char *source, const char *fmt,
                           const char *extra, const char *filter,
                           const struct bd_flags *flags, struct bd_node **out,
                           struct bd_err *err);

/* Create FILE as format fmt of size bytes with "key=val,..." options;
 * refuses an existing file. */
int bd_create_image(const char *filename, const char *fmt, uint64_t size,
                    const char *opts, struct bd_err *err);

/* Did-you-mean: the closest of a NULL-terminated list, or NULL. */
const char *bd_suggest(const char *word, const char *const *choices);

/* ---- asking about a SOURCE before opening it (core/source.c) ---- */

/* A run of a string: bytes [off, off + len). */
struct bd_span {
    size_t off, len;
};

/*
 * Where SOURCE spells the values of its protocol driver's secret options
 * (bd_driver.secret_options), so that the front-end can blank them in argv
 * and ps does not show them: for a URI its scheme's driver parses, each run
 * of the text that makes up such a value (as written, percent-escapes
 * included). Fills up to max spans in spans, in order, and returns how many
 * there are (which may be more than max): 0 for files, devices, json: and
 * dotted sources, URIs without secrets and URIs that do not parse (opening
 * them says why), or -ENOMEM.
 */
int bd_source_secrets(const char *source, struct bd_span *spans, size_t max);

/* Does the protocol driver of SOURCE (a URI's scheme) read an option named
 * key (bd_driver.options)? False for files, devices, json: and dotted
 * sources, and for schemes no driver here takes. */
bool bd_source_takes_option(const char *source, const char *key);

/* ---- describing an open graph (`imgfuse info`) ---- */

enum bd_info_part {
    BD_INFO_FORMAT,             /* n's own fields; none for a protocol node */
    BD_INFO_PROTOCOL,           /* fields of the protocol node below n */
};

/* Call fn once for each key/value field the drivers give for `imgfuse
 * info` (bd_driver.info) about one part of node n, in the order they gave
 * them. Both strings are borrowed for the call only. */
void bd_node_info(struct bd_node *n, enum bd_info_part part,
                  void (*fn)(void *arg, const char *key, const char *val),
                  void *arg);

/* The name `imgfuse info` shows for n: the file name or URI (without
 * secrets) of the protocol node at the bottom of n's file chain, else n's
 * own name. Borrowed while n is open. */
const char *bd_node_image_name(struct bd_node *n);

/* Internal snapshots of n's format (bd_driver.snapshots): a malloc'd array
 * of malloc'd names, each usable as snapshot=; the count, 0 when the format
 * has none, or -errno. */
int bd_node_snapshots(struct bd_node *n, char ***names);

/* Check, and with BD_CHECK_FIX_* repair, the metadata of the image n (open
 * read-write when fix != 0), then flush what was repaired. Fills res; 0,
 * or -errno with err filled (-ENOTSUP when bd_node_can_check says no). */
int bd_check_image(struct bd_node *n, unsigned fix, struct bd_check *res,
                   struct bd_err *err);
/* Whether n's format has metadata to check (raw, dmg... have none). */
bool bd_node_can_check(struct bd_node *n);

/* ---- partition tables (core/partition.c, read by libblkid) ---- */

struct bd_partition {
    unsigned number;            /* as Linux numbers it: MBR logical from 5 */
    uint64_t off, len;          /* bytes on the disk */
    bool container;             /* an MBR extended partition (holds logicals) */
    bool logical;               /* an MBR logical partition */
    char type[40];              /* MBR type "0x83" or GPT type GUID */
    char uuid[40];              /* partition GUID (GPT) or id */
    char name[80];              /* GPT partition name */
    char fs_type[32];           /* filesystem libblkid finds in it, or "" */
    char fs_label[80];
    char fs_uuid[48];
};

struct bd_partition_table {
    char type[8];               /* "dos", "gpt", ...; "" when none */
    char id[40];                /* disk id or GUID */
    size_t n;
    struct bd_partition *v;
};

/* Read the partition table of the disk n (its guest view) into *t, which
 * has n == 0 and type "" when there is none. 0, or -errno with err filled;
 * free *t with bd_partition_table_free() after success. */
int bd_node_partitions(struct bd_node *n, struct bd_partition_table *t,
                       struct bd_err *err);
void bd_partition_table_free(struct bd_partition_table *t);
/* Partition `number` of t, or NULL. */
const struct bd_partition *bd_partition_find(const struct bd_partition_table *t,
                                             unsigned number);

/* ---- overlays (core/overlay.c) ---- */

/* Create `overlay`, a new qcow2 file as large as base whose backing file is
 * base's image: its absolute path (or, not on this host, the name imgfuse
 * shows for it) and its format. */
int bd_create_overlay(const char *overlay, struct bd_node *base,
                      struct bd_err *err);
/* Open the qcow2 file `overlay` writable, with base (an image open
 * read-only) as its backing node in place of the file the overlay names.
 * base becomes part of the graph, closed with it; on failure it is closed
 * too. An overlay without a backing file is refused. */
int bd_open_overlay(const char *overlay, struct bd_node *base,
                    const struct bd_flags *flags, struct bd_node **out,
                    struct bd_err *err);

/* ---- logging setup, once at start (core/log.c) ---- */

/* Send log lines to syslog instead of stderr (the daemon, once detached). */
void log_use_syslog(bool on);
/* Once detached, every syslog message starts with ctx (mountpoint, image). */
void log_set_context(const char *ctx);
/* Enable debug output for a comma-separated list of modules ("qcow2,nbd");
 * NULL or "" turns it off. */
void log_set_debug(const char *mods);

#endif
