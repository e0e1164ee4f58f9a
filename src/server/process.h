/* What the server layer's files share: a worker's steps (server/worker.c) as the process
 * drives them (server/process.c), and the process-wide answers (server/metrics.c). */
#ifndef FR_PROCESS_H
#define FR_PROCESS_H

#include "server/worker.h"

/* A worker with a VM of its own, on `loop` (NULL: a loop of its own). NULL when the app fails
 * to load (errors printed). */
fr_worker_t *fr_worker_new(fr_process_t *p, unsigned slot, const char *app_path,
                           uv_loop_t *loop);
/* Broker, layers, listener, timers, signals: everything before the loop runs. */
int fr_worker_setup(fr_process_t *p, fr_worker_t *w, const fr_config_t *cfg);
/* Runs the loop until the drain is over (a thread's entry point). */
void fr_worker_main(void *arg);
/* Closes a worker whose loop never ran. */
void fr_worker_abandon(fr_worker_t *w);
/* Frees a worker whose loop has ended; returns its exit code. */
int fr_worker_free(fr_worker_t *w);

/* Descriptors open now (/proc/self/fd). */
size_t fr_process_count_fds(void);

/* GET /health and GET /metrics: the whole process, answered on x (ctx is the worker). */
void fr_server_respond_health(void *ctx, fr_exchange_t *x);
void fr_server_respond_metrics(void *ctx, fr_exchange_t *x);
/* GET /readyz: 503 while draining or while the broker cannot take publishes, else 200. */
void fr_server_respond_ready(void *ctx, fr_exchange_t *x);
/* Refreshes w->census for other workers to read (w's thread only). */
void fr_server_share_census(fr_worker_t *w);

#endif
