/*
 * Permission locks on image files, byte-compatible with QEMU's file-posix
 * locking: byte 100+i is read-locked while we hold permission i, byte 200+i
 * while we refuse to share permission i (i in enum bd_perm bit order).
 * Lease managers that reach across hosts live in lease.c, not here.
 */
#ifndef IMGFUSE_OFD_H
#define IMGFUSE_OFD_H

#include <stdbool.h>
#include "core/bd.h"

#define OFD_PERM_BASE   100
#define OFD_SHARED_BASE 200
#define OFD_NPERMS      4

/* Lock bytes to take for (perm, shared): bitmasks over i = 0..3. */
struct ofd_lock_bytes {
    unsigned hold;      /* take byte 100+i */
    unsigned unshare;   /* take byte 200+i */
};
struct ofd_lock_bytes ofd_lock_bytes_for(unsigned perm, unsigned shared);

/* "consistent read", "write", "write unchanged", "resize" */
const char *ofd_perm_name(unsigned i);
/* "write, resize" into buf; returns buf. */
char *ofd_perm_list(unsigned mask, char *buf, size_t size);

enum ofd_kind { OFD_KIND_NONE, OFD_KIND_OFD, OFD_KIND_POSIX };

/*
 * Take the locks for (perm, shared) on fd and check that no other holder
 * conflicts: anyone holding a permission we refuse to share, or refusing to
 * share one we hold. mode OFF takes nothing; AUTO falls back silently when
 * OFD locks are unavailable (kind NONE), ON falls back to POSIX locks with
 * a warning. On conflict: -EAGAIN with err naming `name`, what the other
 * holder has, and the hint to use -r or -U. On success *kind tells what was
 * used. Safe to call again to change (perm, shared) on the same fd.
 * On any failure fd is left holding no lock bytes at all.
 */
int ofd_lock_apply(int fd, const char *name, unsigned perm, unsigned shared,
                   enum bd_locking mode, enum ofd_kind *kind, struct bd_err *err);
/*
 * The same with the kind of lock given, no fallback and no probe: OFD, POSIX
 * (what ofd_lock_apply falls back to; tests use it to reach that path), or
 * NONE (takes nothing). The mode decisions are ofd_lock_apply's.
 */
int ofd_lock_apply_kind(int fd, const char *name, unsigned perm,
                        unsigned shared, enum ofd_kind kind, struct bd_err *err);
/* Drop every lock byte we hold on fd (close() of the fd does it too). */
void ofd_lock_release(int fd, enum ofd_kind kind);

/* What other processes hold on the file, as seen through fd (for info):
 * perm bits held by someone else, and perm bits someone else refuses to
 * share. 0 or -errno. */
int ofd_lock_probe(int fd, unsigned *others_hold, unsigned *others_unshare);

#endif
