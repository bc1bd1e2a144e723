/*
 * `imgfuse info`: format, sizes, the backing chain, lock holders and the
 * format's own fields, as text or as stable JSON.
 */
#include "cmds.h"
#include "core/graph.h"

#include <inttypes.h>
#include <stdio.h>
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
};

static void print_kv_json(void *arg, const char *key, const char *val)
{
    struct json_kv *j = arg;
    if (!j->first)
        fputs(", ", j->out);
    j->first = false;
    json_str(j->out, key);
    fputs(": ", j->out);
    if (is_number(val) || !strcmp(val, "true") || !strcmp(val, "false"))
        fputs(val, j->out);
    else
        json_str(j->out, val);
}

static void print_part_json(FILE *out, struct bd_node *n, enum bd_info_part part)
{
    struct json_kv j = { .out = out, .first = true };
    fputc('{', out);
    bd_node_info(n, part, print_kv_json, &j);
    fputc('}', out);
}

static void print_node_json(FILE *out, struct bd_node *n, bool top)
{
    int64_t size = bd_size(n), alloc = bd_allocated_size(n);
    fputs("{\"filename\": ", out);
    json_str(out, bd_node_image_name(n));
    fputs(", \"format\": ", out);
    json_str(out, n->drv->name);
    fprintf(out, ", \"virtual-size\": %" PRId64, size);
    if (alloc >= 0)
        fprintf(out, ", \"actual-size\": %" PRId64, alloc);
    fputs(", \"format-specific\": ", out);
    print_part_json(out, n, BD_INFO_FORMAT);
    fputs(", \"protocol\": ", out);
    print_part_json(out, n, BD_INFO_PROTOCOL);
    if (top) {
        fputs(", \"backing-chain\": [", out);
        bool first = true;
        for (struct bd_node *b = n->backing; b; b = b->backing) {
            if (!first)
                fputs(", ", out);
            first = false;
            print_node_json(out, b, false);
        }
        fputc(']', out);
    }
    fputc('}', out);
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
    if (c->json) {
        print_node_json(stdout, n, true);
        fputc('\n', stdout);
    } else {
        print_node_text(stdout, n, 0);
    }
    bd_node_close(n);
    return 0;
}
