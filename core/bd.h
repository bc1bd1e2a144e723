/*
 * The block-node API: what a driver implements and what it may call.
 * A driver includes only this header. Graph building, alignment, splitting,
 * chain walking and locking of non-parallel drivers live in core/, not here.
 */
#ifndef IMGFUSE_BD_H
#define IMGFUSE_BD_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BD_SECTOR 512u
#define BD_MAX_CHAIN_DEFAULT 256u

/* ---- errors: a negative errno, plus a sentence for the human ---------- */

struct bd_err {
    int errnum;         /* positive errno of the first error set, 0 if none */
    char msg[1024];
};

/* Keep the first error; return -errnum so "return bd_err_set(...)" works. */
int bd_err_set(struct bd_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepend "<context>: " to an error already set (no-op when none is set). */
void bd_err_prefix(struct bd_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bd_err_clear(struct bd_err *err);

/* ---- options: one tree of dotted keys ("file.filename") --------------- */

/*
 * An option tree, built from dotted strings, json:{...}, URIs and the
 * command line. A struct bd_opts is a view of the tree under a prefix;
 * bd_opts_sub() narrows the view ("file" -> keys under "file.").
 * Every key a driver reads is marked used; core reports unused keys as
 * unknown options, with a did-you-mean taken from bd_driver.options.
 */
struct bd_opts;

const char *bd_opts_get(const struct bd_opts *o, const char *key);
bool bd_opts_has(const struct bd_opts *o, const char *key);
/* Sizes accept suffixes k/K, M, G, T, P, E (powers of 1024) and 'b'/'B'.
 * Return 0 with *out set, -ENOENT when absent (with *out = def), or -EINVAL
 * with err filled. */
int bd_opts_get_size(const struct bd_opts *o, const char *key, uint64_t def,
                     uint64_t *out, struct bd_err *err);
int bd_opts_get_bool(const struct bd_opts *o, const char *key, bool def,
                     bool *out, struct bd_err *err);
/* One of a NULL-terminated list; returns the index or -EINVAL. */
int bd_opts_get_enum(const struct bd_opts *o, const char *key,
                     const char *const *choices, int def, struct bd_err *err);
/* A view below "<prefix>."; the caller frees it with bd_opts_free_view(). */
struct bd_opts *bd_opts_sub(const struct bd_opts *o, const char *prefix);
void bd_opts_free_view(struct bd_opts *view);
/* Set a key (relative to the view); the tree copies both strings. */
int bd_opts_set(struct bd_opts *o, const char *key, const char *val);
/* Parse "1M", "4096", "2G" into bytes. */
int bd_parse_size(const char *s, uint64_t *out);

/* ---- flags inherited down the graph at open --------------------------- */

enum bd_locking { BD_LOCKING_AUTO, BD_LOCKING_ON, BD_LOCKING_OFF };
enum bd_cache { BD_CACHE_WRITEBACK, BD_CACHE_NONE };
enum bd_discard_mode { BD_DISCARD_UNMAP, BD_DISCARD_IGNORE };
enum bd_aio { BD_AIO_DEFAULT, BD_AIO_THREADS, BD_AIO_IO_URING };
enum bd_backing_policy { BD_BACKING_FOLLOW, BD_BACKING_CONFINE, BD_BACKING_NONE };
enum bd_prealloc { BD_PREALLOC_OFF, BD_PREALLOC_METADATA, BD_PREALLOC_FALLOC,
                   BD_PREALLOC_FULL };

struct bd_flags {
    bool read_only;
    bool force_share;           /* -U: take no locks, check none */
    bool share_rw;              /* let another writer in */
    bool growable;              /* writes past the end grow the image */
    bool untrusted;             /* implies confine; no protocol/json backing */
    enum bd_locking locking;
    const char *lease;          /* lease spec (locks/lease.h); NULL: none.
                                   Not touched by locking or force_share */
    enum bd_cache cache;
    enum bd_discard_mode discard;
    enum bd_aio aio;
    enum bd_backing_policy backing;
    bool related_follow;        /* extents/data files may leave the image's dir */
    unsigned max_chain;         /* backing depth limit, 0 = default */
    bool ignore_checksums;      /* recovery: a format set to accept metadata
                                   checksum mismatches (vpc ignore_checksum=on)
                                   sets it in its open; its backing nodes
                                   inherit it */
};

/* QEMU's permission bits, in QEMU's lock-byte order (locks/ofd.h). */
enum bd_perm {
    BD_PERM_CONSISTENT_READ = 1u << 0,
    BD_PERM_WRITE           = 1u << 1,
    BD_PERM_WRITE_UNCHANGED = 1u << 2,
    BD_PERM_RESIZE          = 1u << 3,
};
#define BD_PERM_ALL 0xfu

/* ---- the node ---------------------------------------------------------- */

struct bd_limits {
    uint32_t request_alignment;   /* power of two; 1 for byte-granular drivers */
    uint32_t max_transfer;        /* 0 = core's default */
    uint32_t opt_transfer;        /* hint, e.g. the cluster size; -> st_blksize */
    uint32_t discard_alignment;   /* 0 = request_alignment is enough */
    uint32_t mem_alignment;       /* buffer alignment the driver needs (O_DIRECT) */
};

struct bd_driver;

struct bd_node {
    const struct bd_driver *drv;
    void *state;                  /* drv->state_size zeroed bytes */
    char *name;                   /* for messages: file name or URI */
    char *filename;               /* protocol nodes: path or URI; may be NULL.
                                     A protocol opened from options may set it
                                     in open (malloc'd): it then names the node */
    struct bd_node *file;         /* protocol child of a format node */
    struct bd_node *backing;      /* backing (parent) image, may be NULL */
    struct bd_node *parent;       /* the node that owns this one, NULL at top */
    char *backing_name;           /* the backing file name n's image stores, as
                                     stored, and the format it names (NULL when
                                     none); set by bd_open_backing, for info */
    char *backing_fmt;
    struct bd_flags flags;
    struct bd_limits lim;         /* filled by core from drv->limits + child */
    unsigned perm;                /* BD_PERM_* this node holds */
    unsigned shared;              /* BD_PERM_* it lets others hold */
    unsigned depth;               /* 0 = top of the chain */
    bool format_probed;           /* the format was guessed, not given */
    int64_t size_cache;           /* -1: ask the driver */
    pthread_mutex_t lock;         /* serializes non-parallel drivers */
    pthread_rwlock_t rmw_lock;    /* unaligned writes exclude aligned ones */
    pthread_mutex_t grow_lock;    /* core: one write past the end at a time */
    unsigned long io_errors;      /* count for log-once */
};

/* ---- request flags and block status ----------------------------------- */

#define BD_REQ_FUA          (1u << 0)   /* write through before returning */
#define BD_REQ_MAY_UNMAP    (1u << 1)   /* zeroes may deallocate */
#define BD_REQ_NO_FALLBACK  (1u << 2)   /* zeroes: fail rather than write */

#define BD_STATUS_DATA      (1u << 0)   /* reads return data from this layer */
#define BD_STATUS_ZERO      (1u << 1)   /* reads return zeroes */
#define BD_STATUS_ALLOCATED (1u << 2)   /* this layer decides the content */
#define BD_STATUS_OFFSET    (1u << 3)   /* *map is valid: the bytes are stored
                                           as they are at *map in n->file
                                           (never for compressed/encrypted) */

/* ---- info: key/value pairs for `imgfuse info` -------------------------- */

struct bd_info;
void bd_info_add(struct bd_info *info, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- consistency checks (`imgfuse check`) ---- */

#define BD_CHECK_FIX_LEAKS  (1u << 0)
#define BD_CHECK_FIX_ERRORS (1u << 1)

struct bd_check {
    uint64_t corruptions;           /* found and left */
    uint64_t leaks;
    uint64_t corruptions_fixed;
    uint64_t leaks_fixed;
};

/* ---- the driver contract ----------------------------------------------- */

/*
 * Three kinds of driver build a graph of nodes:
 *  - BD_PROTOCOL: the bottom of a graph; reaches the bytes (a local file, a
 *    device, a server). Has no n->file.
 *  - BD_FORMAT: an image format over one protocol (or format) child,
 *    n->file, opened by core before the format's open. Probed by its magic.
 *  - BD_FILTER: a pass-through node over n->file that changes one aspect of
 *    I/O (preallocation, logging, a guard). Never probed: opened only by
 *    name (driver=NAME,file.driver=...). Every I/O callback a filter leaves
 *    NULL is forwarded by core to n->file unchanged, so a filter implements
 *    only what it changes; its size, limits and block status are n->file's
 *    unless it says otherwise.
 *
 * struct bd_driver holds what every node does. Capabilities with rules of
 * their own live in optional const sub-tables below: a sub-table is either
 * absent (NULL) or has every callback set. tests/unit/test-registry.c walks
 * the registry and checks each driver against these rules with
 * bd_driver_contract_check(), so a new driver that breaks one fails CI.
 */
enum bd_kind { BD_FORMAT, BD_PROTOCOL, BD_FILTER };

/* Protocols named by a URI (nbd://, ssh://...); protocols only. */
struct bd_uri_ops {
    const char *const *schemes;     /* NULL-terminated, matched without case */
    /* Turn the URI into options of this driver (filename=, host=...) in o,
     * a view core has already narrowed to the protocol node. */
    int (*parse)(const char *uri, struct bd_opts *o, struct bd_err *err);
};

/* Formats that write new images (`imgfuse create`, --create). */
struct bd_create_ops {
    const char *const *options;     /* what `create -o` accepts; may be NULL */
    /* Write a new image of `size` bytes onto the open, empty, writable
     * protocol node `file`. 0 or -errno with err filled; core removes the
     * file on failure. */
    int (*create)(struct bd_node *file, uint64_t size, const struct bd_opts *o,
                  struct bd_err *err);
};

/* Protocols that make and remove objects (the file an image is created
 * in, and the extents or data files beside it). */
struct bd_files_ops {
    const char *const *options;     /* create options for the object; may be
                                       NULL */
    /* Make an empty object at filename (O_EXCL semantics; -EEXIST with err
     * filled when something is there). o holds the create options; for a
     * file beside an image on a server (bd_create_related) it holds instead
     * what bd_remote_ops.sibling filled, which then names the file and the
     * connection, and filename only names it in messages. */
    int (*create_file)(const char *filename, const struct bd_opts *o,
                       struct bd_err *err);
    /* Remove what create_file made (a create that failed); o is NULL or, as
     * for create_file, what sibling filled. */
    int (*remove_file)(const char *filename, const struct bd_opts *o,
                       struct bd_err *err);
};

/*
 * Protocols whose objects are paths on a server (ssh, gluster): a name
 * stored in an image on such a node (backing file, extent, data file) is a
 * path on the same server, and core resolves it with these, never on the
 * local host. A driver with this table also has bd_uri_ops and
 * bd_files_ops (sibling's options must be creatable and removable).
 */
struct bd_remote_ops {
    /* The server behind n as "scheme://[user@]host[:port]" (gluster: with
     * the volume), without secrets: equal strings reach the same files;
     * and n's canonical absolute path there. Both borrowed while n is
     * open. */
    void (*where)(struct bd_node *n, const char **server, const char **path);
    /* The server's canonical form of the absolute path (symlinks, "." and
     * ".." resolved there); caller frees *out. -ENOENT when nothing is at
     * path; other failures with err filled. */
    int (*realpath)(struct bd_node *n, const char *path, char **out,
                    struct bd_err *err);
    /* Fill the empty view o so that this driver opens the absolute path on
     * n's server with n's connection settings (host, port, user, keys,
     * timeouts; gluster: volume and servers). Its "filename" is a URI
     * naming the new node in messages, without secrets. */
    int (*sibling)(struct bd_node *n, const char *path, struct bd_opts *o,
                   struct bd_err *err);
};

/*
 * Formats that free storage (discard, shrink) while other requests run and
 * map reads through block status (BD_STATUS_OFFSET): hold that freeing off
 * while a mapping given out is read outside the driver (from core's
 * bd_map_fd until bd_map_fd_done). Formats with block_status and without
 * map_fd only. pin may be called from any thread; each pin is matched by
 * exactly one unpin.
 */
struct bd_pin_ops {
    void (*pin)(struct bd_node *n);
    void (*unpin)(struct bd_node *n);
};

struct bd_driver {
    const char *name;               /* "qcow2", "nbd", ... */
    enum bd_kind kind;
    const char *const *options;     /* NULL-terminated option names it reads */
    /* Of options, those whose values are secrets (passwords): the
     * front-end blanks their spelling in a SOURCE from argv, so ps does
     * not show them (bd_source_secrets). parse must then be pure parsing,
     * no I/O, and still parse when the secret's text is overwritten. */
    const char *const *secret_options;
    size_t state_size;              /* per-node private state, zeroed by core */
    bool parallel;                  /* safe to call from many threads at once;
                                       false: core serializes with n->lock */
    bool read_only;                 /* formats: the format cannot be written
                                       (then no write callbacks, no create) */
    bool no_file;                   /* formats that reach their bytes
                                       themselves (vvfat: a host directory):
                                       core opens no n->file and leaves
                                       filename= to the format; such a format
                                       may have uri ops (its "fat:" prefix),
                                       whose parse fills the format's own
                                       options. When also read_only, it is
                                       opened read-only without asking for -r */

    /* Formats stored as a directory (a Parallels .hdd bundle): the name of
     * the file in it that stands for the whole image. A directory given
     * as the image's file name opens that file in it instead. */
    const char *bundle_entry;

    /* Formats: score the first bytes (BD_PROBE_BYTES or the whole file) for
     * this format's magic, 0..100; the highest score wins, a tie is a bug.
     * Identified by a trailer (dmg): probe_tail scores the last bytes. */
    int  (*probe)(const uint8_t *head, size_t len);
    int  (*probe_tail)(const uint8_t *tail, size_t len);

    /* Formats and filters arrive with n->file already open; protocols open
     * their object. On failure core still calls close, which must cope with
     * a half-finished open. Option strings live only until open returns:
     * copy what you keep. Required. */
    int  (*open)(struct bd_node *n, const struct bd_opts *o, struct bd_err *err);
    void (*close)(struct bd_node *n);

    /*
     * I/O. Core promises: off and len are multiples of request_alignment,
     * off + len <= size, len <= max_transfer, and no write reaches a
     * read-only node. Return 0 or -errno. NULL means not supported: core
     * writes buffers of zeroes for pwrite_zeroes, ignores discard, reports
     * all data for block_status (a filter: forwards each to n->file).
     */
    void    (*limits)(struct bd_node *n, struct bd_limits *lim);
    int64_t (*size)(struct bd_node *n);
    int (*pread)(struct bd_node *n, void *buf, uint64_t len, uint64_t off);
    int (*pwrite)(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
                  unsigned flags);
    int (*pwrite_zeroes)(struct bd_node *n, uint64_t len, uint64_t off,
                         unsigned flags);
    int (*discard)(struct bd_node *n, uint64_t len, uint64_t off);
    int (*flush)(struct bd_node *n);
    /* Answer for this layer only; see BD_STATUS_*. *pnum >= 1 on success. */
    int (*block_status)(struct bd_node *n, uint64_t off, uint64_t len,
                        uint64_t *pnum, unsigned *status, uint64_t *map);
    /* Zero-copy reads: when [off, off+len) of this node is exactly a run
     * of bytes of a host file descriptor, give that fd and offset so the
     * front-end can splice; -ENOTSUP otherwise. Must not block. */
    int (*map_fd)(struct bd_node *n, uint64_t off, uint64_t len, int *fd,
                  uint64_t *fd_off);
    /* Resize (growable mounts, create). Formats and protocols alike. */
    int (*truncate)(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                    struct bd_err *err);
    /* Bytes the node uses on its storage (info's "disk size"), -errno. */
    int64_t (*allocated_size)(struct bd_node *n);
    /* Fields for `imgfuse info`. */
    void (*info)(struct bd_node *n, struct bd_info *info);

    /* Formats: internal snapshots, a malloc'd array of malloc'd names (the
     * id when a snapshot has no name), each one usable as the node's
     * snapshot= option. Returns the count or -errno. */
    int (*snapshots)(struct bd_node *n, char ***names);
    /* Formats: check (and with fix flags, repair) the image's metadata. The
     * node is open read-write when fix != 0. Fills res; 0 or -errno. */
    int (*check)(struct bd_node *n, unsigned fix, struct bd_check *res,
                 struct bd_err *err);

    /* Optional capabilities, each NULL or complete (see above). */
    const struct bd_uri_ops *uri;           /* protocols */
    const struct bd_files_ops *files;       /* protocols */
    const struct bd_remote_ops *remote;     /* protocols on a server */
    const struct bd_create_ops *create;     /* formats */
    const struct bd_pin_ops *pin;           /* formats */
};

/* ---- what drivers may call on their children --------------------------- */

/*
 * Generic I/O. Any offset/length (core aligns, bounces and splits); beyond
 * the end: reads fail with -EINVAL unless the caller clamps, writes grow the
 * node only when it is growable. Return 0 or -errno.
 */
int bd_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off);
int bd_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
              unsigned flags);
int bd_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                     unsigned flags);
int bd_discard(struct bd_node *n, uint64_t len, uint64_t off);
int bd_flush(struct bd_node *n);            /* flushes the node, then children */
int64_t bd_size(struct bd_node *n);
int bd_truncate(struct bd_node *n, uint64_t size, enum bd_prealloc prealloc,
                struct bd_err *err);
/* Status of this node's own layer (no backing walk), clamped to the size. */
int bd_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                    uint64_t *pnum, unsigned *status, uint64_t *map);
/* Status as the guest sees it: walks the backing chain. Never ALLOCATED-less:
 * the result is DATA or ZERO (or both for allocated zeroes). */
int bd_block_status_above(struct bd_node *n, uint64_t off, uint64_t len,
                          uint64_t *pnum, unsigned *status);
int64_t bd_allocated_size(struct bd_node *n);
/* See bd_driver.map_fd; -ENOTSUP when the node cannot say. On success the
 * mapping stays valid (the format frees nothing under it) until the
 * caller, done with the fd, calls bd_map_fd_done(n). */
int bd_map_fd(struct bd_node *n, uint64_t off, uint64_t len, int *fd,
              uint64_t *fd_off);
void bd_map_fd_done(struct bd_node *n);

/*
 * Open a backing (parent) image named inside the image `n`: resolves a
 * relative name against the directory of n's file (on n's server when n's
 * protocol has bd_remote_ops: an absolute name is then a path on that same
 * server, never a local file), applies the backing
 * policy (follow/confine/none), the depth limit and loop detection, opens it
 * read-only with read locks, and probes when fmt is NULL. Sets n->backing
 * (left NULL with policy none). 0 or -errno with err filled.
 */
int bd_open_backing(struct bd_node *n, const char *name, const char *fmt,
                    struct bd_err *err);
/* The same, with options for the backing node: the keys of view bo (the
 * driver's "backing" sub-view, say backing.encrypt.key-secret=ID) are
 * given to it; those it reads count as used. */
int bd_open_backing_opts(struct bd_node *n, const char *name, const char *fmt,
                         const struct bd_opts *bo, struct bd_err *err);
/*
 * Open an image named for the image `n` is writing (a differencing
 * image's parent at create): `name` is a file name, resolved as a backing
 * file of n would be (relative to n's directory, on n's server when n has
 * one; confined unless n's backing policy is follow; never a file in n's
 * chain), opened read-only with read locks, probed when fmt is NULL. Only
 * that image is opened: its own backing chain is not. *out is the top node
 * of what was opened, owned by the caller (bd_node_close). 0 or -errno with
 * err filled; a protocol or json: name is refused (-EINVAL).
 */
int bd_open_image_related(struct bd_node *n, const char *name, const char *fmt,
                          struct bd_node **out, struct bd_err *err);
/* Resolve a file name stored in image `n` (extent, data file) against n's
 * directory with the same confinement rules; caller frees *out. On a
 * server *out is the canonical path there, which bd_open_related opens on
 * the same server. */
int bd_resolve_related(struct bd_node *n, const char *name, char **out,
                       struct bd_err *err);
/* Open a further protocol node for a related file (extent, data_file);
 * it becomes owned by the caller, closed with bd_node_close(). */
int bd_open_related(struct bd_node *n, const char *path, bool writable,
                    struct bd_node **out, struct bd_err *err);
void bd_node_close(struct bd_node *n);
/*
 * Make an empty file `name` beside the image n is creating (extent, data
 * file) on the same storage: a local file next to a local image, a path on
 * the same server for an image on ssh:// or gluster:// (never a local file
 * then). A relative name is below n's directory, an absolute one is that
 * path (on the server); confinement as for bd_resolve_related. Then open it
 * writable as bd_open_related does (*out, owned by the caller). With excl
 * an existing file is refused (-EEXIST); without, it is emptied and used.
 * *path_out (may be NULL; caller frees) names the file for
 * bd_remove_related. Returns 0 for a new file, 1 for an emptied existing
 * one, or -errno with err filled (and nothing left behind that it made).
 */
int bd_create_related(struct bd_node *n, const char *name, bool excl,
                      struct bd_node **out, char **path_out, struct bd_err *err);
/* Remove a file bd_create_related made (a create that failed); 0 or -errno,
 * a failure is logged since there is nobody left to tell. */
int bd_remove_related(struct bd_node *n, const char *path);

/* Name of a known image format whose magic `head` shows (even one with no
 * driver here), or NULL. */
const char *bd_probe_known_magic(const uint8_t *head, size_t len);

/* Directory holding the file behind n (for relative names); caller frees.
 * For a node on a server (ssh://, gluster://) it is the URI's directory,
 * which is no local path: resolve names there with bd_resolve_related. */
char *bd_node_dirname(struct bd_node *n);
/* Where the object behind n is on its storage, canonical: the real path of
 * a local file, or for a node on a server (bd_remote_ops) the path there.
 * *path and *dir (its directory) are malloc'd for the caller; either may
 * be NULL when not wanted. 0 or -errno with err filled. */
int bd_node_location(struct bd_node *n, char **path, char **dir,
                     struct bd_err *err);

/* ---- URIs, for protocol drivers' bd_uri_ops.parse (core/uri.c) ---------------- */

struct bd_uri {
    char *scheme, *user, *password, *host, *path, *query;   /* decoded */
    int port;                   /* -1 when absent */
};
/* scheme://[user[:password]@]host[:port]/path[?query]; IPv6 in [...]. */
int bd_uri_parse(const char *s, struct bd_uri *u, struct bd_err *err);
void bd_uri_free(struct bd_uri *u);
/* Value of ?key=... in a query string (percent-decoded); caller frees. */
char *bd_uri_query_get(const char *query, const char *key);
/* NULL for a bad escape or an escaped NUL; caller frees. */
char *bd_percent_decode(const char *s);
/* Strictly: s[0..len) decoded into *out (caller frees); -EINVAL when a '%'
 * is not followed by two hex digits or encodes NUL, -ENOMEM. */
int bd_percent_decode_n(const char *s, size_t len, char **out);
/* Write s to f percent-encoded: RFC 3986 unreserved characters and those
 * in keep (may be NULL) stay as they are. */
void bd_percent_encode(FILE *f, const char *s, const char *keep);
/* A port number 1..65535 from s[0..len), or -1. */
int bd_port_parse(const char *s, size_t len);
/* Split "host[:port]" or "[v6addr][:port]" from s[0..len): the host
 * without brackets, and the port's text (*port NULL when there is none).
 * -EINVAL with err (naming src) for a missing ']' or text after it; what
 * the parts say is the caller's to check. */
int bd_hostport_split(const char *s, size_t len, const char **host,
                      size_t *hlen, const char **port, size_t *plen,
                      const char *src, struct bd_err *err);

/* ---- block tables: a byte range block by block (core/blockmap.c) ------ */

/*
 * The walk every block-table format (vdi, vpc, qed, qcow, bochs, parallels)
 * does for read, write and zeroes. fn is called once per block that
 * [off, off + len) touches, in order, with:
 *   block     the block's index (off / block_size for the first call)
 *   in_block  where the chunk starts in that block
 *   chunk     its length, >= 1: to the block's end or the range's end
 *   done      bytes of the range before it, so the chunk is buf + done in
 *             the caller's buffer and off + done on the guest
 * The first non-zero return of fn (a driver's -errno) ends the walk and is
 * returned; otherwise 0, also for len 0, which calls nothing.
 * block_size > 0, any value (vdi's need not be a power of two);
 * off + len <= 2^64 (the range may end exactly at the top of the space).
 * It allocates nothing, copies nothing and takes no lock.
 */
int bd_for_each_block(uint64_t off, uint64_t len, uint32_t block_size,
                      int (*fn)(void *ctx, uint64_t block, uint32_t in_block,
                                uint32_t chunk, uint64_t done),
                      void *ctx);

/* ---- tables of 32-bit entries (core/table.c) ---------------------------- */

/*
 * Open's first step for a format whose header sits at offset 0 of file:
 * the file's size into *fsize, refusing a file shorter than len, then its
 * first len bytes into buf. 0, or -errno with err set:
 *   "NAME: cannot get the file size: <strerror>"
 *   "NAME: file is too small to be a FMT image (N bytes)"
 *   "NAME: cannot read the FMT header: <strerror>"
 */
int bd_read_image_header(struct bd_node *file, const char *name,
                         const char *fmt, void *buf, size_t len,
                         uint64_t *fsize, struct bd_err *err);

/*
 * Read count 32-bit entries at off in file (a block map, catalog or BAT),
 * decode them from big- or little-endian to native order and give the new
 * array to *out (the caller frees it; non-NULL even for count 0). A table
 * that does not lie inside the file is refused before anything is
 * allocated, so memory is bounded by the file whatever count an image
 * claims. Returns 0, or -errno with err set and *out untouched:
 *   "NAME: no memory for the WHAT"
 *   "NAME: cannot read the WHAT: <strerror>"
 *   "NAME: the WHAT (N entries at offset O) lies beyond the end of the file"
 * Checking what the entries say is the caller's.
 */
int bd_read_u32_table(struct bd_node *file, uint64_t off, uint32_t count,
                      bool big_endian, uint32_t **out, const char *name,
                      const char *what, struct bd_err *err);

/* ---- UTF-16 names stored in images (core/utf16.c) ---------------------- */

#define BD_UTF16_LE     0u          /* little-endian units (vhdx, vpc locators) */
#define BD_UTF16_BE     (1u << 0)   /* big-endian units (vpc's parent name) */
#define BD_UTF16_STRICT (1u << 1)   /* an unpaired surrogate is an error */

/*
 * UTF-16 in[0..len) (flags: byte order, strictness) to NUL-terminated UTF-8
 * in out[0..size), size >= 1. It stops at the first NUL unit or the end;
 * an odd last byte is ignored. A surrogate pair becomes one 4-byte
 * character. An unpaired surrogate is -EILSEQ with BD_UTF16_STRICT, and
 * otherwise written as its own 3-byte sequence (as Windows names may hold
 * one). Returns 0; -EILSEQ; or -ERANGE when the next character does not fit
 * in size. On an error out holds the characters converted before it, whole
 * and NUL-terminated. bd_utf16_to_utf8_max(len) is always enough.
 */
int bd_utf16_to_utf8(const void *in, size_t len, unsigned flags, char *out,
                     size_t size);
/* The same into a new string of that size; caller frees *out (NULL on
 * failure). 0, -EILSEQ or -ENOMEM. */
int bd_utf16_to_utf8_dup(const void *in, size_t len, unsigned flags,
                         char **out);
/* UTF-8 bytes, with the NUL, that len bytes of UTF-16 can need: one unit
 * makes at most 3, a pair of units 4. */
static inline size_t bd_utf16_to_utf8_max(size_t len)
{
    return len / 2 * 3 + 1;
}

/* ---- secrets (core/secret.c): --object secret,id=ID,... --------------- */

/*
 * Secrets are defined once by the front end (--object secret, a prompt) and
 * looked up by drivers by the id an option names (key-secret=ID,
 * encrypt.key-secret=ID). The bytes live in locked memory, are wiped at
 * exit, and must never be copied into a message, a log line or info output.
 */
/* Define secret ID (the front end does this); copies len bytes. -EEXIST when
 * the id is taken. */
int bd_secret_define(const char *id, const void *data, size_t len,
                     struct bd_err *err);
/* Define the secret one QEMU-style spec describes:
 * "secret,id=ID,data=STRING|file=PATH[,format=raw|base64]" (",," is a comma
 * in a value). A file's content is used as is, trailing newline included.
 * Errors name the id and the option, never the secret's bytes. */
int bd_secret_object(const char *spec, struct bd_err *err);
/* The bytes of secret ID: *data (followed by a NUL not counted in *len) stays
 * valid until bd_secret_wipe_all(). `who` names the image and option for the
 * error ("disk.luks: key-secret=sec0: no secret object 'sec0' ..."). */
int bd_secret_get(const char *id, const char *who, const uint8_t **data,
                  size_t *len, struct bd_err *err);
/* No key-secret given: ask on the terminal when --key-prompt allows it (the
 * answer becomes a secret with an id of its own, returned in *data and *len),
 * else an error naming `option` as the way to give one. */
int bd_secret_prompt(const char *who, const char *option, const uint8_t **data,
                     size_t *len, struct bd_err *err);
/* Let bd_secret_prompt ask (the front end's --key-prompt). */
void bd_secret_allow_prompt(bool allow);
/* Wipe and free every secret (at exit, and by tests). */
void bd_secret_wipe_all(void);

/* ---- progress of long work (core/progress.c) --------------------------- */

/* A driver doing long work (writing zeroes for preallocation=full, a check
 * or repair, a log replay) says how far it is: `done` of `total` units,
 * `unit` "B" for bytes or a plural noun ("tables"). Call it as often as you
 * like (it is cheap and thread-safe); done == total ends the job. The
 * front-end shows it on a terminal (percent and rate) or not at all. */
void bd_progress(const char *what, const char *unit, uint64_t done,
                 uint64_t total);
typedef void (*bd_progress_fn)(const char *what, const char *unit,
                               uint64_t done, uint64_t total);
/* The front-end's display; NULL (the default): progress is not shown. */
void bd_progress_set(bd_progress_fn fn);

/* ---- logging (core/log.c) ---------------------------------------------- */

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern unsigned log_debug_mask;
void log_debug_(const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
unsigned log_debug_bit(const char *mod);
#define log_debug(mod, ...)                                            \
    do {                                                               \
        if (__builtin_expect(log_debug_mask != 0, 0))                  \
            log_debug_((mod), __VA_ARGS__);                            \
    } while (0)

/* ---- endian helpers for on-disk structures ----------------------------- */

static inline uint16_t bd_be16(const void *p) {
    const uint8_t *b = p; return (uint16_t)(b[0] << 8 | b[1]);
}
static inline uint32_t bd_be32(const void *p) {
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t bd_be64(const void *p) {
    const uint8_t *b = p; return (uint64_t)bd_be32(b) << 32 | bd_be32(b + 4);
}
static inline uint16_t bd_le16(const void *p) {
    const uint8_t *b = p; return (uint16_t)(b[1] << 8 | b[0]);
}
static inline uint32_t bd_le32(const void *p) {
    const uint8_t *b = p;
    return (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}
static inline uint64_t bd_le64(const void *p) {
    const uint8_t *b = p; return (uint64_t)bd_le32(b + 4) << 32 | bd_le32(b);
}
static inline void bd_put_be16(void *p, uint16_t v) {
    uint8_t *b = p; b[0] = v >> 8; b[1] = (uint8_t)v;
}
static inline void bd_put_be32(void *p, uint32_t v) {
    uint8_t *b = p; b[0] = v >> 24; b[1] = v >> 16; b[2] = v >> 8; b[3] = (uint8_t)v;
}
static inline void bd_put_be64(void *p, uint64_t v) {
    bd_put_be32(p, (uint32_t)(v >> 32)); bd_put_be32((uint8_t *)p + 4, (uint32_t)v);
}
static inline void bd_put_le16(void *p, uint16_t v) {
    uint8_t *b = p; b[0] = (uint8_t)v; b[1] = v >> 8;
}
static inline void bd_put_le32(void *p, uint32_t v) {
    uint8_t *b = p; b[0] = (uint8_t)v; b[1] = v >> 8; b[2] = v >> 16; b[3] = v >> 24;
}
static inline void bd_put_le64(void *p, uint64_t v) {
    bd_put_le32(p, (uint32_t)v); bd_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#endif
