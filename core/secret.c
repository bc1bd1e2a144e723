/*
 * Secret objects: the bytes behind --object secret,id=ID. Drivers look them
 * up by id; nothing here ever prints a secret's bytes.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/bd.h"

struct secret {
    char *id;
    uint8_t *data;   /* len + 1 bytes, NUL-terminated, mlock'd when allowed */
    size_t len;
    struct secret *next;
};

static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static struct secret *secrets;
static bool prompt_allowed;
static unsigned prompt_count;

static void secret_free(struct secret *s)
{
    explicit_bzero(s->data, s->len + 1);
    munlock(s->data, s->len + 1);
    free(s->data);
    free(s->id);
    free(s);
}

int bd_secret_define(const char *id, const void *data, size_t len,
                     struct bd_err *err)
{
    pthread_mutex_lock(&secrets_lock);
    for (struct secret *s = secrets; s; s = s->next) {
        if (strcmp(s->id, id) == 0) {
            pthread_mutex_unlock(&secrets_lock);
            return bd_err_set(err, EEXIST,
                              "secret '%s' is defined twice: give each "
                              "--object secret its own id", id);
        }
    }
    struct secret *s = calloc(1, sizeof(*s));
    if (s)
        s->data = malloc(len + 1);
    if (!s || !s->data || !(s->id = strdup(id))) {
        if (s)
            free(s->data);
        free(s);
        pthread_mutex_unlock(&secrets_lock);
        return bd_err_set(err, ENOMEM, "secret '%s': out of memory", id);
    }
    /* Locking may fail without CAP_IPC_LOCK beyond RLIMIT_MEMLOCK: the
     * secret still works, it may just reach swap. */
    (void)mlock(s->data, len + 1);
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

void bd_secret_allow_prompt(bool allow)
{
    prompt_allowed = allow;
}

int bd_secret_prompt(const char *who, const char *option, const uint8_t **data,
                     size_t *len, struct bd_err *err)
{
    (void)data;
    (void)len;
    (void)prompt_count;
    if (!prompt_allowed)
        return bd_err_set(err, ENOKEY,
                          "%s: the image is encrypted and no secret is given: "
                          "use --object secret,id=ID,file=PATH with %s=ID, or "
                          "--key-prompt", who, option);
    return bd_err_set(err, ENOTTY, "%s: asking for a passphrase is not "
                      "supported in this build: use %s=ID", who, option);
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
