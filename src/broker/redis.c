#include "broker/redis.h"

#include <hiredis/async.h>
#include <openssl/rand.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/list.h"
#include "base/log.h"
#include "base/util.h"

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 5000
#define PING_EVERY_MS 1000
#define PING_DEAD_MS 3000
#define UNFOLLOW_AFTER_MS 5000
/* hiredis' libuv adapter drops poll errors, so a refused connect is never reported: each
 * attempt gets a deadline of its own. */
#define CONNECT_TIMEOUT_MS 1000
#define PRESENCE_TTL_MS 5000
#define PRESENCE_WATCH_MS 30000

/* A topic whose presence someone asked for: its merged answer, fetched every tick. */
typedef struct watch_s {
    char *topic;          /* owned */
    fr_presence_t cached; /* owned */
    int fetched;          /* cached holds an answer from Redis */
    uint64_t asked_ms;    /* monotonic: watches nobody asks about any more are dropped */
    fr_list_t link;       /* in r->watches */
} watch_t;

struct join_s;

/* A topic this node follows on Redis (subscribed to its channel). */
typedef struct follow_s {
    fr_hnode_t hnode;        /* in r->follows, keyed by topic */
    char *topic;             /* owned */
    int wanted;              /* a local stream follows it */
    int subscribed;          /* Redis confirmed the subscription on the current connection */
    int unsubscribing;       /* UNSUBSCRIBE sent, its reply not yet seen */
    int refill;              /* fill from the Stream once subscribed (after a reconnect) */
    int refilling;           /* a fill is in flight: live messages wait behind it */
    fr_event_t **held;       /* owned references: live events that arrived during the fill */
    size_t nheld;
    uint64_t unwanted_since; /* monotonic ms */
    struct join_s **waiters; /* owned array of borrowed joins waiting for `subscribed` */
    size_t nwaiters;
} follow_t;

/* A stream (or refill) waiting to read positions and replay from Redis. */
typedef struct join_s {
    fr_redis_t *r;
    size_t n;
    char **topics;           /* owned copies */
    char **after;            /* owned id strings, "$" for a fresh stream */
    size_t waiting;          /* subscriptions not yet confirmed */
    size_t max_events;
    fr_join_cb cb;
    void *ctx;
} join_t;

struct fr_redis_s {
    fr_broker_t base;        /* first: the broker interface (base.hub is borrowed) */
    uv_loop_t *loop;
    size_t replay_events;
    uint64_t replay_ms;
    char host[256];
    int port;
    char *unix_path, *user, *password; /* owned, may be NULL */
    int db;
    redisAsyncContext *cmd, *sub;
    int cmd_ready, sub_ready;
    int cmd_connecting, sub_connecting; /* an attempt is under way; its timer is its deadline */
    unsigned cmd_attempt, sub_attempt;
    uv_timer_t cmd_retry, sub_retry, tick;
    int ping_pending;
    uint64_t ping_sent;
    fr_htable_t follows;     /* topic → follow_t, owned through the table */
    int closing;
    int handles_open;        /* timers still to be closed before the struct is freed */
    char node[17];           /* this node's presence field: random hex */
    fr_list_t watches;       /* watch_t, owned; the newest first */
    unsigned ticks;
};

static void cmd_connect(fr_redis_t *r);
static void presence_tick(fr_redis_t *r, uint64_t now);
static void sub_connect(fr_redis_t *r);
static void join_start(join_t *j);

/* ---- follows ----------------------------------------------------------------------------- */

static follow_t *follow_of(fr_hnode_t *n) {
    return n ? FR_HTABLE_ENTRY(n, follow_t, hnode) : NULL;
}

static follow_t *follow_find(fr_redis_t *r, const char *topic) {
    return follow_of(fr_htable_find(&r->follows, topic, strlen(topic)));
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

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv);

static void send_subscribe(fr_redis_t *r, follow_t *f, const char *verb) {
    char *ch = channel_of(f->topic);
    redisAsyncCommand(r->sub, on_sub_reply, NULL, "%s %s", verb, ch);
    free(ch);
}

/* The hub's follow callback: subscribe / unsubscribe this node to a topic's channel. */
static void fr_redis_on_follow(void *ctx, const char *topic, int follow) {
    fr_redis_t *r = ctx;
    follow_t *f = follow_get(r, topic);
    if (!follow) {
        /* Unsubscribing at once would race a quick re-follow; the tick does it a little later. */
        f->wanted = 0;
        f->unwanted_since = fr_mono_ms();
        if (r->cmd_ready)
            redisAsyncCommand(r->cmd, NULL, NULL, "FCALL freshet_presence_drop 1 %s %s", topic,
                              r->node);
        return;
    }
    f->wanted = 1;
    if (!f->subscribed && !f->unsubscribing && r->sub_ready && !f->nwaiters)
        send_subscribe(r, f, "SUBSCRIBE");
}

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

static void join_fail(join_t *j) {
    fr_join_t *res = fr_calloc(1, sizeof *res);
    res->error = 1;
    j->cb(j->ctx, res);
    join_destroy(j);
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
    (void)ac;
    join_t *j = priv;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != j->n) {
        if (rep && rep->type == REDIS_REPLY_ERROR)
            fr_error("redis: freshet_resume failed: %s", rep->str);
        join_fail(j);
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

/* Every subscription is confirmed: reads positions and replays in one atomic call. */
static void join_start(join_t *j) {
    fr_redis_t *r = j->r;
    if (!r->cmd_ready) {
        join_fail(j);
        return;
    }
    size_t argc = 3 + 2 * j->n + 1;
    const char **argv = fr_calloc(argc, sizeof *argv);
    size_t *lens = fr_calloc(argc, sizeof *lens);
    char nbuf[24], maxbuf[24];
    snprintf(nbuf, sizeof nbuf, "%zu", j->n);
    snprintf(maxbuf, sizeof maxbuf, "%zu", j->max_events);
    size_t a = 0;
    argv[a++] = "FCALL";
    argv[a++] = "freshet_resume";
    argv[a++] = nbuf;
    for (size_t i = 0; i < j->n; i++)
        argv[a++] = j->topics[i];
    for (size_t i = 0; i < j->n; i++)
        argv[a++] = j->after[i];
    argv[a++] = maxbuf;
    for (size_t i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(r->cmd, on_resume_reply, j, (int)a, argv, lens) != REDIS_OK)
        join_fail(j);
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

/* ---- the subscriber connection ------------------------------------------------------------ */

typedef struct {
    fr_redis_t *r;
    char *topic;    /* owned */
    int from_start; /* second attempt, from the start of the Stream */
} refill_t;

static void refill_from(fr_redis_t *r, const char *topic, const char *after, int from_start);

/* After a reconnect: deliver what the Stream holds beyond what this node delivered. */
static void on_refill(void *ctx, fr_join_t *res) {
    refill_t *rf = ctx;
    fr_redis_t *r = rf->r;
    follow_t *f = r->closing ? NULL : follow_find(r, rf->topic);
    int again = 0;
    if (!res->error && !r->closing && res->ntopics == 1) {
        fr_join_topic_t *t = &res->topics[0];
        for (size_t k = 0; k < t->nevents; k++)
            fr_hub_deliver(r->base.hub, t->events[k]);
        if (t->status != FR_JOIN_OK && !rf->from_start) {
            /* Redis no longer knows this node's last id: it came back without it (then all it
             * holds is new here) or trimmed past it. Read from its start to tell which. */
            again = 1;
        } else if (t->status != FR_JOIN_OK) {
            fr_warn("redis: events of '%s' were trimmed while this node's subscription was "
                    "down; its streams end and resume through Last-Event-ID", rf->topic);
            fr_hub_lose(r->base.hub, rf->topic);
        }
    }
    fr_join_free(res);
    if (again)
        refill_from(r, rf->topic, "0-0", 1);
    else if (f)
        follow_release_held(r, f, 1);
    free(rf->topic);
    free(rf);
}

static void refill_from(fr_redis_t *r, const char *topic, const char *after, int from_start) {
    follow_t *f = follow_find(r, topic);
    if (f)
        f->refilling = 1;
    refill_t *rf = fr_calloc(1, sizeof *rf);
    rf->r = r;
    rf->topic = fr_strdup(topic);
    rf->from_start = from_start;
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
    join_start(j);
}

static void refill(fr_redis_t *r, follow_t *f) {
    fr_topic_t *t = fr_hub_find(r->base.hub, f->topic);
    if (!t)
        return;
    char idbuf[FR_ID_MAX_LEN];
    fr_id_format(t->last, idbuf);
    refill_from(r, f->topic, idbuf, 0);
}

static void on_message(fr_redis_t *r, const char *topic, const char *p, size_t len) {
    /* "<id>\n<event>\n<priority>\n<json>\n<ms>\n<data>" */
    const char *parts[5];
    size_t lens[5];
    const char *end = p + len;
    for (int i = 0; i < 5; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            fr_warn("redis: malformed message on the channel of '%s'", topic);
            return;
        }
        parts[i] = p;
        lens[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    fr_id_t id;
    fr_priority_t prio;
    char name[256], pname[16];
    if (fr_id_parse(parts[0], lens[0], &id) < 0 || lens[1] >= sizeof name ||
        lens[2] >= sizeof pname) {
        fr_warn("redis: malformed message on the channel of '%s'", topic);
        return;
    }
    memcpy(name, parts[1], lens[1]);
    name[lens[1]] = '\0';
    memcpy(pname, parts[2], lens[2]);
    pname[lens[2]] = '\0';
    if (fr_priority_parse(pname, &prio) < 0)
        prio = FR_PRIO_NORMAL;
    const char *err;
    fr_event_t *ev = fr_event_new(topic, id, name[0] ? name : NULL, p, (size_t)(end - p), prio,
                                  lens[3] == 1 && parts[3][0] == '1',
                                  strtoull(parts[4], NULL, 10), &err);
    if (!ev) {
        fr_warn("redis: dropping an event of '%s' from another producer: %s", topic, err);
        return;
    }
    /* While a fill of this topic is in flight, live events wait: delivering one first would
     * make the hub skip the older events the fill brings. */
    follow_t *f = follow_find(r, topic);
    if (f && f->refilling) {
        f->held = fr_realloc(f->held, (f->nheld + 1) * sizeof *f->held);
        f->held[f->nheld++] = ev;
        return;
    }
    fr_hub_deliver(r->base.hub, ev);
    fr_event_release(ev);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
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
        /* The fill needs the command connection; if it is not back yet, it runs when it is.
         * Either way, live events wait behind it from now on. */
        if (f->refill)
            f->refilling = 1;
        if (f->refill && r->cmd_ready) {
            f->refill = 0;
            refill(r, f);
        }
        /* Waiters read their replay only now: every event after this point arrives live. */
        while (f->nwaiters) {
            join_t *j = f->waiters[--f->nwaiters];
            if (--j->waiting == 0)
                join_start(j);
        }
    } else if (strcmp(kind, "unsubscribe") == 0) {
        f->unsubscribing = 0;
        f->subscribed = 0;
        if (f->wanted || f->nwaiters)
            send_subscribe(r, f, "SUBSCRIBE");
        else
            follow_free(r, f);
    }
}

static unsigned backoff_ms(unsigned attempt) {
    unsigned d = RETRY_BASE_MS << (attempt > 6 ? 6 : attempt);
    if (d > RETRY_CAP_MS)
        d = RETRY_CAP_MS;
    return d * 3 / 4 + (unsigned)rand() % (d / 2 + 1);
}

static void on_sub_retry(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->sub_connecting) {
        r->sub_connecting = 0;
        redisAsyncContext *ac = r->sub;
        r->sub = NULL;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
        return;
    }
    sub_connect(r);
}

static void on_sub_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing)
        return;
    r->sub_connecting = 0;
    uv_timer_stop(&r->sub_retry);
    if (status != REDIS_OK) {
        r->sub = NULL;
        uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
        return;
    }
    r->sub_attempt = 0;
    r->sub_ready = 1;
    fr_info("redis: subscriber connected to %s:%d", r->host, r->port);
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = follow_of(fr_htable_iter_next(&it)));) {
        if (f->wanted || f->nwaiters) {
            f->refill = f->wanted;
            send_subscribe(r, f, "SUBSCRIBE");
        }
    }
}

static void fail_waiters(fr_redis_t *r) {
    /* Only the follow the walk stands on is freed here. */
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = follow_of(fr_htable_iter_next(&it)));) {
        f->subscribed = 0;
        f->unsubscribing = 0;
        follow_release_held(r, f, 0);
        while (f->nwaiters) {
            join_t *j = f->waiters[f->nwaiters - 1];
            join_unwait(r, j);
            join_fail(j);
        }
        if (!f->wanted)
            follow_free(r, f);
    }
}

static void on_sub_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (!r)
        return;
    r->sub = NULL;
    r->sub_ready = 0;
    fail_waiters(r);
    if (r->closing)
        return;
    fr_warn("redis: subscriber connection lost; reconnecting");
    uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
}

/* ---- hiredis on the worker's loop ------------------------------------------------------------
 * hiredis' own libuv adapter returns early when libuv reports a poll error, so a connection
 * that dies with an error (or a refused connect) is never noticed. This one hands every error
 * to hiredis as a read, and hiredis then finds the failure and reports the disconnect. */

typedef struct {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis has let go of the context */
    int events;
} redis_io_t;

static void on_io_closed(uv_handle_t *h) {
    free(h->data);
}

static void on_io(uv_poll_t *h, int status, int events) {
    redis_io_t *io = h->data;
    if (!io->ac)
        return;
    if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))) {
        redisAsyncHandleRead(io->ac);
        if (!io->ac)
            return; /* the read found the end of the connection */
    }
    if (status == 0 && (events & UV_WRITABLE))
        redisAsyncHandleWrite(io->ac);
}

static void io_update(redis_io_t *io, int add, int events) {
    io->events = add ? io->events | events : io->events & ~events;
    if (io->events)
        uv_poll_start(&io->poll, io->events, on_io);
    else
        uv_poll_stop(&io->poll);
}

static void io_add_read(void *p) {
    io_update(p, 1, UV_READABLE);
}
static void io_del_read(void *p) {
    io_update(p, 0, UV_READABLE);
}
static void io_add_write(void *p) {
    io_update(p, 1, UV_WRITABLE);
}
static void io_del_write(void *p) {
    io_update(p, 0, UV_WRITABLE);
}

static void io_cleanup(void *p) {
    redis_io_t *io = p;
    io->ac = NULL;
    uv_close((uv_handle_t *)&io->poll, on_io_closed);
}

static int io_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    redis_io_t *io = fr_calloc(1, sizeof *io);
    if (uv_poll_init(loop, &io->poll, ac->c.fd) != 0) {
        free(io);
        return -1;
    }
    io->ac = ac;
    io->poll.data = io;
    ac->ev.data = io;
    ac->ev.addRead = io_add_read;
    ac->ev.delRead = io_del_read;
    ac->ev.addWrite = io_add_write;
    ac->ev.delWrite = io_del_write;
    ac->ev.cleanup = io_cleanup;
    return 0;
}

static redisAsyncContext *connect_ctx(fr_redis_t *r) {
    redisAsyncContext *ac = r->unix_path ? redisAsyncConnectUnix(r->unix_path)
                                         : redisAsyncConnect(r->host, r->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    if (io_attach(ac, r->loop) < 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    if (r->password) {
        if (r->user)
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", r->user, r->password);
        else
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->password);
    }
    return ac;
}

static void sub_connect(fr_redis_t *r) {
    if (r->closing)
        return;
    r->sub = connect_ctx(r);
    if (!r->sub) {
        uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
        return;
    }
    redisAsyncSetConnectCallback(r->sub, on_sub_connected);
    redisAsyncSetDisconnectCallback(r->sub, on_sub_disconnected);
    r->sub_connecting = 1;
    uv_timer_start(&r->sub_retry, on_sub_retry, CONNECT_TIMEOUT_MS, 0);
}

/* ---- the command connection --------------------------------------------------------------- */

static void on_cmd_retry(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->cmd_connecting) {
        r->cmd_connecting = 0;
        redisAsyncContext *ac = r->cmd;
        r->cmd = NULL;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
        return;
    }
    cmd_connect(r);
}

static void on_library_loaded(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing || !rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        fr_error("redis: cannot load the freshet functions: %s", rep->str);
        redisAsyncDisconnect(ac);
        return;
    }
    r->cmd_ready = 1;
    r->ping_pending = 0;
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = follow_of(fr_htable_iter_next(&it)));) {
        if (f->refill && f->subscribed) {
            f->refill = 0;
            refill(r, f);
        }
    }
    fr_info("redis: connected to %s:%d, functions loaded", r->unix_path ? r->unix_path : r->host,
            r->port);
}

static void on_cmd_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing)
        return;
    r->cmd_connecting = 0;
    uv_timer_stop(&r->cmd_retry);
    if (status != REDIS_OK) {
        r->cmd = NULL;
        if (r->cmd_attempt == 0)
            fr_warn("redis: cannot connect to %s:%d; retrying", r->host, r->port);
        uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
        return;
    }
    r->cmd_attempt = 0;
    redisAsyncContext *c = r->cmd;
    if (r->db)
        redisAsyncCommand(c, NULL, NULL, "SELECT %d", r->db);
    char events[24], seconds[24];
    snprintf(events, sizeof events, "%zu", r->replay_events);
    snprintf(seconds, sizeof seconds, "%.3f", (double)r->replay_ms / 1000.0);
    redisAsyncCommand(c, NULL, NULL, "HSET fr:config events %s seconds %s", events, seconds);
    redisAsyncCommand(c, on_library_loaded, NULL, "FUNCTION LOAD REPLACE %s", fr_redis_library);
}

static void on_cmd_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (!r)
        return;
    r->cmd = NULL;
    r->cmd_ready = 0;
    if (r->closing)
        return;
    fr_warn("redis: command connection lost; publishes answer 503 until it is back");
    uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
}

static void cmd_connect(fr_redis_t *r) {
    if (r->closing)
        return;
    r->cmd = connect_ctx(r);
    if (!r->cmd) {
        uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
        return;
    }
    redisAsyncSetConnectCallback(r->cmd, on_cmd_connected);
    redisAsyncSetDisconnectCallback(r->cmd, on_cmd_disconnected);
    r->cmd_connecting = 1;
    uv_timer_start(&r->cmd_retry, on_cmd_retry, CONNECT_TIMEOUT_MS, 0);
}

static void on_pong(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    if (r && reply)
        r->ping_pending = 0;
}

/* ---- presence --------------------------------------------------------------------------------- */

typedef struct {
    fr_redis_t *r;
    char *topic; /* owned */
} presence_fetch_t;

static watch_t *watch_find(fr_redis_t *r, const char *topic) {
    for (fr_list_t *l = fr_list_first(&r->watches); l; l = fr_list_next(&r->watches, l)) {
        watch_t *w = FR_LIST_ENTRY(l, watch_t, link);
        if (strcmp(w->topic, topic) == 0)
            return w;
    }
    return NULL;
}

static void watch_free(watch_t *w) {
    fr_list_remove(&w->link);
    fr_presence_free(&w->cached);
    free(w->topic);
    free(w);
}

static void on_presence(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    presence_fetch_t *pf = priv;
    redisReply *rep = reply;
    watch_t *w = pf->r->closing ? NULL : watch_find(pf->r, pf->topic);
    if (w && rep && rep->type == REDIS_REPLY_ARRAY) {
        fr_presence_t merged = {0};
        for (size_t i = 0; i < rep->elements; i++) {
            if (rep->element[i]->type == REDIS_REPLY_STRING)
                fr_presence_merge(&merged, rep->element[i]->str, rep->element[i]->len);
        }
        fr_presence_free(&w->cached);
        w->cached = merged;
        w->fetched = 1;
    }
    free(pf->topic);
    free(pf);
}

static void presence_fetch(fr_redis_t *r, const char *topic) {
    presence_fetch_t *pf = fr_malloc(sizeof *pf);
    pf->r = r;
    pf->topic = fr_strdup(topic);
    if (redisAsyncCommand(r->cmd, on_presence, pf, "FCALL freshet_presence_get 1 %s", topic) !=
        REDIS_OK) {
        free(pf->topic);
        free(pf);
    }
}

/* Every second: this node writes its part for every topic it follows (every other second —
 * parts live 5 s) and reads the merged answer of topics someone asked about recently. */
static void presence_tick(fr_redis_t *r, uint64_t now) {
    if (r->ticks++ % 2 == 0) {
        fr_htable_iter_t it;
        fr_htable_iter_init(&r->follows, &it);
        for (follow_t *f; (f = follow_of(fr_htable_iter_next(&it)));) {
            if (!f->wanted)
                continue;
            fr_presence_t mine;
            fr_presence_local(r->base.hub, f->topic, &mine);
            size_t len;
            char *part = fr_presence_encode(&mine, &len);
            redisAsyncCommand(r->cmd, NULL, NULL, "FCALL freshet_presence_put 1 %s %s %b %d",
                              f->topic, r->node, part, len, PRESENCE_TTL_MS);
            free(part);
            fr_presence_free(&mine);
        }
    }
    for (fr_list_t *l = fr_list_first(&r->watches), *next; l; l = next) {
        next = fr_list_next(&r->watches, l);
        watch_t *w = FR_LIST_ENTRY(l, watch_t, link);
        if (now - w->asked_ms > PRESENCE_WATCH_MS)
            watch_free(w);
        else
            presence_fetch(r, w->topic);
    }
}

static void presence_copy(fr_presence_t *dst, const fr_presence_t *src) {
    memset(dst, 0, sizeof *dst);
    dst->count = src->count;
    dst->nodes = src->nodes;
    for (size_t i = 0; i < src->nids; i++)
        fr_presence_add_id(dst, src->ids[i]);
}

static void redis_presence(fr_broker_t *b, const char *topic, fr_presence_t *out) {
    fr_redis_t *r = (fr_redis_t *)b;
    watch_t *w = watch_find(r, topic);
    if (!w) {
        w = fr_calloc(1, sizeof *w);
        w->topic = fr_strdup(topic);
        fr_list_insert_head(&r->watches, &w->link);
        if (r->cmd_ready)
            presence_fetch(r, topic);
    }
    w->asked_ms = fr_mono_ms();
    if (w->fetched)
        presence_copy(out, &w->cached);
    else
        fr_presence_local(r->base.hub, topic, out);
}

/* Once a second: a command connection that stopped answering is dropped (it reconnects), and
 * topics nobody followed for a while are unsubscribed. */
static void on_tick(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    uint64_t now = fr_mono_ms();
    if (r->cmd_ready) {
        if (r->ping_pending && now - r->ping_sent > PING_DEAD_MS) {
            fr_warn("redis: no answer for %d ms; reconnecting", PING_DEAD_MS);
            /* Not redisAsyncDisconnect: it waits for the replies that are not coming. Freeing
             * answers every pending command (publishes get 503) and reports the disconnect. */
            r->ping_pending = 0;
            redisAsyncFree(r->cmd);
        } else if (!r->ping_pending) {
            r->ping_pending = 1;
            r->ping_sent = now;
            redisAsyncCommand(r->cmd, on_pong, NULL, "PING");
        }
    }
    if (r->cmd_ready)
        presence_tick(r, now);
    if (!r->sub_ready)
        return;
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = follow_of(fr_htable_iter_next(&it)));) {
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

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int parse_url(fr_redis_t *r, const char *url, char *err, size_t errlen) {
    if (strncmp(url, "unix://", 7) == 0) {
        if (url[7] != '/') {
            snprintf(err, errlen, "broker: unix:// wants an absolute path, got '%s'", url);
            return -1;
        }
        r->unix_path = fr_strdup(url + 7);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "broker: expected memory, redis://host:port[/db] or unix:///path");
        return -1;
    }
    const char *p = url + 8, *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                r->user = fr_strndup(p, (size_t)(colon - p));
            r->password = fr_strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            r->password = fr_strndup(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    char hp[256];
    if (hostport >= sizeof hp) {
        snprintf(err, errlen, "broker: host name too long");
        return -1;
    }
    memcpy(hp, p, hostport);
    hp[hostport] = '\0';
    r->port = 6379;
    char *colon = strrchr(hp, ':');
    if (colon) {
        *colon = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535) {
            snprintf(err, errlen, "broker: bad port in '%s'", url);
            return -1;
        }
        r->port = (int)port;
    }
    snprintf(r->host, sizeof r->host, "%s", hp[0] ? hp : "127.0.0.1");
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000) {
            snprintf(err, errlen, "broker: bad database number in '%s'", url);
            return -1;
        }
        r->db = (int)db;
    }
    return 0;
}

static const fr_broker_ops_t redis_ops;

fr_broker_t *fr_redis_broker_new(uv_loop_t *loop, fr_hub_t *hub, const char *url,
                                 size_t replay_events, uint64_t replay_ms, char *err,
                                 size_t errlen) {
    fr_redis_t *r = fr_calloc(1, sizeof *r);
    r->base.ops = &redis_ops;
    r->base.hub = hub;
    r->base.slot = 0;
    r->loop = loop;
    r->replay_events = replay_events;
    r->replay_ms = replay_ms;
    if (parse_url(r, url, err, errlen) < 0) {
        free(r->unix_path);
        free(r->user);
        free(r->password);
        free(r);
        return NULL;
    }
    fr_htable_init(&r->follows);
    fr_list_init(&r->watches);
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        uint64_t t = fr_now_ms() ^ (uint64_t)getpid();
        memcpy(rnd, &t, sizeof rnd);
    }
    for (int i = 0; i < 8; i++)
        snprintf(r->node + 2 * i, 3, "%02x", rnd[i]);
    uv_timer_t *timers[] = {&r->cmd_retry, &r->sub_retry, &r->tick};
    for (int i = 0; i < 3; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = r;
    }
    r->handles_open = 3;
    uv_timer_start(&r->tick, on_tick, PING_EVERY_MS, PING_EVERY_MS);
    hub->on_follow = fr_redis_on_follow;
    hub->follow_ctx = r;
    cmd_connect(r);
    sub_connect(r);
    return &r->base;
}

static void on_timer_closed(uv_handle_t *h) {
    fr_redis_t *r = h->data;
    if (--r->handles_open > 0)
        return;
    fr_htable_iter_t it;
    fr_htable_iter_init(&r->follows, &it);
    for (follow_t *f; (f = follow_of(fr_htable_iter_next(&it)));)
        follow_free(r, f);
    fr_htable_close(&r->follows);
    for (fr_list_t *l; (l = fr_list_first(&r->watches));)
        watch_free(FR_LIST_ENTRY(l, watch_t, link));
    free(r->unix_path);
    free(r->user);
    free(r->password);
    free(r);
}

static void redis_free(fr_broker_t *b) {
    fr_redis_t *r = (fr_redis_t *)b;
    if (r->closing)
        return;
    /* Streams that close after this must not reach a broker that is going away. */
    r->base.hub->on_follow = NULL;
    r->base.hub->follow_ctx = NULL;
    /* Freeing the contexts answers every pending command with a NULL reply: publishes and
     * joins hear of the failure; nothing reconnects once `closing` is set. */
    r->closing = 1;
    redisAsyncContext *cmd = r->cmd, *sub = r->sub;
    r->cmd = r->sub = NULL;
    r->cmd_ready = r->sub_ready = 0;
    if (cmd)
        redisAsyncFree(cmd);
    if (sub)
        redisAsyncFree(sub);
    fail_waiters(r);
    uv_close((uv_handle_t *)&r->cmd_retry, on_timer_closed);
    uv_close((uv_handle_t *)&r->sub_retry, on_timer_closed);
    uv_close((uv_handle_t *)&r->tick, on_timer_closed);
}

static int redis_ready(const fr_broker_t *b) {
    const fr_redis_t *r = (const fr_redis_t *)b;
    return r->cmd_ready && r->sub_ready;
}

/* ---- publishing --------------------------------------------------------------------------- */

typedef struct {
    fr_published_cb cb;
    void *ctx;
} pub_t;

static void on_published(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    pub_t *p = priv;
    redisReply *rep = reply;
    fr_id_t id = {0, 0};
    if (!rep)
        p->cb(p->ctx, FR_PUB_UNAVAILABLE, id, "the connection to Redis was lost");
    else if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "freshet_publish:"))
        p->cb(p->ctx, FR_PUB_INVALID, id, rep->str); /* the function refused the event: 400 */
    else if (rep->type == REDIS_REPLY_ERROR)
        p->cb(p->ctx, FR_PUB_UNAVAILABLE, id, rep->str); /* OOM, readonly…: 503 */
    else if (parse_id(rep, &id) < 0)
        p->cb(p->ctx, FR_PUB_UNAVAILABLE, id, "unexpected reply from Redis");
    else
        p->cb(p->ctx, 0, id, NULL);
    free(p);
}

static void redis_publish(fr_broker_t *b, const fr_pub_t *ev, fr_published_cb cb, void *ctx) {
    fr_redis_t *r = (fr_redis_t *)b;
    fr_id_t id = {0, 0};
    const char *err;
    /* Checked here as the memory broker's hub checks it: Redis would store what a client then
     * could not read. */
    if (fr_event_validate(ev->topic, ev->name, ev->data, ev->len, &err) < 0) {
        cb(ctx, FR_PUB_INVALID, id, err);
        return;
    }
    if (!r->cmd_ready) {
        cb(ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable");
        return;
    }
    pub_t *p = fr_malloc(sizeof *p);
    p->cb = cb;
    p->ctx = ctx;
    const char *argv[] = {"FCALL", "freshet_publish", "1", ev->topic, ev->data,
                          ev->name ? ev->name : "", fr_priority_name(ev->prio),
                          ev->json ? "1" : "0"};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    lens[4] = ev->len;
    if (redisAsyncCommandArgv(r->cmd, on_published, p, 8, argv, lens) != REDIS_OK) {
        free(p);
        cb(ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable");
    }
}

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
    for (size_t i = 0; i < n; i++) {
        follow_t *f = follow_get(r, topics[i]);
        if (f->subscribed)
            continue;
        if (!f->nwaiters && !f->unsubscribing)
            send_subscribe(r, f, "SUBSCRIBE");
        f->waiters = fr_realloc(f->waiters, (f->nwaiters + 1) * sizeof *f->waiters);
        f->waiters[f->nwaiters++] = j;
        j->waiting++;
    }
    if (j->waiting == 0)
        join_start(j);
    return 0;
}

/* A topic this node has not seen yet starts now: Redis ids are times. */
static fr_id_t redis_position(fr_broker_t *b, const char *topic) {
    fr_id_t pos = fr_hub_position(b->hub, topic);
    if (pos.ms == 0 && pos.seq == 0)
        pos.ms = fr_now_ms();
    return pos;
}

static void redis_sweep(fr_broker_t *b) {
    fr_hub_sweep(b->hub);
}

static const fr_broker_ops_t redis_ops = {
    .kind = "redis",
    .publish = redis_publish,
    .join = redis_join,
    .replay = NULL, /* an open stream resumes by reconnecting */
    .position = redis_position,
    .presence = redis_presence,
    .ready = redis_ready,
    .sweep = redis_sweep,
    .free = redis_free,
};
