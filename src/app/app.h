/* The app: what a worker does with a complete request. Routes are matched in the order the
 * app file declared them; stream routes open a stream (app/open.c), publish routes publish
 * (app/publish.c), http routes answer from their script (app/http_route.c), static routes serve files (app/static.c); /health and /metrics describe the
 * whole process and are answered by the server layer through `host`.
 *
 * fr_app_t is owned by the worker, which keeps `vm` current across reloads. */
#ifndef FR_APP_H
#define FR_APP_H

#include "broker/broker.h"
#include "core/config.h"
#include "core/counts.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "http/conn.h"
#include "http/exchange.h"
#include "lua/vm.h"
#include "stream/stream.h"

/* Descriptors as the stream guard sees them, over every worker of the process. */
typedef struct {
    size_t limit;    /* the soft RLIMIT_NOFILE */
    size_t in_use;   /* open at start plus one per connection */
    size_t streams;  /* streams joined, plus opens past the guard that have not joined yet */
    size_t capacity; /* streams admitted at most: streams_at of the limit, less what was open at
                      * start */
} fr_fds_view_t;

/* What only the server layer can answer: views over every worker of the process. */
typedef struct {
    void (*health)(void *ctx, fr_exchange_t *x);
    void (*metrics)(void *ctx, fr_exchange_t *x);
    /* GET /readyz: 200 when this process takes new clients, 503 while it drains or while its
     * broker cannot accept publishes. */
    void (*ready)(void *ctx, fr_exchange_t *x);
    void (*fds)(void *ctx, fr_fds_view_t *out);
} fr_app_host_t;

/* Why a stream request is refused for now: each has a name (the answer's "reason"), and the
 * refusal log counts them. */
typedef enum {
    FR_REFUSAL_FDS,     /* "fd_limit": the stream guard is at capacity (503) */
    FR_REFUSAL_RATE,    /* "rate_limit": the tier's bucket of new streams is empty (429) */
    FR_REFUSAL_BROKER,  /* "broker_unavailable": the join failed (503) */
    FR_REFUSAL_DRAIN,   /* "shutting_down" (503) */
    FR_REFUSAL_TIMEOUT, /* "hook_timeout": a hook did not answer in time (504) */
    FR_REFUSAL_ROUTE,   /* "route": the auth hook answered 429 or 503 */
    FR_REFUSAL_COUNT
} fr_refusal_t;

/* Filled by the worker (which swaps vm on reload); read-only to the app layer. */
typedef struct fr_app_s {
    /* The process answers /health, /readyz and /metrics on an admin listener of its own
     * (`admin`): this listener answers them with 404. */
    int builtins_elsewhere;
    fr_vm_t *vm;                  /* borrowed: the worker's current VM */
    const fr_config_t *config;    /* borrowed */
    fr_http_t *http;              /* borrowed */
    fr_streams_t *streams;        /* borrowed */
    fr_broker_t *broker;          /* borrowed */
    fr_ratelimit_t *limits;       /* borrowed */
    fr_metrics_t *metrics;        /* borrowed */
    unsigned long *tier_rejected; /* borrowed: 429s per tier, indexed like config->tiers */
    fr_counts_t *deprecated;      /* borrowed: requests per deprecated route */
    const fr_app_host_t *host;
    void *host_ctx;
    /* Owned by the app layer. */
    size_t opening;               /* opens past the stream guard, not joined yet (read by
                                   * other workers: relaxed atomics) */
    unsigned long unlogged[FR_REFUSAL_COUNT]; /* refusals since the last refusal log line */
    uint64_t refusals_logged_ms;  /* monotonic, when that line was written */
} fr_app_t;

/* The HTTP layer's handler (fr_http_t.handle): answers, or starts answering, a request. */
void fr_app_handle(void *ctx, fr_exchange_t *x);

/* A stream route: runs the open stages (app/open.c). Takes req_ref. */
void fr_app_open(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref);
/* A publish route (app/publish.c). Takes req_ref. */
void fr_app_publish(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref);
/* An http route (app/http_route.c): auth, tier, then handle(req, body, who) answers. Takes
 * req_ref. */
void fr_app_http(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref);
/* A file under a static route's directory (app/static.c). */
void fr_app_static(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, const char *path,
                   size_t path_len);

/* /health, /readyz and /metrics (path without its query): answers through host and returns 1,
 * or returns 0 for any other path. 405 for a method other than GET and HEAD. */
int fr_app_answer_probe(const fr_app_host_t *host, void *ctx, fr_exchange_t *x,
                        const char *path, size_t len);

/* Answers 429 with Retry-After. */
void fr_app_too_many(fr_exchange_t *x, unsigned retry_after, const char *what);

/* Refuses a stream request for now (app/refuse.c): the one place such answers are made.
 * in_band (the request looks like a browser's EventSource, which gives up for good on any
 * status but 200): 200, `retry:` with a jittered delay, an `event: freshet-refused` naming the
 * reason, and the end of the stream, so the browser comes back by itself. Otherwise: the
 * status, {"error": msg} and Retry-After (when retry_after_s > 0). Counted and logged (at most
 * one line a second, with counts). */
void fr_app_refuse_stream(fr_app_t *app, fr_exchange_t *x, int in_band, fr_refusal_t why,
                          int status, unsigned retry_after_s, const char *msg);
/* Writes the refusal log line when refusals wait for one and a second has passed. */
void fr_app_refusals_flush(fr_app_t *app);
/* Counts a 429 of `tier` (NULL: none). */
void fr_app_count_limited(fr_app_t *app, const fr_tier_t *tier);

#endif
