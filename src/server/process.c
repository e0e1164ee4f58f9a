/* The process: its workers (threads), what they share, the descriptor limit, and the sums
 * over every worker that /metrics, /health and freshet.metrics() report. */
#include "server/process.h"

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "core/shared_dict.h"

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
        t->nconns += __atomic_load_n(&x->http.nconns, __ATOMIC_RELAXED);
        t->nstreams += __atomic_load_n(&x->streams.count, __ATOMIC_RELAXED);
        t->requests += __atomic_load_n(&x->http.requests, __ATOMIC_RELAXED);
        t->reloads += __atomic_load_n(&x->reloads, __ATOMIC_RELAXED);
        t->reload_failures += __atomic_load_n(&x->reload_failures, __ATOMIC_RELAXED);
        if (tier_rejected && x->tier_rejected)
            add_counters(tier_rejected, x->tier_rejected, ntiers);
        /* Redis: each worker has a hub of its own. */
        if (x->own_hub_ready) {
            size_t nt;
            uint64_t pub;
            fr_hub_stats((fr_hub_t *)&x->own_hub, &nt, &pub);
            t->ntopics += nt;
            t->published += pub;
        }
    }
    if (w->proc && w->proc->hub_ready)
        fr_hub_stats(&w->proc->hub, &t->ntopics, &t->published);
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

size_t fr_process_count_fds(void) {
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 16;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory stream itself */
}

static size_t cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
        (n <= 0 || CPU_COUNT(&set) < n))
        n = CPU_COUNT(&set);
    return n > 0 ? (size_t)(n > 64 ? 64 : n) : 1;
}

/* Starts the worker threads (worker 0 is this one) and waits for all of them. */
static void run_workers(fr_process_t *p, const fr_config_t *cfg, size_t fd_limit) {
    size_t fd_base = fr_process_count_fds();
    for (size_t i = 0; i < p->nworkers; i++) {
        p->workers[i]->fd_base = fd_base;
        p->workers[i]->fd_limit = fd_limit;
    }
    fr_info("descriptors: %zu open at start; up to %zu streams (%.0f%% of %zu), connections "
            "accepted up to %zu",
            fd_base, fr_worker_stream_capacity(p->workers[0]), cfg->streams_at * 100, fd_limit,
            fr_worker_accept_cap(p->workers[0]));
    fr_info("listening on %s://%s:%d", cfg->tls_cert ? "https" : "http", cfg->host, cfg->port);
    if (p->nworkers > 1)
        fr_info("%zu workers (threads), each with its own listener, loop and Lua VM",
                p->nworkers);
    for (size_t i = 1; i < p->nworkers; i++) {
        if (uv_thread_create(&p->workers[i]->thread, fr_worker_main, p->workers[i]) != 0) {
            fr_error("cannot start worker thread %zu", i);
            abort();
        }
    }
    fr_worker_main(p->workers[0]);
    for (size_t i = 1; i < p->nworkers; i++)
        uv_thread_join(&p->workers[i]->thread);
}

static int open_access_log(fr_process_t *p, const char *path) {
    char err[512];
    if (!(p->access = fr_linefile_open(path, err, sizeof err))) {
        fr_error("access_log: %s", err);
        return -1;
    }
    return 0;
}

/* Sets up the first worker, creates and sets up the others, runs them all until they stop and
 * frees them; returns the exit code. */
static int start_and_run(fr_process_t *p, const char *app_path, fr_config_t *cfg,
                         size_t fd_limit) {
    size_t started = 0;
    int failed = 0, code = 0;
    for (size_t i = 0; i < p->nworkers && !failed; i++) {
        if (i > 0 && !(p->workers[i] = fr_worker_new(p, (unsigned)i, app_path, NULL))) {
            failed = 1;
            break;
        }
        started = i + 1;
        if (fr_worker_setup(p, p->workers[i], cfg) < 0)
            failed = 1;
        else if (i == 0)
            cfg->port = p->workers[0]->config->port; /* a chosen port 0 is now a number */
    }
    if (!failed) {
        run_workers(p, cfg, fd_limit);
    } else {
        for (size_t i = 0; i < started; i++)
            fr_worker_abandon(p->workers[i]);
        code = 1;
    }
    for (size_t i = 0; i < started; i++) {
        int c = fr_worker_free(p->workers[i]);
        if (c > code)
            code = c;
    }
    return code;
}

int fr_server_run(const char *app_path, const char *listen_override) {
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)fr_now_ms());
    fr_http_init_parser();
    fr_process_t proc;
    memset(&proc, 0, sizeof proc);
    fr_process_t *p = &proc;

    fr_worker_t *first = fr_worker_new(p, 0, app_path, NULL);
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
        fr_worker_abandon(first);
        code = fr_worker_free(first);
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
    fr_h2_clients_init(&p->h2_clients);
    if (cfg.access_log && open_access_log(p, cfg.access_log) < 0) {
        first->stopping = 1;
        first->exit_code = 1;
        fr_worker_abandon(first);
        code = fr_worker_free(first);
    } else {
        code = start_and_run(p, app_path, &cfg, fd_limit);
    }
    free(p->workers);
    if (p->hub_ready)
        fr_hub_close(&p->hub);
    fr_ratelimit_close(&p->limits);
    fr_h2_clients_close(&p->h2_clients);
    if (p->access)
        fr_linefile_close(p->access);
    fr_config_free(&cfg);
    fr_shared_shutdown();
    fr_log_stop();
    return code;
}
