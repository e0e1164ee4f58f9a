/* One log line per call on stderr: "<UTC time> <level> <message>". */
#ifndef FR_LOG_H
#define FR_LOG_H

typedef enum { FR_LOG_DEBUG = 0, FR_LOG_INFO, FR_LOG_WARN, FR_LOG_ERROR } fr_log_level_t;

void fr_log_set_level(fr_log_level_t level);
/* Returns 0 and sets *out for "debug", "info", "warn", "error"; -1 otherwise. */
int fr_log_parse_level(const char *name, fr_log_level_t *out);
int fr_log_enabled(fr_log_level_t level);
void fr_log(fr_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define fr_debug(...) fr_log(FR_LOG_DEBUG, __VA_ARGS__)
#define fr_info(...) fr_log(FR_LOG_INFO, __VA_ARGS__)
#define fr_warn(...) fr_log(FR_LOG_WARN, __VA_ARGS__)
#define fr_error(...) fr_log(FR_LOG_ERROR, __VA_ARGS__)

#endif
