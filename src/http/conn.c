#include "http/conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"

typedef struct {
    uv_write_t req;
    fr_conn_t *conn;
    char *buf; /* owned */
} write_req_t;

static llhttp_settings_t parser_settings;
static int settings_ready;

static void conn_feed(fr_conn_t *c, const char *data, size_t len);

static fr_conn_t *conn_of(llhttp_t *p) {
    return p->data;
}

void fr_http_init(fr_http_t *http, uv_loop_t *loop, const fr_config_t *config,
                  fr_metrics_t *metrics) {
    memset(http, 0, sizeof *http);
    http->loop = loop;
    http->config = config;
    http->metrics = metrics;
    http->id_step = 1;
    http->id_first = 1;
    fr_list_init(&http->conns);
    for (size_t i = 0; i < FR_ARRAY_LEN(http->waits); i++)
        fr_list_init(&http->waits[i]);
}

/* Request line and headers together must fit in limits.headers. */
static int over_header_limit(fr_conn_t *c, size_t more) {
    c->x.req.header_bytes += more;
    if (c->x.req.header_bytes > c->http->config->max_headers) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

/* ---- deadline lists ---------------------------------------------------------------------- */

static void wait_leave(fr_conn_t *c) {
    fr_list_remove(&c->wait_link);
    c->wait = FR_WAIT_NONE;
}

static void wait_enter(fr_conn_t *c, int l) {
    wait_leave(c);
    c->wait = (unsigned)l;
    c->since = fr_mono_ms();
    fr_list_insert_tail(&c->http->waits[l], &c->wait_link);
}

/* The connection that has waited longest on list l, or NULL. */
static fr_conn_t *longest_waiting(fr_http_t *h, int l) {
    fr_list_t *first = fr_list_first(&h->waits[l]);
    return first ? FR_LIST_ENTRY(first, fr_conn_t, wait_link) : NULL;
}

void fr_http_expire(fr_http_t *h) {
    uint64_t now = fr_mono_ms();
    fr_conn_t *c;
    while ((c = longest_waiting(h, FR_WAIT_READING)) &&
           c->since + h->config->header_timeout_ms <= now) {
        wait_leave(c);
        c->x.req.keep_alive = 0;
        c->close_reason = "timeout";
        FR_BUMP(h->metrics->timeouts, 1);
        fr_exchange_respond_error(&c->x, 408, "the request did not arrive in time");
    }
    while ((c = longest_waiting(h, FR_WAIT_IDLE)) &&
           c->since + h->config->idle_timeout_ms <= now) {
        wait_leave(c);
        c->close_reason = "idle";
        FR_BUMP(h->metrics->idle_closed, 1);
        fr_conn_close(c);
    }
}

void fr_http_close_idle(fr_http_t *h, const char *reason) {
    for (fr_list_t *l = fr_list_first(&h->conns); l; l = fr_list_next(&h->conns, l)) {
        fr_conn_t *c = FR_LIST_ENTRY(l, fr_conn_t, link);
        if (c->wait == FR_WAIT_IDLE && !c->pending_writes) {
            c->close_reason = reason;
            fr_conn_close(c);
        }
    }
}

void fr_http_close_all(fr_http_t *h, const char *reason) {
    for (fr_list_t *l = fr_list_first(&h->conns); l; l = fr_list_next(&h->conns, l)) {
        fr_conn_t *c = FR_LIST_ENTRY(l, fr_conn_t, link);
        if (!c->close_reason)
            c->close_reason = reason;
        fr_conn_close(c);
    }
}

/* ---- parsing ------------------------------------------------------------------------------- */

static int on_message_begin(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    fr_request_reset(&c->x.req);
    c->x.last = 0;
    if (c->wait != FR_WAIT_READING)
        wait_enter(c, FR_WAIT_READING);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (over_header_limit(c, len))
        return -1;
    fr_request_append_url(&c->x.req, at, len);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (over_header_limit(c, len))
        return -1;
    fr_request_append_field(&c->x.req, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (over_header_limit(c, len))
        return -1;
    fr_request_append_value(&c->x.req, at, len);
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    snprintf(c->x.req.method, sizeof c->x.req.method, "%s", llhttp_method_name(p->method));
    c->x.req.http_major = p->http_major;
    c->x.req.http_minor = p->http_minor;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->http->config->max_body) {
        c->err_status = 413;
        return -1;
    }
    /* A client that asks before sending its body (curl does for large POSTs) is told to go
     * on, rather than left to wait out its own timeout. */
    const char *expect = fr_request_header(&c->x.req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && c->x.req.http_minor >= 1)
        fr_h1_continue(c);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (c->x.req.body_len + len > c->http->config->max_body) {
        c->err_status = 413;
        return -1;
    }
    fr_request_append_body(&c->x.req, at, len);
    return 0;
}

/* A writer took the answer over (a stream, or an open waiting on the broker). */
static int taken(const fr_conn_t *c) {
    return c->x.sink.owner_ops != NULL;
}

static int on_message_complete(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    c->x.req.keep_alive = llhttp_should_keep_alive(p);
    if (!c->x.req.url)
        fr_request_append_url(&c->x.req, "", 0);
    FR_BUMP(c->http->requests, 1);
    wait_leave(c);
    c->http->handle(c->http->ctx, &c->x);
    if (!taken(c) && !c->streamed && !c->closing && !c->close_after_write)
        wait_enter(c, FR_WAIT_IDLE);
    /* A stream owns the connection from here, and a closing connection reads no more:
     * either way, stop parsing what else the client sent. */
    if (taken(c) || c->streamed || c->closing || c->close_after_write)
        return HPE_PAUSED;
    return 0;
}

void fr_http_init_parser(void) {
    llhttp_settings_init(&parser_settings);
    parser_settings.on_message_begin = on_message_begin;
    parser_settings.on_url = on_url;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;
    settings_ready = 1;
}

static void respond_parse_error(fr_conn_t *c, llhttp_errno_t err) {
    int status = c->err_status ? c->err_status : 400;
    const char *msg;
    char detail[160];
    if (status == 431) {
        msg = "request line and headers are larger than the limit";
    } else if (status == 413) {
        msg = "request body is larger than the limit";
    } else {
        snprintf(detail, sizeof detail, "malformed HTTP request: %s",
                 llhttp_get_error_reason(c->parser) ? llhttp_get_error_reason(c->parser)
                                                      : llhttp_errno_name(err));
        msg = detail;
    }
    c->x.req.keep_alive = 0;
    c->close_reason = "error";
    wait_leave(c);
    fr_exchange_respond_error(&c->x, status, msg);
}

/* Keeps what a client sent while its answer is pending (a pipelined next request, WebSocket
 * frames behind the handshake): it is read once the answer is out. Bounded like a request. */
static void hold_input(fr_conn_t *c, const char *data, size_t len) {
    size_t limit = c->http->config->max_headers + c->http->config->max_body;
    if (c->nheld_input + len > limit) {
        c->close_reason = "error";
        fr_conn_close(c);
        return;
    }
    c->held_input = fr_realloc(c->held_input, c->nheld_input + len);
    memcpy(c->held_input + c->nheld_input, data, len);
    c->nheld_input += len;
}

/* A streaming connection reads no more requests: the parser and the request go, so an idle
 * stream holds less. Inside the parser's own callbacks they stay until it returns. */
void fr_conn_shed(fr_conn_t *c) {
    if (c->parsing)
        return;
    free(c->parser);
    c->parser = NULL;
    fr_request_reset(&c->x.req);
}

/* Parses request bytes; what follows a request that a writer took over goes to it (WebSocket
 * frames sent right behind the handshake) or waits (a long-poll's next request). */
static void conn_feed(fr_conn_t *c, const char *data, size_t len) {
    c->parsing = 1;
    llhttp_errno_t err = llhttp_execute(c->parser, data, len);
    c->parsing = 0;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        const char *at = llhttp_get_error_pos(c->parser);
        const char *end = data + len;
        if (c->streamed)
            fr_conn_shed(c);
        if (!at || at < data || at >= end || c->closing)
            return;
        if (c->raw && taken(c))
            c->x.sink.owner_ops->data(c->x.sink.owner, at, (size_t)(end - at));
        else if (c->parser)
            hold_input(c, at, (size_t)(end - at));
        return;
    }
    if (err == HPE_OK)
        return;
    respond_parse_error(c, err);
}

void fr_conn_next(fr_conn_t *c) {
    fr_request_reset(&c->x.req);
    llhttp_resume(c->parser);
    wait_enter(c, FR_WAIT_IDLE);
    if (c->held_input) {
        char *input = c->held_input;
        size_t n = c->nheld_input;
        c->held_input = NULL;
        c->nheld_input = 0;
        conn_feed(c, input, n);
        free(input);
    }
}

/* ---- reading, accepting, closing --------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    fr_conn_t *c = FR_CONTAINER_OF((uv_tcp_t *)h, fr_conn_t, tcp);
    buf->base = c->http->read_buf;
    buf->len = sizeof c->http->read_buf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    fr_conn_t *c = FR_CONTAINER_OF((uv_tcp_t *)s, fr_conn_t, tcp);
    if (nread < 0) {
        fr_conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    if (c->raw) {
        if (taken(c))
            c->x.sink.owner_ops->data(c->x.sink.owner, buf->base, (size_t)nread);
        return;
    }
    /* An event stream reads only to notice the client leaving. */
    if (c->streamed)
        return;
    if (taken(c)) {
        hold_input(c, buf->base, (size_t)nread);
        return;
    }
    if (c->close_after_write)
        return;
    conn_feed(c, buf->base, (size_t)nread);
}

static void log_closed(fr_conn_t *c) {
    if (!fr_log_enabled(FR_LOG_INFO))
        return;
    char f[256];
    snprintf(f, sizeof f,
             "\"event\":\"CLOSED\",\"conn\":%llu,\"reason\":\"%s\",\"duration_ms\":%llu",
             (unsigned long long)c->x.id, c->close_reason ? c->close_reason : "client",
             (unsigned long long)(fr_mono_ms() - c->x.opened_ms));
    fr_log_fields(FR_LOG_INFO, f);
}

static void on_closed(uv_handle_t *h) {
    fr_conn_t *c = FR_CONTAINER_OF((uv_tcp_t *)h, fr_conn_t, tcp);
    fr_http_t *http = c->http;
    if (taken(c)) {
        /* The writer logs its own CLOSED line (with what it sent) and frees itself. */
        const fr_sink_owner_ops_t *ops = c->x.sink.owner_ops;
        c->x.sink.owner_ops = NULL;
        ops->closed(c->x.sink.owner);
    } else if (!c->streamed) {
        log_closed(c);
    }
    fr_request_reset(&c->x.req);
    free(c->parser);
    c->parser = NULL;
    free(c->held_input);
    fr_list_remove(&c->link);
    http->nconns--;
    http->count(http->ctx, -1);
    c->closed = 1;
    if (c->holds == 0)
        free(c);
}

static void x_hold(fr_exchange_t *x) {
    FR_CONTAINER_OF(x, fr_conn_t, x)->holds++;
}

static void x_release(fr_exchange_t *x) {
    fr_conn_t *c = FR_CONTAINER_OF(x, fr_conn_t, x);
    if (--c->holds == 0 && c->closed)
        free(c);
}

static void x_respond(fr_exchange_t *x, int status, const char *content_type,
                      const char *headers, const char *body, size_t len) {
    fr_conn_respond(FR_CONTAINER_OF(x, fr_conn_t, x), status, content_type, headers, body, len);
}

/* An HTTP/1 connection carries one exchange at a time, embedded in it. */
static const fr_exchange_ops_t conn_exchange_ops = {x_respond, x_hold, x_release};

void fr_conn_close(fr_conn_t *c) {
    if (c->closing)
        return;
    c->closing = 1;
    c->x.gone = 1;
    wait_leave(c);
    if (taken(c))
        c->x.sink.owner_ops->gone(c->x.sink.owner, c->close_reason);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_unaccepted(uv_handle_t *h) {
    free(FR_CONTAINER_OF((uv_tcp_t *)h, fr_conn_t, tcp));
}

void fr_conn_accept(fr_http_t *http, uv_stream_t *listener) {
    if (!settings_ready)
        fr_http_init_parser(); /* a harness that skipped the server's start (one thread) */
    fr_conn_t *c = fr_calloc(1, sizeof *c);
    c->http = http;
    uv_tcp_init(http->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_unaccepted);
        return;
    }
    fr_list_insert_head(&http->conns, &c->link);
    http->nconns++;
    http->count(http->ctx, +1);
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    strcpy(c->remote, "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof c->remote);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof c->remote);
    }
    /* Unique over the process: each worker numbers its own residue class. */
    c->x.id = http->next_id++ * http->id_step + http->id_first;
    c->x.opened_ms = fr_mono_ms();
    FR_BUMP(http->metrics->connections, 1);
    if (fr_log_enabled(FR_LOG_INFO)) {
        char f[160];
        snprintf(f, sizeof f, "\"event\":\"CONNECTING\",\"conn\":%llu,\"remote\":\"%s\"",
                 (unsigned long long)c->x.id, c->remote);
        fr_log_fields(FR_LOG_INFO, f);
    }
    fr_h1_sink_init(c);
    c->x.ops = &conn_exchange_ops;
    c->x.remote = c->remote;
    c->parser = fr_malloc(sizeof *c->parser);
    llhttp_init(c->parser, HTTP_REQUEST, &parser_settings);
    c->parser->data = c;
    wait_enter(c, FR_WAIT_READING);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- writing whole answers ---------------------------------------------------------------- */

static void on_write_done(uv_write_t *req, int status) {
    write_req_t *wr = (write_req_t *)req;
    fr_conn_t *c = wr->conn;
    free(wr->buf);
    free(wr);
    c->pending_writes--;
    if (status < 0) {
        fr_conn_close(c);
        return;
    }
    if (c->close_after_write && c->pending_writes == 0)
        fr_conn_close(c);
}

void fr_conn_write(fr_conn_t *c, char *buf, size_t len) {
    if (c->closing) {
        free(buf);
        return;
    }
    write_req_t *wr = fr_malloc(sizeof *wr);
    wr->conn = c;
    wr->buf = buf;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    c->pending_writes++;
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
        c->pending_writes--;
        free(buf);
        free(wr);
        fr_conn_close(c);
    }
}

void fr_conn_respond(fr_conn_t *c, int status, const char *content_type,
                     const char *extra_headers, const char *body, size_t body_len) {
    fr_head_t h = {status, content_type, extra_headers, (int64_t)body_len};
    char head[2048];
    size_t hl = fr_h1_head(c, &h, head, sizeof head);
    /* A HEAD answer says how long the body would be, and sends none. */
    if (strcmp(c->x.req.method, "HEAD") == 0)
        body_len = 0;
    char *resp = fr_malloc(hl + body_len);
    memcpy(resp, head, hl);
    if (body_len)
        memcpy(resp + hl, body, body_len);
    fr_conn_write(c, resp, hl + body_len);
}

