/* fusefs/cli.c: the command-line contract. */
#include <criterion/criterion.h>
#include <string.h>
#include "fusefs/cli.h"

#define ARGV(...) ((char *[]){ "imgfuse", __VA_ARGS__, NULL })
#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static struct cli c;

static void free_cli(void)
{
    cli_free(&c);
}

TestSuite(cli, .fini = free_cli);

static int parse(char **argv, int unused, struct cli *out, struct bd_err *err)
{
    int argc = 0;
    (void)unused;
    while (argv[argc])
        argc++;
    cli_free(out);
    bd_err_clear(err);
    return cli_parse(argc, argv, out, err);
}

Test(cli, mount_with_sources_and_mountpoint)
{
    struct bd_err err = { 0 };
    char **a = ARGV("-F", "qcow2", "-r", "a.img", "b.img", "mnt");
    cr_assert_eq(parse(a, 7, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.cmd, CLI_MOUNT);
    cr_assert_eq(c.nsources, 2);
    cr_assert_str_eq(c.mountpoint, "mnt");
    cr_assert_str_eq(c.format, "qcow2");
    cr_assert(c.flags.read_only);
}

Test(cli, dash_o_takes_imgfuse_and_fuse_options_after_positionals)
{
    struct bd_err err = { 0 };
    char **a = ARGV("disk.img", "mnt", "-o", "ro,format=raw,locking=off,allow_other,"
                    "share-rw,cache=none,offset=1M,dev,suid");
    cr_assert_eq(parse(a, 4, &c, &err), 0, "%s", err.msg);
    cr_assert(c.flags.read_only);
    cr_assert_str_eq(c.format, "raw");
    cr_assert_eq(c.flags.locking, BD_LOCKING_OFF);
    cr_assert(c.flags.share_rw);
    cr_assert_eq(c.flags.cache, BD_CACHE_NONE);
    cr_assert(strstr(c.fuse_opts, "allow_other"));
    cr_assert_str_eq(c.fmt_opts, "offset=1M");
}

Test(cli, misspelt_option_gets_a_did_you_mean)
{
    struct bd_err err = { 0 };
    char **a = ARGV("--lockng=on", "d", "m");
    cr_assert_lt(parse(a, 3, &c, &err), 0);
    cr_assert(strstr(err.msg, "did you mean '--locking'"), "%s", err.msg);
    char **b = ARGV("d", "m", "-o", "forse-share");
    cr_assert_lt(parse(b, 4, &c, &err), 0);
    cr_assert(strstr(err.msg, "did you mean 'force-share'"), "%s", err.msg);
    char **d = ARGV("--cache=nnone", "d", "m");
    cr_assert_lt(parse(d, 3, &c, &err), 0);
    cr_assert(strstr(err.msg, "did you mean 'none'"), "%s", err.msg);
}

Test(cli, missing_mountpoint_is_explained)
{
    struct bd_err err = { 0 };
    char **a = ARGV("disk.img");
    cr_assert_lt(parse(a, 1, &c, &err), 0);
    cr_assert(strstr(err.msg, "MOUNTPOINT"), "%s", err.msg);
}

Test(cli, info_create_and_check_subcommands)
{
    struct bd_err err = { 0 };
    char **a = ARGV("info", "--json", "-F", "raw", "x.img");
    cr_assert_eq(parse(a, 5, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.cmd, CLI_INFO);
    cr_assert(c.json);
    char **b = ARGV("create", "-F", "raw", "-o", "preallocation=full", "x.img", "1G");
    cr_assert_eq(parse(b, 7, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.cmd, CLI_CREATE);
    cr_assert_str_eq(c.create_size, "1G");
    cr_assert_str_eq(c.create_opts, "preallocation=full");
    char **d = ARGV("check", "-r", "all", "x.qcow2");
    cr_assert_eq(parse(d, 4, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.check_repair, "all");
    char **e = ARGV("create", "x.img", "1G");
    cr_assert_lt(parse(e, 3, &c, &err), 0);
}

Test(cli, force_share_implies_read_only_and_conflicts_with_share_rw)
{
    struct bd_err err = { 0 };
    char **a = ARGV("-U", "d", "m");
    cr_assert_eq(parse(a, 3, &c, &err), 0);
    cr_assert(c.flags.read_only && c.flags.force_share);
    char **b = ARGV("-U", "--share-rw", "d", "m");
    cr_assert_lt(parse(b, 4, &c, &err), 0);
}

Test(cli, create_then_mount_needs_a_format)
{
    struct bd_err err = { 0 };
    char **a = ARGV("--create", "1G", "new.img", "m");
    cr_assert_lt(parse(a, 4, &c, &err), 0);
    cr_assert(strstr(err.msg, "format"), "%s", err.msg);
}

Test(cli, iscsi_password_is_blanked_in_argv_but_kept_for_the_open)
{
    struct bd_err err = { 0 };
    char src[] = "iscsi://user%secret@127.0.0.1/iqn.x:t/1";
    char mnt[] = "m";
    char *a[] = { "imgfuse", src, mnt, NULL };
    cr_assert_eq(parse(a, 3, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.sources[0], "iscsi://user%secret@127.0.0.1/iqn.x:t/1");
    cr_assert_str_eq(src, "iscsi://user%xxxxxx@127.0.0.1/iqn.x:t/1");
}

Test(cli, iscsi_config_goes_to_iscsi_sources_only)
{
    struct bd_err err = { 0 };
    char buf[2048];
    char **a = ARGV("--iscsi-config=/etc/is,csi.conf", "-o", "offset=1M",
                    "iscsi://h/iqn.x:t/1", "m");
    cr_assert_eq(parse(a, 5, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(cli_source_opts(&c, "iscsi://h/iqn.x:t/1", buf, sizeof(buf)),
                     "offset=1M,file.config=/etc/is,,csi.conf");
    cr_assert_str_eq(cli_source_opts(&c, "disk.img", buf, sizeof(buf)), "offset=1M");
}

Test(cli, pr_options_go_to_the_protocol_node)
{
    struct bd_err err = { 0 };
    char buf[2048];
    char **a = ARGV("--pr=exclusive,preempt", "--pr-key=a11ce",
                    "--pr-helper=/run/pr.sock", "iscsi://h/iqn.x:t/1", "m");
    cr_assert_eq(parse(a, 5, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(cli_source_opts(&c, "iscsi://h/iqn.x:t/1", buf, sizeof(buf)),
                     "file.pr=exclusive,file.pr-preempt=on,file.pr-key=a11ce");
    cr_assert_str_eq(cli_source_opts(&c, "/dev/sdb", buf, sizeof(buf)),
                     "file.pr=exclusive,file.pr-preempt=on,file.pr-key=a11ce,"
                     "file.pr-helper=/run/pr.sock");
}

Test(cli, pr_in_o_options_and_bad_modes)
{
    struct bd_err err = { 0 };
    char buf[2048];
    char **a = ARGV("-o", "pr=exclusive,pr-preempt", "/dev/sdb", "m");
    cr_assert_eq(parse(a, 4, &c, &err), 0, "%s", err.msg);
    cr_assert(c.pr_exclusive && c.pr_preempt);
    cr_assert_str_eq(cli_source_opts(&c, "/dev/sdb", buf, sizeof(buf)),
                     "file.pr=exclusive,file.pr-preempt=on");
    cli_free(&c);
    char **b = ARGV("--pr=exclusiv", "/dev/sdb", "m");
    cr_assert_eq(parse(b, 3, &c, &err), -EINVAL);
    cr_assert(strstr(err.msg, "did you mean 'exclusive'"), "%s", err.msg);
}

Test(cli, lease_from_the_option_and_from_dash_o)
{
    struct bd_err err = { 0 };
    char **a = ARGV("--lease=lockd,dir=/srv/ls", "a.img", "mnt");
    cr_assert_eq(parse(a, 3, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.flags.lease, "lockd,dir=/srv/ls");
    char **b = ARGV("a.img", "mnt", "-o", "lease.host_id=3,lease=sanlock,"
                    "lease.lockspace=/s/ls:1048576,locking=off");
    cr_assert_eq(parse(b, 4, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.flags.lease, "sanlock,host_id=3,lockspace=/s/ls:1048576");
    cr_assert_eq(c.flags.locking, BD_LOCKING_OFF);
    /* a read-only mount takes no lease, but the spec is still checked */
    char **r = ARGV("-r", "--lease=lockd", "a.img", "mnt");
    cr_assert_eq(parse(r, 4, &c, &err), 0, "%s", err.msg);
    cr_assert_null(c.flags.lease);
    char **bad = ARGV("-r", "--lease=lockd,host_id=1", "a.img", "mnt");
    cr_assert_eq(parse(bad, 4, &c, &err), -EINVAL);
    cr_assert(strstr(err.msg, "unknown option 'host_id' for lockd"), "%s", err.msg);
    char **none = ARGV("--lease=none", "a.img", "mnt");
    cr_assert_eq(parse(none, 3, &c, &err), 0, "%s", err.msg);
    cr_assert_null(c.flags.lease);
    char **orphan = ARGV("-o", "lease.dir=/x", "a.img", "mnt");
    cr_assert_eq(parse(orphan, 4, &c, &err), -EINVAL);
    cr_assert(strstr(err.msg, "without a lease manager"), "%s", err.msg);
}

Test(cli, lease_init_subcommand)
{
    struct bd_err err = { 0 };
    char **a = ARGV("lease", "init", "sanlock,lockspace=/s/ls,io_timeout=2");
    cr_assert_eq(parse(a, 3, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.cmd, CLI_LEASE);
    cr_assert_str_eq(c.lease_spec, "sanlock,lockspace=/s/ls,io_timeout=2");
    char **b = ARGV("lease", "format", "lockd");
    cr_assert_eq(parse(b, 3, &c, &err), -EINVAL);
    cr_assert(strstr(err.msg, "usage: imgfuse lease init SPEC"), "%s", err.msg);
}

Test(cli, partition_overlay_and_snapshot_flag)
{
    struct bd_err err = { 0 };
    cr_assert_eq(parse(ARGV("--partition=5", "d.img", "p5.raw"), 0, &c, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(c.partition, 5);
    cr_assert_eq(parse(ARGV("d.img", "p.raw", "-o", "partition=2,ro"), 0, &c, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(c.partition, 2);
    cr_assert(c.flags.read_only);
    cr_assert_lt(parse(ARGV("--partition=0", "d.img", "p.raw"), 0, &c, &err), 0);
    cr_assert(strstr(err.msg, "partition number"), "%s", err.msg);
    cr_assert_lt(parse(ARGV("--partition=x", "d.img", "p.raw"), 0, &c, &err), 0);

    cr_assert_eq(parse(ARGV("--overlay=o.qcow2", "e.dmg", "e.raw"), 0, &c, &err), 0,
                 "%s", err.msg);
    cr_assert_str_eq(c.overlay, "o.qcow2");
    /* -o snapshot without a value is QEMU's throw-away overlay; with one it
     * still names an internal snapshot */
    cr_assert_eq(parse(ARGV("e.dmg", "e.raw", "-o", "snapshot"), 0, &c, &err), 0,
                 "%s", err.msg);
    cr_assert_str_eq(c.overlay, "temp");
    cr_assert_eq(parse(ARGV("d.qcow2", "d.raw", "-o", "snapshot=s1"), 0, &c, &err), 0,
                 "%s", err.msg);
    cr_assert_null(c.overlay);
    cr_assert(strstr(c.fmt_opts, "snapshot=s1"));
    cr_assert_lt(parse(ARGV("--overlay=o", "a.img", "b.img", "dir"), 0, &c, &err), 0);
    cr_assert_lt(parse(ARGV("--overlay=o", "--growable", "a.img", "a.raw"), 0, &c, &err), 0);

    cr_assert_eq(parse(ARGV("info", "--json", "--backing-chain", "a.qcow2"), 0, &c,
                       &err), 0, "%s", err.msg);
    cr_assert(c.json && c.backing_chain);
}

Test(cli, preallocate_with_and_without_a_size_and_in_dash_o)
{
    struct bd_err err = { 0 };
    cr_assert_eq(parse(ARGV("--preallocate", "a.qcow2", "mnt"), 0, &c, &err), 0,
                 "%s", err.msg);
    cr_expect_str_eq(c.file_filter, "driver=preallocate");
    cr_expect_str_eq(c.fmt_opts, "");
    cr_assert_eq(parse(ARGV("--preallocate=64M", "a.qcow2", "mnt"), 0, &c, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(c.file_filter, "driver=preallocate,prealloc-size=64M");
    cr_assert_eq(parse(ARGV("a.qcow2", "mnt", "-o", "preallocate=1G,ro"), 0, &c,
                       &err), 0, "%s", err.msg);
    cr_expect_str_eq(c.file_filter, "driver=preallocate,prealloc-size=1G");
    cr_assert_eq(parse(ARGV("-o", "preallocate", "a.qcow2", "mnt"), 0, &c, &err),
                 0, "%s", err.msg);
    cr_expect_str_eq(c.file_filter, "driver=preallocate");
    cr_expect_eq(parse(ARGV("--preallocate=", "a.qcow2", "mnt"), 0, &c, &err),
                 -EINVAL);
    cr_expect(strstr(err.msg, "give a size"), "%s", err.msg);
}

Test(cli, object_secret_is_kept_and_its_inline_data_blanked_in_argv)
{
    struct bd_err err = { 0 };
    char o1[] = "secret,id=k0,data=hunter2,format=raw";
    char o2[] = "--object=secret,id=k1,data=a,,b";
    char **a = ARGV("info", "--object", o1, o2, "--key-prompt", "x.img");
    cr_assert_eq(parse(a, 6, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.nobjects, 2);
    cr_assert_str_eq(c.objects[0], "secret,id=k0,data=hunter2,format=raw");
    cr_assert_str_eq(c.objects[1], "secret,id=k1,data=a,,b");
    cr_assert_str_eq(o1, "secret,id=k0,data=xxxxxxx,format=raw");
    cr_assert_str_eq(o2, "--object=secret,id=k1,data=xxxx");
    cr_assert(c.key_prompt);
    char **b = ARGV("create", "-F", "raw", "--object", "secret,id=k,file=/f",
                    "-o", "key-secret=k", "f.img", "1M");
    cr_assert_eq(parse(b, 8, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.objects[0], "secret,id=k,file=/f");
    cr_assert_str_eq(c.create_opts, "key-secret=k");
}

Test(cli, dash_o_object_gathers_the_items_a_secret_takes)
{
    struct bd_err err = { 0 };
    char o[] = "ro,object=secret,id=k,file=/etc/k.key,format=raw,"
               "encrypt.key-secret=k,format=qcow2,object=secret,id=j,"
               "data=pw,format=base64,allow_other";
    char **a = ARGV("d.qcow2", "mnt", "-o", o);
    cr_assert_eq(parse(a, 4, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.nobjects, 2);
    cr_assert_str_eq(c.objects[0], "secret,id=k,file=/etc/k.key,format=raw");
    cr_assert_str_eq(c.objects[1], "secret,id=j,data=pw,format=base64");
    cr_assert_str_eq(c.format, "qcow2");
    cr_assert_str_eq(c.fmt_opts, "encrypt.key-secret=k");
    cr_assert(strstr(c.fuse_opts, "allow_other"));
    cr_assert(c.flags.read_only);
    cr_assert(strstr(o, ",data=xx,"), "inline data not blanked: %s", o);
    /* format=raw right after a secret is the secret's; a second id= is not */
    char p[] = "object=secret,id=a,file=/k,id=b";
    char **b = ARGV("d", "m", "-o", p);
    cr_assert_eq(parse(b, 4, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(c.objects[0], "secret,id=a,file=/k");
    cr_assert_str_eq(c.fmt_opts, "id=b");   /* the driver refuses it later */
}
