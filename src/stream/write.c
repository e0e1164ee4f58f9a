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

static batch_t *batch_new(const fr_item_t *items, size_t n, char *notice, int carried) {
    batch_t *b = fr_malloc(sizeof *b + n * sizeof *items);
    b->nitems = n;
    b->notice = notice;
    b->carried = carried;
    memcpy(b->items, items, n * sizeof *items);
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
        if (!s->end_reason)
            s->end_reason = "client";
        s->sink->ops->abort(s->sink);
        return 0;
    }
    if (s->detached)
        return 0;
    fr_outq_written(&s->out);
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

/* Answers a long-poll with everything queued, as one response with a length. */
static void respond_whole(fr_stream_t *s, int status) {
    size_t n = s->out.len;
    uv_buf_t *bufs = fr_malloc((2 * n + 1) * sizeof *bufs);
    fr_item_t *items = fr_malloc((n ? n : 1) * sizeof *items);
    size_t nb = 0, total = 0;
    char *notice = NULL;
    if (s->out.unreported) {
        size_t len;
        notice = s->tp->dropped(s, &len);
        bufs[nb++] = uv_buf_init(notice, (unsigned)len);
        total += len;
    }
    for (size_t i = 0; i < n; i++) {
        fr_item_t *it = fr_outq_at(&s->out, i);
        items[i] = *it;
        if (it->kind == FR_ITEM_EVENT && it->ev) {
            s->sent++;
            FR_BUMP(s->env->metrics->delivered, 1);
        }
        nb += fr_item_bufs(it, bufs + nb);
        total += fr_item_size(it);
    }
    fr_outq_take(&s->out, n);
    s->bytes += total;
    FR_BUMP(s->env->metrics->bytes_written, total);
    fr_head_t head = {status, status == 200 ? "text/event-stream; charset=utf-8" : NULL,
                      "Cache-Control: no-cache\r\n", (int64_t)total};
    s->sink->ops->head(s->sink, &head);
    int rc = total ? s->sink->ops->write(s->sink, bufs, nb, on_written, s) : FR_SINK_DONE;
    free(bufs);
    if (rc == FR_SINK_PENDING) {
        /* The sink holds the items' bytes: the batch keeps them until it is done. */
        s->pending_batch = batch_new(items, n, notice, 1);
        s->writing = 1;
    } else {
        release_items(items, n, notice);
    }
    free(items);
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
    fr_item_t items[FR_WRITE_BATCH];
    uv_buf_t bufs[2 * FR_WRITE_BATCH + 1];
    size_t nb = 0, total = 0;
    char *notice = NULL;
    int carried = 0;
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
    for (size_t i = 0; i <= n; i++) {
        if (i == notice_at) {
            size_t len;
            notice = s->tp->dropped(s, &len);
            s->out.unreported = 0;
            bufs[nb++] = uv_buf_init(notice, (unsigned)len);
            total += len;
        }
        if (i == n)
            break;
        fr_item_t *it = fr_outq_at(&s->out, i);
        items[i] = *it;
        total += fr_item_size(it);
        if (it->kind == FR_ITEM_EVENT && it->ev) {
            carried = 1;
            s->sent++;
            FR_BUMP(s->env->metrics->delivered, 1);
        }
        nb += fr_item_bufs(it, bufs + nb);
    }
    fr_outq_take(&s->out, n);
    s->bytes += total;
    FR_BUMP(s->env->metrics->bytes_written, total);
    if (nb == 0) {
        /* Only holes were taken. */
        return after_write(s, 0, carried);
    }
    int rc = s->sink->ops->write(s->sink, bufs, nb, on_written, s);
    if (rc == FR_SINK_PENDING) {
        s->pending_batch = batch_new(items, n, notice, carried);
        s->writing = 1;
        return 0;
    }
    release_items(items, n, notice);
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
