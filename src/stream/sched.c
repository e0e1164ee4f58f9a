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

/* ---- the idle and poll lists ------------------------------------------------------------- */

static void list_unlink(fr_stream_t *s, fr_stream_t **head, fr_stream_t **tail) {
    if (s->idle_prev)
        s->idle_prev->idle_next = s->idle_next;
    else if (*head == s)
        *head = s->idle_next;
    if (s->idle_next)
        s->idle_next->idle_prev = s->idle_prev;
    else if (*tail == s)
        *tail = s->idle_prev;
    s->idle_prev = s->idle_next = NULL;
}

static void pending_unlink(fr_stream_t *s) {
    fr_streams_t *env = s->env;
    if (!s->pending)
        return;
    if (s->pend_prev)
        s->pend_prev->pend_next = s->pend_next;
    else
        env->pending_head = s->pend_next;
    if (s->pend_next)
        s->pend_next->pend_prev = s->pend_prev;
    else
        env->pending_tail = s->pend_prev;
    s->pend_prev = s->pend_next = NULL;
    s->pending = 0;
}

void fr_stream_unlist(fr_stream_t *s) {
    fr_streams_t *env = s->env;
    if (s->listed) {
        if (s->tp->whole)
            list_unlink(s, &env->poll_head, &env->poll_tail);
        else
            list_unlink(s, &env->idle_head, &env->idle_tail);
        s->listed = 0;
    }
    pending_unlink(s);
}

/* Moves the stream to the tail of the idle list: the list stays ordered by last write. A
 * long-poll gets no heartbeats: it joins the poll list once, ordered by its start. */
void fr_stream_touch(fr_stream_t *s) {
    fr_streams_t *env = s->env;
    if (!s->started || s->detached || s->ending == 2)
        return;
    if (s->tp->whole) {
        if (s->listed)
            return;
        s->last_write_ms = uv_now(env->loop);
        s->idle_prev = env->poll_tail;
        if (env->poll_tail)
            env->poll_tail->idle_next = s;
        else
            env->poll_head = s;
        env->poll_tail = s;
        s->listed = 1;
        return;
    }
    if (s->listed)
        list_unlink(s, &env->idle_head, &env->idle_tail);
    s->last_write_ms = uv_now(env->loop); /* the loop's clock: no clock read per event */
    s->idle_prev = env->idle_tail;
    if (env->idle_tail)
        env->idle_tail->idle_next = s;
    else
        env->idle_head = s;
    env->idle_tail = s;
    s->listed = 1;
}

/* Appended at the tail: a flush that stops after its time slice resumes with the streams
 * that have waited longest. */
void fr_stream_mark_pending(fr_stream_t *s) {
    fr_streams_t *env = s->env;
    if (s->pending || s->detached || !s->started || s->ending == 2)
        return;
    s->pending = 1;
    s->pend_next = NULL;
    s->pend_prev = env->pending_tail;
    if (env->pending_tail)
        env->pending_tail->pend_next = s;
    else
        env->pending_head = s;
    env->pending_tail = s;
}

/* ---- once per loop iteration, and per tick ------------------------------------------------ */

int fr_streams_flush(fr_streams_t *env, uint64_t slice_ns) {
    uint64_t until = uv_hrtime() + slice_ns;
    unsigned n = 0;
    while (env->pending_head) {
        /* The clock is read every 64 writes: a write costs microseconds, a read tens of ns. */
        if ((++n & 63) == 0 && uv_hrtime() >= until)
            return 1;
        fr_stream_t *s = env->pending_head;
        pending_unlink(s);
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
    while ((s = env->idle_head) && s->last_write_ms + hb <= now) {
        if (s->ending) {
            /* An ending stream whose last bytes have not left within a heartbeat interval
             * belongs to a client that stopped reading: let it go. */
            fr_stream_unlist(s);
            s->sink->ops->abort(s->sink);
            continue;
        }
        s->tp->heartbeat(s);
        if (env->idle_head == s && s->listed && s->last_write_ms + hb <= now)
            fr_stream_touch(s); /* the transport queued nothing: look again next interval */
    }
    uint64_t wait = env->config->poll_timeout_ms;
    while ((s = env->poll_head) && s->last_write_ms + wait <= now) {
        fr_stream_unlist(s);
        /* Nothing came in time: the answer is empty (204), and the client asks again. */
        fr_stream_whole(s);
    }
}

void fr_streams_drain(fr_streams_t *env, uint64_t window_ms) {
    for (fr_stream_t *s = env->all; s; s = s->all_next)
        s->drain_at = window_ms ? (uint64_t)rand() % (window_ms * 4 / 5 + 1) : 0;
}

void fr_streams_drain_tick(fr_streams_t *env, uint64_t elapsed_ms) {
    uint64_t retry = env->config->retry_ms;
    for (fr_stream_t *s = env->all; s; s = s->all_next) {
        if (!s->started || s->ending || s->detached || s->drain_at > elapsed_ms)
            continue;
        s->end_reason = "shutdown";
        /* Each stream gets its own retry: with jitter, clients do not come back at once. */
        fr_stream_end(s, retry + (uint64_t)(rand() % (int)(retry / 2 + 1)));
    }
}
