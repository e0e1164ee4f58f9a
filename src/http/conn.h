/* A client connection: reads and parses requests with llhttp, writes responses, and, once a
 * stream route accepts it, carries a stream. Never freed inside its own callbacks: closing
 * marks it and libuv's close callback frees it. */
#ifndef FR_CONN_H
#define FR_CONN_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "http/request.h"

struct fr_worker_s;
struct fr_stream_s;

typedef struct fr_conn_s {
    uv_tcp_t tcp;
    struct fr_worker_s *worker;  /* borrowed */
    llhttp_t *parser;            /* owned while the connection reads requests; a stream that
                                  * will read none (SSE, WebSocket) frees it */
    fr_request_t req;
    struct fr_stream_s *stream;  /* owned; set once the connection streams */
    char remote[48];             /* peer address, no port (INET6_ADDRSTRLEN fits) */
    int err_status;              /* set by a callback that rejects the request (413, 431) */
    int closing;
    int closed;                  /* libuv has closed the socket; memory waits for holds */
    unsigned holds;              /* pending broker replies that will come back to this */
    uint64_t id;                 /* for log lines: unique per worker */
    uint64_t opened_ms;          /* monotonic */
    const char *close_reason;    /* static string for the CLOSED log line */
    int close_after_write;       /* the response said Connection: close */
    unsigned pending_writes;
    char *held_input;            /* owned: bytes that arrived while a long-poll was held */
    size_t nheld_input;
    struct fr_conn_s *prev, *next; /* the worker's list of connections */
    /* Deadline lists: a request being read (headers must complete in time) or a keep-alive
     * connection waiting for its next request. Each list is ordered by `since`, so one timer
     * tick only looks at the heads. */
    int wait;                      /* FR_WAIT_NONE, FR_WAIT_READING or FR_WAIT_IDLE */
    uint64_t since;                /* monotonic ms when it entered that list */
    struct fr_conn_s *wprev, *wnext;
} fr_conn_t;

enum { FR_WAIT_NONE = 0, FR_WAIT_READING = 1, FR_WAIT_IDLE = 2, FR_WAIT_POLL = 3 };

/* Puts the connection on a deadline list (see fr_conn_t.wait). */
void fr_conn_wait(fr_conn_t *c, int list);

/* A long-poll has been answered: the connection goes back to reading requests (keep-alive) or
 * closes. Frees the stream. */
void fr_conn_end_poll(fr_conn_t *c);

/* Closes connections whose request or keep-alive idle time ran out (408 for the former). */
void fr_conn_expire(struct fr_worker_s *w);

/* Accepts a pending connection from the listener. */
void fr_conn_accept(struct fr_worker_s *w, uv_stream_t *listener);

/* Queues bytes on the socket; takes ownership of buf (freed when written). */
void fr_conn_write(fr_conn_t *c, char *buf, size_t len);

/* Sends a complete response (adds CORS headers for allowed origins). After it the connection
 * stays open for the next request when the client keeps it alive, else it closes. */
void fr_conn_respond(fr_conn_t *c, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len);
/* Sends {"error": msg} with the status. */
void fr_conn_respond_error(fr_conn_t *c, int status, const char *msg);

/* A broker reply will come back to this connection: keep its memory until fr_conn_release,
 * even if the socket closes meanwhile (then c->closing is set and the reply is dropped). */
void fr_conn_hold(fr_conn_t *c);
void fr_conn_release(fr_conn_t *c);

/* Closes now (pending writes are cancelled). Safe to call twice. */
void fr_conn_close(fr_conn_t *c);

/* "Access-Control-Allow-Origin: …\r\nVary: Origin\r\n" for an allowed Origin, else "". */
const char *fr_conn_cors_headers(fr_conn_t *c, char *buf, size_t len);

/* Builds the HTTP parser's callback table; called once before any worker thread starts. */
void fr_conn_init_parser(void);

#endif
