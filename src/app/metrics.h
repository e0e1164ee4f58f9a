/* Counters a worker keeps for GET /metrics (Prometheus text format). Gauges and histograms
 * that describe the present (connections, queue depths) are computed when scraped. */
#ifndef FR_METRICS_H
#define FR_METRICS_H

#include <stddef.h>

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

/* A worker's connections by (route, state) and its streams' queue histograms. With several
 * workers each refreshes its census under its own lock once per heartbeat tick, and /metrics
 * merges the others' with a live one of its own: another worker's connection list is never
 * walked from this thread. Route patterns are copied, since a reload frees the old ones. */
#define FR_CENSUS_GROUPS 64u
#define FR_CENSUS_BOUNDS 8u
typedef struct {
    char route[96];
    const char *state; /* static string */
    unsigned long n;
} fr_census_group_t;

typedef struct {
    unsigned long counts[FR_CENSUS_BOUNDS];
    unsigned long total;
    double sum;
} fr_census_hist_t;

typedef struct {
    fr_census_group_t groups[FR_CENSUS_GROUPS];
    size_t ngroups;
    fr_census_hist_t depth, lag;
} fr_census_t;

/* Counts the worker's own connections (its thread only). */
void fr_metrics_census(struct fr_worker_s *w, fr_census_t *out);
/* Refreshes w->census for other workers to read (its thread only). */
void fr_metrics_share_census(struct fr_worker_s *w);

/* Answers GET /metrics on c. */
void fr_metrics_respond(struct fr_conn_s *c);

#endif
