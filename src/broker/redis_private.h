/* What the files of the Redis broker share, and nobody else (other code sees broker/redis.h):
 *
 *   broker/redis.c           the broker: its fr_broker_ops_t, lifecycle, publishing, joins
 *   broker/redis_conn.c      the two connections: hiredis on libuv, reconnects, liveness
 *   broker/redis_follow.c    the topics this node follows on Redis, refills after a reconnect
 *   broker/redis_presence.c  this node's presence parts and the merged answers
 *   broker/redis_lib.c       the Redis function library every node loads
 *
 * Everything runs on the worker's loop thread. */
#ifndef FR_BROKER_REDIS_PRIVATE_H
#define FR_BROKER_REDIS_PRIVATE_H

#include <hiredis/async.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/hash.h"
#include "base/list.h"
#include "broker/redis.h"

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
    uint64_t trim_round;     /* sweeps so far: which slice of the follows freshet_trim visits */
    int closing;
    int handles_open;        /* timers still to be closed before the struct is freed */
    char node[17];           /* this node's presence field: random hex */
    fr_list_t watches;       /* watch_t (redis_presence.c), owned; the newest first */
    unsigned ticks;
};

static inline follow_t *fr_redis_follow_of(fr_hnode_t *n) {
    return n ? FR_HTABLE_ENTRY(n, follow_t, hnode) : NULL;
}

/* ---- redis_conn.c ---- */

/* Starts the once-a-second tick and the first attempts of both connections. */
void fr_redis_conn_start(fr_redis_t *r);

/* ---- redis.c: joins ---- */

/* Every subscription of j is confirmed: reads positions and replays in one atomic call. Takes
 * j; its callback runs once, now (no command connection) or with the reply. */
void fr_redis_join_start(join_t *j);
/* Tells j's callback the join failed, and frees j. */
void fr_redis_join_fail(join_t *j);

/* ---- redis_follow.c ---- */

/* The hub's follow callback: subscribe / unsubscribe this node to a topic's channel. */
void fr_redis_on_follow(void *ctx, const char *topic, int follow);
/* Unless Redis has confirmed this node's subscription to topic already, makes j wait for it
 * (j->waiting counts the subscriptions it waits for) and sends SUBSCRIBE when no earlier
 * waiter or UNSUBSCRIBE reply will. */
void fr_redis_follow_wait(fr_redis_t *r, join_t *j, const char *topic);
/* The subscriber connected: subscribes again to every topic still wanted or waited for; a
 * wanted one is refilled from its Stream once Redis confirms. */
void fr_redis_follow_resubscribe(fr_redis_t *r);
/* The command connection is ready: runs the refills that waited for it. */
void fr_redis_follow_refill_pending(fr_redis_t *r);
/* The subscriber is gone (lost or closing): every subscription is void, every waiting join
 * fails, held live events are dropped, follows nobody wants are freed. */
void fr_redis_follow_fail_waiters(fr_redis_t *r);
/* Once a second: unsubscribes from topics nobody followed for a while. */
void fr_redis_follow_sweep(fr_redis_t *r, uint64_t now);
/* Frees every follow (the broker's memory goes). */
void fr_redis_follow_free_all(fr_redis_t *r);

/* ---- redis_presence.c ---- */

/* fr_broker_ops_t.presence: the merged answer of every node, once fetched; until then this
 * node's own. */
void fr_redis_presence(fr_broker_t *b, const char *topic, fr_presence_t *out);
/* Once a second, while the command connection is ready: writes this node's parts and fetches
 * the answers someone asked about recently. */
void fr_redis_presence_tick(fr_redis_t *r, uint64_t now);
/* This node stopped following topic: its part is removed now rather than left to expire
 * (when the command connection is down, it expires). */
void fr_redis_presence_drop(fr_redis_t *r, const char *topic);
/* Frees every watch (the broker's memory goes). */
void fr_redis_presence_free(fr_redis_t *r);

#endif
