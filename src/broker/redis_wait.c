/* Publishes confirmed by replicas (?replicas=N on the broker URL). Redis answers a write before
 * its replicas have it, and a failover in that moment loses it; with ?replicas=N a publish is
 * answered 201 only once WAIT says N replicas hold it.
 *
 * One WAIT covers every write the connection made before it, so publishes share them: when a
 * publish's FCALL reply arrives and no WAIT is in flight, a WAIT is sent; when its reply
 * arrives, it confirms every publish stored by then (their replies came before the WAIT's, so
 * their commands ran before it).
 *
 *   FCALL a ─► reply a: stored, WAIT 1 sent     waits: a
 *   FCALL b ─► reply b: stored                  waits: a b
 *   WAIT 1  ─► reply: 1 replica                 a, b answered 201
 *
 * Fewer than N replicas within wait= milliseconds (or the connection lost before the WAIT's
 * reply) means the event is stored on the primary and may still be delivered, or lost in a
 * failover: the publish gets FR_PUB_UNCERTAIN (503 with that said), never 201. */
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/util.h"

typedef struct fr_redis_wait_s {
    struct fr_redis_wait_s *next;
    fr_published_cb cb;
    void *ctx;
    fr_id_t id;
} wait_t;

/* Answers every waiting publish: stored and confirmed (msg NULL) or not confirmed. */
static void answer_all(fr_redis_t *r, const char *msg) {
    /* The list is newest first; answer in the order they were stored. */
    wait_t *w = r->waits, *fifo = NULL;
    r->waits = NULL;
    while (w) {
        wait_t *next = w->next;
        w->next = fifo;
        fifo = w;
        w = next;
    }
    while (fifo) {
        wait_t *next = fifo->next;
        if (msg) {
            if (r->metrics)
                FR_BUMP(r->metrics->redis_unconfirmed, 1);
            fifo->cb(fifo->ctx, FR_PUB_UNCERTAIN, fifo->id, msg);
        } else {
            fifo->cb(fifo->ctx, 0, fifo->id, NULL);
        }
        free(fifo);
        fifo = next;
    }
}

static void on_wait_reply(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    fr_redis_t *r = priv;
    redisReply *rep = reply;
    r->wait_in_flight = 0;
    char msg[300];
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= (long long)r->url.replicas) {
        answer_all(r, NULL);
        return;
    }
    if (!rep) {
        snprintf(msg, sizeof msg,
                 "the connection to Redis was lost before %u replicas "
                 "confirmed the event: it may have been stored",
                 r->url.replicas);
    } else if (rep->type == REDIS_REPLY_INTEGER) {
        snprintf(msg, sizeof msg,
                 "only %lld of %u replicas confirmed the event within %u ms: it "
                 "is stored on the primary and may still be delivered, or be "
                 "lost in a failover",
                 rep->integer, r->url.replicas, r->url.wait_ms);
    } else {
        if (rep->type == REDIS_REPLY_ERROR) {
            fr_redis_conn_check_reply(r, rep);
            fr_warn("redis: WAIT refused: %s", rep->str);
        }
        snprintf(msg, sizeof msg,
                 "Redis did not confirm the event with WAIT: it may have been "
                 "stored");
    }
    answer_all(r, msg);
}

void fr_redis_wait_confirm(fr_redis_t *r, fr_published_cb cb, void *ctx, fr_id_t id) {
    if (!r) { /* a context the broker let go of: nobody can vouch for the event */
        cb(ctx, FR_PUB_UNCERTAIN, id,
           "the connection to Redis was dropped before the event "
           "was confirmed: it may have been stored");
        return;
    }
    if (!r->url.replicas) {
        cb(ctx, 0, id, NULL);
        return;
    }
    wait_t *w = fr_malloc(sizeof *w);
    w->cb = cb;
    w->ctx = ctx;
    w->id = id;
    w->next = r->waits;
    r->waits = w;
    if (r->wait_in_flight)
        return;
    if (r->cmd && redisAsyncCommand(r->cmd, on_wait_reply, r, "WAIT %u %u", r->url.replicas,
                                    r->url.wait_ms) == REDIS_OK) {
        r->wait_in_flight = 1;
        return;
    }
    answer_all(r, "the connection to Redis was lost before replicas confirmed the event: it may "
                  "have been stored");
}

void fr_redis_wait_fail_all(fr_redis_t *r) {
    r->wait_in_flight = 0;
    answer_all(r, "the connection to Redis was lost before replicas confirmed the event: it may "
                  "have been stored");
}
