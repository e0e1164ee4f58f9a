#include "server/worker.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/redis.h"
#include "http/conn.h"
#include "base/log.h"
#include "core/shared_dict.h"
#include "stream/stream.h"
#include "base/util.h"

typedef struct {
    fr_worker_t *w;
    fr_priority_t prio;
    fr_published_cb cb;
    void *ctx;
} redis_pub_t;

static void on_redis_published(void *ctx, int status, fr_id_t id, const char *err) {
    redis_pub_t *p = ctx;
    if (status == 0)
        FR_BUMP(p->w->metrics.published[p->prio], 1);
    p->cb(p->ctx, status == -2 ? -2 : status, id, err);
    free(p);
}

void fr_worker_publish(fr_worker_t *w, const char *topic, const char *name, const char *data,
                       size_t len, fr_priority_t prio, int json, fr_published_cb cb, void *ctx) {
    fr_id_t id = {0, 0};
    const char *err;
    if (!w->hub || !fr_hub_ready(w->hub)) {
        cb(ctx, -2, id, "cannot publish while the app file is loading (publish from a hook or a "
                        "timer)");
        return;
    }
    if (w->broker_remote) {
        /* The memory broker's hub checks the event itself; Redis gets it checked. */
        if (fr_event_validate(topic, name, data, len, &err) < 0) {
            cb(ctx, -2, id, err);
            return;
        }
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
    if (fr_hub_publish(w->hub, topic, name, data, len, prio, json, &id, &err) < 0) {
        cb(ctx, -2, id, err);
        return;
    }
    FR_BUMP(w->metrics.published[prio], 1);
    cb(ctx, 0, id, NULL);
}

int fr_worker_broker_ok(const fr_worker_t *w) {
    if (!w->broker_remote)
        return 1;
    return w->redis && fr_redis_ready(w->redis) && fr_redis_subscribed(w->redis);
}

size_t fr_worker_fds_used(const fr_worker_t *w) {
    size_t n = w->proc ? __atomic_load_n(&w->proc->nconns, __ATOMIC_RELAXED) : w->nconns;
    return w->fd_base + n;
}

int fr_worker_fds_full(const fr_worker_t *w) {
    return (double)fr_worker_fds_used(w) >= (double)w->fd_limit * w->config->streams_at;
}

void fr_worker_count_conn(fr_worker_t *w, int delta) {
    FR_BUMP(w->nconns, (size_t)(ssize_t)delta);
    if (w->proc)
        __atomic_add_fetch(&w->proc->nconns, (size_t)(ssize_t)delta, __ATOMIC_RELAXED);
}

/* The 80% warning, once per crossing for the whole process. */
static int *fd_warned_flag(fr_worker_t *w) {
    return w->proc ? &w->proc->fd_warned : &w->fd_warned;
}

static void add_counters(unsigned long *dst, const unsigned long *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void fr_worker_totals(const fr_worker_t *w, fr_totals_t *t, unsigned long *tier_rejected) {
    _Static_assert(sizeof(fr_metrics_t) % sizeof(unsigned long) == 0,
                   "fr_metrics_t holds only counters");
    memset(t, 0, sizeof *t);
    size_t ntiers = w->config->ntiers + 1;
    if (tier_rejected)
        memset(tier_rejected, 0, ntiers * sizeof *tier_rejected);
    fr_worker_t *const *ws = w->proc ? (fr_worker_t *const *)w->proc->workers : NULL;
    size_t n = w->proc ? w->proc->nworkers : 1;
    for (size_t i = 0; i < n; i++) {
        const fr_worker_t *x = ws ? ws[i] : w;
        add_counters((unsigned long *)&t->m, (const unsigned long *)&x->metrics,
                     sizeof x->metrics / sizeof(unsigned long));
        t->nconns += __atomic_load_n(&x->nconns, __ATOMIC_RELAXED);
        t->nstreams += __atomic_load_n(&x->nstreams, __ATOMIC_RELAXED);
        t->requests += __atomic_load_n(&x->requests, __ATOMIC_RELAXED);
        t->reloads += __atomic_load_n(&x->reloads, __ATOMIC_RELAXED);
        t->reload_failures += __atomic_load_n(&x->reload_failures, __ATOMIC_RELAXED);
        if (tier_rejected && x->tier_rejected)
            add_counters(tier_rejected, x->tier_rejected, ntiers);
        /* Redis: each worker has a hub of its own. */
        if (x->hub && x->hub != (w->proc ? &w->proc->hub : NULL) && fr_hub_ready(x->hub)) {
            size_t nt;
            uint64_t pub;
            fr_hub_stats(x->hub, &nt, &pub);
            t->ntopics += nt;
            t->published += pub;
        }
    }
    if (w->proc && w->proc->hub_ready)
        fr_hub_stats(&w->proc->hub, &t->ntopics, &t->published);
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
    if (used * 10 >= w->fd_limit * 8 && !__atomic_exchange_n(fd_warned_flag(w), 1,
                                                             __ATOMIC_RELAXED)) {
        fr_warn("descriptors: %zu of %zu in use (80%%); at %.0f%% new streams get 503", used,
                w->fd_limit, w->config->streams_at * 100);
    }
}

static void on_more(uv_idle_t *h) {
    (void)h; /* its being active is the point: the loop polls without sleeping */
}

/* Once per loop iteration, before it waits: fan out what was published, then write. The
 * writes stop after a time slice when many streams wait, so a publisher (and everything
 * else on this loop) is served between slices; the streams not reached yet keep their
 * place, and take whatever arrives meanwhile in the same write. */
static void on_flush(uv_prepare_t *h) {
    fr_worker_t *w = h->data;
    fr_hub_flush(w->hub, w->hub_slot);
    int more = fr_stream_flush_pending(w, 2000000);
    if (more && !uv_is_active((uv_handle_t *)&w->more))
        uv_idle_start(&w->more, on_more);
    else if (!more && uv_is_active((uv_handle_t *)&w->more))
        uv_idle_stop(&w->more);
}

static void on_wake(uv_async_t *h) {
    (void)h; /* the flush that follows this iteration does the work */
}

static void wake_worker(void *ctx) {
    uv_async_send(ctx);
}

static void on_heartbeat_tick(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    fr_stream_heartbeat_due(w);
    fr_conn_expire(w);
    if (w->proc && w->proc->nworkers > 1)
        fr_metrics_share_census(w);
    if (fr_worker_fds_used(w) * 4 < w->fd_limit * 3)
        __atomic_store_n(fd_warned_flag(w), 0, __ATOMIC_RELAXED);
}

static void on_sweep(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    fr_hub_sweep(w->hub);
    /* Shared buckets need one sweeper; the first worker's timer does it. */
    if (w->slot == 0)
        fr_ratelimit_sweep(w->limits, fr_mono_ms());
}

static void worker_reload(fr_worker_t *w) {
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(w->app_path, w, &errs);
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
    FR_BUMP(w->reloads, 1);
    fr_info("reloaded %s (%zu routes); routes, scripts, budget and jit changed; other settings "
            "keep their start values until a restart", w->app_path, vm->nroutes);
}

/* Everything is gone or the window is over: close what is left, so the loop can end. */
static void worker_finish(fr_worker_t *w) {
    for (fr_conn_t *c = w->conns; c; c = c->next) {
        if (!c->close_reason)
            c->close_reason = "shutdown";
        fr_conn_close(c);
    }
    if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
    fr_redis_free(w->redis);
    w->redis = NULL;
    if (!uv_is_closing((uv_handle_t *)&w->flush)) {
        uv_close((uv_handle_t *)&w->flush, NULL);
        uv_close((uv_handle_t *)&w->more, NULL);
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&w->sig_term)) {
        uv_close((uv_handle_t *)&w->sig_term, NULL);
        uv_close((uv_handle_t *)&w->sig_int, NULL);
    }
}

/* Each stream ends at its own moment in the drain window, with a retry: that adds jitter, so
 * clients do not all come back in the same instant. */
static void on_drain_tick(uv_timer_t *h) {
    fr_worker_t *w = h->data;
    uint64_t elapsed = fr_mono_ms() - w->drain_started;
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
    w->drain_started = fr_mono_ms();
    uv_timer_init(w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    on_drain_tick(&w->drain_timer);
    if (!uv_is_closing((uv_handle_t *)&w->drain_timer))
        uv_timer_start(&w->drain_timer, on_drain_tick, 20, 20);
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

/* With several workers each has a listener of its own on the same address (SO_REUSEPORT):
 * the kernel spreads new connections over them, and no worker waits on another's accept. */
static int listen_socket(const struct sockaddr *addr, int reuseport, uv_os_sock_t *out) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                   : sizeof(struct sockaddr_in)) != 0) {
        int err = uv_translate_sys_error(errno);
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

static int worker_listen(fr_worker_t *w, int reuseport) {
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
    uv_os_sock_t fd = -1;
    rc = listen_socket((struct sockaddr *)&addr, reuseport, &fd);
    if (rc == 0 && (rc = uv_tcp_open(&w->listener, fd)) != 0)
        close(fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection);
    if (rc != 0) {
        fr_error("listen on %s:%d: %s", w->config->host, w->config->port, uv_strerror(rc));
        uv_close((uv_handle_t *)&w->listener, NULL);
        return -1;
    }
    if (w->config->port == 0) {
        /* Port 0: the kernel chose one; the other workers listen on the same. */
        struct sockaddr_storage got;
        int len = sizeof got;
        if (uv_tcp_getsockname(&w->listener, (struct sockaddr *)&got, &len) == 0)
            w->config->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    }
    return 0;
}

/* Everything a worker needs before its loop runs: hub slot, broker, listener, timers,
 * signals. Runs on the main thread for every worker, before any thread starts. */
static int worker_setup(fr_process_t *p, fr_worker_t *w, const fr_config_t *cfg) {
    fr_config_copy(&w->start_config, cfg);
    w->config = &w->start_config;
    w->retry_frame_len = (size_t)snprintf(w->retry_frame, sizeof w->retry_frame, "retry: %llu\n\n",
                                          (unsigned long long)w->config->retry_ms);
    w->limits = &p->limits;
    w->tier_rejected = fr_calloc(w->config->ntiers + 1, sizeof *w->tier_rejected);
    if (p->hub_ready) {
        w->hub = &p->hub;
        w->hub_slot = w->slot;
        fr_hub_set_wake(w->hub, w->hub_slot, wake_worker, &w->wake);
    } else {
        /* With Redis, ids come from Redis: the hub only fans out, from any id up. */
        w->hub = &w->own_hub;
        w->hub_slot = 0;
        fr_hub_init(w->hub, 1, w->config->replay_events, w->config->replay_ms, 0);
        char err[256];
        w->redis = fr_redis_new(w, w->config->broker, err, sizeof err);
        if (!w->redis) {
            fprintf(stderr, "freshet: %s\n", err);
            w->exit_code = 2;
            return -1;
        }
        w->broker_remote = 1;
        w->hub->on_follow = fr_redis_on_follow;
        w->hub->follow_ctx = w->redis;
    }
    if (worker_listen(w, p->nworkers > 1) < 0) {
        w->exit_code = 1;
        return -1;
    }
    uv_async_init(w->loop, &w->wake, on_wake);
    uv_idle_init(w->loop, &w->more);
    uv_prepare_init(w->loop, &w->flush);
    w->flush.data = w;
    uv_prepare_start(&w->flush, on_flush);
    uint64_t tick = w->config->heartbeat_ms / 4;
    if (tick > w->config->header_timeout_ms / 4)
        tick = w->config->header_timeout_ms / 4;
    tick = tick < 50 ? 50 : tick > 1000 ? 1000 : tick;
    uv_timer_init(w->loop, &w->heartbeat_timer);
    w->heartbeat_timer.data = w;
    uv_timer_start(&w->heartbeat_timer, on_heartbeat_tick, tick, tick);
    uv_timer_init(w->loop, &w->sweep_timer);
    w->sweep_timer.data = w;
    uv_timer_start(&w->sweep_timer, on_sweep, 1000, 1000);
    /* Every worker's loop watches the signals: a reload or a drain reaches each of them. */
    uv_signal_t *sigs[] = {&w->sig_hup, &w->sig_term, &w->sig_int};
    int signums[] = {SIGHUP, SIGTERM, SIGINT};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(w->loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    w->ready = 1;
    return 0;
}

/* A worker with a loop and a VM of its own. NULL when the app fails to load (errors printed). */
static fr_worker_t *worker_new(fr_process_t *p, unsigned slot, const char *app_path) {
    fr_worker_t *w = fr_calloc(1, sizeof *w);
    uv_loop_init(&w->loop_storage);
    w->loop = &w->loop_storage;
    w->proc = p;
    w->slot = slot;
    w->app_path = fr_strdup(app_path);
    w->started_ms = fr_mono_ms();
    pthread_mutex_init(&w->census_mu, NULL);
    fr_errors_t errs = {0};
    w->vm = fr_vm_new(app_path, w, &errs);
    if (!w->vm) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.items[i]);
        fr_errors_free(&errs);
        pthread_mutex_destroy(&w->census_mu);
        uv_loop_close(w->loop);
        free(w->app_path);
        free(w);
        return NULL;
    }
    return w;
}

/* Runs the loop until the drain is over, then lets the last handles close. */
static void worker_main(void *arg) {
    fr_worker_t *w = arg;
    uv_run(w->loop, UV_RUN_DEFAULT);
    fr_info("stopped");
    fr_vm_retire(w->vm);
    fr_redis_free(w->redis);
    w->redis = NULL;
    uv_run(w->loop, UV_RUN_DEFAULT);
}

/* Aborts a worker whose loop never ran: its handles close and its loop empties. */
static void worker_abandon(fr_worker_t *w) {
    if (w->ready) {
        w->stopping = 1;
        uv_close((uv_handle_t *)&w->listener, NULL);
        uv_close((uv_handle_t *)&w->heartbeat_timer, NULL);
        uv_close((uv_handle_t *)&w->sweep_timer, NULL);
        uv_close((uv_handle_t *)&w->sig_hup, NULL);
        uv_timer_init(w->loop, &w->drain_timer);
        worker_finish(w);
    }
    fr_vm_retire(w->vm);
    fr_redis_free(w->redis);
    w->redis = NULL;
    uv_run(w->loop, UV_RUN_DEFAULT);
}

/* After every thread has ended: frees what the worker owns. Returns its exit code. */
static int worker_free(fr_worker_t *w) {
    int code = w->exit_code;
    if (code == 0 && !w->stopping)
        code = 1;
    fr_vm_release(w->vm);
    if (w->hub == &w->own_hub && fr_hub_ready(&w->own_hub))
        fr_hub_close(&w->own_hub);
    fr_config_free(&w->start_config);
    free(w->tier_rejected);
    free(w->app_path);
    pthread_mutex_destroy(&w->census_mu);
    int rc = uv_loop_close(w->loop);
    if (rc != 0) {
        fr_error("event loop closed with handles still open: %s", uv_strerror(rc));
        if (code == 0)
            code = 1;
    }
    free(w);
    return code;
}

static size_t cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
        (n <= 0 || CPU_COUNT(&set) < n))
        n = CPU_COUNT(&set);
    return n > 0 ? (size_t)(n > 64 ? 64 : n) : 1;
}

int fr_server_run(const char *app_path, const char *listen_override) {
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)fr_now_ms());
    fr_conn_init_parser();
    fr_process_t proc;
    memset(&proc, 0, sizeof proc);
    fr_process_t *p = &proc;

    fr_worker_t *first = worker_new(p, 0, app_path);
    if (!first)
        return 1;
    fr_config_t cfg;
    fr_config_copy(&cfg, &first->vm->config);
    int code = 0;
    if (listen_override &&
        fr_config_parse_listen(listen_override, cfg.host, sizeof cfg.host, &cfg.port) < 0) {
        fprintf(stderr, "freshet: --listen wants HOST:PORT, got '%s'\n", listen_override);
        first->stopping = 1;
        first->exit_code = 2;
        worker_abandon(first);
        code = worker_free(first);
        fr_config_free(&cfg);
        return code;
    }
    p->nworkers = cfg.workers > 0 ? (size_t)cfg.workers : cores();
    p->workers = fr_calloc(p->nworkers, sizeof *p->workers);
    p->workers[0] = first;
    fr_log_set_json(cfg.log_json);
    if (cfg.log_level >= 0)
        fr_log_set_default_level((fr_log_level_t)cfg.log_level);
    fr_log_start();
    size_t fd_limit = raise_nofile();
    if (strcmp(cfg.broker, "memory") == 0) {
        fr_hub_init(&p->hub, p->nworkers, cfg.replay_events, cfg.replay_ms, fr_now_ms());
        p->hub_ready = 1;
    }
    fr_ratelimit_init(&p->limits);

    size_t started = 0;
    int failed = 0;
    for (size_t i = 0; i < p->nworkers && !failed; i++) {
        if (i > 0 && !(p->workers[i] = worker_new(p, (unsigned)i, app_path))) {
            failed = 1;
            break;
        }
        started = i + 1;
        if (worker_setup(p, p->workers[i], &cfg) < 0)
            failed = 1;
        else if (i == 0)
            cfg.port = p->workers[0]->config->port; /* a chosen port 0 is now a number */
    }
    if (!failed) {
        size_t fd_base = count_open_fds();
        for (size_t i = 0; i < p->nworkers; i++) {
            p->workers[i]->fd_base = fd_base;
            p->workers[i]->fd_limit = fd_limit;
        }
        fr_info("listening on http://%s:%d", cfg.host, cfg.port);
        if (p->nworkers > 1)
            fr_info("%zu workers (threads), each with its own listener, loop and Lua VM",
                    p->nworkers);
        for (size_t i = 1; i < p->nworkers; i++) {
            if (uv_thread_create(&p->workers[i]->thread, worker_main, p->workers[i]) != 0) {
                fr_error("cannot start worker thread %zu", i);
                abort();
            }
        }
        worker_main(p->workers[0]);
        for (size_t i = 1; i < p->nworkers; i++)
            uv_thread_join(&p->workers[i]->thread);
    } else {
        for (size_t i = 0; i < started; i++)
            worker_abandon(p->workers[i]);
        if (code == 0)
            code = 1;
    }
    for (size_t i = 0; i < started; i++) {
        int c = worker_free(p->workers[i]);
        if (c > code)
            code = c;
    }
    free(p->workers);
    if (p->hub_ready)
        fr_hub_close(&p->hub);
    fr_ratelimit_close(&p->limits);
    fr_config_free(&cfg);
    fr_shared_shutdown();
    fr_log_stop();
    return code;
}
