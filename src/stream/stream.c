/* A stream's life and what reaches it: joining the broker, catching up, live deliveries
 * through the filter into the out-queue, topics changing on an open stream, and its end. The
 * writer is stream/write.c; the worker-wide lists are stream/sched.c. */
#include "stream/stream.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "codec/access.h"
#include "codec/ids.h"

#define FR_LAG_RETRY_MS 5000

static void on_deliver(fr_sub_t *sub, fr_event_t *ev);
static void on_lost(fr_sub_t *sub);
static void on_gone(void *owner, const char *reason);
static void on_closed(void *owner);
static void on_data(void *owner, const char *bytes, size_t len);

static const fr_sub_ops_t stream_sub_ops = {on_deliver, on_lost};

/* What a stream catches up on: the events a join or resume found missing, oldest first, and
 * behind them the live ones that arrived meanwhile. Allocated only while catching up. */
typedef struct fr_catchup_s {
    fr_backlog_item_t *items; /* owned, one reference each in [at, len) */
    size_t len, at, cap;
    size_t replayed;          /* items[0..replayed) came from the broker's replay */
} catchup_t;

/* A join on its way through the broker. */
typedef struct {
    fr_stream_t *s;
    fr_stream_joined_cb cb;
    void *ctx;
} join_wait_t;
static const fr_sink_owner_ops_t stream_owner_ops = {on_gone, on_closed, on_data};

/* ---- life ------------------------------------------------------------------------------- */

fr_stream_t *fr_stream_new(fr_streams_t *env, fr_stream_init_t *init) {
    fr_stream_t *s = fr_calloc(1, sizeof *s);
    s->env = env;
    s->tp = init->tp;
    s->tp_state = init->tp_state;
    s->vm = init->vm;
    fr_vm_retain(s->vm);
    s->route = init->route;
    s->who_ref = init->who_ref;
    s->who_id = init->who_id;
    s->budget = init->budget ? init->budget : &env->config->default_tier;
    s->topics = init->topics;
    s->ntopics = init->ntopics;
    s->slow = init->slow;
    s->id = init->id;
    s->remote = init->remote;
    s->opened_ms = init->opened_ms;
    s->started_us = init->started_us;
    s->access_target = init->access_target;
    s->pos = fr_calloc(s->ntopics, sizeof *s->pos);
    s->last_seq = fr_calloc(s->ntopics, sizeof *s->last_seq);
    fr_outq_init(&s->out);
    fr_list_insert_tail(&env->all, &s->all_link);
    return s;
}

static void release_catch_up(fr_stream_t *s) {
    catchup_t *cu = s->cu;
    if (!cu)
        return;
    for (size_t i = cu->at; i < cu->len; i++)
        fr_event_release(cu->items[i].ev);
    free(cu->items);
    free(cu);
    s->cu = NULL;
}

/* Presence stops counting a stream once it is ending. */
static void mark_away(fr_stream_t *s) {
    if (s->away || !s->subs)
        return;
    s->away = 1;
    for (size_t i = 0; i < s->ntopics; i++) {
        if (s->subs[i].topic)
            fr_hub_set_away(s->env->hub, &s->subs[i]);
    }
}

void fr_stream_free(fr_stream_t *s) {
    fr_streams_t *env = s->env;
    fr_stream_unlist(s);
    if (s->subs) {
        for (size_t i = 0; i < s->ntopics; i++)
            fr_hub_unsubscribe(env->hub, &s->subs[i]);
        FR_DROP(env->count, 1);
    }
    for (size_t i = 0; i < s->ntopics; i++)
        free(s->topics[i]);
    fr_outq_close(&s->out);
    release_catch_up(s);
    fr_join_free(s->join);
    free(s->topics);
    free(s->subs);
    free(s->pos);
    free(s->slow);
    free(s->last_seq);
    free(s->who_id);
    free(s->access_target);
    luaL_unref(s->vm->L, LUA_REGISTRYINDEX, s->who_ref);
    if (s->tp->free)
        s->tp->free(s);
    fr_vm_release(s->vm);
    fr_list_remove(&s->all_link);
    free(s);
}

static void log_closed(fr_stream_t *s, const char *reason) {
    if (!fr_log_enabled(FR_LOG_INFO))
        return;
    char f[512];
    snprintf(f, sizeof f,
             "\"event\":\"CLOSED\",\"conn\":%llu,\"reason\":\"%s\",\"duration_ms\":%llu,"
             "\"events\":%lu,\"bytes\":%lu,\"dropped\":%lu",
             (unsigned long long)s->id, reason,
             (unsigned long long)(fr_mono_ms() - s->opened_ms), s->sent, s->bytes,
             s->out.dropped[0] + s->out.dropped[1] + s->out.dropped[2]);
    fr_log_fields(FR_LOG_INFO, f);
}

/* One access-log line per stream that started, when it ends. */
static void log_access(fr_stream_t *s) {
    fr_access_entry_t e = {.unix_ms = fr_now_ms(),
                           .remote = s->remote,
                           .method = "GET",
                           .target = s->access_target,
                           .target_len = s->access_target ? strlen(s->access_target) : 0,
                           /* Gone before its answer (a long-poll): nginx's 499. */
                           .status = s->status ? s->status : 499,
                           .bytes = s->bytes,
                           .duration_us = fr_mono_us() - s->started_us,
                           .transport = s->tp->name};
    fr_access_emit(s->env->access, s->env->config->access_log_json, &e);
}

void fr_stream_finished(fr_stream_t *s, const char *reason) {
    if (s->started && !s->tp->whole)
        log_closed(s, s->end_reason ? s->end_reason : reason ? reason : "client");
    if (s->started && s->env->access)
        log_access(s);
    fr_stream_free(s);
}

/* The sink is going away: deliver nothing more. */
static void on_gone(void *owner, const char *reason) {
    fr_stream_t *s = owner;
    if (s->detached)
        return;
    s->detached = 1;
    s->gone_reason = reason;
    mark_away(s);
    fr_stream_unlist(s);
}

static void on_closed(void *owner) {
    fr_stream_t *s = owner;
    fr_stream_finished(s, s->gone_reason);
}

static void on_data(void *owner, const char *bytes, size_t len) {
    fr_stream_t *s = owner;
    if (s->tp->input && !s->detached)
        s->tp->input(s, bytes, len);
}

/* ---- what reaches the stream ---------------------------------------------------------- */

/* Ends a stream that cannot keep up: what is queued is discarded (the client gets it again
 * from replay, resuming from the last id it did receive) and it is told to come back later. */
static void evict(fr_stream_t *s, const char *reason) {
    fr_warn("stream %llu from %s cannot keep up (%s): %zu queued, %zu dropped in a row; "
            "closing it with retry: %d so it resumes from replay",
            (unsigned long long)s->id, s->remote, reason, (size_t)s->out.live, s->out.streak,
            FR_LAG_RETRY_MS);
    fr_outq_drop_events(&s->out);
    s->end_reason = reason;
    fr_metrics_t *m = s->env->metrics;
    if (strcmp(reason, "lag") == 0)
        FR_BUMP(m->evicted_lag, 1);
    else if (strcmp(reason, "drop") == 0)
        FR_BUMP(m->evicted_drop, 1);
    else
        FR_BUMP(m->evicted_slow, 1);
    fr_stream_end(s, FR_LAG_RETRY_MS);
}

static void count_drop(fr_stream_t *s, uint32_t topic, fr_priority_t prio) {
    FR_BUMP(s->env->metrics->dropped[prio], 1);
    if (s->subs && s->subs[topic].topic)
        s->subs[topic].topic->dropped++;
}

/* The filter hook, when the route has one: 1 to keep the event, 0 to skip it, -1 when the
 * hook failed (the stream has been ended). */
static int run_filter(fr_stream_t *s, fr_event_t *ev) {
    fr_vm_t *vm = s->vm;
    if (s->route->hooks[FR_HOOK_FILTER] == LUA_NOREF)
        return 1; /* most routes: nothing to call, per delivery */
    fr_vm_push_hook(vm, s->route, FR_HOOK_FILTER);
    lua_State *L = vm->L;
    fr_vm_push_event(vm, ev);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
    vm->filtering++;
    int rc = fr_vm_call(vm, s->route, "filter", 2, 1);
    vm->filtering--;
    if (rc != 0) {
        /* Headers are out: the stream ends cleanly and the client resumes. */
        s->end_reason = "error";
        fr_stream_end(s, s->env->config->retry_ms);
        return -1;
    }
    int keep = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return keep;
}

/* What fr_outq_admit decided for an event the fast path could not take: counts, and the
 * stream given up when the policy says so. */
static void offer_slow(fr_stream_t *s, size_t index, fr_event_t *ev, fr_item_t *it,
                       size_t held) {
    fr_admit_info_t info;
    fr_admit_t verdict = fr_outq_admit(&s->out, it, (fr_slow_t)s->slow[index],
                                       &s->last_seq[index], s->budget, held, &info);
    if (info.conflated)
        FR_BUMP(s->env->metrics->conflated, 1);
    if (info.victim)
        count_drop(s, info.victim_topic, info.victim_prio);
    if (info.self_dropped)
        count_drop(s, (uint32_t)index, ev->priority);
    if (info.queued) {
        if (!fr_list_linked(&s->pend_link)) {
            if (verdict != FR_ADMIT_REPLACED)
                fr_stream_touch(s);
            fr_stream_mark_pending(s);
        }
    } else {
        free(it->own);
    }
    switch (verdict) {
    case FR_ADMIT_EVICT_SLOW: evict(s, "slow"); break;
    case FR_ADMIT_EVICT_DROP: evict(s, "drop"); break;
    case FR_ADMIT_EVICT_LAG: evict(s, "lag"); break;
    default: break;
    }
}

/* Offers one event (live or caught up) of topic `index` to the out-queue. This runs for every
 * delivery, so the usual case (room in the queue) is decided inline. */
static void offer(fr_stream_t *s, size_t index, fr_event_t *ev) {
    /* A broker may hand over an event twice (replay and live); ids say which was seen. */
    if (fr_id_cmp(ev->id, s->pos[index]) <= 0)
        return;
    /* A long-poll answer carries at most a queue's worth; the client asks again from the last
     * id it got. */
    if (s->tp->whole && s->out.live >= s->budget->queue)
        return;
    s->pos[index] = ev->id;
    if (run_filter(s, ev) <= 0)
        return;
    fr_item_t it = {.kind = FR_ITEM_EVENT, .ev = ev, .topic = (uint32_t)index};
    s->tp->frame(s, index, ev, &it);
    /* A sink holds a writer's bytes only while one of its writes is pending (sink.h). */
    size_t held = s->writing ? s->sink->ops->queued(s->sink) : 0;
    if (!fr_outq_admit_fast(&s->out, &it, (fr_slow_t)s->slow[index], &s->last_seq[index],
                            s->budget, held)) {
        offer_slow(s, index, ev, &it, held);
        return;
    }
    /* The first event of a loop turn makes the stream pending and moves its heartbeat on;
     * the loop's clock stands still until the flush, so later ones would change nothing. */
    if (!fr_list_linked(&s->pend_link)) {
        fr_stream_touch(s);
        fr_stream_mark_pending(s);
    }
}

static catchup_t *catch_up_list(fr_stream_t *s) {
    if (!s->cu)
        s->cu = fr_calloc(1, sizeof *s->cu);
    return s->cu;
}

static void hold(fr_stream_t *s, size_t index, fr_event_t *ev) {
    catchup_t *cu = catch_up_list(s);
    if (cu->len == cu->cap) {
        cu->cap = cu->cap ? cu->cap * 2 : 16;
        cu->items = fr_realloc(cu->items, cu->cap * sizeof *cu->items);
    }
    fr_event_retain(ev);
    cu->items[cu->len].ev = ev;
    cu->items[cu->len++].topic = (uint32_t)index;
}

static void on_deliver(fr_sub_t *sub, fr_event_t *ev) {
    fr_stream_t *s = sub->owner;
    if (s->detached || s->ending)
        return;
    if (!s->catching_up) {
        offer(s, sub->index, ev);
        return;
    }
    /* Live events wait behind what the stream is catching up on. A client that falls this
     * far behind while catching up comes back later through replay. */
    hold(s, sub->index, ev);
    if (s->started && s->cu->len - s->cu->at > s->budget->lag)
        evict(s, "lag");
}

static void on_lost(fr_sub_t *sub) {
    fr_stream_t *s = sub->owner;
    if (!s->end_reason)
        s->end_reason = "lag";
    if (s->started)
        fr_stream_end(s, FR_LAG_RETRY_MS);
}

/* Feeds what the stream is catching up on into the out-queue, paced by it: a resume with
 * thousands of events to catch up on sends them as the client reads, within its budget,
 * instead of queueing them all at once (which would evict the stream it is trying to
 * restore). Called at start and after every write. */
void fr_stream_catch_up(fr_stream_t *s) {
    if (!s->catching_up || !s->started)
        return;
    size_t room = s->budget->queue / 2 ? s->budget->queue / 2 : 1;
    size_t held = s->sink ? s->sink->ops->queued(s->sink) : 0;
    catchup_t *cu = s->cu;
    while (cu && cu->at < cu->len && !s->ending && !s->detached && s->out.live < room &&
           !fr_outq_over(&s->out, s->budget, held, 0)) {
        fr_backlog_item_t it = cu->items[cu->at++];
        if (cu->at <= cu->replayed)
            FR_BUMP(s->env->metrics->replayed, 1);
        offer(s, it.topic, it.ev);
        fr_event_release(it.ev);
    }
    if (!cu || cu->at == cu->len || s->ending || s->detached) {
        release_catch_up(s);
        s->catching_up = 0;
    }
}

static int backlog_cmp(const void *a, const void *b) {
    return fr_id_cmp(((const fr_backlog_item_t *)a)->ev->id,
                     ((const fr_backlog_item_t *)b)->ev->id);
}

/* Puts the events of a broker answer in front of what the stream holds, merged in id order
 * (per topic the order is exact); they are counted as replayed. Takes the references. */
static void take_backlog(fr_stream_t *s, fr_join_t *res) {
    size_t total = 0;
    for (size_t i = 0; i < res->ntopics; i++)
        total += res->topics[i].nevents;
    if (total == 0)
        return;
    catchup_t *cu = catch_up_list(s);
    size_t waiting = cu->len - cu->at;
    fr_backlog_item_t *items = fr_malloc((total + waiting) * sizeof *items);
    size_t k = 0;
    for (size_t i = 0; i < res->ntopics; i++) {
        for (size_t e = 0; e < res->topics[i].nevents; e++) {
            items[k].ev = res->topics[i].events[e];
            items[k++].topic = (uint32_t)i;
        }
        res->topics[i].nevents = 0;
    }
    qsort(items, total, sizeof *items, backlog_cmp);
    if (waiting)
        memcpy(items + total, cu->items + cu->at, waiting * sizeof *items);
    free(cu->items);
    cu->items = items;
    cu->at = 0;
    cu->len = cu->cap = total + waiting;
    cu->replayed = total;
    s->catching_up = 1;
}

/* ---- joining and starting ------------------------------------------------------------- */

static void on_joined(void *ctx, fr_join_t *res) {
    join_wait_t wait = *(join_wait_t *)ctx;
    free(ctx);
    fr_stream_t *s = wait.s;
    fr_joined_t how = {0, 0, 0};
    s->joining = 0;
    s->join = res;
    if (res->error || res->ntopics != s->ntopics) {
        how.error = 1;
    } else {
        for (size_t i = 0; i < res->ntopics; i++) {
            how.invalid |= res->topics[i].status == FR_JOIN_INVALID;
            how.stale |= res->topics[i].status == FR_JOIN_STALE;
        }
    }
    wait.cb(wait.ctx, s, &how);
}

int fr_stream_join(fr_stream_t *s, const fr_id_t *after, fr_stream_joined_cb cb, void *ctx) {
    fr_streams_t *env = s->env;
    fr_broker_t *b = env->broker;
    s->subs = fr_calloc(s->ntopics, sizeof *s->subs);
    for (size_t i = 0; i < s->ntopics; i++) {
        s->subs[i].ops = &stream_sub_ops;
        s->subs[i].owner = s;
        s->subs[i].index = i;
        s->subs[i].slot = env->slot;
        s->subs[i].who = s->who_id;
    }
    s->resume = after != NULL;
    if (after)
        memcpy(s->pos, after, s->ntopics * sizeof *s->pos);
    s->joining = s->catching_up = 1;
    join_wait_t *wait = fr_malloc(sizeof *wait);
    *wait = (join_wait_t){s, cb, ctx};
    FR_BUMP(env->count, 1);
    size_t max = env->config->replay_events ? env->config->replay_events : 1;
    if (b->ops->join(b, s->subs, s->topics, after, s->ntopics, max, on_joined, wait) < 0) {
        free(wait);
        FR_DROP(env->count, 1);
        free(s->subs);
        s->subs = NULL;
        s->joining = s->catching_up = 0;
        return -1;
    }
    return 0;
}

static void log_start(fr_stream_t *s, int reset) {
    if (!fr_log_enabled(FR_LOG_INFO))
        return;
    char f[512], tier[96] = "null";
    const char *name = s->budget->name;
    if (name)
        fr_json_write_string(tier, sizeof tier, name, strlen(name));
    if (s->resume) {
        snprintf(f, sizeof f,
                 "\"event\":\"RECONNECTING\",\"conn\":%llu,\"replayed\":%lu,\"reset\":%s",
                 (unsigned long long)s->id, (unsigned long)(s->cu ? s->cu->replayed : 0),
                 reset ? "true" : "false");
        fr_log_fields(FR_LOG_INFO, f);
    }
    char route[200];
    const char *pattern = s->route->pattern.source;
    fr_json_write_string(route, sizeof route, pattern, strlen(pattern));
    snprintf(f, sizeof f,
             "\"event\":\"ACTIVE\",\"conn\":%llu,\"route\":%s,\"topics\":%zu,\"tier\":%s",
             (unsigned long long)s->id, route, s->ntopics, tier);
    fr_log_fields(FR_LOG_INFO, f);
}

void fr_stream_start(fr_stream_t *s, fr_sink_t *sink, int reset) {
    fr_join_t *res = s->join;
    s->join = NULL;
    s->sink = sink;
    fr_sink_attach(sink, &stream_owner_ops, s);
    s->started = 1;
    FR_BUMP(s->env->metrics->streams, 1);
    if (reset || !s->resume) {
        for (size_t i = 0; i < s->ntopics; i++)
            s->pos[i] = res->topics[i].last;
    }
    s->tp->begin(s); /* after the positions: an SSE stream's first frame carries them */
    if (reset) {
        FR_BUMP(s->env->metrics->resume_reset, 1);
        s->tp->reset(s);
    } else if (s->resume) {
        take_backlog(s, res);
    }
    fr_join_free(res);
    fr_stream_touch(s);
    log_start(s, reset);
    fr_stream_catch_up(s);
    if (s->end_reason && !s->ending)
        fr_stream_end(s, FR_LAG_RETRY_MS); /* its topic was lost while it joined */
    sink->ops->ready(sink);
}

/* ---- ending and sending ---------------------------------------------------------------- */

void fr_stream_end(fr_stream_t *s, uint64_t retry_ms) {
    if (s->ending || s->detached || !s->started)
        return;
    s->tp->finish(s, retry_ms);
    s->ending = 1;
    mark_away(s);
    fr_stream_touch(s);
    fr_stream_mark_pending(s);
}

void fr_stream_send(fr_stream_t *s, char *bytes, size_t len) {
    if (s->ending || s->detached) {
        free(bytes);
        return;
    }
    fr_outq_push_owned(&s->out, bytes, len);
    fr_stream_touch(s);
    fr_stream_mark_pending(s);
}

void fr_stream_send_static(fr_stream_t *s, const char *bytes, size_t len) {
    if (s->ending || s->detached)
        return;
    fr_outq_push_static(&s->out, bytes, len);
    fr_stream_touch(s);
    fr_stream_mark_pending(s);
}

size_t fr_stream_positions_max(const fr_stream_t *s) {
    return fr_ids_max_len(s->ntopics);
}

size_t fr_stream_positions(const fr_stream_t *s, char *buf) {
    return fr_ids_format(s->pos, s->ntopics, buf);
}

/* ---- changing a live stream (WebSocket subscribe / unsubscribe / resume) ------------------ */

void fr_stream_set_topics(fr_stream_t *s, char *const *topics, size_t m) {
    fr_broker_t *b = s->env->broker;
    /* Carry over what is known of kept topics; a new one starts from its current position,
     * read under the hub's lock held until the new subscriptions are in. */
    fr_hub_lock(s->env->hub);
    fr_id_t *pos = fr_calloc(m, sizeof *pos);
    uint8_t *slow = fr_calloc(m, sizeof *slow);
    uint64_t *last_seq = fr_calloc(m, sizeof *last_seq);
    size_t *map = fr_calloc(s->ntopics ? s->ntopics : 1, sizeof *map);
    for (size_t j = 0; j < s->ntopics; j++)
        map[j] = SIZE_MAX;
    for (size_t i = 0; i < m; i++) {
        slow[i] = (uint8_t)s->route->slow;
        pos[i] = b->ops->position(b, topics[i]);
        for (size_t j = 0; j < s->ntopics; j++) {
            if (strcmp(s->topics[j], topics[i]) == 0) {
                pos[i] = s->pos[j];
                slow[i] = s->slow[j];
                last_seq[i] = s->last_seq[j];
                map[j] = i;
            }
        }
    }
    /* Queued events of dropped topics go; the others follow their topic's new index. */
    for (size_t k = 0; k < s->out.len; k++) {
        fr_item_t *it = fr_outq_at(&s->out, k);
        if (it->kind != FR_ITEM_EVENT || !it->ev)
            continue;
        if (map[it->topic] == SIZE_MAX)
            fr_outq_drop(&s->out, it);
        else
            it->topic = (uint32_t)map[it->topic];
    }
    catchup_t *cu = s->cu;
    for (size_t k = cu ? cu->at : 0; cu && k < cu->len; k++) {
        if (map[cu->items[k].topic] == SIZE_MAX) {
            fr_event_release(cu->items[k].ev);
            memmove(&cu->items[k], &cu->items[k + 1], (cu->len - k - 1) * sizeof *cu->items);
            cu->len--;
            cu->replayed -= k < cu->replayed;
            k--;
        } else {
            cu->items[k].topic = (uint32_t)map[cu->items[k].topic];
        }
    }
    free(map);
    for (size_t j = 0; j < s->ntopics; j++) {
        fr_hub_unsubscribe(s->env->hub, &s->subs[j]);
        free(s->topics[j]);
    }
    free(s->subs);
    free(s->topics);
    free(s->pos);
    free(s->slow);
    free(s->last_seq);
    s->topics = fr_calloc(m, sizeof *s->topics);
    for (size_t i = 0; i < m; i++)
        s->topics[i] = fr_strdup(topics[i]);
    s->ntopics = m;
    s->pos = pos;
    s->slow = slow;
    s->last_seq = last_seq;
    s->subs = fr_calloc(m, sizeof *s->subs);
    for (size_t i = 0; i < m; i++) {
        s->subs[i].ops = &stream_sub_ops;
        s->subs[i].owner = s;
        s->subs[i].index = i;
        s->subs[i].slot = s->env->slot;
        s->subs[i].who = s->who_id;
        fr_hub_subscribe(s->env->hub, &s->subs[i], s->topics[i]);
    }
    fr_hub_unlock(s->env->hub);
}

static void on_replayed(void *ctx, fr_join_t *res) {
    *(fr_join_t **)ctx = res;
}

const char *fr_stream_resume_from(fr_stream_t *s, const char *ids) {
    fr_broker_t *b = s->env->broker;
    if (!b->ops->replay)
        return "resuming on an open connection needs the memory broker: reconnect with "
               "?lastEventId=<id>";
    fr_id_t *after = fr_calloc(s->ntopics, sizeof *after);
    const char *why = NULL;
    int n = fr_ids_parse(ids, strlen(ids), after, s->ntopics, &why);
    if (n < 0 || (size_t)n != s->ntopics) {
        free(after);
        return "resume takes the id of an event of this stream, as its envelopes carry it";
    }
    fr_join_t *res = NULL;
    size_t max = s->env->config->replay_events ? s->env->config->replay_events : 1;
    if (b->ops->replay(b, s->topics, after, s->ntopics, max, on_replayed, &res) < 0 || !res ||
        res->error || res->ntopics != s->ntopics) {
        fr_join_free(res);
        free(after);
        return "the broker cannot replay now: reconnect with ?lastEventId=<id>";
    }
    int stale = 0;
    for (size_t i = 0; i < s->ntopics; i++) {
        if (res->topics[i].status == FR_JOIN_INVALID) {
            fr_join_free(res);
            free(after);
            return "that id was never issued by this stream";
        }
        stale |= res->topics[i].status == FR_JOIN_STALE;
    }
    FR_BUMP(s->env->metrics->resumes, 1);
    if (stale) {
        FR_BUMP(s->env->metrics->resume_reset, 1);
        for (size_t i = 0; i < s->ntopics; i++)
            s->pos[i] = res->topics[i].last;
        s->tp->reset(s);
    } else {
        memcpy(s->pos, after, s->ntopics * sizeof *after);
        take_backlog(s, res);
        fr_stream_catch_up(s);
    }
    fr_join_free(res);
    free(after);
    return NULL;
}
