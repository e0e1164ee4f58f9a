/* freshet.shared: one process-wide dictionary of strings, numbers and booleans with optional
 * expiry, safe to use from every worker thread (one mutex; operations are short). */
#ifndef FR_SHARED_DICT_H
#define FR_SHARED_DICT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { FR_SV_NONE = 0, FR_SV_STRING, FR_SV_NUMBER, FR_SV_BOOL } fr_sv_type_t;

typedef struct {
    fr_sv_type_t type;
    double num;    /* FR_SV_NUMBER; FR_SV_BOOL uses 0/1 */
    char *str;     /* FR_SV_STRING: owned by whoever holds this value */
    size_t len;
} fr_sv_t;

typedef struct fr_shared_s fr_shared_t;

/* How many entries the process-wide dictionary holds (a stand-in for it should hold as many). */
#define FR_SHARED_MAX_ENTRIES ((size_t)1 << 20)

/* Global instance, created on first use and freed by fr_shared_shutdown. */
fr_shared_t *fr_shared_global(void);
void fr_shared_shutdown(void);

fr_shared_t *fr_shared_new(size_t max_entries);
void fr_shared_free(fr_shared_t *d);

/* Copies the value out (the caller frees out->str). Returns 1 when found, 0 when absent or
 * expired. now_ms is a monotonic clock. */
int fr_shared_get(fr_shared_t *d, const char *key, size_t klen, fr_sv_t *out, uint64_t now_ms);
/* Stores a copy; ttl_ms 0 means no expiry. Returns 0, or -1 when the dictionary is full. */
int fr_shared_set(fr_shared_t *d, const char *key, size_t klen, const fr_sv_t *v, uint64_t ttl_ms,
                  uint64_t now_ms);
/* Adds delta to a number (creating it with `init` when absent and has_init). Returns 0 and the
 * new value; -1 when absent without init; -2 when the value is not a number; -3 when full. */
int fr_shared_incr(fr_shared_t *d, const char *key, size_t klen, double delta, int has_init,
                   double init, uint64_t ttl_ms, uint64_t now_ms, double *out);
int fr_shared_delete(fr_shared_t *d, const char *key, size_t klen);
size_t fr_shared_count(fr_shared_t *d);

#endif
