/*
 * lockd leases, on disk exactly as libvirt's virtlockd keeps them with
 * file_lockspace_dir: one zero-length file per image in a directory the
 * hosts share, named by the SHA-256 (hex) of the image's absolute path as
 * written, and a POSIX (fcntl) lock on its byte 0, length 1: exclusive for
 * a writer, shared for a --share-rw writer or a read-only layer. dir=direct
 * takes that lock on byte 0 of the image itself. A lock lives as long as
 * this process holds the file open: a killed imgfuse releases it.
 *
 * POSIX locks belong to the process, and closing any descriptor of a file
 * drops all of the process's locks on it; so every lease file is opened
 * once per process (the table below), however many nodes lease it.
 */
#include "lease-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCKD_RETRIES 10    /* the file was replaced between open and lock */

#define LOCKD_PATH_MAX (PATH_MAX + 70)  /* DIR/ + 64 hex digits */

struct held {                   /* one lease file this process locks */
    char path[LOCKD_PATH_MAX];
    int fd;
    enum lease_mode mode;
    unsigned refs;
    struct held *next;
};

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static struct held *held_list;

struct lockd_lease {
    struct held *files[2];      /* the name as written, the canonical one */
    unsigned nfiles;
    int direct_fd;              /* dir=direct: the image; -1 otherwise */
};

static int setlk(int fd, enum lease_mode mode)
{
    struct flock fl = {
        .l_type = mode == LEASE_EXCLUSIVE ? F_WRLCK : F_RDLCK,
        .l_whence = SEEK_SET, .l_start = 0, .l_len = 1,
    };
    return fcntl(fd, F_SETLK, &fl) == 0 ? 0 : -errno;
}

/* "held exclusively by pid 42" for the lock that keeps us out */
static void describe_holder(int fd, enum lease_mode mode, char *buf, size_t size)
{
    struct flock fl = {
        .l_type = mode == LEASE_EXCLUSIVE ? F_WRLCK : F_RDLCK,
        .l_whence = SEEK_SET, .l_start = 0, .l_len = 1,
    };
    if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) {
        snprintf(buf, size, "held by another process or host");
        return;
    }
    const char *how = fl.l_type == F_WRLCK ? "exclusively" : "shared";
    if (fl.l_pid > 0)
        snprintf(buf, size, "held %s by pid %d (on this host, or on the host "
                 "that took it if the directory is on shared storage)", how,
                 (int)fl.l_pid);
    else
        snprintf(buf, size, "held %s by another host or an OFD lock", how);
}

static int refuse(const char *image, const char *what, int fd,
                  enum lease_mode mode, struct bd_err *err)
{
    char holder[200];
    describe_holder(fd, mode, holder, sizeof(holder));
    return bd_err_set(err, EAGAIN, "%s: the lockd lease %s is %s; another "
                      "host or program uses the image. Mount it read-only (-r), "
                      "or stop the other user first", image, what, holder);
}

static bool same_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev
           && a.st_ino == b.st_ino;
}

/* Open and lock dir/name; called with held_lock held. */
static int lock_file(const char *lpath, const char *image, enum lease_mode mode,
                     struct held **out, struct bd_err *err)
{
    for (struct held *h = held_list; h; h = h->next) {
        if (strcmp(h->path, lpath))
            continue;
        if (h->mode == LEASE_SHARED && mode == LEASE_EXCLUSIVE) {
            if (setlk(h->fd, mode) < 0)
                return refuse(image, lpath, h->fd, mode, err);
            h->mode = mode;
        }
        h->refs++;
        *out = h;
        return 0;
    }
    for (int attempt = 0; attempt < LOCKD_RETRIES; attempt++) {
        int fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return bd_err_set(err, errno, "%s: cannot open the lockd lease %s: "
                              "%s", image, lpath, strerror(errno));
        int r = setlk(fd, mode);
        if (r == -EAGAIN || r == -EACCES) {
            r = refuse(image, lpath, fd, mode, err);
            close(fd);
            return r;
        }
        if (r < 0) {
            close(fd);
            return bd_err_set(err, -r, "%s: cannot lock the lockd lease %s: %s",
                              image, lpath, strerror(-r));
        }
        /* its holder may have deleted it on release (virtlockd does) and
         * someone made a new one: then our lock is on a dead file */
        if (!same_file(fd, lpath)) {
            close(fd);
            continue;
        }
        struct held *h = calloc(1, sizeof(*h));
        if (!h) {
            close(fd);
            return bd_err_set(err, ENOMEM, "out of memory");
        }
        snprintf(h->path, sizeof(h->path), "%s", lpath);
        h->fd = fd;
        h->mode = mode;
        h->refs = 1;
        h->next = held_list;
        held_list = h;
        *out = h;
        return 0;
    }
    return bd_err_set(err, EAGAIN, "%s: the lockd lease %s keeps being replaced "
                      "while we lock it; try again", image, lpath);
}

/* virtlockd's release: an exclusive holder deletes the file; a shared one
 * only when nobody else holds it. Called with held_lock held. */
static void unlock_file(struct held *h)
{
    if (--h->refs)
        return;
    for (struct held **p = &held_list; *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    if (h->mode == LEASE_EXCLUSIVE || setlk(h->fd, LEASE_EXCLUSIVE) == 0) {
        if (same_file(h->fd, h->path))
            unlink(h->path);
    }
    close(h->fd);
    free(h);
}

static int lock_direct(const char *path, int fd, enum lease_mode mode,
                       struct bd_err *err)
{
    int r = setlk(fd, mode);
    if (r == -EAGAIN || r == -EACCES)
        return refuse(path, "(byte 0 of the image, dir=direct)", fd, mode, err);
    if (r == -EBADF)
        return bd_err_set(err, EBADF, "%s: dir=direct: the image is open "
                          "read-only, which cannot take an exclusive lock", path);
    if (r < 0)
        return bd_err_set(err, -r, "%s: cannot lock byte 0 (dir=direct): %s",
                          path, strerror(-r));
    return 0;
}

int lockd_acquire(const struct lease_conf *c, const char *path, int fd,
                  enum lease_mode mode, void **priv, struct bd_err *err)
{
    struct lockd_lease *l = calloc(1, sizeof(*l));
    if (!l)
        return bd_err_set(err, ENOMEM, "out of memory");
    l->direct_fd = -1;
    int r = 0;
    if (c->direct) {
        r = lock_direct(path, fd, mode, err);
        if (r == 0)
            l->direct_fd = fd;
        goto out;
    }
    char names[2][PATH_MAX];
    r = lease_abs_path(path, names[0], sizeof(names[0]));
    if (r < 0) {
        r = bd_err_set(err, -r, "%s: the path is too long for a lease name", path);
        goto out;
    }
    unsigned n = 1;
    if (realpath(path, names[1]) && strcmp(names[0], names[1]))
        n = 2;
    if ((r = lease_mkdirs(c->dir, err)) < 0) {
        bd_err_prefix(err, "%s: cannot take its lockd lease", path);
        goto out;
    }
    pthread_mutex_lock(&held_lock);
    for (unsigned i = 0; i < n && r == 0; i++) {
        char hash[65], lpath[LOCKD_PATH_MAX];
        lease_sha256_hex(names[i], hash);
        snprintf(lpath, sizeof(lpath), "%s/%s", c->dir, hash);
        r = lock_file(lpath, path, mode, &l->files[i], err);
        if (r == 0)
            l->nfiles++;
    }
    if (r < 0) {
        for (unsigned i = 0; i < l->nfiles; i++)
            unlock_file(l->files[i]);
    }
    pthread_mutex_unlock(&held_lock);
out:
    if (r < 0) {
        free(l);
        return r;
    }
    *priv = l;
    return 0;
}

void lockd_release(void *priv)
{
    struct lockd_lease *l = priv;
    if (!l)
        return;
    if (l->direct_fd >= 0) {
        struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
                            .l_start = 0, .l_len = 1 };
        fcntl(l->direct_fd, F_SETLK, &fl);
    }
    pthread_mutex_lock(&held_lock);
    for (unsigned i = 0; i < l->nfiles; i++)
        unlock_file(l->files[i]);
    pthread_mutex_unlock(&held_lock);
    free(l);
}

int lockd_init(const struct lease_conf *c, struct bd_err *err)
{
    if (c->direct)
        return 0;
    int r = lease_mkdirs(c->dir, err);
    if (r == 0)
        printf("lockd lockspace directory %s is ready\n", c->dir);
    return r;
}
