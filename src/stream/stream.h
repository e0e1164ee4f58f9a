/* An SSE stream on a connection: its topics and positions, the out-queue of event references,
 * batched writes and heartbeats.
 *
 *   hub publish ──deliver──► filter? ──► out-queue [ev ev ev …] ──flush (once per loop
 *   iteration)──► one chunk, one uv_write ──write done──► release refs
 *
 * Each item holds one event reference until its write completes. A queue that reaches its
 * bound means the client stopped reading: the stream ends with "retry:" and the client comes
 * back through Last-Event-ID and replay instead of holding memory here. */
#ifndef FR_STREAM_H
#define FR_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/hub.h"
#include "lua/vm.h"

struct fr_ws_parser_s;

struct fr_conn_s;
struct fr_worker_s;

typedef enum { FR_ITEM_EVENT, FR_ITEM_OWNED, FR_ITEM_STATIC } fr_item_kind_t;

typedef struct {
    fr_item_kind_t kind;
    fr_event_t *ev;   /* FR_ITEM_EVENT: one reference (NULL once dropped from the queue) */
    char *bytes;      /* EVENT: own id line or NULL; OWNED: owned bytes; STATIC: borrowed */
    size_t len;
    uint64_t seq;     /* position in the stream's queue since it opened */
    uint32_t topic;   /* EVENT: index of its topic */
    uint8_t ws;       /* EVENT: WebSocket framing (bytes, when set, is the whole frame) */
} fr_item_t;

typedef struct fr_stream_s {
    struct fr_conn_s *conn;      /* the connection that owns this stream */
    struct fr_worker_s *worker;
    fr_vm_t *vm;                 /* one reference: who_ref and the filter live in it */
    const fr_route_t *route;     /* borrowed from vm */
    int who_ref;                 /* identity table from auth */
    char *tier;                  /* owned tier name, or NULL */
    char *who_id;                /* owned: the identity's id (who.id) for presence, or NULL */
    size_t ntopics;
    char **topics;               /* owned names */
    fr_sub_t *subs;              /* owned, one per topic */
    fr_id_t *pos;                /* owned: last id seen per topic (the resume point) */
    int chunked;                 /* HTTP/1.1: chunked framing; HTTP/1.0: raw until close */
    int poll;                    /* long-poll: one response with what is there, then done */
    int joining;                 /* waiting for the broker's replay: live events are held */
    int resume;                  /* arrived with a Last-Event-ID */
    int replaying;               /* catching up from the rings, paced by the queue */
    int ws;                      /* WebSocket transport (else SSE) */
    struct fr_ws_parser_s *wsp;  /* owned: the WebSocket frame parser */
    int ws_ping_pending;         /* a ping went out and no pong came back yet */
    int req_ref;                 /* the request table, kept for hooks a WebSocket calls later */
    char ws_accept[29];          /* the handshake's accept key, until the 101 goes out */
    int ws_proto;                /* the client offered the freshet.v1 subprotocol */
    fr_item_t *held;             /* owned: live events (ev, topic) that arrived while joining */
    size_t nheld;

    fr_item_t *q;                /* owned ring of queued items */
    size_t q_cap, q_head, q_len; /* q_len counts dropped slots until they are passed */
    uint64_t q_seq;              /* seq of the next item pushed */
    size_t q_live;               /* events queued and still to be sent */
    size_t q_bytes;              /* bytes of the queued items */
    size_t live_by_prio[3];      /* queued events per fr_priority_t */
    const fr_tier_t *budget;     /* queue, bytes and lag bounds (borrowed from the config) */
    uint8_t *slow;               /* owned: fr_slow_t per topic */
    uint64_t *last_seq;          /* owned: per topic, seq of its newest queued event (0: none) */
    unsigned long dropped[3];    /* events dropped per priority, since the stream opened */
    unsigned long unreported;    /* drops the client has not been told about yet */
    size_t streak;               /* events dropped since the queue was last empty */
    const char *end_reason;      /* why the stream is ending (static string) */
    int writing;                 /* a write is in flight */
    int ending;                  /* no more items; close once the queue drains */
    int detached;                /* the connection is closing: deliver nothing */
    int away;                    /* the hub was told presence no longer counts this stream */

    uint64_t last_write_ms;      /* monotonic, last time something was queued */
    uint64_t drain_at;           /* ms into the drain window when this stream ends */
    struct fr_stream_s *idle_prev, *idle_next;
    struct fr_stream_s *pend_prev, *pend_next;
    int pending;
    unsigned long delivered, filtered, conflated;
    unsigned long sent, bytes, replayed;   /* events and bytes handed to the socket */
} fr_stream_t;

/* Handles a GET on a stream route: hooks, Last-Event-ID, headers, replay, subscribe. Answers
 * the error itself when the stream cannot start. params are consumed. */
void fr_stream_open(struct fr_conn_s *c, fr_vm_t *vm, const fr_route_t *route, int req_ref);

/* Stops deliveries (the connection is closing); fr_stream_free follows in the close callback. */
void fr_stream_detach(fr_stream_t *s);
void fr_stream_free(fr_stream_t *s);

/* Writes out streams with queued output, oldest mark first (called once per loop
 * iteration), for at most slice_ns; returns 1 when some are left for the next iteration. */
int fr_stream_flush_pending(struct fr_worker_s *w, uint64_t slice_ns);
/* Queues a heartbeat on every stream idle for the heartbeat interval. */
void fr_stream_heartbeat_due(struct fr_worker_s *w);
/* For transports: queues bytes (takes ownership) to go out in order with the events. */
void fr_stream_send(fr_stream_t *s, char *bytes, size_t len);
/* Ends a WebSocket stream with a close frame (code 0: empty close payload). */
void fr_stream_close_ws(fr_stream_t *s, uint16_t code, const char *reason, const char *why);
/* Replaces the stream's topics with the list on the top of L's stack (from the topics hook).
 * Returns NULL, or a message for the client. */
const char *fr_stream_set_topics(fr_stream_t *s, lua_State *L);
/* Replays from `ids` (a Last-Event-ID) on an open stream. Returns NULL, or a message. */
const char *fr_stream_resume_from(fr_stream_t *s, const char *ids);

/* A long-poll waited its whole timeout with nothing to send: answers 204. */
void fr_stream_poll_timeout(fr_stream_t *s);
/* Ends a stream cleanly: optional "retry: <ms>" (0 = none), then the end of the body. */
void fr_stream_end(fr_stream_t *s, uint64_t retry_ms);

#endif
