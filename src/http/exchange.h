/* An exchange: one request and its answer, whatever carries them. An HTTP/1 connection carries
 * one exchange at a time; an HTTP/2 connection carries many at once, one per stream. The app
 * layer sees only exchanges: the request as parsed, a way to answer it whole, and a sink for
 * an answer that streams.
 *
 *   carrier (http/conn.c + h1.c, later h2) ──fills──► fr_exchange_t ──► app: answer whole
 *                                                            │             (respond), or
 *                                                            └─ sink ───► stream through it
 *
 * The carrier owns the exchange (an HTTP/1 connection embeds its one) and the request in it;
 * the app borrows them for the handler's call, and longer with hold (an answer that waits
 * for the broker). */
#ifndef FR_EXCHANGE_H
#define FR_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "codec/http.h"
#include "stream/sink.h"

typedef struct fr_exchange_s fr_exchange_t;

typedef struct {
    /* Answers whole: status, Content-Type (or NULL), more header lines (or NULL), body. */
    void (*respond)(fr_exchange_t *x, int status, const char *content_type,
                    const char *headers, const char *body, size_t len);
    /* The answer will come later: keep the exchange's memory until release, even if the
     * client leaves meanwhile (then `gone` is set and the answer is dropped). */
    void (*hold)(fr_exchange_t *x);
    void (*release)(fr_exchange_t *x);
} fr_exchange_ops_t;

struct fr_exchange_s {
    const fr_exchange_ops_t *ops;
    /* Read-only to the app. */
    fr_request_t req;    /* filled by the carrier as the request is parsed */
    fr_sink_t sink;      /* where a streamed answer goes: the carrier's implementation */
    const char *remote;  /* borrowed: the peer address, no port */
    uint64_t id;         /* for log lines: the connection's id */
    uint64_t opened_ms;  /* monotonic, when the connection opened */
    /* Set by the app for the request it answers: header lines every answer to it carries (a
     * deprecated route's Deprecation, Sunset, Link), borrowed from the route, or NULL. */
    const char *route_headers;
    uint64_t started_us; /* monotonic, when the request's first byte came (the access log) */
    unsigned gone : 1;   /* the client left: answer nobody */
    /* Set by the app: after this answer the client should open a new connection (HTTP/1:
     * Connection: close; HTTP/2 has nothing to close). */
    unsigned last : 1;
};

static inline void fr_exchange_respond(fr_exchange_t *x, int status, const char *content_type,
                                       const char *headers, const char *body, size_t len) {
    x->ops->respond(x, status, content_type, headers, body, len);
}

/* Answers {"error": msg} with the status. */
void fr_exchange_respond_error(fr_exchange_t *x, int status, const char *msg);

#endif
