#include "core/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct fr_bucket_s {
    fr_hnode_t hnode;   /* in rl->buckets, keyed by key[0..klen) */
    char *key;          /* owned: kind, tier and client joined by NUL bytes */
    size_t klen;
    double tokens;
    double rate, burst; /* copied from the tier, so the sweep needs no config */
    uint64_t at_ms;     /* when tokens was last brought up to date */
};

void fr_ratelimit_init(fr_ratelimit_t *rl) {
    memset(rl, 0, sizeof *rl);
    pthread_mutex_init(&rl->mu, NULL);
    fr_htable_init(&rl->buckets);
}

/* Takes the bucket out of the table and frees it. */
static void bucket_drop(fr_ratelimit_t *rl, fr_bucket_t *b) {
    fr_htable_remove(&rl->buckets, &b->hnode);
    free(b->key);
    free(b);
}

void fr_ratelimit_close(fr_ratelimit_t *rl) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&rl->buckets, &it);
    for (fr_hnode_t *n; (n = fr_htable_iter_next(&it));)
        bucket_drop(rl, FR_HTABLE_ENTRY(n, fr_bucket_t, hnode));
    fr_htable_close(&rl->buckets);
    pthread_mutex_destroy(&rl->mu);
    memset(rl, 0, sizeof *rl);
}

static void refill(fr_bucket_t *b, uint64_t now) {
    if (now > b->at_ms) {
        b->tokens += b->rate * (double)(now - b->at_ms) / 1000.0;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->at_ms = now;
    }
}

int fr_ratelimit_take(fr_ratelimit_t *rl, fr_rl_kind_t kind, const fr_tier_t *tier,
                      const char *client, double cost, uint64_t now, unsigned *retry_after) {
    if (!tier || tier->rate <= 0)
        return 0;
    char key[512];
    size_t tl = strlen(tier->name ? tier->name : ""), cl = strlen(client);
    if (tl + cl + 3 > sizeof key)
        cl = sizeof key - tl - 3;
    key[0] = (char)('0' + kind);
    memcpy(key + 1, tier->name ? tier->name : "", tl);
    key[1 + tl] = '\0';
    memcpy(key + 2 + tl, client, cl);
    size_t klen = 2 + tl + cl;

    pthread_mutex_lock(&rl->mu);
    fr_hnode_t *n = fr_htable_find(&rl->buckets, key, klen);
    fr_bucket_t *b = n ? FR_HTABLE_ENTRY(n, fr_bucket_t, hnode) : NULL;
    if (!b) {
        b = fr_calloc(1, sizeof *b);
        b->key = fr_strndup(key, klen);
        b->klen = klen;
        b->tokens = tier->burst;
        b->at_ms = now;
        fr_htable_insert(&rl->buckets, &b->hnode, b->key, b->klen);
    }
    b->rate = tier->rate;
    b->burst = tier->burst;
    refill(b, now);
    if (b->tokens >= cost) {
        b->tokens -= cost;
        pthread_mutex_unlock(&rl->mu);
        return 0;
    }
    rl->rejected[kind]++;
    double wait = (cost - b->tokens) / b->rate;
    pthread_mutex_unlock(&rl->mu);
    *retry_after = (unsigned)ceil(wait);
    if (*retry_after == 0)
        *retry_after = 1;
    return -1;
}

void fr_ratelimit_sweep(fr_ratelimit_t *rl, uint64_t now) {
    pthread_mutex_lock(&rl->mu);
    fr_htable_iter_t it;
    fr_htable_iter_init(&rl->buckets, &it);
    for (fr_hnode_t *n; (n = fr_htable_iter_next(&it));) {
        fr_bucket_t *b = FR_HTABLE_ENTRY(n, fr_bucket_t, hnode);
        refill(b, now);
        if (b->tokens >= b->burst)
            bucket_drop(rl, b);
    }
    pthread_mutex_unlock(&rl->mu);
}
