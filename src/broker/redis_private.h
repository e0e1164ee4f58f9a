/* What the files of the Redis broker share, and nobody else (other code sees broker/redis.h):
 *
 *   broker/redis.c           the broker: its fr_broker_ops_t, lifecycle, publishing, joins
 *   broker/redis_url.c       the URL: the primary's address or the Sentinels', credentials, db
 *   broker/redis_conn.c      the two connections: hiredis on libuv, reconnects, liveness (PING,
 *                            the subscriber's probe), failovers (READONLY, LOADING, ROLE)
 *   broker/redis_sentinel.c  asking Sentinels where the primary is, and following +switch-master
 *   broker/redis_publish.c   publishing: a loop iteration's publishes, a call per topic run
 *   broker/redis_wait.c      publishes confirmed by N replicas (WAIT) before they are answered
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
#include "broker/redis_url.h"
#include "core/metrics.h"

struct join_s;

/* Talking to the Sentinels (broker/redis_sentinel.c). */
typedef struct {
    size_t at;                  /* the Sentinel queries go to (an index in url.sentinels) */
    redisAsyncContext *q;       /* its query connection, NULL when closed */
    int asking;                 /* a query is in flight; `timer` is its deadline */
    unsigned failures;          /* queries failed in a row: the next one waits longer */
    uint64_t asked_ms;          /* when the last query was sent (monotonic) */
    size_t sub_at;              /* the Sentinel that tells of +switch-master */
    redisAsyncContext *s;       /* its subscribed connection, NULL when closed */
    uint64_t epoch;             /* the newest configuration epoch heard of */
    int epoch_unknown;          /* a +switch-master arrived: answers of an epoch <= `epoch`
                                 * come from a Sentinel that has not heard of it yet */
    uv_timer_t timer;
} fr_redis_sentinel_t;

struct fr_redis_wait_s;
typedef struct fr_redis_batch_s fr_redis_batch_t;

/* A topic this node follows on Redis (subscribed to its channel). */
typedef struct follow_s {
    fr_hnode_t hnode;        /* in r->follows, keyed by topic */
    char *topic;             /* owned */
    int wanted;              /* a local stream follows it */
    int subscribed;          /* Redis confirmed the subscription on the current connection */
    int unsubscribing;       /* UNSUBSCRIBE sent, its reply not yet seen */
    int refill;              /* fill from the Stream once subscribed (after a reconnect) */
    int refilling;           /* a fill is in flight: live messages wait behind it */
    unsigned fill_gen;       /* the fill in flight; the answer of an older one is ignored */
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
    fr_redis_url_t url;
    fr_redis_addr_t primary; /* where both connections go (redis://: the URL's address) */
    int have_primary;        /* redis-sentinel://: a Sentinel has told where the primary is */
    fr_redis_sentinel_t sentinel;
    fr_metrics_t *metrics;   /* the worker's counters (borrowed) */
    uv_timer_t failover;     /* runs the failover `failover_why` names, outside hiredis */
    char failover_why[200];  /* empty unless a failover is pending */
    /* The subscriber's end-to-end probe: PUBLISH on probe_channel through the command
     * connection, heard back on the subscriber (redis_conn.c). */
    char probe_channel[48];
    int probe_subscribed;    /* Redis confirmed the subscription on the current connection */
    unsigned long probe_seq; /* the probe in flight (0: none) */
    uint64_t probe_sent, probe_published, probe_ok; /* monotonic ms (published: its reply came) */
    uint64_t probe_rtt;      /* ms, of the last probe that came back */
    struct fr_redis_wait_s *waits; /* publishes stored, waiting for their WAIT (redis_wait.c) */
    int wait_in_flight;      /* a WAIT is sent and not answered */
    redisAsyncContext *cmd, *sub;
    int cmd_ready, sub_ready;
    int cmd_connecting, sub_connecting; /* an attempt is under way; its timer is its deadline */
    int cmd_role, sub_role;  /* connected, ROLE not answered yet (redis-sentinel://) */
    int cmd_wants_addr, sub_wants_addr; /* down, due to connect once a Sentinel answers */
    uint64_t sub_since;      /* monotonic ms: when the subscriber became ready */
    unsigned cmd_attempt, sub_attempt;
    uv_timer_t cmd_retry, sub_retry, tick;
    int ping_pending;
    uint64_t ping_sent;
    fr_htable_t follows;     /* topic → follow_t, owned through the table */
    unsigned fills;          /* fills started: each one's number (follow_t.fill_gen) */
    uint64_t trim_round;     /* sweeps so far: which slice of the follows freshet_trim visits */
    fr_redis_batch_t *batches; /* owned: this iteration's publishes, a call per run of one
                              * topic's (the slots past nbatches keep their buffers) */
    size_t nbatches, batches_cap;
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

/* Starts the once-a-second tick and the first attempts of both connections (with Sentinels:
 * the first question to them). */
void fr_redis_conn_start(fr_redis_t *r);
/* A new hiredis context to addr (NULL: the primary) that authenticates with the URL's
 * credentials and names itself freshet-<node>-<role>; NULL when it cannot even start. */
redisAsyncContext *fr_redis_connect(fr_redis_t *r, const fr_redis_addr_t *addr,
                                    const char *role);
/* A Sentinel said where the primary is: when that is somewhere else, both connections are
 * dropped (a failover happened); the ones that are down connect there now. */
void fr_redis_conn_primary(fr_redis_t *r, const char *host, int port);
/* Something said the primary is not one any more (READONLY, LOADING, ROLE, a refused
 * connection): drops both connections and finds the primary again. Safe inside hiredis
 * callbacks: the work runs from a timer. */
void fr_redis_conn_failover(fr_redis_t *r, const char *why);
/* 1 when the reply is an error that means "not a writable primary" (READONLY, LOADING,
 * MASTERDOWN), after starting a failover; else 0. */
int fr_redis_conn_check_reply(fr_redis_t *r, const redisReply *rep);
/* Closes both connections and the probe for good (the broker is freed). */
void fr_redis_conn_stop(fr_redis_t *r);

/* ---- redis_sentinel.c ---- */

/* Asks a Sentinel where the primary is (unless a question is in flight); the answer goes to
 * fr_redis_conn_primary. */
void fr_redis_sentinel_ask(fr_redis_t *r);
/* Once a second: asks again every few seconds, and keeps a subscription to +switch-master. */
void fr_redis_sentinel_tick(fr_redis_t *r, uint64_t now);
/* Closes the Sentinel connections and timer (counted in r->handles_open). */
void fr_redis_sentinel_stop(fr_redis_t *r);

/* Commands are due on the command connection: the adapter's check runs after this iteration's
 * poll (it flushes the publishes gathered meanwhile, then writes). */
void fr_redis_conn_want_write(fr_redis_t *r);

/* ---- redis_publish.c ---- */

/* The broker's publish: joins this iteration's last call when it is the same topic's. */
void fr_redis_publish(fr_broker_t *b, const fr_pub_t *ev, fr_published_cb cb, void *ctx);
/* Hands this iteration's calls to hiredis (from the adapter's check, before it writes). */
void fr_redis_publish_flush(fr_redis_t *r);
/* The command connection is gone before the calls left: their publishes answer 503. */
void fr_redis_publish_fail_all(fr_redis_t *r);
void fr_redis_publish_free(fr_redis_t *r);

/* ---- redis_wait.c ---- */

/* A publish Redis stored (id): with ?replicas=N, answers cb once a WAIT says N replicas have
 * it (or 503 when they did not in time); without, answers now. */
void fr_redis_wait_confirm(fr_redis_t *r, fr_published_cb cb, void *ctx, fr_id_t id);
/* The command connection is gone: publishes still waiting are answered 503 (stored, maybe). */
void fr_redis_wait_fail_all(fr_redis_t *r);

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
