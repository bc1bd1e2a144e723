/*
 * sanlock leases through libsanlock_client: this host joins the lockspace
 * with its host_id, and each image gets a disk-paxos resource lease in a
 * 1 MiB file of the lease directory, named (file and resource alike) by
 * the MD5 (hex) of the image's canonical path, in the lockspace
 * "__LIBVIRT__DISKS__" unless name= says otherwise: the layout of
 * libvirt's auto_disk_leases. The lease file is made on first use.
 *
 * The process registers with the daemon once; its leases live as long as
 * that registration (a killed imgfuse loses them at once). The kill path
 * is /bin/kill -USR1 PID: when sanlock revokes (the lockspace could not be
 * renewed, or another host forced the lease), the handler marks the
 * leases revoked, writes fail with EIO from then on, a thread says so and
 * gives the leases back so that sanlock does not escalate to SIGKILL.
 */
#include "lease-internal.h"
#include "config.h"

#if HAVE_SANLOCK
#include <stdint.h>         /* before sanlock.h, which uses uint32_t bare */
#include <sanlock.h>
#include <sanlock_admin.h>
#include <sanlock_resource.h>
#include <sanlock_rv.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SANLK_LEASE_SIZE (1u << 20)     /* one resource, 512-byte sectors */
#define SANLK_LS_SIZE    (1u << 20)     /* 2000 hosts, 512-byte sectors */

struct sanlk_lease {
    struct sanlk_lease *next;
    unsigned refs;
    char image[PATH_MAX];
    union {                             /* a resource with its one disk */
        struct sanlk_resource res;
        char space[sizeof(struct sanlk_resource) + sizeof(struct sanlk_disk)];
    } u;
};

static pthread_mutex_t sl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sanlk_lease *sl_list;
static int sl_sock = -1;
static atomic_bool sl_revoked;
static int sl_pipe[2] = { -1, -1 };

static void on_revoke(int sig)
{
    (void)sig;
    atomic_store(&sl_revoked, true);
    char c = 1;
    ssize_t w = write(sl_pipe[1], &c, 1);
    (void)w;
}

/* Says so, then gives every lease back, once sanlock has revoked them. */
static void *revoke_main(void *arg)
{
    (void)arg;
    char c;
    while (read(sl_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&sl_lock);
    for (struct sanlk_lease *l = sl_list; l; l = l->next) {
        log_err("%s: sanlock revoked the lease %s (lockspace %.48s): the "
                "mount is read-only now and writes fail with EIO; unmount it",
                l->image, l->u.res.disks[0].path, l->u.res.lockspace_name);
        struct sanlk_resource *rp = &l->u.res;
        sanlock_release(sl_sock, -1, 0, 1, &rp);
    }
    pthread_mutex_unlock(&sl_lock);
    return NULL;
}

static int sl_register(struct bd_err *err)
{
    if (sl_sock >= 0)
        return 0;
    if (sl_pipe[0] < 0 && pipe2(sl_pipe, O_CLOEXEC) != 0)
        return bd_err_set(err, errno, "sanlock: pipe: %s", strerror(errno));
    int sock = sanlock_register();
    if (sock < 0)
        return bd_err_set(err, -sock, "sanlock: cannot register with the "
                          "sanlock daemon (%s); is it running (sanlock daemon, "
                          "or systemctl start sanlock)? SANLOCK_RUN_DIR names "
                          "its directory", strerror(-sock));
    char args[SANLK_HELPER_ARGS_LEN];
    snprintf(args, sizeof(args), "-USR1 %d", (int)getpid());
    const char *kill_prog = access("/bin/kill", X_OK) == 0 ? "/bin/kill"
                                                         : "/usr/bin/kill";
    int r = sanlock_killpath(sock, 0, kill_prog, args);
    if (r < 0) {
        close(sock);
        return bd_err_set(err, -r, "sanlock: cannot set the kill path: %s",
                          strerror(-r));
    }
    struct sigaction sa = { .sa_handler = on_revoke };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, revoke_main, NULL) == 0)
        pthread_detach(t);
    sl_sock = sock;
    return 0;
}

static void set_lockspace(const struct lease_conf *c, struct sanlk_lockspace *ls)
{
    memset(ls, 0, sizeof(*ls));
    memcpy(ls->name, c->ls_name, strnlen(c->ls_name, SANLK_NAME_LEN));
    ls->host_id = c->host_id;
    _Static_assert(sizeof(c->lockspace) == sizeof(ls->host_id_disk.path),
                   "lockspace path sizes");
    memcpy(ls->host_id_disk.path, c->lockspace, sizeof(c->lockspace));
    ls->host_id_disk.offset = c->ls_offset;
}

static int join(const struct lease_conf *c, struct bd_err *err)
{
    struct sanlk_lockspace ls;
    set_lockspace(c, &ls);
    int r = c->io_timeout ? sanlock_add_lockspace_timeout(&ls, 0, c->io_timeout)
                          : sanlock_add_lockspace(&ls, 0);
    while (r == -EINPROGRESS || r == -EAGAIN) {
        usleep(200 * 1000);         /* another process is joining it */
        r = sanlock_inq_lockspace(&ls, 0);
        if (r == -ENOENT)
            r = -EINPROGRESS;
    }
    if (r == 0 || r == -EEXIST)
        return 0;
    return bd_err_set(err, r > -200 ? -r : EIO, "sanlock: cannot join lockspace %s as host_id "
                      "%u on %s:%llu (%s); is it formatted (imgfuse lease init "
                      "sanlock,lockspace=...) and is this host_id not another "
                      "host's?", c->ls_name, c->host_id, c->lockspace,
                      (unsigned long long)c->ls_offset,
                      r > -200 ? strerror(-r) : "sanlock error");
}

/* The lease file dir/NAME, made (1 MiB, formatted) when missing; a race
 * with another host is settled by link(), which only one can win. */
static int make_lease_file(struct sanlk_resource *res, struct bd_err *err)
{
    const char *path = res->disks[0].path;
    if (access(path, F_OK) == 0)
        return 0;
    char tmp[SANLK_PATH_LEN + 32];
    snprintf(tmp, sizeof(tmp), "%s.new.%d", path, (int)getpid());
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return bd_err_set(err, errno, "sanlock: cannot create the lease file "
                          "%s: %s", tmp, strerror(errno));
    int r = ftruncate(fd, SANLK_LEASE_SIZE) == 0 ? 0 : -errno;
    close(fd);
    union {
        struct sanlk_resource res;
        char space[sizeof(struct sanlk_resource) + sizeof(struct sanlk_disk)];
    } w;
    memcpy(&w, res, sizeof(w));
    memset(w.res.disks[0].path, 0, sizeof(w.res.disks[0].path));
    memcpy(w.res.disks[0].path, tmp, strnlen(tmp, SANLK_PATH_LEN - 1));
    if (r == 0)
        r = sanlock_write_resource(&w.res, 0, 0, 0);
    if (r == 0 && link(tmp, path) != 0 && errno != EEXIST)
        r = -errno;
    unlink(tmp);
    if (r < 0)
        return bd_err_set(err, r < -200 ? EIO : -r, "sanlock: cannot make the "
                          "lease file %s (error %d)", path, r);
    return 0;
}

static void describe_owners(struct sanlk_resource *res, char *buf, size_t size)
{
    struct sanlk_host *hs = NULL;
    int n = 0;
    snprintf(buf, size, "another host holds it");
    if (sanlock_read_resource_owners(res, 0, &hs, &n) < 0 || n <= 0) {
        free(hs);
        return;
    }
    size_t l = (size_t)snprintf(buf, size, "held by host_id");
    for (int i = 0; i < n && l < size; i++)
        l += (size_t)snprintf(buf + l, size - l, "%s %llu", i ? "," : "",
                              (unsigned long long)hs[i].host_id);
    free(hs);
}

static int refuse(const char *image, struct sanlk_resource *res, int r,
                  struct bd_err *err)
{
    char who[160];
    if (r == -EEXIST) {
        snprintf(who, sizeof(who), "another process on this host holds it");
    } else {
        describe_owners(res, who, sizeof(who));
        size_t l = strlen(who);
        if (r == SANLK_ACQUIRE_IDLIVE)
            snprintf(who + l, sizeof(who) - l, ", which is alive");
        else if (r == -EAGAIN)
            snprintf(who + l, sizeof(who) - l, " (shared)");
    }
    return bd_err_set(err, EAGAIN, "%s: the sanlock lease %.48s (%s) is taken: "
                      "%s (sanlock error %d). Mount it read-only (-r), or stop "
                      "the other user first", image, res->name,
                      res->disks[0].path, who, r);
}

int sanlk_acquire(const struct lease_conf *c, const char *path,
                  enum lease_mode mode, void **priv, struct bd_err *err)
{
    char canon[PATH_MAX], hash[33];
    if (!realpath(path, canon))
        return bd_err_set(err, errno, "%s: %s", path, strerror(errno));
    lease_md5_hex(canon, hash);
    struct sanlk_lease *l = calloc(1, sizeof(*l));
    if (!l)
        return bd_err_set(err, ENOMEM, "out of memory");
    snprintf(l->image, sizeof(l->image), "%s", path);
    struct sanlk_resource *res = &l->u.res;
    memcpy(res->lockspace_name, c->ls_name, strnlen(c->ls_name, SANLK_NAME_LEN));
    memcpy(res->name, hash, 32);
    res->num_disks = 1;
    res->flags = mode == LEASE_SHARED ? SANLK_RES_SHARED : 0;
    int n = snprintf(res->disks[0].path, SANLK_PATH_LEN, "%s/%s", c->dir, hash);
    if (n < 0 || n >= SANLK_PATH_LEN - 24) {
        free(l);
        return bd_err_set(err, ENAMETOOLONG, "sanlock: the lease directory %s "
                          "is too long a path", c->dir);
    }

    pthread_mutex_lock(&sl_lock);
    int r = 0;
    for (struct sanlk_lease *h = sl_list; h; h = h->next) {
        if (!memcmp(h->u.res.name, res->name, SANLK_NAME_LEN)
            && !strcmp(h->u.res.disks[0].path, res->disks[0].path)) {
            h->refs++;          /* the same image twice in this process */
            free(l);
            *priv = h;
            goto out;
        }
    }
    if ((r = lease_mkdirs(c->dir, err)) < 0 || (r = sl_register(err)) < 0
        || (r = join(c, err)) < 0 || (r = make_lease_file(res, err)) < 0) {
        bd_err_prefix(err, "%s: cannot take its sanlock lease", path);
        goto fail;
    }
    struct sanlk_resource *rp = res;
    r = sanlock_acquire(sl_sock, -1, 0, 1, &rp, NULL);
    if (r < 0) {
        r = refuse(path, res, r, err);
        goto fail;
    }
    l->refs = 1;
    l->next = sl_list;
    sl_list = l;
    *priv = l;
    goto out;
fail:
    free(l);
out:
    pthread_mutex_unlock(&sl_lock);
    return r;
}

void sanlk_release(void *priv)
{
    struct sanlk_lease *l = priv;
    if (!l)
        return;
    pthread_mutex_lock(&sl_lock);
    if (--l->refs == 0) {
        for (struct sanlk_lease **p = &sl_list; *p; p = &(*p)->next) {
            if (*p == l) {
                *p = l->next;
                break;
            }
        }
        struct sanlk_resource *rp = &l->u.res;
        if (!atomic_load(&sl_revoked))
            sanlock_release(sl_sock, -1, 0, 1, &rp);
        free(l);
    }
    pthread_mutex_unlock(&sl_lock);
}

bool sanlk_revoked(void)
{
    return atomic_load(&sl_revoked);
}

int sanlk_init(const struct lease_conf *c, struct bd_err *err)
{
    int fd = open(c->lockspace, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return bd_err_set(err, errno, "sanlock: cannot open the lockspace %s: "
                          "%s", c->lockspace, strerror(errno));
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
        && (uint64_t)st.st_size < c->ls_offset + SANLK_LS_SIZE)
        r = ftruncate(fd, (off_t)(c->ls_offset + SANLK_LS_SIZE)) ? -errno : 0;
    close(fd);
    if (r < 0)
        return bd_err_set(err, -r, "sanlock: cannot size the lockspace %s: %s",
                          c->lockspace, strerror(-r));
    struct sanlk_lockspace ls;
    set_lockspace(c, &ls);
    ls.host_id = 0;
    r = sanlock_write_lockspace(&ls, 0, 0, c->io_timeout);
    if (r < 0)
        return bd_err_set(err, r < -200 ? EIO : -r, "sanlock: cannot format the "
                          "lockspace %s at %s:%llu (error %d); is the sanlock "
                          "daemon running?", c->ls_name, c->lockspace,
                          (unsigned long long)c->ls_offset, r);
    if ((r = lease_mkdirs(c->dir, err)) < 0)
        return r;
    printf("sanlock lockspace %s formatted on %s:%llu; leases go in %s\n",
           c->ls_name, c->lockspace, (unsigned long long)c->ls_offset, c->dir);
    return 0;
}

#else   /* !HAVE_SANLOCK: lease_conf_parse refuses sanlock specs already */

int sanlk_acquire(const struct lease_conf *c, const char *path,
                  enum lease_mode mode, void **priv, struct bd_err *err)
{
    (void)c; (void)mode; (void)priv;
    return bd_err_set(err, ENOTSUP, "%s: this imgfuse was built without "
                      "libsanlock", path);
}

void sanlk_release(void *priv)
{
    (void)priv;
}

bool sanlk_revoked(void)
{
    return false;
}

int sanlk_init(const struct lease_conf *c, struct bd_err *err)
{
    (void)c;
    return bd_err_set(err, ENOTSUP, "this imgfuse was built without libsanlock");
}

#endif
