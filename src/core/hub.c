#include "core/hub.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void fr_hub_init(fr_hub_t *hub, size_t nslots, size_t replay_events, uint64_t replay_ms,
                 uint64_t start_ms) {
    memset(hub, 0, sizeof *hub);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&hub->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    hub->nslots = nslots ? nslots : 1;
    hub->slots = fr_calloc(hub->nslots, sizeof *hub->slots);
    fr_htable_init(&hub->topics);
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

static fr_topic_t *topic_of(fr_hnode_t *n) {
    return n ? FR_HTABLE_ENTRY(n, fr_topic_t, hnode) : NULL;
}

int fr_hub_ready(const fr_hub_t *hub) {
    return hub->topics.buckets != NULL;
}

void fr_hub_close(fr_hub_t *hub) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&hub->topics, &it);
    for (fr_hnode_t *n; (n = fr_htable_iter_next(&it));) {
        fr_htable_remove(&hub->topics, n);
        topic_free(topic_of(n));
    }
    fr_htable_close(&hub->topics);
    for (size_t k = 0; k < hub->nslots; k++) {
        fr_hub_slot_t *sl = &hub->slots[k];
        for (size_t i = 0; i < sl->npending; i++)
            fr_event_release(sl->pending[i]);
        free(sl->pending);
        free(sl->spare);
    }
    free(hub->slots);
    pthread_mutex_destroy(&hub->mu);
    memset(hub, 0, sizeof *hub);
}

void fr_hub_set_wake(fr_hub_t *hub, size_t slot, void (*wake)(void *ctx), void *ctx) {
    hub->slots[slot].wake = wake;
    hub->slots[slot].wake_ctx = ctx;
}

void fr_hub_lock(fr_hub_t *hub) {
    pthread_mutex_lock(&hub->mu);
}

void fr_hub_unlock(fr_hub_t *hub) {
    pthread_mutex_unlock(&hub->mu);
}

void fr_hub_stats(fr_hub_t *hub, size_t *ntopics, uint64_t *published) {
    fr_hub_lock(hub);
    *ntopics = hub->topics.count;
    *published = hub->published;
    fr_hub_unlock(hub);
}

fr_topic_t *fr_hub_find(fr_hub_t *hub, const char *name) {
    return topic_of(fr_htable_find(&hub->topics, name, strlen(name)));
}

static fr_topic_t *hub_get(fr_hub_t *hub, const char *name) {
    fr_topic_t *t = fr_hub_find(hub, name);
    if (t)
        return t;
    t = fr_calloc(1, sizeof *t + hub->nslots * sizeof t->slot[0]);
    size_t len = strlen(name);
    t->name = fr_strndup(name, len);
    fr_ring_init(&t->ring, hub->replay_events);
    t->born = hub->floor;
    t->last = hub->floor;
    for (size_t k = 0; k < hub->nslots; k++)
        fr_list_init(&t->slot[k].subs);
    fr_htable_insert(&hub->topics, &t->hnode, t->name, len);
    return t;
}

/* Forgets a topic nobody follows and that holds nothing to replay. Its last id raises the
 * floor, so a topic created later under the same name never reissues an id. */
static void hub_maybe_forget(fr_hub_t *hub, fr_topic_t *t) {
    if (t->nsubs > 0 || t->ring.count > 0 || t->delivering)
        return;
    if (fr_id_cmp(t->last, hub->floor) > 0)
        hub->floor = t->last;
    fr_htable_remove(&hub->topics, &t->hnode);
    topic_free(t);
}

static void topic_expire(fr_hub_t *hub, fr_topic_t *t, uint64_t now) {
    if (hub->replay_ms > 0 && now > hub->replay_ms)
        fr_ring_expire(&t->ring, now - hub->replay_ms);
}

/* Queues ev for the slot's next flush (one new reference). Returns 1 when the queue was
 * empty, so its worker needs waking. */
static int slot_push(fr_hub_slot_t *sl, fr_event_t *ev) {
    if (sl->npending == sl->cap) {
        sl->cap = sl->cap ? sl->cap * 2 : 64;
        sl->pending = fr_realloc(sl->pending, sl->cap * sizeof *sl->pending);
    }
    fr_event_retain(ev);
    sl->pending[sl->npending++] = ev;
    return sl->npending == 1;
}

int fr_hub_publish(fr_hub_t *hub, const char *name, const char *evname, const char *data,
                   size_t data_len, fr_priority_t prio, int json, fr_id_t *id_out,
                   const char **err) {
    if (fr_event_validate(name, evname, data, data_len, err) < 0)
        return -1;
    fr_hub_lock(hub);
    uint64_t now = fr_now_ms();
    fr_topic_t *t = hub_get(hub, name);
    topic_expire(hub, t, now);
    fr_id_t id = fr_id_next(t->last, now);
    fr_event_t *ev = fr_event_build(name, id, evname, data, data_len, prio, json, now);
    t->last = id;
    t->published++;
    hub->published++;
    fr_ring_push(&t->ring, ev);
    /* Queued under the lock, so every worker sees a topic's events in id order. */
    uint64_t wake = 0;
    for (size_t k = 0; t->nsubs > 0 && k < hub->nslots; k++) {
        if (t->slot[k].nsubs > 0 && slot_push(&hub->slots[k], ev))
            wake |= 1ull << k;
    }
    fr_event_release(ev);
    *id_out = id;
    hub_maybe_forget(hub, t);
    fr_hub_unlock(hub);
    for (size_t k = 0; wake; k++, wake >>= 1) {
        if ((wake & 1) && hub->slots[k].wake)
            hub->slots[k].wake(hub->slots[k].wake_ctx);
    }
    return 0;
}

/* Walks the slot's subscribers outside the lock: only this slot's worker changes them, and
 * `delivering` keeps the topic alive. A deliver callback may end its own stream, so the next
 * link is read before the call. */
static void topic_fan_out(fr_hub_t *hub, fr_topic_t *t, size_t slot, fr_event_t *ev) {
    t->delivering++;
    fr_hub_unlock(hub);
    fr_list_t *subs = &t->slot[slot].subs;
    for (fr_list_t *l = fr_list_first(subs), *next; l; l = next) {
        next = fr_list_next(subs, l);
        fr_sub_t *s = FR_LIST_ENTRY(l, fr_sub_t, link);
        s->ops->deliver(s, ev);
    }
    fr_hub_lock(hub);
    t->delivering--;
    hub_maybe_forget(hub, t);
}

void fr_hub_flush(fr_hub_t *hub, size_t slot) {
    fr_hub_slot_t *sl = &hub->slots[slot];
    fr_hub_lock(hub);
    if (sl->npending == 0) {
        fr_hub_unlock(hub);
        return;
    }
    /* Take the queue and leave the spare array in its place: publishes made while this
     * fan-out runs (by other workers, or by hooks it calls) queue for the next flush. */
    fr_event_t **evs = sl->pending;
    size_t n = sl->npending, cap = sl->cap;
    sl->pending = sl->spare;
    sl->cap = sl->spare_cap;
    sl->npending = 0;
    sl->spare = NULL;
    sl->spare_cap = 0;
    for (size_t i = 0; i < n; i++) {
        fr_topic_t *t = fr_hub_find(hub, evs[i]->topic);
        if (t)
            topic_fan_out(hub, t, slot, evs[i]);
    }
    fr_hub_unlock(hub);
    for (size_t i = 0; i < n; i++)
        fr_event_release(evs[i]);
    /* Only this slot's worker flushes it, so the spare is still empty. */
    fr_hub_lock(hub);
    sl->spare = evs;
    sl->spare_cap = cap;
    fr_hub_unlock(hub);
}

fr_id_t fr_hub_position(fr_hub_t *hub, const char *name) {
    fr_hub_lock(hub);
    fr_topic_t *t = fr_hub_find(hub, name);
    fr_id_t id = t ? t->last : hub->floor;
    fr_hub_unlock(hub);
    return id;
}

static fr_resume_t hub_check_resume(fr_hub_t *hub, const char *name, fr_id_t after);

fr_resume_t fr_hub_check_resume(fr_hub_t *hub, const char *name, fr_id_t after) {
    fr_hub_lock(hub);
    fr_resume_t r = hub_check_resume(hub, name, after);
    fr_hub_unlock(hub);
    return r;
}

static fr_resume_t hub_check_resume(fr_hub_t *hub, const char *name, fr_id_t after) {
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

void fr_hub_events_after(fr_hub_t *hub, const char *name, fr_id_t after, size_t max,
                         fr_event_t ***out, size_t *n) {
    fr_hub_lock(hub);
    fr_topic_t *t = fr_hub_find(hub, name);
    size_t first = t ? fr_ring_after(&t->ring, after) : 0;
    size_t count = t ? t->ring.count - first : 0;
    if (count > max) {
        first += count - max;
        count = max;
    }
    *out = fr_malloc((count ? count : 1) * sizeof **out);
    for (size_t i = 0; i < count; i++) {
        (*out)[i] = fr_ring_at(&t->ring, first + i);
        fr_event_retain((*out)[i]);
    }
    *n = count;
    fr_hub_unlock(hub);
}

void fr_hub_subscribe(fr_hub_t *hub, fr_sub_t *sub, const char *name) {
    fr_hub_lock(hub);
    fr_topic_t *t = hub_get(hub, name);
    fr_topic_slot_t *ts = &t->slot[sub->slot];
    sub->topic = t;
    sub->away = 0;
    /* At the front, as always: a fan-out under way has passed the front, so a subscriber
     * added by one of its callbacks does not get the event being delivered. */
    fr_list_insert_head(&ts->subs, &sub->link);
    ts->nsubs++;
    int first = t->nsubs++ == 0;
    fr_hub_unlock(hub);
    if (first && hub->on_follow)
        hub->on_follow(hub->follow_ctx, t->name, 1);
}

void fr_hub_set_away(fr_hub_t *hub, fr_sub_t *sub) {
    fr_hub_lock(hub);
    sub->away = 1;
    fr_hub_unlock(hub);
}

void fr_hub_deliver(fr_hub_t *hub, fr_event_t *ev) {
    fr_hub_lock(hub);
    fr_topic_t *t = fr_hub_find(hub, ev->topic);
    if (t && fr_id_cmp(ev->id, t->last) > 0) {
        t->last = ev->id;
        t->published++;
        hub->published++;
        topic_fan_out(hub, t, 0, ev);
    }
    fr_hub_unlock(hub);
}

void fr_hub_lose(fr_hub_t *hub, const char *name) {
    fr_hub_lock(hub);
    fr_topic_t *t = fr_hub_find(hub, name);
    if (t) {
        t->delivering++; /* an owner may unsubscribe while told */
        for (size_t k = 0; k < hub->nslots; k++) {
            fr_list_t *subs = &t->slot[k].subs;
            for (fr_list_t *l = fr_list_first(subs), *next; l; l = next) {
                next = fr_list_next(subs, l);
                fr_sub_t *s = FR_LIST_ENTRY(l, fr_sub_t, link);
                s->ops->lost(s);
            }
        }
        t->delivering--;
        hub_maybe_forget(hub, t);
    }
    fr_hub_unlock(hub);
}

void fr_hub_unsubscribe(fr_hub_t *hub, fr_sub_t *sub) {
    fr_topic_t *t = sub->topic;
    if (!t)
        return;
    fr_hub_lock(hub);
    fr_topic_slot_t *ts = &t->slot[sub->slot];
    fr_list_remove(&sub->link);
    ts->nsubs--;
    sub->topic = NULL;
    int last = --t->nsubs == 0;
    /* The follow callback (a Redis broker, one-slot hubs only) runs before the topic can go. */
    if (last && hub->on_follow)
        hub->on_follow(hub->follow_ctx, t->name, 0);
    hub_maybe_forget(hub, t);
    fr_hub_unlock(hub);
}

void fr_hub_sweep(fr_hub_t *hub) {
    fr_hub_lock(hub);
    uint64_t now = fr_now_ms();
    /* hub_maybe_forget may remove (and free) the topic the walk stands on, and only that. */
    fr_htable_iter_t it;
    fr_htable_iter_init(&hub->topics, &it);
    for (fr_hnode_t *n; (n = fr_htable_iter_next(&it));) {
        fr_topic_t *t = topic_of(n);
        topic_expire(hub, t, now);
        hub_maybe_forget(hub, t);
    }
    fr_hub_unlock(hub);
}
