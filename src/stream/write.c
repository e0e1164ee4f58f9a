/* Writing a stream through its sink: batches of queued items in one write, the in-band drop
 * report in front of the events it concerns, a long-poll's whole answer, and the end.
 *
 * A batch lives on the stack while the sink takes it whole, which is the usual case; only
 * when the sink keeps part of it (a full socket) do its items move to the heap, holding the
 * bytes the sink points into until it is done with them. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "stream/stream.h"

#define FR_WRITE_BATCH 64

typedef struct {
    size_t nitems;
    char *notice;      /* owned: the in-band report of dropped events, or NULL */
    int carried;       /* the batch held at least one event */
    fr_item_t items[]; /* each holds what its bytes point into until the write is done */
} batch_t;

static batch_t *batch_new(size_t n, char *notice, int carried) {
    batch_t *b = fr_malloc(sizeof *b + n * sizeof(fr_item_t));
    b->nitems = n;
    b->notice = notice;
    b->carried = carried;
    return b;
}

static void release_items(fr_item_t *items, size_t n, char *notice) {
    for (size_t i = 0; i < n; i++)
        fr_item_release(&items[i]);
    free(notice);
}

/* What follows a write that left completely (or failed): more catching up, and the queue's
 * ring given back when the stream went idle. Returns 1 when there is more to write. */
static int after_write(fr_stream_t *s, int status, int carried) {
    if (status < 0 && !s->detached) {
        /* The CLOSED line names what the sink says (a peer that stopped acknowledging), or
         * the client. */
        s->sink->ops->abort(s->sink);
        return 0;
    }
    if (s->detached)
        return 0;
    fr_outq_written(&s->out);
    if (s->catching_up)
        fr_stream_catch_up(s);
    if (s->out.len == 0 && !s->ending && !carried) {
        /* An idle stream (its last write was a heartbeat or the opening retry:) keeps no
         * ring: most streams are idle most of the time. A stream receiving events keeps its
         * ring, so a steady trickle allocates nothing. */
        fr_outq_trim(&s->out);
    }
    return s->out.len > 0 || s->ending == 1;
}

static void on_written(void *ctx, int status) {
    fr_stream_t *s = ctx;
    batch_t *b = s->pending_batch;
    s->pending_batch = NULL;
    int carried = b->carried;
    release_items(b->items, b->nitems, b->notice);
    free(b);
    s->writing = 0;
    if (s->ending == 2) {
        fr_stream_finished(s, NULL); /* the sink was told to end: nothing more comes */
        return;
    }
    if (after_write(s, status, carried))
        fr_stream_write(s);
}

/* Tells the sink the body is complete. After it the sink calls nothing on the stream, which
 * frees itself once no write of its own is pending. Returns 1 when the stream is gone. */
static int end_sink(fr_stream_t *s) {
    s->ending = 2;
    fr_stream_unlist(s);
    s->sink->ops->end(s->sink, s->tp->reuse);
    if (s->writing)
        return 0;
    fr_stream_finished(s, NULL);
    return 1;
}

/* Answers a long-poll with everything queued, as one response with a length. The body is
 * copied into one buffer: a whole queue may be more pieces than one write takes, and the
 * items go at once. */
static void respond_whole(fr_stream_t *s, int status) {
    size_t n = s->out.len, total = 0, nlen = 0;
    char *notice = s->out.unreported ? s->tp->dropped(s, &nlen) : NULL;
    s->out.unreported = 0;
    total = nlen;
    for (size_t i = 0; i < n; i++)
        total += fr_item_size(fr_outq_at(&s->out, i));
    char *body = fr_malloc(total ? total : 1);
    if (nlen)
        memcpy(body, notice, nlen);
    free(notice);
    size_t at = nlen;
    for (size_t i = 0; i < n; i++) {
        fr_item_t *it = fr_outq_at(&s->out, i);
        if (it->kind == FR_ITEM_EVENT && it->ev) {
            s->sent++;
            FR_BUMP(s->env->metrics->delivered, 1);
        }
        uv_buf_t part[2];
        for (size_t k = 0, m = fr_item_bufs(it, part); k < m; k++) {
            memcpy(body + at, part[k].base, part[k].len);
            at += part[k].len;
        }
    }
    fr_outq_release_front(&s->out, n);
    s->bytes += total;
    FR_BUMP(s->env->metrics->bytes_written, total);
    /* Where the next poll resumes, even when this answer is empty (204) or holds only
     * events of other topics: the positions after what it carries. */
    char *headers = fr_malloc(48 + fr_stream_positions_max(s));
    memcpy(headers, "Cache-Control: no-cache\r\nLast-Event-ID: ", 40);
    size_t hn = 40 + fr_stream_positions(s, headers + 40);
    memcpy(headers + hn, "\r\n", 3);
    fr_head_t head = {status, status == 200 ? "text/event-stream; charset=utf-8" : NULL, headers,
                      (int64_t)total};
    fr_stream_head(s, &head);
    free(headers);
    uv_buf_t bufs[3] = {{0}, {.base = body, .len = total}, {0}}; /* room around: sink.h */
    int rc = total ? s->sink->ops->write(s->sink, bufs + 1, 1, total, on_written, s)
                   : FR_SINK_DONE;
    if (rc == FR_SINK_PENDING) {
        /* The sink points into the body: the batch keeps it until it is done. */
        s->pending_batch = batch_new(0, body, 1);
        s->writing = 1;
    } else {
        free(body);
    }
    end_sink(s);
}

/* Writes one batch (up to FR_WRITE_BATCH items). Returns 1 when it left at once and more
 * waits, so the caller loops instead of recursing through a long queue. */
static int write_batch(fr_stream_t *s) {
    if (s->writing || s->detached || !s->started || s->ending == 2)
        return 0;
    if (s->tp->whole) {
        if (s->out.len > 0)
            respond_whole(s, 200);
        return 0;
    }
    fr_outq_skip_holes(&s->out);
    if (s->out.len == 0 && !s->out.unreported) {
        if (s->ending)
            end_sink(s);
        return 0;
    }
    size_t n = s->out.len < FR_WRITE_BATCH ? s->out.len : FR_WRITE_BATCH;
    /* The items stay in the queue while the sink writes them; they leave it once the write
     * is done, or move to a batch that keeps them while the sink holds their bytes. bufs[0]
     * and the slot after the last are the sink's, to frame in place (sink.h). */
    uv_buf_t bufs[2 * FR_WRITE_BATCH + 3];
    size_t nb = 1, total = 0, events = 0;
    char *notice = NULL;
    /* The drop report goes right before the first event of the batch (after the opening
     * retry: frame of a resumed stream), or first when the batch carries no event (before a
     * closing retry:). */
    size_t notice_at = SIZE_MAX;
    for (size_t i = 0; i < n && s->out.unreported; i++) {
        const fr_item_t *it = fr_outq_at(&s->out, i);
        if (it->kind == FR_ITEM_EVENT && it->ev) {
            notice_at = i;
            break;
        }
    }
    if (s->out.unreported && notice_at == SIZE_MAX)
        notice_at = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == notice_at) {
            size_t len;
            notice = s->tp->dropped(s, &len);
            s->out.unreported = 0;
            bufs[nb++] = (uv_buf_t){.base = notice, .len = len};
            total += len;
        }
        const fr_item_t *it = fr_outq_at(&s->out, i);
        total += fr_item_size(it);
        events += it->kind == FR_ITEM_EVENT && it->ev;
        nb += fr_item_bufs(it, bufs + nb);
    }
    if (notice_at == n) {
        /* Nothing queued but a report to make. */
        size_t len;
        notice = s->tp->dropped(s, &len);
        s->out.unreported = 0;
        bufs[nb++] = (uv_buf_t){.base = notice, .len = len};
        total += len;
    }
    int carried = events > 0;
    s->sent += events;
    FR_BUMP(s->env->metrics->delivered, events);
    s->bytes += total;
    FR_BUMP(s->env->metrics->bytes_written, total);
    int rc = nb > 1 ? s->sink->ops->write(s->sink, bufs + 1, nb - 1, total, on_written, s)
                    : FR_SINK_DONE; /* only holes */
    if (rc == FR_SINK_PENDING) {
        batch_t *b = batch_new(n, notice, carried);
        for (size_t i = 0; i < n; i++)
            b->items[i] = *fr_outq_at(&s->out, i);
        fr_outq_take(&s->out, n);
        s->pending_batch = b;
        s->writing = 1;
        return 0;
    }
    fr_outq_release_front(&s->out, n);
    if (notice)
        free(notice);
    return after_write(s, rc < 0 ? rc : 0, carried);
}

void fr_stream_whole(fr_stream_t *s) {
    if (s->writing || s->detached || s->ending == 2 || !s->started)
        return;
    respond_whole(s, s->out.len ? 200 : 204);
}

void fr_stream_write(fr_stream_t *s) {
    while (write_batch(s)) {
    }
}
