/* Logging: one line per call on stderr, "<UTC time> <level> <message>" or, with the JSON
 * format, one object per line. Once fr_log_start has run, lines go through a bounded buffer
 * that a thread of its own writes out, so a slow stderr never blocks an event loop; when the
 * buffer is full, lines are dropped and counted, and the count is logged when there is room. */
#ifndef FR_LOG_H
#define FR_LOG_H

#include <stddef.h>

typedef enum { FR_LOG_DEBUG = 0, FR_LOG_INFO, FR_LOG_WARN, FR_LOG_ERROR } fr_log_level_t;

void fr_log_set_level(fr_log_level_t level);
/* The app file's level: applies unless the command line set one (the flag wins). */
void fr_log_set_default_level(fr_log_level_t level);
void fr_log_set_json(int json);
/* Returns 0 and sets *out for "debug", "info", "warn", "error"; -1 otherwise. */
int fr_log_parse_level(const char *name, fr_log_level_t *out);
int fr_log_enabled(fr_log_level_t level);
void fr_log(fr_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A structured line: `fields` is the inside of a JSON object ("\"event\":\"ACTIVE\",…").
 * JSON format: {"ts":…,"level":…,<fields>}; text format: "<time> <level> {<fields>}". */
void fr_log_fields(fr_log_level_t level, const char *fields);

/* Starts the writer thread; fr_log_stop flushes what is buffered and joins it. */
void fr_log_start(void);
void fr_log_stop(void);
unsigned long fr_log_dropped(void);

#define fr_debug(...) fr_log(FR_LOG_DEBUG, __VA_ARGS__)
#define fr_info(...) fr_log(FR_LOG_INFO, __VA_ARGS__)
#define fr_warn(...) fr_log(FR_LOG_WARN, __VA_ARGS__)
#define fr_error(...) fr_log(FR_LOG_ERROR, __VA_ARGS__)

#endif
