/* A worker: one libuv loop, one Lua VM, one hub, the listener and every connection on it.
 * (One worker for now; the struct is what each thread will own when there are several.) */
#ifndef FR_SERVER_H
#define FR_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "hub.h"
#include "metrics.h"
#include "ratelimit.h"
#include "vm.h"

struct fr_conn_s;
struct fr_stream_s;

typedef struct fr_worker_s {
    uv_loop_t *loop;          /* borrowed */
    fr_config_t *config;      /* borrowed from the first VM's settings copy below */
    fr_config_t start_config; /* owned: settings in force since start (listen, replay, …) */
    fr_vm_t *vm;              /* current VM, one reference */
    fr_hub_t hub;
    fr_ratelimit_t limits;    /* token buckets of every client on this worker */
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
    /* Streams with queued output not yet handed to libuv. */
    struct fr_stream_s *pending_head;

    char retry_frame[48];     /* "retry: <ms>\n\n" */
    size_t retry_frame_len;
    uint64_t started_ms;      /* monotonic */
    char read_buf[65536];     /* every read on this loop lands here and is parsed at once */
    int stopping;
    int delivering;           /* a filter hook is running (no publishing from there) */
    int exit_code;

    unsigned long requests, reloads, reload_failures;
    fr_metrics_t metrics;
    unsigned long *tier_rejected; /* owned: 429s per tier, indexed like config->tiers */
    uint64_t next_conn_id;
} fr_worker_t;

/* Loads the app, listens and runs until SIGTERM/SIGINT. Returns the process exit code. */
int fr_server_run(const char *app_path, const char *listen_override);

/* Descriptors in use: what was open at start plus one per connection. */
size_t fr_worker_fds_used(const fr_worker_t *w);
/* 1 once use is at 90% of the limit: new streams are refused with 503. */
int fr_worker_fds_full(const fr_worker_t *w);

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
