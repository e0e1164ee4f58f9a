#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "broker_redis.h"
#include "conn.h"
#include "log.h"
#include "shared_dict.h"
#include "stream.h"
#include "util.h"

typedef struct {
    fr_worker_t *w;
    fr_priority_t prio;
    fr_published_cb cb;
    void *ctx;
} redis_pub_t;

static void on_redis_published(void *ctx, int status, fr_id_t id, const char *err) {
    redis_pub_t *p = ctx;
    if (status == 0)
        p->w->metrics.published[p->prio]++;
    p->cb(p->ctx, status == -2 ? -2 : status, id, err);
    free(p);
}

void fr_worker_publish(fr_worker_t *w, const char *topic, const char *name, const char *data,
                       size_t len, fr_priority_t prio, int json, fr_published_cb cb, void *ctx) {
    fr_id_t id = {0, 0};
    const char *err;
    if (!w->hub.buckets) {
        cb(ctx, -2, id, "cannot publish while the app file is loading (publish from a hook or a "
                        "timer)");
        return;
    }
    if (fr_event_validate(topic, name, data, len, &err) < 0) {
        cb(ctx, -2, id, err);
        return;
    }
    if (w->broker_remote) {
        if (!w->redis) {
            cb(ctx, -1, id, "the broker is unavailable");
            return;
        }
        redis_pub_t *p = fr_malloc(sizeof *p);
        *p = (redis_pub_t){w, prio, cb, ctx};
        if (fr_redis_publish(w->redis, topic, name, data, len, prio, json, on_redis_published,
                             p) < 0) {
            free(p);
            cb(ctx, -1, id, "the broker is unavailable");
        }
        return;
    }
    if (fr_hub_publish(&w->hub, topic, name, data, len, prio, json, &id, &err) < 0) {
        cb(ctx, -2, id, err);
        return;
    }
    w->metrics.published[prio]++;
    cb(ctx, 0, id, NULL);
}

int fr_worker_broker_ok(const fr_worker_t *w) {
    if (!w->broker_remote)
        return 1;
    return w->redis && fr_redis_ready(w->redis) && fr_redis_subscribed(w->redis);
}

size_t fr_worker_fds_used(const fr_worker_t *w) {
    return w->fd_base + w->nconns;
}

int fr_worker_fds_full(const fr_worker_t *w) {
    return (double)fr_worker_fds_used(w) >= (double)w->fd_limit * w->config->streams_at;
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
    fr_conn_accept(w, listener);
    size_t used = fr_worker_fds_used(w);
    if (!w->fd_warned && used * 10 >= w->fd_limit * 8) {
        w->fd_warned = 1;
        fr_warn("descriptors: %zu of %zu in use (80%%); at %.0f%% new streams get 503", used,
                w->fd_limit, w->config->streams_at * 100);
    }
}

/* Once per loop iteration, before it waits: fan out what was published, then write. */
static void on_flush(uv_prepare_t *h) {
    fr_worker_t *w = h->data;
    fr_hub_flush(&w->hub);
    fr_stream_flush_pending(w);
}

static void on_heartbeat_tick(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    fr_stream_heartbeat_due(w);
    fr_conn_expire(w);
    if (w->fd_warned && fr_worker_fds_used(w) * 4 < w->fd_limit * 3)
        w->fd_warned = 0;
}

static void on_sweep(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    fr_hub_sweep(&w->hub);
    fr_ratelimit_sweep(&w->limits, fr_mono_ms());
}

static void worker_reload(fr_worker_t *w) {
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(w->app_path, w, &errs);
    if (!vm) {
        w->reload_failures++;
        for (size_t i = 0; i < errs.n; i++)
            fr_error("reload failed, keeping the old scripts: %s", errs.items[i]);
        fr_errors_free(&errs);
        return;
    }
    fr_vm_retire(w->vm);
    fr_vm_release(w->vm);
    w->vm = vm;
    w->reloads++;
    fr_info("reloaded %s (%zu routes); routes, scripts, budget and jit changed; other settings "
            "keep their start values until a restart", w->app_path, vm->nroutes);
}

static uv_timer_t drain_timer;
static uint64_t drain_started;

/* Everything is gone or the window is over: close what is left, so the loop can end. */
static void worker_finish(fr_worker_t *w) {
    for (fr_conn_t *c = w->conns; c; c = c->next) {
        if (!c->close_reason)
            c->close_reason = "shutdown";
        fr_conn_close(c);
    }
    if (!uv_is_closing((uv_handle_t *)&drain_timer))
        uv_close((uv_handle_t *)&drain_timer, NULL);
    fr_redis_free(w->redis);
    w->redis = NULL;
    if (!uv_is_closing((uv_handle_t *)&w->flush))
        uv_close((uv_handle_t *)&w->flush, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->sig_term)) {
        uv_close((uv_handle_t *)&w->sig_term, NULL);
        uv_close((uv_handle_t *)&w->sig_int, NULL);
    }
}

/* Each stream ends at its own moment in the drain window, with a retry: that adds jitter, so
 * clients do not all come back in the same instant. */
static void on_drain_tick(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    uint64_t elapsed = fr_mono_ms() - drain_started;
    uint64_t window = w->config->drain_ms;
    uint64_t retry = w->config->retry_ms;
    for (fr_conn_t *c = w->conns; c; c = c->next) {
        fr_stream_t *s = c->stream;
        if (!s || s->ending || s->drain_at > elapsed)
            continue;
        s->end_reason = "shutdown";
        fr_stream_end(s, retry + (uint64_t)(rand() % (int)(retry / 2 + 1)));
    }
    if (w->nconns == 0 || elapsed >= window + 2000)
        worker_finish(w);
}

/* Stops accepting and drains: idle connections close now, streams over the drain window,
 * requests already being read may finish. */
static void worker_stop(fr_worker_t *w, const char *why) {
    if (w->stopping) {
        fr_info("%s again: closing %zu connections now", why, w->nconns);
        worker_finish(w);
        return;
    }
    w->stopping = 1;
    fr_info("%s: draining %zu streams and %zu connections over %llu ms", why, w->nstreams,
            w->nconns, (unsigned long long)w->config->drain_ms);
    uv_close((uv_handle_t *)&w->listener, NULL);
    uv_close((uv_handle_t *)&w->heartbeat_timer, NULL);
    uv_close((uv_handle_t *)&w->sweep_timer, NULL);
    uv_close((uv_handle_t *)&w->sig_hup, NULL);
    fr_vm_retire(w->vm);
    uint64_t window = w->config->drain_ms;
    for (fr_conn_t *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->stream) {
            c->stream->drain_at = window ? (uint64_t)rand() % (window * 4 / 5 + 1) : 0;
        } else if (c->wait == FR_WAIT_IDLE && !c->pending_writes) {
            c->close_reason = "shutdown";
            fr_conn_close(c);
        }
    }
    drain_started = fr_mono_ms();
    uv_timer_init(w->loop, &drain_timer);
    drain_timer.data = w;
    on_drain_tick(&drain_timer);
    if (!uv_is_closing((uv_handle_t *)&drain_timer))
        uv_timer_start(&drain_timer, on_drain_tick, 20, 20);
}

static void on_signal(uv_signal_t *h, int signum) {
    fr_worker_t *w = h->data;
    if (signum == SIGHUP)
        worker_reload(w);
    else
        worker_stop(w, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* Raises the soft descriptor limit to the hard one: every stream is a descriptor. Returns the
 * limit in force. */
static size_t raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = soft;
    fr_info("open files: soft limit %llu (was %llu), hard limit %llu",
            (unsigned long long)rl.rlim_cur, (unsigned long long)soft,
            (unsigned long long)rl.rlim_max);
    return (size_t)rl.rlim_cur;
}

static size_t count_open_fds(void) {
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 16;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory stream itself */
}

static int worker_listen(fr_worker_t *w) {
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(w->config->host, w->config->port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(w->config->host, w->config->port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) {
        fr_error("listen: '%s' is not an IP address", w->config->host);
        return -1;
    }
    uv_tcp_init(w->loop, &w->listener);
    w->listener.data = w;
    rc = uv_tcp_bind(&w->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection);
    if (rc != 0) {
        fr_error("listen on %s:%d: %s", w->config->host, w->config->port, uv_strerror(rc));
        uv_close((uv_handle_t *)&w->listener, NULL);
        return -1;
    }
    fr_info("listening on http://%s:%d", w->config->host, w->config->port);
    return 0;
}

int fr_server_run(const char *app_path, const char *listen_override) {
    static fr_worker_t worker;
    fr_worker_t *w = &worker;
    uv_loop_t loop;
    uv_loop_init(&loop);
    w->loop = &loop;
    w->app_path = fr_strdup(app_path);
    w->started_ms = fr_mono_ms();
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)fr_now_ms());

    fr_errors_t errs = {0};
    w->vm = fr_vm_new(app_path, w, &errs);
    if (!w->vm) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.items[i]);
        fr_errors_free(&errs);
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
        free(w->app_path);
        return 1;
    }
    fr_config_copy(&w->start_config, &w->vm->config);
    w->config = &w->start_config;
    if (listen_override &&
        fr_config_parse_listen(listen_override, w->config->host, sizeof w->config->host,
                               &w->config->port) < 0) {
        fprintf(stderr, "freshet: --listen wants HOST:PORT, got '%s'\n", listen_override);
        w->exit_code = 2;
        goto done;
    }
    w->retry_frame_len = (size_t)snprintf(w->retry_frame, sizeof w->retry_frame, "retry: %llu\n\n",
                                          (unsigned long long)w->config->retry_ms);
    int memory = strcmp(w->config->broker, "memory") == 0;
    /* With Redis, ids come from Redis: the hub only fans out, from any id up. */
    fr_hub_init(&w->hub, w->config->replay_events, w->config->replay_ms, memory ? fr_now_ms() : 0);
    if (!memory) {
        char err[256];
        w->redis = fr_redis_new(w, w->config->broker, err, sizeof err);
        if (!w->redis) {
            fprintf(stderr, "freshet: %s\n", err);
            w->exit_code = 2;
            goto done;
        }
        w->broker_remote = 1;
        w->hub.on_follow = fr_redis_on_follow;
        w->hub.follow_ctx = w->redis;
    }
    fr_ratelimit_init(&w->limits);
    w->tier_rejected = fr_calloc(w->config->ntiers + 1, sizeof *w->tier_rejected);
    fr_log_set_json(w->config->log_json);
    if (w->config->log_level >= 0)
        fr_log_set_default_level((fr_log_level_t)w->config->log_level);
    fr_log_start();
    w->fd_limit = raise_nofile();
    if (worker_listen(w) < 0) {
        w->exit_code = 1;
        goto done;
    }
    w->fd_base = count_open_fds();

    uv_prepare_init(&loop, &w->flush);
    w->flush.data = w;
    uv_prepare_start(&w->flush, on_flush);
    uint64_t tick = w->config->heartbeat_ms / 4;
    if (tick > w->config->header_timeout_ms / 4)
        tick = w->config->header_timeout_ms / 4;
    tick = tick < 50 ? 50 : tick > 1000 ? 1000 : tick;
    uv_timer_init(&loop, &w->heartbeat_timer);
    w->heartbeat_timer.data = w;
    uv_timer_start(&w->heartbeat_timer, on_heartbeat_tick, tick, tick);
    uv_timer_init(&loop, &w->sweep_timer);
    w->sweep_timer.data = w;
    uv_timer_start(&w->sweep_timer, on_sweep, 1000, 1000);
    uv_signal_t *sigs[] = {&w->sig_hup, &w->sig_term, &w->sig_int};
    int signums[] = {SIGHUP, SIGTERM, SIGINT};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }

    uv_run(&loop, UV_RUN_DEFAULT);
    fr_info("stopped");
done:
    fr_vm_retire(w->vm);
    fr_redis_free(w->redis);
    w->redis = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    fr_vm_release(w->vm);
    if (w->hub.buckets)
        fr_hub_close(&w->hub);
    if (w->limits.buckets)
        fr_ratelimit_close(&w->limits);
    fr_config_free(&w->start_config);
    free(w->tier_rejected);
    free(w->app_path);
    if (!w->stopping && w->exit_code == 0)
        w->exit_code = 1;
    int rc = uv_loop_close(&loop);
    if (rc != 0) {
        fr_error("event loop closed with handles still open: %s", uv_strerror(rc));
        if (w->exit_code == 0)
            w->exit_code = 1;
    }
    fr_shared_shutdown();
    fr_log_stop();
    return w->exit_code;
}
