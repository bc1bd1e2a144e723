/*
 * Leases: locks that reach across hosts sharing the storage, chosen with
 * --lease=none|lockd|sanlock. lockd follows libvirt's virtlockd on-disk
 * scheme (a POSIX lock on byte 0 of one file per image in a shared
 * directory), sanlock takes disk-paxos leases through the sanlock daemon.
 * Independent of the OFD permission locks in ofd.c: --locking=off never
 * turns a lease off.
 *
 * A spec is "none", "lockd[,dir=DIR]", "lockd,dir=direct" or
 * "sanlock,lockspace=PATH[:OFFSET],host_id=N[,io_timeout=S][,dir=DIR]
 * [,name=LOCKSPACE]" (docs/locking.md).
 */
#ifndef IMGFUSE_LEASE_H
#define IMGFUSE_LEASE_H

#include <stdbool.h>
#include "core/bd.h"

enum lease_mode {
    LEASE_SHARED,           /* a read-only layer, or --share-rw */
    LEASE_EXCLUSIVE,        /* a read-write image */
};

struct lease;

/* 0 if spec is well formed (and names a lease manager this build has),
 * else -EINVAL/-ENOTSUP with err saying what is wrong. */
int lease_spec_check(const char *spec, struct bd_err *err);

/* true for "none" (or an empty spec): nothing to take. */
bool lease_spec_is_none(const char *spec);

/*
 * Take the lease of the image at path (as the user or the backing chain
 * wrote it; made absolute here, symlinks not resolved) in mode. fd is the
 * image, open (lockd's dir=direct locks it). On refusal: -EAGAIN with err
 * naming the image, the lease and its holder where that is known; nothing
 * is held then. *out is NULL for "none".
 */
int lease_acquire(const char *spec, const char *path, int fd,
                  enum lease_mode mode, struct lease **out, struct bd_err *err);

/* Give the lease up (and free l). NULL is fine. */
void lease_release(struct lease *l);

/* true once the lease manager took the lease away (sanlock revoked it):
 * writes must fail with EIO from then on. */
bool lease_revoked(const struct lease *l);

/* Leases this process holds now (each lease_acquire that took one counts
 * until its release): lets the mount see that a source took none. */
unsigned lease_count(void);

/* `imgfuse lease init SPEC`: prepare what the spec names (lockd: the
 * directory; sanlock: format the lockspace). 0 or -errno with err. */
int lease_init(const char *spec, struct bd_err *err);

#endif
