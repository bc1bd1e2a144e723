/*
 * Private to locks/lease*.c, lockd.c and sanlock.c: the parsed spec and
 * each manager's entry points.
 */
#ifndef IMGFUSE_LEASE_INTERNAL_H
#define IMGFUSE_LEASE_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include "lease.h"

enum lease_kind { LEASE_NONE, LEASE_LOCKD, LEASE_SANLOCK };

#define LEASE_SANLOCK_NAME_LEN 48   /* SANLK_NAME_LEN */

struct lease_conf {
    enum lease_kind kind;
    char dir[PATH_MAX];             /* lockd lockspace dir / sanlock lease dir */
    bool direct;                    /* lockd dir=direct: lock the image itself */
    char lockspace[1024];           /* sanlock lockspace (SANLK_PATH_LEN) */
    uint64_t ls_offset;
    unsigned host_id;               /* 1..2000 */
    unsigned io_timeout;            /* seconds; 0 = sanlock's default */
    char ls_name[LEASE_SANLOCK_NAME_LEN + 1];
};

struct lease {
    enum lease_kind kind;
    void *priv;                     /* the manager's state */
};

/* for_init: host_id may be absent (lease init formats, it does not join) */
int lease_conf_parse(const char *spec, struct lease_conf *c, bool for_init,
                     struct bd_err *err);

/* path made absolute against the cwd, nothing else changed (libvirt's
 * form); -ENAMETOOLONG or -errno. */
int lease_abs_path(const char *path, char *out, size_t size);
/* lower-case hex of the SHA-256 / MD5 of s; out holds 65 / 33 bytes */
void lease_sha256_hex(const char *s, char out[65]);
void lease_md5_hex(const char *s, char out[33]);
/* mkdir -p with mode 0700 for what it creates */
int lease_mkdirs(const char *dir, struct bd_err *err);

int lockd_acquire(const struct lease_conf *c, const char *path, int fd,
                  enum lease_mode mode, void **priv, struct bd_err *err);
void lockd_release(void *priv);
int lockd_init(const struct lease_conf *c, struct bd_err *err);

int sanlk_acquire(const struct lease_conf *c, const char *path,
                  enum lease_mode mode, void **priv, struct bd_err *err);
void sanlk_release(void *priv);
bool sanlk_revoked(void);
int sanlk_init(const struct lease_conf *c, struct bd_err *err);

#endif
