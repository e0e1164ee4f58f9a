/* Publishing on the Redis broker. The publishes a worker makes during one loop iteration (HTTP,
 * Lua, WebSocket) are gathered, and each run of one topic's publishes becomes one call,
 *
 *   FCALL freshet_publish_unchecked 1 fr:{<topic>}:s <maxlen> *<ms>\n
 *         <head> <data>   (per event, in publish order; head "\n<event>\n<priority>\n<json>\n<len>\n")
 *
 * written right after the loop's poll with every other command of that iteration (the adapter's
 * check, broker/redis_conn.c, calls fr_redis_publish_flush before it writes). An FCALL has a
 * fixed cost in Redis larger than the XADD it runs, so one per run of a topic's publishes
 * instead of one per event is most of what Redis spends on a burst of publishes. Redis announces
 * the call's events in one channel message (broker/redis_follow.c reads it). The reply is an
 * array with each event's id (or its error) in order.
 *
 * Only consecutive publishes of one topic share a call (a, a, b, a is three calls): the
 * answers then come in exactly the order the publishes were made, as the callers expect (the
 * answers to pipelined HTTP/1 requests go out in the order they come). Each call touches one
 * Redis Cluster slot.
 *
 * A batch's bytes are the command itself, built as events arrive:
 *
 *   [ room for "*<argc>\r\n" ][ FCALL freshet_publish_unchecked 1 <key> <maxlen> *<ms>\n ][ events… ]
 *
 * so that flushing only writes the argument count in front. */
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "codec/resp.h"

#define ARGC_ROOM FR_RESP_PREFIX_MAX /* "*<argc>\r\n" */

typedef struct {
    fr_published_cb cb;
    void *ctx;
} pub_t;

struct fr_redis_batch_s {
    char *buf; /* owned: the command being built */
    size_t len, cap;
    size_t key_at, key_len; /* the Stream key inside buf */
    pub_t *pubs;            /* owned: who waits for each event, in order */
    size_t n, pubs_cap;
};

/* What a call's reply is matched to. */
typedef struct sent_s {
    pub_t *pubs; /* owned */
    size_t n;
    struct sent_s *next; /* in a list of calls that could not be sent */
} sent_t;

/* ---- building ----------------------------------------------------------------------------- */

static void reserve(fr_redis_batch_t *b, size_t more) {
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    b->buf = fr_realloc(b->buf, cap);
    b->cap = cap;
}

static size_t put(char *at, const char *s, size_t n) {
    if (n)
        memcpy(at, s, n);
    return n;
}

static void batch_start(fr_redis_t *r, fr_redis_batch_t *b, const char *topic, size_t tlen) {
    char maxlen[20], ms[22];
    size_t mlen = fr_u64_format(maxlen, r->replay_events + 1);
    /* The channel message's first line: one publish time for the events of a loop turn. */
    size_t mslen = 1 + fr_u64_format(ms + 1, fr_now_ms()) + 1;
    ms[0] = '*';
    ms[mslen - 1] = '\n';
    b->len = ARGC_ROOM;
    b->n = 0;
    reserve(b, 6 * FR_RESP_BULK_EXTRA + 32 + tlen + 7 + mlen + mslen);
    char *p = b->buf;
    size_t k = b->len;
    k += fr_resp_bulk(p + k, "FCALL", 5);
    k += fr_resp_bulk(p + k, "freshet_publish_unchecked", 25);
    k += fr_resp_bulk(p + k, "1", 1);
    size_t klen = tlen + 7;
    k += fr_resp_prefix(p + k, '$', klen);
    b->key_at = k;
    b->key_len = klen;
    k += put(p + k, "fr:{", 4);
    k += put(p + k, topic, tlen);
    k += put(p + k, "}:s\r\n", 5);
    k += fr_resp_bulk(p + k, maxlen, mlen);
    k += fr_resp_bulk(p + k, ms, mslen);
    b->len = k;
}

static int batch_is(const fr_redis_batch_t *b, const char *topic, size_t tlen) {
    return b->key_len == tlen + 7 && memcmp(b->buf + b->key_at + 4, topic, tlen) == 0;
}

/* The batch this publish joins: the newest, when it is the same topic's; else a new one. */
static fr_redis_batch_t *batch_for(fr_redis_t *r, const char *topic) {
    size_t tlen = strlen(topic);
    if (r->nbatches && batch_is(&r->batches[r->nbatches - 1], topic, tlen))
        return &r->batches[r->nbatches - 1];
    if (r->nbatches == r->batches_cap) {
        size_t cap = r->batches_cap ? r->batches_cap * 2 : 4;
        r->batches = fr_realloc(r->batches, cap * sizeof *r->batches);
        memset(r->batches + r->batches_cap, 0, (cap - r->batches_cap) * sizeof *r->batches);
        r->batches_cap = cap;
    }
    fr_redis_batch_t *b = &r->batches[r->nbatches++];
    batch_start(r, b, topic, tlen);
    return b;
}

/* Appends an event's two arguments: its head, "\n<event>\n<priority>\n<json>\n<len>\n", and its
 * data. The head is the event's part of the channel message as well as its fields: the function
 * only joins ids, heads and data (string work in Redis' Lua costs Redis CPU). */
static void batch_add(fr_redis_batch_t *b, const fr_pub_t *ev) {
    const char *name = ev->name ? ev->name : "", *prio = fr_priority_name(ev->prio);
    size_t nlen = strlen(name), plen = strlen(prio);
    char dlen[20];
    size_t dlen_len = fr_u64_format(dlen, ev->len);
    size_t hlen = 1 + nlen + 1 + plen + 1 + 1 + 1 + dlen_len + 1;
    reserve(b, hlen + ev->len + 2 * FR_RESP_BULK_EXTRA);
    char *p = b->buf;
    size_t k = b->len;
    k += fr_resp_prefix(p + k, '$', hlen);
    k += put(p + k, "\n", 1);
    k += put(p + k, name, nlen);
    k += put(p + k, "\n", 1);
    k += put(p + k, prio, plen);
    k += put(p + k, ev->json ? "\n1\n" : "\n0\n", 3);
    k += put(p + k, dlen, dlen_len);
    k += put(p + k, "\n\r\n", 3);
    k += fr_resp_bulk(p + k, ev->data, ev->len);
    b->len = k;
}

void fr_redis_publish(fr_broker_t *base, const fr_pub_t *ev, fr_published_cb cb, void *ctx) {
    fr_redis_t *r = (fr_redis_t *)base;
    fr_id_t id = {0, 0};
    const char *err;
    /* Checked here as the memory broker's hub checks it: Redis would store what a client then
     * could not read. The node calls the function that skips the checks. */
    if (fr_event_validate(ev->topic, ev->name, ev->data, ev->len, &err) < 0) {
        cb(ctx, FR_PUB_INVALID, id, err);
        return;
    }
    if (!r->cmd_ready || !r->cmd) {
        cb(ctx, FR_PUB_UNAVAILABLE, id, "the broker is unavailable");
        return;
    }
    if (r->nbatches == 0)
        fr_redis_conn_want_write(r); /* the adapter's check flushes, after this iteration's poll */
    fr_redis_batch_t *b = batch_for(r, ev->topic);
    batch_add(b, ev);
    if (b->n == b->pubs_cap) {
        b->pubs_cap = b->pubs_cap ? b->pubs_cap * 2 : 16;
        b->pubs = fr_realloc(b->pubs, b->pubs_cap * sizeof *b->pubs);
    }
    b->pubs[b->n++] = (pub_t){cb, ctx};
}

/* ---- replies -------------------------------------------------------------------------------- */

/* One event's answer: its id (stored), or the error Redis gave. */
static void answer(fr_redis_t *r, const pub_t *p, const redisReply *rep) {
    fr_id_t id = {0, 0};
    if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "freshet_publish"))
        p->cb(p->ctx, FR_PUB_INVALID, id, rep->str); /* the function refused the event: 400 */
    else if (rep->type == REDIS_REPLY_ERROR)
        p->cb(p->ctx, FR_PUB_UNAVAILABLE, id, rep->str); /* OOM, READONLY…: 503 */
    else if (rep->type != REDIS_REPLY_STRING || fr_id_parse(rep->str, rep->len, &id) < 0)
        p->cb(p->ctx, FR_PUB_UNAVAILABLE, id, "unexpected reply from Redis");
    else
        fr_redis_wait_confirm(r, p->cb, p->ctx, id); /* ?replicas=N: after WAIT */
}

static void on_published(redisAsyncContext *ac, void *reply, void *priv) {
    sent_t *s = priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    fr_id_t id = {0, 0};
    if (!rep || !r) { /* sent, maybe run: the client must not take it for "not published" */
        for (size_t i = 0; i < s->n; i++)
            s->pubs[i].cb(s->pubs[i].ctx, FR_PUB_UNCERTAIN, id,
                          "the connection to Redis was lost before it answered: the event may "
                          "have been stored");
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < s->n; i++) {
            if (i < rep->elements)
                answer(r, &s->pubs[i], rep->element[i]);
            else
                s->pubs[i].cb(s->pubs[i].ctx, FR_PUB_UNAVAILABLE, id,
                              "unexpected reply from Redis");
        }
    } else {
        if (rep->type == REDIS_REPLY_ERROR)
            fr_redis_conn_check_reply(r, rep); /* READONLY, LOADING: a failover */
        for (size_t i = 0; i < s->n; i++)
            answer(r, &s->pubs[i], rep);
    }
    free(s->pubs);
    free(s);
}

/* ---- flushing ------------------------------------------------------------------------------- */

/* Takes the batch's publishes out (the batch can be started again). */
static sent_t *batch_take(fr_redis_batch_t *b) {
    sent_t *s = fr_malloc(sizeof *s);
    s->pubs = b->pubs;
    s->n = b->n;
    s->next = NULL;
    b->pubs = NULL;
    b->pubs_cap = 0;
    b->n = 0;
    return s;
}

/* Answers 503 to calls that never left. Callbacks run only here, after the batches were
 * walked: one may publish again, which starts batches anew. */
static void fail_sent(sent_t *list) {
    fr_id_t id = {0, 0};
    while (list) {
        sent_t *next = list->next;
        for (size_t k = 0; k < list->n; k++)
            list->pubs[k].cb(list->pubs[k].ctx, FR_PUB_UNAVAILABLE, id,
                             "the broker is unavailable");
        free(list->pubs);
        free(list);
        list = next;
    }
}

void fr_redis_publish_flush(fr_redis_t *r) {
    size_t n = r->nbatches;
    r->nbatches = 0;
    sent_t *failed = NULL;
    for (size_t i = 0; i < n; i++) {
        fr_redis_batch_t *b = &r->batches[i];
        /* "*<argc>\r\n" right before the fixed part: 6 fixed arguments, 2 per event. */
        char argc[FR_RESP_PREFIX_MAX];
        size_t alen = fr_resp_prefix(argc, '*', 6 + 2 * b->n);
        char *cmd = b->buf + ARGC_ROOM - alen;
        memcpy(cmd, argc, alen);
        size_t len = b->len - (ARGC_ROOM - alen);
        sent_t *s = batch_take(b);
        if (!r->cmd || redisAsyncFormattedCommand(r->cmd, on_published, s, cmd, len) != REDIS_OK) {
            s->next = failed;
            failed = s;
        }
    }
    fail_sent(failed);
}

void fr_redis_publish_fail_all(fr_redis_t *r) {
    size_t n = r->nbatches;
    r->nbatches = 0;
    sent_t *failed = NULL;
    for (size_t i = n; i > 0; i--) {
        sent_t *s = batch_take(&r->batches[i - 1]);
        s->next = failed;
        failed = s;
    }
    fail_sent(failed);
}

void fr_redis_publish_free(fr_redis_t *r) {
    for (size_t i = 0; i < r->batches_cap; i++) {
        free(r->batches[i].buf);
        free(r->batches[i].pubs);
    }
    free(r->batches);
    r->batches = NULL;
    r->nbatches = r->batches_cap = 0;
}
