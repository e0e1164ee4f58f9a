/* broker = "redis-cluster://host:port[,host:port…]": topics spread over the primaries of a
 * Redis Cluster, with sharded pub/sub. hiredis has no cluster support; this is the routing
 * layer on top of it.
 *
 *   cluster ──CLUSTER SHARDS (at start, every few seconds, at once when something moved)──►
 *     slot map: owner[slot] → shard
 *   shard = an fr_redis_t on one primary: its command connection (FCALL, the library loaded
 *     with SPUBLISH) and its subscriber (SSUBSCRIBE, read raw), its follows, probe, presence
 *
 *   publish(topic)  → the shard owning slot(fr:{topic}:s); MOVED → that shard, ASK → ASKING
 *                     and the command on the importing shard (a few times at most)
 *   join(topics)    → one freshet_resume per slot (a call may not cross slots), merged
 *   follow(topic)   → the owning shard SSUBSCRIBEs; when the slot moves (sunsubscribe, MOVED,
 *                     or a new map), the follow moves to the new owner, which fills the gap
 *                     from the Stream after the last id this node delivered
 *   failover        → the map names a replica of a shard as its primary: the shard's
 *                     connections move there (as with Sentinel), load the library, subscribe
 *                     again and fill every followed topic from its Stream
 *
 * Every shard of a worker uses the same node name, so a topic's presence part stays one field
 * when the topic moves between shards. */
#include "broker/redis_io.h"
#include "broker/redis_private.h"
#include "broker/redis_shards.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "codec/slot.h"

#define TICK_MS 100
#define REFRESH_MS 5000       /* the map is asked for this often when all is well */
#define REFRESH_STALE_MS 200  /* … and this soon after something moved */
#define REFRESH_DOWN_MS 1000  /* … and this often while a shard is unreachable */
#define ANSWER_TIMEOUT_MS 1000
#define REDIRECTS_MAX 5       /* MOVED / ASK followed per publish */

typedef struct fr_cluster_s {
    fr_broker_t base;         /* first: the broker interface (base.hub is borrowed) */
    uv_loop_t *loop;
    size_t replay_events;
    uint64_t replay_ms;
    fr_metrics_t *metrics;    /* borrowed */
    fr_redis_url_t url;       /* the seeds are url.sentinels */
    char node[17];            /* this worker's name on every shard (presence, CLIENT SETNAME) */
    char *library;            /* owned: the function library with SPUBLISH */
    fr_redis_t **shards;      /* owned (freed through their ops), one per primary */
    size_t nshards;
    fr_redis_t *owner[FR_SLOTS]; /* borrowed from shards; NULL: no shard known for the slot */
    int have_map;
    /* Asking for the map: one question at a time, over a kept connection. */
    redisAsyncContext *q;
    fr_redis_addr_t q_addr;
    unsigned q_next;          /* the next candidate to ask after a failure */
    int asking;
    uint64_t asked_ms, answered_ms; /* monotonic */
    int stale;                /* ask again soon */
    unsigned failures;        /* questions failed in a row (logged on the first) */
    uv_timer_t timer;
    int closing;
} fr_cluster_t;

static const fr_broker_ops_t cluster_ops;

/* ---- the library ----------------------------------------------------------------------------- */

/* The node library announces with PUBLISH, which a cluster broadcasts to every node over the
 * cluster bus; sharded channels stay on the shard that owns the slot: SPUBLISH. */
static char *library_sharded(void) {
    const char *from = "'PUBLISH'", *to = "'SPUBLISH'";
    size_t n = 0;
    for (const char *p = fr_redis_library; (p = strstr(p, from)); p += strlen(from))
        n++;
    size_t len = strlen(fr_redis_library) + n * (strlen(to) - strlen(from));
    char *out = fr_malloc(len + 1), *o = out;
    const char *p = fr_redis_library;
    for (const char *hit; (hit = strstr(p, from)); p = hit + strlen(from)) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, to, strlen(to));
        o += strlen(to);
    }
    strcpy(o, p);
    return out;
}

const char *fr_redis_cluster_library(fr_cluster_t *c) {
    return c->library;
}

/* ---- shards and slots ------------------------------------------------------------------------- */

static int same_addr(const fr_redis_addr_t *a, const fr_redis_addr_t *b) {
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static fr_redis_t *shard_at(fr_cluster_t *c, const fr_redis_addr_t *a) {
    for (size_t i = 0; i < c->nshards; i++)
        if (same_addr(&c->shards[i]->primary, a))
            return c->shards[i];
    return NULL;
}

static fr_redis_t *shard_add(fr_cluster_t *c, const fr_redis_addr_t *a) {
    fr_redis_t *r = fr_redis_shard_new(c->loop, c->base.hub, &c->url, a, c->node,
                                       c->replay_events, c->replay_ms, c->metrics, c);
    c->shards = fr_realloc(c->shards, (c->nshards + 1) * sizeof *c->shards);
    c->shards[c->nshards++] = r;
    fr_info("redis: cluster shard %s:%d added", a->host, a->port);
    return r;
}

static fr_redis_t *owner_of(void *ctx, const char *topic) {
    fr_cluster_t *c = ctx;
    return c->owner[fr_slot_of_topic(topic)];
}

/* Where a topic lives for this node: the shard that follows it now (until its follow moves),
 * else the slot's owner. */
static fr_redis_t *shard_of(fr_cluster_t *c, const char *topic) {
    fr_redis_t *own = owner_of(c, topic);
    if (own && fr_redis_follow_has(own, topic))
        return own;
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i] != own && fr_redis_follow_has(c->shards[i], topic))
            return c->shards[i];
    return own;
}

/* Moves every follow to its slot's owner. */
static void rehome_all(fr_cluster_t *c) {
    for (size_t i = 0; i < c->nshards; i++)
        fr_redis_follow_rehome(c->shards[i], owner_of, c);
}

/* "MOVED 3999 127.0.0.1:6381" → slot and address; -1 when it is not one. */
static int parse_redirect(const char *err, unsigned *slot, fr_redis_addr_t *a) {
    const char *p = strchr(err, ' ');
    if (!p)
        return -1;
    char *end;
    unsigned long s = strtoul(p + 1, &end, 10);
    if (end == p + 1 || *end != ' ' || s >= FR_SLOTS)
        return -1;
    const char *hp = end + 1, *colon = strrchr(hp, ':');
    if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof a->host)
        return -1;
    long port = strtol(colon + 1, &end, 10);
    if (port < 1 || port > 65535 || (*end && *end != ' '))
        return -1;
    memcpy(a->host, hp, (size_t)(colon - hp));
    a->host[colon - hp] = '\0';
    a->port = (int)port;
    *slot = (unsigned)s;
    return 0;
}

void fr_redis_cluster_stale(fr_cluster_t *c) {
    if (c && !c->closing)
        c->stale = 1;
}

void fr_redis_cluster_moved(fr_cluster_t *c, fr_redis_t *shard, const char *err) {
    (void)shard;
    if (!c || c->closing)
        return;
    c->stale = 1;
    unsigned slot;
    fr_redis_addr_t a;
    /* ASK is for one command while a slot migrates: the owner stays until MOVED says. */
    if (strncmp(err, "MOVED ", 6) != 0 || parse_redirect(err, &slot, &a) < 0)
        return;
    fr_redis_t *to = shard_at(c, &a);
    if (!to || c->owner[slot] == to)
        return;
    c->owner[slot] = to;
    rehome_all(c);
}

/* ---- the map ---------------------------------------------------------------------------------- */

/* Applies a CLUSTER SHARDS answer: each shard with slots gets its shard object (the one on its
 * primary; else, after a failover, the one on a node that is now its replica, moved to the new
 * primary; else a new one), the slots their owner; follows move to their owners; shards that
 * own nothing any more go. */
static void map_apply(fr_cluster_t *c, const fr_redis_shards_t *m) {
    fr_redis_t **used = fr_calloc(m->nshards + 1, sizeof *used);
    fr_redis_t **owner = fr_calloc(FR_SLOTS, sizeof *owner);
    for (size_t i = 0; i < m->nshards; i++) {
        const fr_redis_shard_t *s = &m->shards[i];
        if (s->primary < 0 || s->nranges == 0)
            continue;
        const fr_redis_addr_t *p = &s->nodes[s->primary].addr;
        fr_redis_t *r = shard_at(c, p);
        for (size_t k = 0; !r && k < s->nnodes; k++) {
            fr_redis_t *old = shard_at(c, &s->nodes[k].addr);
            int taken = 0;
            for (size_t u = 0; u < i; u++)
                taken |= used[u] == old;
            if (old && !taken) {
                /* A failover: the shard's primary is a former replica. */
                fr_warn("redis: cluster shard %s:%d failed over to %s:%d", old->primary.host,
                        old->primary.port, p->host, p->port);
                fr_redis_conn_primary(old, p->host, p->port);
                r = old;
            }
        }
        if (!r)
            r = shard_add(c, p);
        used[i] = r;
        for (size_t k = 0; k < s->nranges; k++)
            for (unsigned slot = s->ranges[k][0]; slot <= s->ranges[k][1]; slot++)
                owner[slot] = r;
    }
    memcpy(c->owner, owner, sizeof c->owner);
    free(owner);
    c->have_map = 1;
    rehome_all(c);
    /* Shards that own no slot: their follows have moved; they go. */
    for (size_t i = 0; i < c->nshards;) {
        fr_redis_t *r = c->shards[i];
        int owns = 0;
        for (size_t u = 0; u < m->nshards; u++)
            owns |= used[u] == r;
        if (owns) {
            fr_redis_follow_retry(r);
            i++;
            continue;
        }
        fr_info("redis: cluster shard %s:%d owns no slot any more; leaving it",
                r->primary.host, r->primary.port);
        c->shards[i] = c->shards[--c->nshards];
        r->base.ops->free(&r->base);
    }
    free(used);
}

static void q_close(fr_cluster_t *c) {
    redisAsyncContext *ac = c->q;
    c->q = NULL;
    c->asking = 0;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}

static void ask_failed(fr_cluster_t *c, const char *why) {
    if (c->failures++ == 0 || !c->have_map)
        fr_warn("redis: cluster node %s:%d: %s; asking another one", c->q_addr.host,
                c->q_addr.port, why);
    q_close(c);
    c->q_next++;
}

static void on_shards(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_cluster_t *c = ac->data;
    if (!c || c->closing)
        return;
    if (!reply) {
        c->q = NULL; /* hiredis is freeing it */
        ac->data = NULL;
        ask_failed(c, "connection lost");
        return;
    }
    c->asking = 0;
    fr_redis_shards_t m;
    char err[256];
    if (fr_redis_shards_parse(reply, c->q_addr.host, &m, err, sizeof err) < 0) {
        fr_redis_shards_free(&m);
        ask_failed(c, err);
        return;
    }
    int any = 0;
    for (size_t i = 0; i < m.nshards; i++)
        any |= m.shards[i].nranges > 0 && m.shards[i].primary >= 0;
    if (!any) {
        fr_redis_shards_free(&m);
        ask_failed(c, "CLUSTER SHARDS names no primary with slots");
        return;
    }
    c->failures = 0;
    c->answered_ms = fr_mono_ms();
    c->stale = 0;
    map_apply(c, &m);
    fr_redis_shards_free(&m);
}

static void on_q_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_cluster_t *c = ac->data;
    if (c && c->q == ac) {
        c->q = NULL;
        c->asking = 0;
    }
}

/* The candidates, in turn: the shards' primaries, then the seeds of the URL. */
static const fr_redis_addr_t *candidate(fr_cluster_t *c, unsigned i) {
    size_t n = c->nshards + c->url.nsentinels;
    i %= (unsigned)n;
    return i < c->nshards ? &c->shards[i]->primary : &c->url.sentinels[i - c->nshards];
}

static void ask(fr_cluster_t *c) {
    if (!c->q) {
        c->q_addr = *candidate(c, c->q_next);
        redisAsyncContext *ac = redisAsyncConnect(c->q_addr.host, c->q_addr.port);
        if (!ac || ac->err || fr_redis_io_attach(ac, c->loop, NULL) < 0) {
            if (ac)
                redisAsyncFree(ac);
            c->q_next++;
            return;
        }
        ac->data = c;
        redisAsyncSetDisconnectCallback(ac, on_q_disconnected);
        if (c->url.password) {
            if (c->url.user)
                redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", c->url.user, c->url.password);
            else
                redisAsyncCommand(ac, NULL, NULL, "AUTH %s", c->url.password);
        }
        redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME freshet-%s-map", c->node);
        c->q = ac;
    }
    if (redisAsyncCommand(c->q, on_shards, NULL, "CLUSTER SHARDS") != REDIS_OK) {
        q_close(c);
        c->q_next++;
        return;
    }
    c->asking = 1;
    c->asked_ms = fr_mono_ms();
}

/* A shard that owns slots but cannot publish or hear: the map is asked for more often (a
 * replica may have taken over). */
static int shard_down(const fr_cluster_t *c) {
    for (size_t i = 0; i < c->nshards; i++)
        if (!c->shards[i]->cmd_ready || !c->shards[i]->sub_ready)
            return 1;
    return 0;
}

static void on_tick(uv_timer_t *t) {
    fr_cluster_t *c = t->data;
    if (c->closing)
        return;
    uint64_t now = fr_mono_ms();
    if (c->asking) {
        if (now - c->asked_ms > ANSWER_TIMEOUT_MS)
            ask_failed(c, "no answer to CLUSTER SHARDS");
        return;
    }
    uint64_t every = !c->have_map || c->failures ? 300
                     : c->stale                  ? REFRESH_STALE_MS
                     : shard_down(c)             ? REFRESH_DOWN_MS
                                                 : REFRESH_MS;
    if (now - c->asked_ms >= every)
        ask(c);
}

/* ---- the broker interface --------------------------------------------------------------------- */

static void on_follow(void *ctx, const char *topic, int follow) {
    fr_cluster_t *c = ctx;
    fr_redis_t *r = shard_of(c, topic);
    if (r)
        fr_redis_on_follow(r, topic, follow);
}

typedef struct {
    fr_cluster_t *c;
    fr_published_cb cb;
    void *ctx;
    char *topic, *name, *data; /* owned copies: a redirect sends the event again */
    size_t len;
    fr_priority_t prio;
    int json;
    int redirects;
} cpub_t;

static void cpub_free(cpub_t *p) {
    free(p->topic);
    free(p->name);
    free(p->data);
    free(p);
}

static void on_cpub(void *ctx, int status, fr_id_t id, const char *err);

static void cpub_send(cpub_t *p, fr_redis_t *r, int asking) {
    if (asking && r->cmd_ready)
        redisAsyncCommand(r->cmd, NULL, NULL, "ASKING");
    fr_pub_t ev = {p->topic, p->name, p->data, p->len, p->prio, p->json};
    r->base.ops->publish(&r->base, &ev, on_cpub, p);
}

static void on_cpub(void *ctx, int status, fr_id_t id, const char *err) {
    cpub_t *p = ctx;
    if (status == FR_PUB_UNAVAILABLE && err && !p->c->closing && p->redirects < REDIRECTS_MAX) {
        int ask_redirect = strncmp(err, "ASK ", 4) == 0;
        unsigned slot;
        fr_redis_addr_t a;
        fr_redis_t *to = NULL;
        if ((ask_redirect || strncmp(err, "MOVED ", 6) == 0) && parse_redirect(err, &slot, &a) == 0)
            to = shard_at(p->c, &a);
        if (to) {
            /* MOVED or ASK: Redis refused the command without running it. */
            p->redirects++;
            cpub_send(p, to, ask_redirect);
            return;
        }
    }
    p->cb(p->ctx, status, id, err);
    cpub_free(p);
}

static void cluster_publish(fr_broker_t *b, const fr_pub_t *ev, fr_published_cb cb, void *ctx) {
    fr_cluster_t *c = (fr_cluster_t *)b;
    fr_id_t id = {0, 0};
    const char *err;
    if (fr_event_validate(ev->topic, ev->name, ev->data, ev->len, &err) < 0) {
        cb(ctx, FR_PUB_INVALID, id, err);
        return;
    }
    if (ev->topic[0] == '}') {
        /* The hash tag of fr:{}…}:s is empty: the Stream and the channel would be in different
         * slots, which one function call cannot touch. */
        cb(ctx, FR_PUB_INVALID, id, "on a Redis Cluster a topic must not start with '}'");
        return;
    }
    fr_redis_t *r = owner_of(c, ev->topic);
    if (!r) {
        cb(ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable (no cluster slot map yet)");
        return;
    }
    cpub_t *p = fr_calloc(1, sizeof *p);
    p->c = c;
    p->cb = cb;
    p->ctx = ctx;
    p->topic = fr_strdup(ev->topic);
    p->name = ev->name ? fr_strdup(ev->name) : NULL;
    p->data = fr_malloc(ev->len + 1);
    memcpy(p->data, ev->data, ev->len);
    p->data[ev->len] = '\0';
    p->len = ev->len;
    p->prio = ev->prio;
    p->json = ev->json;
    cpub_send(p, r, 0);
}

/* A join over several slots: one freshet_resume per slot, the answers merged in the order of
 * the topics. */
typedef struct {
    fr_join_cb cb;
    void *ctx;
    fr_join_t *res;
    size_t pending;
} cjoin_t;

typedef struct {
    cjoin_t *m;
    size_t n;
    size_t *idx; /* owned: where each topic of this part goes in m->res */
} cpart_t;

static void cjoin_done(cjoin_t *m) {
    if (--m->pending)
        return;
    m->cb(m->ctx, m->res);
    free(m);
}

static void on_cpart(void *ctx, fr_join_t *res) {
    cpart_t *p = ctx;
    cjoin_t *m = p->m;
    if (res->error || res->ntopics != p->n) {
        m->res->error = 1;
    } else {
        for (size_t k = 0; k < p->n; k++) {
            m->res->topics[p->idx[k]] = res->topics[k];
            res->topics[k].events = NULL;
            res->topics[k].nevents = 0;
        }
    }
    fr_join_free(res);
    free(p->idx);
    free(p);
    cjoin_done(m);
}

static int cluster_join(fr_broker_t *b, fr_sub_t *subs, char *const *topics,
                        const fr_id_t *after, size_t n, size_t max_events, fr_join_cb cb,
                        void *ctx) {
    fr_cluster_t *c = (fr_cluster_t *)b;
    if (!c->have_map)
        return -1;
    fr_redis_t **where = fr_calloc(n ? n : 1, sizeof *where);
    unsigned *slots = fr_calloc(n ? n : 1, sizeof *slots);
    for (size_t i = 0; i < n; i++) {
        where[i] = shard_of(c, topics[i]);
        slots[i] = fr_slot_of_topic(topics[i]);
        if (!where[i] || !where[i]->cmd_ready || !where[i]->sub_ready) {
            free(where);
            free(slots);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++)
        fr_hub_subscribe(b->hub, &subs[i], topics[i]);
    cjoin_t *m = fr_calloc(1, sizeof *m);
    m->cb = cb;
    m->ctx = ctx;
    m->res = fr_calloc(1, sizeof *m->res);
    m->res->ntopics = n;
    m->res->topics = fr_calloc(n ? n : 1, sizeof *m->res->topics);
    m->pending = 1; /* held until every part is started: a part may answer at once */
    char *done = fr_calloc(n ? n : 1, 1);
    char **ptopics = fr_calloc(n ? n : 1, sizeof *ptopics);
    fr_id_t *pafter = fr_calloc(n ? n : 1, sizeof *pafter);
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        cpart_t *p = fr_calloc(1, sizeof *p);
        p->m = m;
        p->idx = fr_calloc(n, sizeof *p->idx);
        for (size_t k = i; k < n; k++) {
            if (done[k] || slots[k] != slots[i] || where[k] != where[i])
                continue;
            done[k] = 1;
            p->idx[p->n] = k;
            ptopics[p->n] = topics[k];
            if (after)
                pafter[p->n] = after[k];
            p->n++;
        }
        m->pending++;
        join_t *j = fr_redis_join_new(where[i], ptopics, after ? pafter : NULL, p->n, max_events,
                                      on_cpart, p);
        for (size_t k = 0; k < p->n; k++)
            fr_redis_follow_wait(where[i], j, ptopics[k]);
        if (j->waiting == 0)
            fr_redis_join_start(j);
    }
    free(done);
    free(ptopics);
    free(pafter);
    free(where);
    free(slots);
    cjoin_done(m);
    return 0;
}

static fr_id_t cluster_position(fr_broker_t *b, const char *topic) {
    fr_id_t pos = fr_hub_position(b->hub, topic);
    if (pos.ms == 0 && pos.seq == 0)
        pos.ms = fr_now_ms();
    return pos;
}

static void cluster_locate(fr_broker_t *b, const char *topic, fr_published_cb cb, void *ctx) {
    fr_cluster_t *c = (fr_cluster_t *)b;
    fr_redis_t *r = owner_of(c, topic);
    if (!r) {
        fr_id_t id = {0, 0};
        cb(ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable");
        return;
    }
    r->base.ops->locate(&r->base, topic, cb, ctx);
}

static void cluster_presence(fr_broker_t *b, const char *topic, fr_presence_t *out) {
    fr_cluster_t *c = (fr_cluster_t *)b;
    fr_redis_t *r = shard_of(c, topic);
    if (r)
        r->base.ops->presence(&r->base, topic, out);
    else
        fr_presence_local(b->hub, topic, out);
}

/* 1 while some shard can take publishes: a cluster with one shard down still serves the
 * topics of the others (a publish to the shard that is down answers 503 itself). /health
 * counts the shards that are ready. */
static int cluster_ready(const fr_broker_t *b) {
    const fr_cluster_t *c = (const fr_cluster_t *)b;
    if (!c->have_map)
        return 0;
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i]->cmd_ready && c->shards[i]->sub_ready)
            return 1;
    return 0;
}

/* /health: the shards' primaries, how many are ready, and this worker's counts. */
static size_t cluster_health(const fr_broker_t *b, char *buf, size_t cap) {
    const fr_cluster_t *c = (const fr_cluster_t *)b;
    size_t n = 0, ready = 0;
    int w = snprintf(buf, cap, ",\"primaries\":[");
    n = w > 0 && (size_t)w < cap ? (size_t)w : 0;
    for (size_t i = 0; i < c->nshards; i++) {
        const fr_redis_t *r = c->shards[i];
        ready += r->cmd_ready && r->sub_ready;
        char hp[300], js[400];
        snprintf(hp, sizeof hp, "%s:%d", r->primary.host, r->primary.port);
        fr_json_write_string(js, sizeof js, hp, strlen(hp));
        w = snprintf(buf + n, cap - n, "%s%s", i ? "," : "", js);
        if (w < 0 || (size_t)w >= cap - n)
            return n;
        n += (size_t)w;
    }
    const fr_metrics_t *m = c->metrics;
    w = snprintf(buf + n, cap - n,
                 "],\"shards\":%zu,\"shards_ready\":%zu,\"subscriber\":\"%s\","
                 "\"probe_failures\":%lu,\"subscriber_losses\":%lu,\"failovers\":%lu",
                 c->nshards, ready, ready == c->nshards && c->nshards ? "ok" : "down",
                 m ? m->redis_probe_failures : 0, m ? m->redis_sub_losses : 0,
                 m ? m->redis_failovers : 0);
    if (w > 0 && (size_t)w < cap - n)
        n += (size_t)w;
    if (c->url.replicas) {
        w = snprintf(buf + n, cap - n, ",\"replicas\":%u,\"unconfirmed\":%lu", c->url.replicas,
                     m ? m->redis_unconfirmed : 0);
        if (w > 0 && (size_t)w < cap - n)
            n += (size_t)w;
    }
    return n;
}

static void cluster_sweep(fr_broker_t *b) {
    fr_cluster_t *c = (fr_cluster_t *)b;
    /* Each shard trims the topics it follows (and sweeps the shared hub). */
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i]->base.ops->sweep(&c->shards[i]->base);
    if (!c->nshards)
        fr_hub_sweep(b->hub);
}

static void on_timer_closed(uv_handle_t *h) {
    fr_cluster_t *c = h->data;
    fr_redis_url_free(&c->url);
    free(c->library);
    free(c->shards);
    free(c);
}

static void cluster_free(fr_broker_t *b) {
    fr_cluster_t *c = (fr_cluster_t *)b;
    if (c->closing)
        return;
    c->closing = 1;
    b->hub->on_follow = NULL;
    b->hub->follow_ctx = NULL;
    q_close(c);
    for (size_t i = 0; i < c->nshards; i++)
        c->shards[i]->base.ops->free(&c->shards[i]->base);
    c->nshards = 0;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static const fr_broker_ops_t cluster_ops = {
    .kind = "redis",
    .publish = cluster_publish,
    .join = cluster_join,
    .replay = NULL,
    .position = cluster_position,
    .locate = cluster_locate,
    .presence = cluster_presence,
    .ready = cluster_ready,
    .health = cluster_health,
    .sweep = cluster_sweep,
    .free = cluster_free,
};

fr_broker_t *fr_redis_cluster_new(uv_loop_t *loop, fr_hub_t *hub, const char *url,
                                  size_t replay_events, uint64_t replay_ms, fr_metrics_t *metrics,
                                  char *err, size_t errlen) {
    fr_cluster_t *c = fr_calloc(1, sizeof *c);
    if (fr_redis_url_parse(url, &c->url, err, errlen) < 0) {
        free(c);
        return NULL;
    }
    c->base.ops = &cluster_ops;
    c->base.hub = hub;
    c->base.slot = 0;
    c->loop = loop;
    c->replay_events = replay_events;
    c->replay_ms = replay_ms;
    c->metrics = metrics;
    c->library = library_sharded();
    fr_redis_node_name(c->node);
    hub->on_follow = on_follow;
    hub->follow_ctx = c;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_tick, 0, TICK_MS);
    return &c->base;
}
