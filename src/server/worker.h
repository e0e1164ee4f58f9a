/* Workers and the process they run in.
 *
 * A worker is one thread with one libuv loop, one Lua VM, its own SO_REUSEPORT listener and
 * every connection the kernel hands that listener. `workers = N` (or "auto": one per core)
 * runs N of them; what must be one for the whole process lives in fr_process_t:
 *
 *   fr_process_t ── hub (memory broker: ids, replay rings, a slot per worker)
 *                ├─ limits (rate-limit buckets of every client)
 *                ├─ nconns (descriptors in use, for the 90% rule)
 *                └─ workers[0..N-1] ── loop, vm, listener, conns, streams, metrics
 *
 * Worker 0 runs on the main thread; the others on threads of their own. freshet.shared is
 * process-wide already (shared_dict.c). With the Redis broker every worker is a node of its
 * own (own hub, own Redis connections), which is what Redis is for. */
#ifndef FR_SERVER_H
#define FR_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/hub.h"
#include "app/metrics.h"
#include "core/ratelimit.h"
#include "lua/vm.h"

struct fr_conn_s;
struct fr_stream_s;

struct fr_process_s;

typedef struct fr_worker_s {
    uv_loop_t *loop;          /* borrowed (loop_storage, or the caller's) */
    uv_loop_t loop_storage;
    struct fr_process_s *proc; /* borrowed; NULL for a worker outside fr_server_run */
    unsigned slot;            /* index among the process's workers */
    unsigned hub_slot;        /* its slot in hub: slot (memory), 0 (its own one-slot hub) */
    uv_thread_t thread;
    uv_async_t wake;          /* another worker queued events for this one */
    fr_config_t *config;      /* borrowed from the first VM's settings copy below */
    fr_config_t start_config; /* owned: settings in force since start (listen, replay, …) */
    fr_vm_t *vm;              /* current VM, one reference */
    fr_hub_t *hub;            /* the process's (memory broker) or own_hub (Redis) */
    fr_hub_t own_hub;
    fr_ratelimit_t *limits;   /* token buckets of every client: the process's, or own_limits */
    fr_ratelimit_t own_limits;
    struct fr_redis_s *redis; /* the Redis broker, or NULL for the in-memory one */
    int broker_remote;        /* the app asked for Redis (redis may be gone while stopping) */
    char *app_path;           /* owned */

    uv_tcp_t listener;
    uv_timer_t heartbeat_timer; /* one timer for every stream's heartbeat */
    uv_timer_t sweep_timer;     /* replay window expiry */
    uv_prepare_t flush;         /* writes out what this iteration queued, once per stream */
    uv_signal_t sig_hup, sig_term, sig_int;

    struct fr_conn_s *conns;  /* every open connection (intrusive list) */
    size_t nconns;
    struct fr_conn_s *wait_head[4], *wait_tail[4]; /* deadline lists, see conn.h */
    size_t fd_base;           /* descriptors open before the first connection */
    size_t fd_limit;          /* the soft RLIMIT_NOFILE in force */
    int fd_warned;            /* the 80% warning was logged and use has not dropped since */
    uint64_t accept_error_logged_ms;
    size_t nstreams;
    /* Streams ordered by last write, oldest first: a heartbeat tick only visits those due. */
    struct fr_stream_s *idle_head, *idle_tail;
    /* Streams with queued output not yet handed to libuv, oldest mark first. */
    struct fr_stream_s *pending_head, *pending_tail;
    uv_idle_t more;           /* keeps the loop from sleeping while pending streams remain */
    uv_timer_t drain_timer;
    uint64_t drain_started;

    char retry_frame[48];     /* "retry: <ms>\n\n" */
    size_t retry_frame_len;
    uint64_t started_ms;      /* monotonic */
    char read_buf[65536];     /* every read on this loop lands here and is parsed at once */
    int ready;                /* worker_setup completed: every handle is open */
    int stopping;
    int delivering;           /* a filter hook is running (no publishing from there) */
    int exit_code;

    unsigned long requests, reloads, reload_failures;
    fr_metrics_t metrics;
    pthread_mutex_t census_mu; /* guards census */
    fr_census_t census;       /* this worker's connections for other workers' /metrics */
    unsigned long *tier_rejected; /* owned: 429s per tier, indexed like config->tiers */
    uint64_t next_conn_id;
} fr_worker_t;

typedef struct fr_process_s {
    fr_worker_t **workers;    /* owned, nworkers of them */
    size_t nworkers;
    fr_hub_t hub;             /* the memory broker, one slot per worker */
    int hub_ready;
    fr_ratelimit_t limits;
    size_t nconns;            /* atomic: connections over every worker */
    int fd_warned;            /* atomic: the 80% warning was logged and use has not dropped */
} fr_process_t;

/* Sums over every worker, for /metrics, /health and freshet.metrics(). Counters of other
 * workers are read while they run, word by word: a figure may lag by a few increments. */
typedef struct {
    fr_metrics_t m;
    size_t nconns, nstreams, ntopics;
    uint64_t published;
    unsigned long requests, reloads, reload_failures;
} fr_totals_t;

/* Fills t; tier_rejected (config->ntiers + 1 entries, or NULL) gets the 429s per tier. */
void fr_worker_totals(const fr_worker_t *w, fr_totals_t *t, unsigned long *tier_rejected);

/* Loads the app, listens and runs until SIGTERM/SIGINT. Returns the process exit code. */
int fr_server_run(const char *app_path, const char *listen_override);

/* Descriptors in use: what was open at start plus one per connection. */
size_t fr_worker_fds_used(const fr_worker_t *w);
/* 1 once use is at 90% of the limit: new streams are refused with 503. */
int fr_worker_fds_full(const fr_worker_t *w);
/* Counts a connection opened (+1) or closed (-1), in the worker and the process. */
void fr_worker_count_conn(fr_worker_t *w, int delta);

/* Told when the broker has stored an event: status 0 with its id; -1 when the broker is
 * unreachable (answer 503); -2 when the event is invalid (400), with a message. */
typedef void (*fr_published_cb)(void *ctx, int status, fr_id_t id, const char *err);

/* Publishes through the worker's broker. The memory broker calls cb before returning; the
 * Redis broker calls it when Redis answers (or at once when it is unreachable). */
void fr_worker_publish(fr_worker_t *w, const char *topic, const char *name, const char *data,
                       size_t len, fr_priority_t prio, int json, fr_published_cb cb, void *ctx);

/* 1 when the broker can take publishes (always for memory). */
int fr_worker_broker_ok(const fr_worker_t *w);

#endif
