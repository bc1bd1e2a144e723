/* core/secret*.c: --object secret specs, the store, and --key-prompt. */
#define TMPDIR_PREFIX "test-secret"
#include "tmpdir.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void teardown(void)
{
    bd_secret_wipe_all();
    tmpdir_teardown();
}

TestSuite(secret, .init = tmpdir_setup, .fini = teardown);

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Define spec, then check secret id holds exactly want[0..len). */
static void expect_secret(const char *spec, const char *id, const void *want,
                          size_t len)
{
    struct bd_err err = { 0 };
    const uint8_t *d;
    size_t l;
    cr_assert_eq(bd_secret_object(spec, &err), 0, "%s: %s", spec, err.msg);
    cr_assert_eq(bd_secret_get(id, "t", &d, &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l, len, "%s: length %zu, want %zu", spec, l, len);
    cr_assert_eq(memcmp(d, want, len), 0, "%s: wrong bytes", spec);
    cr_assert_eq(d[l], 0, "not NUL-terminated");
}

static void expect_refused(const char *spec, const char *msg_part)
{
    struct bd_err err = { 0 };
    cr_assert_lt(bd_secret_object(spec, &err), 0, "%s accepted", spec);
    cr_assert(strstr(err.msg, msg_part), "%s: message '%s' lacks '%s'", spec,
              err.msg, msg_part);
}

Test(secret, raw_data_and_escaped_commas)
{
    expect_secret("secret,id=s1,data=letmein", "s1", "letmein", 7);
    expect_secret("secret,id=s2,data=a,,b,,,,c,format=raw", "s2", "a,b,,c", 6);
    expect_secret("qom-type=secret,data=x,id=s3", "s3", "x", 1);
}

Test(secret, base64_data)
{
    expect_secret("secret,id=b1,data=bGV0bWVpbg==,format=base64", "b1",
                  "letmein", 7);
    expect_secret("secret,id=b2,data=AP8Q,format=base64", "b2", "\x00\xff\x10", 3);
    expect_secret("secret,id=b3,format=base64,data=YWI", "b3", "ab", 2);
    expect_refused("secret,id=b4,data=bGV0*WVpbg==,format=base64", "not valid base64");
    expect_refused("secret,id=b5,data=a,format=base64", "not valid base64");
    expect_refused("secret,id=b6,data=YQ==YQ==,format=base64", "not valid base64");
}

Test(secret, file_content_is_used_as_is)
{
    /* QEMU keeps a trailing newline: so do we */
    write_file(tmp("k1"), "pass\n", 5);
    char spec[512];
    snprintf(spec, sizeof(spec), "secret,id=f1,file=%s", tmp("k1"));
    expect_secret(spec, "f1", "pass\n", 5);
    write_file(tmp("k2"), "a\0b", 3);
    snprintf(spec, sizeof(spec), "secret,id=f2,file=%s,format=raw", tmp("k2"));
    expect_secret(spec, "f2", "a\0b", 3);
    write_file(tmp("k3"), "cGFzcw==\n", 9);
    snprintf(spec, sizeof(spec), "secret,id=f3,file=%s,format=base64", tmp("k3"));
    expect_secret(spec, "f3", "pass", 4);
    snprintf(spec, sizeof(spec), "secret,id=f4,file=%s", tmp("missing"));
    expect_refused(spec, "missing");
    snprintf(spec, sizeof(spec), "secret,id=f5,file=%s", tmpdir);
    expect_refused(spec, "not a regular file");
}

Test(secret, bad_specs_are_explained)
{
    expect_refused("secret,data=x", "id=ID");
    expect_refused("secret,id=a,data=x,file=/etc/hostname", "exactly one");
    expect_refused("secret,id=a", "exactly one");
    expect_refused("secret,id=a,data=x,format=hex", "format=raw or format=base64");
    expect_refused("secret,id=1a,data=x", "an id starts with a letter");
    expect_refused("secret,id=a,fiel=/x", "did you mean 'file'");
    expect_refused("iothread,id=a", "only secret objects");
    expect_refused("secret,id=a,data=x,keyid=m,iv=y", "not supported");
    expect_refused("secret,id=a,id=b,file=/x", "twice");
    struct bd_err err = { 0 };
    cr_assert_eq(bd_secret_object("secret,id=dup,data=x", &err), 0, "%s", err.msg);
    expect_refused("secret,id=dup,data=y", "defined twice");
}

Test(secret, errors_never_show_the_secret)
{
    const char *specs[] = {
        "secret,id=a,data=hunter2,hunter3",
        "secret,id=a,data=hunter2,hunter3=1",
        "secret,id=a,data=hunt*er2,format=base64",
        "hunter2,data=hunter2",
        "secret,data=hunter2",
    };
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        struct bd_err err = { 0 };
        cr_assert_lt(bd_secret_object(specs[i], &err), 0, "%s", specs[i]);
        cr_assert_null(strstr(err.msg, "hunter"), "leaks: %s", err.msg);
    }
}

Test(secret, unknown_id_names_the_option_to_use)
{
    struct bd_err err = { 0 };
    const uint8_t *d;
    size_t l;
    cr_assert_lt(bd_secret_get("nope", "disk.luks: key-secret=nope", &d, &l,
                               &err), 0);
    cr_assert(strstr(err.msg, "--object secret,id=nope"), "%s", err.msg);
}

Test(secret, prompt_refused_without_key_prompt)
{
    struct bd_err err = { 0 };
    const uint8_t *d;
    size_t l;
    bd_secret_allow_prompt(false);
    cr_assert_lt(bd_secret_prompt("disk.luks", "key-secret", &d, &l, &err), 0);
    cr_assert(strstr(err.msg, "key-secret=ID"), "%s", err.msg);
    cr_assert(strstr(err.msg, "--key-prompt"), "%s", err.msg);
}

Test(secret, prompt_without_a_terminal_names_the_option)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct bd_err err = { 0 };
        const uint8_t *d;
        size_t l;
        setsid();               /* no controlling terminal any more */
        bd_secret_allow_prompt(true);
        int r = bd_secret_prompt("disk.luks", "key-secret", &d, &l, &err);
        _exit(r < 0 && strstr(err.msg, "no terminal") &&
              strstr(err.msg, "key-secret=ID") ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Read from fd until `want` shows up (or 5 s); what was read into buf. */
static bool read_until(int fd, char *buf, size_t size, const char *want)
{
    size_t n = 0;
    for (int i = 0; i < 500 && !strstr(buf, want); i++) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r > 0) {
            n += (size_t)r;
            buf[n] = 0;
        } else {
            usleep(10000);
        }
    }
    return strstr(buf, want) != NULL;
}

Test(secret, prompt_on_a_terminal_without_echo)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(master, 0);
    cr_assert_eq(grantpt(master), 0);
    cr_assert_eq(unlockpt(master), 0);
    const char *slave = ptsname(master);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct bd_err err = { 0 };
        const uint8_t *d;
        size_t l;
        setsid();
        int s = open(slave, O_RDWR);    /* becomes the controlling tty */
        if (s < 0)
            _exit(2);
        bd_secret_allow_prompt(true);
        int r = bd_secret_prompt("disk.luks", "key-secret", &d, &l, &err);
        if (r < 0)
            _exit(3);
        struct termios t;
        tcgetattr(s, &t);
        if (!(t.c_lflag & ECHO))        /* echo is back on */
            _exit(4);
        (void)!write(pfd[1], d, l);
        _exit(0);
    }
    close(pfd[1]);
    fcntl(master, F_SETFL, O_NONBLOCK);
    char out[4096] = "";
    cr_assert(read_until(master, out, sizeof(out), "Passphrase for disk.luks: "),
              "no prompt: '%s'", out);
    cr_assert_eq(write(master, "s3cr3t pass\n", 12), 12);
    char got[64] = "";
    ssize_t n = read(pfd[0], got, sizeof(got) - 1);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    cr_assert_eq(n, 11);
    cr_assert_str_eq(got, "s3cr3t pass");
    usleep(20000);
    (void)read_until(master, out, sizeof(out), "\n");
    cr_assert_null(strstr(out, "s3cr3t"), "the passphrase was echoed: '%s'", out);
    close(master);
}
