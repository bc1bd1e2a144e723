/*
 * imgfuse's entry point: parse the command line and run a subcommand. The
 * one place where errors are printed for the user.
 */
#include "config.h"
#include "cli.h"
#include "cmds.h"
#include "mount.h"
#include "progress.h"

#include <stdio.h>
#include <fuse_lowlevel.h>

static int run(struct cli *c, const char *argv0)
{
    switch (c->cmd) {
    case CLI_HELP:
        fputs(cli_usage, stdout);
        return 0;
    case CLI_VERSION:
        printf("imgfuse %s (libfuse %s)\n", IMGFUSE_VERSION, fuse_pkgversion());
        return 0;
    case CLI_INFO:
        return cmd_info(c);
    case CLI_CREATE:
        return cmd_create(c);
    case CLI_CHECK:
        return cmd_check(c);
    case CLI_LEASE:
        return cmd_lease(c);
    case CLI_LIST:
        return cmd_list(c);
    default:
        return fusefs_mount_main(argv0, c);
    }
}

int main(int argc, char **argv)
{
    struct cli c;
    struct bd_err err = { 0 };
    int rc;
    if (cli_parse(argc, argv, &c, &err) < 0) {
        fprintf(stderr, "imgfuse: %s\n", err.msg);
        cli_free(&c);
        return 2;
    }
    if (cli_define_secrets(&c, &err) < 0) {
        fprintf(stderr, "imgfuse: %s\n", err.msg);
        cli_free(&c);
        bd_secret_wipe_all();
        return 2;
    }
    fusefs_progress_init(c.quiet);
    rc = run(&c, argv[0]);
    cli_free(&c);
    bd_secret_wipe_all();
    return rc;
}
