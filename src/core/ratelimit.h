/* Token buckets per (what, tier, client): new streams, publishes, inbound messages. A bucket
 * starts full (burst tokens) and refills at `rate` tokens per second; a full bucket carries no
 * information, so the sweep frees it — client churn does not grow the table. */
#ifndef FR_RATELIMIT_H
#define FR_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"
#include "core/config.h"

typedef enum { FR_RL_CONNECT = 0, FR_RL_PUBLISH = 1, FR_RL_MESSAGE = 2 } fr_rl_kind_t;

typedef struct fr_bucket_s fr_bucket_t;

/* Shared by every worker thread of the process: the mutex guards the table. Private to
 * core/ratelimit.c. */
typedef struct {
    pthread_mutex_t mu;
    fr_htable_t buckets; /* (kind, tier, client) → fr_bucket_t, owned through the table */
    unsigned long rejected[3]; /* per fr_rl_kind_t */
} fr_ratelimit_t;

void fr_ratelimit_init(fr_ratelimit_t *rl);
void fr_ratelimit_close(fr_ratelimit_t *rl);

/* Takes `cost` tokens from the client's bucket for this tier. Returns 0 when allowed; else -1
 * and the whole seconds until enough tokens will be there (for Retry-After). A tier without
 * a rate always allows. now_ms is monotonic. */
int fr_ratelimit_take(fr_ratelimit_t *rl, fr_rl_kind_t kind, const fr_tier_t *tier,
                      const char *client, double cost, uint64_t now_ms, unsigned *retry_after);

/* Frees buckets that have refilled completely. */
void fr_ratelimit_sweep(fr_ratelimit_t *rl, uint64_t now_ms);

#endif
