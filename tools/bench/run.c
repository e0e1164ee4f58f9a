/* The parent side of a run: phases, progress line, aggregation and the report; see run.h. */
#include "run.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "procstat.h"
#include "pub.h"
#include "report.h"
#include "sub.h"

enum { PH_CONNECT, PH_PUBLISH, PH_TAIL, PH_ENDING, PH_DONE };
static const char *phase_names[] = {"connecting", "publishing", "tail", "ending", "done"};

typedef struct run_s run_t;

/* One child process as the parent sees it. */
typedef struct shard_s {
    fr_ipc_t ch;
    run_t *run;
    pid_t pid;
    fr_counters_t c;     /* the latest READY or SNAP */
    uint64_t imax;       /* worst latency reported since the last progress line */
    fr_ipc_final_t *fin; /* the FINAL record, once in (owned) */
    int ready;           /* READY arrived, or the child is gone */
    int closed;
} shard_t;

struct run_s {
    uv_loop_t loop;
    const fr_opts_t *o;
    fr_subs_t *local; /* subscribers in this process (no children), owned */
    int local_closed;
    shard_t *shards;
    uint32_t nshards;
    fr_pub_t pub;
    int pub_closed;
    int phase;
    uv_timer_t progress;  /* one line a second on stderr */
    uv_timer_t measure;   /* warmup over: sample the server */
    uv_timer_t tail;      /* the tail's time is up */
    uv_timer_t caught_up; /* polls, in the tail, whether every expected event is in */
    uv_timer_t deadline;  /* the run's overall bound, then the wait for children to finish */
    uv_signal_t sigint;
    uint64_t t0;          /* monotonic ns at the start */
    uint64_t connect_end; /* monotonic ns when the connect phase ended */
    uint64_t pub_done_rt; /* realtime ns when publishing stopped */
    uint64_t prev_events; /* deliveries (warmup included) at the last progress line */
    uint64_t prev_sent;   /* events sent at the last progress line */
    uint64_t prev_at;     /* monotonic ns of the last progress line */
    fr_result_t res;
    int exit_code;
};

static void end_run(run_t *r);

double fr_run_bound_s(const fr_opts_t *o) {
    return o->connect_timeout + o->warmup + o->duration + o->tail + 5;
}

static void sample(run_t *r, fr_procstat_t *at) {
    if (r->o->nserver_pids)
        fr_procstat_sample(r->o->server_pids, r->o->nserver_pids, at);
}

/* Everything the subscribers counted so far, wherever they run. */
static void totals(run_t *r, fr_counters_t *out) {
    memset(out, 0, sizeof *out);
    if (r->local)
        fr_counters_add(out, &r->local->c);
    for (uint32_t i = 0; i < r->nshards; i++)
        fr_counters_add(out, r->shards[i].fin ? &r->shards[i].fin->c : &r->shards[i].c);
}

static void on_progress(uv_timer_t *t) {
    run_t *r = t->data;
    fr_counters_t c;
    totals(r, &c);
    uint64_t imax = c.interval_lat_max;
    for (uint32_t i = 0; i < r->nshards; i++) {
        if (r->shards[i].imax > imax)
            imax = r->shards[i].imax;
        r->shards[i].imax = 0;
    }
    if (r->local)
        r->local->c.interval_lat_max = 0;
    uint64_t now = fr_now_mono();
    double dt = (double)(now - r->prev_at) / 1e9;
    double elapsed = (double)(now - r->t0) / 1e9;
    if (dt <= 0)
        dt = 1;
    if (r->o->quiet) {
        /* nothing to print */
    } else if (r->phase == PH_CONNECT) {
        fprintf(stderr, "freshet-bench %6.1fs connecting: %llu/%u ready, %llu failed\n", elapsed,
                (unsigned long long)c.ready, r->o->subscribers,
                (unsigned long long)c.connect_failed);
    } else {
        uint64_t events = c.delivered + c.warmup_delivered;
        const char *ph = phase_names[r->phase];
        if (r->phase == PH_PUBLISH && fr_now_rt() < r->pub.measure_rt)
            ph = "warmup";
        char storm[64] = "";
        if (c.storm_dropped)
            snprintf(storm, sizeof storm, ", storm: %llu/%llu live again",
                     (unsigned long long)c.storm_live, (unsigned long long)c.storm_dropped);
        fprintf(stderr,
                "freshet-bench %6.1fs %s: sent %llu (%.0f/s, %.1f ms behind), "
                "received %.0f/s, worst latency %.2f ms, gaps %llu, dup %llu, ooo %llu, "
                "errors %llu%s\n",
                elapsed, ph, (unsigned long long)r->pub.next,
                (double)(r->pub.next - r->prev_sent) / dt, (double)r->pub.lag_now / 1e6,
                (double)(events - r->prev_events) / dt, (double)imax / 1e6,
                (unsigned long long)c.gaps, (unsigned long long)c.duplicates,
                (unsigned long long)c.out_of_order,
                (unsigned long long)(c.connect_failed + c.disconnects + c.parse_errors +
                                     c.wrong_topic + r->pub.errors),
                storm);
        r->prev_events = events;
    }
    r->prev_sent = r->pub.next;
    r->prev_at = now;
}

/* Tells every subscriber group that events [g0, g1) were published after warmup. */
static void send_window(run_t *r, uint64_t g0, uint64_t g1) {
    fr_ipc_window_t w = {g0, g1};
    if (r->local)
        fr_subs_set_window(r->local, g0, g1);
    for (uint32_t i = 0; i < r->nshards; i++)
        if (!r->shards[i].ch.eof)
            fr_ipc_send(&r->shards[i].ch, FR_IPC_WINDOW, &w, sizeof w);
}

/* ---- tail and end ---------------------------------------------------------------------- */

static uint32_t groups(run_t *r) {
    return r->local ? 1 : r->nshards;
}

static void on_caught_up_check(uv_timer_t *t) {
    run_t *r = t->data;
    fr_counters_t c;
    totals(r, &c);
    if (fr_pub_inflight(&r->pub) == 0 && c.windows == groups(r) && c.delivered >= c.expected)
        end_run(r);
}

static void on_tail_over(uv_timer_t *t) {
    end_run(t->data);
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Every part has closed: add up, report, and let the loop run dry. */
static void maybe_finish(run_t *r) {
    if (r->phase != PH_ENDING || !r->pub_closed)
        return;
    if (r->local && !r->local_closed)
        return;
    for (uint32_t i = 0; i < r->nshards; i++)
        if (!r->shards[i].closed)
            return;
    r->phase = PH_DONE;
    fr_result_t *res = &r->res;
    totals(r, &res->c);
    if (r->local) {
        fr_hist_merge(&res->latency, &r->local->latency);
        fr_hist_merge(&res->connect, &r->local->connect);
        fr_hist_merge(&res->storm, &r->local->storm);
    }
    for (uint32_t i = 0; i < r->nshards; i++) {
        if (r->shards[i].fin) {
            fr_hist_merge(&res->latency, &r->shards[i].fin->latency);
            fr_hist_merge(&res->connect, &r->shards[i].fin->connect);
            fr_hist_merge(&res->storm, &r->shards[i].fin->storm);
        } else {
            fr_counters_error(&res->c, "child %d sent no final report: latencies missing",
                              (int)r->shards[i].pid);
        }
    }
    if (!res->first_error[0] && res->c.first_error[0])
        snprintf(res->first_error, sizeof res->first_error, "%s", res->c.first_error);
    if (r->o->json)
        fr_report_json(stdout, res);
    else
        fr_report_text(stdout, res);
    fflush(stdout);
    close_handle((uv_handle_t *)&r->progress);
    close_handle((uv_handle_t *)&r->measure);
    close_handle((uv_handle_t *)&r->tail);
    close_handle((uv_handle_t *)&r->caught_up);
    close_handle((uv_handle_t *)&r->deadline);
    close_handle((uv_handle_t *)&r->sigint);
}

static void on_pub_closed(fr_pub_t *pub) {
    run_t *r = pub->data;
    r->pub_closed = 1;
    maybe_finish(r);
}

static void on_local_closed(fr_subs_t *subs) {
    run_t *r = subs->data;
    r->local_closed = 1;
    maybe_finish(r);
}

static void on_shard_closed(fr_ipc_t *ch) {
    shard_t *s = ch->data;
    s->closed = 1;
    maybe_finish(s->run);
}

/* A child that does not finish in time is left behind: its last SNAP stands in. */
static void on_final_wait_over(uv_timer_t *t) {
    run_t *r = t->data;
    for (uint32_t i = 0; i < r->nshards; i++)
        fr_ipc_close(&r->shards[i].ch, on_shard_closed);
}

/* Stops publishing and subscribing and collects the figures. Safe to call more than once. */
static void end_run(run_t *r) {
    if (r->phase >= PH_ENDING)
        return;
    r->phase = PH_ENDING;
    fr_result_t *res = &r->res;
    sample(r, &res->srv_end);
    uv_timer_stop(&r->progress);
    uv_timer_stop(&r->measure);
    uv_timer_stop(&r->tail);
    uv_timer_stop(&r->caught_up);
    uv_signal_stop(&r->sigint);

    fr_pub_t *p = &r->pub;
    uint64_t g0 = p->g0 == UINT64_MAX ? p->next : p->g0;
    res->published = p->next - g0;
    res->warmup_published = g0;
    res->publish_ok = p->ok;
    res->publish_errors = p->errors;
    res->publish_unsent = fr_pub_unsent(p);
    res->lag_max_ns = p->lag_max;
    res->ack = p->ack;
    res->connect_s = (double)((r->connect_end ? r->connect_end : fr_now_mono()) - r->t0) / 1e9;
    if (p->first_error[0])
        snprintf(res->first_error, sizeof res->first_error, "%s", p->first_error);
    if (p->measure_rt) {
        fr_counters_t c;
        totals(r, &c);
        /* Deliveries/s over the span they took: the measured publishing time, or longer when
         * the server was still delivering after the last publish; shorter only when publishing
         * broke off (failure or SIGINT). */
        uint64_t until = p->end_rt;
        if (!r->pub_done_rt)
            until = fr_now_rt();
        else if (p->first_error[0])
            until = r->pub_done_rt;
        if (c.last_delivery_rt > until)
            until = c.last_delivery_rt;
        res->measured_s = until > p->measure_rt ? (double)(until - p->measure_rt) / 1e9 : 0;
    }

    /* Stopped while publishing (SIGINT, the time bound): what was sent so far is the window,
     * and events still in flight show up as missing. */
    if (!r->pub_done_rt && p->measure_rt)
        send_window(r, g0, p->next);
    fr_pub_close(p, on_pub_closed);
    if (r->local)
        fr_subs_close(r->local, on_local_closed);
    for (uint32_t i = 0; i < r->nshards; i++)
        fr_ipc_shutdown(&r->shards[i].ch);
    if (r->nshards)
        uv_timer_start(&r->deadline, on_final_wait_over, 15000, 0);
    else
        uv_timer_stop(&r->deadline);
}

static void on_deadline(uv_timer_t *t) {
    run_t *r = t->data;
    fr_counters_error(&r->res.c, "the run reached its time bound (%.0f s)", fr_run_bound_s(r->o));
    end_run(r);
}

static void on_sigint(uv_signal_t *s, int signum) {
    run_t *r = s->data;
    r->res.interrupted = 1;
    end_run(r);
}

/* ---- publishing ------------------------------------------------------------------------ */

/* --storm: every group drops its streams now and resumes them while publishing goes on. */
static void storm(run_t *r) {
    fr_ipc_storm_t st = {r->pub.next};
    if (!r->o->storm)
        return;
    if (r->local)
        fr_subs_storm(r->local, st.g_drop);
    for (uint32_t i = 0; i < r->nshards; i++)
        if (!r->shards[i].ch.eof)
            fr_ipc_send(&r->shards[i].ch, FR_IPC_STORM, &st, sizeof st);
}

static void on_measure(uv_timer_t *t) {
    run_t *r = t->data;
    sample(r, &r->res.srv_measure);
    storm(r);
}

/* Publishing is over: tell every group which events it should have seen, then wait in the tail
 * until they are in or the tail's time is up. */
static void on_pub_done(fr_pub_t *p) {
    run_t *r = p->data;
    if (r->phase != PH_PUBLISH)
        return;
    r->phase = PH_TAIL;
    r->pub_done_rt = fr_now_rt();
    send_window(r, p->g0, p->next);
    uv_timer_start(&r->tail, on_tail_over, (uint64_t)(r->o->tail * 1000), 0);
    uv_timer_start(&r->caught_up, on_caught_up_check, 20, 50);
}

static void on_pub_connected(fr_pub_t *p) {
    run_t *r = p->data;
    if (r->phase != PH_PUBLISH)
        return;
    if (p->done) { /* could not connect */
        r->exit_code = 1;
        end_run(r);
        return;
    }
    if (r->o->warmup > 0) {
        uv_timer_start(&r->measure, on_measure, (uint64_t)(r->o->warmup * 1000), 0);
    } else {
        sample(r, &r->res.srv_measure);
        storm(r);
    }
    fr_pub_start(p, on_pub_done);
}

/* Every subscriber is streaming or has failed: publish. */
static void connect_phase_over(run_t *r) {
    if (r->phase != PH_CONNECT)
        return;
    r->connect_end = fr_now_mono();
    sample(r, &r->res.srv_ready);
    fr_counters_t c;
    totals(r, &c);
    if (r->o->subscribers > 0 && c.ready == 0) {
        fr_counters_error(&r->res.c, "no subscriber could connect");
        r->exit_code = 1;
        end_run(r);
        return;
    }
    r->phase = PH_PUBLISH;
    fr_pub_connect(&r->pub, on_pub_connected);
}

static void on_local_connected(fr_subs_t *subs) {
    connect_phase_over(subs->data);
}

static void check_shards_ready(run_t *r) {
    for (uint32_t i = 0; i < r->nshards; i++)
        if (!r->shards[i].ready)
            return;
    connect_phase_over(r);
}

static void on_shard_record(fr_ipc_t *ch, uint32_t type, const void *data, size_t len) {
    shard_t *s = ch->data;
    if (type == FR_IPC_FINAL && len == sizeof(fr_ipc_final_t)) {
        if (!s->fin)
            s->fin = fr_malloc(sizeof *s->fin);
        memcpy(s->fin, data, len);
        return;
    }
    if ((type != FR_IPC_READY && type != FR_IPC_SNAP) || len != sizeof(fr_counters_t))
        return;
    memcpy(&s->c, data, len);
    if (s->c.interval_lat_max > s->imax)
        s->imax = s->c.interval_lat_max;
    if (type == FR_IPC_READY) {
        s->ready = 1;
        check_shards_ready(s->run);
    }
}

/* The child finished (after FINAL) or died: either way it counts as settled. */
static void on_shard_eof(fr_ipc_t *ch) {
    shard_t *s = ch->data;
    run_t *r = s->run;
    if (!s->fin && r->phase < PH_ENDING)
        fr_counters_error(&r->res.c, "child %d ended early", (int)s->pid);
    fr_ipc_close(ch, on_shard_closed);
    if (!s->ready) {
        s->ready = 1;
        check_shards_ready(r);
    }
}

/* ---- start ----------------------------------------------------------------------------- */

int fr_run_parent(const fr_opts_t *o, const fr_child_t *children, uint32_t nchildren) {
    run_t *r = fr_calloc(1, sizeof *r);
    r->o = o;
    r->res.opts = o;
    r->res.procs = nchildren ? nchildren : 1;
    r->res.server = o->server_pid != 0;
    if (uv_loop_init(&r->loop) < 0) {
        fprintf(stderr, "freshet-bench: cannot create an event loop\n");
        return 1;
    }
    r->t0 = r->prev_at = fr_now_mono();
    sample(r, &r->res.srv_start);
    if (o->server_pid && !r->res.srv_start.ok)
        fprintf(stderr, "freshet-bench: cannot read /proc/%d%s: no server figures\n",
                o->server_pid, o->nserver_pids > 1 ? " (or another PID given)" : "");

    uv_timer_t *timers[] = {&r->progress, &r->measure, &r->tail, &r->caught_up, &r->deadline};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        uv_timer_init(&r->loop, timers[i]);
        timers[i]->data = r;
    }
    uv_signal_init(&r->loop, &r->sigint);
    r->sigint.data = r;
    uv_signal_start(&r->sigint, on_sigint, SIGINT);
    uv_timer_start(&r->progress, on_progress, 1000, 1000);
    uv_timer_start(&r->deadline, on_deadline, (uint64_t)(fr_run_bound_s(o) * 1000), 0);

    fr_pub_init(&r->pub, &r->loop, o);
    r->pub.data = r;

    if (nchildren) {
        r->nshards = nchildren;
        r->shards = fr_calloc(nchildren, sizeof *r->shards);
        for (uint32_t i = 0; i < nchildren; i++) {
            shard_t *s = &r->shards[i];
            s->run = r;
            s->pid = children[i].pid;
            if (fr_ipc_open(&s->ch, &r->loop, children[i].fd, on_shard_record, on_shard_eof) < 0) {
                fprintf(stderr, "freshet-bench: cannot talk to child %d\n", (int)s->pid);
                return 1;
            }
            s->ch.data = s;
        }
    } else {
        r->local = fr_calloc(1, sizeof *r->local);
        fr_subs_init(r->local, &r->loop, o, 0, o->subscribers);
        r->local->data = r;
        fr_subs_start(r->local, on_local_connected);
    }

    uv_run(&r->loop, UV_RUN_DEFAULT);
    int rc = r->exit_code;
    if (uv_loop_close(&r->loop) != 0) {
        fprintf(stderr, "freshet-bench: a handle was left open at exit\n");
        rc = rc ? rc : 1;
    }
    for (uint32_t i = 0; i < r->nshards; i++)
        free(r->shards[i].fin);
    free(r->shards);
    free(r->local);
    free(r);
    return rc;
}
