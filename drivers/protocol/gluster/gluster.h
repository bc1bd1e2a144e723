/*
 * Private to the gluster driver: where a gluster image is (volume, path and
 * the volfile servers to try in order), parsed from gluster URIs and from
 * dotted/JSON options by target.c, and opened through gfapi by gluster.c.
 */
#ifndef IMGFUSE_GLUSTER_H
#define IMGFUSE_GLUSTER_H

#include "core/bd.h"

#define GLT_DEFAULT_PORT 24007
#define GLT_MAX_SERVERS 16
#define GLT_DEFAULT_DEBUG 4            /* gluster's "error" log level */

enum glt_transport { GLT_TCP, GLT_UNIX, GLT_RDMA };

struct glt_server {
    enum glt_transport type;
    char *host;                        /* tcp/rdma */
    int port;                          /* tcp/rdma, 1..65535 */
    char *path;                        /* unix: socket path */
};

struct glt {
    char *volume;
    char *path;                        /* image path inside the volume, no leading '/' */
    struct glt_server srv[GLT_MAX_SERVERS];
    unsigned nsrv;
    int debug;                         /* 0..9, -1 = not given */
    char *logfile;                     /* NULL = not given */
};

void glt_free(struct glt *t);
/* gluster[+tcp|+unix|+rdma]://[host[:port]]/volume/path[?socket=PATH] */
int glt_parse_uri(const char *uri, struct glt *t, struct bd_err *err);
/* Options (volume, path, server.N.*, debug, logfile) over what
 * "filename=<uri>" says; checks the result is complete. */
int glt_from_opts(const struct bd_opts *o, struct glt *t, struct bd_err *err);
/* Write t back as options (for parse_uri). */
int glt_to_opts(const struct glt *t, struct bd_opts *o);
/* A URI naming the image, for messages; the caller frees it. */
char *glt_display(const struct glt *t);
const char *glt_transport_name(enum glt_transport tr);

#endif
