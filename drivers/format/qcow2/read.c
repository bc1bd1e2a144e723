/*
 * qcow2 guest reads: coalescing contiguous host ranges, decompressing
 * compressed clusters (in parallel for large requests) and falling through
 * to the backing. Writes, zeroes and block status live elsewhere (write.c,
 * zero.c, cluster.c); nothing here changes the image.
 */
#include "qcow2.h"

#include <stdlib.h>
#include <string.h>

/* Read host data; bytes past the known end of the file read as zeroes. */
static int read_host(struct qcow2_state *s, void *buf, uint64_t len,
                     uint64_t host, uint64_t guest)
{
    uint64_t end = qcow2_known_size(qcow2_data_end(s));
    uint64_t n = host >= end ? 0 : (end - host < len ? end - host : len);
    int ret = 0;

    if (n)
        ret = bd_pread(s->data, buf, n, host);
    if (n < len)
        memset((uint8_t *)buf + n, 0, len - n);
    if (ret == 0)
        ret = qcow2_decrypt(s, buf, len, host, guest);
    return ret;
}

static int read_backing(struct qcow2_state *s, void *buf, uint64_t len,
                        uint64_t off)
{
    struct bd_node *b = s->node->backing;
    uint64_t n = 0;
    int ret = 0;

    if (b && off < s->backing_size)
        n = s->backing_size - off < len ? s->backing_size - off : len;
    if (n)
        ret = bd_pread(b, buf, n, off);
    if (n < len)
        memset((uint8_t *)buf + n, 0, len - n);
    return ret;
}

int qcow2_read_compressed(struct qcow2_state *s, const struct qcow2_extent *e,
                          uint8_t *out)
{
    uint64_t fsize = qcow2_known_size(&s->file_size);
    uint64_t csize = e->csize;
    uint8_t *cbuf;
    int ret;

    if (e->host >= fsize) {
        if (!s->io_errors++)
            log_err("%s: compressed cluster at %llu lies beyond the end of "
                    "the file", s->node->name, (unsigned long long)e->host);
        return -EIO;
    }
    if (csize > fsize - e->host)
        csize = fsize - e->host;
    cbuf = malloc(csize);
    if (!cbuf)
        return -ENOMEM;
    ret = bd_pread(s->node->file, cbuf, csize, e->host);
    if (ret == 0) {
        ret = qcow2_decompress(s->h.compression_type, cbuf, csize, out,
                               s->cluster_size);
        if (ret == -EIO && !s->io_errors++)
            log_err("%s: compressed cluster at %llu does not decompress",
                    s->node->name, (unsigned long long)e->host);
    }
    free(cbuf);
    return ret;
}

/* Compressed clusters of one request, decompressed after the walk, by the
 * calling thread and (for several) a helper thread in parallel. */
struct cjob {
    struct qcow2_extent e;
    uint8_t *dst;
    uint64_t skip;              /* bytes of the cluster before dst's part */
};

struct cjobs {
    struct qcow2_state *s;
    struct cjob *v;
    size_t n, cap;
    size_t first, end;          /* slice for one thread */
    int ret;
};

static int cjob_add(struct cjobs *j, const struct qcow2_extent *e, uint8_t *dst,
                    uint64_t skip)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 16;
        struct cjob *v = realloc(j->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        j->v = v;
        j->cap = cap;
    }
    j->v[j->n].e = *e;
    j->v[j->n].dst = dst;
    j->v[j->n].skip = skip;
    j->n++;
    return 0;
}

static void *cjobs_run(void *arg)
{
    struct cjobs *j = arg;
    uint8_t *cl = malloc(j->s->cluster_size);

    j->ret = cl ? 0 : -ENOMEM;
    for (size_t i = j->first; i < j->end && j->ret == 0; i++) {
        struct cjob *c = &j->v[i];
        if (qcow2_ra_copy(j->s, &c->e, c->dst, c->skip))
            continue;
        j->ret = qcow2_read_compressed(j->s, &c->e, cl);
        if (j->ret == 0)
            memcpy(c->dst, cl + c->skip, c->e.len);
    }
    free(cl);
    return NULL;
}

static int cjobs_finish(struct cjobs *j)
{
    struct cjobs half;
    pthread_t t;
    bool helper = false;

    if (!j->n)
        return 0;
    j->first = 0;
    j->end = j->n;
    if (j->n >= 4) {
        half = *j;
        half.first = j->n / 2;
        j->end = j->n / 2;
        helper = pthread_create(&t, NULL, cjobs_run, &half) == 0;
        if (!helper)
            j->end = j->n;
    }
    cjobs_run(j);
    if (helper) {
        pthread_join(t, NULL);
        if (j->ret == 0)
            j->ret = half.ret;
    }
    return j->ret;
}

int qcow2_read(struct qcow2_state *s, void *buf, uint64_t len, uint64_t off)
{
    uint8_t *p = buf;
    uint8_t *pend_buf = NULL;
    uint64_t pend_host = 0, pend_len = 0, pend_guest = 0;
    struct cjobs cj = { .s = s };
    uint64_t start = off;
    int ret = 0;

    /* guest bytes past the virtual size (a snapshot's own size) are zero */
    if (off >= s->size) {
        memset(buf, 0, len);
        return 0;
    }
    if (len > s->size - off) {
        memset(p + (s->size - off), 0, len - (s->size - off));
        len = s->size - off;
    }
    while (len) {
        struct qcow2_extent e;
        ret = qcow2_map(s, off, len, &e);
        if (ret < 0)
            break;
        if (e.type == QCOW2_NORMAL && pend_len &&
            pend_host + pend_len == e.host && pend_buf + pend_len == p) {
            pend_len += e.len;
        } else {
            if (pend_len) {
                ret = read_host(s, pend_buf, pend_len, pend_host, pend_guest);
                pend_len = 0;
                if (ret < 0)
                    break;
            }
            switch (e.type) {
            case QCOW2_NORMAL:
                pend_buf = p;
                pend_guest = off;
                pend_host = e.host;
                pend_len = e.len;
                break;
            case QCOW2_ZERO:
                memset(p, 0, e.len);
                break;
            case QCOW2_UNALLOC:
                ret = read_backing(s, p, e.len, off);
                break;
            case QCOW2_COMPRESSED:
                /* QEMU never compresses an encrypted image */
                ret = s->crypt ? -EIO : cjob_add(&cj, &e, p, off - e.coff);
                break;
            }
            if (ret < 0)
                break;
        }
        p += e.len;
        off += e.len;
        len -= e.len;
    }
    if (ret == 0 && pend_len)
        ret = read_host(s, pend_buf, pend_len, pend_host, pend_guest);
    if (ret == 0 && cj.n)
        qcow2_ra_note(s, start, off - start);
    if (ret == 0)
        ret = cjobs_finish(&cj);
    free(cj.v);
    return ret;
}
