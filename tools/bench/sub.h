/* A group of subscriber connections driven by one libuv loop: connect (paced, from spread
 * source addresses), read the SSE stream or, with --ws, the WebSocket, check every delivery's
 * order and measure its latency. A process runs one group; with --procs each child runs one
 * share.
 *
 * Nothing is allocated per event: a read lands in the group's one read buffer (reads are
 * handled one at a time), the connection's reader keeps the parsing state (embedded for SSE;
 * with --ws in an array the group allocates once), and latencies go into the group's
 * histogram.
 *
 * --storm: fr_subs_storm() closes every streaming connection at once and reopens it, paced by
 * --connect-burst like the first connects, with the id of the last event it received as
 * Last-Event-ID (over WebSocket, as ?lastEventId= on the URL). Order checking goes on across
 * the reconnect (the stream keeps the sequence number it expects next), so whatever the resume
 * lost or repeated shows as gaps or duplicates:
 *
 *   STREAMING --drop--> CLOSING --closed--> REDIAL --its turn--> CONNECTING --first frame-->
 *   STREAMING (live again: storm_live, time into the storm histogram)
 *
 * A stream starts (its connect time stops, a storm reconnect is live again) at the SSE
 * stream's first frame, or at a WebSocket's 101 answer with the right Sec-WebSocket-Accept.
 * With --tls the handshake comes first, so connect times include it. */
#ifndef FR_SUB_H
#define FR_SUB_H

#include <stdint.h>
#include <uv.h>

#include "bench.h"
#include "hist.h"
#include "sse_reader.h"
#include "ws_reader.h"

typedef struct fr_subs_s fr_subs_t;
typedef void (*fr_subs_cb)(fr_subs_t *subs);

typedef struct fr_sub_s {
    uv_tcp_t tcp;
    uv_connect_t connect;
    fr_subs_t *group;
    struct ssl_st *ssl; /* --tls: the connection's client (tls.h); NULL before it connects */
    uint64_t started;  /* monotonic ns when the connect began */
    uint64_t *next_seq; /* the sequence number this stream expects next on its topic, one per
                           publishing connection (in the group's _seqs) */
    uint32_t topic;    /* topic index */
    uint8_t state;     /* SUB_* in sub.c */
    uint8_t was_ready; /* the stream started, so it counts towards `expected` */
    uint8_t dropping;  /* closed by the storm: reconnect once the close completes */
    uint8_t resumed;   /* reconnected by the storm: figures go to the storm_* counters too */
    uint8_t caught_up; /* resumed, and the first event published after the drop arrived */
    uint8_t idlen;     /* bytes in last_id; 0 = no id yet */
    uint8_t tls_up;    /* --tls: the handshake is done and the request went out */
    char last_id[FR_SSE_ID_MAX]; /* id of the last event received, sent as Last-Event-ID */
    fr_sse_reader_t reader;      /* SSE only: a WebSocket's reader is in the group's _ws */
} fr_sub_t;

struct fr_subs_s {
    /* read-only for the owner */
    fr_counters_t c;   /* the owner may reset c.interval_lat_max after reading it */
    fr_hist_t latency; /* measured deliveries: receive time - scheduled time */
    fr_hist_t connect; /* connect start until the stream's first frame */
    fr_hist_t storm;   /* --storm: the drop until the stream's first frame after it */
    int connect_over;  /* every stream is ready or has failed (or the phase timed out) */
    void *data;        /* the owner's */

    /* private */
    uv_loop_t *_loop;
    const fr_opts_t *_opts;
    fr_sub_t *_subs;
    fr_ws_reader_t *_ws; /* --ws: the reader of _subs[i] is _ws[i]; NULL for SSE, whose readers
                            are embedded (and smaller) */
    uint64_t *_seqs;     /* every stream's next_seq: --pub-conns entries each */
    uint32_t _first;     /* global index of _subs[0]: decides topic and source address */
    uint32_t _count;
    uint32_t _next;       /* next local index to connect */
    uint32_t _connecting; /* connects started and not yet ready or failed */
    uint32_t _settled;    /* ready or failed */
    uint32_t _open;       /* handles (connections and timers) not yet closed */
    int _in_start;        /* inside start_more: failures must not recurse into it */
    int _closing;
    uv_timer_t _phase_timer; /* ends the connect phase after --connect-timeout */
    uv_timer_t _notify;      /* reports the end of the connect phase from a fresh stack */
    uint64_t _now_rt;        /* realtime at the current read, shared by all its events */
    uint64_t _storm_at;      /* monotonic ns of the drop; 0 = no storm yet */
    uint64_t _storm_g;       /* events published before the drop (global count) */
    uint32_t _redial_next;   /* next local index the storm may reconnect */
    uint64_t _rng;           /* xorshift state: WebSocket keys and masks */
    fr_subs_cb _on_connected;
    fr_subs_cb _on_closed;
    char _rbuf[65536];
    char _tbuf[16384]; /* --tls: what a record decrypts to */
};

/* Prepares `count` subscribers with global indices first .. first+count-1 (subscriber j reads
 * topic j % topics and binds source address j % sources). `opts` is borrowed for the group's
 * lifetime. */
void fr_subs_init(fr_subs_t *g, uv_loop_t *loop, const fr_opts_t *opts, uint32_t first,
                  uint32_t count);

/* Starts connecting, at most --connect-burst at a time. `on_connected` is called once, from the
 * loop, when every stream is ready or has failed, or when --connect-timeout passed (streams
 * still connecting are then closed and count as failed). */
void fr_subs_start(fr_subs_t *g, fr_subs_cb on_connected);

/* The publisher sent events [g0, g1) after warmup, round-robin over the topics: adds to
 * c.expected what each stream that became ready should receive. */
void fr_subs_set_window(fr_subs_t *g, uint64_t g0, uint64_t g1);

/* --storm: closes every streaming connection now and reconnects each with Last-Event-ID, at
 * most --connect-burst at a time. `g_drop` events had been published when the drop was
 * decided: a resumed stream has caught up once it receives the first event after those. */
void fr_subs_storm(fr_subs_t *g, uint64_t g_drop);

/* Closes every connection and timer (a WebSocket sends a close frame, 1000, first); `on_closed`
 * is called when the last handle is closed. */
void fr_subs_close(fr_subs_t *g, fr_subs_cb on_closed);

#endif
