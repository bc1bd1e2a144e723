/*
 * Secret objects: the bytes behind --object secret,id=ID. Drivers look them
 * up by id; nothing here ever prints a secret's bytes.
 *
 * Each secret has pages of its own (mmap), locked in memory where the
 * limits allow, kept out of core dumps, and wiped before they are freed.
 * Memory locks do not survive fork(), so the daemon's child locks them
 * again (pthread_atfork).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/bd.h"

struct secret {
    char *id;
    uint8_t *data;   /* len + 1 bytes, NUL-terminated, in `map` */
    size_t len;
    size_t map_len;  /* whole pages */
    struct secret *next;
};

static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static struct secret *secrets;

static void secret_free(struct secret *s)
{
    explicit_bzero(s->data, s->len + 1);
    munlock(s->data, s->map_len);
    munmap(s->data, s->map_len);
    free(s->id);
    free(s);
}

static void relock_in_child(void)
{
    for (struct secret *s = secrets; s; s = s->next)
        (void)mlock(s->data, s->map_len);
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&secrets_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&secrets_lock);
}

static void atfork_child(void)
{
    relock_in_child();
    pthread_mutex_unlock(&secrets_lock);
}

static void install_atfork(void)
{
    (void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

int bd_secret_define(const char *id, const void *data, size_t len,
                     struct bd_err *err)
{
    pthread_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&secrets_lock);
    for (struct secret *s = secrets; s; s = s->next) {
        if (strcmp(s->id, id) == 0) {
            pthread_mutex_unlock(&secrets_lock);
            return bd_err_set(err, EEXIST,
                              "secret '%s' is defined twice: give each "
                              "--object secret its own id", id);
        }
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    struct secret *s = calloc(1, sizeof(*s));
    if (s && len < SIZE_MAX - pg) {
        s->map_len = (len + 1 + pg - 1) / pg * pg;
        void *p = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        s->data = p == MAP_FAILED ? NULL : p;
    }
    if (!s || !s->data || !(s->id = strdup(id))) {
        if (s && s->data)
            munmap(s->data, s->map_len);
        free(s);
        pthread_mutex_unlock(&secrets_lock);
        return bd_err_set(err, ENOMEM, "secret '%s': out of memory", id);
    }
    /* Locking fails without CAP_IPC_LOCK beyond RLIMIT_MEMLOCK: the secret
     * still works, it may just reach swap. */
    (void)mlock(s->data, s->map_len);
#ifdef MADV_DONTDUMP
    (void)madvise(s->data, s->map_len, MADV_DONTDUMP);
#endif
    memcpy(s->data, data, len);
    s->data[len] = 0;
    s->len = len;
    s->next = secrets;
    secrets = s;
    pthread_mutex_unlock(&secrets_lock);
    return 0;
}

int bd_secret_get(const char *id, const char *who, const uint8_t **data,
                  size_t *len, struct bd_err *err)
{
    pthread_mutex_lock(&secrets_lock);
    for (struct secret *s = secrets; s; s = s->next) {
        if (strcmp(s->id, id) == 0) {
            *data = s->data;
            *len = s->len;
            pthread_mutex_unlock(&secrets_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&secrets_lock);
    return bd_err_set(err, ENOENT,
                      "%s: no secret object '%s': define it with "
                      "--object secret,id=%s,file=PATH", who, id, id);
}

void bd_secret_wipe_all(void)
{
    pthread_mutex_lock(&secrets_lock);
    while (secrets) {
        struct secret *s = secrets;
        secrets = s->next;
        secret_free(s);
    }
    pthread_mutex_unlock(&secrets_lock);
}
