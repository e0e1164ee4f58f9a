/* A worker's streams as a whole: who is idle (heartbeats), which long-polls are waiting (their
 * deadline), who has output to write (the flush, once per loop iteration) and the drain. Each
 * list is ordered, so a tick or a flush looks only at the streams that are due. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "stream/stream.h"

void fr_streams_init(fr_streams_t *env, uv_loop_t *loop, fr_broker_t *broker,
                     const fr_config_t *config, fr_metrics_t *metrics) {
    memset(env, 0, sizeof *env);
    fr_list_init(&env->all);
    fr_list_init(&env->idle);
    fr_list_init(&env->polls);
    fr_list_init(&env->pending);
    env->loop = loop;
    env->broker = broker;
    env->hub = broker->hub;
    env->slot = broker->slot;
    env->config = config;
    env->metrics = metrics;
    env->retry_frame_len = (size_t)snprintf(env->retry_frame, sizeof env->retry_frame,
                                            "retry: %llu\n\n",
                                            (unsigned long long)config->retry_ms);
}

/* ---- the idle, poll and pending lists ------------------------------------------------------ */

static fr_stream_t *stream_of(fr_list_t *link, int pending) {
    if (!link)
        return NULL;
    return pending ? FR_LIST_ENTRY(link, fr_stream_t, pend_link)
                   : FR_LIST_ENTRY(link, fr_stream_t, idle_link);
}

void fr_stream_unlist(fr_stream_t *s) {
    fr_list_remove(&s->idle_link);
    fr_list_remove(&s->pend_link);
}

/* Moves the stream to the tail of the idle list: the list stays ordered by last write. A
 * long-poll gets no heartbeats: it joins the poll list once, ordered by its start. */
void fr_stream_touch(fr_stream_t *s) {
    fr_streams_t *env = s->env;
    if (!s->started || s->detached || s->ending == 2)
        return;
    if (s->tp->whole) {
        if (fr_list_linked(&s->idle_link))
            return;
        s->last_write_ms = uv_now(env->loop);
        fr_list_insert_tail(&env->polls, &s->idle_link);
        return;
    }
    uint64_t now = uv_now(env->loop); /* the loop's clock: no clock read per event */
    /* A stream moved within the last 1/16 of the heartbeat interval stays where it is: a busy
     * stream then moves about once a second instead of once per event, and its heartbeat may
     * come that much early, which nobody minds. */
    if (fr_list_linked(&s->idle_link) && s->last_write_ms + (env->config->heartbeat_ms >> 4) > now)
        return;
    fr_list_remove(&s->idle_link);
    s->last_write_ms = now;
    fr_list_insert_tail(&env->idle, &s->idle_link);
}

/* Appended at the tail: a flush that stops after its time slice resumes with the streams
 * that have waited longest. */
void fr_stream_mark_pending(fr_stream_t *s) {
    if (fr_list_linked(&s->pend_link) || s->detached || !s->started || s->ending == 2)
        return;
    fr_list_insert_tail(&s->env->pending, &s->pend_link);
}

/* ---- once per loop iteration, and per tick ------------------------------------------------ */

int fr_streams_flush(fr_streams_t *env, uint64_t slice_ns) {
    uint64_t until = uv_hrtime() + slice_ns;
    unsigned n = 0;
    fr_stream_t *s;
    while ((s = stream_of(fr_list_first(&env->pending), 1))) {
        /* The clock is read every 64 writes: a write costs microseconds, a read tens of ns. */
        if ((++n & 63) == 0 && uv_hrtime() >= until)
            return 1;
        fr_list_remove(&s->pend_link);
        fr_stream_write(s);
    }
    return 0;
}

void fr_streams_tick(fr_streams_t *env) {
    uint64_t now = uv_now(env->loop);
    uint64_t hb = env->config->heartbeat_ms;
    /* Compared as last + hb <= now, not now - last >= hb: a stream touched during this walk may
     * carry a later millisecond than `now`, and the unsigned difference would wrap. */
    fr_stream_t *s;
    while ((s = stream_of(fr_list_first(&env->idle), 0)) && s->last_write_ms + hb <= now) {
        if (s->ending) {
            /* An ending stream whose last bytes have not left within a heartbeat interval
             * belongs to a client that stopped reading: let it go. */
            fr_stream_unlist(s);
            s->sink->ops->abort(s->sink);
            continue;
        }
        s->tp->heartbeat(s);
        if (stream_of(fr_list_first(&env->idle), 0) == s && s->last_write_ms + hb <= now)
            fr_stream_touch(s); /* the transport queued nothing: look again next interval */
    }
    uint64_t wait = env->config->poll_timeout_ms;
    while ((s = stream_of(fr_list_first(&env->polls), 0)) && s->last_write_ms + wait <= now) {
        fr_stream_unlist(s);
        /* Nothing came in time: the answer is empty (204), and the client asks again. */
        fr_stream_whole(s);
    }
}

void fr_streams_drain(fr_streams_t *env, uint64_t window_ms) {
    for (fr_list_t *l = fr_list_first(&env->all); l; l = fr_list_next(&env->all, l)) {
        fr_stream_t *s = FR_LIST_ENTRY(l, fr_stream_t, all_link);
        s->drain_at = window_ms ? (uint64_t)rand() % (window_ms * 4 / 5 + 1) : 0;
    }
}

void fr_streams_drain_tick(fr_streams_t *env, uint64_t elapsed_ms) {
    uint64_t retry = env->config->retry_ms;
    for (fr_list_t *l = fr_list_first(&env->all); l; l = fr_list_next(&env->all, l)) {
        fr_stream_t *s = FR_LIST_ENTRY(l, fr_stream_t, all_link);
        if (!s->started || s->ending || s->detached || s->drain_at > elapsed_ms)
            continue;
        s->end_reason = "shutdown";
        /* Each stream gets its own retry: with jitter, clients do not come back at once. */
        fr_stream_end(s, retry + (uint64_t)(rand() % (int)(retry / 2 + 1)));
    }
}
