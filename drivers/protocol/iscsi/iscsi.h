/*
 * Private header of the iscsi protocol driver: where to log in (parsed from
 * an iscsi:// URL, dotted options, the environment and a config file) and
 * the tunables. Parsing and resolving settings is target.c; sessions and the
 * block-node callbacks are iscsi.c.
 */
#ifndef IMGFUSE_ISCSI_H
#define IMGFUSE_ISCSI_H

#include "core/bd.h"

#define ISCSI_DEFAULT_PORT "3260"
#define ISCSI_DEFAULT_INITIATOR "iqn.2008-11.org.linux-kvm"
#define ISCSI_MAX_CONNS 8u

/* Every option the driver reads, as it is spelled in struct bd_opts. */
enum iscsit_key {
    ISCSIT_PORTAL,          /* portal: host[:port] or [v6][:port] */
    ISCSIT_TARGET,          /* target: the target IQN */
    ISCSIT_LUN,             /* lun */
    ISCSIT_USER,            /* user: CHAP user name */
    ISCSIT_PASSWORD,        /* password: CHAP secret */
    ISCSIT_TARGET_USER,     /* target-user: mutual CHAP, the target's name */
    ISCSIT_TARGET_PASSWORD, /* target-password: mutual CHAP secret */
    ISCSIT_INITIATOR,       /* initiator-name */
    ISCSIT_DIGEST,          /* header-digest */
    ISCSIT_CONFIG,          /* config: file with [iscsi] sections */
    ISCSIT_TIMEOUT,         /* timeout: seconds, connect and per command */
    ISCSIT_RETRIES,         /* reconnect-retries */
    ISCSIT_CONNECTIONS,     /* connections: sessions used in parallel */
    ISCSIT_NKEYS
};

extern const char *const iscsit_keys[ISCSIT_NKEYS + 1];

/* A parsed target: one string (or NULL) per key; owns the strings. */
struct iscsit {
    char *v[ISCSIT_NKEYS];
};

/*
 * Parse "iscsi://[user[%password]@]host[:port]/target-iqn/lun[?query]" into
 * t (zeroed by the caller; free with iscsit_free even on failure). Query
 * keys: header_digest, target_user, target_password, initiator_name (or
 * the dashed option names). Messages never show the password.
 * 0 or -errno with err filled.
 */
int iscsit_parse(const char *url, struct iscsit *t, struct bd_err *err);
void iscsit_free(struct iscsit *t);
/* Set a key, replacing (and wiping) an earlier value; 0 or -ENOMEM. */
int iscsit_set(struct iscsit *t, enum iscsit_key k, const char *val);

/* What a config file says for one target: [iscsi "IQN"] over [iscsi]. */
struct iscsi_file_conf {
    char *user, *password, *initiator, *digest, *timeout;
};

/* Read the [iscsi] and [iscsi "target"] sections of path; other sections
 * are skipped. 0 or -errno with err filled (naming the file and line). */
int iscsi_config_load(const char *path, const char *target,
                      struct iscsi_file_conf *fc, struct bd_err *err);
/* Same, from text already in memory; name is used in messages. */
int iscsi_config_parse(const char *text, const char *name, const char *target,
                       struct iscsi_file_conf *fc, struct bd_err *err);
void iscsi_file_conf_free(struct iscsi_file_conf *fc);

/* libiscsi's enum iscsi_header_digest values, without its header. */
enum iscsi_digest {
    ISCSI_DIGEST_NONE = 0,
    ISCSI_DIGEST_NONE_CRC32C = 1,
    ISCSI_DIGEST_CRC32C_NONE = 2,
    ISCSI_DIGEST_CRC32C = 3,
};

/* Settings after validation; every string owned (secrets wiped on free). */
struct iscsi_conf {
    char *host, *port;              /* host without brackets */
    char *portal;                   /* "host:port" / "[v6]:port" for libiscsi */
    char *target;
    unsigned lun;
    char *user, *password;          /* NULL: no CHAP */
    char *target_user, *target_password;    /* NULL: no mutual CHAP */
    char *initiator;
    enum iscsi_digest digest;
    unsigned timeout_s;             /* 0 never: defaults to 10 */
    unsigned retries;
    unsigned conns;
};

/*
 * Check the values in t and fill c: options and URL first, then
 * LIBISCSI_CHAP_USERNAME / LIBISCSI_CHAP_PASSWORD from the environment
 * (env may be NULL: no environment), then the config file. 0 or -errno.
 */
int iscsi_conf_resolve(const struct iscsit *t, char *const *env,
                       struct iscsi_conf *c, struct bd_err *err);
void iscsi_conf_free(struct iscsi_conf *c);
/* "iscsi://[user@]host:port/target/lun": no secrets; caller frees. */
char *iscsi_conf_display(const struct iscsi_conf *c);
const char *iscsi_digest_name(enum iscsi_digest d);

#endif
