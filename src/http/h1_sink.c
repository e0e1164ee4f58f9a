/* The HTTP/1 sink: how a stream's bytes leave on an HTTP/1.x connection.
 *
 *   answer with a length   Content-Length, keep-alive when the client keeps it alive
 *   streamed answer        HTTP/1.1: chunked; HTTP/1.0: raw until the connection closes
 *   101                    raw from then on, both ways (the writer reads what comes in)
 *
 * A write goes to the socket at once (uv_try_write, the caller's buffers as they are); only
 * what a full socket leaves is handed to uv_write, and the caller keeps those bytes alive
 * until its done callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "http/conn.h"

static const char chunk_end[] = "\r\n";
static const char body_end[] = "0\r\n\r\n";

static fr_conn_t *conn_of(fr_sink_t *sink) {
    return FR_CONTAINER_OF(sink, fr_conn_t, x.sink);
}

static void h1_head(fr_sink_t *sink, const fr_head_t *h) {
    fr_conn_t *c = conn_of(sink);
    /* A long-poll's Last-Event-ID header grows with its topics. */
    size_t cap = 2048 + (h->headers ? strlen(h->headers) : 0) +
                 (c->x.route_headers ? strlen(c->x.route_headers) : 0);
    char *head = fr_malloc(cap);
    size_t n = fr_h1_head(c, h, head, cap);
    /* A body with a length that comes in pieces (a file read chunk by chunk): the connection
     * closes after the last piece (h1_end), not once the head alone is out. */
    if (h->length >= 0 && c->close_after_write) {
        c->close_after_write = 0;
        c->x.last = 1;
    }
    c->body_out = h->length > 0 && !c->streamed;
    fr_conn_write(c, head, n);
    if (c->streamed)
        fr_h1_shed(c);
}

/* "<hex length>\r\n" without printf: this runs once per write of every stream. */
static size_t chunk_head(char *out, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 1;
    for (size_t v = len >> 4; v; v >>= 4)
        n++;
    for (size_t i = n; i-- > 0; len >>= 4)
        out[i] = hex[len & 15];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

#define FR_H1_MAX_BUFS 160

/* A chunk is framed in the room around the writer's array (sink.h): its head goes in
 * bufs[-1] (a temporary the connection copies if the write does not leave at once), its end
 * in bufs[n]. */
static int h1_write(fr_sink_t *sink, uv_buf_t *bufs, size_t n, size_t len, fr_sink_done_cb done,
                    void *ctx) {
    fr_conn_t *c = conn_of(sink);
    if (c->closing)
        return UV_ECANCELED;
    if (n + 2 > FR_H1_MAX_BUFS)
        return UV_EINVAL;
    if (len == 0)
        return FR_SINK_DONE;
    if (!c->chunked)
        return fr_conn_send(c, bufs, n, 0, done, ctx);
    char head[24];
    bufs[-1] = (uv_buf_t){.base = head, .len = chunk_head(head, len)};
    bufs[n] = (uv_buf_t){.base = (char *)chunk_end, .len = 2};
    return fr_conn_send(c, bufs - 1, n + 2, 1, done, ctx);
}

static size_t h1_queued(const fr_sink_t *sink) {
    return fr_conn_queued(FR_CONTAINER_OF(sink, fr_conn_t, x.sink));
}

static void h1_end(fr_sink_t *sink, int reuse) {
    fr_conn_t *c = conn_of(sink);
    sink->owner_ops = NULL;
    sink->owner = NULL;
    c->body_out = 0;
    if (c->closing)
        return;
    if (c->chunked) {
        c->chunked = 0;
        fr_conn_write(c, fr_strndup(body_end, sizeof body_end - 1), sizeof body_end - 1);
    }
    if (!reuse || c->streamed || c->close_after_write || c->x.last) {
        if (c->pending_writes == 0)
            fr_conn_close(c);
        else
            c->close_after_write = 1;
        return;
    }
    fr_h1_next(c);
}

static void h1_abort(fr_sink_t *sink) {
    fr_conn_close(conn_of(sink));
}

static void h1_ready(fr_sink_t *sink) {
    fr_conn_t *c = conn_of(sink);
    if (!c->raw || !c->held_input || !sink->owner_ops || c->closing)
        return;
    char *input = c->held_input;
    size_t n = c->nheld_input;
    c->held_input = NULL;
    c->nheld_input = 0;
    sink->owner_ops->data(sink->owner, input, n);
    free(input);
}

static const fr_sink_ops_t h1_sink_ops = {h1_head, h1_write, h1_queued, h1_end, h1_abort,
                                          h1_ready};

void fr_h1_sink_init(fr_conn_t *c) {
    c->x.sink.ops = &h1_sink_ops;
    c->x.sink.owner_ops = NULL;
    c->x.sink.owner = NULL;
}
