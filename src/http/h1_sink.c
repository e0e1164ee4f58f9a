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
    char head[2048];
    size_t n = fr_h1_head(c, h, head, sizeof head);
    fr_conn_write(c, fr_strndup(head, n), n);
    if (c->streamed)
        fr_h1_shed(c);
}

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

#define FR_H1_MAX_BUFS 160

static int h1_write(fr_sink_t *sink, const uv_buf_t *bufs, size_t n, fr_sink_done_cb done,
                    void *ctx) {
    fr_conn_t *c = conn_of(sink);
    if (c->closing)
        return UV_ECANCELED;
    if (n + 2 > FR_H1_MAX_BUFS)
        return UV_EINVAL;
    /* framed[0] is kept for the chunk head, filled once the body's length is known. */
    uv_buf_t framed[FR_H1_MAX_BUFS];
    char head[24];
    size_t nf = 1, body = 0;
    for (size_t i = 0; i < n; i++) {
        framed[nf++] = bufs[i];
        body += bufs[i].len;
    }
    if (body == 0)
        return FR_SINK_DONE;
    uv_buf_t *first = framed + 1;
    if (c->chunked) {
        framed[0] = uv_buf_init(head, (unsigned)chunk_head(head, body));
        framed[nf++] = uv_buf_init((char *)chunk_end, 2);
        first = framed;
    }
    nf -= (size_t)(first - framed);
    return fr_conn_send(c, first, nf, c->chunked, done, ctx);
}

static size_t h1_queued(const fr_sink_t *sink) {
    return fr_conn_queued(FR_CONTAINER_OF(sink, fr_conn_t, x.sink));
}

static void h1_end(fr_sink_t *sink, int reuse) {
    fr_conn_t *c = conn_of(sink);
    sink->owner_ops = NULL;
    sink->owner = NULL;
    if (c->closing)
        return;
    if (c->chunked) {
        c->chunked = 0;
        fr_conn_write(c, fr_strndup(body_end, sizeof body_end - 1), sizeof body_end - 1);
    }
    if (!reuse || c->streamed || c->close_after_write) {
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
