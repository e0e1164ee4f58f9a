#include "stream/stream.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/redis.h"
#include "http/conn.h"
#include "codec/ws.h"
#include "transport/ws.h"
#include "app/dispatch.h"
#include "base/log.h"
#include "server/worker.h"
#include "base/util.h"

#define FR_MAX_TOPICS 64
#define FR_WRITE_BATCH 64
#define FR_LAG_RETRY_MS 5000

static const char heartbeat_frame[] = ":\n\n";

/* ---- idle (heartbeat) and pending (flush) lists ---------------------------------------- */

static void idle_unlink(fr_worker_t *w, fr_stream_t *s) {
    if (s->idle_prev)
        s->idle_prev->idle_next = s->idle_next;
    else if (w->idle_head == s)
        w->idle_head = s->idle_next;
    if (s->idle_next)
        s->idle_next->idle_prev = s->idle_prev;
    else if (w->idle_tail == s)
        w->idle_tail = s->idle_prev;
    s->idle_prev = s->idle_next = NULL;
}

/* Moves the stream to the tail: the list stays ordered by last write. A long-poll gets no
 * heartbeats: its deadline is on the connection's poll list. */
static void idle_touch(fr_stream_t *s) {
    fr_worker_t *w = s->worker;
    if (s->poll)
        return;
    idle_unlink(w, s);
    s->last_write_ms = uv_now(w->loop); /* the loop's clock: no clock read per event */
    s->idle_prev = w->idle_tail;
    if (w->idle_tail)
        w->idle_tail->idle_next = s;
    else
        w->idle_head = s;
    w->idle_tail = s;
}

static void pending_unlink(fr_worker_t *w, fr_stream_t *s) {
    if (!s->pending)
        return;
    if (s->pend_prev)
        s->pend_prev->pend_next = s->pend_next;
    else
        w->pending_head = s->pend_next;
    if (s->pend_next)
        s->pend_next->pend_prev = s->pend_prev;
    else
        w->pending_tail = s->pend_prev;
    s->pend_prev = s->pend_next = NULL;
    s->pending = 0;
}

/* Appended at the tail: a flush that stops after its time slice resumes with the streams
 * that have waited longest. */
static void pending_mark(fr_stream_t *s) {
    fr_worker_t *w = s->worker;
    if (s->pending || s->detached)
        return;
    s->pending = 1;
    s->pend_next = NULL;
    s->pend_prev = w->pending_tail;
    if (w->pending_tail)
        w->pending_tail->pend_next = s;
    else
        w->pending_head = s;
    w->pending_tail = s;
}

/* Presence stops counting a stream once it is ending. */
static void stream_mark_away(fr_stream_t *s) {
    if (s->away || !s->subs)
        return;
    s->away = 1;
    for (size_t i = 0; i < s->ntopics; i++) {
        if (s->subs[i].topic)
            fr_hub_set_away(s->worker->hub, &s->subs[i]);
    }
}

/* ---- the out-queue ---------------------------------------------------------------------- */

/* Bytes an item puts on the wire. A WebSocket event item is its whole frame: its own bytes
 * (a stream of several topics) or the event's cached envelope. */
static size_t item_size(const fr_item_t *it) {
    if (it->kind != FR_ITEM_EVENT)
        return it->len;
    if (!it->ev)
        return 0;
    if (it->ws)
        return it->bytes ? it->len : __atomic_load_n(&it->ev->ws, __ATOMIC_ACQUIRE)->len;
    return it->bytes ? it->len + it->ev->frame_len - it->ev->body_off : it->ev->frame_len;
}

/* Appends an event item's buffers to bufs; returns how many. */
static size_t item_bufs(const fr_item_t *it, uv_buf_t *bufs) {
    if (it->ws && it->bytes) {
        bufs[0] = uv_buf_init(it->bytes, (unsigned)it->len);
        return 1;
    }
    if (it->ws) {
        /* Built (and published) when the event was offered to this stream. */
        const fr_ws_blob_t *f = __atomic_load_n(&it->ev->ws, __ATOMIC_ACQUIRE);
        bufs[0] = uv_buf_init((char *)f->bytes, (unsigned)f->len);
        return 1;
    }
    if (it->bytes) {
        bufs[0] = uv_buf_init(it->bytes, (unsigned)it->len);
        bufs[1] = uv_buf_init(it->ev->frame + it->ev->body_off,
                              (unsigned)(it->ev->frame_len - it->ev->body_off));
        return 2;
    }
    bufs[0] = uv_buf_init(it->ev->frame, (unsigned)it->ev->frame_len);
    return 1;
}

static void item_release(fr_item_t *it) {
    if (it->kind == FR_ITEM_EVENT && it->ev)
        fr_event_release(it->ev);
    if (it->kind != FR_ITEM_STATIC)
        free(it->bytes);
    it->ev = NULL;
    it->bytes = NULL;
}

static fr_item_t *queue_at(fr_stream_t *s, size_t i) {
    return &s->q[(s->q_head + i) & (s->q_cap - 1)]; /* q_cap is a power of two */
}

static void queue_push(fr_stream_t *s, fr_item_t it) {
    if (s->q_len == s->q_cap) {
        size_t cap = s->q_cap ? s->q_cap * 2 : 4;
        fr_item_t *q = fr_malloc(cap * sizeof *q);
        for (size_t i = 0; i < s->q_len; i++)
            q[i] = *queue_at(s, i);
        free(s->q);
        s->q = q;
        s->q_cap = cap;
        s->q_head = 0;
    }
    it.seq = s->q_seq++;
    if (it.kind == FR_ITEM_EVENT) {
        s->q_live++;
        s->live_by_prio[it.ev->priority]++;
        s->last_seq[it.topic] = it.seq;
    }
    s->q_bytes += item_size(&it);
    s->q[(s->q_head + s->q_len) & (s->q_cap - 1)] = it;
    s->q_len++;
    idle_touch(s);
    pending_mark(s);
}

/* The queued item with this seq, or NULL (items are in seq order: binary search). */
static fr_item_t *queue_find(fr_stream_t *s, uint64_t seq) {
    size_t lo = 0, hi = s->q_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t m = queue_at(s, mid)->seq;
        if (m == seq)
            return queue_at(s, mid);
        if (m < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Drops the empty slots that dropped and conflated events leave, once they outnumber the
 * live items: a reader that is stuck must not grow the queue with holes. */
static void queue_compact(fr_stream_t *s) {
    size_t holes = 0;
    for (size_t i = 0; i < s->q_len; i++) {
        const fr_item_t *it = queue_at(s, i);
        holes += it->kind == FR_ITEM_EVENT && !it->ev;
    }
    if (holes < 64 || holes < s->q_len / 2)
        return;
    size_t k = 0;
    for (size_t i = 0; i < s->q_len; i++) {
        fr_item_t it = *queue_at(s, i);
        if (it.kind == FR_ITEM_EVENT && !it.ev)
            continue;
        *queue_at(s, k++) = it;
    }
    s->q_len = k;
}

/* Removes a queued event, leaving an empty slot the writer skips. */
static void queue_drop(fr_stream_t *s, fr_item_t *it) {
    s->q_bytes -= item_size(it);
    s->q_live--;
    s->live_by_prio[it->ev->priority]--;
    item_release(it);
}

static void queue_static(fr_stream_t *s, const char *bytes, size_t len) {
    fr_item_t it = {FR_ITEM_STATIC, NULL, (char *)bytes, len, 0, 0, 0};
    queue_push(s, it);
}

static void queue_owned(fr_stream_t *s, char *bytes, size_t len) {
    fr_item_t it = {FR_ITEM_OWNED, NULL, bytes, len, 0, 0, 0};
    queue_push(s, it);
}

/* "id: <pos1>,<pos2>,…\n" for a stream that follows several topics. */
static char *positions_line(fr_stream_t *s, size_t *len) {
    size_t cap = 5 + s->ntopics * FR_ID_MAX_LEN;
    char *buf = fr_malloc(cap);
    size_t n = 0;
    memcpy(buf, "id: ", 4);
    n = 4;
    for (size_t i = 0; i < s->ntopics; i++) {
        if (i)
            buf[n++] = ',';
        n += fr_id_format(s->pos[i], buf + n);
    }
    buf[n++] = '\n';
    *len = n;
    return buf;
}

/* The positions alone ("<id>,<id>"), as a WebSocket envelope carries them. Caller frees. */
static char *positions_string(fr_stream_t *s) {
    size_t len;
    char *line = positions_line(s, &len);
    char *out = fr_strndup(line + 4, len - 5);
    free(line);
    return out;
}

/* Over budget: as many events queued as the tier allows, or more bytes waiting (queued here
 * plus what the socket still holds) than its byte budget. */
static int over_budget(fr_stream_t *s, size_t incoming) {
    size_t held = uv_stream_get_write_queue_size((uv_stream_t *)&s->conn->tcp);
    return s->q_live >= s->budget->queue || s->q_bytes + held + incoming > s->budget->bytes;
}

/* The oldest queued event of a priority, or NULL. */
static fr_item_t *queue_oldest(fr_stream_t *s, fr_priority_t prio) {
    if (s->live_by_prio[prio] == 0)
        return NULL;
    for (size_t i = 0; i < s->q_len; i++) {
        fr_item_t *it = queue_at(s, i);
        if (it->kind == FR_ITEM_EVENT && it->ev && it->ev->priority == prio)
            return it;
    }
    return NULL;
}

static void count_drop(fr_stream_t *s, size_t topic, fr_priority_t prio) {
    s->dropped[prio]++;
    FR_BUMP(s->worker->metrics.dropped[prio], 1);
    s->unreported++;
    s->streak++;
    if (s->subs && s->subs[topic].topic)
        s->subs[topic].topic->dropped++;
}

/* Ends a stream that cannot keep up: what is queued is discarded (the client gets it again
 * from replay, resuming from the last id it did receive) and it is told to come back later. */
static void stream_evict(fr_stream_t *s, const char *reason) {
    for (size_t i = 0; i < s->q_len; i++) {
        fr_item_t *it = queue_at(s, i);
        if (it->kind == FR_ITEM_EVENT && it->ev)
            queue_drop(s, it);
    }
    s->end_reason = reason;
    fr_metrics_t *m = &s->worker->metrics;
    if (strcmp(reason, "lag") == 0)
        m->evicted_lag++;
    else if (strcmp(reason, "drop") == 0)
        m->evicted_drop++;
    else
        m->evicted_slow++;
    fr_warn("stream %llu from %s cannot keep up (%s): %zu queued, %zu dropped in a row; "
            "closing it with retry: %d so it resumes from replay",
            (unsigned long long)s->conn->id, s->conn->remote, reason, s->q_live, s->streak,
            FR_LAG_RETRY_MS);
    fr_stream_end(s, FR_LAG_RETRY_MS);
}

/* Offers one event (live or replayed) of topic `index` to the stream. */
static void stream_offer(fr_stream_t *s, size_t index, fr_event_t *ev) {
    if (s->detached || s->ending)
        return;
    if (s->joining) {
        s->held = fr_realloc(s->held, (s->nheld + 1) * sizeof *s->held);
        fr_item_t it = {FR_ITEM_EVENT, ev, NULL, 0, 0, (uint32_t)index, (uint8_t)s->ws};
        fr_event_retain(ev);
        s->held[s->nheld++] = it;
        return;
    }
    /* A broker may hand over an event twice (replay and live); ids say which was seen. */
    if (fr_id_cmp(ev->id, s->pos[index]) <= 0)
        return;
    /* A long-poll answer carries at most a queue's worth; the client asks again from the last
     * id it got. */
    if (s->poll && s->q_live >= s->budget->queue)
        return;
    s->pos[index] = ev->id;
    if (fr_vm_push_hook(s->vm, s->route, FR_HOOK_FILTER)) {
        lua_State *L = s->vm->L;
        fr_vm_push_event(s->vm, ev);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
        s->worker->delivering++;
        int rc = fr_vm_call(s->vm, s->route, "filter", 2, 1);
        s->worker->delivering--;
        if (rc != 0) {
            /* Headers are out: the stream ends cleanly and the client resumes. */
            s->end_reason = "error";
            fr_stream_end(s, s->worker->config->retry_ms);
            return;
        }
        int keep = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (!keep) {
            s->filtered++;
            return;
        }
    }
    fr_item_t it = {FR_ITEM_EVENT, ev, NULL, 0, 0, (uint32_t)index, (uint8_t)s->ws};
    if (s->ws && s->ntopics > 1) {
        char *ids = positions_string(s);
        it.bytes = fr_ws_event_frame_with_id(ev, ids, &it.len);
        free(ids);
    } else if (s->ws) {
        size_t ignored;
        fr_ws_event_frame(ev, &ignored); /* built once, shared by every WebSocket stream */
    } else if (s->ntopics > 1) {
        it.bytes = positions_line(s, &it.len);
    }
    size_t size = item_size(&it);

    /* Conflation: an unsent older event of this topic is superseded by this one. */
    fr_item_t *old = s->slow[index] == FR_SLOW_CONFLATE ? queue_find(s, s->last_seq[index]) : NULL;
    if (old && old->kind == FR_ITEM_EVENT && old->ev && old->topic == index) {
        s->conflated++;
        FR_BUMP(s->worker->metrics.conflated, 1);
        if (old == queue_at(s, s->q_len - 1)) {
            /* The newest item: replace it where it stands, so a single topic never grows the
             * queue however fast it is published. */
            s->q_bytes -= item_size(old);
            s->q_bytes += size;
            s->live_by_prio[old->ev->priority]--;
            s->live_by_prio[ev->priority]++;
            item_release(old);
            fr_event_retain(ev);
            old->ev = ev;
            old->bytes = it.bytes;
            old->len = it.len;
            s->delivered++;
            pending_mark(s);
            return;
        }
        queue_drop(s, old);
        queue_compact(s);
    }
    if (over_budget(s, size)) {
        if (s->slow[index] == FR_SLOW_DISCONNECT) {
            free(it.bytes);
            stream_evict(s, "slow");
            return;
        }
        fr_item_t *victim = NULL;
        if (ev->priority != FR_PRIO_TELEMETRY)
            victim = queue_oldest(s, FR_PRIO_TELEMETRY);
        if (!victim && ev->priority == FR_PRIO_CRITICAL)
            victim = queue_oldest(s, FR_PRIO_NORMAL);
        if (victim) {
            count_drop(s, victim->topic, victim->ev->priority);
            queue_drop(s, victim);
        } else if (ev->priority != FR_PRIO_CRITICAL) {
            count_drop(s, index, ev->priority);
            free(it.bytes);
            if (s->q_live + s->streak > s->budget->lag)
                stream_evict(s, "lag");
            return;
        } else {
            /* A critical event is never dropped silently: the client resumes and gets it
             * from replay. */
            free(it.bytes);
            stream_evict(s, "drop");
            return;
        }
    }
    fr_event_retain(ev);
    s->delivered++;
    queue_push(s, it);
    if (s->q_live + s->streak > s->budget->lag)
        stream_evict(s, "lag");
}

static void on_deliver(fr_sub_t *sub, fr_event_t *ev) {
    fr_stream_t *s = sub->owner;
    /* A replaying stream reads live events from the ring too, in their turn. */
    if (s->replaying)
        return;
    stream_offer(s, sub->index, ev);
}

static void on_replay(void *ctx, size_t index, fr_event_t *ev);

/* Replay from the memory broker's rings, paced by the out-queue: a resume with thousands of
 * events to catch up on sends them as the client reads, within its budget, instead of
 * queueing them all at once (which would evict the stream it is trying to restore). Live
 * events go to the ring first, so the cursor (pos) simply reads on until it reaches the end,
 * and from then on the stream takes live deliveries. */
static void stream_replay_fill(fr_stream_t *s) {
    fr_hub_t *hub = s->worker->hub;
    size_t room = s->budget->queue / 2 ? s->budget->queue / 2 : 1;
    fr_hub_lock(hub); /* the rings are shared with the other workers */
    while (s->replaying && !s->ending && !s->detached && s->q_live < room &&
           !over_budget(s, 0)) {
        fr_event_t *next = NULL;
        size_t index = 0;
        for (size_t i = 0; i < s->ntopics; i++) {
            fr_topic_t *t = fr_hub_find(hub, s->topics[i]);
            if (!t)
                continue;
            if (t->ring.has_evicted && fr_id_cmp(t->ring.evicted_upto, s->pos[i]) > 0) {
                /* The ring moved past this reader while it caught up. */
                stream_evict(s, "lag");
                fr_hub_unlock(hub);
                return;
            }
            size_t k = fr_ring_after(&t->ring, s->pos[i]);
            if (k >= t->ring.count)
                continue;
            fr_event_t *ev = fr_ring_at(&t->ring, k);
            if (!next || fr_id_cmp(ev->id, next->id) < 0) {
                next = ev;
                index = i;
            }
        }
        if (!next) {
            s->replaying = 0;
            break;
        }
        on_replay(s, index, next);
    }
    fr_hub_unlock(hub);
}

static void on_replay(void *ctx, size_t index, fr_event_t *ev) {
    fr_stream_t *s = ctx;
    FR_BUMP(s->worker->metrics.replayed, 1);
    s->replayed++;
    stream_offer(s, index, ev);
}

/* ---- writing ----------------------------------------------------------------------------- */

typedef struct {
    uv_write_t req;
    fr_stream_t *stream;
    size_t nitems;
    char *notice;        /* owned: the in-band report of dropped events, or NULL */
    char *response_head; /* owned: status line and headers of a long-poll answer, or NULL */
    struct fr_conn_s *conn; /* a long-poll answer's connection */
    int carried_events;  /* the batch held at least one event */
    char head[24];       /* chunk size line */
    fr_item_t items[];   /* each holds what its bytes point into until the write is done */
} batch_t;

static const char chunk_end[] = "\r\n";
static const char body_end[] = "0\r\n\r\n";

static void stream_write(fr_stream_t *s);

/* "<hex length>\r\n" without printf: this runs once per write of every stream. */
static size_t chunk_head(char *out, size_t len) {
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 15];
        len >>= 4;
    } while (len);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

static void batch_free(batch_t *b) {
    for (size_t i = 0; i < b->nitems; i++)
        item_release(&b->items[i]);
    free(b->notice);
    free(b->response_head);
    free(b);
}

/* What follows a write that left completely (or failed): more replay, and the queue array
 * freed when the stream went idle. Returns 1 when there is more to write. */
static int stream_written(fr_stream_t *s, int status, int carried_events) {
    if (status < 0 || s->detached) {
        if (!s->end_reason)
            s->end_reason = "client";
        fr_conn_close(s->conn);
        return 0;
    }
    if (s->q_live == 0)
        s->streak = 0;
    if (s->replaying)
        stream_replay_fill(s);
    if (s->q_len == 0 && !s->ending && !carried_events) {
        /* An idle stream (its last write was a heartbeat or the opening retry:) keeps no
         * queue: most streams are idle most of the time. A stream that is receiving events
         * keeps its array, so a steady trickle allocates nothing. */
        free(s->q);
        s->q = NULL;
        s->q_cap = 0;
        s->q_head = 0;
    }
    return s->q_len > 0 || s->ending;
}

static void on_batch_written(uv_write_t *req, int status) {
    batch_t *b = (batch_t *)req;
    fr_stream_t *s = b->stream;
    int carried = b->carried_events;
    batch_free(b);
    s->writing = 0;
    if (stream_written(s, status, carried))
        stream_write(s);
}

/* "event: dropped" with counts: EventSource clients see it as a named event and learn that
 * they have a gap; it carries no id, so their Last-Event-ID is unchanged. */
static char *drop_notice(fr_stream_t *s, size_t *len) {
    char buf[160];
    int n;
    if (s->ws) {
        n = snprintf(buf, sizeof buf,
                     "{\"v\":1,\"type\":\"dropped\",\"dropped\":%lu,\"total\":{\"telemetry\":%lu,"
                     "\"normal\":%lu}}",
                     s->unreported, s->dropped[FR_PRIO_TELEMETRY], s->dropped[FR_PRIO_NORMAL]);
        s->unreported = 0;
        return fr_ws_text_frame(buf, (size_t)n, len);
    }
    n = snprintf(buf, sizeof buf,
                 "event: dropped\ndata: {\"dropped\":%lu,\"total\":{\"telemetry\":%lu,"
                 "\"normal\":%lu}}\n\n",
                 s->unreported, s->dropped[FR_PRIO_TELEMETRY], s->dropped[FR_PRIO_NORMAL]);
    s->unreported = 0;
    *len = (size_t)n;
    return fr_strndup(buf, (size_t)n);
}

/* A long-poll answer's write is done. The stream is long gone (see poll_respond): only the
 * connection matters here. */
static void on_poll_written(uv_write_t *req, int status) {
    batch_t *b = (batch_t *)req;
    fr_conn_t *c = b->conn;
    batch_free(b);
    c->pending_writes--;
    if (status < 0 || (c->close_after_write && c->pending_writes == 0))
        fr_conn_close(c);
}

/* Answers a long-poll with everything queued, as one response with a length. */
static void poll_respond(fr_stream_t *s, int status) {
    fr_conn_t *c = s->conn;
    size_t n = s->q_len;
    batch_t *b = fr_malloc(sizeof *b + n * sizeof(fr_item_t));
    b->stream = s;
    b->nitems = n;
    b->notice = NULL;
    b->response_head = NULL;
    b->carried_events = 1;
    uv_buf_t *bufs = fr_malloc((2 * n + 3) * sizeof *bufs);
    size_t nb = 1, total = 0;
    if (s->unreported) {
        size_t len;
        b->notice = drop_notice(s, &len);
        bufs[nb++] = uv_buf_init(b->notice, (unsigned)len);
        total += len;
    }
    for (size_t i = 0; i < n; i++) {
        fr_item_t *it = queue_at(s, i);
        b->items[i] = *it;
        if (it->kind != FR_ITEM_EVENT) {
            bufs[nb++] = uv_buf_init(it->bytes, (unsigned)it->len);
            total += it->len;
            continue;
        }
        if (!it->ev)
            continue;
        s->sent++;
        FR_BUMP(s->worker->metrics.delivered, 1);
        nb += item_bufs(it, bufs + nb);
        total += item_size(it);
    }
    s->q_len = s->q_live = s->q_bytes = 0;
    memset(s->live_by_prio, 0, sizeof s->live_by_prio);
    s->bytes += total;
    FR_BUMP(s->worker->metrics.bytes_written, total);
    s->ending = 2;
    stream_mark_away(s);
    char cors[512];
    fr_conn_cors_headers(c, cors, sizeof cors);
    int keep = c->req.keep_alive && !s->worker->stopping;
    char *head = fr_malloc(1024);
    int hl = snprintf(head, 1024,
                      "HTTP/1.1 %d %s\r\n"
                      "%s"
                      "Cache-Control: no-cache\r\n"
                      "Content-Length: %zu\r\n"
                      "Connection: %s\r\n"
                      "%s\r\n",
                      status, fr_http_status_text(status),
                      status == 200 ? "Content-Type: text/event-stream; charset=utf-8\r\n" : "",
                      total, keep ? "keep-alive" : "close", cors);
    b->response_head = head;
    bufs[0] = uv_buf_init(head, (unsigned)hl);
    b->conn = c;
    fr_conn_wait(c, FR_WAIT_NONE);
    int rc = uv_write(&b->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nb, on_poll_written);
    free(bufs);
    if (rc != 0) {
        batch_free(b);
        fr_conn_close(c);
        return;
    }
    c->pending_writes++;
    /* The answer is queued: the connection reads the next request now, not after the write
     * completes, or a client quick to ask again would find its request ignored. */
    if (!keep)
        c->close_after_write = 1;
    fr_conn_end_poll(c);
}

void fr_stream_poll_timeout(fr_stream_t *s) {
    if (s && s->poll && !s->writing && s->ending != 2)
        poll_respond(s, s->q_len ? 200 : 204);
}

/* Writes one batch (up to FR_WRITE_BATCH items). Returns 1 when it left at once and more
 * waits, so the caller loops instead of recursing through a long queue. */
static int stream_write_batch(fr_stream_t *s) {
    if (s->writing || s->detached)
        return 0;
    if (s->poll) {
        if (s->q_len > 0 && s->ending != 2)
            poll_respond(s, 200);
        return 0;
    }
    if (s->q_len == 0 && !s->ending)
        return 0;
    if (s->q_len == 0 && s->ending == 2) {
        fr_conn_close(s->conn);
        return 0;
    }
    /* Empty slots at the front (dropped or conflated events) are passed over first. */
    while (s->q_len > 0 && queue_at(s, 0)->kind == FR_ITEM_EVENT && !queue_at(s, 0)->ev) {
        s->q_head = (s->q_head + 1) & (s->q_cap - 1);
        s->q_len--;
    }
    if (s->q_len == 0 && !s->ending && !s->unreported)
        return 0;
    size_t n = s->q_len < FR_WRITE_BATCH ? s->q_len : FR_WRITE_BATCH;
    /* The batch lives on the stack while the socket takes it whole, which is the usual case;
     * only what is left after a partial write moves into a heap batch for uv_write. */
    fr_item_t items[FR_WRITE_BATCH];
    char head[24];
    char *notice = NULL;
    int carried = 0;
    uv_buf_t bufs[2 * FR_WRITE_BATCH + 4];
    size_t nb = 1, total = 0;
    /* The drop report goes right before the first event of the batch (after the opening
     * retry: frame of a resumed stream), or first when the batch carries no event (before a
     * closing retry:). */
    size_t notice_at = SIZE_MAX;
    for (size_t i = 0; i < n && s->unreported; i++) {
        if (queue_at(s, i)->kind == FR_ITEM_EVENT && queue_at(s, i)->ev) {
            notice_at = i;
            break;
        }
    }
    if (s->unreported && notice_at == SIZE_MAX)
        notice_at = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == notice_at) {
            size_t len;
            notice = drop_notice(s, &len);
            bufs[nb++] = uv_buf_init(notice, (unsigned)len);
            total += len;
        }
        if (i == n)
            break;
        fr_item_t *it = queue_at(s, i);
        items[i] = *it;
        size_t size = item_size(it);
        s->q_bytes -= size;
        total += size;
        if (it->kind != FR_ITEM_EVENT) {
            bufs[nb++] = uv_buf_init(it->bytes, (unsigned)it->len);
            continue;
        }
        if (!it->ev)
            continue; /* dropped while queued */
        carried = 1;
        s->q_live--;
        s->live_by_prio[it->ev->priority]--;
        s->sent++;
        FR_BUMP(s->worker->metrics.delivered, 1);
        nb += item_bufs(it, bufs + nb);
    }
    s->q_head = s->q_cap ? (s->q_head + n) & (s->q_cap - 1) : 0;
    s->q_len -= n;
    s->bytes += total;
    FR_BUMP(s->worker->metrics.bytes_written, total);
    size_t first = 0;
    if (s->chunked && total > 0) {
        size_t hl = chunk_head(head, total);
        bufs[0] = uv_buf_init(head, (unsigned)hl);
        bufs[nb++] = uv_buf_init((char *)chunk_end, 2);
    } else {
        first = 1;
    }
    if (s->ending && s->q_len == 0) {
        /* The last batch of an ending stream: close the body, then the connection. */
        if (s->chunked)
            bufs[nb++] = uv_buf_init((char *)body_end, sizeof body_end - 1);
        s->ending = 2;
    }
    uv_buf_t *bp = bufs + first;
    size_t nbufs = nb - first, want = 0;
    for (size_t i = 0; i < nbufs; i++)
        want += bp[i].len;
    ssize_t done = 0;
    if (want > 0) {
        done = uv_try_write((uv_stream_t *)&s->conn->tcp, bp, (unsigned)nbufs);
        if (done == UV_EAGAIN)
            done = 0;
    }
    if (done >= 0 && (size_t)done == want) {
        for (size_t i = 0; i < n; i++)
            item_release(&items[i]);
        free(notice);
        if (want == 0 && s->ending == 2) {
            fr_conn_close(s->conn);
            return 0;
        }
        return stream_written(s, 0, carried);
    }
    if (done < 0) {
        for (size_t i = 0; i < n; i++)
            item_release(&items[i]);
        free(notice);
        return stream_written(s, (int)done, carried);
    }
    /* Partial: the socket buffer is full. The rest waits in a batch for libuv to finish,
     * holding the items its bytes point into. */
    batch_t *b = fr_malloc(sizeof *b + n * sizeof(fr_item_t));
    b->stream = s;
    b->nitems = n;
    memcpy(b->items, items, n * sizeof *items);
    b->notice = notice;
    b->response_head = NULL;
    b->carried_events = carried;
    memcpy(b->head, head, sizeof head);
    size_t k = 0;
    size_t skip = (size_t)done;
    while (skip >= bp[k].len) {
        skip -= bp[k].len;
        k++;
    }
    bp[k].base += skip;
    bp[k].len -= skip;
    if (bp[k].base >= head && bp[k].base < head + sizeof head)
        bp[k].base = b->head + (bp[k].base - head);
    s->writing = 1;
    if (uv_write(&b->req, (uv_stream_t *)&s->conn->tcp, bp + k, (unsigned)(nbufs - k),
                 on_batch_written) != 0) {
        s->writing = 0;
        batch_free(b);
        fr_conn_close(s->conn);
    }
    return 0;
}

static void stream_write(fr_stream_t *s) {
    while (stream_write_batch(s)) {
    }
}

int fr_stream_flush_pending(fr_worker_t *w, uint64_t slice_ns) {
    uint64_t until = uv_hrtime() + slice_ns;
    unsigned n = 0;
    while (w->pending_head) {
        /* The clock is read every 64 writes: a write costs microseconds, a read tens of ns. */
        if ((++n & 63) == 0 && uv_hrtime() >= until)
            return 1;
        fr_stream_t *s = w->pending_head;
        pending_unlink(w, s);
        stream_write(s);
    }
    return 0;
}

void fr_stream_heartbeat_due(fr_worker_t *w) {
    uint64_t now = uv_now(w->loop);
    uint64_t hb = w->config->heartbeat_ms;
    /* Compared as last + hb <= now, not now - last >= hb: a stream touched during this walk may
     * carry a later millisecond than `now`, and the unsigned difference would wrap. */
    while (w->idle_head && w->idle_head->last_write_ms + hb <= now) {
        fr_stream_t *s = w->idle_head;
        if (s->ending) {
            /* An ending stream whose last bytes have not left within a heartbeat interval
             * belongs to a client that stopped reading: let it go. */
            idle_unlink(w, s);
            fr_conn_close(s->conn);
            continue;
        }
        if (s->ws) {
            if (s->ws_ping_pending) {
                /* No pong for a whole heartbeat interval: the peer is gone. */
                fr_stream_close_ws(s, FR_WS_CLOSE_GOING_AWAY, "no pong", "timeout");
                continue;
            }
            s->ws_ping_pending = 1;
            queue_static(s, fr_ws_ping_frame, sizeof fr_ws_ping_frame);
        } else {
            queue_static(s, heartbeat_frame, sizeof heartbeat_frame - 1);
        }
        FR_BUMP(w->metrics.heartbeats, 1);
    }
}

void fr_stream_end(fr_stream_t *s, uint64_t retry_ms) {
    if (s->ending || s->detached)
        return;
    if (s->ws) {
        const char *text;
        uint16_t code = fr_ws_close_code(s->end_reason, &text);
        fr_stream_close_ws(s, code, text, s->end_reason ? s->end_reason : "shutdown");
        return;
    }
    if (retry_ms) {
        char buf[48];
        int n = snprintf(buf, sizeof buf, "retry: %llu\n\n", (unsigned long long)retry_ms);
        queue_owned(s, fr_strndup(buf, (size_t)n), (size_t)n);
    }
    s->ending = 1;
    stream_mark_away(s);
    idle_touch(s);
    pending_mark(s);
}

void fr_stream_send(fr_stream_t *s, char *bytes, size_t len) {
    if (s->ending || s->detached) {
        free(bytes);
        return;
    }
    queue_owned(s, bytes, len);
}

void fr_stream_close_ws(fr_stream_t *s, uint16_t code, const char *reason, const char *why) {
    if (s->ending || s->detached)
        return;
    size_t len;
    char *f;
    if (code == 0) {
        f = fr_malloc(2);
        f[0] = (char)0x88;
        f[1] = 0;
        len = 2;
    } else {
        f = fr_ws_close_frame(code, reason, &len);
    }
    if (!s->end_reason)
        s->end_reason = why;
    queue_owned(s, f, len);
    s->ending = 1;
    stream_mark_away(s);
    idle_touch(s);
    pending_mark(s);
}

/* ---- opening ---------------------------------------------------------------------------- */

/* Accept: text/event-stream, text/(any), (any)/(any), or no Accept header. */
static int accepts_sse(const char *accept) {
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - start);
        if ((n == 17 && strncasecmp(start, "text/event-stream", 17) == 0) ||
            (n == 6 && strncasecmp(start, "text/*", 6) == 0) || (n == 3 && strncmp(start, "*/*", 3) == 0))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

static fr_stream_t *stream_new(fr_conn_t *c, fr_vm_t *vm, const fr_route_t *route) {
    fr_stream_t *s = fr_calloc(1, sizeof *s);
    s->conn = c;
    s->worker = c->worker;
    s->vm = vm;
    fr_vm_retain(vm);
    s->route = route;
    s->who_ref = LUA_NOREF;
    s->req_ref = LUA_NOREF;
    s->budget = &c->worker->config->default_tier;
    s->q_seq = 1;
    s->chunked = c->req.http_major == 1 && c->req.http_minor >= 1;
    return s;
}

void fr_stream_detach(fr_stream_t *s) {
    if (s->detached)
        return;
    s->detached = 1;
    stream_mark_away(s);
    idle_unlink(s->worker, s);
    pending_unlink(s->worker, s);
}

void fr_stream_free(fr_stream_t *s) {
    fr_stream_detach(s);
    fr_worker_t *w = s->worker;
    for (size_t i = 0; i < s->ntopics; i++) {
        if (s->subs)
            fr_hub_unsubscribe(w->hub, &s->subs[i]);
        free(s->topics[i]);
    }
    if (s->subs)
        FR_DROP(w->nstreams, 1);
    for (size_t i = 0; i < s->q_len; i++)
        item_release(queue_at(s, i));
    free(s->q);
    free(s->slow);
    free(s->last_seq);
    for (size_t i = 0; i < s->nheld; i++)
        fr_event_release(s->held[i].ev);
    free(s->held);
    free(s->topics);
    free(s->subs);
    free(s->pos);
    free(s->tier);
    free(s->who_id);
    luaL_unref(s->vm->L, LUA_REGISTRYINDEX, s->who_ref);
    luaL_unref(s->vm->L, LUA_REGISTRYINDEX, s->req_ref);
    if (s->wsp) {
        fr_ws_parser_close(s->wsp);
        free(s->wsp);
    }
    fr_vm_release(s->vm);
    free(s);
}

/* Reads the topics hook's answer (on the stack top) into the stream. Returns 0 or -1 after
 * logging what was wrong with it. */
static int stream_take_topics(fr_stream_t *s, lua_State *L) {
    if (!lua_istable(L, -1)) {
        fr_error("route %s: topics hook must return a list of topic names, got %s",
                 s->route->pattern.source, luaL_typename(L, -1));
        return -1;
    }
    size_t n = lua_objlen(L, -1);
    if (n == 0 || n > FR_MAX_TOPICS) {
        fr_error("route %s: topics hook must return between 1 and %d topics, got %zu",
                 s->route->pattern.source, FR_MAX_TOPICS, n);
        return -1;
    }
    s->topics = fr_calloc(n, sizeof *s->topics);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        size_t len;
        const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        const char *err = NULL;
        if (!t) {
            err = "not a string";
        } else if (strlen(t) != len || fr_event_validate(t, NULL, "", 0, &err) < 0) {
            /* A string that is no topic name (CR, LF, NUL, not UTF-8) most likely came from
             * the request (a path parameter): the client's mistake, a 400, not a server error. */
            lua_pop(L, 1);
            return -2;
        } else {
            for (size_t k = 0; k < s->ntopics; k++) {
                if (strcmp(s->topics[k], t) == 0)
                    err = "listed twice";
            }
        }
        if (err) {
            fr_error("route %s: topics hook: topic %zu is invalid: %s", s->route->pattern.source,
                     i + 1, err);
            lua_pop(L, 1);
            return -1;
        }
        s->topics[s->ntopics++] = fr_strdup(t);
        lua_pop(L, 1);
    }
    return 0;
}

/* The Last-Event-ID header, else the lastEventId query parameter (EventSource polyfills and
 * clients that cannot set headers), else NULL. */
static const char *stream_last_id(fr_conn_t *c, lua_State *L, int req_ref) {
    const char *h = fr_request_header(&c->req, "last-event-id");
    if (h && *h)
        return h;
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    lua_getfield(L, -1, "query");
    lua_getfield(L, -1, "lastEventId");
    const char *q = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    /* The string stays alive: the request table holds it until the request is done. */
    lua_pop(L, 3);
    return q && *q ? q : NULL;
}

static void stream_send_headers(fr_conn_t *c, int chunked) {
    char cors[512], head[1024];
    fr_conn_cors_headers(c, cors, sizeof cors);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/event-stream; charset=utf-8\r\n"
                     "Cache-Control: no-cache\r\n"
                     "Connection: %s\r\n"
                     "X-Accel-Buffering: no\r\n"
                     "%s%s\r\n",
                     chunked ? "keep-alive" : "close",
                     chunked ? "Transfer-Encoding: chunked\r\n" : "", cors);
    fr_conn_write(c, fr_strndup(head, (size_t)n), (size_t)n);
}

static void stream_log_start(fr_stream_t *s, int resume, int stale) {
    if (!fr_log_enabled(FR_LOG_INFO))
        return;
    char f[512], tier[96] = "null";
    if (s->tier)
        snprintf(tier, sizeof tier, "\"%s\"", s->tier);
    uint64_t id = s->conn->id;
    if (resume) {
        snprintf(f, sizeof f,
                 "\"event\":\"RECONNECTING\",\"conn\":%llu,\"replayed\":%lu,\"reset\":%s",
                 (unsigned long long)id, s->replayed, stale ? "true" : "false");
        fr_log_fields(FR_LOG_INFO, f);
    }
    char route[200];
    size_t n = 0;
    for (const char *p = s->route->pattern.source; *p && n + 3 < sizeof route; p++) {
        if (*p == '"' || *p == '\\')
            route[n++] = '\\';
        route[n++] = *p;
    }
    route[n] = '\0';
    snprintf(f, sizeof f,
             "\"event\":\"ACTIVE\",\"conn\":%llu,\"route\":\"%s\",\"topics\":%zu,\"tier\":%s",
             (unsigned long long)id, route, s->ntopics, tier);
    fr_log_fields(FR_LOG_INFO, f);
}

/* A stream that is on reads no more requests: what the request held (URL, headers, body) is
 * freed, so an idle stream costs little. A long-poll keeps it for its answer's headers. */
static void stream_shed_request(fr_stream_t *s) {
    if (!s->poll)
        fr_request_reset(&s->conn->req);
}

/* Headers (or, for a long-poll, its deadline) and the retry frame. */
static void stream_begin(fr_stream_t *s, int poll, int stale) {
    fr_worker_t *w = s->worker;
    if (poll) {
        fr_conn_wait(s->conn, FR_WAIT_POLL);
    } else if (s->ws) {
        fr_ws_send_handshake(s->conn, s->ws_accept, s->ws_proto);
        idle_touch(s); /* nothing is queued yet, and its pings start from now */
    } else {
        stream_send_headers(s->conn, s->chunked);
        queue_static(s, w->retry_frame, w->retry_frame_len);
    }
    FR_BUMP(w->metrics.streams, 1);
    if (stale)
        FR_BUMP(w->metrics.resume_reset, 1);
}

/* The `reset` event: the client's id is too old, it should reload its state; the id line
 * carries the current positions so its next resume starts from now. */
static void stream_queue_reset(fr_stream_t *s) {
    if (s->ws) {
        char *ids = positions_string(s);
        char *json = fr_malloc(strlen(ids) + 128);
        int n = sprintf(json, "{\"v\":1,\"type\":\"reset\",\"id\":\"%s\",\"reason\":\"the last "
                              "id is older than the replay window\"}", ids);
        size_t len;
        char *f = fr_ws_text_frame(json, (size_t)n, &len);
        free(json);
        free(ids);
        queue_owned(s, f, len);
        return;
    }
    size_t idlen;
    char *idline = positions_line(s, &idlen);
    static const char reset_body[] =
        "event: reset\ndata: {\"reason\":\"Last-Event-ID is older than the replay window\"}\n\n";
    size_t len = idlen + sizeof reset_body - 1;
    char *frame = fr_malloc(len);
    memcpy(frame, idline, idlen);
    memcpy(frame + idlen, reset_body, sizeof reset_body - 1);
    free(idline);
    queue_owned(s, frame, len);
}

static void stream_subscribe(fr_stream_t *s) {
    s->subs = fr_calloc(s->ntopics, sizeof *s->subs);
    for (size_t i = 0; i < s->ntopics; i++) {
        s->subs[i].deliver = on_deliver;
        s->subs[i].owner = s;
        s->subs[i].index = i;
        s->subs[i].slot = s->worker->hub_slot;
        s->subs[i].who = s->who_id;
        fr_hub_subscribe(s->worker->hub, &s->subs[i], s->topics[i]);
    }
}

/* ---- joining through a broker that spans nodes -------------------------------------------- */

static void join_refuse(fr_conn_t *c, int status, const char *msg) {
    c->req.keep_alive = 0;
    if (status == 503)
        fr_conn_respond(c, 503, "application/json", "Retry-After: 2\r\n",
                        "{\"error\":\"the broker is unavailable\"}", 37);
    else
        fr_conn_respond_error(c, status, msg);
}

typedef struct {
    fr_event_t *ev;
    size_t topic;
} replay_item_t;

static int replay_cmp(const void *a, const void *b) {
    return fr_id_cmp(((const replay_item_t *)a)->ev->id, ((const replay_item_t *)b)->ev->id);
}

static void on_joined(void *ctx, fr_join_t *res) {
    fr_conn_t *c = ctx;
    fr_stream_t *s = c->stream;
    if (c->closing || !s || res->ntopics != (s ? s->ntopics : 0)) {
        if (!c->closing && s)
            join_refuse(c, 503, NULL);
        goto out;
    }
    fr_worker_t *w = s->worker;
    int stale = 0;
    for (size_t i = 0; i < res->ntopics && !res->error; i++) {
        if (res->topics[i].status == FR_JOIN_INVALID) {
            FR_BUMP(w->metrics.resume_invalid, 1);
            join_refuse(c, 400, "Last-Event-ID was never issued by this stream");
            goto out;
        }
        stale |= res->topics[i].status == FR_JOIN_STALE;
    }
    if (res->error) {
        join_refuse(c, 503, NULL);
        goto out;
    }
    if (s->resume) {
        FR_BUMP(w->metrics.resumes, 1);
        if (stale && !s->route->on_gap_reset) {
            FR_BUMP(w->metrics.resume_stale, 1);
            join_refuse(c, 416, "Last-Event-ID is older than the replay window: reload the state "
                                "and reconnect without it");
            goto out;
        }
    }
    s->joining = 0;
    stream_begin(s, s->poll, stale);
    if (stale || !s->resume) {
        for (size_t i = 0; i < s->ntopics; i++)
            s->pos[i] = res->topics[i].last;
        if (stale)
            stream_queue_reset(s);
    } else {
        size_t total = 0;
        for (size_t i = 0; i < res->ntopics; i++)
            total += res->topics[i].nevents;
        replay_item_t *items = fr_malloc((total ? total : 1) * sizeof *items);
        size_t k = 0;
        for (size_t i = 0; i < res->ntopics; i++) {
            for (size_t e = 0; e < res->topics[i].nevents; e++) {
                items[k].ev = res->topics[i].events[e];
                items[k++].topic = i;
            }
        }
        qsort(items, total, sizeof *items, replay_cmp);
        for (size_t i = 0; i < total; i++)
            on_replay(s, items[i].topic, items[i].ev);
        free(items);
    }
    /* Live events that arrived while the replay was read: the ones it already covered are
     * skipped by id. */
    for (size_t i = 0; i < s->nheld; i++) {
        stream_offer(s, s->held[i].topic, s->held[i].ev);
        fr_event_release(s->held[i].ev);
    }
    s->nheld = 0;
    stream_log_start(s, s->resume, stale);
    stream_shed_request(s);
out:
    fr_join_free(res);
    fr_conn_release(c);
}

static void stream_join(fr_conn_t *c, fr_stream_t *s, int poll) {
    fr_worker_t *w = c->worker;
    s->poll = poll;
    s->joining = 1;
    c->stream = s;
    FR_BUMP(w->nstreams, 1);
    stream_subscribe(s);
    size_t max = w->config->replay_events ? w->config->replay_events : 1;
    fr_conn_hold(c);
    if (fr_redis_join(w->redis, s->topics, s->resume ? s->pos : NULL, s->ntopics, max, on_joined,
                      c) < 0) {
        fr_conn_release(c);
        join_refuse(c, 503, NULL);
    }
}

void fr_stream_open(fr_conn_t *c, fr_vm_t *vm, const fr_route_t *route, int req_ref) {
    fr_worker_t *w = c->worker;
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    lua_getfield(L, -1, "query");
    lua_getfield(L, -1, "transport");
    int poll = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "poll") == 0;
    lua_pop(L, 3);
    int ws = !poll && fr_ws_wants_upgrade(c);
    char ws_accept[29];
    int ws_proto = 0;
    if (ws && fr_ws_check_handshake(c, ws_accept, &ws_proto) < 0)
        return;
    const char *accept = fr_request_header(&c->req, "accept");
    if (!poll && !ws && accept && !accepts_sse(accept)) {
        fr_conn_respond_error(c, 406, "this route streams text/event-stream; send Accept: "
                                      "text/event-stream (or */*)");
        return;
    }
    if (fr_worker_fds_full(w)) {
        FR_BUMP(w->metrics.refused_fds, 1);
        fr_conn_respond(c, 503, "application/json", "Retry-After: 5\r\n",
                        "{\"error\":\"the server is at its connection limit\"}", 49);
        return;
    }
    fr_stream_t *s = stream_new(c, vm, route);
    s->poll = poll;
    if (ws) {
        s->ws = 1;
        s->chunked = 0;
        memcpy(s->ws_accept, ws_accept, sizeof ws_accept);
        s->ws_proto = ws_proto;
        s->wsp = fr_malloc(sizeof *s->wsp);
        fr_ws_parser_init(s->wsp, w->config->max_body);
        lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
        s->req_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (fr_dispatch_auth(c, vm, route, req_ref, &s->who_ref) < 0)
        goto fail;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
    lua_getfield(L, -1, "id");
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
        s->who_id = fr_strdup(lua_tostring(L, -1));
    lua_pop(L, 2);

    fr_vm_push_hook(vm, route, FR_HOOK_TOPICS);
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
    if (fr_vm_call(vm, route, "topics", 2, 1) != 0)
        goto fail_500;
    int bad = stream_take_topics(s, L);
    lua_pop(L, 1);
    if (bad == -2) {
        fr_conn_respond_error(c, 400, "the request names an invalid topic (CR, LF, NUL or not "
                                      "UTF-8)");
        goto fail;
    }
    if (bad)
        goto fail_500;

    const fr_tier_t *tier;
    if (fr_dispatch_tier(c, vm, route, req_ref, s->who_ref, &tier) < 0)
        goto fail;
    if (tier) {
        s->tier = fr_strdup(tier->name);
        s->budget = tier;
        char client[300];
        unsigned retry_after;
        fr_dispatch_client_id(c, vm, s->who_ref, client, sizeof client);
        if (fr_ratelimit_take(w->limits, FR_RL_CONNECT, tier, client, 1, fr_mono_ms(),
                              &retry_after) < 0) {
            FR_BUMP(w->tier_rejected[tier - w->config->tiers], 1);
            fr_dispatch_too_many(c, retry_after, "new streams");
            goto fail;
        }
    }

    s->pos = fr_calloc(s->ntopics, sizeof *s->pos);
    s->last_seq = fr_calloc(s->ntopics, sizeof *s->last_seq);
    s->slow = fr_calloc(s->ntopics, sizeof *s->slow);
    for (size_t i = 0; i < s->ntopics; i++) {
        s->slow[i] = (uint8_t)route->slow;
        if (route->slow_ref == LUA_NOREF)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, route->slow_ref);
        lua_pushstring(L, s->topics[i]);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
        if (fr_vm_call(vm, route, "on_slow", 2, 1) != 0)
            goto fail_500;
        fr_slow_t slow;
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING || fr_slow_parse(lua_tostring(L, -1), &slow) < 0) {
                fr_error("route %s: on_slow must return drop, conflate or disconnect, got %s",
                         route->pattern.source, lua_tostring(L, -1) ? lua_tostring(L, -1)
                                                                      : luaL_typename(L, -1));
                lua_pop(L, 1);
                goto fail_500;
            }
            s->slow[i] = (uint8_t)slow;
        }
        lua_pop(L, 1);
    }
    const char *last = stream_last_id(c, L, req_ref);
    int resume = last != NULL, stale = 0;
    if (resume) {
        int n = fr_id_parse_list(last, strlen(last), s->pos, s->ntopics);
        if (n < 0 || (size_t)n != s->ntopics) {
            char msg[160];
            if (n < 0)
                snprintf(msg, sizeof msg, "malformed Last-Event-ID: expected <ms>-<seq>%s",
                         s->ntopics > 1 ? " for each topic, comma-separated" : "");
            else
                snprintf(msg, sizeof msg, "Last-Event-ID holds %d ids but this stream follows %zu topics",
                         n, s->ntopics);
            fr_conn_respond_error(c, 400, msg);
            goto fail;
        }
    }
    s->resume = resume;
    if (w->redis) {
        stream_join(c, s, poll);
        return;
    }
    if (resume) {
        for (size_t i = 0; i < s->ntopics; i++) {
            fr_resume_t r = fr_hub_check_resume(w->hub, s->topics[i], s->pos[i]);
            if (r == FR_RESUME_INVALID) {
                FR_BUMP(w->metrics.resume_invalid, 1);
                fr_conn_respond_error(c, 400, "Last-Event-ID was never issued by this stream");
                goto fail;
            }
            stale |= r == FR_RESUME_STALE;
        }
        FR_BUMP(w->metrics.resumes, 1);
        if (stale && !route->on_gap_reset) {
            FR_BUMP(w->metrics.resume_stale, 1);
            fr_conn_respond_error(c, 416, "Last-Event-ID is older than the replay window: "
                                          "reload the state and reconnect without it");
            goto fail;
        }
    }

    /* From here the stream is on: headers, retry, replay, subscribe — under the hub's lock,
     * so no event (from this worker or another) can fall between position and subscription. */
    c->stream = s;
    FR_BUMP(w->nstreams, 1);
    fr_hub_lock(w->hub);
    stream_begin(s, poll, stale);
    if (stale) {
        for (size_t i = 0; i < s->ntopics; i++)
            s->pos[i] = fr_hub_position(w->hub, s->topics[i]);
        stream_queue_reset(s);
    } else if (resume) {
        s->replaying = 1;
        stream_replay_fill(s);
    } else {
        for (size_t i = 0; i < s->ntopics; i++)
            s->pos[i] = fr_hub_position(w->hub, s->topics[i]);
    }
    stream_subscribe(s);
    fr_hub_unlock(w->hub);
    stream_log_start(s, resume, stale);
    stream_shed_request(s);
    return;
fail_500:
    fr_conn_respond_error(c, 500, "internal error");
fail:
    fr_stream_free(s);
}

/* ---- changing a live stream (WebSocket subscribe / unsubscribe / resume) ------------------- */

const char *fr_stream_set_topics(fr_stream_t *s, lua_State *L) {
    fr_worker_t *w = s->worker;
    if (!lua_istable(L, -1)) {
        fr_error("route %s: topics hook must return a list of topic names, got %s",
                 s->route->pattern.source, luaL_typename(L, -1));
        return "internal error";
    }
    size_t n = lua_objlen(L, -1);
    if (n == 0 || n > FR_MAX_TOPICS)
        return "a stream follows between 1 and 64 topics";
    char **topics = fr_calloc(n, sizeof *topics);
    size_t m = 0;
    const char *err = NULL;
    for (size_t i = 0; i < n && !err; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        size_t tl = 0;
        const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &tl) : NULL;
        if (t && strlen(t) != tl)
            t = NULL;
        const char *verr;
        if (!t || fr_event_validate(t, NULL, "", 0, &verr) < 0)
            err = "the topics hook returned an invalid topic";
        for (size_t k = 0; k < m && !err; k++) {
            if (strcmp(topics[k], t) == 0)
                err = "the topics hook listed a topic twice";
        }
        if (!err)
            topics[m++] = fr_strdup(t);
        lua_pop(L, 1);
    }
    if (err) {
        for (size_t i = 0; i < m; i++)
            free(topics[i]);
        free(topics);
        return err;
    }
    /* Carry over what is known of kept topics; a new one starts from its current position,
     * read under the hub's lock held until the new subscriptions are in. */
    fr_hub_lock(w->hub);
    fr_id_t *pos = fr_calloc(m, sizeof *pos);
    uint8_t *slow = fr_calloc(m, sizeof *slow);
    uint64_t *last_seq = fr_calloc(m, sizeof *last_seq);
    size_t *map = fr_calloc(s->ntopics ? s->ntopics : 1, sizeof *map);
    for (size_t j = 0; j < s->ntopics; j++)
        map[j] = SIZE_MAX;
    for (size_t i = 0; i < m; i++) {
        slow[i] = (uint8_t)s->route->slow;
        pos[i] = fr_hub_position(w->hub, topics[i]);
        if (w->broker_remote && fr_id_cmp(pos[i], (fr_id_t){0, 0}) == 0)
            pos[i] = (fr_id_t){fr_now_ms(), 0};
        for (size_t j = 0; j < s->ntopics; j++) {
            if (strcmp(s->topics[j], topics[i]) == 0) {
                pos[i] = s->pos[j];
                slow[i] = s->slow[j];
                last_seq[i] = s->last_seq[j];
                map[j] = i;
            }
        }
    }
    /* Queued events of dropped topics go; the others follow their topic's new index. */
    for (size_t k = 0; k < s->q_len; k++) {
        fr_item_t *it = queue_at(s, k);
        if (it->kind != FR_ITEM_EVENT || !it->ev)
            continue;
        if (map[it->topic] == SIZE_MAX)
            queue_drop(s, it);
        else
            it->topic = (uint32_t)map[it->topic];
    }
    for (size_t k = 0; k < s->nheld; k++) {
        if (map[s->held[k].topic] == SIZE_MAX) {
            fr_event_release(s->held[k].ev);
            s->held[k--] = s->held[--s->nheld];
        } else {
            s->held[k].topic = (uint32_t)map[s->held[k].topic];
        }
    }
    free(map);
    for (size_t j = 0; j < s->ntopics; j++) {
        if (s->subs)
            fr_hub_unsubscribe(w->hub, &s->subs[j]);
        free(s->topics[j]);
    }
    free(s->subs);
    free(s->topics);
    free(s->pos);
    free(s->slow);
    free(s->last_seq);
    s->topics = topics;
    s->ntopics = m;
    s->pos = pos;
    s->slow = slow;
    s->last_seq = last_seq;
    stream_subscribe(s);
    fr_hub_unlock(w->hub);
    return NULL;
}

const char *fr_stream_resume_from(fr_stream_t *s, const char *ids) {
    fr_worker_t *w = s->worker;
    if (w->broker_remote)
        return "resuming on an open connection needs the memory broker: reconnect with "
               "?lastEventId=<id>";
    fr_id_t *after = fr_calloc(s->ntopics, sizeof *after);
    int n = fr_id_parse_list(ids, strlen(ids), after, s->ntopics);
    if (n < 0 || (size_t)n != s->ntopics) {
        free(after);
        return "resume takes an id per topic, comma-separated, as the envelopes carry them";
    }
    int stale = 0;
    for (size_t i = 0; i < s->ntopics; i++) {
        fr_resume_t r = fr_hub_check_resume(w->hub, s->topics[i], after[i]);
        if (r == FR_RESUME_INVALID) {
            free(after);
            return "that id was never issued by this stream";
        }
        stale |= r == FR_RESUME_STALE;
    }
    FR_BUMP(w->metrics.resumes, 1);
    if (stale) {
        free(after);
        FR_BUMP(w->metrics.resume_reset, 1);
        for (size_t i = 0; i < s->ntopics; i++)
            s->pos[i] = fr_hub_position(w->hub, s->topics[i]);
        stream_queue_reset(s);
        return NULL;
    }
    memcpy(s->pos, after, s->ntopics * sizeof *after);
    free(after);
    s->replaying = 1;
    stream_replay_fill(s);
    return NULL;
}
