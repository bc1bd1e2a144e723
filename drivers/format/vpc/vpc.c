/*
 * vpc: Virtual PC / Hyper-V VHD images, fixed, dynamic and differencing.
 * This file opens a node (options, then header.c's and parent.c's steps),
 * answers size, limits and info, and holds the driver's ops table. I/O,
 * check and create live in their own files; chain walking is core's.
 */
#include "vpc.h"

#include <stdlib.h>
#include <string.h>

/* Creator's printable name for messages and info ("d2v\0" -> "d2v"). */
static void vpc_printable(char *s)
{
    for (size_t i = 0; s[i]; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            s[i] = '?';
    }
}

static const char *const vpc_size_calc_choices[] = { "chs", "current_size", NULL };

static int vpc_read_opts(struct bd_node *n, const struct bd_opts *o,
                         struct vpc_open_opts *oo, struct bd_err *err)
{
    bool force = false;
    int r;

    (void)n;
    r = bd_opts_get_bool(o, "ignore_checksum", false, &oo->ignore_checksum, err);
    if (r < 0 && r != -ENOENT)
        return r;
    r = bd_opts_get_bool(o, "force_size", false, &force, err);
    if (r < 0 && r != -ENOENT)
        return r;
    oo->size_calc = force ? 1 : -1;
    if (bd_opts_has(o, "force_size_calc")) {
        r = bd_opts_get_enum(o, "force_size_calc", vpc_size_calc_choices, -1, err);
        if (r < 0)
            return r;
        oo->size_calc = r;
    }
    return 0;
}

static int vpc_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    struct vpc_state *s = n->state;
    struct vpc_open_opts oo;
    int64_t fsize;
    int r;

    r = vpc_read_opts(n, o, &oo, err);
    if (r < 0)
        return r;
    /* a parent opened for a child read with ignore_checksum=on is read the
     * same way: the option is for recovering the whole disk. The child sets
     * it in its flags, which core copies into the backing node it opens; it
     * counts only from a vpc child (a format in between does not pass a vpc
     * option on) */
    if (n->parent && n->parent->drv == &bd_drv_vpc && n->flags.ignore_checksums)
        oo.ignore_checksum = true;
    n->flags.ignore_checksums = oo.ignore_checksum;
    fsize = bd_size(n->file);
    if (fsize < 0)
        return bd_err_set(err, (int)-fsize, "%s: cannot get the file size: %s",
                          n->name, strerror((int)-fsize));
    r = vpc_load_footer(n, (uint64_t)fsize, &oo, err);
    if (r < 0)
        return r;
    r = vpc_compute_size(n, &oo, err);
    if (r < 0)
        return r;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return bd_err_set(err, ENOMEM, "%s: cannot create a lock", n->name);
    s->lock_init = true;

    if (s->ft.type == VPC_TYPE_FIXED) {
        if (s->size > s->footer_off)
            return bd_err_set(err, EINVAL, "%s: fixed vhd is truncated: virtual "
                              "size %llu but only %llu bytes of data", n->name,
                              (unsigned long long)s->size,
                              (unsigned long long)s->footer_off);
        return vpc_judge_checksums(n, err);
    }
    if (!n->flags.read_only && s->footer_off % BD_SECTOR)
        return bd_err_set(err, EINVAL, "%s: vhd file size is not a multiple of 512; "
                          "mount it read-only (-r)", n->name);
    r = vpc_load_dyn(n, (uint64_t)fsize, &oo, err);
    if (r < 0)
        return r;
    r = vpc_load_bat(n, (uint64_t)fsize, err);
    if (r < 0)
        return r;
    if (s->end_footer_bad) {
        if (!n->flags.read_only)
            return bd_err_set(err, EROFS, "%s: the footer at the end of the vhd "
                              "is damaged; mount read-only (-r) to read the image "
                              "through the copy at its start", n->name);
        log_warn("%s: footer at the end is damaged, using the copy at the start",
                 n->name);
    }
    r = vpc_judge_checksums(n, err);
    if (r < 0)
        return r;
    if (s->ft.type == VPC_TYPE_DIFF)
        return vpc_open_parent(n, (uint64_t)fsize, err);
    return 0;
}

static void vpc_close(struct bd_node *n)
{
    struct vpc_state *s = n->state;

    free(s->bat);
    free(s->retired_bat);
    free(s->parent_name);
    if (s->lock_init)
        pthread_mutex_destroy(&s->lock);
}

static int vpc_probe(const uint8_t *head, size_t len)
{
    /* dynamic and differencing disks start with a footer copy */
    if (len >= VPC_FOOTER_SIZE && vpc_is_footer(head))
        return 100;
    return 0;
}

static void vpc_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct vpc_state *s = n->state;

    lim->request_alignment = BD_SECTOR;
    if (s->block_size)
        lim->opt_transfer = s->block_size;
}

static int64_t vpc_size(struct bd_node *n)
{
    struct vpc_state *s = n->state;

    return (int64_t)s->size;
}

static void vpc_info(struct bd_node *n, struct bd_info *info)
{
    struct vpc_state *s = n->state;
    static const char *const types[] = { [VPC_TYPE_FIXED] = "fixed",
                                         [VPC_TYPE_DYNAMIC] = "dynamic",
                                         [VPC_TYPE_DIFF] = "differencing" };
    char creator[5];

    memcpy(creator, s->ft.creator, sizeof(creator));
    vpc_printable(creator);
    bd_info_add(info, "subformat", "%s", types[s->ft.type]);
    bd_info_add(info, "creator", "%s", creator);
    bd_info_add(info, "geometry", "%u/%u/%u", s->ft.cyls, s->ft.heads, s->ft.spt);
    bd_info_add(info, "size from", "%s", s->size_from_chs ? "chs geometry"
                                                          : "current size");
    if (s->ft.type != VPC_TYPE_FIXED)
        bd_info_add(info, "block size", "%u", s->block_size);
    if (s->parent_name)
        bd_info_add(info, "parent", "%s", s->parent_name);
}

static const char *const vpc_options[] = {
    "force_size", "force_size_calc", "ignore_checksum", NULL
};
static const char *const vpc_create_options[] = { "subformat", "force_size", NULL };

static const struct bd_create_ops vpc_create_ops = {
    .options = vpc_create_options,
    .create = vpc_create,
};

const struct bd_driver bd_drv_vpc = {
    .name = "vpc",
    .kind = BD_FORMAT,
    .options = vpc_options,
    .state_size = sizeof(struct vpc_state),
    .parallel = true,
    .probe = vpc_probe,
    .open = vpc_open,
    .close = vpc_close,
    .limits = vpc_limits,
    .size = vpc_size,
    .pread = vpc_pread,
    .pwrite = vpc_pwrite,
    .pwrite_zeroes = vpc_pwrite_zeroes,
    .truncate = vpc_truncate,
    .block_status = vpc_block_status,
    .info = vpc_info,
    .check = vpc_check,
    .create = &vpc_create_ops,
};
