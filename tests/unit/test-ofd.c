/*
 * locks/ofd.c: which bytes each use takes, conflicts between two open file
 * descriptions of one file (OFD locks behave per open, so one process with
 * two fds sees what two processes would), release, probe, and the same
 * conflicts against real QEMU 7.2 processes (qemu-io, qemu-storage-daemon).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/bd-internal.h"
#include "locks/ofd.h"

extern char **environ;

#define CR  BD_PERM_CONSISTENT_READ
#define W   BD_PERM_WRITE
#define WU  BD_PERM_WRITE_UNCHANGED
#define RS  BD_PERM_RESIZE

/* ---- helpers ------------------------------------------------------------ */

static char dir[64];
static char img[128];

static void make_dir(void)
{
    strcpy(dir, "/tmp/test-ofd.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(img, sizeof(img), "%s/disk.img", dir);
    int fd = open(img, O_RDWR | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 1 << 20), 0);
    close(fd);
}

static void remove_dir(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(ofd_lock, .init = make_dir, .fini = remove_dir);
TestSuite(ofd_qemu, .init = make_dir, .fini = remove_dir, .timeout = 60);
TestSuite(ofd_posix, .init = make_dir, .fini = remove_dir, .timeout = 30);

static int open_img(void)
{
    int fd = open(img, O_RDWR);

    cr_assert_geq(fd, 0, "open %s: %s", img, strerror(errno));
    return fd;
}

static struct bd_flags flags_rw(void)
{
    return (struct bd_flags){ .locking = BD_LOCKING_ON };
}

static struct bd_flags flags_ro(void)
{
    return (struct bd_flags){ .read_only = true, .locking = BD_LOCKING_ON };
}

/* Apply the locks bd_perms_for gives for f on fd. */
static int apply(int fd, struct bd_flags f, struct bd_err *err)
{
    unsigned perm, shared;
    enum ofd_kind kind;

    bd_err_clear(err);
    bd_perms_for(&f, false, &perm, &shared);
    return ofd_lock_apply(fd, "disk.img", perm, shared, f.locking, &kind, err);
}

static void expect_bytes(struct bd_flags f, bool backing, unsigned hold,
                         unsigned unshare)
{
    unsigned perm, shared;

    bd_perms_for(&f, backing, &perm, &shared);
    struct ofd_lock_bytes b = ofd_lock_bytes_for(perm, shared);
    cr_expect_eq(b.hold, hold, "hold: got %#x, expected %#x", b.hold, hold);
    cr_expect_eq(b.unshare, unshare, "unshare: got %#x, expected %#x",
                 b.unshare, unshare);
}

/* ---- lock-byte computation ------------------------------------------------ */

Test(ofd_bytes, bytes_follow_perm_and_the_complement_of_shared)
{
    struct ofd_lock_bytes b = ofd_lock_bytes_for(CR | W, CR | WU);

    cr_expect_eq(b.hold, CR | W);
    cr_expect_eq(b.unshare, W | RS);
    b = ofd_lock_bytes_for(0, BD_PERM_ALL);
    cr_expect_eq(b.hold, 0);
    cr_expect_eq(b.unshare, 0);
    /* bits outside the four permissions never become lock bytes */
    b = ofd_lock_bytes_for(~0u, 0);
    cr_expect_eq(b.hold, BD_PERM_ALL);
    cr_expect_eq(b.unshare, BD_PERM_ALL);
}

Test(ofd_bytes, read_write_holds_read_write_resize_and_shares_neither)
{
    expect_bytes(flags_rw(), false, CR | W | RS, W | RS);
}

Test(ofd_bytes, read_write_growable_is_the_same)
{
    struct bd_flags f = flags_rw();

    f.growable = true;
    expect_bytes(f, false, CR | W | RS, W | RS);
}

Test(ofd_bytes, share_rw_shares_write_and_claims_no_resize)
{
    struct bd_flags f = flags_rw();

    f.share_rw = true;
    expect_bytes(f, false, CR | W, RS);
    f.growable = true;
    expect_bytes(f, false, CR | W | RS, RS);
}

Test(ofd_bytes, read_only_holds_read_and_shares_neither_write_nor_resize)
{
    expect_bytes(flags_ro(), false, CR, W | RS);
}

Test(ofd_bytes, read_only_share_rw_lets_a_writer_in)
{
    struct bd_flags f = flags_ro();

    f.share_rw = true;
    expect_bytes(f, false, CR, RS);
}

Test(ofd_bytes, backing_file_is_read_only_whatever_the_top)
{
    struct bd_flags f = flags_rw();

    expect_bytes(f, true, CR, W | RS);
    f.share_rw = true;
    f.growable = true;
    expect_bytes(f, true, CR, W | RS);
}

Test(ofd_bytes, force_share_takes_nothing)
{
    struct bd_flags f = flags_ro();

    f.force_share = true;
    expect_bytes(f, false, 0, 0);
    expect_bytes(f, true, 0, 0);
}

Test(ofd_names, permission_names_and_lists)
{
    char buf[80];

    cr_expect_str_eq(ofd_perm_name(0), "consistent read");
    cr_expect_str_eq(ofd_perm_name(3), "resize");
    cr_expect_str_eq(ofd_perm_list(W | RS, buf, sizeof(buf)), "write, resize");
    cr_expect_str_eq(ofd_perm_list(CR, buf, sizeof(buf)), "consistent read");
    cr_expect_str_eq(ofd_perm_list(0, buf, sizeof(buf)), "");
    cr_expect_str_eq(ofd_perm_list(BD_PERM_ALL, buf, sizeof(buf)),
                     "consistent read, write, write unchanged, resize");
    /* too small: truncated at a whole name, still terminated */
    cr_expect_str_eq(ofd_perm_list(W | RS, buf, 8), "write");
}

/* ---- two open file descriptions in one process ----------------------------- */

Test(ofd_lock, second_writer_is_refused_with_the_permissions_named)
{
    int a = open_img(), b = open_img();
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    cr_assert_eq(apply(b, flags_rw(), &err), -EAGAIN);
    cr_expect_eq(err.errnum, EAGAIN);
    cr_expect(strstr(err.msg, "disk.img: in use by another process that "
                     "holds write, resize permissions") == err.msg, "%s",
              err.msg);
    cr_expect(strstr(err.msg, "mount read-only with -r, or use -U "
                     "(force-share)") != NULL, "%s", err.msg);
    close(a);
    close(b);
}

Test(ofd_lock, reader_is_refused_while_a_writer_holds_and_vice_versa)
{
    int a = open_img(), b = open_img();
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    cr_assert_eq(apply(b, flags_ro(), &err), -EAGAIN);
    cr_expect(strstr(err.msg, "holds write, resize permissions;") != NULL,
              "%s", err.msg);
    cr_expect(strstr(err.msg, "-r") == NULL, "no -r hint for a reader: %s",
              err.msg);
    cr_expect(strstr(err.msg, "use -U (force-share)") != NULL, "%s", err.msg);
    close(a);

    /* reader first: a writer is refused because the reader shares no write */
    cr_assert_eq(apply(b, flags_ro(), &err), 0, "%s", err.msg);
    a = open_img();
    cr_assert_eq(apply(a, flags_rw(), &err), -EAGAIN);
    cr_expect(strstr(err.msg, "does not share write, resize permissions")
              != NULL, "%s", err.msg);
    close(a);
    close(b);
}

Test(ofd_lock, two_readers_coexist)
{
    int a = open_img(), b = open_img();
    struct bd_err err;

    cr_assert_eq(apply(a, flags_ro(), &err), 0, "%s", err.msg);
    cr_assert_eq(apply(b, flags_ro(), &err), 0, "%s", err.msg);
    close(a);
    close(b);
}

Test(ofd_lock, read_only_descriptors_lock_and_probe_too)
{
    int a = open(img, O_RDONLY), b = open(img, O_RDONLY), c = open_img();
    unsigned hold, unshare;
    struct bd_err err;

    cr_assert_geq(a, 0);
    cr_assert_geq(b, 0);
    cr_assert_eq(apply(a, flags_ro(), &err), 0, "%s", err.msg);
    cr_assert_eq(apply(b, flags_ro(), &err), 0, "%s", err.msg);
    cr_assert_eq(ofd_lock_probe(a, &hold, &unshare), 0);
    cr_expect_eq(hold, CR);
    cr_expect_eq(unshare, W | RS);
    cr_assert_eq(apply(c, flags_rw(), &err), -EAGAIN);
    close(a);
    close(b);
    close(c);
}

Test(ofd_lock, force_share_ignores_a_writer_and_takes_nothing)
{
    int a = open_img(), b = open_img(), c = open_img();
    struct bd_flags f = flags_ro();
    unsigned hold, unshare;
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    f.force_share = true;
    cr_assert_eq(apply(b, f, &err), 0, "%s", err.msg);
    close(a);
    /* b holds nothing, so a new writer gets in */
    cr_assert_eq(ofd_lock_probe(c, &hold, &unshare), 0);
    cr_expect_eq(hold, 0);
    cr_expect_eq(unshare, 0);
    cr_assert_eq(apply(c, flags_rw(), &err), 0, "%s", err.msg);
    close(b);
    close(c);
}

Test(ofd_lock, share_rw_writers_coexist_but_a_plain_writer_does_not)
{
    int a = open_img(), b = open_img(), c = open_img();
    struct bd_flags f = flags_rw();
    struct bd_err err;

    f.share_rw = true;
    cr_assert_eq(apply(a, f, &err), 0, "%s", err.msg);
    cr_assert_eq(apply(b, f, &err), 0, "%s", err.msg);
    cr_assert_eq(apply(c, flags_rw(), &err), -EAGAIN);
    cr_expect(strstr(err.msg, "holds write permission and does not share "
                     "resize permission;") != NULL, "%s", err.msg);
    /* a share-rw reader reads alongside them, a plain reader does not */
    cr_assert_eq(apply(c, flags_ro(), &err), -EAGAIN);
    f = flags_ro();
    f.share_rw = true;
    cr_assert_eq(apply(c, f, &err), 0, "%s", err.msg);
    close(a);
    close(b);
    close(c);
}

Test(ofd_lock, locking_off_takes_and_checks_nothing)
{
    int a = open_img(), b = open_img(), c = open_img();
    unsigned hold, unshare;
    enum ofd_kind kind = OFD_KIND_OFD;
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    bd_err_clear(&err);
    cr_assert_eq(ofd_lock_apply(b, "disk.img", CR | W | RS, CR | WU,
                                BD_LOCKING_OFF, &kind, &err), 0);
    cr_expect_eq(kind, OFD_KIND_NONE);
    close(a);
    cr_assert_eq(ofd_lock_probe(c, &hold, &unshare), 0);
    cr_expect_eq(hold, 0);
    cr_expect_eq(unshare, 0);
    close(b);
    close(c);
}

Test(ofd_lock, auto_mode_uses_ofd_locks_on_linux)
{
    int a = open_img(), b = open_img();
    enum ofd_kind kind = OFD_KIND_NONE;
    struct bd_err err;

    bd_err_clear(&err);
    cr_assert_eq(ofd_lock_apply(a, "disk.img", CR | W | RS, CR | WU,
                                BD_LOCKING_AUTO, &kind, &err), 0, "%s", err.msg);
    cr_expect_eq(kind, OFD_KIND_OFD);
    cr_assert_eq(apply(b, flags_rw(), &err), -EAGAIN);
    close(a);
    close(b);
}

Test(ofd_lock, probe_sees_exactly_the_other_holders_bytes)
{
    int a = open_img(), b = open_img(), c = open_img();
    unsigned hold, unshare;
    struct bd_flags f = flags_rw();
    struct bd_err err;

    cr_assert_eq(ofd_lock_probe(c, &hold, &unshare), 0);
    cr_expect_eq(hold, 0);
    cr_expect_eq(unshare, 0);

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    cr_assert_eq(ofd_lock_probe(c, &hold, &unshare), 0);
    cr_expect_eq(hold, CR | W | RS);
    cr_expect_eq(unshare, W | RS);
    /* the holder does not see itself */
    cr_assert_eq(ofd_lock_probe(a, &hold, &unshare), 0);
    cr_expect_eq(hold, 0);
    cr_expect_eq(unshare, 0);

    f.share_rw = true;
    cr_assert_eq(apply(b, flags_ro(), &err), -EAGAIN);
    close(a);
    cr_assert_eq(apply(b, f, &err), 0, "%s", err.msg);
    cr_assert_eq(ofd_lock_probe(c, &hold, &unshare), 0);
    cr_expect_eq(hold, CR | W);
    cr_expect_eq(unshare, RS);
    close(b);
    close(c);
}

Test(ofd_lock, refused_apply_leaves_no_bytes_behind)
{
    int a = open_img(), b = open_img(), c = open_img();
    unsigned hold, unshare;
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    cr_assert_eq(apply(b, flags_rw(), &err), -EAGAIN);
    close(a);
    cr_assert_eq(ofd_lock_probe(c, &hold, &unshare), 0);
    cr_expect_eq(hold, 0, "b kept %#x", hold);
    cr_expect_eq(unshare, 0, "b kept %#x", unshare);
    close(b);
    close(c);
}

Test(ofd_lock, release_and_close_let_the_next_writer_in)
{
    int a = open_img(), b = open_img();
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    ofd_lock_release(a, OFD_KIND_OFD);
    cr_assert_eq(apply(b, flags_rw(), &err), 0, "%s", err.msg);
    close(b);                           /* close releases too */
    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    close(a);
}

Test(ofd_lock, apply_again_changes_the_bytes)
{
    int a = open_img(), b = open_img();
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    cr_assert_eq(apply(b, flags_ro(), &err), -EAGAIN);
    cr_assert_eq(apply(a, flags_ro(), &err), 0, "%s", err.msg);  /* downgrade */
    cr_assert_eq(apply(b, flags_ro(), &err), 0, "%s", err.msg);
    cr_assert_eq(apply(a, flags_rw(), &err), -EAGAIN);           /* upgrade */
    close(a);
    close(b);
}

Test(ofd_lock, a_foreign_write_lock_is_a_conflict)
{
    int a = open_img(), b = open_img();
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                        .l_start = 100, .l_len = 1 };
    struct bd_err err;

    cr_assert_eq(fcntl(a, F_OFD_SETLK, &fl), 0);
    cr_assert_eq(apply(b, flags_ro(), &err), -EAGAIN);
    cr_expect(strstr(err.msg, "disk.img: ") == err.msg, "%s", err.msg);
    close(a);
    close(b);
}

/* ---- the POSIX fallback ------------------------------------------------------ */

/*
 * A child process that takes (perm, shared) with `kind` on its own open of
 * the image, reports the result through a pipe, and holds until *release is
 * closed. Returns the child's pid; *result is its ofd_lock_apply_kind().
 */
static pid_t child_locks(unsigned perm, unsigned shared, enum ofd_kind kind,
                         int *release, int *result)
{
    int up[2], down[2];

    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(down), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct bd_err err;
        int fd = open(img, O_RDWR);
        char c;

        bd_err_clear(&err);
        int r = fd < 0 ? -errno : ofd_lock_apply_kind(fd, "disk.img", perm,
                                                      shared, kind, &err);
        close(up[0]);
        close(down[1]);
        if (write(up[1], &r, sizeof(r)) != sizeof(r))
            _exit(1);
        while (read(down[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    cr_assert_eq(read(up[0], result, sizeof(*result)), sizeof(*result));
    close(up[0]);
    *release = down[1];
    return pid;
}

static void child_done(pid_t pid, int release)
{
    int status;

    close(release);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
}

Test(ofd_posix, posix_locks_conflict_across_processes_and_name_the_pid)
{
    int a = open_img(), release, result;
    struct bd_err err;
    char want[64];

    pid_t pid = child_locks(CR | W | RS, CR | WU, OFD_KIND_POSIX, &release,
                            &result);
    cr_assert_eq(result, 0);
    bd_err_clear(&err);
    cr_assert_eq(ofd_lock_apply_kind(a, "disk.img", CR, CR | WU,
                                     OFD_KIND_POSIX, &err), -EAGAIN);
    snprintf(want, sizeof(want), "process (pid %ld) that holds", (long)pid);
    cr_expect(strstr(err.msg, want) != NULL, "%s", err.msg);
    child_done(pid, release);
    bd_err_clear(&err);
    cr_assert_eq(ofd_lock_apply_kind(a, "disk.img", CR, CR | WU,
                                     OFD_KIND_POSIX, &err), 0, "%s", err.msg);
    close(a);
}

Test(ofd_posix, posix_and_ofd_holders_see_each_other)
{
    int a = open_img(), release, result;
    struct bd_err err;

    pid_t pid = child_locks(CR | W | RS, CR | WU, OFD_KIND_POSIX, &release,
                            &result);
    cr_assert_eq(result, 0);
    cr_assert_eq(apply(a, flags_rw(), &err), -EAGAIN);      /* OFD */
    child_done(pid, release);

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    pid = child_locks(CR, CR | WU, OFD_KIND_POSIX, &release, &result);
    cr_expect_eq(result, -EAGAIN);
    child_done(pid, release);
    close(a);
}

Test(ofd_posix, posix_release_drops_every_byte)
{
    int a = open_img(), release, result;
    struct bd_err err;

    bd_err_clear(&err);
    cr_assert_eq(ofd_lock_apply_kind(a, "disk.img", CR | W | RS, CR | WU,
                                     OFD_KIND_POSIX, &err), 0, "%s", err.msg);
    ofd_lock_release(a, OFD_KIND_POSIX);
    pid_t pid = child_locks(CR | W | RS, CR | WU, OFD_KIND_POSIX, &release,
                            &result);
    cr_expect_eq(result, 0);
    child_done(pid, release);
    close(a);
}

Test(ofd_posix, kind_none_takes_nothing)
{
    int a = open_img(), c = open_img();
    unsigned hold, unshare;
    struct bd_err err;

    bd_err_clear(&err);
    cr_assert_eq(ofd_lock_apply_kind(a, "disk.img", CR | W | RS, CR | WU,
                                     OFD_KIND_NONE, &err), 0);
    cr_assert_eq(ofd_lock_probe(c, &hold, &unshare), 0);
    cr_expect_eq(hold, 0);
    cr_expect_eq(unshare, 0);
    close(a);
    close(c);
}

/* ---- against real QEMU ------------------------------------------------------ */

/* Run argv with stdout+stderr in a file; return its exit status. */
static int run(char *const argv[], char *out, size_t out_size)
{
    char log[160];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;

    snprintf(log, sizeof(log), "%s/run.log", dir);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    cr_assert_eq(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0,
                 "cannot run %s", argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(waitpid(pid, &status, 0), pid);

    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, out_size - 1, f);
    out[n] = '\0';
    fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* qemu-io exits 0 even when the open fails, so judge by its output too. */
static bool qemu_io_ok(const char *mode, const char *fmt, const char *cmd,
                       char *out, size_t out_size)
{
    char *argv[] = { "qemu-io", (char *)mode, "-f", (char *)fmt, "-c",
                     (char *)cmd, img, NULL };
    char *argv_rw[] = { "qemu-io", "-f", (char *)fmt, "-c", (char *)cmd, img,
                        NULL };
    int rc = run(mode ? argv : argv_rw, out, out_size);

    return rc == 0 && strstr(out, "can't open") == NULL &&
           strstr(out, "Failed to get") == NULL;
}

static pid_t spawn_bg(char *const argv[])
{
    pid_t pid;
    posix_spawn_file_actions_t fa;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    cr_assert_eq(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0,
                 "cannot run %s", argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static void stop_bg(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
}

/* Wait (up to 10 s) until another process holds at least `want`. */
static void wait_for_holder(unsigned want)
{
    int fd = open_img();
    unsigned hold = 0, unshare;

    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(ofd_lock_probe(fd, &hold, &unshare), 0);
        if ((hold & want) == want)
            break;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    close(fd);
    cr_assert_eq(hold & want, want, "qemu did not take its locks (%#x)", hold);
}

Test(ofd_qemu, our_writer_refuses_qemu_io_writer_and_lets_a_raw_reader_in)
{
    int a = open_img();
    char out[4096];
    struct bd_err err;

    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    cr_expect_not(qemu_io_ok(NULL, "raw", "write 0 512", out, sizeof(out)),
                  "qemu-io wrote while we hold the image: %s", out);
    cr_expect(strstr(out, "Failed to get \"write\" lock") != NULL, "%s", out);
    /* QEMU's raw reader takes only byte 100 and checks only byte 200: it
     * shares write, so QEMU lets it read next to our writer */
    cr_expect(qemu_io_ok("-r", "raw", "read 0 512", out, sizeof(out)),
              "%s", out);
    close(a);
    cr_expect(qemu_io_ok(NULL, "raw", "write 0 512", out, sizeof(out)),
              "qemu-io refused after release: %s", out);
}

Test(ofd_qemu, our_writer_refuses_a_qcow2_reader)
{
    char out[4096];
    char *create[] = { "qemu-img", "create", "-f", "qcow2", img, "1M", NULL };
    struct bd_err err;

    unlink(img);
    cr_assert_eq(run(create, out, sizeof(out)), 0, "%s", out);
    int a = open_img();
    cr_assert_eq(apply(a, flags_rw(), &err), 0, "%s", err.msg);
    /* a qcow2 reader refuses to share write: the format layer does that */
    cr_expect_not(qemu_io_ok("-r", "qcow2", "read 0 512", out, sizeof(out)),
                  "%s", out);
    cr_expect(strstr(out, "Failed to get shared \"write\" lock") != NULL,
              "%s", out);
    close(a);
    cr_expect(qemu_io_ok("-r", "qcow2", "read 0 512", out, sizeof(out)),
              "%s", out);
}

Test(ofd_qemu, our_reader_refuses_qemu_io_writer_but_not_reader)
{
    int a = open_img();
    char out[4096];
    struct bd_err err;

    cr_assert_eq(apply(a, flags_ro(), &err), 0, "%s", err.msg);
    cr_expect_not(qemu_io_ok(NULL, "raw", "write 0 512", out, sizeof(out)),
                  "%s", out);
    cr_expect(strstr(out, "Failed to get \"write\" lock") != NULL, "%s", out);
    cr_expect(qemu_io_ok("-r", "raw", "read 0 512", out, sizeof(out)),
              "%s", out);
    close(a);
}

Test(ofd_qemu, force_share_lets_qemu_io_write)
{
    int a = open_img();
    struct bd_flags f = flags_ro();
    char out[4096];
    struct bd_err err;

    f.force_share = true;
    cr_assert_eq(apply(a, f, &err), 0, "%s", err.msg);
    cr_expect(qemu_io_ok(NULL, "raw", "write 0 512", out, sizeof(out)),
              "%s", out);
    close(a);
}

Test(ofd_qemu, qemu_io_writer_refuses_us)
{
    char *argv[] = { "qemu-io", "-f", "raw", "-c", "sleep 20000", img, NULL };
    pid_t q = spawn_bg(argv);
    struct bd_flags f = flags_ro();
    struct bd_err err;

    wait_for_holder(CR | W);
    int a = open_img();
    cr_expect_eq(apply(a, flags_rw(), &err), -EAGAIN);
    cr_expect(strstr(err.msg, "disk.img: in use by another process that "
                     "holds write permission; mount read-only with -r")
              == err.msg, "%s", err.msg);
    cr_expect_eq(apply(a, flags_ro(), &err), -EAGAIN);
    f.share_rw = true;
    cr_expect_eq(apply(a, f, &err), 0, "%s", err.msg);
    f.share_rw = false;
    f.force_share = true;
    cr_expect_eq(apply(a, f, &err), 0, "%s", err.msg);
    close(a);
    stop_bg(q);
}

Test(ofd_qemu, storage_daemon_fuse_export_refuses_us)
{
    char mnt[160], blockdev[256], export[256];
    struct bd_flags f = flags_ro();
    struct bd_err err;

    cr_assert_eq(access("/dev/fuse", R_OK | W_OK), 0, "needs /dev/fuse");
    snprintf(mnt, sizeof(mnt), "%s/export", dir);
    close(open(mnt, O_WRONLY | O_CREAT, 0644));
    snprintf(blockdev, sizeof(blockdev),
             "driver=file,node-name=f,filename=%s", img);
    snprintf(export, sizeof(export),
             "type=fuse,id=e,node-name=f,mountpoint=%s,writable=on", mnt);
    char *argv[] = { "qemu-storage-daemon", "--blockdev", blockdev,
                     "--export", export, NULL };
    pid_t q = spawn_bg(argv);

    /* the writable FUSE export holds consistent read, write and resize */
    wait_for_holder(CR | W | RS);
    int a = open_img();
    cr_expect_eq(apply(a, flags_rw(), &err), -EAGAIN);
    cr_expect(strstr(err.msg, "disk.img: in use by another process that "
                     "holds write, resize permissions; mount read-only with "
                     "-r, or use -U (force-share) to read without locking")
              == err.msg, "%s", err.msg);
    cr_expect_eq(apply(a, f, &err), -EAGAIN);
    f.force_share = true;
    cr_expect_eq(apply(a, f, &err), 0, "%s", err.msg);
    close(a);
    stop_bg(q);
}

Test(ofd_qemu, posix_fallback_locks_are_seen_by_qemu_and_see_qemu)
{
    int a = open_img();
    char out[4096];
    struct bd_err err;

    bd_err_clear(&err);
    cr_assert_eq(ofd_lock_apply_kind(a, "disk.img", CR | W | RS, CR | WU,
                                     OFD_KIND_POSIX, &err), 0, "%s", err.msg);
    cr_expect_not(qemu_io_ok(NULL, "raw", "write 0 512", out, sizeof(out)),
                  "%s", out);
    cr_expect(strstr(out, "Failed to get \"write\" lock") != NULL, "%s", out);
    cr_expect(qemu_io_ok("-r", "raw", "read 0 512", out, sizeof(out)),
              "%s", out);
    ofd_lock_release(a, OFD_KIND_POSIX);

    char *argv[] = { "qemu-io", "-f", "raw", "-c", "sleep 20000", img, NULL };
    pid_t q = spawn_bg(argv);
    wait_for_holder(CR | W);
    bd_err_clear(&err);
    cr_expect_eq(ofd_lock_apply_kind(a, "disk.img", CR, CR | WU,
                                     OFD_KIND_POSIX, &err), -EAGAIN);
    cr_expect(strstr(err.msg, "holds write permission") != NULL, "%s",
              err.msg);
    close(a);
    stop_bg(q);
}
