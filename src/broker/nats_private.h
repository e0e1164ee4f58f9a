/* What the files of the NATS broker share, and nobody else (other code sees broker/nats.h):
 *
 *   broker/nats.c         the broker: its fr_broker_ops_t, lifecycle, the connection, the
 *                         bridge from the library's threads, publishing and presence
 *   broker/nats_read.c    JetStream API calls (stream creation, reads), on libuv's thread pool
 *   broker/nats_follow.c  the topics this node follows: live subscriptions, gaps, refills
 *   broker/nats_url.c     the URL
 *
 * Threads. The client library reads and writes the socket on the worker's loop (its libuv
 * adapter), but calls message handlers and connection callbacks on threads of its own. Those
 * callbacks touch nothing but the bridge: they append the message to its queue under its mutex
 * and wake the loop (uv_async_send), which does the rest. JetStream API calls block their
 * caller until the answer is read (by the loop), so they run on libuv's thread pool with copies
 * of what they need, and hand a result back to the loop (uv_queue_work's after-callback). */
#ifndef FR_BROKER_NATS_PRIVATE_H
#define FR_BROKER_NATS_PRIVATE_H

#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/hash.h"
#include "base/list.h"
#include "broker/nats.h"
#include "broker/nats_url.h"
#include "core/metrics.h"

typedef struct fr_nats_s fr_nats_t;

/* What a library thread hands to the loop. */
typedef enum {
    NQ_LIVE,         /* a republished event (fr.<s>.l.<token>) */
    NQ_PRESENCE_ASK, /* another node asks for this node's part (fr.<s>.p.<token>) */
    NQ_INBOX,        /* an answer to this node: a PubAck or a presence part */
    NQ_DISCONNECTED,
    NQ_RECONNECTED,
    NQ_CLOSED,       /* the connection is closed for good: no more callbacks of it */
    NQ_SUB_DONE      /* a subscription delivered its last message */
} nq_kind_t;

typedef struct nq_item_s {
    struct nq_item_s *next;
    nq_kind_t kind;
    natsMsg *msg; /* owned, or NULL */
} nq_item_t;

/* The first attach of a connection to the loop, asked by the thread that connects: the
 * adapter makes it only on the loop's thread. */
typedef struct {
    void **user;       /* the adapter's state for the connection */
    natsConnection *nc;
    natsSock sock;
    natsStatus status; /* set by the loop */
    uv_sem_t done;     /* posted by the loop */
} nattach_t;

/* The only memory both the loop and library threads touch. Lives until the loop has closed
 * `async` after the library released its last reference (closed connection, completed
 * subscriptions). */
typedef struct {
    uv_mutex_t mu;
    nq_item_t *head, *tail; /* under mu */
    nattach_t *attach;      /* under mu: a connecting thread waits for the loop to attach */
    unsigned lib_refs;      /* under mu: the connection (until closed) + each subscription */
    uv_async_t async;       /* on the worker's loop; sent under mu */
    fr_nats_t *n;           /* loop only; NULL once the broker is gone */
    int closing;            /* loop only: async is being closed */
} fr_nats_bridge_t;

/* A topic this node follows: subscribed to its live and presence subjects. */
typedef struct nfollow_s {
    fr_hnode_t hnode;        /* in n->follows, keyed by topic */
    char *topic;             /* owned */
    char *token;             /* owned: the topic's subject token */
    natsSubscription *live, *ask; /* NULL when not subscribed */
    int wanted;              /* a local stream follows it */
    uint64_t unwanted_since; /* monotonic ms */
    int known;               /* `last` holds: a join or a fill has read the topic's position */
    uint64_t last;           /* the sequence of the newest event this node delivered (or read
                              * as the topic's position) */
    uint64_t chain_from;     /* the hub got every event of the topic after this one */
    int filling;             /* a fill is in flight: live events wait in `held` */
    int fill_again;          /* held events were dropped (too many): fill again after */
    unsigned fill_gen;       /* the fill in flight; the answer of an older one is ignored */
    uint64_t recheck_at;     /* monotonic ms: read the topic once more (0: no) */
    natsMsg **held;          /* owned: live events waiting for a join or a fill */
    size_t nheld;
} nfollow_t;

/* A JetStream job on the thread pool. The work function reads only what is copied here. */
typedef enum { JOB_CONNECT, JOB_ENSURE, JOB_READ, JOB_LOCATE } job_kind_t;

typedef struct njob_s {
    uv_work_t req;
    job_kind_t kind;
    fr_nats_t *n;             /* loop only (after-callback) */
    jsCtx *js;                /* borrowed: thread-safe */
    jsStreamConfig *cfg;      /* JOB_ENSURE: owned copy of what to create */
    natsOptions *opts;        /* JOB_CONNECT: borrowed (the library copies it) */
    natsConnection *nc;       /* JOB_CONNECT out: owned until the loop takes it */
    natsStatus status;        /* JOB_CONNECT out */
    char stream[65];
    uint64_t created_ms;      /* JOB_READ/LOCATE in; JOB_ENSURE out */
    size_t n_topics;
    char **topics, **subjects; /* owned */
    fr_id_t *after;           /* owned, NULL: positions only */
    int refill;               /* a fill: an id nothing follows is not stale */
    size_t max_events;
    uint64_t replay_ms;
    fr_join_t *res;           /* built by the work function */
    char err[200];            /* JOB_ENSURE: why it failed */
    int failed;
    /* What the loop does with the result. */
    void (*done)(struct njob_s *j);
    fr_join_cb cb;            /* JOB_READ for a join / JOB_LOCATE: the caller's */
    fr_published_cb locate_cb;
    void *ctx;
    unsigned fill_gen;        /* a fill: the follow's fill_gen when it started */
    int orphaned;             /* the broker went: `done` is not called */
    fr_list_t link;           /* in n->job_list */
} njob_t;

/* A publish waiting for its PubAck. */
typedef struct {
    fr_hnode_t hnode;  /* in n->pubs, keyed by `key` */
    uint64_t key;      /* the number in its reply subject */
    fr_published_cb cb;
    void *ctx;
    uint64_t sent_ms;  /* monotonic */
} npub_t;

/* A topic whose presence someone asked for: the answers of the last round. */
typedef struct {
    fr_list_t link;
    char *topic;             /* owned */
    uint64_t id;             /* in the reply subjects of its asks */
    fr_presence_t cached;    /* owned: the last complete round's merged answer */
    fr_presence_t collect;   /* owned: the round in flight */
    int fetched;
    uint64_t asked_ms;       /* monotonic: watches nobody asks about any more go */
} nwatch_t;

struct fr_nats_s {
    fr_broker_t base;        /* first: the broker interface (base.hub is borrowed) */
    uv_loop_t *loop;
    fr_nats_url_t url;
    size_t replay_events;
    uint64_t replay_ms;
    fr_metrics_t *metrics;   /* borrowed */
    fr_nats_bridge_t *bridge;
    natsOptions *opts;
    natsConnection *nc;      /* NULL until the first connect succeeds */
    jsCtx *js;
    natsSubscription *inbox_sub;
    char inbox[64];          /* this node's reply prefix: _INBOX.<nuid> */
    char prefix[80];         /* fr.<stream> */
    char node[17];           /* random hex: the connection's name */
    int connected;           /* the library says connected (as far as the loop heard) */
    int stream_ready;        /* the stream exists as configured; `created_ms` holds */
    int ensuring;            /* a JOB_ENSURE is in flight */
    int need_ensure;         /* reconnected: check the stream (and fill) once it answers */
    unsigned ensure_failures;
    uint64_t created_ms;     /* the stream's creation time: every id's ms part */
    int connecting;          /* a JOB_CONNECT is in flight */
    unsigned connect_failures;
    uint64_t next_connect;   /* monotonic ms */
    uv_timer_t tick;
    int jobs;                /* thread-pool jobs in flight */
    fr_list_t job_list;      /* njob_t, in flight */
    fr_htable_t follows;     /* topic → nfollow_t */
    unsigned fills;
    fr_htable_t pubs;        /* reply number → npub_t */
    uint64_t next_pub;
    fr_list_t watches;       /* nwatch_t */
    uint64_t next_watch;
    unsigned long reconnects, fills_done, gaps, lost;
    int closing;
    int tick_open;
};

/* ---- nats.c ---- */
/* Takes the item's message (the caller does not destroy it). */
void fr_nats_bridge_push(fr_nats_bridge_t *br, nq_kind_t kind, natsMsg *msg);
/* Subscribes (async) to subject with the bridge as closure, counting the reference the
 * subscription holds until it completes; NULL when the library refuses. */
natsSubscription *fr_nats_subscribe(fr_nats_t *n, const char *subject, nq_kind_t kind);
/* Unsubscribes and drops the handle (its completion still comes through the bridge). */
void fr_nats_unsubscribe(natsSubscription **sub);
/* 1 while publishes and joins can succeed. */
int fr_nats_usable(const fr_nats_t *n);
/* The broker is closing: frees it if nothing can call into it any more. */
void fr_nats_finish_check(fr_nats_t *n);
/* JOB_CONNECT's work, on a pool thread: the first connection (it blocks up to the timeout per
 * server). */
void fr_nats_connect_work(njob_t *j);

/* ---- nats_read.c ---- */
/* Queues a job on the thread pool (j->done runs on the loop, then j is freed). */
void fr_nats_job_start(fr_nats_t *n, njob_t *j);
njob_t *fr_nats_job_new(fr_nats_t *n, job_kind_t kind);
void fr_nats_job_free(njob_t *j);
/* Sets j's topics (copies) and their subjects. */
void fr_nats_job_topics(fr_nats_t *n, njob_t *j, char *const *topics, const fr_id_t *after,
                        size_t count);
/* "fr.<stream>.<kind>.<token>" for topic; caller frees. */
char *fr_nats_subject(const fr_nats_t *n, char kind, const char *topic);
/* The stream as this node wants it (freed with fr_nats_stream_config_free). */
jsStreamConfig *fr_nats_stream_config(const fr_nats_t *n);
void fr_nats_stream_config_free(jsStreamConfig *c);
/* An event from a stored or republished message of topic with sequence seq; NULL when it is
 * not one freshet can deliver. */
fr_event_t *fr_nats_event_from(natsMsg *m, const char *topic, uint64_t created_ms, uint64_t seq);
/* A header's value as a number (0 when absent or not a number). */
uint64_t fr_nats_header_u64(natsMsg *m, const char *key);

/* ---- nats_follow.c ---- */
void fr_nats_on_follow(void *ctx, const char *topic, int follow);
/* A republished event arrived. Takes msg. */
void fr_nats_follow_live(fr_nats_t *n, natsMsg *msg);
/* Another node asks for this node's presence part. Takes msg. */
void fr_nats_follow_presence_ask(fr_nats_t *n, natsMsg *msg);
/* A join read the topics' positions: follows without one take them; a join whose position
 * is older than what the hub got every event after is moved up to it (a fresh stream) or
 * told the events are gone (a resume). */
void fr_nats_follow_joined(fr_nats_t *n, const njob_t *j, fr_join_t *res);
/* After a reconnect (and the stream checked): every followed topic is filled from the stream. */
void fr_nats_follow_refill_all(fr_nats_t *n);
/* Once a second: rechecks, and unsubscribes from topics nobody followed for a while. */
void fr_nats_follow_tick(fr_nats_t *n, uint64_t now);
void fr_nats_follow_free_all(fr_nats_t *n);

#endif
