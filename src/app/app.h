/* The app: what a worker does with a complete request. Routes are matched in the order the
 * app file declared them; stream routes open a stream (app/open.c), publish routes publish
 * (app/publish.c), static routes serve files (app/static.c); /health and /metrics describe the
 * whole process and are answered by the server layer through `host`.
 *
 * fr_app_t is owned by the worker, which keeps `vm` current across reloads. */
#ifndef FR_APP_H
#define FR_APP_H

#include "broker/broker.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "http/conn.h"
#include "http/exchange.h"
#include "lua/vm.h"
#include "stream/stream.h"

/* What only the server layer can answer: views over every worker of the process. */
typedef struct {
    void (*health)(void *ctx, fr_exchange_t *x);
    void (*metrics)(void *ctx, fr_exchange_t *x);
    /* GET /readyz: 200 when this process takes new clients, 503 while it drains or while its
     * broker cannot accept publishes. */
    void (*ready)(void *ctx, fr_exchange_t *x);
    /* 1 once descriptors are so scarce that new streams are refused. */
    int (*fds_full)(void *ctx);
} fr_app_host_t;

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
    const fr_app_host_t *host;
    void *host_ctx;
} fr_app_t;

/* The HTTP layer's handler (fr_http_t.handle): answers, or starts answering, a request. */
void fr_app_handle(void *ctx, fr_exchange_t *x);

/* A stream route: runs the open stages (app/open.c). Takes req_ref. */
void fr_app_open(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref);
/* A publish route (app/publish.c). Takes req_ref. */
void fr_app_publish(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref);
/* A file under a static route's directory (app/static.c). */
void fr_app_static(fr_exchange_t *x, const fr_route_t *route, const char *path, size_t path_len);

/* /health, /readyz and /metrics (path without its query): answers through host and returns 1,
 * or returns 0 for any other path. 405 for a method other than GET and HEAD. */
int fr_app_answer_probe(const fr_app_host_t *host, void *ctx, fr_exchange_t *x,
                        const char *path, size_t len);

/* Answers 429 with Retry-After. */
void fr_app_too_many(fr_exchange_t *x, unsigned retry_after, const char *what);
/* Counts a 429 of `tier` (NULL: none). */
void fr_app_count_limited(fr_app_t *app, const fr_tier_t *tier);

#endif
