#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"

#define LOG_BUF_SIZE (1u << 20)

static fr_log_level_t log_level = FR_LOG_INFO;
static int log_json;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The writer: a byte buffer filled by any thread and drained by one. */
static pthread_mutex_t lw_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lw_cv = PTHREAD_COND_INITIALIZER;
static struct {
    pthread_t thread;
    char *buf;
    size_t len;
    int running, stopping;
    unsigned long dropped, dropped_unreported;
} lw;

static int level_from_flag;

void fr_log_set_level(fr_log_level_t level) {
    log_level = level;
    level_from_flag = 1;
}

void fr_log_set_default_level(fr_log_level_t level) {
    if (!level_from_flag)
        log_level = level;
}

void fr_log_set_json(int json) {
    log_json = json;
}

int fr_log_parse_level(const char *name, fr_log_level_t *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (fr_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int fr_log_enabled(fr_log_level_t level) {
    return level >= log_level;
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *writer_main(void *arg) {
    (void)arg;
    char *out = malloc(LOG_BUF_SIZE);
    pthread_mutex_lock(&lw_mu);
    for (;;) {
        while (lw.len == 0 && !lw.stopping)
            pthread_cond_wait(&lw_cv, &lw_mu);
        if (lw.len == 0 && lw.stopping)
            break;
        size_t n = lw.len;
        memcpy(out, lw.buf, n);
        lw.len = 0;
        pthread_mutex_unlock(&lw_mu);
        write_all(out, n);
        pthread_mutex_lock(&lw_mu);
    }
    pthread_mutex_unlock(&lw_mu);
    free(out);
    return NULL;
}

/* Writes the ISO 8601 UTC time (24 characters) into out, which holds at least 32 bytes. */
static size_t format_time(char *out, size_t cap) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    return n + (size_t)snprintf(out + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000) % 1000);
}

/* The line that tells how many lines were dropped, in the format of every other line. */
static size_t format_dropped(char *out, size_t cap, unsigned long n) {
    int len;
    if (log_json) {
        char ts[40];
        format_time(ts, sizeof ts);
        len = snprintf(out, cap,
                       "{\"ts\":\"%s\",\"level\":\"warn\",\"msg\":\"log: %lu lines were dropped "
                       "(stderr was too slow)\"}\n",
                       ts, n);
    } else {
        len = snprintf(out, cap, "log: %lu lines were dropped (stderr was too slow)\n", n);
    }
    return len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
}

static void emit(const char *line, size_t len) {
    pthread_mutex_lock(&lw_mu);
    if (!lw.running) {
        pthread_mutex_unlock(&lw_mu);
        write_all(line, len);
        return;
    }
    if (lw.len + len > LOG_BUF_SIZE) {
        lw.dropped++;
        lw.dropped_unreported++;
        pthread_mutex_unlock(&lw_mu);
        return;
    }
    if (lw.dropped_unreported) {
        char note[192];
        size_t n = format_dropped(note, sizeof note, lw.dropped_unreported);
        if (lw.len + len + n <= LOG_BUF_SIZE) {
            memcpy(lw.buf + lw.len, note, n);
            lw.len += n;
            lw.dropped_unreported = 0;
        }
    }
    memcpy(lw.buf + lw.len, line, len);
    lw.len += len;
    pthread_cond_signal(&lw_cv);
    pthread_mutex_unlock(&lw_mu);
}

void fr_log(fr_log_level_t level, const char *fmt, ...) {
    if (level < log_level)
        return;
    char msg[2048], line[4608];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[40];
    format_time(ts, sizeof ts);
    size_t n;
    if (log_json) {
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
                             level_names[level]);
        /* Messages quote script errors and client bytes: the escaper makes any of them valid
         * JSON, and a long one is cut between characters, leaving room for "}\n". */
        n += fr_json_write_string(line + n, sizeof line - n - 2, msg, strlen(msg));
        line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, sizeof line - 1, "%s %s %s", ts, level_names[level], msg);
        if (n > sizeof line - 2)
            n = sizeof line - 2;
    }
    line[n++] = '\n';
    emit(line, n);
}

void fr_log_fields(fr_log_level_t level, const char *fields) {
    if (level < log_level)
        return;
    char line[4096], ts[40];
    format_time(ts, sizeof ts);
    /* In the text format the object is the message, so every line keeps one shape. */
    int n = log_json ? snprintf(line, sizeof line - 1, "{\"ts\":\"%s\",\"level\":\"%s\",%s}\n",
                                ts, level_names[level], fields)
                     : snprintf(line, sizeof line - 1, "%s %s {%s}\n", ts, level_names[level],
                                fields);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof line - 1 ? sizeof line - 2 : (size_t)n;
    if (len && line[len - 1] != '\n')
        line[len++] = '\n';
    emit(line, len);
}

void fr_log_start(void) {
    pthread_mutex_lock(&lw_mu);
    if (!lw.running) {
        lw.buf = malloc(LOG_BUF_SIZE);
        lw.len = 0;
        lw.stopping = 0;
        if (lw.buf && pthread_create(&lw.thread, NULL, writer_main, NULL) == 0)
            lw.running = 1;
        else {
            free(lw.buf);
            lw.buf = NULL;
        }
    }
    pthread_mutex_unlock(&lw_mu);
}

void fr_log_stop(void) {
    pthread_mutex_lock(&lw_mu);
    if (!lw.running) {
        pthread_mutex_unlock(&lw_mu);
        return;
    }
    lw.stopping = 1;
    pthread_cond_signal(&lw_cv);
    pthread_mutex_unlock(&lw_mu);
    pthread_join(lw.thread, NULL);
    pthread_mutex_lock(&lw_mu);
    lw.running = 0;
    free(lw.buf);
    lw.buf = NULL;
    pthread_mutex_unlock(&lw_mu);
}

unsigned long fr_log_dropped(void) {
    pthread_mutex_lock(&lw_mu);
    unsigned long d = lw.dropped;
    pthread_mutex_unlock(&lw_mu);
    return d;
}
