/* Small helpers every module uses: fatal out-of-memory, clocks, string duplication. */
#ifndef FR_UTIL_H
#define FR_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Allocation failure is fatal: a streaming server that limps on without memory loses events
 * silently. These abort with file and line. */
#define fr_malloc(n) fr_xmalloc((n), __FILE__, __LINE__)
#define fr_calloc(n, s) fr_xcalloc((n), (s), __FILE__, __LINE__)
#define fr_realloc(p, n) fr_xrealloc((p), (n), __FILE__, __LINE__)
#define fr_strdup(s) fr_xstrdup((s), __FILE__, __LINE__)
#define fr_strndup(s, n) fr_xstrndup((s), (n), __FILE__, __LINE__)

void *fr_xmalloc(size_t n, const char *file, int line);
void *fr_xcalloc(size_t n, size_t size, const char *file, int line);
void *fr_xrealloc(void *p, size_t n, const char *file, int line);
char *fr_xstrndup(const char *s, size_t n, const char *file, int line);
char *fr_xstrdup(const char *s, const char *file, int line);

/* Wall-clock milliseconds since the epoch (event ids, published_at). */
uint64_t fr_now_ms(void);
/* Monotonic milliseconds (timeouts, heartbeats, uptime). */
uint64_t fr_mono_ms(void);
/* Monotonic microseconds (durations in the access log). */
uint64_t fr_mono_us(void);

/* v in decimal at out (room for 20 bytes; no NUL); returns the length. For hot paths that
 * format numbers (ids, Redis commands) without printf. */
size_t fr_u64_format(char *out, uint64_t v);
/* Parses exactly len decimal digits (no sign, no spaces, no leading zero, no overflow) into
 * *out; 0, or -1 when s is not that. */
int fr_u64_parse(const char *s, size_t len, uint64_t *out);

#define FR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FR_CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr) - offsetof(type, field)))

/* A counter that only its own worker writes and other workers read (the totals behind
 * /metrics): a relaxed atomic load and store, which is a plain add on x86 but keeps the
 * cross-thread read well-defined. */
#define FR_BUMP(x, n) \
    __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define FR_DROP(x, n) \
    __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) - (n), __ATOMIC_RELAXED)

/* The value of a hexadecimal digit, or -1. */
static inline int fr_hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
