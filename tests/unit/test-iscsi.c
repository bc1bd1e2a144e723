/*
 * Unit tests of the iscsi driver's settings: URL parsing, the config file
 * with [iscsi] and [iscsi "IQN"] sections, where credentials come from, and
 * that no message shows a password; then, against a tgtd started here on
 * loopback, I/O, WRITE SAME/UNMAP, GET LBA STATUS and the session pool.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "drivers/protocol/iscsi/iscsi.h"
#include "core/graph.h"

static struct iscsit t;
static struct iscsi_conf c;
static struct iscsi_file_conf fc;
static struct bd_err err;

static void reset(void)
{
    iscsit_free(&t);
    iscsi_conf_free(&c);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
}

static int parse(const char *s)
{
    reset();
    return iscsit_parse(s, &t, &err);
}

static int resolve(char *const *env)
{
    iscsi_conf_free(&c);
    return iscsi_conf_resolve(&t, env, &c, &err);
}

#define V(k) (t.v[k] ? t.v[k] : "(null)")

TestSuite(iscsi_url, .fini = reset);

Test(iscsi_url, host_target_and_lun)
{
    cr_assert_eq(parse("iscsi://127.0.0.1/iqn.2024-01.test:disk1/1"), 0);
    cr_assert_str_eq(V(ISCSIT_PORTAL), "127.0.0.1");
    cr_assert_str_eq(V(ISCSIT_TARGET), "iqn.2024-01.test:disk1");
    cr_assert_str_eq(V(ISCSIT_LUN), "1");
    cr_assert_null(t.v[ISCSIT_USER]);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.portal, "127.0.0.1:3260");
    cr_assert_eq(c.lun, 1);
    cr_assert_eq(c.digest, ISCSI_DIGEST_NONE_CRC32C);
    cr_assert(strncmp(c.initiator, "iqn.2008-11.org.linux-kvm:", 26) == 0,
              "%s", c.initiator);
}

Test(iscsi_url, user_password_and_port)
{
    cr_assert_eq(parse("iscsi://bob%s3cret-pass@host.example:3261/iqn.x:y/0"), 0);
    cr_assert_str_eq(V(ISCSIT_USER), "bob");
    cr_assert_str_eq(V(ISCSIT_PASSWORD), "s3cret-pass");
    cr_assert_str_eq(V(ISCSIT_PORTAL), "host.example:3261");
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.host, "host.example");
    cr_assert_str_eq(c.port, "3261");
    char *d = iscsi_conf_display(&c);
    cr_assert_str_eq(d, "iscsi://bob@host.example:3261/iqn.x:y/0");
    free(d);
}

Test(iscsi_url, ipv6_portal_keeps_brackets)
{
    cr_assert_eq(parse("iscsi://[::1]:3262/iqn.x:y/2"), 0);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.host, "::1");
    cr_assert_str_eq(c.portal, "[::1]:3262");
}

Test(iscsi_url, query_gives_digest_and_mutual_chap)
{
    cr_assert_eq(parse("iscsi://u%pw123456789012@h/iqn.x:y/1?header_digest=crc32c"
                       "&target_user=out&target_password=outsecret1234"), 0);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_eq(c.digest, ISCSI_DIGEST_CRC32C);
    cr_assert_str_eq(c.target_user, "out");
    cr_assert_str_eq(c.target_password, "outsecret1234");
}

Test(iscsi_url, malformed_urls_are_refused)
{
    const char *bad[] = {
        "nbd://h/x/1", "iscsi://", "iscsi://h", "iscsi://h/", "iscsi://h/iqn",
        "iscsi://h/iqn/", "iscsi://@h/iqn/1", "iscsi:///iqn/1",
        "iscsi://h/iqn/1?bogus=1", "iscsi://h/iqn/1?header_digest",
        "iscsi://[::1/iqn/1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(bad[i]);
        if (r == 0)
            r = resolve(NULL);
        cr_assert_lt(r, 0, "'%s' was accepted", bad[i]);
        cr_assert_neq(err.msg[0], '\0', "'%s': no message", bad[i]);
    }
}

Test(iscsi_url, bad_lun_port_and_digest_values)
{
    const char *bad[] = {
        "iscsi://h/iqn/x", "iscsi://h/iqn/-1", "iscsi://h/iqn/99999",
        "iscsi://h:0/iqn/1", "iscsi://h:70000/iqn/1", "iscsi://h:x/iqn/1",
        "iscsi://h/iqn/1?header_digest=md5", "iscsi://a:b:c/iqn/1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(parse(bad[i]), 0, "%s: %s", bad[i], err.msg);
        cr_assert_eq(resolve(NULL), -EINVAL, "'%s' was accepted", bad[i]);
    }
}

Test(iscsi_url, every_digest_spelling)
{
    const char *in[] = {"CRC32C", "crc32c", "CRC32C-NONE", "crc32c_none",
                        "NONE-CRC32C", "none_crc32c", "NONE", "none"};
    enum iscsi_digest out[] = {ISCSI_DIGEST_CRC32C, ISCSI_DIGEST_CRC32C,
                               ISCSI_DIGEST_CRC32C_NONE, ISCSI_DIGEST_CRC32C_NONE,
                               ISCSI_DIGEST_NONE_CRC32C, ISCSI_DIGEST_NONE_CRC32C,
                               ISCSI_DIGEST_NONE, ISCSI_DIGEST_NONE};
    for (size_t i = 0; i < 8; i++) {
        parse("iscsi://h/iqn/1");
        iscsit_set(&t, ISCSIT_DIGEST, in[i]);
        cr_assert_eq(resolve(NULL), 0, "%s: %s", in[i], err.msg);
        cr_assert_eq(c.digest, out[i], "%s", in[i]);
    }
}

TestSuite(iscsi_creds, .fini = reset);

Test(iscsi_creds, environment_fills_user_and_password)
{
    char *env[] = {"LIBISCSI_CHAP_USERNAME=envuser",
                   "LIBISCSI_CHAP_PASSWORD=envsecret123", NULL};
    parse("iscsi://h/iqn/1");
    cr_assert_eq(resolve(env), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "envuser");
    cr_assert_str_eq(c.password, "envsecret123");
}

Test(iscsi_creds, url_user_takes_password_from_environment)
{
    char *env[] = {"LIBISCSI_CHAP_USERNAME=other",
                   "LIBISCSI_CHAP_PASSWORD=envsecret123", NULL};
    parse("iscsi://urluser@h/iqn/1");
    cr_assert_eq(resolve(env), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "urluser");
    cr_assert_str_eq(c.password, "envsecret123");
}

Test(iscsi_creds, user_without_password_is_an_error)
{
    parse("iscsi://lonely@h/iqn/1");
    cr_assert_eq(resolve(NULL), -EINVAL);
    cr_assert(strstr(err.msg, "LIBISCSI_CHAP_PASSWORD"), "%s", err.msg);
}

Test(iscsi_creds, mutual_chap_needs_both_halves_and_a_user)
{
    parse("iscsi://u%p12345678901@h/iqn/1?target_user=out");
    cr_assert_eq(resolve(NULL), -EINVAL);
    parse("iscsi://h/iqn/1?target_user=out&target_password=outsecret1234");
    cr_assert_eq(resolve(NULL), -EINVAL);
}

Test(iscsi_creds, no_message_shows_the_password)
{
    parse("iscsi://u%Sup3rSecretPw@h:99999/iqn/1");
    cr_assert_lt(resolve(NULL), 0);
    cr_assert_null(strstr(err.msg, "Sup3rSecretPw"), "%s", err.msg);
    cr_assert_eq(resolve(NULL), -EINVAL);
    char *d;
    parse("iscsi://u%Sup3rSecretPw@h/iqn/1");
    cr_assert_eq(resolve(NULL), 0);
    d = iscsi_conf_display(&c);
    cr_assert_null(strstr(d, "Sup3rSecretPw"), "%s", d);
    free(d);
}

TestSuite(iscsi_config, .fini = reset);

static const char *conf_text =
    "# test\n"
    "[drive]\n"
    "  file = \"x\"\n"
    "\n"
    "[iscsi]\n"
    "  user = \"generic\"\n"
    "  password = \"genericpw123\"\n"
    "  initiator-name = \"iqn.2024-01.test:init\"\n"
    "  header-digest = \"CRC32C-NONE\"\n"
    "\n"
    "[iscsi \"iqn.2024-01.test:disk1\"]\n"
    "  user = \"special\"\n"
    "  password = \"specialpw123\"\n"
    "  header-digest = \"CRC32C\"\n"
    "[iscsi \"iqn.2024-01.test:other\"]\n"
    "  user = \"nope\"\n";

Test(iscsi_config, target_section_wins_over_generic)
{
    cr_assert_eq(iscsi_config_parse(conf_text, "t.conf",
                                    "iqn.2024-01.test:disk1", &fc, &err), 0,
                 "%s", err.msg);
    cr_assert_str_eq(fc.user, "special");
    cr_assert_str_eq(fc.password, "specialpw123");
    cr_assert_str_eq(fc.initiator, "iqn.2024-01.test:init");
    cr_assert_str_eq(fc.digest, "CRC32C");
}

Test(iscsi_config, other_targets_get_the_generic_section)
{
    cr_assert_eq(iscsi_config_parse(conf_text, "t.conf", "iqn.2024-01.test:zzz",
                                    &fc, &err), 0, "%s", err.msg);
    cr_assert_str_eq(fc.user, "generic");
    cr_assert_str_eq(fc.digest, "CRC32C-NONE");
}

Test(iscsi_config, generic_after_target_section_does_not_override)
{
    const char *txt = "[iscsi \"iqn.a\"]\nuser = a\npassword = apw\n"
                      "[iscsi]\nuser = g\n";
    cr_assert_eq(iscsi_config_parse(txt, "t.conf", "iqn.a", &fc, &err), 0);
    cr_assert_str_eq(fc.user, "a");
}

Test(iscsi_config, errors_name_file_and_line)
{
    cr_assert_eq(iscsi_config_parse("[iscsi]\nuser \"x\"\n", "t.conf", "q",
                                    &fc, &err), -EINVAL);
    cr_assert(strstr(err.msg, "t.conf:2"), "%s", err.msg);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
    cr_assert_eq(iscsi_config_parse("[iscsi]\nbogus = 1\n", "t.conf", "q",
                                    &fc, &err), -EINVAL);
    cr_assert(strstr(err.msg, "bogus"), "%s", err.msg);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
    cr_assert_eq(iscsi_config_parse("[iscsi \"x\n", "t.conf", "q", &fc, &err),
                 -EINVAL);
    iscsi_file_conf_free(&fc);
    bd_err_clear(&err);
    cr_assert_eq(iscsi_config_parse("[iscsi]\nuser = \"x\n", "t.conf", "q",
                                    &fc, &err), -EINVAL);
}

Test(iscsi_config, file_is_read_through_the_config_option)
{
    char path[] = "/tmp/test-iscsi-conf.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, conf_text, strlen(conf_text)),
                 (ssize_t)strlen(conf_text));
    close(fd);
    parse("iscsi://h/iqn.2024-01.test:disk1/1");
    iscsit_set(&t, ISCSIT_CONFIG, path);
    cr_assert_eq(resolve(NULL), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "special");
    cr_assert_str_eq(c.password, "specialpw123");
    cr_assert_str_eq(c.initiator, "iqn.2024-01.test:init");
    cr_assert_eq(c.digest, ISCSI_DIGEST_CRC32C);
    /* the URL's credentials and the environment come first */
    char *env[] = {"LIBISCSI_CHAP_USERNAME=envuser",
                   "LIBISCSI_CHAP_PASSWORD=envsecret123", NULL};
    cr_assert_eq(resolve(env), 0, "%s", err.msg);
    cr_assert_str_eq(c.user, "envuser");
    cr_assert_str_eq(c.password, "envsecret123");
    unlink(path);
    cr_assert_eq(resolve(NULL), -ENOENT);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
}

/* ---- against a real tgtd on loopback ----------------------------------- */

static char dir[] = "/tmp/imgfuse-iscsi-unit.XXXXXX";
static char lunf[300], url[512];
static int port, cport;
static pid_t tgtd_pid;

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), p;
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, l), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    p = ntohs(a.sin_port);
    close(fd);
    return p;
}

static void tgtadm(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "tgtadm -C %d --lld iscsi %s", cport, args);
    cr_assert_eq(system(cmd), 0, "'%s' failed", cmd);
}

static void tgt_start(void)
{
    char cmd[1024], cp[16], portal[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(lunf, sizeof(lunf), "%s/lun.img", dir);
    port = free_port();
    /* the control port names a socket in /var/run/tgtd: pick a free one */
    cport = port % 30000 + 1000;
    for (;;) {
        char sockp[64];
        snprintf(sockp, sizeof(sockp), "/var/run/tgtd/socket.%d", cport);
        if (access(sockp, F_OK) != 0)
            break;
        cport = cport % 32000 + 1;
    }
    snprintf(url, sizeof(url), "iscsi://127.0.0.1:%d/iqn.2024-01.test.unit:d/1",
             port);
    snprintf(cmd, sizeof(cmd), "truncate -s 8M %s", lunf);
    cr_assert_eq(system(cmd), 0);
    snprintf(cp, sizeof(cp), "%d", cport);
    snprintf(portal, sizeof(portal), "portal=127.0.0.1:%d", port);
    tgtd_pid = fork();
    cr_assert_geq(tgtd_pid, 0);
    if (tgtd_pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        dup2(nul, 2);
        execlp("tgtd", "tgtd", "-f", "-C", cp, "--iscsi", portal, (char *)NULL);
        _exit(127);
    }
    snprintf(cmd, sizeof(cmd), "tgtadm -C %d --op show --mode sys >/dev/null 2>&1",
             cport);
    for (int i = 0; i < 100 && system(cmd) != 0; i++)
        usleep(50000);
    tgtadm("--op new --mode target --tid 1 -T iqn.2024-01.test.unit:d");
    snprintf(cmd, sizeof(cmd), "--op new --mode logicalunit --tid 1 --lun 1 -b %s",
             lunf);
    tgtadm(cmd);
    tgtadm("--op update --mode logicalunit --tid 1 --lun 1 "
           "--params thin_provisioning=1");
    tgtadm("--op bind --mode target --tid 1 -I ALL");
}

static void tgt_stop(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "tgtadm -C %d --op delete --mode target --tid 1 "
             "--force >/dev/null 2>&1; tgtadm -C %d --op delete --mode system "
             ">/dev/null 2>&1", cport, cport);
    if (system(cmd) != 0) {
        /* fall through to the kill */
    }
    if (tgtd_pid > 0) {
        for (int i = 0; i < 60 && waitpid(tgtd_pid, NULL, WNOHANG) == 0; i++)
            usleep(50000);
        kill(tgtd_pid, SIGKILL);
        waitpid(tgtd_pid, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s /var/run/tgtd/socket.%d "
             "/var/run/tgtd/socket.%d.lock", dir, cport, cport);
    if (system(cmd) != 0)
        return;
}

static long blocks_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (long)st.st_blocks;
}

TestSuite(iscsi_io, .init = tgt_start, .fini = tgt_stop, .timeout = 60);

Test(iscsi_io, write_zero_unmap_and_status)
{
    struct bd_flags fl = {0};
    struct bd_node *n, *p;
    static uint8_t w[1 << 20], r[1 << 20];
    uint64_t pnum;
    unsigned st;

    cr_assert_eq(bd_open_image(url, "raw", NULL, &fl, &n, &err), 0, "%s", err.msg);
    p = n->file ? n->file : n;
    cr_assert_eq(bd_size(n), 8 << 20);
    cr_assert_eq(p->lim.request_alignment, 512);
    for (size_t i = 0; i < sizeof(w); i++)
        w[i] = (uint8_t)(i * 7 + 3);
    cr_assert_eq(bd_pwrite(n, w, sizeof(w), 1 << 20, 0), 0);
    cr_assert_eq(bd_pwrite(n, w, 100, 12345, BD_REQ_FUA), 0);
    cr_assert_eq(bd_flush(n), 0);
    cr_assert_eq(bd_pread(n, r, sizeof(r), 1 << 20), 0);
    cr_assert_arr_eq(r, w, sizeof(w));
    cr_assert_eq(bd_pread(n, r, 100, 12345), 0);
    cr_assert_arr_eq(r, w, 100);

    /* GET LBA STATUS: a hole, then the written megabyte */
    cr_assert_eq(bd_block_status(p, 4 << 20, 4 << 20, &pnum, &st, NULL), 0);
    cr_assert(st & BD_STATUS_ZERO, "unwritten thin lun range is not a hole");
    cr_assert_eq(bd_block_status(p, 1 << 20, 4 << 20, &pnum, &st, NULL), 0);
    cr_assert(st & BD_STATUS_DATA);
    cr_assert_eq(pnum, 1 << 20);

    /* WRITE SAME with UNMAP deallocates on the target; without, writes */
    long before = blocks_of(lunf);
    cr_assert_eq(bd_pwrite_zeroes(n, 512 << 10, 1 << 20,
                                  BD_REQ_MAY_UNMAP | BD_REQ_NO_FALLBACK), 0,
                 "fast zeroing refused");
    cr_assert_lt(blocks_of(lunf), before, "WRITE SAME with UNMAP kept blocks");
    cr_assert_eq(bd_pread(n, r, 512 << 10, 1 << 20), 0);
    for (size_t i = 0; i < (512 << 10); i++)
        cr_assert_eq(r[i], 0);
    cr_assert_eq(bd_pread(n, r, 512 << 10, (1 << 20) + (512 << 10)), 0);
    cr_assert_arr_eq(r, w + (512 << 10), 512 << 10);
    cr_assert_eq(bd_pwrite_zeroes(n, 64 << 10, 6 << 20, 0), 0);
    cr_assert_eq(bd_block_status(p, 6 << 20, 64 << 10, &pnum, &st, NULL), 0);
    cr_assert(st & BD_STATUS_DATA, "zeroes without MAY_UNMAP left a hole");

    /* UNMAP */
    before = blocks_of(lunf);
    cr_assert_eq(bd_discard(n, 512 << 10, (1 << 20) + (512 << 10)), 0);
    cr_assert_lt(blocks_of(lunf), before, "UNMAP kept blocks");
    cr_assert_eq(bd_pread(n, r, 512 << 10, (1 << 20) + (512 << 10)), 0);
    for (size_t i = 0; i < (512 << 10); i++)
        cr_assert_eq(r[i], 0);
    bd_node_close(n);
}

struct worker { struct bd_node *n; int id; int ret; };

static void *writer(void *arg)
{
    struct worker *wk = arg;
    uint8_t b[4096], r[4096];
    for (int i = 0; i < 64 && wk->ret == 0; i++) {
        uint64_t off = ((uint64_t)wk->id << 20) + (uint64_t)i * 8192;
        memset(b, wk->id * 16 + (i & 15), sizeof(b));
        wk->ret = bd_pwrite(wk->n, b, sizeof(b), off, 0);
        if (wk->ret == 0)
            wk->ret = bd_pread(wk->n, r, sizeof(r), off);
        if (wk->ret == 0 && memcmp(b, r, sizeof(b)) != 0)
            wk->ret = -EILSEQ;
    }
    return NULL;
}

Test(iscsi_io, parallel_workers_on_a_session_pool)
{
    struct bd_flags fl = {0};
    struct bd_node *n;
    char u[600];
    pthread_t th[6];
    struct worker wk[6];

    snprintf(u, sizeof(u), "%s?connections=3", url);
    cr_assert_eq(bd_open_image(u, "raw", NULL, &fl, &n, &err), 0, "%s", err.msg);
    for (int i = 0; i < 6; i++) {
        wk[i] = (struct worker){.n = n, .id = i + 1};
        pthread_create(&th[i], NULL, writer, &wk[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(wk[i].ret, 0, "worker %d: %s", i, strerror(-wk[i].ret));
    }
    bd_node_close(n);
}
