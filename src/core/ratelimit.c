#include "core/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct fr_bucket_s {
    char *key;          /* owned: kind, tier and client joined by NUL bytes */
    size_t klen;
    double tokens;
    double rate, burst; /* copied from the tier, so the sweep needs no config */
    uint64_t at_ms;     /* when tokens was last brought up to date */
    fr_bucket_t *next;
};

void fr_ratelimit_init(fr_ratelimit_t *rl) {
    memset(rl, 0, sizeof *rl);
    pthread_mutex_init(&rl->mu, NULL);
    rl->nbuckets = 64;
    rl->buckets = fr_calloc(rl->nbuckets, sizeof *rl->buckets);
}

void fr_ratelimit_close(fr_ratelimit_t *rl) {
    for (size_t i = 0; i < rl->nbuckets; i++) {
        fr_bucket_t *b = rl->buckets[i];
        while (b) {
            fr_bucket_t *n = b->next;
            free(b->key);
            free(b);
            b = n;
        }
    }
    free(rl->buckets);
    pthread_mutex_destroy(&rl->mu);
    memset(rl, 0, sizeof *rl);
}

static void rehash(fr_ratelimit_t *rl) {
    size_t n = rl->nbuckets * 2;
    fr_bucket_t **t = fr_calloc(n, sizeof *t);
    for (size_t i = 0; i < rl->nbuckets; i++) {
        fr_bucket_t *b = rl->buckets[i];
        while (b) {
            fr_bucket_t *next = b->next;
            size_t k = fr_hash_bytes(b->key, b->klen) & (n - 1);
            b->next = t[k];
            t[k] = b;
            b = next;
        }
    }
    free(rl->buckets);
    rl->buckets = t;
    rl->nbuckets = n;
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
    fr_bucket_t **head = &rl->buckets[fr_hash_bytes(key, klen) & (rl->nbuckets - 1)];
    fr_bucket_t *b = *head;
    while (b && (b->klen != klen || memcmp(b->key, key, klen) != 0))
        b = b->next;
    if (!b) {
        if (rl->count >= rl->nbuckets) {
            rehash(rl);
            head = &rl->buckets[fr_hash_bytes(key, klen) & (rl->nbuckets - 1)];
        }
        b = fr_calloc(1, sizeof *b);
        b->key = fr_strndup(key, klen);
        b->klen = klen;
        b->tokens = tier->burst;
        b->at_ms = now;
        b->next = *head;
        *head = b;
        rl->count++;
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
    for (size_t i = 0; i < rl->nbuckets; i++) {
        fr_bucket_t **pp = &rl->buckets[i];
        while (*pp) {
            fr_bucket_t *b = *pp;
            refill(b, now);
            if (b->tokens >= b->burst) {
                *pp = b->next;
                free(b->key);
                free(b);
                rl->count--;
            } else {
                pp = &b->next;
            }
        }
    }
    pthread_mutex_unlock(&rl->mu);
}
