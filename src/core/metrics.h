/* The counters a worker keeps: each layer bumps the ones it owns through a pointer it was
 * given, with FR_BUMP (a relaxed atomic store: other workers read them for /metrics). Gauges
 * that describe the present are computed when scraped (app/metrics.c). */
#ifndef FR_CORE_METRICS_H
#define FR_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned long published[3];   /* events published, by fr_priority_t */
    unsigned long delivered;      /* events written to streams */
    unsigned long dropped[3];     /* deliveries dropped by slow streams, by priority */
    unsigned long conflated;      /* deliveries superseded by a newer event of the topic */
    unsigned long evicted_lag, evicted_drop, evicted_slow; /* streams ended for lagging */
    unsigned long replayed;       /* events sent from replay rings on resume */
    unsigned long resumes;        /* streams that arrived with a Last-Event-ID */
    unsigned long resume_stale;   /* answered 416 */
    unsigned long resume_reset;   /* answered with a reset event */
    unsigned long resume_invalid; /* answered 400 */
    unsigned long bytes_written;  /* stream bytes handed to the socket */
    unsigned long heartbeats;
    /* The Redis broker (each worker is a node of its own). The last two are gauges kept as
     * 0 or 1 by their worker, so their sum is the number of workers in that state. */
    unsigned long redis_failovers;      /* connections dropped: the primary moved or stopped
                                         * being one (Sentinel, READONLY, LOADING, ROLE) */
    unsigned long redis_probe_failures; /* subscriber probes that did not come back */
    unsigned long redis_sub_losses;     /* subscriber connections lost after being ready */
    unsigned long redis_unconfirmed;    /* publishes stored but not on ?replicas=N in time */
    unsigned long redis_primary_up;     /* gauge: the command connection is ready */
    unsigned long redis_sub_live;       /* gauge: the subscriber is ready and subscribed to
                                         * its probe channel */
    unsigned long lua_errors;
    unsigned long lua_budget_stops; /* hooks stopped by the instruction budget */
    unsigned long lua_memory_stops; /* hooks stopped by the VM memory limit */
    unsigned long refused_fds;    /* new streams refused at the stream guard's capacity */
    unsigned long refused_in_band; /* stream refusals answered 200 + freshet-refused (an
                                    * EventSource's form) */
    unsigned long accept_pauses;  /* times accepting stopped near the descriptor limit */
    unsigned long timeouts;       /* requests answered 408 */
    unsigned long idle_closed;    /* keep-alive connections closed while idle */
    unsigned long tls_handshakes; /* TLS handshakes completed */
    unsigned long tls_failures;   /* TLS handshakes that failed or did not finish in time */
    unsigned long h2_connections; /* connections that spoke HTTP/2 */
    unsigned long h2_streams;     /* HTTP/2 streams (requests) opened */
    unsigned long h2_resets;      /* HTTP/2 streams the client reset (RST_STREAM) */
    unsigned long h2_refused;     /* HTTP/2 streams refused: the client had its total open */
    unsigned long h2_abuse;       /* HTTP/2 connections sent away for floods or huge headers */
    unsigned long ack_timeouts;   /* connections whose peer stopped acknowledging (timeouts.ack) */
    unsigned long resets;         /* connections closed abortively (RST, SO_LINGER 0) */
    unsigned long connections;    /* accepted since start */
    unsigned long streams;        /* started since start */
} fr_metrics_t;

/* Sums over every worker of the process, for /metrics, /health and freshet.metrics(). Counters
 * of other workers are read while they run, word by word: a figure may lag by a few
 * increments. */
typedef struct {
    fr_metrics_t m;
    size_t nconns, nstreams, ntopics;
    uint64_t published;
    unsigned long requests, reloads, reload_failures;
} fr_totals_t;

#endif
