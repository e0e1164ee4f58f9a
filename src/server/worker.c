/* A worker's life: its layers wired together, the listener, timers and signals, reloads and
 * the drain. The process around the workers is server/process.c. */
#include "server/worker.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "broker/memory.h"
#include "broker/nats.h"
#include "broker/redis.h"
#include "server/process.h"

/* ---- what the layers ask of the worker ---------------------------------------------------- */

static void on_request(void *ctx, fr_exchange_t *x) {
    fr_worker_t *w = ctx;
    fr_app_handle(&w->app, x);
}

static void on_accept_retry(uv_timer_t *h);

static void on_count_conn(void *ctx, int delta) {
    fr_worker_t *w = ctx;
    if (w->proc)
        __atomic_add_fetch(&w->proc->nconns, (size_t)(ssize_t)delta, __ATOMIC_RELAXED);
    /* A descriptor came back: the connection waiting to be accepted may have room now. */
    if (delta < 0 && w->accept_paused && !w->stopping)
        uv_timer_start(&w->accept_timer, on_accept_retry, 0, 20);
}

size_t fr_worker_fds_used(const fr_worker_t *w) {
    size_t n = w->proc ? __atomic_load_n(&w->proc->nconns, __ATOMIC_RELAXED) : w->http.nconns;
    return w->fd_base + n;
}

size_t fr_worker_stream_capacity(const fr_worker_t *w) {
    size_t at = (size_t)((double)w->fd_limit * w->config->streams_at + 1e-9);
    return at > w->fd_base ? at - w->fd_base : 0;
}

size_t fr_worker_accept_cap(const fr_worker_t *w) {
    size_t nworkers = w->proc ? w->proc->nworkers : 1;
    size_t reserve = 8 + nworkers + w->fd_limit / 128;
    return w->fd_limit > reserve ? w->fd_limit - reserve : 0;
}

/* Streams are counted apart from connections: a burst of clients holds many connections that
 * have not asked for anything yet, and each of them may become a stream. Workers read the
 * sum without a lock, so two that admit at the same instant may pass the capacity by one each;
 * the accept reserve has a descriptor per worker for that. */
static void host_fds(void *ctx, fr_fds_view_t *v) {
    const fr_worker_t *w = ctx;
    size_t n = w->proc ? w->proc->nworkers : 1;
    v->streams = 0;
    for (size_t i = 0; i < n; i++) {
        const fr_worker_t *x = w->proc ? w->proc->workers[i] : w;
        if (!x)
            continue;
        v->streams += __atomic_load_n(&x->streams.count, __ATOMIC_RELAXED) +
                      __atomic_load_n(&x->app.opening, __ATOMIC_RELAXED);
    }
    v->limit = w->fd_limit;
    v->in_use = fr_worker_fds_used(w);
    v->capacity = fr_worker_stream_capacity(w);
}

static void host_totals(void *ctx, fr_totals_t *t, unsigned long *tier_rejected) {
    fr_worker_totals(ctx, t, tier_rejected);
}

static const fr_app_host_t app_host = {fr_server_respond_health, fr_server_respond_metrics,
                                       fr_server_respond_ready, host_fds};

/* The 80% warning, once per crossing for the whole process. */
static int *fd_warned_flag(fr_worker_t *w) {
    return w->proc ? &w->proc->fd_warned : &w->fd_warned;
}

/* ---- loop callbacks ----------------------------------------------------------------------- */

/* Accepting pauses near the descriptor limit rather than at it: past the limit the kernel's
 * accept fails, and libuv then drops waiting connections without a word. Paused, the
 * connection libuv has taken waits unaccepted (libuv stops watching the listener until it is
 * accepted) and the rest wait in the kernel's backlog; refused streams close at once, so room
 * comes back and each of them gets an answer. */
static int accept_room(const fr_worker_t *w) {
    return fr_worker_fds_used(w) < fr_worker_accept_cap(w);
}

static void accept_one(fr_worker_t *w) {
    fr_conn_accept(&w->http, (uv_stream_t *)&w->listener);
    size_t used = fr_worker_fds_used(w);
    if (used * 10 >= w->fd_limit * 8 &&
        !__atomic_exchange_n(fd_warned_flag(w), 1, __ATOMIC_RELAXED)) {
        fr_warn("descriptors: %zu of %zu in use (80%%); new streams past %zu are refused, and "
                "accepting pauses at %zu",
                used, w->fd_limit, fr_worker_stream_capacity(w), fr_worker_accept_cap(w));
    }
}

static void accept_pause(fr_worker_t *w) {
    w->accept_paused = 1;
    FR_BUMP(w->metrics.accept_pauses, 1);
    uint64_t now = fr_mono_ms();
    if (now - w->accept_paused_logged_ms >= 1000) {
        fr_warn("descriptors: %zu of %zu in use; accepting paused until connections close "
                "(new clients wait in the listen backlog)",
                fr_worker_fds_used(w), w->fd_limit);
        w->accept_paused_logged_ms = now;
    }
    uv_timer_start(&w->accept_timer, on_accept_retry, 20, 20);
}

static void on_accept_retry(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    if (!w->accept_paused || w->stopping) {
        uv_timer_stop(h);
        return;
    }
    if (!accept_room(w))
        return;
    w->accept_paused = 0;
    uv_timer_stop(h);
    accept_one(w); /* libuv watches the listener again, and accepts what waits */
}

static void on_connection(uv_stream_t *listener, int status) {
    fr_worker_t *w = listener->data;
    if (status < 0) {
        /* Out of descriptors: libuv sheds the pending connection itself; log once a second
         * at most, since this can repeat for every connection attempt. */
        uint64_t now = fr_mono_ms();
        if (now - w->accept_error_logged_ms >= 1000) {
            fr_warn("accept failed: %s (%zu descriptors in use, limit %zu)", uv_strerror(status),
                    fr_worker_fds_used(w), w->fd_limit);
            w->accept_error_logged_ms = now;
        }
        return;
    }
    if (!accept_room(w)) {
        accept_pause(w);
        return;
    }
    accept_one(w);
}

static void on_more(uv_idle_t *h) {
    (void)h; /* its being active is the point: the loop polls without sleeping */
}

void fr_worker_flush(fr_worker_t *w) {
    fr_hub_flush(w->streams.hub, w->streams.slot);
    int more = fr_streams_flush(&w->streams, 2000000);
    fr_http_flush(&w->http);
    if (w->admin_http)
        fr_http_flush(w->admin_http); /* h2c reaches the admin listener too */
    if (more && !uv_is_active((uv_handle_t *)&w->more))
        uv_idle_start(&w->more, on_more);
    else if (!more && uv_is_active((uv_handle_t *)&w->more))
        uv_idle_stop(&w->more);
}

/* Once per loop iteration, before it waits: fan out what was published, then write. The
 * writes stop after a time slice when many streams wait, so a publisher (and everything
 * else on this loop) is served between slices; the streams not reached yet keep their
 * place, and take whatever arrives meanwhile in the same write. */
static void on_flush(uv_prepare_t *h) {
    fr_worker_flush(h->data);
}

static void on_wake(uv_async_t *h) {
    (void)h; /* the flush that follows this iteration does the work */
}

static void wake_worker(void *ctx) {
    uv_async_send(ctx);
}

static void on_heartbeat_tick(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    fr_streams_tick(&w->streams);
    fr_http_expire(&w->http);
    fr_sock_sweep(&w->http);
    fr_app_refusals_flush(&w->app);
    if (w->admin_http)
        fr_http_expire(w->admin_http);
    if (w->proc && w->proc->nworkers > 1)
        fr_server_share_census(w);
    if (fr_worker_fds_used(w) * 4 < w->fd_limit * 3)
        __atomic_store_n(fd_warned_flag(w), 0, __ATOMIC_RELAXED);
}

/* A TLS handshake holds some tens of KB while it runs (OpenSSL's record and handshake buffers)
 * and frees them when it ends. After a burst of thousands at once (every client of a node
 * reconnecting) the heap keeps that memory: glibc returns freed memory inside the heap to the
 * system only when asked. Once a burst is over, the worker asks; an idle TLS stream then costs
 * what it holds, not what its handshake once needed. */
#define TRIM_AFTER_HANDSHAKES 1000 /* handshakes since the last trim */
#define TRIM_QUIET 100             /* handshakes in the last second below which a burst is over */

static void trim_after_handshakes(fr_worker_t *w) {
    unsigned long done = w->metrics.tls_handshakes;
    unsigned long last_second = done - w->handshakes_seen;
    w->handshakes_seen = done;
    if (done - w->handshakes_trimmed < TRIM_AFTER_HANDSHAKES || last_second >= TRIM_QUIET)
        return;
    w->handshakes_trimmed = done;
    uint64_t t0 = fr_mono_us();
    malloc_trim(0);
    fr_debug("heap trimmed after %lu TLS handshakes in %llu us", done,
             (unsigned long long)(fr_mono_us() - t0));
}

static void on_sweep(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    trim_after_handshakes(w);
    w->broker->ops->sweep(w->broker);
    /* Shared buckets need one sweeper; the first worker's timer does it. */
    if (w->slot == 0)
        fr_ratelimit_sweep(w->limits, fr_mono_ms());
}

/* ---- reload and drain --------------------------------------------------------------------- */

/* The certificate and key are read again from the paths the app named at start: new
 * connections get the new ones, open connections keep theirs. A file that does not load keeps
 * the old pair serving and counts as a failed reload. */
static void worker_reload_tls(fr_worker_t *w) {
    if (!w->config->tls_cert)
        return;
    char err[512];
    fr_tls_ctx_t *ctx = fr_http_tls_new(w->config->tls_cert, w->config->tls_key, err, sizeof err);
    if (!ctx) {
        FR_BUMP(w->reload_failures, 1);
        fr_error("reload failed, keeping the old certificate and key: %s", err);
        return;
    }
    fr_http_set_tls(&w->http, ctx);
    fr_info("reloaded the certificate %s and key %s for new connections", w->config->tls_cert,
            w->config->tls_key);
}

static void worker_reload(fr_worker_t *w) {
    worker_reload_tls(w);
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(w->app_path, &w->vm_host, &errs);
    if (!vm) {
        FR_BUMP(w->reload_failures, 1);
        for (size_t i = 0; i < errs.n; i++)
            fr_error("reload failed, keeping the old scripts: %s", errs.items[i]);
        fr_errors_free(&errs);
        return;
    }
    fr_vm_retire(w->vm);
    fr_vm_release(w->vm);
    w->vm = vm;
    w->app.vm = vm;
    FR_BUMP(w->reloads, 1);
    fr_info("reloaded %s (%zu routes); routes, scripts, budget and jit changed; other settings "
            "(tls: the files, not their paths) keep their start values until a restart",
            w->app_path, vm->nroutes);
}

static void backend_close(fr_worker_t *w) {
    fr_rclient_t *r = w->redis;
    w->redis = NULL;
    w->vm_host.redis = NULL;
    fr_rclient_close(r);
    if (!w->backend)
        return;
    fr_hclient_t *c = w->backend;
    w->backend = NULL;
    w->vm_host.backend = NULL;
    fr_hclient_close(c);
}

/* freshet.redis on a Sentinel-followed broker: the primary the broker follows now. */
static int redis_where(void *ctx, fr_redis_addr_t *addr) {
    fr_worker_t *w = ctx;
    return fr_redis_broker_primary(w->broker, addr);
}

/* freshet.redis's client: the app's `redis`, else the broker's Redis, else none (a call
 * then answers nil, "no redis configured"). */
static int redis_open(fr_worker_t *w, int broker_is_redis) {
    const fr_config_t *cfg = w->config;
    const char *url = cfg->redis ? cfg->redis : broker_is_redis ? cfg->broker : NULL;
    if (!url)
        return 0;
    char err[256];
    w->redis = fr_rclient_new(w->loop, url, redis_where, w, cfg->redis_calls, err, sizeof err);
    if (!w->redis) {
        fprintf(stderr, "freshet: redis: %s\n", err);
        return -1;
    }
    w->vm_host.redis = w->redis;
    return 0;
}

static void broker_free(fr_worker_t *w) {
    if (!w->broker)
        return;
    fr_broker_t *b = w->broker;
    w->broker = NULL;
    w->vm_host.broker = NULL;
    b->ops->free(b);
}

/* The admin listener closes last: through the drain /readyz says 503. */
static void admin_close(fr_worker_t *w) {
    if (!w->admin_open)
        return;
    w->admin_open = 0;
    uv_close((uv_handle_t *)&w->admin_listener, NULL);
    fr_http_close_all(w->admin_http, "shutdown");
}

/* Everything is gone or the window is over: close what is left, so the loop can end. */
static void worker_finish(fr_worker_t *w) {
    fr_http_close_all(&w->http, "shutdown");
    admin_close(w);
    backend_close(w);
    if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
    broker_free(w);
    if (!uv_is_closing((uv_handle_t *)&w->flush)) {
        uv_close((uv_handle_t *)&w->flush, NULL);
        uv_close((uv_handle_t *)&w->more, NULL);
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&w->sig_term)) {
        if (w->slot == 0)
            uv_close((uv_handle_t *)&w->sig_usr1, NULL);
        uv_close((uv_handle_t *)&w->sig_term, NULL);
        uv_close((uv_handle_t *)&w->sig_int, NULL);
    }
}

/* Each stream ends at its own moment in the drain window, with a retry: that adds jitter, so
 * clients do not all come back in the same instant. */
static void on_drain_tick(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    uint64_t elapsed = fr_mono_ms() - w->drain_started;
    fr_streams_drain_tick(&w->streams, elapsed);
    if (w->http.nconns == 0 || elapsed >= w->config->drain_ms + 2000)
        worker_finish(w);
}

/* Stops accepting and drains: idle connections close now, streams over the drain window,
 * requests already being read may finish. */
static void worker_stop(fr_worker_t *w, const char *why) {
    if (w->stopping) {
        fr_info("%s again: closing %zu connections now", why, w->http.nconns);
        worker_finish(w);
        return;
    }
    w->stopping = 1;
    w->http.stopping = 1;
    if (w->proc)
        __atomic_store_n(&w->proc->draining, 1, __ATOMIC_RELAXED);
    fr_info("%s: draining %zu streams and %zu connections over %llu ms", why, w->streams.count,
            w->http.nconns, (unsigned long long)w->config->drain_ms);
    uv_close((uv_handle_t *)&w->listener, NULL);
    uv_close((uv_handle_t *)&w->accept_timer, NULL);
    uv_close((uv_handle_t *)&w->heartbeat_timer, NULL);
    uv_close((uv_handle_t *)&w->sweep_timer, NULL);
    uv_close((uv_handle_t *)&w->sig_hup, NULL);
    fr_vm_retire(w->vm);
    fr_streams_drain(&w->streams, w->config->drain_ms);
    fr_http_close_idle(&w->http, "shutdown");
    w->drain_started = fr_mono_ms();
    uv_timer_init(w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    on_drain_tick(&w->drain_timer);
    if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
        uv_timer_start(&w->drain_timer, on_drain_tick, 20, 20);
}

static void on_signal(uv_signal_t *h, int signum) {
    fr_worker_t *w = h->data;
    if ((signum == SIGHUP || signum == SIGUSR1) && w->slot == 0 && w->proc && w->proc->access) {
        fr_linefile_reopen(w->proc->access);
        fr_info("%s: reopening the access log", signum == SIGHUP ? "SIGHUP" : "SIGUSR1");
    }
    if (signum == SIGUSR1)
        return;
    if (signum == SIGHUP)
        worker_reload(w);
    else
        worker_stop(w, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- setting up ----------------------------------------------------------------------------- */

/* With several workers each has a listener of its own on the same address (SO_REUSEPORT):
 * the kernel spreads new connections over them, and no worker waits on another's accept. */
static int listen_socket(const struct sockaddr *addr, int reuseport, uv_os_sock_t *out) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, addr,
             addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in)) != 0) {
        int err = uv_translate_sys_error(errno);
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

/* Opens `tcp` listening on host:port; a port 0 becomes the one the kernel chose. */
static int open_listener(fr_worker_t *w, uv_tcp_t *tcp, const char *host, int *port,
                         int reuseport, uv_connection_cb on_conn) {
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(host, *port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(host, *port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) {
        fr_error("listen: '%s' is not an IP address", host);
        return -1;
    }
    uv_tcp_init(w->loop, tcp);
    tcp->data = w;
    uv_os_sock_t fd = -1;
    rc = listen_socket((struct sockaddr *)&addr, reuseport, &fd);
    if (rc == 0 && (rc = uv_tcp_open(tcp, fd)) != 0)
        close(fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, 4096, on_conn);
    if (rc != 0) {
        fr_error("listen on %s:%d: %s", host, *port, uv_strerror(rc));
        uv_close((uv_handle_t *)tcp, NULL);
        return -1;
    }
    if (*port == 0) {
        struct sockaddr_storage got;
        int len = sizeof got;
        if (uv_tcp_getsockname(tcp, (struct sockaddr *)&got, &len) == 0)
            *port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    }
    return 0;
}

/* Port 0: the kernel chooses one for the first worker, and the others listen on the same. */
static int worker_listen(fr_worker_t *w, int reuseport) {
    return open_listener(w, &w->listener, w->config->host, &w->config->port, reuseport,
                         on_connection);
}

/* The admin listener: one, on the first worker, whatever the number of workers. What it
 * answers describes the whole process (server/metrics.c sums every worker), so one is enough,
 * and it needs no SO_REUSEPORT. It stays open through a drain, so /readyz can say 503. */
static void on_admin_request(void *ctx, fr_exchange_t *x) {
    fr_worker_t *w = ctx;
    size_t len = strcspn(x->req.url, "?");
    if (!fr_app_answer_probe(&app_host, w, x, x->req.url, len))
        fr_exchange_respond_error(x, 404, "the admin listener answers /health, /readyz and "
                                          "/metrics only");
}

static void on_admin_connection(uv_stream_t *listener, int status) {
    fr_worker_t *w = listener->data;
    if (status == 0)
        fr_conn_accept(w->admin_http, listener);
}

static int admin_listen(fr_worker_t *w) {
    w->admin_http = fr_calloc(1, sizeof *w->admin_http);
    fr_http_init(w->admin_http, w->loop, w->config, &w->admin_metrics);
    w->admin_http->handle = on_admin_request;
    w->admin_http->count = on_count_conn;
    w->admin_http->ctx = w;
    /* Connection ids stay unique over the process: the admin's are numbered from 2^62. */
    w->admin_http->id_first = (uint64_t)1 << 62;
    if (open_listener(w, &w->admin_listener, w->config->admin_host, &w->config->admin_port, 0,
                      on_admin_connection) < 0)
        return -1;
    w->admin_open = 1;
    fr_info("admin listener (/health, /readyz, /metrics) on http://%s:%d", w->config->admin_host,
            w->config->admin_port);
    return 0;
}

/* The broker and every layer above it, on the worker's loop. Returns -1 (with a message on
 * stderr) when the broker URL is malformed. */
static int worker_wire(fr_worker_t *w, fr_hub_t *process_hub, size_t nworkers) {
    fr_config_t *cfg = w->config;
    if (process_hub) {
        w->broker = fr_memory_broker_new(process_hub, w->slot);
        fr_hub_set_wake(process_hub, w->slot, wake_worker, &w->wake);
    } else {
        /* With Redis, ids come from Redis: the hub only fans out, from any id up. */
        fr_hub_init(&w->own_hub, 1, cfg->replay_events, cfg->replay_ms, 0);
        w->own_hub_ready = 1;
        char err[256];
        if (fr_nats_url_is(cfg->broker))
            w->broker = fr_nats_broker_new(w->loop, &w->own_hub, cfg->broker, cfg->replay_events,
                                           cfg->replay_ms, &w->metrics, err, sizeof err);
        else
            w->broker = fr_redis_broker_new(w->loop, &w->own_hub, cfg->broker,
                                            cfg->replay_events, cfg->replay_ms, &w->metrics, err,
                                            sizeof err);
        if (!w->broker) {
            fprintf(stderr, "freshet: %s\n", err);
            return -1;
        }
    }
    w->tier_rejected = fr_calloc(cfg->ntiers + 1, sizeof *w->tier_rejected);
    fr_streams_init(&w->streams, w->loop, w->broker, cfg, &w->metrics);
    w->streams.limits = w->limits;
    w->streams.tier_rejected = w->tier_rejected;
    fr_http_init(&w->http, w->loop, cfg, &w->metrics);
    if (w->proc)
        w->http.h2_clients = &w->proc->h2_clients;
    w->http.access = w->proc ? w->proc->access : NULL;
    w->streams.access = w->http.access;
    w->http.handle = on_request;
    w->http.count = on_count_conn;
    w->http.ctx = w;
    /* Connection ids are unique over the process: worker k numbers k+1, k+1+N, … */
    w->http.id_step = nworkers;
    w->http.id_first = w->slot + 1;
    w->app = (fr_app_t){.builtins_elsewhere = cfg->admin_port >= 0,
                        .vm = w->vm,
                        .config = cfg,
                        .http = &w->http,
                        .streams = &w->streams,
                        .broker = w->broker,
                        .limits = w->limits,
                        .metrics = &w->metrics,
                        .tier_rejected = w->tier_rejected,
                        .deprecated = &w->deprecated,
                        .host = &app_host,
                        .host_ctx = w};
    w->vm_host.config = cfg;
    w->vm_host.broker = w->broker;
    fr_hclient_limits_t backend = {.max_response = cfg->backend_response,
                                   .max_in_flight = cfg->backend_calls,
                                   .max_idle_per_host = cfg->backend_idle,
                                   .idle_ms = 30000};
    w->backend = fr_hclient_new(w->loop, &backend);
    w->vm_host.backend = w->backend;
    uv_async_init(w->loop, &w->wake, on_wake);
    uv_idle_init(w->loop, &w->more);
    uv_prepare_init(w->loop, &w->flush);
    w->flush.data = w;
    uv_prepare_start(&w->flush, on_flush);
    return redis_open(w, process_hub == NULL && !fr_nats_url_is(cfg->broker));
}

/* Everything a worker needs before its loop runs: broker, layers, listener, timers, signals.
 * Runs on the main thread for every worker, before any thread starts. */
int fr_worker_setup(fr_process_t *p, fr_worker_t *w, const fr_config_t *cfg) {
    fr_config_copy(&w->start_config, cfg);
    w->config = &w->start_config;
    w->limits = &p->limits;
    if (worker_wire(w, p->hub_ready ? &p->hub : NULL, p->nworkers) < 0) {
        w->exit_code = 2;
        return -1;
    }
    if (w->config->tls_cert) {
        /* Before listening: a certificate that does not load must not leave a port open. */
        char err[512];
        fr_tls_ctx_t *ctx =
            fr_http_tls_new(w->config->tls_cert, w->config->tls_key, err, sizeof err);
        if (!ctx) {
            fr_error("%s", err);
            w->exit_code = 1;
            return -1;
        }
        fr_http_set_tls(&w->http, ctx);
    }
    if (worker_listen(w, p->nworkers > 1) < 0) {
        w->exit_code = 1;
        return -1;
    }
    if (w->slot == 0 && w->config->admin_port >= 0 && admin_listen(w) < 0) {
        uv_close((uv_handle_t *)&w->listener, NULL);
        w->exit_code = 1;
        return -1;
    }
    uint64_t tick = w->config->heartbeat_ms / 4;
    if (tick > w->config->header_timeout_ms / 4)
        tick = w->config->header_timeout_ms / 4;
    tick = tick < 50 ? 50 : tick > 1000 ? 1000 : tick;
    uv_timer_init(w->loop, &w->accept_timer);
    w->accept_timer.data = w;
    uv_timer_init(w->loop, &w->heartbeat_timer);
    w->heartbeat_timer.data = w;
    uv_timer_start(&w->heartbeat_timer, on_heartbeat_tick, tick, tick);
    uv_timer_init(w->loop, &w->sweep_timer);
    w->sweep_timer.data = w;
    uv_timer_start(&w->sweep_timer, on_sweep, 1000, 1000);
    /* Every worker's loop watches the signals: a reload or a drain reaches each of them. */
    uv_signal_t *sigs[] = {&w->sig_hup, &w->sig_term, &w->sig_int, &w->sig_usr1};
    int signums[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    /* SIGUSR1 (reopen the access log) is the first worker's: one reopen is enough. */
    for (int i = 0; i < (w->slot == 0 ? 4 : 3); i++) {
        uv_signal_init(w->loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    w->ready = 1;
    return 0;
}

/* A worker with a loop and a VM of its own. NULL when the app fails to load (errors printed). */
fr_worker_t *fr_worker_new(fr_process_t *p, unsigned slot, const char *app_path,
                           uv_loop_t *loop) {
    fr_worker_t *w = fr_calloc(1, sizeof *w);
    if (loop) {
        w->loop = loop;
    } else {
        uv_loop_init(&w->loop_storage);
        w->loop = &w->loop_storage;
    }
    w->proc = p;
    w->slot = slot;
    w->app_path = fr_strdup(app_path);
    w->started_ms = fr_mono_ms();
    w->started_unix_ms = fr_now_ms();
    pthread_mutex_init(&w->census_mu, NULL);
    fr_counts_init(&w->deprecated);
    w->vm_host = (fr_vm_host_t){.loop = w->loop,
                                .metrics = &w->metrics,
                                .worker = slot,
                                .started_ms = w->started_ms,
                                .totals = host_totals,
                                .ctx = w};
    fr_errors_t errs = {0};
    w->vm = fr_vm_new(app_path, &w->vm_host, &errs);
    if (!w->vm) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.items[i]);
        fr_errors_free(&errs);
        pthread_mutex_destroy(&w->census_mu);
        fr_counts_free(&w->deprecated);
        if (w->loop == &w->loop_storage)
            uv_loop_close(w->loop);
        free(w->app_path);
        free(w);
        return NULL;
    }
    return w;
}

/* Runs the loop until the drain is over, then lets the last handles close. */
void fr_worker_main(void *arg) {
    fr_worker_t *w = arg;
    uv_run(w->loop, UV_RUN_DEFAULT);
    fr_info("stopped");
    fr_vm_retire(w->vm);
    backend_close(w);
    broker_free(w);
    uv_run(w->loop, UV_RUN_DEFAULT);
}

/* Aborts a worker whose loop never ran: its handles close and its loop empties. */
void fr_worker_abandon(fr_worker_t *w) {
    if (w->ready) {
        w->stopping = 1;
        uv_close((uv_handle_t *)&w->listener, NULL);
        uv_close((uv_handle_t *)&w->accept_timer, NULL);
        uv_close((uv_handle_t *)&w->heartbeat_timer, NULL);
        uv_close((uv_handle_t *)&w->sweep_timer, NULL);
        uv_close((uv_handle_t *)&w->sig_hup, NULL);
        uv_timer_init(w->loop, &w->drain_timer);
        worker_finish(w);
    } else if (w->broker) {
        uv_close((uv_handle_t *)&w->flush, NULL);
        uv_close((uv_handle_t *)&w->more, NULL);
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
    fr_vm_retire(w->vm);
    backend_close(w);
    broker_free(w);
    uv_run(w->loop, UV_RUN_DEFAULT);
}

/* After every thread has ended: frees what the worker owns. Returns its exit code. */
int fr_worker_free(fr_worker_t *w) {
    int code = w->exit_code;
    if (code == 0 && !w->stopping)
        code = 1;
    fr_vm_release(w->vm);
    fr_http_free(&w->http);
    if (w->own_hub_ready)
        fr_hub_close(&w->own_hub);
    fr_config_free(&w->start_config);
    free(w->tier_rejected);
    if (w->admin_http)
        fr_http_free(w->admin_http);
    free(w->admin_http);
    free(w->app_path);
    pthread_mutex_destroy(&w->census_mu);
    fr_counts_free(&w->deprecated);
    if (w->loop == &w->loop_storage) {
        int rc = uv_loop_close(w->loop);
        if (rc != 0) {
            fr_error("event loop closed with handles still open: %s", uv_strerror(rc));
            if (code == 0)
                code = 1;
        }
    }
    free(w);
    return code;
}

/* ---- a worker without a process ------------------------------------------------------------ */

fr_worker_t *fr_worker_standalone(uv_loop_t *loop, const char *app_path) {
    fr_worker_t *w = fr_worker_new(NULL, 0, app_path, loop);
    if (!w)
        return NULL;
    fr_config_copy(&w->start_config, &w->vm->config);
    w->config = &w->start_config;
    w->limits = fr_calloc(1, sizeof *w->limits);
    fr_ratelimit_init(w->limits);
    /* A memory broker of its own: a one-slot hub that the worker owns. */
    fr_hub_init(&w->own_hub, 1, w->config->replay_events, w->config->replay_ms, fr_now_ms());
    w->own_hub_ready = 1;
    worker_wire(w, &w->own_hub, 1);
    w->fd_limit = 1u << 20;
    w->fd_base = 16;
    return w;
}

void fr_worker_standalone_free(fr_worker_t *w) {
    fr_ratelimit_t *limits = w->limits;
    fr_worker_free(w);
    fr_ratelimit_close(limits);
    free(limits);
}
