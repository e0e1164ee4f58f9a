#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static fr_log_level_t log_level = FR_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void fr_log_set_level(fr_log_level_t level) {
    log_level = level;
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

void fr_log(fr_log_level_t level, const char *fmt, ...) {
    if (level < log_level)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* One write per line so lines from several threads never interleave. */
    fwrite(line, 1, len, stderr);
}
