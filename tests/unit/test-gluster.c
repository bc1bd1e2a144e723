/*
 * Unit tests of the gluster driver's URI and option parsing (target.c) and
 * of its parse_uri as core calls it, and the error for an unreachable
 * server. Connecting to a real server is tests/integration/gluster/.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "drivers/protocol/gluster/gluster.h"
#include "core/bd-internal.h"
#include "core/graph.h"

static struct glt t;
static struct bd_err err;

static void reset(void)
{
    glt_free(&t);
    bd_err_clear(&err);
}

static int parse(const char *s)
{
    reset();
    return glt_parse_uri(s, &t, &err);
}

TestSuite(gluster_uri, .init = reset, .fini = reset);

Test(gluster_uri, tcp_host_volume_and_path)
{
    cr_assert_eq(parse("gluster://example.com/vol/dir/disk.img"), 0, "%s", err.msg);
    cr_assert_eq(t.nsrv, 1);
    cr_assert_eq(t.srv[0].type, GLT_TCP);
    cr_assert_str_eq(t.srv[0].host, "example.com");
    cr_assert_eq(t.srv[0].port, 24007);
    cr_assert_str_eq(t.volume, "vol");
    cr_assert_str_eq(t.path, "dir/disk.img");
}

Test(gluster_uri, explicit_port_and_tcp_scheme)
{
    cr_assert_eq(parse("gluster+tcp://10.0.0.1:24010/v/a.qcow2"), 0, "%s", err.msg);
    cr_assert_eq(t.srv[0].type, GLT_TCP);
    cr_assert_str_eq(t.srv[0].host, "10.0.0.1");
    cr_assert_eq(t.srv[0].port, 24010);
}

Test(gluster_uri, ipv6_host_in_brackets)
{
    cr_assert_eq(parse("gluster://[::1]:24007/v/a"), 0, "%s", err.msg);
    cr_assert_str_eq(t.srv[0].host, "::1");
}

Test(gluster_uri, unix_socket_from_query)
{
    cr_assert_eq(parse("gluster+unix:///v/a.img?socket=/run/glusterd.socket"), 0,
                 "%s", err.msg);
    cr_assert_eq(t.srv[0].type, GLT_UNIX);
    cr_assert_str_eq(t.srv[0].path, "/run/glusterd.socket");
    cr_assert_null(t.srv[0].host);
    cr_assert_str_eq(t.volume, "v");
    cr_assert_str_eq(t.path, "a.img");
}

Test(gluster_uri, rdma_scheme_is_recognised)
{
    cr_assert_eq(parse("gluster+rdma://h/v/a"), 0, "%s", err.msg);
    cr_assert_eq(t.srv[0].type, GLT_RDMA);
}

Test(gluster_uri, percent_escapes_are_decoded)
{
    cr_assert_eq(parse("gluster://h/v/my%20disk.img"), 0, "%s", err.msg);
    cr_assert_str_eq(t.path, "my disk.img");
    cr_assert_lt(parse("gluster://h/v/bad%2"), 0);
    cr_assert_lt(parse("gluster://h/v/nul%00"), 0);
}

Test(gluster_uri, missing_parts_are_refused_clearly)
{
    cr_assert_lt(parse("gluster://h/vol"), 0);
    cr_assert(strstr(err.msg, "no image path after the volume name"), "%s", err.msg);
    cr_assert_lt(parse("gluster://h/vol/"), 0);
    cr_assert_lt(parse("gluster://h/"), 0);
    cr_assert(strstr(err.msg, "no volume name"), "%s", err.msg);
    cr_assert_lt(parse("gluster:///v/a"), 0);
    cr_assert(strstr(err.msg, "no server host name"), "%s", err.msg);
    cr_assert_lt(parse("gluster+unix:///v/a"), 0);
    cr_assert(strstr(err.msg, "no socket"), "%s", err.msg);
}

Test(gluster_uri, bad_input_is_refused)
{
    cr_assert_lt(parse("gluster://h:0/v/a"), 0);
    cr_assert(strstr(err.msg, "bad port"), "%s", err.msg);
    cr_assert_lt(parse("gluster://h:65536/v/a"), 0);
    cr_assert_lt(parse("gluster://h:12ab/v/a"), 0);
    cr_assert_lt(parse("gluster://h/v/a?socket=/s"), 0);
    cr_assert(strstr(err.msg, "gluster+unix"), "%s", err.msg);
    cr_assert_lt(parse("gluster://h/v/a?sokcet=/s"), 0);
    cr_assert(strstr(err.msg, "unknown URI parameter 'sokcet'"), "%s", err.msg);
    cr_assert_lt(parse("gluster+unix://h/v/a?socket=/s"), 0);
    cr_assert_lt(parse("gluster://user@h/v/a"), 0);
    cr_assert_lt(parse("gluster://h/v/a#frag"), 0);
    cr_assert_lt(parse("gluster+sctp://h/v/a"), 0);
    cr_assert_lt(parse("gluster://[::1/v/a"), 0);
    cr_assert_lt(parse("no-scheme"), 0);
}

/* ---- options --------------------------------------------------------------- */

static struct bd_opts *o;

static void opts_reset(void)
{
    reset();
    if (o)
        bd_opts_free(o);
    o = bd_opts_new();
    t.debug = -1;
}

static int from(const char *dotted)
{
    opts_reset();
    cr_assert_eq(bd_opts_parse_dotted(o, dotted, NULL, &err), 0, "%s", err.msg);
    return glt_from_opts(o, &t, &err);
}

TestSuite(gluster_opts, .init = opts_reset, .fini = opts_reset);

Test(gluster_opts, server_list_in_order)
{
    cr_assert_eq(from("volume=v,path=/dir/a.img,"
                      "server.0.type=tcp,server.0.host=h1,server.0.port=24010,"
                      "server.1.type=unix,server.1.path=/run/g.sock,"
                      "server.2.host=h3,debug=9,logfile=/tmp/gl.log"), 0,
                 "%s", err.msg);
    cr_assert_eq(t.nsrv, 3);
    cr_assert_eq(t.srv[0].type, GLT_TCP);
    cr_assert_str_eq(t.srv[0].host, "h1");
    cr_assert_eq(t.srv[0].port, 24010);
    cr_assert_eq(t.srv[1].type, GLT_UNIX);
    cr_assert_str_eq(t.srv[1].path, "/run/g.sock");
    cr_assert_eq(t.srv[2].type, GLT_TCP);
    cr_assert_eq(t.srv[2].port, 24007);
    cr_assert_str_eq(t.volume, "v");
    cr_assert_str_eq(t.path, "dir/a.img");
    cr_assert_eq(t.debug, 9);
    cr_assert_str_eq(t.logfile, "/tmp/gl.log");
}

Test(gluster_opts, unix_socket_key_as_in_qemu)
{
    cr_assert_eq(from("volume=v,path=a,server.0.type=unix,server.0.socket=/s"), 0,
                 "%s", err.msg);
    cr_assert_str_eq(t.srv[0].path, "/s");
}

Test(gluster_opts, options_override_the_filename_uri)
{
    cr_assert_eq(from("filename=gluster://h/v/a.img,path=b.img,"
                      "server.0.type=unix,server.0.path=/s"), 0, "%s", err.msg);
    cr_assert_eq(t.nsrv, 1);
    cr_assert_eq(t.srv[0].type, GLT_UNIX);
    cr_assert_str_eq(t.volume, "v");
    cr_assert_str_eq(t.path, "b.img");
}

Test(gluster_opts, incomplete_or_wrong_options_are_refused)
{
    cr_assert_lt(from("path=a,server.0.host=h"), 0);
    cr_assert(strstr(err.msg, "no volume"), "%s", err.msg);
    cr_assert_lt(from("volume=v,server.0.host=h"), 0);
    cr_assert(strstr(err.msg, "no image path"), "%s", err.msg);
    cr_assert_lt(from("volume=v,path=a"), 0);
    cr_assert(strstr(err.msg, "no server"), "%s", err.msg);
    cr_assert_lt(from("volume=v,path=a,server.1.host=h"), 0);
    cr_assert(strstr(err.msg, "server.0"), "%s", err.msg);
    cr_assert_lt(from("volume=v,path=a,server.0.type=udp,server.0.host=h"), 0);
    cr_assert(strstr(err.msg, "expected tcp, unix or rdma"), "%s", err.msg);
    cr_assert_lt(from("volume=v,path=a,server.0.type=unix"), 0);
    cr_assert_lt(from("volume=v,path=a,server.0.type=unix,server.0.path=/s,"
                      "server.0.host=h"), 0);
    cr_assert_lt(from("volume=v,path=a,server.0.host=h,server.0.path=/s"), 0);
    cr_assert_lt(from("volume=v,path=a,server.0.host=h,server.0.port=99999"), 0);
    cr_assert_lt(from("volume=v,path=a,server.0.host=h,debug=10"), 0);
    cr_assert(strstr(err.msg, "debug='10'"), "%s", err.msg);
    cr_assert_lt(from("volume=v/w,path=a,server.0.host=h"), 0);
}

/* ---- parse_uri as core calls it, and the display form --------------------- */

Test(gluster_opts, parse_uri_fills_options_and_a_display_name)
{
    extern const struct bd_driver bd_drv_gluster;
    opts_reset();
    cr_assert_eq(bd_drv_gluster.uri->parse("gluster+rdma://h:24010/v/d/a.img", o,
                                          &err), 0, "%s", err.msg);
    cr_assert_str_eq(bd_opts_get(o, "filename"), "gluster://h:24010/v/d/a.img");
    cr_assert_str_eq(bd_opts_get(o, "volume"), "v");
    cr_assert_str_eq(bd_opts_get(o, "path"), "d/a.img");
    cr_assert_str_eq(bd_opts_get(o, "server.0.type"), "tcp");
    cr_assert_str_eq(bd_opts_get(o, "server.0.host"), "h");
    cr_assert_str_eq(bd_opts_get(o, "server.0.port"), "24010");
    cr_assert_lt(bd_drv_gluster.uri->parse("gluster://h/v", o, &err), 0);
}

Test(gluster_opts, display_of_each_form)
{
    char *d;
    cr_assert_eq(parse("gluster://h/v/a"), 0);
    d = glt_display(&t);
    cr_assert_str_eq(d, "gluster://h/v/a");
    free(d);
    cr_assert_eq(parse("gluster+unix:///v/a?socket=/s"), 0);
    d = glt_display(&t);
    cr_assert_str_eq(d, "gluster+unix:///v/a?socket=/s");
    free(d);
    cr_assert_eq(parse("gluster://[fe80::1]:1/v/a"), 0);
    d = glt_display(&t);
    cr_assert_str_eq(d, "gluster://[fe80::1]:1/v/a");
    free(d);
}

/* ---- open without a server: a clear error, quickly ------------------------- */

static int dead_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

Test(gluster_open, unreachable_server_names_the_uri)
{
    struct bd_flags fl = { .read_only = true };
    struct bd_node *n = NULL;
    struct timespec t0, t1;
    char uri[128];

    bd_err_clear(&err);
    snprintf(uri, sizeof(uri), "gluster://127.0.0.1:%d/vol/disk.img", dead_port());
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_lt(bd_open_image(uri, "raw", NULL, &fl, &n, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert(strstr(err.msg, uri), "%s", err.msg);
    cr_assert(strstr(err.msg, "cannot reach the gluster server"), "%s", err.msg);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 10, "took %ld s", (long)(t1.tv_sec - t0.tv_sec));
}
