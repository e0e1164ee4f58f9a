/* Counters by name, created on first use: requests to each deprecated route. One set per
 * worker; the worker's thread creates and bumps them, /metrics on any thread reads them.
 *
 *   head ──► {n, "/v1/rooms/:room"} ──► {n, "/v1/feed"} ──► NULL
 *
 * A counter, once created, stays at its address until the set is freed, so a bump needs the
 * lock only to find it. */
#ifndef FR_COUNTS_H
#define FR_COUNTS_H

#include <pthread.h>
#include <stddef.h>

typedef struct fr_count_s {
    struct fr_count_s *next;
    unsigned long n;   /* FR_BUMP by the owner's thread; read with a relaxed load */
    char name[];
} fr_count_t;

typedef struct {
    pthread_mutex_t mu;
    fr_count_t *head; /* owned, newest first */
} fr_counts_t;

void fr_counts_init(fr_counts_t *c);
void fr_counts_free(fr_counts_t *c);
/* Adds n to the counter called name (copied the first time). */
void fr_counts_add(fr_counts_t *c, const char *name, unsigned long n);
static inline void fr_counts_bump(fr_counts_t *c, const char *name) {
    fr_counts_add(c, name, 1);
}
/* Calls fn(ctx, name, n) for each counter, under the set's lock. */
void fr_counts_each(fr_counts_t *c, void (*fn)(void *ctx, const char *name, unsigned long n),
                    void *ctx);

#endif
