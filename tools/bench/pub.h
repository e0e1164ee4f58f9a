/* The publisher: one HTTP/1.1 keep-alive connection posting to <pub-path><prefix>K, topics
 * round-robin, up to --pipeline requests in flight (over TLS with --tls: a handshake first,
 * and each request leaves as records from its slot).
 *
 * With a rate, event g is due at origin + g / rate on a fixed timetable and carries that time
 * in its payload; when the server answers slowly the publisher sends late, and the latency of
 * the late events shows it (the clock started when they were due, not when they left). With
 * rate 0 each event carries the time it was sent and the pipeline is kept full.
 *
 * The wake-up for the next due event is a timerfd on CLOCK_REALTIME: libuv's timers count
 * whole milliseconds, and up to a millisecond of the publisher's own lateness would otherwise
 * be charged to the server on every event.
 *
 * Event g goes to topic g % topics with sequence number g / topics, so the topic's sequence
 * numbers are contiguous and a subscriber can compute how many events it should see. */
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

struct fr_pub_s {
    /* read-only for the owner */
    uint64_t next;       /* events issued so far (the next event's global index) */
    uint64_t g0;         /* index of the first event published after warmup */
    uint64_t answered;   /* answers received */
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
    uv_tcp_t _tcp;
    uv_connect_t _connect;
    struct ssl_st *_ssl; /* --tls: the connection's client (tls.h) */
    int _tls_up;         /* the handshake is done */
    uv_poll_t _tick; /* readable when the timerfd below expires */
    int _timerfd;    /* CLOCK_REALTIME timer armed for the next due event, ns precise */
    fr_pub_slot_t *_slots;
    uint32_t _nslots;
    size_t _bufcap;
    uint64_t _origin_rt; /* event g is due at _origin_rt + g * _period */
    double _period;      /* ns between events; 0 = as fast as possible */
    int _connected;
    int _failed;
    int _open; /* handles not yet closed */
    fr_pub_cb _on_connect;
    fr_pub_cb _on_done;
    fr_pub_cb _on_closed;
    /* answer parser */
    uint8_t _rstate;
    uint16_t _rstatus;
    uint64_t _rbody; /* body bytes still to skip */
    uint32_t _rllen;
    char _rline[64];
    char _rbuf[16384];
    char _tbuf[16384]; /* --tls: what a record decrypts to */
};

void fr_pub_init(fr_pub_t *pub, uv_loop_t *loop, const fr_opts_t *opts);
/* Opens the keep-alive connection; `cb` runs when it is up or failed (then pub->first_error
 * says why and pub->done is set), before this returns if the connect cannot even start. */
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
