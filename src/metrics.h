/* Counters a worker keeps for GET /metrics (Prometheus text format). Gauges and histograms
 * that describe the present (connections, queue depths) are computed when scraped. */
#ifndef FR_METRICS_H
#define FR_METRICS_H

struct fr_worker_s;
struct fr_conn_s;

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
    unsigned long lua_errors;
    unsigned long lua_budget_stops; /* hooks stopped by the instruction budget */
    unsigned long lua_memory_stops; /* hooks stopped by the VM memory limit */
    unsigned long refused_fds;    /* new streams refused with 503 at 90% of descriptors */
    unsigned long timeouts;       /* requests answered 408 */
    unsigned long idle_closed;    /* keep-alive connections closed while idle */
    unsigned long connections;    /* accepted since start */
    unsigned long streams;        /* started since start */
} fr_metrics_t;

/* Answers GET /metrics on c. */
void fr_metrics_respond(struct fr_conn_s *c);

#endif
