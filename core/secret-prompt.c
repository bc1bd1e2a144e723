/*
 * --key-prompt: ask for a passphrase on the controlling terminal, with echo
 * off, when an encrypted image needs a secret and no key-secret names one.
 * The answer becomes a secret of its own; the line buffer is locked and
 * wiped. A signal while echo is off puts the terminal back first.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <unistd.h>

#include "core/bd.h"

#define PROMPT_MAX 1024

static bool prompt_allowed;
static unsigned prompt_count;
static pthread_mutex_t prompt_lock = PTHREAD_MUTEX_INITIALIZER;

/* What a signal handler needs to put the terminal back. */
static volatile sig_atomic_t tty_fd = -1;
static struct termios tty_saved;
static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
static struct sigaction old_actions[sizeof(tty_signals) / sizeof(int)];

void bd_secret_allow_prompt(bool allow)
{
    prompt_allowed = allow;
}

static void restore_and_reraise(int sig)
{
    if (tty_fd >= 0)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void trap_signals(bool on)
{
    for (size_t i = 0; i < sizeof(tty_signals) / sizeof(int); i++) {
        if (on) {
            struct sigaction sa = { .sa_handler = restore_and_reraise };
            sigemptyset(&sa.sa_mask);
            sigaction(tty_signals[i], &sa, &old_actions[i]);
        } else {
            sigaction(tty_signals[i], &old_actions[i], NULL);
        }
    }
}

static void put(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* One line from fd into line (NUL-terminated, newline dropped); its
 * length, -1 at end of input before a newline, -2 when too long. */
static long read_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return n ? (long)n : -1;
        if (ch == '\n')
            break;
        if (n + 1 >= size)
            return -2;
        line[n++] = ch;
    }
    line[n] = '\0';
    return (long)n;
}

static int ask(int fd, const char *who, char *line, struct bd_err *err)
{
    struct termios t;
    char msg[512];
    if (tcgetattr(fd, &tty_saved) < 0)
        return -ENOTTY;
    t = tty_saved;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    t.c_lflag |= ICANON;
    snprintf(msg, sizeof(msg), "Passphrase for %s: ", who);
    tty_fd = fd;
    trap_signals(true);
    tcsetattr(fd, TCSAFLUSH, &t);
    put(fd, msg);       /* after echo is off: what follows is not shown */
    long n = read_line(fd, line, PROMPT_MAX);
    tcsetattr(fd, TCSAFLUSH, &tty_saved);
    trap_signals(false);
    tty_fd = -1;
    put(fd, "\n");
    if (n == -1)
        return bd_err_set(err, ENOKEY, "%s: no passphrase given", who);
    if (n == -2)
        return bd_err_set(err, E2BIG, "%s: the passphrase is longer than %d "
                          "bytes: use --object secret,id=ID,file=PATH", who,
                          PROMPT_MAX - 1);
    return (int)n;
}

int bd_secret_prompt(const char *who, const char *option, const uint8_t **data,
                     size_t *len, struct bd_err *err)
{
    if (!prompt_allowed)
        return bd_err_set(err, ENOKEY,
                          "%s: the image is encrypted and no secret is given: "
                          "use --object secret,id=ID,file=PATH with %s=ID, or "
                          "--key-prompt", who, option);
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !isatty(fd)) {
        if (fd >= 0)
            close(fd);
        return bd_err_set(err, ENXIO, "%s: --key-prompt: no terminal to ask "
                          "for the passphrase on; use --object secret,id=ID,"
                          "file=PATH with %s=ID", who, option);
    }
    char line[PROMPT_MAX];
    (void)mlock(line, sizeof(line));
    pthread_mutex_lock(&prompt_lock);
    int r = ask(fd, who, line, err);
    close(fd);
    if (r == -ENOTTY)
        r = bd_err_set(err, ENXIO, "%s: --key-prompt: no terminal to ask for "
                       "the passphrase on; use --object secret,id=ID,file="
                       "PATH with %s=ID", who, option);
    if (r >= 0) {
        char id[32];
        /* '#' keeps it apart from every id --object accepts */
        snprintf(id, sizeof(id), "#prompt%u", ++prompt_count);
        size_t n = (size_t)r;
        r = bd_secret_define(id, line, n, err);
        if (r == 0)
            r = bd_secret_get(id, who, data, len, err);
    }
    pthread_mutex_unlock(&prompt_lock);
    explicit_bzero(line, sizeof(line));
    munlock(line, sizeof(line));
    return r;
}
