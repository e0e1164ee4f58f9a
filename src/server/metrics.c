/* GET /metrics (Prometheus text format) and GET /health: the whole process, summed over its
 * workers, with gauges of the present counted when scraped. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "codec/procnet.h"
#include "server/process.h"

static void header(fr_buf_t *o, const char *name, const char *type, const char *help) {
    fr_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(fr_buf_t *o, const char *name, const char *help, unsigned long v) {
    header(o, name, "counter", help);
    fr_buf_printf(o, "%s %lu\n", name, v);
}

static void gauge(fr_buf_t *o, const char *name, const char *help, double v) {
    header(o, name, "gauge", help);
    fr_buf_printf(o, "%s %.17g\n", name, v);
}

/* Label values are route patterns and tier names: escape what the text format reserves. */
static const char *label(const char *s, char *buf, size_t cap) {
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            buf[n++] = '\\';
            buf[n++] = *s;
        } else if (*s == '\n') {
            buf[n++] = '\\';
            buf[n++] = 'n';
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
    return buf;
}

static const double depth_bounds[FR_CENSUS_BOUNDS] = {0, 1, 4, 16, 64, 256, 1024, 4096};

static void hist_add(fr_census_hist_t *h, double v) {
    for (size_t i = 0; i < FR_CENSUS_BOUNDS; i++) {
        if (v <= depth_bounds[i])
            h->counts[i]++;
    }
    h->total++;
    h->sum += v;
}

static void hist_merge(fr_census_hist_t *dst, const fr_census_hist_t *src) {
    for (size_t i = 0; i < FR_CENSUS_BOUNDS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
}

static void census_count(fr_census_t *c, const char *route, const char *transport,
                         const char *state, unsigned long n) {
    size_t g = 0;
    while (g < c->ngroups &&
           !(strcmp(c->groups[g].route, route) == 0 && c->groups[g].transport == transport &&
             c->groups[g].state == state))
        g++;
    if (g == c->ngroups) {
        if (g == FR_CENSUS_GROUPS)
            return;
        snprintf(c->groups[g].route, sizeof c->groups[g].route, "%s", route);
        c->groups[g].transport = transport;
        c->groups[g].state = state;
        c->groups[g].n = 0;
        c->ngroups++;
    }
    c->groups[g].n += n;
}

/* Counts the worker's own connections and streams (its thread only). */
static void census_take(fr_worker_t *w, fr_census_t *out) {
    memset(out, 0, sizeof *out);
    const fr_list_t *all = &w->streams.all;
    for (fr_list_t *l = fr_list_first(all); l; l = fr_list_next(all, l)) {
        const fr_stream_t *s = FR_LIST_ENTRY(l, fr_stream_t, all_link);
        if (!s->started || s->ending == 2)
            continue;
        census_count(out, s->route->pattern.source, s->tp->name, s->ending ? "closing" : "active",
                     1);
        hist_add(&out->depth, (double)s->out.live);
        hist_add(&out->lag, (double)(s->out.live + s->out.streak));
    }
    const fr_list_t *conns = &w->http.conns;
    for (fr_list_t *l = fr_list_first(conns); l; l = fr_list_next(conns, l)) {
        const fr_conn_t *c = FR_LIST_ENTRY(l, fr_conn_t, link);
        if (c->streamed || c->x.sink.owner_ops)
            continue; /* counted as a stream (or about to be one) */
        census_count(out, "", "http", c->wait == FR_WAIT_IDLE ? "idle" : "reading", 1);
    }
}

void fr_server_share_census(fr_worker_t *w) {
    fr_census_t fresh;
    census_take(w, &fresh);
    pthread_mutex_lock(&w->census_mu);
    w->census = fresh;
    pthread_mutex_unlock(&w->census_mu);
}

static void hist_put(fr_buf_t *o, const char *name, const char *help, const fr_census_hist_t *h) {
    header(o, name, "histogram", help);
    for (size_t i = 0; i < FR_CENSUS_BOUNDS; i++)
        fr_buf_printf(o, "%s_bucket{le=\"%g\"} %lu\n", name, depth_bounds[i], h->counts[i]);
    fr_buf_printf(o, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.17g\n%s_count %lu\n", name, h->total,
                  name, h->sum, name, h->total);
}

/* Resident and virtual size from /proc/self/statm (pages). */
static void memory_bytes(double *resident, double *virt) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    *resident = *virt = 0;
    if (!f)
        return;
    if (fscanf(f, "%ld %ld", &pages, &rss) == 2) {
        long page = sysconf(_SC_PAGESIZE);
        *resident = (double)rss * (double)page;
        *virt = (double)pages * (double)page;
    }
    fclose(f);
}

/* The process_* family every Prometheus client library exports, under the same names, so
 * the usual dashboards and alerts work unchanged. */
static void put_process(fr_buf_t *o, const fr_worker_t *w) {
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double resident, virt;
    memory_bytes(&resident, &virt);
    const fr_worker_t *first = w->proc && w->proc->nworkers ? w->proc->workers[0] : w;
    header(o, "process_cpu_seconds_total", "counter", "User and system CPU time, in seconds.");
    fr_buf_printf(o, "process_cpu_seconds_total %.6f\n", cpu);
    gauge(o, "process_open_fds", "Open file descriptors.", (double)fr_process_count_fds());
    gauge(o, "process_max_fds", "The soft limit on open file descriptors in force.",
          (double)w->fd_limit);
    gauge(o, "process_resident_memory_bytes", "Resident memory size in bytes.", resident);
    gauge(o, "process_virtual_memory_bytes", "Virtual memory size in bytes.", virt);
    header(o, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch, in seconds.");
    fr_buf_printf(o, "process_start_time_seconds %.3f\n", (double)first->started_unix_ms / 1000.0);
    header(o, "freshet_build_info", "gauge", "Always 1; the version is in the label.");
    fr_buf_printf(o, "freshet_build_info{version=\"%s\"} 1\n", FR_VERSION);
}

/* Connections by route, transport and state: this worker's counted now, the others' as of
 * their last heartbeat tick. */
static void put_connections(fr_buf_t *o, fr_worker_t *w, fr_census_t *all) {
    char lb[256];
    census_take(w, all);
    for (size_t i = 0; w->proc && i < w->proc->nworkers; i++) {
        fr_worker_t *x = w->proc->workers[i];
        if (x == w)
            continue;
        pthread_mutex_lock(&x->census_mu);
        for (size_t g = 0; g < x->census.ngroups; g++)
            census_count(all, x->census.groups[g].route, x->census.groups[g].transport,
                         x->census.groups[g].state, x->census.groups[g].n);
        hist_merge(&all->depth, &x->census.depth);
        hist_merge(&all->lag, &x->census.lag);
        pthread_mutex_unlock(&x->census_mu);
    }
    header(o, "freshet_connections", "gauge",
           "Open connections by route, transport and state (route=\"none\": no stream).");
    /* No label value is empty: a connection that carries no stream has route "none" (a route
     * pattern always starts with "/"). */
    for (size_t g = 0; g < all->ngroups; g++) {
        const fr_census_group_t *gr = &all->groups[g];
        fr_buf_printf(o, "freshet_connections{route=\"%s\",transport=\"%s\",state=\"%s\"} %lu\n",
                      gr->route[0] ? label(gr->route, lb, sizeof lb) : "none", gr->transport,
                      gr->state, gr->n);
    }
    if (all->ngroups == 0)
        fr_buf_printf(o, "freshet_connections{route=\"none\",transport=\"http\",state=\"reading\"} "
                         "0\n");
}

/* What happened to events: published, dropped, delivered, replayed; streams given up. */
static void put_events(fr_buf_t *o, const fr_metrics_t *m) {
    static const char *const prio[] = {"telemetry", "normal", "critical"};
    header(o, "freshet_events_published_total", "counter", "Events published, by priority.");
    for (int p = 0; p < 3; p++)
        fr_buf_printf(o, "freshet_events_published_total{priority=\"%s\"} %lu\n", prio[p],
                      m->published[p]);
    header(o, "freshet_events_dropped_total", "counter",
           "Deliveries dropped by slow streams, by priority and reason.");
    for (int p = 0; p < 3; p++)
        fr_buf_printf(o, "freshet_events_dropped_total{priority=\"%s\",reason=\"queue\"} %lu\n",
                      prio[p], m->dropped[p]);
    fr_buf_printf(o, "freshet_events_dropped_total{priority=\"any\",reason=\"conflated\"} %lu\n",
                  m->conflated);
    counter(o, "freshet_events_delivered_total", "Events written to streams.", m->delivered);
    counter(o, "freshet_events_replayed_total", "Events sent from replay on resume.", m->replayed);
    header(o, "freshet_streams_evicted_total", "counter",
           "Streams ended because they could not keep up, by reason.");
    fr_buf_printf(o, "freshet_streams_evicted_total{reason=\"lag\"} %lu\n", m->evicted_lag);
    fr_buf_printf(o, "freshet_streams_evicted_total{reason=\"drop\"} %lu\n", m->evicted_drop);
    fr_buf_printf(o, "freshet_streams_evicted_total{reason=\"slow\"} %lu\n", m->evicted_slow);
    header(o, "freshet_resumes_total", "counter",
           "Streams that arrived with a Last-Event-ID, by outcome.");
    fr_buf_printf(o, "freshet_resumes_total{outcome=\"replayed\"} %lu\n",
                  m->resumes - m->resume_stale - m->resume_reset);
    fr_buf_printf(o, "freshet_resumes_total{outcome=\"stale_416\"} %lu\n", m->resume_stale);
    fr_buf_printf(o, "freshet_resumes_total{outcome=\"reset\"} %lu\n", m->resume_reset);
    fr_buf_printf(o, "freshet_resumes_total{outcome=\"invalid_400\"} %lu\n", m->resume_invalid);
}

/* Scripts, limits and the requests they refused. */
static void put_scripts_and_limits(fr_buf_t *o, const fr_worker_t *w, const fr_totals_t *t,
                                   const unsigned long *tier_rejected) {
    const fr_metrics_t *m = &t->m;
    char lb[128];
    counter(o, "freshet_lua_errors_total", "Errors raised by route scripts and timers.",
            m->lua_errors);
    header(o, "freshet_lua_stopped_total", "counter",
           "Lua hooks stopped by a limit (also counted as Lua errors), by limit.");
    fr_buf_printf(o, "freshet_lua_stopped_total{limit=\"budget\"} %lu\n", m->lua_budget_stops);
    fr_buf_printf(o, "freshet_lua_stopped_total{limit=\"memory\"} %lu\n", m->lua_memory_stops);
    counter(o, "freshet_reloads_total", "Successful script reloads.", t->reloads);
    counter(o, "freshet_reload_failures_total",
            "Reloads refused because a script, or the TLS certificate or key, failed to load.",
            t->reload_failures);
    header(o, "freshet_rate_limited_total", "counter", "Requests answered 429, by tier.");
    for (size_t i = 0; i < w->config->ntiers; i++)
        fr_buf_printf(o, "freshet_rate_limited_total{tier=\"%s\"} %lu\n",
                      label(w->config->tiers[i].name, lb, sizeof lb), tier_rejected[i]);
    /* Without tiers nothing is limited: the family has no samples, rather than an empty
     * label value. */
    counter(o, "freshet_streams_refused_fd_total",
            "New streams refused at the capacity the descriptor limit leaves.", m->refused_fds);
    counter(o, "freshet_streams_refused_in_band_total",
            "Stream refusals answered 200 with a freshet-refused event, so that a browser's "
            "EventSource retries.",
            m->refused_in_band);
    counter(o, "freshet_accept_paused_total",
            "Times accepting paused because the descriptor limit was near.", m->accept_pauses);
    counter(o, "freshet_request_timeouts_total", "Requests answered 408.", m->timeouts);
    counter(o, "freshet_idle_closed_total", "Keep-alive connections closed while idle.",
            m->idle_closed);
    header(o, "freshet_tls_handshakes_total", "counter",
           "TLS handshakes, by outcome (failed: refused, broken or not done in time).");
    fr_buf_printf(o, "freshet_tls_handshakes_total{outcome=\"ok\"} %lu\n", m->tls_handshakes);
    fr_buf_printf(o, "freshet_tls_handshakes_total{outcome=\"failed\"} %lu\n", m->tls_failures);
    counter(o, "freshet_h2_connections_total", "Connections that spoke HTTP/2.",
            m->h2_connections);
    counter(o, "freshet_h2_streams_total", "HTTP/2 streams (requests) opened.", m->h2_streams);
    counter(o, "freshet_h2_resets_total", "HTTP/2 streams the client reset (RST_STREAM).",
            m->h2_resets);
    counter(o, "freshet_h2_streams_refused_total",
            "HTTP/2 streams refused (RST_STREAM REFUSED_STREAM): the client already had "
            "limits.h2_streams_per_client open over all its connections.",
            m->h2_refused);
    counter(o, "freshet_h2_goaway_abuse_total",
            "HTTP/2 connections sent away (GOAWAY) for floods or header blocks past the limit.",
            m->h2_abuse);
    counter(o, "freshet_ack_timeouts_total",
            "Connections closed because the peer left sent bytes or keep-alive probes "
            "unacknowledged for timeouts.ack (a silent drop).",
            m->ack_timeouts);
    counter(o, "freshet_connections_reset_total",
            "Connections closed abortively (RST): dead or hostile peers, bytes a peer would not "
            "take.",
            m->resets);
}

static void sum_count(void *ctx, const char *name, unsigned long n) {
    fr_counts_add(ctx, name, n);
}

typedef struct {
    fr_buf_t *o;
    char lb[256];
} put_count_t;

static void put_count(void *ctx, const char *name, unsigned long n) {
    put_count_t *p = ctx;
    fr_buf_printf(p->o, "freshet_deprecated_requests_total{route=\"%s\"} %lu\n",
                  label(name, p->lb, sizeof p->lb), n);
}

/* Requests to deprecated routes, by route, summed over the workers. */
static void put_deprecated(fr_buf_t *o, fr_worker_t *w) {
    header(o, "freshet_deprecated_requests_total", "counter",
           "Requests to routes marked deprecated (answered with Deprecation, Sunset and Link), "
           "by route.");
    fr_counts_t sum;
    fr_counts_init(&sum);
    for (size_t i = 0; w->proc && i < w->proc->nworkers; i++)
        fr_counts_each(&w->proc->workers[i]->deprecated, sum_count, &sum);
    if (!w->proc)
        fr_counts_each(&w->deprecated, sum_count, &sum);
    put_count_t p = {.o = o};
    fr_counts_each(&sum, put_count, &p);
    fr_counts_free(&sum);
}

/* The Redis broker: each worker is a node with its own connections, so the gauges count the
 * workers in that state (1 with one worker). */
static void put_redis(fr_buf_t *o, const fr_metrics_t *m, size_t nworkers) {
    gauge(o, "freshet_redis_nodes", "Redis nodes (workers) of this process.", (double)nworkers);
    gauge(o, "freshet_redis_primary_up",
          "Nodes whose command connection to the Redis primary is ready.",
          (double)m->redis_primary_up);
    gauge(o, "freshet_redis_subscriber_live",
          "Nodes whose subscriber connection is ready and subscribed to its probe channel.",
          (double)m->redis_sub_live);
    counter(o, "freshet_redis_probe_failures_total",
            "Subscriber probes that did not come back (the subscriber was reconnected).",
            m->redis_probe_failures);
    counter(o, "freshet_redis_subscriber_losses_total",
            "Subscriber connections lost after they were ready.", m->redis_sub_losses);
    counter(o, "freshet_redis_failovers_total",
            "Times a node dropped its connections because the primary moved or stopped being "
            "one.", m->redis_failovers);
    counter(o, "freshet_redis_publishes_unconfirmed_total",
            "Publishes stored but not confirmed by ?replicas=N in time (answered 503).",
            m->redis_unconfirmed);
}

/* The port the worker listens on (the configured one, or what the kernel chose for 0). */
static unsigned listen_port(fr_worker_t *w) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_is_active((uv_handle_t *)&w->listener) &&
        uv_tcp_getsockname(&w->listener, (struct sockaddr *)&ss, &len) == 0)
        return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    return (unsigned)w->config->port;
}

/* Reads a /proc table whole into b (it is generated as it is read: no disk is waited on). */
static int read_table(const char *path, fr_buf_t *b) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char chunk[16384];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fr_buf_put(b, chunk, n);
    fclose(f);
    return 0;
}

/* The listening port's TCP sockets by state, as the kernel counts them (every socket of the
 * machine with that local port: this process's, and any other listening on it too). */
static void put_socket_states(fr_buf_t *o, fr_worker_t *w) {
    unsigned long counts[FR_TCP_STATES] = {0};
    unsigned port = listen_port(w);
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    int read_any = 0;
    for (size_t i = 0; i < FR_ARRAY_LEN(tables); i++) {
        fr_buf_t b = {0};
        if (read_table(tables[i], &b) == 0) {
            read_any = 1;
            fr_procnet_count(b.p ? b.p : "", b.len, port, counts);
        }
        fr_buf_free(&b);
    }
    if (!read_any)
        return;
    header(o, "freshet_tcp_sockets", "gauge",
           "TCP sockets on the listening port by state, counted by the kernel "
           "(/proc/net/tcp and tcp6).");
    for (int s = 1; s < FR_TCP_STATES; s++)
        fr_buf_printf(o, "freshet_tcp_sockets{state=\"%s\"} %lu\n", fr_tcp_state_names[s],
                      counts[s]);
}

void fr_server_respond_metrics(void *ctx, fr_exchange_t *x) {
    fr_worker_t *w = ctx;
    fr_totals_t totals;
    unsigned long *tier_rejected = fr_calloc(w->config->ntiers + 1, sizeof *tier_rejected);
    fr_worker_totals(w, &totals, tier_rejected);
    const fr_metrics_t *m = &totals.m;
    fr_buf_t o = {0};
    fr_buf_reserve(&o, 16384);
    fr_census_t all;
    put_connections(&o, w, &all);
    counter(&o, "freshet_connections_accepted_total", "Connections accepted since start.",
            m->connections);
    counter(&o, "freshet_streams_started_total", "Streams started since start.", m->streams);
    put_events(&o, m);
    hist_put(&o, "freshet_stream_queue_depth_events", "Events queued per open stream.",
             &all.depth);
    hist_put(&o, "freshet_stream_lag_events",
             "Events behind (queued plus dropped in a row) per open stream.", &all.lag);
    counter(&o, "freshet_stream_bytes_written_total", "Stream bytes handed to sockets.",
            m->bytes_written);
    counter(&o, "freshet_heartbeats_total", "Heartbeat comments sent.", m->heartbeats);
    put_scripts_and_limits(&o, w, &totals, tier_rejected);
    put_deprecated(&o, w);
    put_socket_states(&o, w);
    if (strcmp(w->config->broker, "memory") != 0)
        put_redis(&o, m, w->proc ? w->proc->nworkers : 1);
    counter(&o, "freshet_log_lines_dropped_total", "Log lines dropped because stderr was slow.",
            fr_log_dropped());
    if (w->proc && w->proc->access)
        counter(&o, "freshet_access_log_lines_dropped_total",
                "Access-log lines dropped because the file was written too slowly.",
                fr_linefile_dropped(w->proc->access));
    gauge(&o, "freshet_topics", "Topics held in memory.", (double)totals.ntopics);
    gauge(&o, "freshet_stream_capacity",
          "Streams admitted at most (streams_at of the limit, less what was open at start).",
          (double)fr_worker_stream_capacity(w));
    put_process(&o, w);
    fr_exchange_respond(x, 200, "text/plain; version=0.0.4; charset=utf-8",
                    "Cache-Control: no-cache\r\n", o.p, o.len);
    fr_buf_free(&o);
    free(tier_rejected);
}

/* Whether a load balancer should send this process new clients: not while it drains, and not
 * while a worker's broker cannot take publishes (Redis down, no primary). With Redis each worker
 * is a node with connections of its own, and a publish may reach any of them: all must be up. */
void fr_server_respond_ready(void *ctx, fr_exchange_t *x) {
    fr_worker_t *w = ctx;
    const char *why = NULL;
    int draining = w->proc ? __atomic_load_n(&w->proc->draining, __ATOMIC_RELAXED) : w->stopping;
    if (draining) {
        why = "draining";
    } else if (strcmp(w->config->broker, "memory") != 0) {
        fr_totals_t t;
        fr_worker_totals(w, &t, NULL);
        if (t.m.redis_primary_up < (w->proc ? w->proc->nworkers : 1))
            why = "broker unavailable";
    }
    char body[96];
    int n = why ? snprintf(body, sizeof body, "{\"ready\":false,\"reason\":\"%s\"}", why)
                : snprintf(body, sizeof body, "{\"ready\":true}");
    fr_exchange_respond(x, why ? 503 : 200, "application/json",
                        why ? "Cache-Control: no-cache\r\nRetry-After: 5\r\n"
                            : "Cache-Control: no-cache\r\n",
                        body, (size_t)n);
}

void fr_server_respond_health(void *ctx, fr_exchange_t *x) {
    fr_worker_t *w = ctx;
    char body[1024], extra[600] = "";
    int ok = w->broker && w->broker->ops->ready(w->broker);
    if (w->broker && w->broker->ops->health)
        w->broker->ops->health(w->broker, extra, sizeof extra);
    fr_totals_t t;
    fr_worker_totals(w, &t, NULL);
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"broker\":{\"kind\":\"%s\",\"status\":\"%s\"%s},"
                     "\"connections\":%zu,\"streams\":%zu,\"topics\":%zu,"
                     "\"published\":%llu,\"uptime\":%llu}",
                     ok ? "ok" : "degraded", w->broker ? w->broker->ops->kind : "memory",
                     ok ? "ok" : "unavailable", extra, t.nconns, t.nstreams, t.ntopics,
                     (unsigned long long)t.published,
                     (unsigned long long)((fr_mono_ms() - w->started_ms) / 1000));
    if (n < 0 || (size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    fr_exchange_respond(x, 200, "application/json", "Cache-Control: no-cache\r\n", body, (size_t)n);
}
