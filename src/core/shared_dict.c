#include "core/shared_dict.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

typedef struct entry_s {
    char *key;
    size_t klen;
    fr_sv_t val;       /* val.str owned by the entry */
    uint64_t expires;  /* monotonic ms; 0 = never */
    struct entry_s *next;
} entry_t;

struct fr_shared_s {
    pthread_mutex_t mu;
    entry_t **buckets;
    size_t nbuckets;
    size_t count;
    size_t max_entries;
    uint64_t purged_at; /* last full scan for expired entries */
};

static fr_shared_t *global_dict;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void) {
    global_dict = fr_shared_new(FR_SHARED_MAX_ENTRIES);
}

fr_shared_t *fr_shared_global(void) {
    pthread_once(&global_once, global_init);
    return global_dict;
}

void fr_shared_shutdown(void) {
    if (global_dict) {
        fr_shared_free(global_dict);
        global_dict = NULL;
    }
}

fr_shared_t *fr_shared_new(size_t max_entries) {
    fr_shared_t *d = fr_calloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    d->nbuckets = 64;
    d->buckets = fr_calloc(d->nbuckets, sizeof *d->buckets);
    d->max_entries = max_entries;
    return d;
}

static void entry_free(entry_t *e) {
    free(e->key);
    free(e->val.str);
    free(e);
}

void fr_shared_free(fr_shared_t *d) {
    for (size_t i = 0; i < d->nbuckets; i++) {
        entry_t *e = d->buckets[i];
        while (e) {
            entry_t *n = e->next;
            entry_free(e);
            e = n;
        }
    }
    free(d->buckets);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Finds a live entry; an expired one is removed on the way. Caller holds the mutex. */
static entry_t *find(fr_shared_t *d, const char *key, size_t klen, uint64_t now) {
    entry_t **pp = &d->buckets[fr_hash_bytes(key, klen) & (d->nbuckets - 1)];
    for (entry_t *e; (e = *pp); pp = &e->next) {
        if (e->klen != klen || memcmp(e->key, key, klen) != 0)
            continue;
        if (e->expires && e->expires <= now) {
            *pp = e->next;
            entry_free(e);
            d->count--;
            return NULL;
        }
        return e;
    }
    return NULL;
}

/* Frees every expired entry. Runs only when the dictionary is full (and at most once per
 * millisecond), so short-lived keys never fill it for good. Caller holds the mutex. */
static int room_for_one(fr_shared_t *d, uint64_t now) {
    if (d->count < d->max_entries)
        return 1;
    if (d->purged_at == now && now != 0)
        return 0;
    d->purged_at = now;
    for (size_t i = 0; i < d->nbuckets; i++) {
        entry_t **pp = &d->buckets[i];
        while (*pp) {
            entry_t *e = *pp;
            if (e->expires && e->expires <= now) {
                *pp = e->next;
                entry_free(e);
                d->count--;
            } else {
                pp = &e->next;
            }
        }
    }
    return d->count < d->max_entries;
}

static void rehash(fr_shared_t *d) {
    size_t n = d->nbuckets * 2;
    entry_t **b = fr_calloc(n, sizeof *b);
    for (size_t i = 0; i < d->nbuckets; i++) {
        entry_t *e = d->buckets[i];
        while (e) {
            entry_t *next = e->next;
            size_t k = fr_hash_bytes(e->key, e->klen) & (n - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = n;
}

static void value_copy(fr_sv_t *dst, const fr_sv_t *src) {
    *dst = *src;
    dst->str = src->type == FR_SV_STRING ? fr_strndup(src->str, src->len) : NULL;
}

int fr_shared_get(fr_shared_t *d, const char *key, size_t klen, fr_sv_t *out, uint64_t now) {
    pthread_mutex_lock(&d->mu);
    entry_t *e = find(d, key, klen, now);
    if (e)
        value_copy(out, &e->val);
    int found = e != NULL;
    pthread_mutex_unlock(&d->mu);
    return found;
}

/* Inserts a new entry; caller holds the mutex and has checked the bound. */
static entry_t *insert(fr_shared_t *d, const char *key, size_t klen) {
    if (d->count >= d->nbuckets) {
        rehash(d);
    }
    entry_t *e = fr_calloc(1, sizeof *e);
    e->key = fr_strndup(key, klen);
    e->klen = klen;
    size_t k = fr_hash_bytes(key, klen) & (d->nbuckets - 1);
    e->next = d->buckets[k];
    d->buckets[k] = e;
    d->count++;
    return e;
}

int fr_shared_set(fr_shared_t *d, const char *key, size_t klen, const fr_sv_t *v, uint64_t ttl_ms,
                  uint64_t now) {
    pthread_mutex_lock(&d->mu);
    entry_t *e = find(d, key, klen, now);
    int rc = 0;
    if (!e) {
        if (!room_for_one(d, now)) {
            rc = -1;
            goto out;
        }
        e = insert(d, key, klen);
    } else {
        free(e->val.str);
    }
    value_copy(&e->val, v);
    e->expires = ttl_ms ? now + ttl_ms : 0;
out:
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int fr_shared_incr(fr_shared_t *d, const char *key, size_t klen, double delta, int has_init,
                   double init, uint64_t ttl_ms, uint64_t now, double *out) {
    pthread_mutex_lock(&d->mu);
    entry_t *e = find(d, key, klen, now);
    int rc = 0;
    if (!e) {
        if (!has_init) {
            rc = -1;
            goto out;
        }
        if (!room_for_one(d, now)) {
            rc = -3;
            goto out;
        }
        e = insert(d, key, klen);
        e->val.type = FR_SV_NUMBER;
        e->val.num = init;
        e->expires = ttl_ms ? now + ttl_ms : 0;
    } else if (e->val.type != FR_SV_NUMBER) {
        rc = -2;
        goto out;
    }
    e->val.num += delta;
    *out = e->val.num;
out:
    pthread_mutex_unlock(&d->mu);
    return rc;
}

int fr_shared_delete(fr_shared_t *d, const char *key, size_t klen) {
    pthread_mutex_lock(&d->mu);
    entry_t **pp = &d->buckets[fr_hash_bytes(key, klen) & (d->nbuckets - 1)];
    int found = 0;
    for (entry_t *e; (e = *pp); pp = &e->next) {
        if (e->klen == klen && memcmp(e->key, key, klen) == 0) {
            *pp = e->next;
            entry_free(e);
            d->count--;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return found;
}

size_t fr_shared_count(fr_shared_t *d) {
    pthread_mutex_lock(&d->mu);
    size_t n = d->count;
    pthread_mutex_unlock(&d->mu);
    return n;
}
