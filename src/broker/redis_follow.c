/* The topics this node follows on Redis. A topic is followed while a local stream subscribes to
 * it in the hub (the hub's on_follow), and a little longer: unsubscribing at once would race a
 * quick re-follow. Joins wait here until Redis confirms their subscriptions, so every event
 * after their replay arrives live. After the subscriber reconnects, each followed topic is
 * refilled from its Stream from the last id this node delivered, and the live events that
 * arrive meanwhile are held until the refill is delivered; when the primary lost events this
 * node delivered (a failover), the lost stretch is recorded so resumes into it get 416. */
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "broker/redis_io.h"
#include "codec/chanmsg.h"

#define UNFOLLOW_AFTER_MS 5000

/* ---- follows ----------------------------------------------------------------------------- */

static follow_t *follow_find(fr_redis_t *r, const char *topic) {
    return fr_redis_follow_of(fr_htable_find(&r->follows, topic, strlen(topic)));
}

static follow_t *follow_get(fr_redis_t *r, const char *topic) {
    follow_t *f = follow_find(r, topic);
    if (f)
        return f;
    f = fr_calloc(1, sizeof *f);
    size_t len = strlen(topic);
    f->topic = fr_strndup(topic, len);
    fr_htable_insert(&r->follows, &f->hnode, f->topic, len);
    return f;
}

/* Hands the live events held during a fill to the hub (which skips what the fill covered). */
static void follow_release_held(fr_redis_t *r, follow_t *f, int deliver) {
    for (size_t i = 0; i < f->nheld; i++) {
        if (deliver)
            fr_hub_deliver(r->base.hub, f->held[i]);
        fr_event_release(f->held[i]);
    }
    free(f->held);
    f->held = NULL;
    f->nheld = 0;
    f->refilling = 0;
}

static void follow_free(fr_redis_t *r, follow_t *f) {
    fr_htable_remove(&r->follows, &f->hnode);
    follow_release_held(r, f, 0);
    free(f->waiters);
    free(f->topic);
    free(f);
}

static char *channel_of(const char *topic) {
    size_t n = strlen(topic) + 8;
    char *c = fr_malloc(n);
    snprintf(c, n, "fr:{%s}:c", topic);
    return c;
}

/* "fr:{topic}:c" → topic (in buf); NULL when it is not one of ours. */
static const char *topic_of(const char *channel, size_t len, char *buf, size_t cap) {
    if (len < 7 || memcmp(channel, "fr:{", 4) != 0 || memcmp(channel + len - 3, "}:c", 3) != 0 ||
        len - 7 >= cap)
        return NULL;
    memcpy(buf, channel + 4, len - 7);
    buf[len - 7] = '\0';
    return buf;
}

static void send_subscribe(fr_redis_t *r, follow_t *f, const char *verb) {
    if (!r->sub)
        return;
    char *ch = channel_of(f->topic);
    if (r->cluster) {
        /* Sharded pub/sub, on the shard's raw subscriber (its replies reach this file from
         * redis_conn.c's on_sub_raw). */
        const char *v = verb[0] == 'S' ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
        const char *argv[2] = {v, ch};
        size_t lens[2] = {strlen(v), strlen(ch)};
        fr_redis_io_send(r->sub, 2, argv, lens);
    } else {
        redisAsyncCommand(r->sub, fr_redis_follow_on_reply, NULL, "%s %s", verb, ch);
    }
    free(ch);
}

void fr_redis_on_follow(void *ctx, const char *topic, int follow) {
    fr_redis_t *r = ctx;
    follow_t *f = follow_get(r, topic);
    if (!follow) {
        /* Unsubscribing at once would race a quick re-follow; the tick does it a little later. */
        f->wanted = 0;
        f->unwanted_since = fr_mono_ms();
        fr_redis_presence_drop(r, topic);
        return;
    }
    f->wanted = 1;
    if (!f->subscribed && !f->unsubscribing && r->sub_ready && !f->nwaiters)
        send_subscribe(r, f, "SUBSCRIBE");
}

/* ---- joins waiting for subscriptions ------------------------------------------------------ */

void fr_redis_follow_wait(fr_redis_t *r, join_t *j, const char *topic) {
    follow_t *f = follow_get(r, topic);
    if (f->subscribed)
        return;
    if (!f->nwaiters && !f->unsubscribing)
        send_subscribe(r, f, "SUBSCRIBE");
    f->waiters = fr_realloc(f->waiters, (f->nwaiters + 1) * sizeof *f->waiters);
    f->waiters[f->nwaiters++] = j;
    j->waiting++;
}

/* Removes j from every follow's waiters (it failed or finished). */
static void join_unwait(fr_redis_t *r, join_t *j) {
    for (size_t i = 0; i < j->n; i++) {
        follow_t *f = follow_find(r, j->topics[i]);
        if (!f)
            continue;
        for (size_t k = 0; k < f->nwaiters; k++) {
            if (f->waiters[k] == j)
                f->waiters[k--] = f->waiters[--f->nwaiters];
        }
    }
}

void fr_redis_follow_fail_waiters(fr_redis_t *r) {
    /* Only the follow the walk stands on is freed here. */
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
        f->subscribed = 0;
        f->unsubscribing = 0;
        f->fill_gen = 0; /* a fill in flight is void: the next subscription starts another */
        f->refill = 0;
        follow_release_held(r, f, 0);
        while (f->nwaiters) {
            join_t *j = f->waiters[f->nwaiters - 1];
            join_unwait(r, j);
            fr_redis_join_fail(j);
        }
        if (!f->wanted)
            follow_free(r, f);
    }
}

/* ---- refills after a reconnect -------------------------------------------------------------
 * A fill reads the Stream after the last id this node delivered (stage FROM_LAST). When Redis
 * does not hold that id:
 *   - stale (older than what Redis holds, or Redis came back empty): read from the Stream's
 *     start (FROM_START) to tell which; if events this node never delivered are gone, the
 *     topic is lost (fr_hub_lose: its streams end and resume through Last-Event-ID);
 *   - invalid (Redis holds events around it, or only older ones): this node delivered an
 *     event that the primary it now talks to never got, a failover without ?replicas=N. The
 *     lost stretch is recorded in Redis (freshet_mark), so a resume into it answers 416 or
 *     reset instead of 400 and no id in it is ever issued again; then the fill goes on from
 *     the id (AFTER_MARK).
 * Live events of the topic wait behind a fill in flight (`refilling`); while a fill waits for
 * the command connection (`refill`) they are dropped, since the fill will read them. */

enum { FROM_LAST, AFTER_MARK, FROM_START };

typedef struct {
    fr_redis_t *r;
    char *topic; /* owned */
    char *after; /* owned: the id the fill reads after */
    int stage;
    unsigned gen; /* the follow's fill_gen when this fill started */
} refill_t;

/* The follow this fill is for, unless the fill was overtaken (the subscriber came back and a
 * newer fill started) or the broker is going. */
static follow_t *refill_follow(const refill_t *rf) {
    follow_t *f = rf->r->closing ? NULL : follow_find(rf->r, rf->topic);
    return f && f->fill_gen == rf->gen ? f : NULL;
}

static void refill_from(fr_redis_t *r, const char *topic, const char *after, int stage);

static void refill_done(refill_t *rf) {
    free(rf->topic);
    free(rf->after);
    free(rf);
}

/* The fill could not run (the command connection went, or Redis answered badly): held live
 * events are dropped, and the fill runs again once the command connection is ready. */
static void refill_later(fr_redis_t *r, follow_t *f) {
    if (!f)
        return;
    follow_release_held(r, f, 0);
    if (f->wanted && f->subscribed)
        f->refill = 1;
}

static void on_marked(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    refill_t *rf = priv;
    fr_redis_t *r = rf->r;
    redisReply *rep = reply;
    follow_t *f = refill_follow(rf);
    if (!f) {
        refill_done(rf);
        return;
    }
    if (!rep) {
        refill_later(r, f);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        /* Without the mark the fill still tells new from lost by reading from the start. */
        fr_warn("redis: cannot record the events of '%s' lost after %s: %s", rf->topic,
                rf->after, rep->str);
        refill_from(r, rf->topic, "0-0", FROM_START);
    } else {
        refill_from(r, rf->topic, rf->after, AFTER_MARK);
    }
    refill_done(rf);
}

static void mark_lost(fr_redis_t *r, refill_t *rf) {
    fr_warn("redis: the primary does not hold event %s of '%s', which this node delivered: "
            "events were lost in a failover; resumes into the lost stretch get 416 or reset",
            rf->after, rf->topic);
    size_t n = strlen(rf->topic) + 8;
    char *s = fr_malloc(n);
    snprintf(s, n, "fr:{%s}:s", rf->topic);
    refill_t *next = fr_calloc(1, sizeof *next);
    next->r = r;
    next->topic = fr_strdup(rf->topic);
    next->after = fr_strdup(rf->after);
    next->gen = rf->gen;
    /* freshet_mark (broker/redis_lib.c): the Stream's last and max-deleted ids rise to it. */
    if (!r->cmd_ready || redisAsyncCommand(r->cmd, on_marked, next, "FCALL freshet_mark 1 %s %s",
                                           s, rf->after) != REDIS_OK) {
        refill_later(r, refill_follow(rf));
        refill_done(next);
    }
    free(s);
}

/* After a reconnect: deliver what the Stream holds beyond what this node delivered. */
static void on_refill(void *ctx, fr_join_t *res) {
    refill_t *rf = ctx;
    fr_redis_t *r = rf->r;
    follow_t *f = refill_follow(rf);
    if (!f) {
        fr_join_free(res);
        refill_done(rf);
        return;
    }
    if (res->error || res->ntopics != 1) {
        fr_join_free(res);
        refill_later(r, f);
        refill_done(rf);
        return;
    }
    fr_join_topic_t *t = &res->topics[0];
    for (size_t k = 0; k < t->nevents; k++)
        fr_hub_deliver(r->base.hub, t->events[k]);
    int status = t->status;
    fr_join_free(res);
    if (status == FR_JOIN_INVALID && rf->stage == FROM_LAST) {
        mark_lost(r, rf);
    } else if (status != FR_JOIN_OK && rf->stage != FROM_START) {
        /* Redis no longer knows this node's last id: it came back without it (then all it
         * holds is new here) or trimmed past it. Read from its start to tell which. */
        refill_from(r, rf->topic, "0-0", FROM_START);
    } else {
        if (status != FR_JOIN_OK) {
            fr_warn("redis: events of '%s' were trimmed or lost while this node's subscription "
                    "was down; its streams end and resume through Last-Event-ID", rf->topic);
            fr_hub_lose(r->base.hub, rf->topic);
        }
        follow_release_held(r, f, 1);
    }
    refill_done(rf);
}

static void refill_from(fr_redis_t *r, const char *topic, const char *after, int stage) {
    follow_t *f = follow_find(r, topic);
    if (!f)
        return;
    f->refilling = 1;
    f->refill = 0;
    refill_t *rf = fr_calloc(1, sizeof *rf);
    if (stage == FROM_LAST)
        f->fill_gen = ++r->fills;
    rf->gen = f->fill_gen;
    rf->r = r;
    rf->topic = fr_strdup(topic);
    rf->after = fr_strdup(after);
    rf->stage = stage;
    join_t *j = fr_calloc(1, sizeof *j);
    j->r = r;
    j->n = 1;
    j->max_events = r->replay_events ? r->replay_events : 1000;
    j->cb = on_refill;
    j->ctx = rf;
    j->topics = fr_calloc(1, sizeof *j->topics);
    j->after = fr_calloc(1, sizeof *j->after);
    j->topics[0] = fr_strdup(topic);
    j->after[0] = fr_strdup(after);
    fr_redis_join_start(j);
}

static void refill(fr_redis_t *r, follow_t *f) {
    f->refill = 0;
    fr_topic_t *t = fr_hub_find(r->base.hub, f->topic);
    if (!t) {
        follow_release_held(r, f, 1); /* nothing here to fill */
        return;
    }
    char idbuf[FR_ID_MAX_LEN];
    fr_id_format(t->last, idbuf);
    refill_from(r, f->topic, idbuf, FROM_LAST);
}

void fr_redis_follow_refill_pending(fr_redis_t *r) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
        if (f->refill && f->subscribed && !f->refilling)
            refill(r, f);
    }
}

/* ---- what the subscriber hears ------------------------------------------------------------ */

typedef struct {
    fr_redis_t *r;
    follow_t *f;
    const char *topic;
} msg_ctx_t;

/* One event of a channel message to the hub (or held behind a fill of its topic). */
static void take_event(void *ctx, const fr_chanmsg_event_t *m) {
    msg_ctx_t *c = ctx;
    fr_redis_t *r = c->r;
    follow_t *f = c->f;
    fr_id_t id;
    fr_priority_t prio;
    char name[256], pname[16];
    if (fr_id_parse(m->id, m->id_len, &id) < 0 || m->name_len >= sizeof name ||
        m->prio_len >= sizeof pname) {
        fr_warn("redis: malformed message on the channel of '%s'", c->topic);
        return;
    }
    memcpy(name, m->name, m->name_len);
    name[m->name_len] = '\0';
    memcpy(pname, m->prio, m->prio_len);
    pname[m->prio_len] = '\0';
    if (fr_priority_parse(pname, &prio) < 0)
        prio = FR_PRIO_NORMAL;
    const char *err;
    fr_event_t *ev = fr_event_new(c->topic, id, name[0] ? name : NULL, m->data, m->data_len, prio,
                                  m->json_len == 1 && m->json[0] == '1', m->ms, &err);
    if (!ev) {
        fr_warn("redis: dropping an event of '%s' from another producer: %s", c->topic, err);
        return;
    }
    /* While a fill of this topic is in flight, live events wait: delivering one first would
     * make the hub skip the older events the fill brings. While a fill waits for the command
     * connection, they are dropped: it will read them from the Stream. */
    if (f && f->refill && !f->refilling) {
        fr_event_release(ev);
        return;
    }
    if (f && f->refilling) {
        f->held = fr_realloc(f->held, (f->nheld + 1) * sizeof *f->held);
        f->held[f->nheld++] = ev;
        return;
    }
    fr_hub_deliver(r->base.hub, ev);
    fr_event_release(ev);
}

/* A channel message: one event, or a node's batch (codec/chanmsg.h). A batch is one message for
 * all the events of one publish call, so Redis writes, and this node parses, one message per
 * call instead of one per event. */
static void on_message(fr_redis_t *r, const char *topic, const char *p, size_t len) {
    msg_ctx_t c = {r, follow_find(r, topic), topic};
    if (fr_chanmsg_parse(p, len, take_event, &c) < 0)
        fr_warn("redis: malformed message on the channel of '%s'", topic);
}

void fr_redis_follow_on_reply(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    /* A cluster shard's topics are sharded: smessage, ssubscribe, sunsubscribe. */
    if (r->cluster) {
        if (kind[0] != 's' || (strcmp(kind + 1, "message") != 0 &&
                               strcmp(kind + 1, "subscribe") != 0 &&
                               strcmp(kind + 1, "unsubscribe") != 0))
            return;
        kind++;
    }
    char buf[1024];
    const char *topic =
        topic_of(rep->element[1]->str, rep->element[1]->len, buf, sizeof buf);
    if (!topic)
        return;
    if (strcmp(kind, "message") == 0) {
        if (rep->element[2]->type == REDIS_REPLY_STRING)
            on_message(r, topic, rep->element[2]->str, rep->element[2]->len);
        return;
    }
    follow_t *f = follow_find(r, topic);
    if (!f)
        return;
    if (strcmp(kind, "subscribe") == 0) {
        f->subscribed = 1;
        /* The fill needs the command connection; if it is not back yet, it runs when it is
         * (and the live events until then are read by it). */
        if (f->refill && r->cmd_ready && !f->refilling)
            refill(r, f);
        /* Waiters read their replay only now: every event after this point arrives live. */
        while (f->nwaiters) {
            join_t *j = f->waiters[--f->nwaiters];
            if (--j->waiting == 0)
                fr_redis_join_start(j);
        }
    } else if (strcmp(kind, "unsubscribe") == 0) {
        /* In a cluster, Redis unsubscribes on its own when the topic's slot leaves this shard:
         * subscribing again either works (the slot stayed) and the fill covers what was
         * published meanwhile, or answers MOVED with the new owner (redis_cluster.c). */
        if (r->cluster && !f->unsubscribing && f->wanted && !f->refilling)
            f->refill = 1;
        f->unsubscribing = 0;
        f->subscribed = 0;
        if (f->wanted || f->nwaiters)
            send_subscribe(r, f, "SUBSCRIBE");
        else
            follow_free(r, f);
    }
}

/* ---- upkeep -------------------------------------------------------------------------------- */

void fr_redis_follow_resubscribe(fr_redis_t *r) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
        if (f->wanted || f->nwaiters) {
            f->refill = f->wanted;
            send_subscribe(r, f, "SUBSCRIBE");
        }
    }
}

void fr_redis_follow_sweep(fr_redis_t *r, uint64_t now) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
        if (!f->wanted && !f->nwaiters && !f->unsubscribing &&
            now - f->unwanted_since >= UNFOLLOW_AFTER_MS) {
            if (f->subscribed) {
                f->unsubscribing = 1;
                send_subscribe(r, f, "UNSUBSCRIBE");
            } else {
                follow_free(r, f);
            }
        }
    }
}

void fr_redis_follow_free_all(fr_redis_t *r) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));)
        follow_free(r, f);
}

/* ---- cluster: moving follows between shards -------------------------------------------------- */

int fr_redis_follow_has(fr_redis_t *r, const char *topic) {
    return follow_find(r, topic) != NULL;
}

/* Moves f from `from` to `to`: `from` lets go of it (and of its subscription), `to` subscribes
 * and, for a topic a local stream follows, fills it from the Stream after the last id
 * delivered here. Joins waiting on it fail: their replay would be read from the wrong shard. */
static void follow_move(fr_redis_t *from, fr_redis_t *to, follow_t *f) {
    while (f->nwaiters) {
        join_t *j = f->waiters[f->nwaiters - 1];
        join_unwait(from, j);
        fr_redis_join_fail(j);
    }
    int wanted = f->wanted;
    uint64_t unwanted_since = f->unwanted_since;
    if (f->subscribed && !f->unsubscribing)
        send_subscribe(from, f, "UNSUBSCRIBE");
    char *topic = fr_strdup(f->topic);
    follow_free(from, f);
    if (!wanted) {
        free(topic);
        return;
    }
    follow_t *g = follow_get(to, topic);
    free(topic);
    g->wanted = 1;
    g->unwanted_since = unwanted_since;
    g->refill = 1;
    if (!g->subscribed && !g->unsubscribing && to->sub_ready && !g->nwaiters)
        send_subscribe(to, g, "SUBSCRIBE");
}

void fr_redis_follow_rehome(fr_redis_t *r, fr_redis_t *(*where)(void *ctx, const char *topic),
                            void *ctx) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
        fr_redis_t *to = where(ctx, f->topic);
        if (to && to != r) {
            fr_info("redis: topic '%s' moved to the shard of %s:%d", f->topic, to->primary.host,
                    to->primary.port);
            follow_move(r, to, f);
        }
    }
}

void fr_redis_follow_retry(fr_redis_t *r) {
    if (!r->sub_ready)
        return;
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
        if ((f->wanted || f->nwaiters) && !f->subscribed && !f->unsubscribing)
            send_subscribe(r, f, "SUBSCRIBE");
    }
}
