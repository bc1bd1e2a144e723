/*
 * The permission policy: which BD_PERM_* bits a node holds and which it lets
 * others hold, from its flags (read-only, share_rw, growable, force_share)
 * and its place in the chain. locks/ofd.c applies the result as QEMU's lock
 * bytes and knows what QEMU itself takes; deciding is done here.
 *
 * A format layer with metadata (qcow2, ...) refuses to share write and
 * resize of its file; QEMU's raw layer passes its user's permissions
 * through, and only a guest device refuses to share write, so QEMU's tools
 * and exports let a second writer into a raw image.
 *
 * What imgfuse takes (bd_perms_for), the same whatever the format:
 *   use                        perm (bytes 100+)        unshared (200+)
 *   read-write                 cons.read write resize   write resize
 *   read-write, --share-rw     cons.read write          resize
 *   ... and --growable         cons.read write resize   resize
 *   read-only                  cons.read                write resize
 *   read-only, --share-rw      cons.read                resize
 *   backing file               cons.read                write resize
 *   -U (force-share)           nothing                  nothing
 * Read-write and read-only equal QEMU's qcow2 behaviour, applied to raw as
 * well, so a second writer is refused whatever the format. On raw that is a
 * guest disk's bytes plus resize, which makes no difference between two
 * writers (write already conflicts) and keeps the size we cached stable.
 * --share-rw does not claim resize unless the mount can grow: two share-rw
 * writers that each held resize and refused it to others would lock each
 * other out; so it coexists with itself and with a share-rw=on guest.
 * -U differs from QEMU on purpose: QEMU's -U still holds byte 100 and is
 * refused by a holder of byte 200; ours takes nothing and checks nothing.
 */
#include "core/bd-internal.h"

void bd_perms_for(const struct bd_flags *f, bool is_backing, unsigned *perm,
                  unsigned *shared)
{
    const unsigned keep_stable = BD_PERM_WRITE | BD_PERM_RESIZE;

    if (f->force_share) {
        *perm = 0;
        *shared = BD_PERM_ALL;
        return;
    }
    /* A backing file is read by us and must not change under us, whatever
     * the top image allows: QEMU's backing children refuse write and resize
     * too. */
    if (is_backing || f->read_only) {
        *perm = BD_PERM_CONSISTENT_READ;
        *shared = BD_PERM_ALL & ~keep_stable;
        if (!is_backing && f->share_rw)
            *shared |= BD_PERM_WRITE;
        return;
    }
    *perm = BD_PERM_CONSISTENT_READ | BD_PERM_WRITE | BD_PERM_RESIZE;
    *shared = BD_PERM_ALL & ~keep_stable;
    if (f->share_rw) {
        *shared |= BD_PERM_WRITE;
        if (!f->growable)
            *perm &= ~BD_PERM_RESIZE;
    }
}
