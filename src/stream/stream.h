/* A stream: one client following a list of topics, on any transport (SSE, WebSocket, long-poll)
 * and any sink (an HTTP/1 connection today).
 *
 *   broker join ──► catch-up (missed events, then live ones that came meanwhile, paced)
 *                       │
 *   hub deliver ──► filter? ──► frame (transport) ──► out-queue ──flush, once per loop
 *                                                     (budgets,    iteration──► sink
 *                                                      priorities)
 *
 * Each queued event holds one reference until its write completes. A stream that cannot keep
 * up is ended with `retry:` and its client comes back through Last-Event-ID and replay,
 * instead of holding memory here.
 *
 * Life: fr_stream_new (the open has run the hooks) → fr_stream_join (subscribed; the broker
 * says where each topic stands) → fr_stream_start on a sink, or fr_stream_free when the open
 * refuses it. Once started, the sink owns the stream's end: it tells the stream `gone` (no more
 * writes) and then `closed` (free). */
#ifndef FR_STREAM_H
#define FR_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/linefile.h"
#include "base/list.h"
#include "broker/broker.h"
#include "core/config.h"
#include "core/event.h"
#include "core/hub.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "lua/vm.h"
#include "stream/outq.h"
#include "stream/sink.h"

typedef struct fr_stream_s fr_stream_t;

/* How a transport shapes a stream's bytes. The stream calls it; transports live a layer up
 * (transport/sse.c, ws.c, poll.c). */
typedef struct {
    const char *name; /* "sse", "ws", "poll" */
    /* The answer is one body with a length, written once (long-poll): no heartbeats. */
    int whole;
    /* The connection may carry the client's next request after the stream. */
    int reuse;
    /* Sends the response head and queues the opening bytes. */
    void (*begin)(fr_stream_t *s);
    /* Fills it->own / it->shared with ev's bytes (topic `index` of the stream). */
    void (*frame)(fr_stream_t *s, size_t index, fr_event_t *ev, fr_item_t *it);
    /* The in-band report of events dropped since the last one (out.unreported). Caller frees. */
    char *(*dropped)(fr_stream_t *s, size_t *len);
    /* Queues the `reset` notice: the client's id is older than the replay window. */
    void (*reset)(fr_stream_t *s);
    /* A heartbeat is due: queue one, or end the stream (a WebSocket without its pong). */
    void (*heartbeat)(fr_stream_t *s);
    /* Queues the last bytes (retry_ms > 0: ask the client to come back after it). */
    void (*finish)(fr_stream_t *s, uint64_t retry_ms);
    /* Bytes the client sent on the stream (a WebSocket's frames), or NULL: ignored. */
    void (*input)(fr_stream_t *s, const char *bytes, size_t len);
    /* Frees s->tp_state. */
    void (*free)(fr_stream_t *s);
} fr_transport_t;

/* A worker's streams and what they share. Owned by the worker, one per loop. */
typedef struct fr_streams_s {
    uv_loop_t *loop;           /* borrowed */
    fr_broker_t *broker;       /* borrowed: joins, positions, replays */
    fr_hub_t *hub;             /* borrowed: where streams subscribe; outlives every stream */
    unsigned slot;             /* this worker's slot in hub */
    const fr_config_t *config; /* borrowed: heartbeat, retry, replay window, poll timeout */
    fr_metrics_t *metrics;     /* borrowed: the worker's counters */
    fr_linefile_t *access;     /* borrowed: the access log, or NULL (off) */
    fr_ratelimit_t *limits;    /* borrowed: inbound WebSocket messages count against a tier */
    unsigned long *tier_rejected; /* borrowed: 429s per tier, indexed like config->tiers */
    char retry_frame[48];      /* "retry: <ms>\n\n", the opening bytes of every SSE stream */
    size_t retry_frame_len;
    /* Read-only to other modules. Every stream from new to free (fr_stream_t.all_link). */
    fr_list_t all;
    size_t count;              /* streams joined and not yet freed (read by other workers) */
    /* Private: started streams by last write, oldest first (a heartbeat tick visits only
     * those due); long-polls by start (their deadline); streams with output not yet handed
     * to their sink, oldest mark first. */
    fr_list_t idle, polls, pending;
} fr_streams_t;

/* How a join came out: the open turns it into 503, 400, 416 or a start. */
typedef struct {
    int error;   /* the broker could not answer */
    int invalid; /* an id of the Last-Event-ID was never issued */
    int stale;   /* an id is older than the replay window */
} fr_joined_t;
typedef void (*fr_stream_joined_cb)(void *ctx, fr_stream_t *s, const fr_joined_t *how);

/* One missed or held event, on its way into the out-queue. */
typedef struct {
    fr_event_t *ev; /* one reference */
    uint32_t topic;
} fr_backlog_item_t;

struct fr_stream_s {
    /* Read-only to other modules. */
    fr_streams_t *env;
    const fr_transport_t *tp;
    void *tp_state;            /* owned by the transport */
    fr_sink_t *sink;           /* borrowed from the connection; NULL until started, and once gone */
    fr_vm_t *vm;               /* one reference: who_ref and the filter live in it */
    const fr_route_t *route;   /* borrowed from vm */
    int who_ref;               /* owned registry ref: the identity table from auth */
    char *who_id;              /* owned: who.id for presence, or NULL */
    const fr_tier_t *budget;   /* borrowed from the config: the tier (its name, or NULL for
                                * the default) and its queue, bytes and lag bounds */
    uint64_t id;               /* the connection's id, for log lines */
    const char *remote;        /* borrowed: the peer address (the connection outlives us) */
    uint64_t opened_ms;        /* monotonic, when the connection opened */
    uint64_t started_us;       /* monotonic, when its request began (the access log) */
    char *access_target;       /* owned: the request target for the access log, or NULL */
    int status;                /* the status its head said (the access log) */
    size_t ntopics;
    char **topics;             /* owned names */
    fr_sub_t *subs;            /* owned, one per topic; NULL until joined */
    fr_id_t *pos;              /* owned: last id seen per topic (the resume point) */
    uint8_t *slow;             /* owned: fr_slow_t per topic */
    uint64_t *last_seq;        /* owned: per topic, seq of its newest queued event (0: none) */
    fr_outq_t out;
    const char *end_reason;    /* why the stream is ending (static string), or NULL */
    unsigned long sent, bytes; /* events and bytes handed to the sink */
    unsigned resume : 1;       /* arrived with a Last-Event-ID */
    unsigned started : 1;      /* on its sink */
    unsigned ending : 2;       /* 1: its last bytes are queued; 2: the sink was told to end */
    unsigned detached : 1;     /* the sink is gone: deliver nothing */

    /* Private. */
    unsigned joining : 1;      /* the broker has not answered the join yet */
    unsigned catching_up : 1;  /* live events wait in cu behind missed ones */
    unsigned writing : 1;      /* a write is pending in the sink */
    unsigned away : 1;         /* presence no longer counts it */
    fr_join_t *join;           /* owned: what the broker found, until start */
    struct fr_catchup_s *cu;   /* owned while catching up: events in order, missed ones first */
    const char *gone_reason;   /* why the sink went away (static), or NULL: the client left */
    void *pending_batch;       /* owned: what the pending write points into */
    uint64_t last_write_ms;    /* the loop's clock when something was last queued */
    uint64_t drain_at;         /* ms into the drain window when this stream ends */
    fr_list_t all_link;        /* in env->all */
    fr_list_t idle_link;       /* in env->idle, or env->polls for a long-poll */
    fr_list_t pend_link;       /* in env->pending */
};

/* What the open decided, handed to the stream, which takes ownership of the pointers. */
typedef struct {
    const fr_transport_t *tp;
    void *tp_state;
    fr_vm_t *vm;               /* a reference is taken */
    const fr_route_t *route;
    int who_ref;
    char *who_id;
    const fr_tier_t *budget;   /* the tier; NULL: the config's default */
    char **topics;
    size_t ntopics;
    uint8_t *slow;             /* fr_slow_t per topic */
    uint64_t id;
    const char *remote;
    uint64_t opened_ms;
    uint64_t started_us;
    char *access_target;       /* taken: the request target when the access log is on */
} fr_stream_init_t;

fr_stream_t *fr_stream_new(fr_streams_t *env, fr_stream_init_t *init);
/* Frees a stream that was never started (the open refused it). */
void fr_stream_free(fr_stream_t *s);
/* Logs a started stream's CLOSED line (reason: why, when it has no end_reason of its own) and
 * frees it. For the stream layer and the sink's closed() only. */
void fr_stream_finished(fr_stream_t *s, const char *reason);


/* Subscribes and asks the broker where each topic stands: after holds the client's positions
 * (Last-Event-ID, one per topic) or is NULL for a fresh stream. cb may run before this
 * returns. Returns -1 (cb not called) when the broker is unavailable. */
int fr_stream_join(fr_stream_t *s, const fr_id_t *after, fr_stream_joined_cb cb, void *ctx);

/* Puts a joined stream on its sink: the head, then what it missed (or, with reset, the
 * `reset` notice and the current positions), then live events. */
void fr_stream_start(fr_stream_t *s, fr_sink_t *sink, int reset);

/* Ends a stream cleanly: its last bytes (retry_ms > 0: "come back after"), then the end of
 * the body. */
void fr_stream_end(fr_stream_t *s, uint64_t retry_ms);

/* For transports: sends the response head through the sink (and keeps its status). */
static inline void fr_stream_head(fr_stream_t *s, const fr_head_t *head) {
    s->status = head->status;
    s->sink->ops->head(s->sink, head);
}

/* For transports: queue bytes (owned: freed once written) in order with the events. */
void fr_stream_send(fr_stream_t *s, char *bytes, size_t len);
void fr_stream_send_static(fr_stream_t *s, const char *bytes, size_t len);
/* The positions of every topic as one id (codec/ids.h: the plain id for one topic, the v1 form
 * for several), the id a client resumes from, into buf of at least fr_stream_positions_max(s)
 * bytes; returns the length. */
size_t fr_stream_positions(const fr_stream_t *s, char *buf);
size_t fr_stream_positions_max(const fr_stream_t *s);

/* Replaces the stream's topics with `topics` (owned by the caller; checked names). Kept
 * topics keep their position; new ones start from the broker's. */
void fr_stream_set_topics(fr_stream_t *s, char *const *topics, size_t n);
/* Replays from `ids` (a Last-Event-ID) on an open stream. Returns NULL, or a message for the
 * client. */
const char *fr_stream_resume_from(fr_stream_t *s, const char *ids);

/* The worker's streams (stream/sched.c). */
void fr_streams_init(fr_streams_t *env, uv_loop_t *loop, fr_broker_t *broker,
                     const fr_config_t *config, fr_metrics_t *metrics);
/* Writes out streams with queued output, oldest mark first (once per loop iteration), for at
 * most slice_ns; returns 1 when some are left for the next iteration. */
int fr_streams_flush(fr_streams_t *env, uint64_t slice_ns);
/* Heartbeats for streams idle for the heartbeat interval; long-polls past their deadline. */
void fr_streams_tick(fr_streams_t *env);
/* Gives every stream its moment in a drain window of window_ms (jitter: clients do not all
 * come back at once); fr_streams_drain_tick ends those whose moment has come. */
void fr_streams_drain(fr_streams_t *env, uint64_t window_ms);
void fr_streams_drain_tick(fr_streams_t *env, uint64_t elapsed_ms);

/* For the stream layer's own files. */
void fr_stream_touch(fr_stream_t *s);
void fr_stream_mark_pending(fr_stream_t *s);
void fr_stream_unlist(fr_stream_t *s);
void fr_stream_write(fr_stream_t *s);
/* A long-poll answers now with what it holds (204 when nothing). */
void fr_stream_whole(fr_stream_t *s);
void fr_stream_catch_up(fr_stream_t *s);

#endif
