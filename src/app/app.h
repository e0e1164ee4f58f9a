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

/* What only the server layer can answer: views over every worker of the process. */
typedef struct {
    void (*health)(void *ctx, fr_exchange_t *x);
    void (*metrics)(void *ctx, fr_exchange_t *x);
    /* 1 once descriptors are so scarce that new streams are refused. */
    int (*fds_full)(void *ctx);
} fr_app_host_t;

/* Filled by the worker (which swaps vm on reload); read-only to the app layer. */
typedef struct fr_app_s {
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

/* Answers 429 with Retry-After. */
void fr_app_too_many(fr_exchange_t *x, unsigned retry_after, const char *what);
/* Counts a 429 of `tier` (NULL: none). */
void fr_app_count_limited(fr_app_t *app, const fr_tier_t *tier);

#endif
