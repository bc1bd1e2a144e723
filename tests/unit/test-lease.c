/*
 * locks/lease.c and lockd.c: the spec, the lease names (libvirt's SHA-256
 * of the path, checked against known digests), and lockd's locks as
 * another process sees them (POSIX locks never conflict within one).
 */
#define TMPDIR_PREFIX "test-lease"
#include "tmpdir.h"
#include "locks/lease.h"
#include "locks/lease-internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(lease, .init = tmpdir_setup, .fini = tmpdir_teardown);

static struct bd_err err;

static int check(const char *spec)
{
    bd_err_clear(&err);
    return lease_spec_check(spec, &err);
}

Test(lease, specs_are_checked)
{
    cr_assert_eq(check("none"), 0);
    cr_assert_eq(check("lockd"), 0);
    cr_assert_eq(check("lockd,dir=/x"), 0);
    cr_assert_eq(check("lockd,dir=direct"), 0);
    cr_assert_eq(check("lockdd"), -EINVAL);
    cr_assert(strstr(err.msg, "use none, lockd or sanlock"), "%s", err.msg);
    cr_assert_eq(check("lockd,host_id=1"), -EINVAL);
    cr_assert(strstr(err.msg, "unknown option 'host_id' for lockd"), "%s", err.msg);
    cr_assert_eq(check("lockd,dir"), -EINVAL);
    cr_assert_eq(check("none,dir=/x"), -EINVAL);
    cr_assert_eq(check("sanlock,lockspace=/l"), -EINVAL);
    cr_assert(strstr(err.msg, "host_id=N"), "%s", err.msg);
    cr_assert_eq(check("sanlock,lockspace=/l,host_id=2001"), -EINVAL);
    cr_assert_eq(check("sanlock,lockspace=/l:100,host_id=1"), -EINVAL);
    cr_assert(strstr(err.msg, "multiple of 512"), "%s", err.msg);
    cr_assert_eq(check("sanlock,lockspace=/l,host_id=1,name=0123456789"
                                  "0123456789012345678901234567890123456789"),
                 -EINVAL);
    cr_assert(lease_spec_is_none(NULL) && lease_spec_is_none("none"));
    cr_assert(!lease_spec_is_none("lockd") && !lease_spec_is_none("nonesuch"));
}

Test(lease, sanlock_spec_parts)
{
    struct lease_conf c;
    cr_assert_eq(lease_conf_parse("sanlock,lockspace=/s/ls:1048576,host_id=7,"
                                  "io_timeout=3", &c, false, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.lockspace, "/s/ls");
    cr_assert_eq(c.ls_offset, 1048576);
    cr_assert_eq(c.host_id, 7);
    cr_assert_eq(c.io_timeout, 3);
    cr_assert_str_eq(c.dir, "/s");             /* leases beside the lockspace */
    cr_assert_str_eq(c.ls_name, "__LIBVIRT__DISKS__");
    /* lease init needs no host id */
    cr_assert_eq(lease_conf_parse("sanlock,lockspace=/s/ls", &c, true, &err), 0);
}

Test(lease, names_are_libvirts)
{
    char h[65], m[33];
    /* the FIPS 180-2 / RFC 1321 test vectors for "abc" */
    lease_sha256_hex("abc", h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    lease_md5_hex("abc", m);
    cr_assert_str_eq(m, "900150983cd24fb0d6963f7d28e17f72");
    char abs[PATH_MAX], cwd[PATH_MAX];
    cr_assert(getcwd(cwd, sizeof(cwd)));
    cr_assert_eq(lease_abs_path("x//./y.img", abs, sizeof(abs)), 0);
    char want[PATH_MAX + 16];
    snprintf(want, sizeof(want), "%s/x//./y.img", cwd);
    cr_assert_str_eq(abs, want);            /* nothing cleaned up */
}

/* In a child: 0 if a lock of type on byte 0 of path could be taken. */
static int child_can_lock(const char *path, short type)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_RDWR);
        struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_len = 1 };
        _exit(fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    return WEXITSTATUS(st);
}

Test(lease, lockd_exclusive_then_shared_then_released)
{
    bd_err_clear(&err);
    char spec[512], img[300], lpath[600], h[65];
    snprintf(spec, sizeof(spec), "lockd,dir=%s/ls/sub", tmpdir);
    snprintf(img, sizeof(img), "%s/disk.img", tmpdir);
    close(open(img, O_RDWR | O_CREAT, 0600));
    lease_sha256_hex(img, h);
    snprintf(lpath, sizeof(lpath), "%s/ls/sub/%s", tmpdir, h);

    struct lease *l = NULL;
    cr_assert_eq(lease_acquire(spec, img, -1, LEASE_EXCLUSIVE, &l, &err), 0, "%s", err.msg);
    struct stat st;
    cr_assert_eq(stat(lpath, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, 0);
    cr_assert_eq(stat(tmp("ls/sub"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    cr_assert_eq(child_can_lock(lpath, F_RDLCK), 1);
    lease_release(l);
    cr_assert_eq(access(lpath, F_OK), -1);  /* deleted, as virtlockd does */

    cr_assert_eq(lease_acquire(spec, img, -1, LEASE_SHARED, &l, &err), 0, "%s", err.msg);
    cr_assert_eq(child_can_lock(lpath, F_RDLCK), 0);
    cr_assert_eq(child_can_lock(lpath, F_WRLCK), 1);
    /* the same image leased again in this process: one file, counted */
    struct lease *l2 = NULL;
    cr_assert_eq(lease_acquire(spec, img, -1, LEASE_SHARED, &l2, &err), 0);
    lease_release(l2);
    cr_assert_eq(child_can_lock(lpath, F_WRLCK), 1);
    lease_release(l);
    cr_assert_eq(access(lpath, F_OK), -1);
}

Test(lease, lockd_refusal_names_the_holder)
{
    bd_err_clear(&err);
    char spec[512], img[300], lpath[600], h[65];
    snprintf(spec, sizeof(spec), "lockd,dir=%s", tmpdir);
    snprintf(img, sizeof(img), "%s/disk.img", tmpdir);
    lease_sha256_hex(img, h);
    snprintf(lpath, sizeof(lpath), "%s/%s", tmpdir, h);
    int go[2], ready[2];
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(lpath, O_RDWR | O_CREAT, 0600);
        struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_len = 1 };
        char c = fcntl(fd, F_SETLK, &fl) == 0;
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(c, 1);
    struct lease *l = NULL;
    cr_assert_eq(lease_acquire(spec, img, -1, LEASE_EXCLUSIVE, &l, &err), -EAGAIN);
    char want[64];
    snprintf(want, sizeof(want), "held shared by pid %d", (int)pid);
    cr_assert(strstr(err.msg, want), "%s", err.msg);
    cr_assert(strstr(err.msg, lpath), "%s", err.msg);
    cr_assert_null(l);
    cr_assert_eq(lease_acquire(spec, img, -1, LEASE_SHARED, &l, &err), 0, "%s", err.msg);
    lease_release(l);
    cr_assert_eq(access(lpath, F_OK), 0);   /* the other holder keeps it */
    cr_assert_eq(write(go[1], "x", 1), 1);
    waitpid(pid, NULL, 0);
}
