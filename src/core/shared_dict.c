#include "core/shared_dict.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/util.h"

typedef struct {
    fr_hnode_t hnode;  /* in entries, keyed by key[0..klen) */
    char *key;         /* owned; may hold NUL bytes */
    size_t klen;
    fr_sv_t val;       /* val.str owned by the entry */
    uint64_t expires;  /* monotonic ms; 0 = never */
} entry_t;

struct fr_shared_s {
    pthread_mutex_t mu;
    fr_htable_t entries; /* owns the entries */
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
    fr_htable_init(&d->entries);
    d->max_entries = max_entries;
    return d;
}

/* Takes the entry out of the table and frees it. */
static void entry_drop(fr_shared_t *d, entry_t *e) {
    fr_htable_remove(&d->entries, &e->hnode);
    free(e->key);
    free(e->val.str);
    free(e);
}

static entry_t *entry_of(fr_hnode_t *n) {
    return n ? FR_HTABLE_ENTRY(n, entry_t, hnode) : NULL;
}

void fr_shared_free(fr_shared_t *d) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&d->entries, &it);
    for (fr_hnode_t *n; (n = fr_htable_iter_next(&it));)
        entry_drop(d, entry_of(n));
    fr_htable_close(&d->entries);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* Finds a live entry; an expired one is removed on the way. Caller holds the mutex. */
static entry_t *find(fr_shared_t *d, const char *key, size_t klen, uint64_t now) {
    entry_t *e = entry_of(fr_htable_find(&d->entries, key, klen));
    if (e && e->expires && e->expires <= now) {
        entry_drop(d, e);
        return NULL;
    }
    return e;
}

/* Frees every expired entry. Runs only when the dictionary is full (and at most once per
 * millisecond), so short-lived keys never fill it for good. Caller holds the mutex. */
static int room_for_one(fr_shared_t *d, uint64_t now) {
    if (d->entries.count < d->max_entries)
        return 1;
    if (d->purged_at == now && now != 0)
        return 0;
    d->purged_at = now;
    fr_htable_iter_t it;
    fr_htable_iter_init(&d->entries, &it);
    for (fr_hnode_t *n; (n = fr_htable_iter_next(&it));) {
        entry_t *e = entry_of(n);
        if (e->expires && e->expires <= now)
            entry_drop(d, e);
    }
    return d->entries.count < d->max_entries;
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
    entry_t *e = fr_calloc(1, sizeof *e);
    e->key = fr_strndup(key, klen);
    e->klen = klen;
    fr_htable_insert(&d->entries, &e->hnode, e->key, e->klen);
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
    /* Expired or not: the key goes either way, and 1 says it was there. */
    entry_t *e = entry_of(fr_htable_find(&d->entries, key, klen));
    int found = e != NULL;
    if (e)
        entry_drop(d, e);
    pthread_mutex_unlock(&d->mu);
    return found;
}

size_t fr_shared_count(fr_shared_t *d) {
    pthread_mutex_lock(&d->mu);
    size_t n = d->entries.count;
    pthread_mutex_unlock(&d->mu);
    return n;
}
