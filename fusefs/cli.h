/*
 * Command-line parsing for every imgfuse subcommand, into one struct.
 * -o takes FUSE options and imgfuse options alike (key=value), so that
 * mount.fuse3 and /etc/fstab lines work. No I/O happens here.
 */
#ifndef IMGFUSE_CLI_H
#define IMGFUSE_CLI_H

#include "core/bd.h"

#define CLI_MAX_SOURCES 64

enum cli_cmd { CLI_MOUNT, CLI_INFO, CLI_CREATE, CLI_CHECK, CLI_LEASE, CLI_LIST, CLI_HELP,
               CLI_VERSION };

struct cli {
    enum cli_cmd cmd;
    const char *sources[CLI_MAX_SOURCES];
    size_t nsources;
    const char *mountpoint;
    const char *format;             /* -F; NULL = probe */
    const char *pidfile;
    struct bd_flags flags;
    bool foreground, debug, single_thread, json, clone_fd;
    bool quiet;                     /* -q: no progress on the terminal */
    bool writeback_cache;           /* kernel write caching on a fixed size */
    unsigned threads;               /* FUSE workers; 0 = default */
    char fuse_opts[1024];           /* passed to libfuse's -o */
    char fmt_opts[1024];            /* key=val for the top format node */
    char file_filter[128];          /* --preallocate: a filter node put
                                       under the top format, or "" */
    const char *create_size;        /* --create SIZE (mount) or create's SIZE */
    const char *create_opts;        /* --create-opts / create -o */
    const char *debug_mods;
    const char *check_repair;       /* check -r leaks|all */
    const char *iscsi_config;       /* --iscsi-config FILE */
    bool pr_exclusive, pr_preempt;  /* --pr=exclusive[,preempt] */
    const char *pr_key, *pr_helper; /* --pr-key, --pr-helper */
    char lease_kind[16];            /* --lease / -o lease=: none, lockd, ... */
    char lease_opts[1024];          /* its options, from the spec or lease.KEY= */
    char lease_spec[1100];          /* both joined; flags.lease points here */
    const char *lease_action;       /* `imgfuse lease ACTION SPEC` */
    unsigned partition;             /* --partition N; 0 = the whole disk */
    const char *overlay;            /* --overlay FILE|temp, -o snapshot */
    bool backing_chain;             /* info --backing-chain */
    char *o_copies[32];             /* -o strings the fields above point into */
    size_t n_o_copies;
    char *objects[16];              /* --object specs (owned; cli-secret.c) */
    size_t nobjects;
    char *o_object;                 /* -o object=... being gathered */
    bool key_prompt;                /* --key-prompt */
};

/* 0 on success; -EINVAL with err naming the bad argument. argv is kept
 * (pointers into it). */
int cli_parse(int argc, char **argv, struct cli *c, struct bd_err *err);

/* The options for opening `src`: fmt_opts plus what applies to that kind
 * of source (--iscsi-config as file.config for URIs whose protocol reads a
 * config option; --pr as file.pr and friends). Returns buf. */
const char *cli_source_opts(const struct cli *c, const char *src, char *buf,
                            size_t size);

/* cli-secret.c: --object SPEC (spec in argv: its data= gets blanked); one
 * -o item (orig: the same item in argv), 1 when a secret took it; the end
 * of a -o string; define the secrets (warning about data=) and allow
 * --key-prompt; free the specs. */
int cli_object(struct cli *c, char *spec, struct bd_err *err);
int cli_o_object_item(struct cli *c, char *item, char *orig, struct bd_err *err);
int cli_o_object_end(struct cli *c, struct bd_err *err);
int cli_define_secrets(struct cli *c, struct bd_err *err);
void cli_objects_free(struct cli *c);

/* Free what cli_parse allocated (the fields then dangle). */
void cli_free(struct cli *c);

/* The --help text (also what docs/imgfuse.1 is tested against). */
extern const char cli_usage[];

#endif
