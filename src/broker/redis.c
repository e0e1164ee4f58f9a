/* The Redis broker (see broker/redis.h): its fr_broker_ops_t, creating and freeing it, and
 * joins. Publishing is in broker/redis_publish.c, the URL is parsed in broker/redis_url.c, the
 * connections are in broker/redis_conn.c (and the Sentinels in broker/redis_sentinel.c),
 * replica confirmations in broker/redis_wait.c, the topics this node follows in
 * broker/redis_follow.c, presence in broker/redis_presence.c; what they share is in
 * broker/redis_private.h. */
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

/* Every followed topic is trimmed to the time window at least this often (seconds). */
#define TRIM_PERIOD_MAX_S 60

/* ---- joins -------------------------------------------------------------------------------- */

static void join_destroy(join_t *j) {
    for (size_t i = 0; i < j->n; i++) {
        free(j->topics[i]);
        free(j->after[i]);
    }
    free(j->topics);
    free(j->after);
    free(j);
}

void fr_redis_join_fail(join_t *j) {
    fr_join_t *res = fr_calloc(1, sizeof *res);
    res->error = 1;
    j->cb(j->ctx, res);
    join_destroy(j);
}

static int parse_id(const redisReply *rep, fr_id_t *id) {
    return rep && rep->type == REDIS_REPLY_STRING ? fr_id_parse(rep->str, rep->len, id) : -1;
}

static const char *field_value(const redisReply *fields, const char *name, size_t *len) {
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0 &&
            v->type == REDIS_REPLY_STRING) {
            *len = v->len;
            return v->str;
        }
    }
    *len = 0;
    return NULL;
}

/* Builds an event from a Stream entry [id, [field, value, …]]; NULL when malformed. */
static fr_event_t *event_from_entry(const char *topic, const redisReply *entry) {
    fr_id_t id;
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        parse_id(entry->element[0], &id) < 0 || entry->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *f = entry->element[1];
    size_t dl, el, pl, jl, tl;
    const char *d = field_value(f, "d", &dl), *e = field_value(f, "e", &el);
    const char *p = field_value(f, "p", &pl), *j = field_value(f, "j", &jl);
    const char *t = field_value(f, "t", &tl);
    fr_priority_t prio = FR_PRIO_NORMAL;
    if (!d || (p && fr_priority_parse(p, &prio) < 0))
        return NULL;
    char name[256] = "";
    if (e && el < sizeof name) {
        memcpy(name, e, el);
        name[el] = '\0';
    }
    const char *err;
    return fr_event_new(topic, id, name[0] ? name : NULL, d, dl, prio, j && jl == 1 && j[0] == '1',
                        t ? strtoull(t, NULL, 10) : id.ms, &err);
}

static void on_resume_reply(redisAsyncContext *ac, void *reply, void *priv) {
    join_t *j = priv;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != j->n) {
        if (rep && rep->type == REDIS_REPLY_ERROR && !fr_redis_conn_check_reply(ac->data, rep))
            fr_error("redis: freshet_resume failed: %s", rep->str);
        fr_redis_join_fail(j);
        return;
    }
    fr_join_t *res = fr_calloc(1, sizeof *res);
    res->ntopics = j->n;
    res->topics = fr_calloc(j->n, sizeof *res->topics);
    for (size_t i = 0; i < j->n; i++) {
        const redisReply *t = rep->element[i];
        fr_join_topic_t *out = &res->topics[i];
        if (t->type != REDIS_REPLY_ARRAY || t->elements != 3 ||
            t->element[0]->type != REDIS_REPLY_STRING || parse_id(t->element[1], &out->last) < 0 ||
            t->element[2]->type != REDIS_REPLY_ARRAY) {
            res->error = 1;
            continue;
        }
        const char *st = t->element[0]->str;
        out->status = strcmp(st, "ok") == 0      ? FR_JOIN_OK
                      : strcmp(st, "stale") == 0 ? FR_JOIN_STALE
                                                 : FR_JOIN_INVALID;
        const redisReply *entries = t->element[2];
        out->events = fr_calloc(entries->elements, sizeof *out->events);
        for (size_t k = 0; k < entries->elements; k++) {
            fr_event_t *ev = event_from_entry(j->topics[i], entries->element[k]);
            if (ev)
                out->events[out->nevents++] = ev;
            else
                fr_warn("redis: skipping a malformed entry in the Stream of '%s'", j->topics[i]);
        }
    }
    j->cb(j->ctx, res);
    join_destroy(j);
}

/* "fr:{<topic>}:<kind>", the key of one of a topic's structures: in buf when it fits, else on
 * the heap (free it when it is not buf). */
static char *topic_key(const char *topic, char kind, char *buf, size_t cap) {
    size_t n = strlen(topic) + 8;
    char *k = n <= cap ? buf : fr_malloc(n);
    snprintf(k, n, "fr:{%s}:%c", topic, kind);
    return k;
}

void fr_redis_join_start(join_t *j) {
    fr_redis_t *r = j->r;
    if (!r->cmd_ready) {
        fr_redis_join_fail(j);
        return;
    }
    /* FCALL freshet_resume <n> fr:{t}:s… <after>… <events> <seconds>: the window travels with
     * the call, and the count is this node's window (a refill asks for no more than a join). */
    size_t argc = 3 + 2 * j->n + 2;
    const char **argv = fr_calloc(argc, sizeof *argv);
    size_t *lens = fr_calloc(argc, sizeof *lens);
    char **keys = fr_calloc(j->n, sizeof *keys);
    char nbuf[24], events[24], seconds[32];
    size_t max = j->max_events < r->replay_events ? j->max_events : r->replay_events;
    snprintf(nbuf, sizeof nbuf, "%zu", j->n);
    snprintf(events, sizeof events, "%zu", max);
    snprintf(seconds, sizeof seconds, "%.3f", (double)r->replay_ms / 1000.0);
    size_t a = 0;
    argv[a++] = "FCALL";
    argv[a++] = "freshet_resume";
    argv[a++] = nbuf;
    for (size_t i = 0; i < j->n; i++)
        argv[a++] = keys[i] = topic_key(j->topics[i], 's', NULL, 0);
    for (size_t i = 0; i < j->n; i++)
        argv[a++] = j->after[i];
    argv[a++] = events;
    argv[a++] = seconds;
    for (size_t i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(r->cmd, on_resume_reply, j, (int)a, argv, lens) != REDIS_OK)
        fr_redis_join_fail(j);
    for (size_t i = 0; i < j->n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    free(lens);
}

static join_t *join_new(fr_redis_t *r, char *const *topics, const fr_id_t *after, size_t n,
                        size_t max_events, fr_join_cb cb, void *ctx) {
    join_t *j = fr_calloc(1, sizeof *j);
    j->r = r;
    j->n = n;
    j->max_events = max_events;
    j->cb = cb;
    j->ctx = ctx;
    j->topics = fr_calloc(n, sizeof *j->topics);
    j->after = fr_calloc(n, sizeof *j->after);
    for (size_t i = 0; i < n; i++) {
        j->topics[i] = fr_strdup(topics[i]);
        char idbuf[FR_ID_MAX_LEN];
        if (after)
            fr_id_format(after[i], idbuf);
        j->after[i] = fr_strdup(after ? idbuf : "$");
    }
    return j;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static const fr_broker_ops_t redis_ops;

fr_broker_t *fr_redis_broker_new(uv_loop_t *loop, fr_hub_t *hub, const char *url,
                                 size_t replay_events, uint64_t replay_ms, fr_metrics_t *metrics,
                                 char *err, size_t errlen) {
    fr_redis_t *r = fr_calloc(1, sizeof *r);
    if (fr_redis_url_parse(url, &r->url, err, errlen) < 0) {
        free(r);
        return NULL;
    }
    r->base.ops = &redis_ops;
    r->base.hub = hub;
    r->base.slot = 0;
    r->loop = loop;
    r->replay_events = replay_events;
    r->replay_ms = replay_ms;
    r->metrics = metrics;
    r->primary = r->url.addr; /* redis-sentinel://: replaced by what the Sentinels say */
    fr_htable_init(&r->follows);
    fr_list_init(&r->watches);
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        uint64_t t = fr_now_ms() ^ (uint64_t)getpid();
        memcpy(rnd, &t, sizeof rnd);
    }
    for (int i = 0; i < 8; i++)
        snprintf(r->node + 2 * i, 3, "%02x", rnd[i]);
    uv_timer_t *timers[] = {&r->cmd_retry, &r->sub_retry, &r->tick, &r->failover,
                            &r->sentinel.timer};
    for (size_t i = 0; i < FR_ARRAY_LEN(timers); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = r;
    }
    r->handles_open = (int)FR_ARRAY_LEN(timers);
    hub->on_follow = fr_redis_on_follow;
    hub->follow_ctx = r;
    fr_redis_conn_start(r);
    return &r->base;
}

static void on_timer_closed(uv_handle_t *h) {
    fr_redis_t *r = h->data;
    if (--r->handles_open > 0)
        return;
    fr_redis_follow_free_all(r);
    fr_htable_close(&r->follows);
    fr_redis_presence_free(r);
    fr_redis_publish_free(r);
    fr_redis_url_free(&r->url);
    free(r);
}

static void redis_free(fr_broker_t *b) {
    fr_redis_t *r = (fr_redis_t *)b;
    if (r->closing)
        return;
    /* Streams that close after this must not reach a broker that is going away. */
    r->base.hub->on_follow = NULL;
    r->base.hub->follow_ctx = NULL;
    /* Nothing reconnects once `closing` is set; pending publishes and joins hear of the
     * failure. */
    r->closing = 1;
    fr_redis_publish_fail_all(r);
    fr_redis_conn_stop(r);
    uv_timer_t *timers[] = {&r->cmd_retry, &r->sub_retry, &r->tick, &r->failover,
                            &r->sentinel.timer};
    for (size_t i = 0; i < FR_ARRAY_LEN(timers); i++)
        uv_close((uv_handle_t *)timers[i], on_timer_closed);
}

static int redis_ready(const fr_broker_t *b) {
    const fr_redis_t *r = (const fr_redis_t *)b;
    return r->cmd_ready && r->sub_ready;
}

/* /health: where the primary is, whether the subscriber hears its probes, and the counts of
 * what went wrong (this worker's). */
static size_t redis_health(const fr_broker_t *b, char *buf, size_t cap) {
    const fr_redis_t *r = (const fr_redis_t *)b;
    char primary[300] = "null";
    if (r->url.unix_path)
        fr_json_write_string(primary, sizeof primary, r->url.unix_path, strlen(r->url.unix_path));
    else if (r->have_primary || !r->url.sentinel) {
        char hp[280];
        snprintf(hp, sizeof hp, "%s:%d", r->primary.host, r->primary.port);
        fr_json_write_string(primary, sizeof primary, hp, strlen(hp));
    }
    const fr_metrics_t *m = r->metrics;
    unsigned long failovers = m ? m->redis_failovers : 0, probes = m ? m->redis_probe_failures : 0;
    unsigned long losses = m ? m->redis_sub_losses : 0, unconfirmed = m ? m->redis_unconfirmed : 0;
    int n = snprintf(buf, cap,
                     ",\"primary\":%s,\"subscriber\":\"%s\",\"probe_ms\":%llu,"
                     "\"probe_failures\":%lu,\"subscriber_losses\":%lu,\"failovers\":%lu",
                     primary, r->sub_ready && r->probe_subscribed ? "ok" : "down",
                     (unsigned long long)r->probe_rtt, probes, losses, failovers);
    if (n > 0 && (size_t)n < cap && r->url.sentinel)
        n += snprintf(buf + n, cap - (size_t)n, ",\"sentinels\":%zu", r->url.nsentinels);
    if (n > 0 && (size_t)n < cap && r->url.replicas)
        n += snprintf(buf + n, cap - (size_t)n, ",\"replicas\":%u,\"unconfirmed\":%lu",
                      r->url.replicas, unconfirmed);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ---- the rest of the interface ------------------------------------------------------------ */

static int redis_join(fr_broker_t *b, fr_sub_t *subs, char *const *topics, const fr_id_t *after,
                      size_t n, size_t max_events, fr_join_cb cb, void *ctx) {
    fr_redis_t *r = (fr_redis_t *)b;
    if (!r->cmd_ready || !r->sub_ready)
        return -1;
    /* The first subscriber of a topic makes this node subscribe to its channel (on_follow);
     * the join waits for Redis to confirm every subscription before it reads positions. */
    for (size_t i = 0; i < n; i++)
        fr_hub_subscribe(b->hub, &subs[i], topics[i]);
    join_t *j = join_new(r, topics, after, n, max_events, cb, ctx);
    for (size_t i = 0; i < n; i++)
        fr_redis_follow_wait(r, j, topics[i]);
    if (j->waiting == 0)
        fr_redis_join_start(j);
    return 0;
}

/* A topic this node has not seen yet starts now: Redis ids are times. */
static fr_id_t redis_position(fr_broker_t *b, const char *topic) {
    fr_id_t pos = fr_hub_position(b->hub, topic);
    if (pos.ms == 0 && pos.seq == 0)
        pos.ms = fr_now_ms();
    return pos;
}

/* The time window is checked by every resume; this keeps the Streams this node follows from
 * holding expired events for long. Each topic is trimmed once per period, a slice of the
 * topics each second (by the hash of the name), so thousands of followed topics do not land on
 * Redis in one burst; the count window needs nothing here (XADD trims). */
static void trim_followed(fr_redis_t *r) {
    uint64_t period = r->replay_ms / 4000;
    period = period < 1 ? 1 : period > TRIM_PERIOD_MAX_S ? TRIM_PERIOD_MAX_S : period;
    uint64_t slice = r->trim_round++ % period;
    char seconds[32];
    snprintf(seconds, sizeof seconds, "%.3f", (double)r->replay_ms / 1000.0);
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
        if (!f->wanted || f->hnode.hash % period != slice)
            continue;
        char keybuf[256];
        char *key = topic_key(f->topic, 's', keybuf, sizeof keybuf);
        redisAsyncCommand(r->cmd, NULL, NULL, "FCALL freshet_trim 1 %s %s", key, seconds);
        if (key != keybuf)
            free(key);
    }
}

typedef struct {
    fr_published_cb cb;
    void *ctx;
} locate_t;

/* XINFO STREAM fr:{topic}:s: the Stream's last-generated-id is the position a resume from is
 * exact (freshet_mark raises it past a failover's lost stretch too); "0-0" for a topic Redis
 * holds nothing of (no such key). */
static void on_located(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    locate_t *l = priv;
    redisReply *rep = reply;
    fr_id_t id = {0, 0};
    const redisReply *last = NULL;
    if (rep && rep->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < rep->elements; i += 2)
            if (rep->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(rep->element[i]->str, "last-generated-id") == 0)
                last = rep->element[i + 1];
    if (!rep)
        l->cb(l->ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable");
    else if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "no such key"))
        l->cb(l->ctx, 0, id, NULL);
    else if (rep->type == REDIS_REPLY_ERROR)
        l->cb(l->ctx, FR_PUB_UNAVAILABLE, id, rep->str);
    else if (!last || parse_id(last, &id) < 0)
        l->cb(l->ctx, FR_PUB_UNAVAILABLE, id, "unexpected reply from Redis");
    else
        l->cb(l->ctx, 0, id, NULL);
    free(l);
}

static void redis_locate(fr_broker_t *b, const char *topic, fr_published_cb cb, void *ctx) {
    fr_redis_t *r = (fr_redis_t *)b;
    fr_id_t id = {0, 0};
    if (!r->cmd_ready) {
        cb(ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable");
        return;
    }
    locate_t *l = fr_malloc(sizeof *l);
    l->cb = cb;
    l->ctx = ctx;
    char keybuf[256];
    char *key = topic_key(topic, 's', keybuf, sizeof keybuf);
    int rc = redisAsyncCommand(r->cmd, on_located, l, "XINFO STREAM %s", key);
    if (key != keybuf)
        free(key);
    if (rc != REDIS_OK) {
        free(l);
        cb(ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable");
    }
}

static void redis_sweep(fr_broker_t *b) {
    fr_redis_t *r = (fr_redis_t *)b;
    fr_hub_sweep(b->hub);
    if (r->cmd_ready && r->replay_ms > 0)
        trim_followed(r);
}

static const fr_broker_ops_t redis_ops = {
    .kind = "redis",
    .publish = fr_redis_publish,
    .join = redis_join,
    .replay = NULL, /* an open stream resumes by reconnecting */
    .position = redis_position,
    .locate = redis_locate,
    .presence = fr_redis_presence,
    .ready = redis_ready,
    .health = redis_health,
    .sweep = redis_sweep,
    .free = redis_free,
};

int fr_redis_broker_primary(const fr_broker_t *b, fr_redis_addr_t *out) {
    if (!b || b->ops != &redis_ops)
        return -1;
    const fr_redis_t *r = (const fr_redis_t *)b;
    if (r->url.unix_path || (r->url.sentinel && !r->have_primary))
        return -1;
    *out = r->url.sentinel ? r->primary : r->url.addr;
    return 0;
}
