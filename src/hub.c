#include "hub.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void fr_hub_init(fr_hub_t *hub, size_t replay_events, uint64_t replay_ms, uint64_t start_ms) {
    memset(hub, 0, sizeof *hub);
    hub->nbuckets = 64;
    hub->buckets = fr_calloc(hub->nbuckets, sizeof *hub->buckets);
    hub->replay_events = replay_events;
    hub->replay_ms = replay_ms;
    hub->floor.ms = start_ms;
    hub->floor.seq = 0;
}

static void topic_free(fr_topic_t *t) {
    fr_ring_close(&t->ring);
    free(t->name);
    free(t);
}

void fr_hub_close(fr_hub_t *hub) {
    for (size_t i = 0; i < hub->nbuckets; i++) {
        fr_topic_t *t = hub->buckets[i];
        while (t) {
            fr_topic_t *next = t->hnext;
            topic_free(t);
            t = next;
        }
    }
    free(hub->buckets);
    for (size_t i = 0; i < hub->npending; i++)
        fr_event_release(hub->pending[i]);
    free(hub->pending);
    memset(hub, 0, sizeof *hub);
}

fr_topic_t *fr_hub_find(fr_hub_t *hub, const char *name) {
    fr_topic_t *t = hub->buckets[fr_hash_str(name) & (hub->nbuckets - 1)];
    while (t && strcmp(t->name, name) != 0)
        t = t->hnext;
    return t;
}

static void hub_rehash(fr_hub_t *hub) {
    size_t n = hub->nbuckets * 2;
    fr_topic_t **b = fr_calloc(n, sizeof *b);
    for (size_t i = 0; i < hub->nbuckets; i++) {
        fr_topic_t *t = hub->buckets[i];
        while (t) {
            fr_topic_t *next = t->hnext;
            size_t k = fr_hash_str(t->name) & (n - 1);
            t->hnext = b[k];
            b[k] = t;
            t = next;
        }
    }
    free(hub->buckets);
    hub->buckets = b;
    hub->nbuckets = n;
}

static fr_topic_t *hub_get(fr_hub_t *hub, const char *name) {
    fr_topic_t *t = fr_hub_find(hub, name);
    if (t)
        return t;
    if (hub->ntopics >= hub->nbuckets)
        hub_rehash(hub);
    t = fr_calloc(1, sizeof *t);
    t->name = fr_strdup(name);
    fr_ring_init(&t->ring, hub->replay_events);
    t->born = hub->floor;
    t->last = hub->floor;
    size_t k = fr_hash_str(name) & (hub->nbuckets - 1);
    t->hnext = hub->buckets[k];
    hub->buckets[k] = t;
    hub->ntopics++;
    return t;
}

/* Forgets a topic nobody follows and that holds nothing to replay. Its last id raises the
 * floor, so a topic created later under the same name never reissues an id. */
static void hub_maybe_forget(fr_hub_t *hub, fr_topic_t *t) {
    if (t->nsubs > 0 || t->ring.count > 0 || t->delivering)
        return;
    if (fr_id_cmp(t->last, hub->floor) > 0)
        hub->floor = t->last;
    fr_topic_t **pp = &hub->buckets[fr_hash_str(t->name) & (hub->nbuckets - 1)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    hub->ntopics--;
    topic_free(t);
}

static void topic_expire(fr_hub_t *hub, fr_topic_t *t, uint64_t now) {
    if (hub->replay_ms > 0 && now > hub->replay_ms)
        fr_ring_expire(&t->ring, now - hub->replay_ms);
}

int fr_hub_publish(fr_hub_t *hub, const char *name, const char *evname, const char *data,
                   size_t data_len, fr_priority_t prio, int json, fr_id_t *id_out,
                   const char **err) {
    if (fr_event_validate(name, evname, data, data_len, err) < 0)
        return -1;
    uint64_t now = fr_now_ms();
    fr_topic_t *t = hub_get(hub, name);
    topic_expire(hub, t, now);
    fr_id_t id = fr_id_next(t->last, now);
    fr_event_t *ev = fr_event_new(name, id, evname, data, data_len, prio, json, now, err);
    t->last = id;
    t->published++;
    hub->published++;
    fr_ring_push(&t->ring, ev);
    if (t->nsubs > 0) {
        if (hub->npending == hub->cap_pending) {
            hub->cap_pending = hub->cap_pending ? hub->cap_pending * 2 : 64;
            hub->pending = fr_realloc(hub->pending, hub->cap_pending * sizeof *hub->pending);
        }
        hub->pending[hub->npending++] = ev; /* takes over the publisher's reference */
    } else {
        fr_event_release(ev);
    }
    *id_out = id;
    hub_maybe_forget(hub, t);
    return 0;
}

static void topic_fan_out(fr_hub_t *hub, fr_topic_t *t, fr_event_t *ev) {
    /* A deliver callback may end its own stream, so the next link is read before the call. */
    t->delivering = 1;
    for (fr_sub_t *s = t->subs, *next; s; s = next) {
        next = s->next;
        s->deliver(s, ev);
    }
    t->delivering = 0;
    hub_maybe_forget(hub, t);
}

void fr_hub_flush(fr_hub_t *hub) {
    for (size_t i = 0; i < hub->npending; i++) {
        fr_event_t *ev = hub->pending[i];
        fr_topic_t *t = fr_hub_find(hub, ev->topic);
        if (t)
            topic_fan_out(hub, t, ev);
        fr_event_release(ev);
    }
    hub->npending = 0;
}

fr_id_t fr_hub_position(fr_hub_t *hub, const char *name) {
    fr_topic_t *t = fr_hub_find(hub, name);
    return t ? t->last : hub->floor;
}

fr_resume_t fr_hub_check_resume(fr_hub_t *hub, const char *name, fr_id_t after) {
    fr_topic_t *t = fr_hub_find(hub, name);
    fr_id_t born = t ? t->born : hub->floor;
    fr_id_t last = t ? t->last : hub->floor;
    if (t)
        topic_expire(hub, t, fr_now_ms());
    if (fr_id_cmp(after, last) > 0)
        return FR_RESUME_INVALID;
    if (fr_id_cmp(after, last) == 0)
        return (t && t->ring.has_evicted && fr_id_cmp(after, t->ring.evicted_upto) < 0)
                   ? FR_RESUME_STALE
                   : FR_RESUME_OK;
    if (fr_id_cmp(after, born) < 0)
        return FR_RESUME_STALE;
    if (fr_id_cmp(after, born) == 0)
        return (t && t->ring.has_evicted) ? FR_RESUME_STALE : FR_RESUME_OK;
    /* born < after < last: only ids this topic issued are meaningful. */
    if (t->ring.has_evicted) {
        int c = fr_id_cmp(after, t->ring.evicted_upto);
        if (c < 0)
            return FR_RESUME_STALE;
        if (c == 0)
            return FR_RESUME_OK;
    }
    return fr_ring_contains(&t->ring, after) ? FR_RESUME_OK : FR_RESUME_INVALID;
}

void fr_hub_replay(fr_hub_t *hub, const char *const *topics, const fr_id_t *after, size_t n,
                   fr_replay_cb fn, void *ctx) {
    fr_topic_t *ts[n ? n : 1];
    size_t pos[n ? n : 1];
    for (size_t i = 0; i < n; i++) {
        ts[i] = fr_hub_find(hub, topics[i]);
        pos[i] = ts[i] ? fr_ring_after(&ts[i]->ring, after[i]) : 0;
    }
    for (;;) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (!ts[i] || pos[i] >= ts[i]->ring.count)
                continue;
            if (best == n || fr_id_cmp(fr_ring_at(&ts[i]->ring, pos[i])->id,
                                       fr_ring_at(&ts[best]->ring, pos[best])->id) < 0)
                best = i;
        }
        if (best == n)
            return;
        fn(ctx, best, fr_ring_at(&ts[best]->ring, pos[best]++));
    }
}

void fr_hub_subscribe(fr_hub_t *hub, fr_sub_t *sub, const char *name) {
    fr_topic_t *t = hub_get(hub, name);
    sub->topic = t;
    sub->prev = NULL;
    sub->next = t->subs;
    if (t->subs)
        t->subs->prev = sub;
    t->subs = sub;
    if (t->nsubs++ == 0 && hub->on_follow)
        hub->on_follow(hub->follow_ctx, t->name, 1);
}

void fr_hub_deliver(fr_hub_t *hub, fr_event_t *ev) {
    fr_topic_t *t = fr_hub_find(hub, ev->topic);
    if (!t || fr_id_cmp(ev->id, t->last) <= 0)
        return;
    t->last = ev->id;
    t->published++;
    hub->published++;
    topic_fan_out(hub, t, ev);
}

void fr_hub_note_position(fr_hub_t *hub, const char *topic, fr_id_t id) {
    fr_topic_t *t = fr_hub_find(hub, topic);
    if (t && fr_id_cmp(id, t->last) > 0)
        t->last = id;
}

void fr_hub_unsubscribe(fr_hub_t *hub, fr_sub_t *sub) {
    fr_topic_t *t = sub->topic;
    if (!t)
        return;
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        t->subs = sub->next;
    if (sub->next)
        sub->next->prev = sub->prev;
    sub->topic = NULL;
    sub->prev = sub->next = NULL;
    if (--t->nsubs == 0 && hub->on_follow)
        hub->on_follow(hub->follow_ctx, t->name, 0);
    hub_maybe_forget(hub, t);
}

void fr_hub_sweep(fr_hub_t *hub) {
    uint64_t now = fr_now_ms();
    for (size_t i = 0; i < hub->nbuckets; i++) {
        fr_topic_t *t = hub->buckets[i];
        while (t) {
            fr_topic_t *next = t->hnext;
            topic_expire(hub, t, now);
            hub_maybe_forget(hub, t);
            t = next;
        }
    }
}
