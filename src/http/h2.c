/* HTTP/2 (nghttp2): many exchanges on one connection, one per stream, each with its own sink.
 *
 *   bytes ──nghttp2_session_mem_recv──► HEADERS/DATA ──► a stream's exchange ──handle()──► app
 *   a stream's writer ──write──► its out buffer ──DATA frames (as its window allows)──►
 *        the connection's frames, gathered per loop iteration ──fr_conn_send_copy──► socket
 *
 * Flow control is backpressure: a write whose bytes cannot leave at once (the stream's window
 * or the connection's is closed, or the socket is full) is held, the writer hears FR_SINK_PENDING
 * and its events wait in its own out-queue, where its budgets and on_slow policy apply as on
 * HTTP/1.1. Other streams keep going: nghttp2 sends whichever stream has data and window.
 *
 * Frames are gathered, not sent per write: a write marks the connection dirty and
 * fr_http_flush (once per loop iteration, after the streams' writes) sends what each dirty
 * connection has in one write. While the socket holds a previous write, no more frames are
 * made, so the bytes stay with their streams and count against their budgets.
 *
 * A stream ends with END_STREAM (its writer ended it), with RST_STREAM from either side (the
 * client left, or a slow stream was cut off): only that stream goes. The connection ends with
 * GOAWAY: when it is closed, when the server drains, and when a client abuses it (more control
 * frames or resets than any client needs, a header block past limits.headers). */
#include <ctype.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"
#include "codec/access.h"
#include "http/conn.h"

/* Control frames (SETTINGS, PING, WINDOW_UPDATE, PRIORITY, RST_STREAM) and client resets a
 * connection may send per second (CONTINUATION floods are nghttp2's to stop); past either it is closed with GOAWAY
 * (ENHANCE_YOUR_CALM). A browser sends a handful; a flood sends thousands. */
#define FR_H2_CONTROL_PER_S 1000
#define FR_H2_RESETS_PER_S 200
/* A socket that has not taken a write of frames for this long is a stalled client. */
#define FR_H2_STALLED_MS 1000
/* Frames gathered into one socket write at most. */
#define FR_H2_GATHER (64 * 1024)

typedef struct fr_h2_s fr_h2_t;

typedef struct {
    fr_exchange_t x;
    fr_h2_t *h2;           /* NULL once the connection's session is gone */
    fr_conn_t *c;          /* held while the stream is (fr_conn_hold) */
    int32_t id;
    fr_buf_t out;          /* body bytes not yet in DATA frames, from `at` on */
    size_t at;
    fr_sink_done_cb done;  /* a write held until out is sent, or NULL */
    void *done_ctx;
    unsigned holds;
    unsigned head_sent : 1;
    unsigned eof : 1;      /* the body is complete once out is sent */
    unsigned bodyless : 1; /* the head ended the stream (HEAD, 204, 304, an empty body) */
    unsigned dispatched : 1;
    unsigned rejected : 1; /* answered before its request was complete (413) */
    unsigned closed : 1;   /* nghttp2 closed it */
    fr_list_t link;        /* in h2->streams while open */
    fr_list_t wait_link;   /* in h2->waiting while done is held */
} h2_stream_t;

struct fr_h2_s {
    fr_conn_t *c;
    nghttp2_session *ng;
    fr_list_t streams;
    fr_list_t waiting;
    fr_list_t dirty_link;  /* in http->h2_dirty */
    size_t nstreams;
    uint32_t calm;         /* an error code to go away with, set by a callback */
    unsigned sending : 1;  /* a write of frames is on the socket */
    uint64_t sending_ms;   /* since when */
    unsigned draining : 1; /* GOAWAY sent: close once the streams are done */
    unsigned in_session : 1;
    uint64_t window_ms;    /* the second the counters below count */
    unsigned control, resets;
};

static fr_h2_t *h2_of(fr_conn_t *c) {
    return c->h2;
}

static void mark_dirty(fr_h2_t *h) {
    if (!fr_list_linked(&h->dirty_link))
        fr_list_insert_tail(&h->c->http->h2_dirty, &h->dirty_link);
}

/* Goes away with GOAWAY(code) once the frames before it are out (from a callback: the
 * session is told now, the connection closes after the flush). */
static void go_away(fr_h2_t *h, uint32_t code, const char *reason) {
    if (!h->c->close_reason)
        h->c->close_reason = reason;
    if (!h->calm)
        h->calm = code ? code : NGHTTP2_NO_ERROR;
    nghttp2_session_terminate_session(h->ng, code);
    mark_dirty(h);
}

/* ---- streams per client --------------------------------------------------------------------- */

/* Every stream of a connection is counted for its address (http/h2_clients.h), from its
 * HEADERS until it closes. */
static int client_take(fr_h2_t *h) {
    const fr_config_t *cfg = h->c->http->config;
    unsigned limit = cfg->h2_streams_per_client ? cfg->h2_streams_per_client
                                                : 4 * cfg->h2_streams;
    return fr_h2_clients_take(h->c->http->h2_clients, h->c->remote, limit);
}

static void client_give(fr_h2_t *h) {
    fr_h2_clients_give(h->c->http->h2_clients, h->c->remote);
}

/* ---- streams ------------------------------------------------------------------------------ */

static const fr_exchange_ops_t h2_exchange_ops;
static const fr_sink_ops_t h2_sink_ops;

static void stream_free(h2_stream_t *st) {
    fr_request_reset(&st->x.req);
    fr_buf_free(&st->out);
    fr_conn_t *c = st->c;
    free(st);
    fr_conn_release(c);
}

static void x_hold(fr_exchange_t *x) {
    FR_CONTAINER_OF(x, h2_stream_t, x)->holds++;
}

static void x_release(fr_exchange_t *x) {
    h2_stream_t *st = FR_CONTAINER_OF(x, h2_stream_t, x);
    if (--st->holds == 0 && st->closed)
        stream_free(st);
}

static h2_stream_t *stream_new(fr_h2_t *h, int32_t id) {
    h2_stream_t *st = fr_calloc(1, sizeof *st);
    fr_conn_t *c = h->c;
    st->h2 = h;
    st->c = c;
    fr_conn_hold(c);
    st->id = id;
    st->x.ops = &h2_exchange_ops;
    st->x.sink.ops = &h2_sink_ops;
    st->x.remote = c->remote;
    st->x.id = fr_http_next_id(c->http);
    st->x.opened_ms = fr_mono_ms();
    st->x.started_us = fr_mono_us();
    st->x.req.http_major = 2;
    st->x.req.keep_alive = 1;
    st->holds = 1; /* the session's, dropped when it closes the stream */
    fr_list_insert_tail(&h->streams, &st->link);
    if (h->nstreams++ == 0) {
        fr_conn_wait(c, FR_WAIT_NONE);
        c->streamed = 1;
    }
    FR_BUMP(c->http->metrics->h2_streams, 1);
    return st;
}

/* A held write whose bytes are all in frames now: the writer hears done. */
static void finish_waiting(fr_h2_t *h) {
    fr_list_t *l;
    fr_list_t *next;
    for (l = fr_list_first(&h->waiting); l; l = next) {
        next = fr_list_next(&h->waiting, l);
        h2_stream_t *st = FR_LIST_ENTRY(l, h2_stream_t, wait_link);
        if (st->at < st->out.len || h->sending)
            continue;
        fr_list_remove(&st->wait_link);
        fr_sink_done_cb done = st->done;
        st->done = NULL;
        done(st->done_ctx, 0);
        next = fr_list_first(&h->waiting); /* the callback may have changed the list */
    }
}

/* The stream is over (nghttp2 closed it, or the session is going): its writer hears gone, a
 * held write is cancelled, then closed; the stream goes once nobody holds it. */
static void stream_closed(h2_stream_t *st, const char *reason) {
    fr_h2_t *h = st->h2;
    st->closed = 1;
    st->x.gone = 1;
    st->holds++;
    if (h) {
        fr_list_remove(&st->link);
        st->h2 = NULL;
        h->nstreams--;
        client_give(h);
        if (h->nstreams == 0 && !h->c->closing) {
            h->c->streamed = 0;
            fr_conn_wait(h->c, FR_WAIT_IDLE);
        }
    }
    fr_sink_t *sink = &st->x.sink;
    if (sink->owner_ops)
        sink->owner_ops->gone(sink->owner, reason);
    if (st->done) {
        fr_list_remove(&st->wait_link);
        fr_sink_done_cb done = st->done;
        st->done = NULL;
        done(st->done_ctx, UV_ECANCELED);
    }
    if (sink->owner_ops) {
        const fr_sink_owner_ops_t *ops = sink->owner_ops;
        sink->owner_ops = NULL;
        ops->closed(sink->owner);
    }
    x_release(&st->x); /* the one taken above */
    x_release(&st->x); /* the session's */
}

/* ---- answers ------------------------------------------------------------------------------ */

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user) {
    (void)ng, (void)id, (void)user;
    h2_stream_t *st = src->ptr;
    size_t avail = st->out.len - st->at;
    if (avail == 0 && !st->eof)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = avail < len ? avail : len;
    memcpy(buf, st->out.p + st->at, n);
    st->at += n;
    if (st->at == st->out.len) {
        /* An idle stream keeps no buffer: most streams are idle most of the time. */
        fr_buf_free(&st->out);
        st->at = 0;
        if (st->eof)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

/* name: value pairs for nghttp2: names lower-cased into `names`, connection-specific headers
 * (which HTTP/2 forbids) left out. */
typedef struct {
    nghttp2_nv nv[48];
    size_t n;
    char names[2048];
    size_t used;
    char status[4];
} nv_list_t;

static void nv_add(nv_list_t *l, const char *name, size_t nlen, const char *value, size_t vlen,
                   int lower) {
    if (l->n == FR_ARRAY_LEN(l->nv) || l->used + nlen > sizeof l->names)
        return;
    char *n = l->names + l->used;
    for (size_t i = 0; i < nlen; i++)
        n[i] = lower ? (char)tolower((unsigned char)name[i]) : name[i];
    l->used += nlen;
    l->nv[l->n++] = (nghttp2_nv){(uint8_t *)n, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
}

static int forbidden(const char *name, size_t n) {
    static const char *const names[] = {"connection", "keep-alive", "transfer-encoding",
                                        "upgrade", "proxy-connection"};
    for (size_t i = 0; i < FR_ARRAY_LEN(names); i++) {
        if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0)
            return 1;
    }
    return 0;
}

/* "Name: value\r\n" lines into pairs. */
static void nv_lines(nv_list_t *l, const char *lines) {
    for (const char *p = lines; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        const char *end = eol ? eol : p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon && !forbidden(p, (size_t)(colon - p))) {
            const char *v = colon + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            nv_add(l, p, (size_t)(colon - p), v, (size_t)(end - v), 1);
        }
        p = eol ? eol + 2 : end;
    }
}

static void submit_head(h2_stream_t *st, const fr_head_t *hd, int bodyless) {
    fr_h2_t *h = st->h2;
    const fr_config_t *cfg = h->c->http->config;
    nv_list_t l = {.n = 0};
    int status = hd->status >= 100 && hd->status < 1000 ? hd->status : 500;
    snprintf(l.status, sizeof l.status, "%d", status);
    nv_add(&l, ":status", 7, l.status, 3, 0);
    if (hd->content_type)
        nv_add(&l, "content-type", 12, hd->content_type, strlen(hd->content_type), 0);
    char length[24];
    if (hd->length >= 0 && status != 204 && status != 304) {
        int n = snprintf(length, sizeof length, "%lld", (long long)hd->length);
        nv_add(&l, "content-length", 14, length, (size_t)n, 0);
    }
    nv_lines(&l, hd->headers);
    const char *origin = fr_request_header(&st->x.req, "origin");
    if (origin && fr_config_cors_allows(cfg, origin)) {
        nv_add(&l, "access-control-allow-origin", 27, origin, strlen(origin), 0);
        nv_add(&l, "vary", 4, "Origin", 6, 0);
    }
    st->head_sent = 1;
    st->bodyless = (unsigned)bodyless;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
    if (nghttp2_submit_response(h->ng, st->id, l.nv, l.n, bodyless ? NULL : &dp) != 0)
        nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    mark_dirty(h);
}

static int is_head(const h2_stream_t *st) {
    return strcmp(st->x.req.method, "HEAD") == 0;
}

static void x_respond(fr_exchange_t *x, int status, const char *content_type,
                      const char *headers, const char *body, size_t len) {
    h2_stream_t *st = FR_CONTAINER_OF(x, h2_stream_t, x);
    if (x->gone || !st->h2 || st->head_sent)
        return;
    fr_head_t hd = {status, content_type, headers, (int64_t)len};
    int bodyless = len == 0 || is_head(st) || status == 204 || status == 304;
    if (!bodyless)
        fr_buf_put(&st->out, body, len);
    st->eof = 1;
    submit_head(st, &hd, bodyless);
    fr_http_t *http = st->c->http;
    if (http->access) {
        fr_access_entry_t e = {.unix_ms = fr_now_ms(),
                               .remote = st->x.remote,
                               .method = st->x.req.method,
                               .target = st->x.req.url,
                               .target_len = st->x.req.url ? st->x.req.url_len : 0,
                               .status = status,
                               .bytes = bodyless ? 0 : len,
                               .duration_us = fr_mono_us() - st->x.started_us,
                               .transport = "h2"};
        fr_access_emit(http->access, http->config->access_log_json, &e);
    }
}

static const fr_exchange_ops_t h2_exchange_ops = {x_respond, x_hold, x_release};

/* ---- the sink ----------------------------------------------------------------------------- */

static h2_stream_t *stream_of_sink(fr_sink_t *sink) {
    return FR_CONTAINER_OF(sink, h2_stream_t, x.sink);
}

static void sink_head(fr_sink_t *sink, const fr_head_t *hd) {
    h2_stream_t *st = stream_of_sink(sink);
    if (st->x.gone || !st->h2 || st->head_sent)
        return;
    int bodyless = hd->status == 204 || hd->status == 304 || hd->length == 0 ||
                   (hd->length > 0 && is_head(st));
    submit_head(st, hd, bodyless);
    /* A stream reads no more of its request: it goes, so an idle stream holds less. */
    if (hd->length < 0)
        fr_request_reset(&st->x.req);
}

static void resume(h2_stream_t *st) {
    nghttp2_session_resume_data(st->h2->ng, st->id); /* fails harmlessly when not deferred */
    mark_dirty(st->h2);
}

static int sink_write(fr_sink_t *sink, uv_buf_t *bufs, size_t n, size_t len,
                      fr_sink_done_cb done, void *ctx) {
    h2_stream_t *st = stream_of_sink(sink);
    if (st->x.gone || !st->h2)
        return UV_ECANCELED;
    if (len == 0 || st->bodyless)
        return FR_SINK_DONE;
    /* Bytes still waiting from the previous write mean the window or the socket is closed:
     * this write is held too, and the writer's next events wait in its own queue. */
    int held = st->at < st->out.len || st->h2->sending;
    fr_buf_reserve(&st->out, len);
    for (size_t i = 0; i < n; i++)
        fr_buf_put(&st->out, bufs[i].base, bufs[i].len);
    resume(st);
    if (!held)
        return FR_SINK_DONE;
    st->done = done;
    st->done_ctx = ctx;
    fr_list_insert_tail(&st->h2->waiting, &st->wait_link);
    return FR_SINK_PENDING;
}

static size_t sink_queued(const fr_sink_t *sink) {
    const h2_stream_t *st = FR_CONTAINER_OF(sink, h2_stream_t, x.sink);
    return st->out.len - st->at;
}

static void sink_end(fr_sink_t *sink, int reuse) {
    (void)reuse; /* an HTTP/2 connection outlives its streams anyway */
    h2_stream_t *st = stream_of_sink(sink);
    sink->owner_ops = NULL;
    sink->owner = NULL;
    if (!st->h2 || st->eof)
        return;
    st->eof = 1;
    if (!st->head_sent) {
        nghttp2_submit_rst_stream(st->h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        mark_dirty(st->h2);
        return;
    }
    if (!st->bodyless)
        resume(st);
}

/* Stops this stream, not the connection: RST_STREAM(CANCEL). The writer hears gone now and
 * closed once the session has closed the stream. When the socket itself has not drained for a
 * second the slow one is the connection, not the stream (and a reset could not be sent
 * anyway): it closes, with every stream on it. */
static void sink_abort(fr_sink_t *sink) {
    h2_stream_t *st = stream_of_sink(sink);
    if (!st->h2 || st->x.gone)
        return;
    fr_h2_t *h = st->h2;
    if (h->sending && fr_mono_ms() - h->sending_ms >= FR_H2_STALLED_MS) {
        if (!h->c->close_reason)
            h->c->close_reason = "slow";
        fr_conn_close(h->c);
        return;
    }
    st->x.gone = 1;
    nghttp2_submit_rst_stream(st->h2->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    mark_dirty(st->h2);
    if (sink->owner_ops)
        sink->owner_ops->gone(sink->owner, NULL);
}

static void sink_ready(fr_sink_t *sink) {
    (void)sink; /* nothing comes after the request on an HTTP/2 stream but its end */
}

static const fr_sink_ops_t h2_sink_ops = {sink_head, sink_write, sink_queued, sink_end,
                                          sink_abort, sink_ready};

/* ---- requests ----------------------------------------------------------------------------- */

static h2_stream_t *stream_get(fr_h2_t *h, int32_t id) {
    return nghttp2_session_get_stream_user_data(h->ng, id);
}

/* Counts a control frame or a reset in the current second; past the limits the connection
 * goes away. */
static int flooding(fr_h2_t *h, int reset) {
    uint64_t now = fr_mono_ms();
    if (now - h->window_ms >= 1000) {
        h->window_ms = now;
        h->control = h->resets = 0;
    }
    h->control++;
    h->resets += (unsigned)reset;
    if (h->control <= FR_H2_CONTROL_PER_S && h->resets <= FR_H2_RESETS_PER_S)
        return 0;
    FR_BUMP(h->c->http->metrics->h2_abuse, 1);
    go_away(h, NGHTTP2_ENHANCE_YOUR_CALM, "h2 flood");
    return 1;
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user) {
    (void)ng;
    fr_h2_t *h = user;
    if (hd->type == NGHTTP2_DATA || hd->type == NGHTTP2_HEADERS || h->calm)
        return 0;
    flooding(h, hd->type == NGHTTP2_RST_STREAM);
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
    (void)ng;
    fr_h2_t *h = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST || h->calm)
        return 0;
    if (!client_take(h)) {
        /* REFUSED_STREAM: nothing of it was processed, the client may retry it later; its
         * other streams go on. Without user data the rest of its frames are ignored. */
        FR_BUMP(h->c->http->metrics->h2_refused, 1);
        nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        mark_dirty(h);
        return 0;
    }
    h2_stream_t *st = stream_new(h, f->hd.stream_id);
    nghttp2_session_set_stream_user_data(h->ng, f->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user) {
    (void)ng, (void)flags;
    fr_h2_t *h = user;
    h2_stream_t *st = stream_get(h, f->hd.stream_id);
    if (!st || st->dispatched || h->calm)
        return 0;
    fr_request_t *req = &st->x.req;
    /* A client that sends more than the SETTINGS said it may is not a client to serve. */
    req->header_bytes += (uint32_t)(nlen + vlen);
    if (req->header_bytes > h->c->http->config->max_headers) {
        FR_BUMP(h->c->http->metrics->h2_abuse, 1);
        go_away(h, NGHTTP2_ENHANCE_YOUR_CALM, "h2 headers");
        return 0;
    }
    const char *n = (const char *)name, *v = (const char *)value;
    if (nlen == 7 && memcmp(n, ":method", 7) == 0) {
        snprintf(req->method, sizeof req->method, "%.*s", (int)vlen, v);
    } else if (nlen == 5 && memcmp(n, ":path", 5) == 0) {
        fr_request_append_url(req, v, vlen);
    } else if (nlen == 10 && memcmp(n, ":authority", 10) == 0) {
        fr_request_append_field(req, "host", 4);
        fr_request_append_value(req, v, vlen);
    } else if (nlen > 0 && n[0] != ':') {
        fr_request_append_field(req, n, nlen);
        fr_request_append_value(req, v, vlen);
    }
    return 0;
}

static void dispatch(fr_h2_t *h, h2_stream_t *st) {
    if (st->dispatched || st->rejected)
        return;
    st->dispatched = 1;
    if (!st->x.req.url)
        fr_request_append_url(&st->x.req, "", 0);
    FR_BUMP(h->c->http->requests, 1);
    st->holds++;
    h->c->http->handle(h->c->http->ctx, &st->x);
    x_release(&st->x);
}

static void continue_if_asked(fr_h2_t *h, h2_stream_t *st) {
    const char *expect = fr_request_header(&st->x.req, "expect");
    if (!expect || strcasecmp(expect, "100-continue") != 0)
        return;
    static const nghttp2_nv cont[] = {{(uint8_t *)":status", (uint8_t *)"100", 7, 3, 0}};
    nghttp2_submit_headers(h->ng, NGHTTP2_FLAG_NONE, st->id, NULL, cont, 1, NULL);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user) {
    (void)ng;
    fr_h2_t *h = user;
    if (h->calm || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
        return 0;
    h2_stream_t *st = stream_get(h, f->hd.stream_id);
    if (!st)
        return 0;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        dispatch(h, st);
    else if (f->hd.type == NGHTTP2_HEADERS)
        continue_if_asked(h, st);
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user) {
    (void)ng, (void)flags;
    fr_h2_t *h = user;
    h2_stream_t *st = stream_get(h, id);
    if (!st || st->dispatched || st->rejected)
        return 0;
    if (st->x.req.body_len + len > h->c->http->config->max_body) {
        st->rejected = 1;
        fr_exchange_respond_error(&st->x, 413, "request body is larger than the limit");
        return 0;
    }
    fr_request_append_body(&st->x.req, (const char *)data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user) {
    fr_h2_t *h = user;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    const char *reason = NULL;
    if (code != NGHTTP2_NO_ERROR && !st->x.gone) {
        /* The client reset it (or the session did): it left. */
        reason = "reset";
        FR_BUMP(h->c->http->metrics->h2_resets, 1);
    }
    stream_closed(st, reason);
    return 0;
}

/* ---- the connection ------------------------------------------------------------------------- */

static void flush_conn(fr_h2_t *h);

static void on_sent(void *ctx, int status) {
    fr_h2_t *h = ctx;
    h->sending = 0;
    if (status < 0 || h->c->closing)
        return;
    flush_conn(h);
}

static void close_when_done(fr_h2_t *h) {
    fr_conn_t *c = h->c;
    if (c->pending_writes)
        c->close_after_write = 1;
    else
        fr_conn_close(c);
}

/* Sends what the session has ready, gathered into writes of up to FR_H2_GATHER bytes, until
 * the socket holds one or nothing is left; then the writes whose bytes are all in frames are
 * done. */
static void flush_conn(fr_h2_t *h) {
    fr_conn_t *c = h->c;
    fr_list_remove(&h->dirty_link);
    if (h->sending || c->closing || h->in_session)
        return;
    fr_buf_t *out = &c->http->h2_out;
    h->in_session = 1;
    for (;;) {
        out->len = 0;
        ssize_t n = 0;
        while (out->len < FR_H2_GATHER) {
            const uint8_t *p;
            n = nghttp2_session_mem_send(h->ng, &p);
            if (n <= 0)
                break;
            fr_buf_put(out, p, (size_t)n);
        }
        if (n < 0) {
            h->in_session = 0;
            c->close_reason = "h2";
            fr_conn_close(c);
            return;
        }
        if (out->len == 0)
            break;
        int rc = fr_conn_send_copy(c, out->p, out->len, on_sent, h);
        if (rc < 0) {
            h->in_session = 0;
            fr_conn_close(c);
            return;
        }
        if (rc == FR_SINK_PENDING) {
            h->sending = 1;
            h->sending_ms = fr_mono_ms();
            break;
        }
    }
    out->len = 0;
    if (out->cap > 4 * FR_H2_GATHER)
        fr_buf_free(out);
    h->in_session = 0;
    finish_waiting(h);
    if (c->closing)
        return;
    if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng))
        close_when_done(h);
    else if (h->draining && h->nstreams == 0)
        close_when_done(h);
}

void fr_http_flush(fr_http_t *http) {
    fr_list_t *l;
    while ((l = fr_list_first(&http->h2_dirty)))
        flush_conn(FR_LIST_ENTRY(l, fr_h2_t, dirty_link));
}

static void h2_start(fr_conn_t *c) {
    fr_h2_t *h = fr_calloc(1, sizeof *h);
    c->h2 = h;
    h->c = c;
    fr_list_init(&h->streams);
    fr_list_init(&h->waiting);
    FR_BUMP(c->http->metrics->h2_connections, 1);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* Flow control of what the client sends (request bodies) stays nghttp2's: it gives the
     * window back as it reads. */
    int rc = nghttp2_session_server_new2(&h->ng, cb, h, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) {
        c->close_reason = "h2";
        fr_conn_close(c);
        return;
    }
    const fr_config_t *cfg = c->http->config;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->h2_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_headers},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, FR_ARRAY_LEN(iv));
    /* The preface must arrive within the time a request's headers have. */
    fr_conn_wait(c, FR_WAIT_READING);
    mark_dirty(h);
}

static void h2_data(fr_conn_t *c, const char *bytes, size_t len) {
    fr_h2_t *h = h2_of(c);
    if (!h || h->calm)
        return;
    if (c->wait == FR_WAIT_READING)
        fr_conn_wait(c, h->nstreams ? FR_WAIT_NONE : FR_WAIT_IDLE);
    h->in_session = 1;
    ssize_t rc = nghttp2_session_mem_recv(h->ng, (const uint8_t *)bytes, len);
    h->in_session = 0;
    if (rc < 0) {
        /* A flood nghttp2 noticed (its queue of unsent acknowledgements, CONTINUATION frames
         * past its limit), or bytes that are no HTTP/2: GOAWAY with the reason, if the socket
         * takes it. */
        int flood = rc == NGHTTP2_ERR_FLOODED || rc == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
        c->close_reason = flood ? "h2 flood" : "h2";
        h->calm = flood ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
        if (flood)
            FR_BUMP(c->http->metrics->h2_abuse, 1);
        fr_conn_close(c);
        return;
    }
    flush_conn(h);
}

static void h2_timeout(fr_conn_t *c) {
    fr_conn_close(c);
}

/* Goes away with GOAWAY (best effort: the socket closes right after), and every stream's
 * writer hears gone. */
static void h2_closing(fr_conn_t *c) {
    fr_h2_t *h = h2_of(c);
    if (!h)
        return;
    fr_list_remove(&h->dirty_link);
    if (!h->in_session) {
        nghttp2_session_terminate_session(h->ng, h->calm);
        fr_buf_t *out = &c->http->h2_out;
        out->len = 0;
        const uint8_t *p;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(h->ng, &p)) > 0 && out->len < FR_H2_GATHER)
            fr_buf_put(out, p, (size_t)n);
        fr_conn_last_words(c, out->p, out->len);
        out->len = 0;
    }
    for (fr_list_t *l = fr_list_first(&h->streams); l; l = fr_list_next(&h->streams, l)) {
        h2_stream_t *st = FR_LIST_ENTRY(l, h2_stream_t, link);
        st->x.gone = 1;
        if (st->x.sink.owner_ops)
            st->x.sink.owner_ops->gone(st->x.sink.owner, c->close_reason);
    }
}

static int h2_closed(fr_conn_t *c) {
    fr_h2_t *h = h2_of(c);
    if (!h)
        return 0;
    fr_list_t *l;
    while ((l = fr_list_first(&h->streams)))
        stream_closed(FR_LIST_ENTRY(l, h2_stream_t, link), c->close_reason);
    nghttp2_session_del(h->ng);
    free(h);
    c->h2 = NULL;
    return 0;
}

/* The server drains: GOAWAY now (the streams already open go on until the drain ends them,
 * each with its retry:), and the connection closes once the last one has. */
static void h2_drain(fr_conn_t *c) {
    fr_h2_t *h = h2_of(c);
    if (!h || h->draining || c->closing)
        return;
    h->draining = 1;
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h->ng), NGHTTP2_NO_ERROR,
                          NULL, 0);
    mark_dirty(h);
}

const fr_proto_t fr_h2_proto = {h2_start, h2_data, h2_timeout, h2_closing, h2_closed, h2_drain};
