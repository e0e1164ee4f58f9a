/* A child process: one share of the subscribers, reporting to the parent; see run.h. */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "run.h"
#include "sub.h"

typedef struct child_s {
    uv_loop_t loop;
    fr_subs_t *subs;
    fr_ipc_t ch;
    uv_timer_t snap;     /* SNAP records */
    uv_timer_t deadline; /* ends the child if the parent never does */
    int ending;
} child_t;

static void send_counters(child_t *k, uint32_t type) {
    fr_ipc_send(&k->ch, type, &k->subs->c, sizeof k->subs->c);
    k->subs->c.interval_lat_max = 0;
}

static void on_snap(uv_timer_t *t) {
    send_counters(t->data, FR_IPC_SNAP);
}

static void on_connected(fr_subs_t *subs) {
    send_counters(subs->data, FR_IPC_READY);
}

static void on_subs_closed(fr_subs_t *subs) {
    child_t *k = subs->data;
    fr_ipc_final_t *fin = fr_malloc(sizeof *fin);
    fin->c = subs->c;
    fin->latency = subs->latency;
    fin->connect = subs->connect;
    fin->storm = subs->storm;
    fr_ipc_send(&k->ch, FR_IPC_FINAL, fin, sizeof *fin);
    free(fin);
    uv_close((uv_handle_t *)&k->snap, NULL);
    uv_close((uv_handle_t *)&k->deadline, NULL);
    fr_ipc_close(&k->ch, NULL);
}

static void end(child_t *k) {
    if (k->ending)
        return;
    k->ending = 1;
    uv_timer_stop(&k->snap);
    uv_timer_stop(&k->deadline);
    fr_subs_close(k->subs, on_subs_closed);
}

static void on_deadline(uv_timer_t *t) {
    end(t->data);
}

/* The parent stopped the run, or went away. */
static void on_eof(fr_ipc_t *ch) {
    end(ch->data);
}

static void on_record(fr_ipc_t *ch, uint32_t type, const void *data, size_t len) {
    child_t *k = ch->data;
    if (type == FR_IPC_STORM && len == sizeof(fr_ipc_storm_t) && !k->ending) {
        fr_ipc_storm_t st;
        memcpy(&st, data, sizeof st);
        fr_subs_storm(k->subs, st.g_drop);
        return;
    }
    if (type != FR_IPC_WINDOW || len != sizeof(fr_ipc_window_t) || k->ending)
        return;
    fr_ipc_window_t w;
    memcpy(&w, data, sizeof w);
    fr_subs_set_window(k->subs, w.g0, w.g1);
    /* In the tail the parent waits for every expected event: report often so it can stop as
     * soon as they are in. */
    send_counters(k, FR_IPC_SNAP);
    uv_timer_start(&k->snap, on_snap, 100, 100);
}

int fr_run_child(const fr_opts_t *o, int fd, uint32_t first, uint32_t count) {
    child_t *k = fr_calloc(1, sizeof *k);
    if (uv_loop_init(&k->loop) < 0)
        return 1;
    k->subs = fr_calloc(1, sizeof *k->subs);
    fr_subs_init(k->subs, &k->loop, o, first, count);
    k->subs->data = k;
    if (fr_ipc_open(&k->ch, &k->loop, fd, on_record, on_eof) < 0)
        return 1;
    k->ch.data = k;
    uv_timer_init(&k->loop, &k->snap);
    uv_timer_init(&k->loop, &k->deadline);
    k->snap.data = k;
    k->deadline.data = k;
    uv_timer_start(&k->snap, on_snap, 1000, 1000);
    /* Later than the parent's own bound: normally the parent's EOF ends the child. */
    uv_timer_start(&k->deadline, on_deadline, (uint64_t)((fr_run_bound_s(o) + 30) * 1000), 0);
    fr_subs_start(k->subs, on_connected);
    uv_run(&k->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&k->loop) == 0 ? 0 : 1;
    free(k->subs);
    free(k);
    return rc;
}
