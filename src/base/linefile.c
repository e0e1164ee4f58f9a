#include "base/linefile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

/* About a second of lines at 10,000 requests a second: a disk slower than that for longer
 * loses lines (counted) rather than memory or latency. */
#define LINEFILE_BUF (1u << 21)

struct fr_linefile_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    char *path;       /* owned; NULL for stderr */
    int fd;
    char *buf;        /* owned, LINEFILE_BUF bytes: what writers queued */
    size_t len;
    int reopen, stopping;
    unsigned long dropped;
};

static int open_path(const char *path) {
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *writer_main(void *arg) {
    fr_linefile_t *f = arg;
    char *out = fr_malloc(LINEFILE_BUF);
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (f->len == 0 && !f->stopping && !f->reopen)
            pthread_cond_wait(&f->cv, &f->mu);
        size_t n = f->len;
        int reopen = f->reopen, stop = f->stopping;
        memcpy(out, f->buf, n);
        f->len = 0;
        f->reopen = 0;
        pthread_mutex_unlock(&f->mu);
        write_all(f->fd, out, n);
        if (reopen && f->path) {
            int fd = open_path(f->path);
            if (fd >= 0) {
                close(f->fd);
                f->fd = fd;
            } else {
                /* Keep writing to the old file: losing lines would be worse. */
                char msg[512];
                int m = snprintf(msg, sizeof msg, "access log: cannot reopen %s: %s\n", f->path,
                                 strerror(errno));
                write_all(STDERR_FILENO, msg, m > 0 ? (size_t)m : 0);
            }
        }
        pthread_mutex_lock(&f->mu);
        if (stop && f->len == 0)
            break;
    }
    pthread_mutex_unlock(&f->mu);
    free(out);
    return NULL;
}

fr_linefile_t *fr_linefile_open(const char *path, char *err, size_t errcap) {
    int to_stderr = strcmp(path, "stderr") == 0;
    int fd = to_stderr ? STDERR_FILENO : open_path(path);
    if (fd < 0) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    fr_linefile_t *f = fr_calloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->path = to_stderr ? NULL : fr_strdup(path);
    f->fd = fd;
    f->buf = fr_malloc(LINEFILE_BUF);
    if (pthread_create(&f->thread, NULL, writer_main, f) != 0) {
        snprintf(err, errcap, "cannot start the writer thread for %s", path);
        if (!to_stderr)
            close(fd);
        free(f->buf);
        free(f->path);
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return NULL;
    }
    return f;
}

void fr_linefile_write(fr_linefile_t *f, const char *bytes, size_t len) {
    pthread_mutex_lock(&f->mu);
    if (f->len + len > LINEFILE_BUF) {
        f->dropped++;
    } else {
        memcpy(f->buf + f->len, bytes, len);
        if (f->len == 0)
            pthread_cond_signal(&f->cv);
        f->len += len;
    }
    pthread_mutex_unlock(&f->mu);
}

void fr_linefile_reopen(fr_linefile_t *f) {
    pthread_mutex_lock(&f->mu);
    f->reopen = 1;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

unsigned long fr_linefile_dropped(fr_linefile_t *f) {
    pthread_mutex_lock(&f->mu);
    unsigned long d = f->dropped;
    pthread_mutex_unlock(&f->mu);
    return d;
}

void fr_linefile_close(fr_linefile_t *f) {
    pthread_mutex_lock(&f->mu);
    f->stopping = 1;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    if (f->path)
        close(f->fd);
    free(f->buf);
    free(f->path);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
