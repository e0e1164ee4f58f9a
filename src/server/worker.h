/* Workers and the process they run in.
 *
 * A worker is one thread with one libuv loop, one Lua VM, its own SO_REUSEPORT listener and
 * every connection the kernel hands that listener. It composes the layers below, each with a
 * context of its own that it owns:
 *
 *   fr_worker_t ── http    (connections, deadlines: http/conn.h)
 *               ├─ streams (heartbeats, flushes, drain: stream/stream.h)
 *               ├─ app     (dispatch, opens, publishes: app/app.h)
 *               ├─ vm_host (what the Lua API needs: lua/vm.h)
 *               ├─ backend (freshet.http.request's pooled client: client/http_client.h)
 *               ├─ redis   (freshet.redis's connection: client/redis_client.h)
 *               └─ broker  (memory: the process's hub; redis: a node with its own hub)
 *
 * `workers = N` (or "auto": one per core) runs N of them; what must be one for the whole
 * process lives in fr_process_t:
 *
 *   fr_process_t ── hub (memory broker: ids, replay rings, a slot per worker)
 *                ├─ limits (rate-limit buckets of every client)
 *                ├─ nconns (descriptors in use, for the 90% rule)
 *                └─ workers[0..N-1]
 *
 * Worker 0 runs on the main thread; the others on threads of their own. freshet.shared is
 * process-wide already (core/shared_dict.c). */
#ifndef FR_WORKER_H
#define FR_WORKER_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "app/app.h"
#include "broker/broker.h"
#include "client/http_client.h"
#include "client/redis_client.h"
#include "core/config.h"
#include "core/hub.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "http/conn.h"
#include "lua/vm.h"
#include "server/census.h"
#include "stream/stream.h"

struct fr_process_s;

/* Private to the server layer: no other layer sees a worker, only the contexts it lends
 * them. Other workers read metrics, census (under census_mu), tier_rejected and the counts of
 * http and streams, each with relaxed atomic loads. */
typedef struct fr_worker_s {
    uv_loop_t *loop;          /* borrowed (loop_storage, or the caller's) */
    uv_loop_t loop_storage;
    struct fr_process_s *proc; /* borrowed; NULL for a worker outside fr_server_run */
    unsigned slot;            /* index among the process's workers */
    uv_thread_t thread;
    uv_async_t wake;          /* another worker queued events for this one */
    fr_config_t *config;      /* borrowed from start_config */
    fr_config_t start_config; /* owned: settings in force since start (listen, replay, …) */
    fr_vm_t *vm;              /* current VM, one reference */
    fr_vm_host_t vm_host;
    fr_broker_t *broker;      /* owned; NULL before setup and once freed */
    fr_hclient_t *backend;    /* owned: freshet.http.request's client; NULL once closed */
    fr_rclient_t *redis;      /* owned: freshet.redis's client; NULL: none, or closed */
    fr_hub_t own_hub;         /* a Redis node's hub (the memory broker uses the process's) */
    int own_hub_ready;
    fr_ratelimit_t *limits;   /* the process's buckets */
    char *app_path;           /* owned */
    fr_http_t http;
    fr_streams_t streams;
    fr_app_t app;

    uv_tcp_t listener;
    uv_timer_t accept_timer;    /* while accepting is paused: looks for room again */
    uv_tcp_t admin_listener;  /* `admin`: worker 0 only */
    int admin_open;
    fr_http_t *admin_http;    /* owned: the admin listener's connections, or NULL */
    fr_metrics_t admin_metrics; /* what the admin's connections count: not the app's */
    uv_timer_t heartbeat_timer; /* one timer for every stream's heartbeat and every deadline */
    uv_timer_t sweep_timer;     /* replay window expiry */
    uv_prepare_t flush;         /* fans out and writes what this iteration queued */
    uv_idle_t more;             /* keeps the loop from sleeping while writes remain */
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_signal_t sig_usr1;     /* worker 0: reopens the access log */
    uv_timer_t drain_timer;
    uint64_t drain_started;

    size_t fd_base;           /* descriptors open before the first connection */
    size_t fd_limit;          /* the soft RLIMIT_NOFILE in force */
    int fd_warned;            /* the 80% warning was logged and use has not dropped since */
    int accept_paused;        /* a connection waits in libuv, not accepted: no room for it */
    uint64_t accept_error_logged_ms;
    uint64_t accept_paused_logged_ms;
    uint64_t started_ms;      /* monotonic */
    uint64_t started_unix_ms; /* wall clock, for process_start_time_seconds */
    int ready;                /* setup completed: every handle is open */
    int stopping;
    int exit_code;

    unsigned long reloads, reload_failures;
    unsigned long handshakes_seen;    /* metrics.tls_handshakes at the last sweep */
    unsigned long handshakes_trimmed; /* metrics.tls_handshakes when the heap was last trimmed */
    fr_metrics_t metrics;
    pthread_mutex_t census_mu; /* guards census */
    fr_counts_t deprecated;    /* requests per deprecated route (pattern) */
    fr_census_t census;       /* this worker's connections for other workers' /metrics */
    unsigned long *tier_rejected; /* owned: 429s per tier, indexed like config->tiers */
} fr_worker_t;

typedef struct fr_process_s {
    fr_worker_t **workers;    /* owned, nworkers of them */
    size_t nworkers;
    fr_hub_t hub;             /* the memory broker, one slot per worker */
    int hub_ready;
    fr_ratelimit_t limits;
    fr_h2_clients_t h2_clients; /* HTTP/2 streams per client address, over every worker */
    size_t nconns;            /* atomic: connections over every worker */
    int fd_warned;            /* atomic: the 80% warning was logged and use has not dropped */
    int draining;             /* atomic: SIGTERM or SIGINT came; /readyz answers 503 */
    fr_linefile_t *access;    /* owned: the access log, or NULL (off) */
} fr_process_t;

/* Loads the app, listens and runs until SIGTERM/SIGINT. Returns the process exit code. */
int fr_server_run(const char *app_path, const char *listen_override);

/* Fills t with the sums over every worker of w's process; tier_rejected (config->ntiers + 1
 * entries, or NULL) gets the 429s per tier. */
void fr_worker_totals(const fr_worker_t *w, fr_totals_t *t, unsigned long *tier_rejected);

/* Descriptors in use: what was open at start plus one per connection. */
size_t fr_worker_fds_used(const fr_worker_t *w);
/* Streams admitted at most: the fraction streams_at of the limit, less what was open at
 * start. */
size_t fr_worker_stream_capacity(const fr_worker_t *w);
/* Connections accepted at most before accepting pauses: the limit less a reserve for what
 * else needs a descriptor (Redis, backend calls, files, libuv's held connection). */
size_t fr_worker_accept_cap(const fr_worker_t *w);

/* A worker on `loop` (the caller's) that runs the app at app_path without threads, listener
 * or signals: for harnesses that accept connections themselves. NULL when the app fails to
 * load (errors printed). Free with fr_worker_standalone_free once the loop is done. */
fr_worker_t *fr_worker_standalone(uv_loop_t *loop, const char *app_path);
void fr_worker_standalone_free(fr_worker_t *w);
/* What the flush hook does once per loop iteration. */
void fr_worker_flush(fr_worker_t *w);

#endif
