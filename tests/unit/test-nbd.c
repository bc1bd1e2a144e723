/*
 * Unit tests of the nbd driver: URI and legacy string parsing, option
 * checks, and (against an nbdkit started here on a unix socket) open, read,
 * write, block status and error messages through bd_open_image().
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/protocol/nbd/nbd.h"

#include <libnbd.h>
#include "core/graph.h"

static struct nbdt t;
static struct bd_err err;

static void reset(void)
{
    nbdt_free(&t);
    bd_err_clear(&err);
}

static int parse(const char *s)
{
    reset();
    return nbdt_parse(s, &t, &err);
}

#define V(k) (t.v[k] ? t.v[k] : "(null)")

TestSuite(nbd_uri, .fini = reset);

Test(nbd_uri, tcp_with_port_and_export)
{
    cr_assert_eq(parse("nbd://example.com:1234/disk"), 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_TYPE), "inet");
    cr_assert_str_eq(V(NBDT_HOST), "example.com");
    cr_assert_str_eq(V(NBDT_PORT), "1234");
    cr_assert_str_eq(V(NBDT_EXPORT), "disk");
    cr_assert_str_eq(V(NBDT_TLS), "off");
}

Test(nbd_uri, tcp_without_port_or_export)
{
    cr_assert_eq(parse("nbd://127.0.0.1"), 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_HOST), "127.0.0.1");
    cr_assert_null(t.v[NBDT_PORT]);
    cr_assert_null(t.v[NBDT_EXPORT]);
    cr_assert_eq(parse("nbd://127.0.0.1/"), 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_EXPORT), "");
}

Test(nbd_uri, export_is_percent_decoded_and_keeps_inner_slashes)
{
    cr_assert_eq(parse("nbd://h//a%20b/c"), 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_EXPORT), "/a b/c");
}

Test(nbd_uri, ipv6_host)
{
    cr_assert_eq(parse("nbd://[::1]:10810/x"), 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_HOST), "::1");
    cr_assert_str_eq(V(NBDT_PORT), "10810");
}

Test(nbd_uri, nbd_unix_socket_with_export_name)
{
    cr_assert_eq(parse("nbd+unix:///disk?socket=/tmp/a%20b.sock"), 0, "%s",
                 err.msg);
    cr_assert_str_eq(V(NBDT_TYPE), "unix");
    cr_assert_str_eq(V(NBDT_PATH), "/tmp/a b.sock");
    cr_assert_str_eq(V(NBDT_EXPORT), "disk");
    cr_assert_null(t.v[NBDT_HOST]);
}

Test(nbd_uri, nbds_with_psk_user_and_files)
{
    cr_assert_eq(parse("nbds://alice@127.0.0.1:999/?tls-psk-file=/k/keys.psk"),
                 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_TLS), "on");
    cr_assert_str_eq(V(NBDT_TLS_USER), "alice");
    cr_assert_str_eq(V(NBDT_TLS_PSK), "/k/keys.psk");
    cr_assert_eq(parse("nbds+unix:///e?socket=/s&tls-certificates=/pki"), 0,
                 "%s", err.msg);
    cr_assert_str_eq(V(NBDT_TLS_CERTS), "/pki");
    cr_assert_str_eq(V(NBDT_TLS), "on");
}

Test(nbd_uri, tunables_in_the_query)
{
    cr_assert_eq(parse("nbd://h/e?connect-timeout=2&timeout=5&connections=1"),
                 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_CONNECT_TIMEOUT), "2");
    cr_assert_str_eq(V(NBDT_TIMEOUT), "5");
    cr_assert_str_eq(V(NBDT_CONNECTIONS), "1");
}

Test(nbd_uri, legacy_host_port_exportname)
{
    cr_assert_eq(parse("nbd:localhost:10809:exportname=a:b"), 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_HOST), "localhost");
    cr_assert_str_eq(V(NBDT_PORT), "10809");
    cr_assert_str_eq(V(NBDT_EXPORT), "a:b");
    cr_assert_eq(parse("nbd:127.0.0.1:5"), 0, "%s", err.msg);
    cr_assert_null(t.v[NBDT_EXPORT]);
}

Test(nbd_uri, legacy_unix_socket)
{
    cr_assert_eq(parse("nbd:unix:/run/x.sock:exportname=disk"), 0, "%s",
                 err.msg);
    cr_assert_str_eq(V(NBDT_TYPE), "unix");
    cr_assert_str_eq(V(NBDT_PATH), "/run/x.sock");
    cr_assert_str_eq(V(NBDT_EXPORT), "disk");
    cr_assert_eq(parse("nbd:unix:/run/y.sock"), 0, "%s", err.msg);
    cr_assert_str_eq(V(NBDT_PATH), "/run/y.sock");
}

Test(nbd_uri, malformed_strings_get_a_message)
{
    static const char *const bad[] = {
        "nbd://", "nbd://h:0/x", "nbd://h:99999/x", "nbd://h:12a/x",
        "nbd+unix:///x", "nbd+unix://host/x?socket=/s", "nbd://h/x?socket=/s",
        "nbd://h/x?bogus=1", "nbd://h/%zz", "nbd://h/a%00b", "nbd://[::1/x",
        "nbd:unix:", "nbd:a:b:c", "nbd://h/x#frag", "nbdx://h/x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        cr_assert_lt(parse(bad[i]), 0, "'%s' was accepted", bad[i]);
        cr_assert_neq(err.msg[0], '\0', "no message for '%s'", bad[i]);
        cr_assert(strstr(err.msg, bad[i]) != NULL, "'%s' not named in '%s'",
                  bad[i], err.msg);
    }
}

Test(nbd_uri, display_has_no_credentials_and_round_trips)
{
    struct nbd_conf c;
    cr_assert_eq(parse("nbds://alice@127.0.0.1:999/e%2fx?tls-psk-file=/k"), 0);
    cr_assert_eq(nbdt_conf(&t, &c, &err), 0, "%s", err.msg);
    char *d = nbdt_display(&c);
    cr_assert_str_eq(d, "nbds://127.0.0.1:999/e/x");
    free(d);
    cr_assert_eq(parse("nbd:unix:/s.sock:exportname=disk"), 0);
    cr_assert_eq(nbdt_conf(&t, &c, &err), 0, "%s", err.msg);
    d = nbdt_display(&c);
    cr_assert_str_eq(d, "nbd+unix:///disk?socket=/s.sock");
    free(d);
}

Test(nbd_uri, conf_defaults_and_checks)
{
    struct nbd_conf c;
    cr_assert_eq(parse("nbd://h/e"), 0);
    cr_assert_eq(nbdt_conf(&t, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.port, "10809");
    cr_assert_eq(c.conns, 4);
    cr_assert_eq(c.connect_timeout_ms, 10000);
    cr_assert_eq(parse("nbd://h/e?timeout=0"), 0);
    cr_assert_lt(nbdt_conf(&t, &c, &err), 0);
    cr_assert(strstr(err.msg, "timeout") != NULL, "%s", err.msg);
    reset();
    nbdt_set(&t, NBDT_TYPE, "unix");
    cr_assert_lt(nbdt_conf(&t, &c, &err), 0);
    cr_assert(strstr(err.msg, "server.path") != NULL, "%s", err.msg);
    cr_assert_eq(parse("nbd:/a/b:10"), 0);
    cr_assert_lt(nbdt_conf(&t, &c, &err), 0, "host '/a/b' was accepted");
    cr_assert(strstr(err.msg, "host name") != NULL, "%s", err.msg);
    reset();
    nbdt_set(&t, NBDT_HOST, "h");
    nbdt_set(&t, NBDT_TLS_PSK, "/k");
    cr_assert_eq(nbdt_conf(&t, &c, &err), 0, "%s", err.msg);
    cr_assert(c.tls, "a psk file implies tls");
}

/* ---- the replay journal ---------------------------------------------------- */

Test(nbd_journal, a_flush_drops_what_it_covers_and_keeps_the_rest)
{
    struct nbd_journal j = {0};
    uint8_t data[4096];
    struct nbd_req w = {.op = NBD_OP_WRITE, .buf = data, .len = 4096};
    struct nbd_req z = {.op = NBD_OP_ZERO, .len = 1 << 20,
                        .flags = LIBNBD_CMD_FLAG_FAST_ZERO};

    nbdj_init(&j, 10000);
    cr_assert(nbdj_enabled(&j));
    memset(data, 0xaa, sizeof(data));
    for (int i = 0; i < 3; i++) {
        w.off = (uint64_t)i * 4096;
        cr_assert_eq(nbdj_add(&j, &w), 0);
    }
    memset(data, 0, sizeof(data));          /* the journal has its own copy */
    cr_assert_eq(j.e[j.head].op, NBD_OP_WRITE);
    cr_assert_eq(((uint8_t *)j.e[j.head].data)[100], 0xaa);
    cr_assert(nbdj_full(&j), "12 KiB kept with a 10000-byte limit");
    uint64_t mark = nbdj_mark(&j);
    cr_assert_eq(nbdj_add(&j, &z), 0);
    nbdj_flushed(&j, mark);
    cr_assert_eq(j.n - j.head, 1);
    cr_assert_eq(j.e[j.head].op, NBD_OP_ZERO);
    cr_assert_eq(j.e[j.head].flags & LIBNBD_CMD_FLAG_FAST_ZERO, 0u,
                 "a replayed zero must not fail for want of a fast zero");
    cr_assert_not(nbdj_full(&j));
    cr_assert(nbdj_dropped(&j), "entries left: replay needed");
    nbdj_flushed(&j, UINT64_MAX);
    cr_assert_eq(j.n, 0);
    nbdj_fini(&j);
}

Test(nbd_journal, zero_limit_means_no_journal)
{
    struct nbd_journal j = {0};
    nbdj_init(&j, 0);
    cr_assert_not(nbdj_enabled(&j));
    cr_assert_not(nbdj_dropped(&j));
    nbdj_fini(&j);
}

/* ---- against a real server ------------------------------------------------ */

static char dir[] = "/tmp/imgfuse-nbd-unit.XXXXXX";
static char sock[256], pidf[256], uri[512];

static void server_start(const char *extra)
{
    char cmd[1024];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/nbd.sock", dir);
    snprintf(pidf, sizeof(pidf), "%s/nbdkit.pid", dir);
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    snprintf(cmd, sizeof(cmd), "nbdkit -U %s -P %s %s", sock, pidf, extra);
    cr_assert_eq(system(cmd), 0, "cannot start '%s'", cmd);
    /* nbdkit's child writes the pidfile once it listens, which can be just
     * after the parent returned. */
    for (int i = 0; i < 250; i++) {
        struct stat st;
        if (stat(pidf, &st) == 0 && st.st_size > 0)
            return;
        usleep(20000);
    }
    cr_assert_fail("nbdkit wrote no pidfile within 5 s");
}

static void server_stop(void)
{
    char buf[32] = "";
    FILE *f = fopen(pidf, "r");
    if (f) {
        if (fgets(buf, sizeof(buf), f))
            kill(atoi(buf), SIGTERM);
        fclose(f);
    }
    for (int i = 0; i < 50 && access(sock, F_OK) == 0; i++)
        usleep(20000);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return;
}

static void mem_start(void) { server_start("memory 8M"); }

TestSuite(nbd_io, .init = mem_start, .fini = server_stop);

Test(nbd_io, write_then_read_back)
{
    struct bd_flags fl = {0};
    struct bd_node *n;
    uint8_t w[65536], r[65536];
    cr_assert_eq(bd_open_image(uri, "raw", NULL, &fl, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_size(n), 8 << 20);
    for (size_t i = 0; i < sizeof(w); i++)
        w[i] = (uint8_t)(i * 7 + 3);
    cr_assert_eq(bd_pwrite(n, w, sizeof(w), 1 << 20, 0), 0);
    cr_assert_eq(bd_pwrite(n, w, 100, 12345, BD_REQ_FUA), 0);
    cr_assert_eq(bd_flush(n), 0);
    cr_assert_eq(bd_pread(n, r, sizeof(r), 1 << 20), 0);
    cr_assert_arr_eq(r, w, sizeof(w));
    cr_assert_eq(bd_pread(n, r, 100, 12345), 0);
    cr_assert_arr_eq(r, w, 100);
    cr_assert_eq(bd_pwrite_zeroes(n, 4096, 1 << 20, 0), 0);
    cr_assert_eq(bd_pread(n, r, 4096, 1 << 20), 0);
    for (int i = 0; i < 4096; i++)
        cr_assert_eq(r[i], 0);
    bd_node_close(n);
}

Test(nbd_io, block_status_sees_holes_and_data)
{
    struct bd_flags fl = {0};
    struct bd_node *n;
    uint8_t w[4096];
    uint64_t pnum;
    unsigned st;
    memset(w, 0xab, sizeof(w));
    cr_assert_eq(bd_open_image(uri, "raw", NULL, &fl, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(bd_pwrite(n, w, sizeof(w), 2 << 20, 0), 0);
    struct bd_node *p = n->file ? n->file : n;
    cr_assert_eq(bd_block_status(p, 0, 8 << 20, &pnum, &st, NULL), 0);
    cr_assert(st & BD_STATUS_ZERO, "start of an empty memory disk is a hole");
    cr_assert(st & BD_STATUS_ALLOCATED);
    cr_assert_leq(pnum, 2 << 20);
    cr_assert_eq(bd_block_status(p, 2 << 20, 1 << 20, &pnum, &st, NULL), 0);
    cr_assert(st & BD_STATUS_DATA);
    cr_assert_geq(pnum, 4096);
    bd_node_close(n);
}

Test(nbd_io, wrong_export_is_named)
{
    struct bd_flags fl = {.read_only = true};
    struct bd_node *n;
    char u[600];
    /* nbdkit serves any name by default; ask it to be strict. */
    server_stop();
    strcpy(dir, "/tmp/imgfuse-nbd-unit.XXXXXX");
    server_start("--filter=exportname memory 1M exportname-strict=true exportname=good");
    snprintf(u, sizeof(u), "nbd+unix:///nope?socket=%s", sock);
    cr_assert_lt(bd_open_image(u, "raw", NULL, &fl, &n, &err), 0);
    cr_assert(strstr(err.msg, "no export named 'nope'") != NULL, "%s", err.msg);
}

Test(nbd_io, missing_socket_says_what_to_check)
{
    struct bd_flags fl = {.read_only = true};
    struct bd_node *n;
    char u[600];
    snprintf(u, sizeof(u), "nbd+unix:///?socket=%s/none.sock", dir);
    cr_assert_lt(bd_open_image(u, "raw", NULL, &fl, &n, &err), 0);
    cr_assert(strstr(err.msg, "is the NBD server running?") != NULL, "%s",
              err.msg);
}

/* Many threads, one connection: replies must reach the right waiter. */
struct par_arg {
    struct bd_node *n;
    unsigned seed;
    int bad;
};

static void *par_reader(void *opaque)
{
    struct par_arg *a = opaque;
    static __thread uint64_t buf[(256 << 10) / 8];
    for (int i = 0; i < 300 && !a->bad; i++) {
        uint64_t len = (uint64_t)(1 + rand_r(&a->seed) % 64) * 4096;
        uint64_t off = (uint64_t)(rand_r(&a->seed) % 1984) * 4096;
        if (bd_pread(a->n, buf, len, off) != 0) {
            a->bad = 1;
            break;
        }
        for (uint64_t w = 0; w < len / 8; w++) {
            if (buf[w] != off + w * 8) {
                a->bad = 2;
                break;
            }
        }
    }
    return NULL;
}

Test(nbd_io, parallel_requests_on_one_connection_get_their_own_replies)
{
    struct bd_flags fl = {0};
    struct bd_node *n;
    char u[600];
    uint64_t *block = malloc(1 << 20);
    pthread_t th[6];
    struct par_arg a[6];

    snprintf(u, sizeof(u), "%s&connections=1", uri);
    cr_assert_eq(bd_open_image(u, "raw", NULL, &fl, &n, &err), 0, "%s", err.msg);
    for (uint64_t off = 0; off < (8 << 20); off += 1 << 20) {
        for (uint64_t w = 0; w < (1 << 17); w++)
            block[w] = off + w * 8;
        cr_assert_eq(bd_pwrite(n, block, 1 << 20, off, 0), 0);
    }
    free(block);
    for (int i = 0; i < 6; i++) {
        a[i] = (struct par_arg){.n = n, .seed = (unsigned)i * 7919u + 1};
        pthread_create(&th[i], NULL, par_reader, &a[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(a[i].bad, 0, "thread %d: %s", i,
                     a[i].bad == 1 ? "read failed" : "wrong data");
    }
    bd_node_close(n);
}
