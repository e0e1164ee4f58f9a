/* Connections and what a worker's connections share: accepting, reading, writing, deadlines,
 * closing. A connection speaks a protocol (fr_proto_t: HTTP/1 in http/h1.c, HTTP/2 in
 * http/h2.c), which turns its bytes into exchanges (http/exchange.h) that the app answers:
 * HTTP/1 one at a time, HTTP/2 many at once, one per stream. A connection is never freed
 * inside its own callbacks: closing marks it, and libuv's close callback frees it.
 *
 *   accept ──► read ──proto->data──► exchange ──handle()──► the app answers it whole, or a
 *                                                           writer streams through its sink
 *
 * On an HTTPS listener TLS goes under the bytes (http/tls.h), and the protocol does not know:
 *
 *   accept ──► handshake ──ALPN──► c->proto chosen from conn.c's table
 *   read ──fr_tls_read──► proto->data        fr_conn_send / fr_conn_write ──fr_tls_write──►
 *                                            ciphertext ──► socket (what it leaves is queued)
 *
 * A TLS connection is allocated with its TLS state behind it (one allocation); a cleartext one
 * carries nothing for TLS but one bit. */
#ifndef FR_CONN_H
#define FR_CONN_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "base/hash.h"
#include "base/linefile.h"
#include "base/list.h"
#include "codec/http.h"
#include "core/config.h"
#include "core/metrics.h"
#include "http/exchange.h"
#include "http/h2_clients.h"
#include "http/tls.h"
#include "stream/sink.h"

typedef struct fr_conn_s fr_conn_t;
struct fr_proto_s;

/* A worker's connections and what they share. Owned by the worker, one per loop. */
typedef struct fr_http_s {
    uv_loop_t *loop;           /* borrowed */
    const fr_config_t *config; /* borrowed: limits, timeouts, CORS */
    fr_metrics_t *metrics;     /* borrowed */
    fr_linefile_t *access;     /* borrowed: the access log, or NULL (off) */
    /* Answers a complete request (the app's dispatch). */
    void (*handle)(void *ctx, fr_exchange_t *x);
    /* Counts a connection opened (+1) or closed (-1): descriptors are a process budget. */
    void (*count)(void *ctx, int delta);
    void *ctx;                 /* for handle and count */
    int stopping;              /* answers say Connection: close */
    uint64_t id_step, id_first; /* connection ids: id_first, +id_step, … (unique per process) */
    fr_tls_ctx_t *tls;         /* owned (fr_http_set_tls): new connections speak TLS; or NULL */
    /* Read-only to other modules. */
    fr_list_t conns;           /* every open connection (fr_conn_t.link) */
    size_t nconns;
    unsigned long requests;    /* read by other workers */
    /* Private. */
    uint64_t next_id;
    fr_list_t waits[3];        /* deadline lists by FR_WAIT_*, see fr_conn_t.wait */
    fr_buf_t tls_out;          /* ciphertext on its way to a socket: empty between calls */
    fr_buf_t h2_out;           /* HTTP/2 frames on their way to a connection: empty between
                                * calls */
    fr_list_t h2_dirty;        /* HTTP/2 connections with frames to send (fr_http_flush) */
    fr_h2_clients_t *h2_clients; /* borrowed: open HTTP/2 streams per client address; its
                                  * own below unless the owner points it at its process's */
    fr_h2_clients_t own_h2_clients; /* owned: for an fr_http_t that shares none */
    char read_buf[65536];      /* every read on this loop lands here and is parsed at once */
    char tls_plain[FR_TLS_RECORD]; /* what a TLS read decrypts, handed to the protocol */
} fr_http_t;

enum { FR_WAIT_NONE = 0, FR_WAIT_READING = 1, FR_WAIT_IDLE = 2 };

struct fr_conn_s {
    uv_tcp_t tcp;
    fr_http_t *http;           /* borrowed */
    const struct fr_proto_s *proto; /* what it speaks */
    /* The request being answered, as the app sees it: its request, the HTTP/1 sink
     * (http/h1.c), the connection's id (unique per process) and opening time. */
    fr_exchange_t x;
    /* Read-only to other modules. */
    char remote[48];           /* peer address, no port (INET6_ADDRSTRLEN fits) */
    const char *close_reason;  /* static string for the CLOSED log line, or NULL */
    unsigned closing : 1;
    /* Private. */
    unsigned closed : 1;            /* libuv has closed the socket; memory waits for holds */
    unsigned close_after_write : 1; /* the answer said Connection: close */
    unsigned streamed : 1;     /* a stream took the connection for good: it logs CLOSED */
    unsigned raw : 1;          /* after a 101: the writer gets what the client sends */
    unsigned parsing : 1;      /* inside llhttp_execute: the parser must stay */
    unsigned paused : 1;       /* a writer took the answer: what the client sends is held until
                                * the answer is out (fr_h1_next) */
    unsigned chunked : 1;      /* the current answer's body is chunked */
    unsigned wait : 2;         /* FR_WAIT_*: which deadline list it is on */
    unsigned tls : 1;          /* TLS state follows the struct (conn.c's tls_conn_t) */
    unsigned abortive : 1;     /* close with a reset, not a FIN (http/sockopt.c) */
    unsigned body_out : 1;     /* a whole answer's head is out, its body follows in pieces
                                * (a file): a client's EOF then waits for the last piece */
    unsigned answered : 1;     /* the request being handled has had its whole answer */
    uint16_t err_status;       /* set by a callback that rejects the request (413, 431) */
    const char *err_msg;       /* static: what that callback found, or NULL */
    unsigned holds;            /* pending broker replies that will come back to this */
    unsigned pending_writes;
    union {
        llhttp_t *parser;      /* HTTP/1: owned while the connection reads requests */
        struct fr_h2_s *h2;    /* HTTP/2: owned, the session and its streams (http/h2.c) */
    };
    char *held_input;          /* owned: bytes that arrived while an answer was pending */
    size_t nheld_input;
    fr_list_t link;            /* in fr_http_t.conns */
    /* Deadline lists: a request being read (headers must complete in time) or a keep-alive
     * connection waiting for its next request. Each list is ordered by `since`, so one timer
     * tick only looks at the heads. */
    uint64_t since;
    fr_list_t wait_link;
    /* Silent-drop detection (http/sockopt.c): when the peer was last known to acknowledge. */
    uint64_t acked_ms;
};

/* The protocol a connection speaks: HTTP/1 (http/h1.c) or HTTP/2 (http/h2.c); on TLS, what ALPN
 * chose from the table in conn.c, in cleartext HTTP/1 unless the client opens with HTTP/2's
 * preface on an h2c listener. */
typedef struct fr_proto_s {
    /* Starts it on a new connection. */
    void (*start)(fr_conn_t *c);
    /* Bytes the peer sent (borrowed for the call). */
    void (*data)(fr_conn_t *c, const char *bytes, size_t len);
    /* The request being read did not arrive within limits.headers' time. */
    void (*timeout)(fr_conn_t *c);
    /* The connection starts closing: its writers hear `gone`. */
    void (*closing)(fr_conn_t *c);
    /* libuv has closed it: writers hear `closed`; the protocol frees what it holds. Returns 1
     * when a writer logged the CLOSED line itself. */
    int (*closed)(fr_conn_t *c);
    /* The server drains: the connection takes no new requests and closes once its answers
     * are out (HTTP/2: GOAWAY). NULL: fr_http_close_idle closes it when it idles. */
    void (*drain)(fr_conn_t *c);
} fr_proto_t;

extern const fr_proto_t fr_h1_proto;
extern const fr_proto_t fr_h2_proto;

/* Builds the HTTP parser's callback table; called once before any worker thread starts. */
void fr_http_init_parser(void);
void fr_http_init(fr_http_t *http, uv_loop_t *loop, const fr_config_t *config,
                  fr_metrics_t *metrics);

/* Loads a certificate chain and key (PEM files) into a TLS context that offers, by ALPN, the
 * protocols of conn.c's table. NULL, with the file and the reason in err, when they cannot be
 * loaded. */
fr_tls_ctx_t *fr_http_tls_new(const char *cert, const char *key, char *err, size_t errlen);
/* New connections speak TLS with ctx (taken; NULL: cleartext). The context it replaces is
 * released: connections opened with it keep it until they close. */
void fr_http_set_tls(fr_http_t *http, fr_tls_ctx_t *ctx);

/* Frees what the worker's connections shared (after the last has closed). */
void fr_http_free(fr_http_t *http);

/* Accepts a pending connection from the listener. */
void fr_conn_accept(fr_http_t *http, uv_stream_t *listener);

/* Closes connections whose request or keep-alive idle time ran out (408 for the former). */
void fr_http_expire(fr_http_t *http);
/* Closes every connection (reason for the log lines). */
void fr_http_close_all(fr_http_t *http, const char *reason);
/* Stops accepting requests on idle keep-alive connections: they close now. */
void fr_http_close_idle(fr_http_t *http, const char *reason);

/* Closes now (pending writes are cancelled). Safe to call twice. */
void fr_conn_close(fr_conn_t *c);

/* Socket options and close modes (http/sockopt.c). */
/* Arms silent-drop detection on an accepted connection (keep-alive probes on a quiet one). */
void fr_sock_tune(fr_conn_t *c);
/* A read or write failed with err (< 0): a peer that stopped acknowledging is named and
 * counted, and its connection will be reset. */
void fr_sock_failed(fr_conn_t *c, int err);
/* Closes the worker's connections whose peer has acknowledged nothing for timeouts.ack while
 * bytes or probes were outstanding; called once per heartbeat tick. */
void fr_sock_sweep(fr_http_t *http);
/* Called as the connection closes: a reset (SO_LINGER 0) when the peer is dead or hostile or
 * bytes are still waiting to be handed to the socket, else a graceful FIN. */
void fr_sock_close_mode(fr_conn_t *c);

/* ---- for the protocols (http/h1.c) ---------------------------------------------------------- */

/* Puts the connection on a deadline list (FR_WAIT_*), or takes it off (FR_WAIT_NONE). */
void fr_conn_wait(fr_conn_t *c, int list);

/* Writes bytes as they are; takes ownership of buf (freed once written). */
void fr_conn_write(fr_conn_t *c, char *buf, size_t len);

/* Writes bufs[0..n) to the socket: FR_SINK_DONE when it took them all at once, FR_SINK_PENDING
 * when it holds part of them until done(ctx, status) — the caller keeps their bytes alive,
 * except bufs[0] when temp_first is set (a few bytes on the caller's stack, at most 24, e.g. a
 * chunk head: copied) — or < 0 when it cannot (the connection is closing or the write failed). */
int fr_conn_send(fr_conn_t *c, const uv_buf_t *bufs, size_t n, int temp_first,
                 fr_sink_done_cb done, void *ctx);
/* Writes len bytes that the caller keeps no longer: what the socket does not take at once is
 * copied and queued. FR_SINK_DONE, FR_SINK_PENDING (done(ctx, status) runs once the rest has
 * left or failed) or < 0. */
int fr_conn_send_copy(fr_conn_t *c, const char *bytes, size_t len, fr_sink_done_cb done,
                      void *ctx);
/* Best effort, for a connection that is closing: what the socket takes at once (a GOAWAY). */
void fr_conn_last_words(fr_conn_t *c, const char *bytes, size_t len);
/* Bytes handed to the socket that it has not taken yet. */
size_t fr_conn_queued(const fr_conn_t *c);
/* A new id, unique over the process, as connections get (an HTTP/2 stream's). */
uint64_t fr_http_next_id(fr_http_t *http);
/* Sends what HTTP/2 connections have ready (once per loop iteration, after the streams'
 * writes: their frames leave together). */
void fr_http_flush(fr_http_t *http);

/* An answer will come later: keep the connection's memory until release, even if the socket
 * closes meanwhile (then c->closing is set). */
void fr_conn_hold(fr_conn_t *c);
void fr_conn_release(fr_conn_t *c);

/* HTTP/1 (http/h1.c and h1_sink.c). */
void fr_h1_respond(fr_conn_t *c, int status, const char *content_type,
                   const char *extra_headers, const char *body, size_t body_len);
/* The request is answered and a keep-alive connection reads the next one. */
void fr_h1_next(fr_conn_t *c);
/* A streaming connection drops its parser and request (now, or once the parser returns). */
void fr_h1_shed(fr_conn_t *c);
/* The sink's callbacks. */
void fr_h1_sink_init(fr_conn_t *c);
/* The interim "100 Continue" for a client that waits for it before its body. */
void fr_h1_continue(fr_conn_t *c);
/* The response head of an answer: status line, Content-Type, extra headers, CORS, framing. */
size_t fr_h1_head(fr_conn_t *c, const fr_head_t *h, char *out, size_t cap);

#endif
