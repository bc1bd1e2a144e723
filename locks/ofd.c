/*
 * Permission locks on image files, byte-compatible with QEMU's file-posix
 * locking, so that imgfuse and QEMU processes see each other. This file
 * knows which bytes to lock and how to detect a conflict; which files to
 * lock (every image in a chain) and when is core's business.
 *
 * The protocol: every lock is a shared (read) lock of one byte.
 *   byte 100+i held  = "I hold permission i"
 *   byte 200+i held  = "I do not let anyone else hold permission i"
 * with i = 0 consistent read, 1 write, 2 write unchanged, 3 resize.
 * A holder first takes its bytes, then tests (with a write-lock probe, which
 * any read lock of another open file description blocks) that nobody holds
 * 200+i for a permission i it holds, and nobody holds 100+i for a
 * permission i it refuses to share. Taking before testing means two
 * processes racing for conflicting permissions both fail, never both pass.
 *
 * What QEMU 7.2 takes, measured from /proc/locks (bytes held):
 *   guest disk (virtio-blk, ide-hd, scsi-hd), raw    100 101 201
 *   ... share-rw=on, raw                             100 101
 *   ... readonly=on, raw                             100 201
 *   ide-cd, raw                                      100 201 203
 *   guest disk, qcow2 (share-rw=on or not)           100 101 103 201 203
 *   backing file of a guest's qcow2 (raw or qcow2)   100 201 203
 *   qemu-io / qemu-img -w, raw, read-write           100 101
 *   qemu-io / qemu-img, raw, read-only               100
 *   qemu-io / qemu-img -U, raw or qcow2              100      (checks 200)
 *   qemu-io / qemu-img -w, qcow2, read-write         100 101 103 201 203
 *   qemu-io / qemu-img, qcow2, read-only             100 201 203
 *   raw backing file of qemu-io's qcow2              100
 *   qemu-storage-daemon FUSE export, writable        100 101 103
 *   qemu-storage-daemon NBD export, writable         100 101 203
 *   qemu-storage-daemon FUSE export, read-only       100
 *   qemu-img info                                    (nothing)
 * Which permissions imgfuse takes for which use is core's policy
 * (core/perm.c); this file only takes and checks the bytes for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "locks/ofd.h"

static const char *const perm_names[OFD_NPERMS] = {
    "consistent read", "write", "write unchanged", "resize",
};

const char *ofd_perm_name(unsigned i)
{
    return i < OFD_NPERMS ? perm_names[i] : "unknown";
}

char *ofd_perm_list(unsigned mask, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return buf;
    buf[0] = '\0';
    for (unsigned i = 0; i < OFD_NPERMS; i++) {
        if (!(mask & (1u << i)))
            continue;
        int w = snprintf(buf + used, size - used, "%s%s",
                         used ? ", " : "", perm_names[i]);
        if (w < 0 || (size_t)w >= size - used) {
            buf[used] = '\0';   /* keep whole names only */
            break;
        }
        used += (size_t)w;
    }
    return buf;
}

struct ofd_lock_bytes ofd_lock_bytes_for(unsigned perm, unsigned shared)
{
    return (struct ofd_lock_bytes){
        .hold = perm & BD_PERM_ALL,
        .unshare = ~shared & BD_PERM_ALL,
    };
}

/* ---- fcntl wrappers ---------------------------------------------------- */

static int lock_cmd(enum ofd_kind kind, bool get)
{
    if (kind == OFD_KIND_POSIX)
        return get ? F_GETLK : F_SETLK;
    return get ? F_OFD_GETLK : F_OFD_SETLK;
}

static int set_byte(int fd, enum ofd_kind kind, off_t byte, short type)
{
    struct flock fl = {
        .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
    };

    if (fcntl(fd, lock_cmd(kind, false), &fl) < 0)
        return -errno;
    return 0;
}

/* 1 when another holder has a lock on the byte, 0 if not, or -errno. */
static int byte_taken(int fd, enum ofd_kind kind, off_t byte, pid_t *pid)
{
    struct flock fl = {
        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
    };

    if (fcntl(fd, lock_cmd(kind, true), &fl) < 0)
        return -errno;
    if (fl.l_type == F_UNLCK)
        return 0;
    if (pid && fl.l_pid > 0)
        *pid = fl.l_pid;
    return 1;
}

static void unlock_all(int fd, enum ofd_kind kind)
{
    for (unsigned i = 0; i < OFD_NPERMS; i++) {
        set_byte(fd, kind, OFD_PERM_BASE + i, F_UNLCK);
        set_byte(fd, kind, OFD_SHARED_BASE + i, F_UNLCK);
    }
}

/*
 * Which kind of lock this fd can use under mode. A harmless probe tells:
 * F_OFD_GETLK fails with EINVAL on a kernel without OFD locks. Returns
 * 0 with *kind set, or -errno with err filled (mode ON only).
 */
static int pick_kind(int fd, const char *name, enum bd_locking mode,
                     enum ofd_kind *kind, struct bd_err *err)
{
    int r = byte_taken(fd, OFD_KIND_OFD, OFD_PERM_BASE, NULL);

    if (r >= 0) {
        *kind = OFD_KIND_OFD;
        return 0;
    }
    if (r == -EINVAL) {
        if (mode == BD_LOCKING_AUTO) {
            /* as QEMU's locking=auto: no OFD locks, no locking */
            *kind = OFD_KIND_NONE;
            return 0;
        }
        log_warn("%s: OFD locks are not available; falling back to POSIX "
                 "locks, which any other open of the file in this process "
                 "releases", name);
        *kind = OFD_KIND_POSIX;
        return 0;
    }
    if (mode == BD_LOCKING_AUTO && (r == -ENOLCK || r == -EOPNOTSUPP ||
                                    r == -ENOSYS)) {
        log_warn("%s: the file system does not support locks (%s); "
                 "continuing without locking", name, strerror(-r));
        *kind = OFD_KIND_NONE;
        return 0;
    }
    return bd_err_set(err, -r, "%s: cannot lock the image: %s%s", name,
                      strerror(-r), mode == BD_LOCKING_ON ?
                      "; use --locking=off if the file system has no locks" :
                      "");
}

/* Collect the permissions in conflict; 0 or -errno. */
static int find_conflicts(int fd, enum ofd_kind kind, struct ofd_lock_bytes b,
                          unsigned *they_hold, unsigned *they_unshare,
                          pid_t *pid)
{
    *they_hold = 0;
    *they_unshare = 0;
    for (unsigned i = 0; i < OFD_NPERMS; i++) {
        unsigned bit = 1u << i;
        int r;

        if (b.hold & bit) {
            r = byte_taken(fd, kind, OFD_SHARED_BASE + i, pid);
            if (r < 0)
                return r;
            if (r)
                *they_unshare |= bit;
        }
        if (b.unshare & bit) {
            r = byte_taken(fd, kind, OFD_PERM_BASE + i, pid);
            if (r < 0)
                return r;
            if (r)
                *they_hold |= bit;
        }
    }
    return 0;
}

static const char *plural(unsigned mask)
{
    return (mask & (mask - 1)) ? "permissions" : "permission";
}

static int conflict_error(const char *name, struct ofd_lock_bytes b,
                          unsigned they_hold, unsigned they_unshare,
                          pid_t pid, struct bd_err *err)
{
    char held[80], unshared[80], who[40] = "";
    const char *hint;

    ofd_perm_list(they_hold, held, sizeof(held));
    ofd_perm_list(they_unshare, unshared, sizeof(unshared));
    if (pid > 0)
        snprintf(who, sizeof(who), " (pid %ld)", (long)pid);
    if (b.hold & BD_PERM_WRITE)
        hint = "mount read-only with -r, or use -U (force-share) to read "
               "without locking";
    else
        hint = "use -U (force-share) to read without locking";

    if (they_hold && they_hold == they_unshare)
        return bd_err_set(err, EAGAIN, "%s: in use by another process%s that "
                          "holds %s %s and does not share %s; %s", name,
                          who, held, plural(they_hold),
                          (they_hold & (they_hold - 1)) ? "them" : "it", hint);
    if (they_hold && they_unshare)
        return bd_err_set(err, EAGAIN, "%s: in use by another process%s that "
                          "holds %s %s and does not share %s %s; %s", name,
                          who, held, plural(they_hold), unshared,
                          plural(they_unshare), hint);
    if (they_hold)
        return bd_err_set(err, EAGAIN, "%s: in use by another process%s that "
                          "holds %s %s; %s", name, who, held,
                          plural(they_hold), hint);
    return bd_err_set(err, EAGAIN, "%s: in use by another process%s that "
                      "does not share %s %s; %s", name, who, unshared,
                      plural(they_unshare), hint);
}

static int take_bytes(int fd, enum ofd_kind kind, struct ofd_lock_bytes b)
{
    for (unsigned i = 0; i < OFD_NPERMS; i++) {
        unsigned bit = 1u << i;
        int r;

        r = set_byte(fd, kind, OFD_PERM_BASE + i,
                     (b.hold & bit) ? F_RDLCK : F_UNLCK);
        if (r < 0)
            return r;
        r = set_byte(fd, kind, OFD_SHARED_BASE + i,
                     (b.unshare & bit) ? F_RDLCK : F_UNLCK);
        if (r < 0)
            return r;
    }
    return 0;
}

int ofd_lock_apply_kind(int fd, const char *name, unsigned perm,
                        unsigned shared, enum ofd_kind kind, struct bd_err *err)
{
    struct ofd_lock_bytes b = ofd_lock_bytes_for(perm, shared);
    unsigned they_hold, they_unshare;
    pid_t pid = 0;
    int r;

    if (kind == OFD_KIND_NONE)
        return 0;
    r = take_bytes(fd, kind, b);
    if (r == -EAGAIN || r == -EACCES) {
        /* someone holds a write lock on a permission byte: not QEMU's
         * protocol, but certainly not sharing */
        unlock_all(fd, kind);
        return bd_err_set(err, EAGAIN, "%s: locked by another process; use "
                          "-U (force-share) to read without locking", name);
    }
    if (r < 0)
        goto out_unlock;
    r = find_conflicts(fd, kind, b, &they_hold, &they_unshare, &pid);
    if (r < 0)
        goto out_unlock;
    if (they_hold || they_unshare) {
        unlock_all(fd, kind);
        return conflict_error(name, b, they_hold, they_unshare, pid, err);
    }
    return 0;

out_unlock:
    unlock_all(fd, kind);
    return bd_err_set(err, -r, "%s: cannot lock the image: %s", name,
                      strerror(-r));
}

int ofd_lock_apply(int fd, const char *name, unsigned perm, unsigned shared,
                   enum bd_locking mode, enum ofd_kind *kind, struct bd_err *err)
{
    struct ofd_lock_bytes b = ofd_lock_bytes_for(perm, shared);
    int r;

    *kind = OFD_KIND_NONE;
    if (mode == BD_LOCKING_OFF)
        return 0;
    if (b.hold == 0 && b.unshare == 0) {
        /* nothing to claim and nothing to check (-U): drop what we had */
        unlock_all(fd, OFD_KIND_OFD);
        return 0;
    }
    r = pick_kind(fd, name, mode, kind, err);
    if (r < 0)
        return r;
    r = ofd_lock_apply_kind(fd, name, perm, shared, *kind, err);
    if (r < 0)
        *kind = OFD_KIND_NONE;
    return r;
}

void ofd_lock_release(int fd, enum ofd_kind kind)
{
    if (kind != OFD_KIND_NONE)
        unlock_all(fd, kind);
}

int ofd_lock_probe(int fd, unsigned *others_hold, unsigned *others_unshare)
{
    enum ofd_kind kind = OFD_KIND_OFD;
    int r;

    *others_hold = 0;
    *others_unshare = 0;
    for (unsigned i = 0; i < OFD_NPERMS; i++) {
        r = byte_taken(fd, kind, OFD_PERM_BASE + i, NULL);
        if (r == -EINVAL && kind == OFD_KIND_OFD && i == 0) {
            kind = OFD_KIND_POSIX;      /* no OFD locks on this kernel */
            r = byte_taken(fd, kind, OFD_PERM_BASE + i, NULL);
        }
        if (r < 0)
            return r;
        if (r)
            *others_hold |= 1u << i;
        r = byte_taken(fd, kind, OFD_SHARED_BASE + i, NULL);
        if (r < 0)
            return r;
        if (r)
            *others_unshare |= 1u << i;
    }
    return 0;
}
