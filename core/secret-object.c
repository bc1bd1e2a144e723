/*
 * `--object secret,id=ID,data=STRING|file=PATH[,format=raw|base64]`, the
 * way QEMU spells a secret: parse one such spec and define the secret.
 * A file's bytes are the secret as they are (a trailing newline is part of
 * it, as in QEMU). No message here ever shows a value that may be secret.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bd.h"
#include "core/graph.h"

#define SECRET_MAX_LEN (1u << 20)   /* a passphrase or a key file, not a disk */

struct secret_spec {
    char *id, *data, *file, *format;
};

/* Base64 (RFC 4648, standard alphabet, padding optional, whitespace
 * ignored) of s into out (room for strlen(s) bytes); the length, or -1. */
static long base64_decode(const char *s, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    long n = 0;
    for (; *s; s++) {
        int v;
        char ch = *s;
        if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
            continue;
        if (ch == '=') {
            pad++;
            continue;
        }
        if (pad)
            return -1;              /* data after the padding */
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '+')
            v = 62;
        else if (ch == '/')
            v = 63;
        else
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* leftover bits: 0 (complete), 2 (one '=' due) or 4 (two '=' due);
     * like QEMU, the unused low bits of the last character are ignored */
    if (bits == 6 || (pad && pad != bits / 2))
        return -1;
    explicit_bzero(&acc, sizeof(acc));
    return n;
}

static bool valid_id(const char *id)
{
    if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z')))
        return false;
    for (const char *p = id; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return false;
    }
    return strlen(id) < 128;
}

/* Split spec (modified in place, ",," is a comma) into its fields. */
static int parse_spec(char *spec, struct secret_spec *f, struct bd_err *err)
{
    static const char *const keys[] = { "id", "data", "file", "format",
                                        "keyid", "iv", NULL };
    bool has_data = strstr(spec, "data=") != NULL;
    char *p = spec;
    size_t k = 0;
    memset(f, 0, sizeof(*f));
    for (;;) {
        char *item = p, *w = p;
        /* unescape ",," in place up to the next single comma */
        while (*p && !(*p == ',' && p[1] != ',')) {
            if (*p == ',')
                p++;
            *w++ = *p++;
        }
        bool last = !*p;
        if (!last)
            p++;
        *w = '\0';
        if (k++ == 0) {
            if (strcmp(item, "secret") != 0 && strcmp(item, "qom-type=secret"))
                return bd_err_set(err, EINVAL, "--object %s: only secret "
                                  "objects are supported (--object secret,"
                                  "id=ID,file=PATH)", has_data ? "..." : item);
        } else if (*item) {
            char *eq = strchr(item, '=');
            char **slot = NULL;
            if (eq) {
                *eq = '\0';
                if (!strcmp(item, "id")) slot = &f->id;
                else if (!strcmp(item, "data")) slot = &f->data;
                else if (!strcmp(item, "file")) slot = &f->file;
                else if (!strcmp(item, "format")) slot = &f->format;
                else if (!strcmp(item, "keyid") || !strcmp(item, "iv"))
                    return bd_err_set(err, ENOTSUP, "--object secret: "
                                      "encrypted secrets (keyid=, iv=) are not "
                                      "supported; give the plain secret with "
                                      "file=PATH");
            }
            if (!slot) {
                const char *hint = eq && !has_data ? bd_suggest(item, keys)
                                                   : NULL;
                if (has_data)   /* the item may be a piece of the secret */
                    return bd_err_set(err, EINVAL, "--object secret: an item "
                                      "is not id=, data=, file= or format= (a "
                                      "comma inside data= is written ',,')");
                if (hint)
                    return bd_err_set(err, EINVAL, "--object secret: unknown "
                                      "property '%s' (did you mean '%s'?)",
                                      item, hint);
                return bd_err_set(err, EINVAL, "--object secret: '%s' is not "
                                  "one of id=, data=, file=, format=", item);
            }
            if (*slot)
                return bd_err_set(err, EINVAL, "--object secret: %s= is given "
                                  "twice", item);
            *slot = eq + 1;
        }
        if (last)
            break;
    }
    if (!f->id)
        return bd_err_set(err, EINVAL, "--object secret: give it a name with "
                          "id=ID (drivers refer to it as key-secret=ID)");
    if (!valid_id(f->id))
        return bd_err_set(err, EINVAL, "--object secret,id=%s: an id starts "
                          "with a letter and has only letters, digits, '-', "
                          "'_' and '.'", f->id);
    if (!f->data == !f->file)
        return bd_err_set(err, EINVAL, "--object secret,id=%s: give exactly "
                          "one of data=STRING or file=PATH", f->id);
    if (f->format && strcmp(f->format, "raw") && strcmp(f->format, "base64"))
        return bd_err_set(err, EINVAL, "--object secret,id=%s: format=%s: use "
                          "format=raw or format=base64", f->id, f->format);
    return 0;
}

/* The bytes of file `path` into *buf (malloc'd; caller wipes and frees). */
static int read_secret_file(const char *id, const char *path, char **buf,
                            size_t *len, struct bd_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0)
        return bd_err_set(err, errno, "--object secret,id=%s: cannot read "
                          "file %s: %s", id, path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > SECRET_MAX_LEN) {
        close(fd);
        return bd_err_set(err, EINVAL, "--object secret,id=%s: file %s is "
                          "not a regular file of at most 1 MiB", id, path);
    }
    char *b = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    if (!b) {
        close(fd);
        return bd_err_set(err, ENOMEM, "out of memory");
    }
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            explicit_bzero(b, n);
            free(b);
            close(fd);
            return bd_err_set(err, e, "--object secret,id=%s: reading file "
                              "%s: %s", id, path, r < 0 ? strerror(e)
                              : "it shrank while read");
        }
        n += (size_t)r;
    }
    close(fd);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int bd_secret_object(const char *spec, struct bd_err *err)
{
    struct secret_spec f;
    char *copy = strdup(spec);
    char *fbuf = NULL;
    uint8_t *dec = NULL;
    size_t spec_len = strlen(spec), len = 0;
    int r;
    if (!copy)
        return bd_err_set(err, ENOMEM, "out of memory");
    r = parse_spec(copy, &f, err);
    if (r < 0)
        goto out;
    const char *bytes = f.data;
    len = f.data ? strlen(f.data) : 0;
    if (f.file) {
        r = read_secret_file(f.id, f.file, &fbuf, &len, err);
        if (r < 0)
            goto out;
        bytes = fbuf;
    }
    if (f.format && !strcmp(f.format, "base64")) {
        long n;
        dec = malloc(len + 1);
        if (!dec) {
            r = bd_err_set(err, ENOMEM, "out of memory");
            goto out;
        }
        n = base64_decode(bytes, dec);
        if (n < 0) {
            explicit_bzero(dec, len + 1);
            r = bd_err_set(err, EINVAL, "--object secret,id=%s: the %s is "
                           "not valid base64 (format=base64)", f.id,
                           f.file ? "file's content" : "data");
            goto out;
        }
        r = bd_secret_define(f.id, dec, (size_t)n, err);
        explicit_bzero(dec, len + 1);
    } else {
        r = bd_secret_define(f.id, bytes, len, err);
    }
out:
    if (fbuf) {
        explicit_bzero(fbuf, len);
        free(fbuf);
    }
    free(dec);
    explicit_bzero(copy, spec_len);
    free(copy);
    return r;
}
