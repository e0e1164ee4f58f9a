/* The publisher: --pub-conns HTTP/1.1 keep-alive connections posting to <pub-path><prefix>K,
 * topics round-robin, up to --pipeline requests in flight on each (over TLS with --tls: a
 * handshake first, and each request leaves as records from its slot).
 *
 * With a rate, event g is due at origin + g / rate on a fixed timetable and carries that time
 * in its payload; when the server answers slowly the publisher sends late, and the latency of
 * the late events shows it (the clock started when they were due, not when they left). With
 * rate 0 each event carries the time it was sent and the pipelines are kept full.
 *
 * The wake-up for the next due event is a timerfd on CLOCK_REALTIME: libuv's timers count
 * whole milliseconds, and up to a millisecond of the publisher's own lateness would otherwise
 * be charged to the server on every event.
 *
 * Event g goes to topic g % topics. With one connection its sequence number is g / topics, so
 * the topic's sequence numbers are contiguous and a subscriber can compute how many events it
 * should see. With several, a due event goes to the next connection in turn that has a free
 * slot, and is numbered within its topic and that connection: a server may store two
 * connections' publishes in either order, but each connection's in the order it sent them
 * (HTTP/1.1 answers a connection's requests in order), so that is the order a subscriber can
 * check. The payload then also carries the connection and g (payload.h). */
#ifndef FR_PUB_H
#define FR_PUB_H

#include <stdint.h>
#include <uv.h>

#include "bench.h"
#include "hist.h"

typedef struct fr_pub_s fr_pub_t;
typedef void (*fr_pub_cb)(fr_pub_t *pub);

typedef struct fr_pub_slot_s {
    uv_write_t req;
    char *buf;       /* the request: head and body (owned) */
    uint64_t sent;   /* monotonic ns when it was written, for the acknowledgement time */
    uint8_t writing; /* the write has not completed */
    uint8_t waiting; /* the answer has not arrived */
    char *cbuf;      /* --tls: the request's records (owned), what the write sends */
    size_t ccap;
} fr_pub_slot_t;

/* One keep-alive connection and its pipeline. */
typedef struct fr_pub_conn_s {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct fr_pub_s *pub;
    struct ssl_st *ssl;   /* --tls: the connection's client (tls.h) */
    fr_pub_slot_t *slots; /* --pipeline of them; request i uses slot i % pipeline */
    uint64_t *seq;        /* --pub-conns above 1: the next sequence number of each topic */
    uint64_t sent;        /* requests written on this connection */
    uint64_t answered;    /* answers received on it */
    uint32_t index;
    uint8_t tls_up; /* the handshake is done */
    uint8_t connected;
    uint8_t failed;
    uint8_t queued; /* in the publisher's queue of connections that can take a request */
    /* answer parser */
    uint8_t rstate;
    uint16_t rstatus;
    uint32_t rllen;
    uint64_t rbody; /* body bytes still to skip */
    char rline[64];
} fr_pub_conn_t;

struct fr_pub_s {
    /* read-only for the owner */
    uint64_t next;       /* events issued so far (the next event's global index) */
    uint64_t g0;         /* index of the first event published after warmup */
    uint64_t answered;   /* answers received, on every connection */
    uint64_t ok;         /* 2xx answers */
    uint64_t errors;     /* other answers; a lost connection and the requests lost with it */
    uint64_t lag_now;    /* how far the publisher is behind its timetable now, ns */
    uint64_t lag_max;    /* the most it was behind, ns */
    uint64_t measure_rt; /* realtime ns when measurement starts (warmup over) */
    uint64_t end_rt;     /* realtime ns when publishing stops */
    int done;            /* no more events will be sent */
    fr_hist_t ack;       /* request written until its answer arrived */
    char first_error[96];
    void *data; /* the owner's */

    /* private */
    uv_loop_t *_loop;
    const fr_opts_t *_opts;
    fr_pub_conn_t *_conns;
    uint32_t _nconns;
    uint32_t *_ready; /* owned: ring of connection indices that may take a request, oldest first */
    uint32_t _ready_head, _ready_len;
    uint32_t _nup;   /* connections up */
    uv_poll_t _tick; /* readable when the timerfd below expires */
    int _timerfd;    /* CLOCK_REALTIME timer armed for the next due event, ns precise */
    uint64_t _armed; /* what the timer is armed for (0: nothing), so re-arming for the same
                      * time costs no system call */
    uint32_t _nslots; /* per connection */
    size_t _bufcap;
    uint64_t _origin_rt; /* event g is due at _origin_rt + g * _period */
    double _period;      /* ns between events; 0 = as fast as possible */
    int _connected;
    int _failed;
    int _open; /* handles not yet closed */
    fr_pub_cb _on_connect;
    fr_pub_cb _on_done;
    fr_pub_cb _on_closed;
    char _rbuf[16384]; /* reads are handled one at a time, whichever connection */
    char _tbuf[16384]; /* --tls: what a record decrypts to */
};

void fr_pub_init(fr_pub_t *pub, uv_loop_t *loop, const fr_opts_t *opts);
/* Opens the keep-alive connections; `cb` runs once, when all are up or one failed (then
 * pub->first_error says why and pub->done is set), before this returns if a connect cannot even
 * start. */
void fr_pub_connect(fr_pub_t *pub, fr_pub_cb cb);
/* Starts the timetable now: warmup, then --duration measured. `on_done` runs once no more
 * events will be sent; answers may still be in flight (fr_pub_inflight). */
void fr_pub_start(fr_pub_t *pub, fr_pub_cb on_done);
uint64_t fr_pub_inflight(const fr_pub_t *pub);
/* Events the timetable held until now (or until the end, if earlier) that were never sent:
 * how far behind a slow server left the publisher. 0 without a rate. */
uint64_t fr_pub_unsent(const fr_pub_t *pub);
void fr_pub_close(fr_pub_t *pub, fr_pub_cb on_closed);

#endif
