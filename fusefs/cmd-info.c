/*
 * `imgfuse info`: format, sizes, the backing chain, lock holders and the
 * format's own fields, as text or as stable JSON.
 */
#include "cmds.h"
#include "core/graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static bool is_number(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
    }
    return strlen(s) < 19 && (s[0] != '0' || !s[1]);
}

struct json_kv {
    FILE *out;
    bool first;
    bool qemu_keys;                 /* "cluster_size" -> "cluster-size" */
};

static void print_kv_json(void *arg, const char *key, const char *val)
{
    struct json_kv *j = arg;
    if (!j->first)
        fputs(", ", j->out);
    j->first = false;
    if (j->qemu_keys) {
        char k[128];
        snprintf(k, sizeof(k), "%s", key);
        for (char *p = k; *p; p++) {
            if (*p == '_' || *p == ' ')
                *p = '-';
        }
        json_str(j->out, k);
    } else {
        json_str(j->out, key);
    }
    fputs(": ", j->out);
    if (is_number(val) || !strcmp(val, "true") || !strcmp(val, "false"))
        fputs(val, j->out);
    else
        json_str(j->out, val);
}

/* The facts qemu-img shows at the top level, found among the format's own
 * fields (drivers name them their own way). */
struct shared_facts {
    long long cluster_size;         /* -1: unknown */
    int dirty;                      /* -1: unknown */
    int nfields;
};

static void find_facts(void *arg, const char *key, const char *val)
{
    struct shared_facts *f = arg;
    const char *g;
    f->nfields++;
    if (!strcmp(key, "cluster_size") || !strcmp(key, "cluster size") ||
        !strcmp(key, "block size"))
        f->cluster_size = atoll(val);
    else if (!strncmp(key, "extent 1", 8) && (g = strstr(val, "grain ")) &&
             strstr(g, "KiB"))
        f->cluster_size = atoll(g + 6) * 1024;      /* vmdk's grain */
    else if (!strcmp(key, "dirty"))         /* qcow2's (qed's need-check is not,
                                               for qemu-img) */
        f->dirty = !strcmp(val, "yes") || !strcmp(val, "true");
}

/* Formats whose qemu driver reports a cluster size and a dirty flag
 * (qemu-img shows both keys for them, and only for them). */
static bool qemu_reports_facts(const char *fmt)
{
    static const char *const fmts[] = { "raw", "qcow2", "qed", "vdi", "vpc",
                                        "vhdx", "vmdk", "qcow", NULL };
    for (size_t i = 0; fmts[i]; i++) {
        if (!strcmp(fmt, fmts[i]))
            return true;
    }
    return false;
}

static void print_partitions_json(FILE *out, struct bd_node *n)
{
    struct bd_partition_table t;
    struct bd_err err = { 0 };
    if (bd_node_partitions(n, &t, &err) < 0 || !t.type[0]) {
        if (err.errnum == 0)
            bd_partition_table_free(&t);
        return;
    }
    fputs(", \"partition-table\": {\"type\": ", out);
    json_str(out, t.type);
    fputs(", \"id\": ", out);
    json_str(out, t.id);
    fputs(", \"partitions\": [", out);
    for (size_t i = 0; i < t.n; i++) {
        const struct bd_partition *p = &t.v[i];
        fprintf(out, "%s{\"number\": %u, \"start\": %" PRIu64 ", \"length\": %"
                PRIu64 ", \"type\": ", i ? ", " : "", p->number, p->off, p->len);
        json_str(out, p->type);
        fprintf(out, ", \"extended\": %s, \"logical\": %s",
                p->container ? "true" : "false", p->logical ? "true" : "false");
        const char *keys[] = { "uuid", "name", "filesystem", "label", "fs-uuid" };
        const char *vals[] = { p->uuid, p->name, p->fs_type, p->fs_label, p->fs_uuid };
        for (size_t k = 0; k < 5; k++) {
            if (!vals[k][0])
                continue;
            fprintf(out, ", \"%s\": ", keys[k]);
            json_str(out, vals[k]);
        }
        fputc('}', out);
    }
    fputs("]}", out);
    bd_partition_table_free(&t);
}

static void print_snapshots_json(FILE *out, struct bd_node *n)
{
    char **names = NULL;
    int count = bd_node_snapshots(n, &names);
    if (count <= 0) {
        free(names);
        return;
    }
    fputs(", \"snapshots\": [", out);
    for (int k = 0; k < count; k++) {
        fputs(k ? ", {\"name\": " : "{\"name\": ", out);
        json_str(out, names[k]);
        fputc('}', out);
        free(names[k]);
    }
    fputc(']', out);
    free(names);
}

static void print_chain_json(FILE *out, struct bd_node *n, const char *name,
                             bool top);

/* The backing file's name as qemu-img shows it: a relative name taken
 * relative to the directory of the image's name as given. */
static void combine_name(const char *image, const char *name, char *buf,
                         size_t size)
{
    const char *slash = strrchr(image, '/');
    if (name[0] == '/' || strstr(name, "://") || !strncmp(name, "json:", 5) ||
        !slash || strstr(image, "://"))
        snprintf(buf, size, "%s", name);
    else
        snprintf(buf, size, "%.*s%s", (int)(slash - image + 1), image, name);
}

/* One image as qemu-img info --output=json shows it, with our own fields
 * (protocol, partition-table, backing-chain) under names qemu-img does not
 * use. top: the image asked about (its partitions, its chain). */
static void print_node_json(FILE *out, struct bd_node *n, const char *name,
                            bool top, bool chain)
{
    char full[4096] = "";
    int64_t size = bd_size(n), alloc = bd_allocated_size(n);
    struct shared_facts f = { .cluster_size = -1, .dirty = -1 };
    bd_node_info(n, BD_INFO_FORMAT, find_facts, &f);
    fprintf(out, "{\"virtual-size\": %" PRId64 ", \"filename\": ", size);
    json_str(out, name);
    if (qemu_reports_facts(n->drv->name) && f.cluster_size > 0)
        fprintf(out, ", \"cluster-size\": %lld", f.cluster_size);
    fputs(", \"format\": ", out);
    json_str(out, n->drv->name);
    if (alloc >= 0)
        fprintf(out, ", \"actual-size\": %" PRId64, alloc);
    if (f.nfields) {
        struct json_kv j = { .out = out, .first = true, .qemu_keys = true };
        fputs(", \"format-specific\": {\"type\": ", out);
        json_str(out, n->drv->name);
        fputs(", \"data\": {", out);
        bd_node_info(n, BD_INFO_FORMAT, print_kv_json, &j);
        fputs("}}", out);
    }
    if (n->backing_name) {
        combine_name(name, n->backing_name, full, sizeof(full));
        fputs(", \"full-backing-filename\": ", out);
        json_str(out, full);
        fputs(", \"backing-filename\": ", out);
        json_str(out, n->backing_name);
        /* a vmdk's parent is a vmdk by definition: qemu-img says so */
        const char *bf = n->backing_fmt ? n->backing_fmt
                         : !strcmp(n->drv->name, "vmdk") ? "vmdk" : NULL;
        if (bf) {
            fputs(", \"backing-filename-format\": ", out);
            json_str(out, bf);
        }
    }
    if (qemu_reports_facts(n->drv->name))
        fprintf(out, ", \"dirty-flag\": %s", f.dirty > 0 ? "true" : "false");
    print_snapshots_json(out, n);
    struct json_kv j = { .out = out, .first = true };
    fputs(", \"protocol\": {", out);
    bd_node_info(n, BD_INFO_PROTOCOL, print_kv_json, &j);
    fputc('}', out);
    if (top)
        print_partitions_json(out, n);
    if (top && !chain) {
        fputs(", \"backing-chain\": [", out);
        print_chain_json(out, n->backing, full, false);
        fputc(']', out);
    }
    fputc('}', out);
}

/* n and the images below it, each named as the one above names it. */
static void print_chain_json(FILE *out, struct bd_node *n, const char *name,
                             bool top)
{
    char full[4096] = "";
    for (; n; n = n->backing) {
        print_node_json(out, n, name, top, true);
        if (!n->backing || !n->backing_name)
            break;
        fputs(", ", out);
        combine_name(name, n->backing_name, full, sizeof(full));
        name = full;
        top = false;
    }
}

static void human_size(int64_t v, char *buf, size_t size)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double d = (double)v;
    unsigned u = 0;
    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.3g %s" : "%.0f %s", d, units[u]);
}

struct text_kv {
    FILE *out;
    const char *ind;
};

static void print_kv_text(void *arg, const char *key, const char *val)
{
    struct text_kv *t = arg;
    fprintf(t->out, "%s%s: %s\n", t->ind, key, val);
}

static void print_node_text(FILE *out, struct bd_node *n, unsigned level)
{
    int64_t size = bd_size(n), alloc = bd_allocated_size(n);
    char hs[32], ha[32];
    char ind[64];
    struct text_kv t = { .out = out, .ind = ind };
    snprintf(ind, sizeof(ind), "%*s", (int)(level < 15 ? level * 4 : 60), "");
    human_size(size, hs, sizeof(hs));
    fprintf(out, "%simage: %s\n", ind, bd_node_image_name(n));
    fprintf(out, "%sfile format: %s\n", ind, n->drv->name);
    fprintf(out, "%svirtual size: %s (%" PRId64 " bytes)\n", ind, hs, size);
    if (alloc >= 0) {
        human_size(alloc, ha, sizeof(ha));
        fprintf(out, "%sdisk size: %s (%" PRId64 " bytes)\n", ind, ha, alloc);
    }
    bd_node_info(n, BD_INFO_FORMAT, print_kv_text, &t);
    bd_node_info(n, BD_INFO_PROTOCOL, print_kv_text, &t);
    if (n->backing) {
        fprintf(out, "%sbacking file:\n", ind);
        print_node_text(out, n->backing, level + 1);
    }
}

static void print_partitions_text(FILE *out, struct bd_node *n)
{
    struct bd_partition_table t;
    struct bd_err err = { 0 };
    if (bd_node_partitions(n, &t, &err) < 0) {
        fprintf(out, "partition table: unreadable (%s)\n", err.msg);
        return;
    }
    if (t.type[0]) {
        fprintf(out, "partition table: %s, id %s\n", t.type, t.id);
        for (size_t i = 0; i < t.n; i++) {
            const struct bd_partition *p = &t.v[i];
            char hs[32];
            human_size((int64_t)p->len, hs, sizeof(hs));
            fprintf(out, "    partition %u: start %" PRIu64 ", %s (%" PRIu64
                    " bytes), type %s%s", p->number, p->off, hs, p->len, p->type,
                    p->container ? ", extended" : p->logical ? ", logical" : "");
            if (p->name[0])
                fprintf(out, ", name '%s'", p->name);
            if (p->fs_type[0])
                fprintf(out, ", filesystem %s", p->fs_type);
            if (p->fs_label[0])
                fprintf(out, ", label '%s'", p->fs_label);
            fputc('\n', out);
        }
    }
    bd_partition_table_free(&t);
}

int cmd_info(struct cli *c)
{
    struct bd_err err = { 0 };
    struct bd_node *n;
    struct bd_flags f = c->flags;
    char xopts[sizeof(c->fmt_opts) + 512];
    f.read_only = true;
    /* info reads while a VM may be running: share like qemu-img -U would
     * only when asked; otherwise a plain read lock. */
    int r = bd_open_image(c->sources[0], c->format,
                              cli_source_opts(c, c->sources[0], xopts, sizeof(xopts)), &f, &n, &err);
    if (r == -EAGAIN && !f.force_share) {
        /* In use by a writer: describe it anyway, without locks, and say
         * that what we print may be changing under us. */
        fprintf(stderr, "imgfuse: warning: %s\nimgfuse: warning: showing it "
                "without locking (as with -U); figures may be stale\n", err.msg);
        bd_err_clear(&err);
        f.force_share = true;
        r = bd_open_image(c->sources[0], c->format,
                              cli_source_opts(c, c->sources[0], xopts, sizeof(xopts)), &f, &n, &err);
    }
    if (r < 0) {
        fprintf(stderr, "imgfuse: %s\n", err.msg);
        return 1;
    }
    if (c->json && c->backing_chain) {
        /* qemu-img info --backing-chain --output=json: an array, top first */
        fputc('[', stdout);
        print_chain_json(stdout, n, bd_node_image_name(n), true);
        fputs("]\n", stdout);
    } else if (c->json) {
        print_node_json(stdout, n, bd_node_image_name(n), true, false);
        fputc('\n', stdout);
    } else {
        print_node_text(stdout, n, 0);
        print_partitions_text(stdout, n);
    }
    bd_node_close(n);
    return 0;
}
