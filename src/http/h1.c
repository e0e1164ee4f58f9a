/* The HTTP/1 sink: how a stream's bytes leave on an HTTP/1.x connection, and the one place
 * that writes an HTTP/1.1 response head.
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

typedef struct {
    uv_write_t req;
    fr_conn_t *conn;
    fr_sink_done_cb done;
    void *ctx;
    char head[24]; /* the chunk size line, when a partial write left part of it */
} h1_write_t;

static const char chunk_end[] = "\r\n";
static const char body_end[] = "0\r\n\r\n";

static fr_conn_t *conn_of(fr_sink_t *sink) {
    return FR_CONTAINER_OF(sink, fr_conn_t, x.sink);
}

/* A head under construction in a caller's buffer: pieces are copied in, and what does not fit
 * is cut (the buffer is sized for any head freshet writes). */
typedef struct {
    char *p;
    size_t len, cap;
} head_t;

static void put(head_t *h, const char *s, size_t n) {
    if (h->len + n >= h->cap)
        n = h->len < h->cap - 1 ? h->cap - 1 - h->len : 0;
    memcpy(h->p + h->len, s, n);
    h->len += n;
}

static void puts_(head_t *h, const char *s) {
    put(h, s, strlen(s));
}

/* Digits of v without printf: this runs once per answer. */
static void put_uint(head_t *h, uint64_t v) {
    char tmp[24];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(h, tmp + n, sizeof tmp - n);
}

/* "Access-Control-Allow-Origin: …\r\nVary: Origin\r\n" for an allowed Origin. */
static void put_cors(head_t *h, fr_conn_t *c) {
    const char *origin = fr_request_header(&c->x.req, "origin");
    if (!origin || !fr_config_cors_allows(c->http->config, origin) || strpbrk(origin, "\r\n"))
        return;
    puts_(h, "Access-Control-Allow-Origin: ");
    puts_(h, origin);
    puts_(h, "\r\nVary: Origin\r\n");
}

size_t fr_h1_head(fr_conn_t *c, const fr_head_t *hd, char *out, size_t cap) {
    head_t h = {out, 0, cap};
    if (hd->status == 101) {
        c->raw = 1;
        c->streamed = 1;
        puts_(&h, "HTTP/1.1 101 Switching Protocols\r\n");
        if (hd->headers)
            puts_(&h, hd->headers);
        put(&h, "\r\n", 2);
        out[h.len] = '\0';
        return h.len;
    }
    puts_(&h, "HTTP/1.1 ");
    put_uint(&h, (uint64_t)hd->status);
    put(&h, " ", 1);
    puts_(&h, fr_http_status_text(hd->status));
    put(&h, "\r\n", 2);
    if (hd->content_type) {
        puts_(&h, "Content-Type: ");
        puts_(&h, hd->content_type);
        put(&h, "\r\n", 2);
    }
    if (hd->length >= 0) {
        int keep = c->x.req.keep_alive && !c->http->stopping && !c->x.last;
        if (!keep)
            c->close_after_write = 1;
        puts_(&h, "Content-Length: ");
        put_uint(&h, (uint64_t)hd->length);
        puts_(&h, keep ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
    } else {
        /* HTTP/1.0 has no chunks: the body ends with the connection. */
        c->chunked = c->x.req.http_major == 1 && c->x.req.http_minor >= 1;
        c->streamed = 1;
        puts_(&h, c->chunked ? "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
                             : "Connection: close\r\n");
    }
    if (hd->headers)
        puts_(&h, hd->headers);
    put_cors(&h, c);
    put(&h, "\r\n", 2);
    out[h.len] = '\0';
    return h.len;
}

void fr_h1_continue(fr_conn_t *c) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    fr_conn_write(c, fr_strndup(cont, sizeof cont - 1), sizeof cont - 1);
}

static void h1_head(fr_sink_t *sink, const fr_head_t *h) {
    fr_conn_t *c = conn_of(sink);
    char head[2048];
    size_t n = fr_h1_head(c, h, head, sizeof head);
    fr_conn_write(c, fr_strndup(head, n), n);
    if (c->streamed)
        fr_conn_shed(c);
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

static void on_h1_written(uv_write_t *req, int status) {
    h1_write_t *w = (h1_write_t *)req;
    fr_conn_t *c = w->conn;
    fr_sink_done_cb done = w->done;
    void *ctx = w->ctx;
    free(w);
    c->pending_writes--;
    done(ctx, status);
    if (status < 0)
        fr_conn_close(c);
    else if (c->close_after_write && c->pending_writes == 0)
        fr_conn_close(c);
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
    size_t want = body;
    uv_buf_t *first = framed + 1;
    if (c->chunked) {
        framed[0] = uv_buf_init(head, (unsigned)chunk_head(head, body));
        framed[nf++] = uv_buf_init((char *)chunk_end, 2);
        want += framed[0].len + 2;
        first = framed;
    }
    nf -= (size_t)(first - framed);
    ssize_t sent = uv_try_write((uv_stream_t *)&c->tcp, first, (unsigned)nf);
    if (sent == UV_EAGAIN)
        sent = 0;
    if (sent < 0)
        return (int)sent;
    if ((size_t)sent == want)
        return FR_SINK_DONE;
    /* Partial: the socket buffer is full. The rest goes to uv_write, pointing into the
     * caller's bytes (kept until done) and into a copy of the chunk head. */
    h1_write_t *w = fr_malloc(sizeof *w);
    w->conn = c;
    w->done = done;
    w->ctx = ctx;
    memcpy(w->head, head, sizeof head);
    size_t k = 0, skip = (size_t)sent;
    while (skip >= first[k].len) {
        skip -= first[k].len;
        k++;
    }
    first[k].base += skip;
    first[k].len -= skip;
    if (first[k].base >= head && first[k].base < head + sizeof head)
        first[k].base = w->head + (first[k].base - head);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, first + k, (unsigned)(nf - k),
                 on_h1_written) != 0) {
        free(w);
        return UV_EPIPE;
    }
    c->pending_writes++;
    return FR_SINK_PENDING;
}

static size_t h1_queued(const fr_sink_t *sink) {
    const fr_conn_t *c = FR_CONTAINER_OF(sink, fr_conn_t, x.sink);
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
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
    fr_conn_next(c);
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
