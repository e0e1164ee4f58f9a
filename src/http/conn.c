#include "http/conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/dispatch.h"
#include "base/log.h"
#include "server/worker.h"
#include "stream/stream.h"
#include "base/util.h"
#include "transport/ws.h"

typedef struct {
    uv_write_t req;
    fr_conn_t *conn;
    char *buf; /* owned */
} write_req_t;

static llhttp_settings_t parser_settings;
static void conn_feed(fr_conn_t *c, const char *data, size_t len);
static int settings_ready;

static fr_conn_t *conn_of(llhttp_t *p) {
    return p->data;
}

/* Request line and headers together must fit in limits.headers. */
static int over_header_limit(fr_conn_t *c, size_t more) {
    c->req.header_bytes += more;
    if (c->req.header_bytes > c->worker->config->max_headers) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

/* ---- deadline lists ---- */

static void wait_enter(fr_conn_t *c, int l);

static void wait_leave(fr_conn_t *c) {
    fr_worker_t *w = c->worker;
    int l = c->wait;
    if (l == FR_WAIT_NONE)
        return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        w->wait_head[l] = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    else
        w->wait_tail[l] = c->wprev;
    c->wprev = c->wnext = NULL;
    c->wait = FR_WAIT_NONE;
}

void fr_conn_wait(fr_conn_t *c, int l) {
    if (l == FR_WAIT_NONE)
        wait_leave(c);
    else
        wait_enter(c, l);
}

static void wait_enter(fr_conn_t *c, int l) {
    fr_worker_t *w = c->worker;
    wait_leave(c);
    c->wait = l;
    c->since = fr_mono_ms();
    c->wprev = w->wait_tail[l];
    if (w->wait_tail[l])
        w->wait_tail[l]->wnext = c;
    else
        w->wait_head[l] = c;
    w->wait_tail[l] = c;
}

void fr_conn_expire(fr_worker_t *w) {
    uint64_t now = fr_mono_ms();
    fr_conn_t *c;
    while ((c = w->wait_head[FR_WAIT_READING]) && c->since + w->config->header_timeout_ms <= now) {
        wait_leave(c);
        c->req.keep_alive = 0;
        c->close_reason = "timeout";
        FR_BUMP(w->metrics.timeouts, 1);
        fr_conn_respond_error(c, 408, "the request did not arrive in time");
    }
    while ((c = w->wait_head[FR_WAIT_POLL]) && c->since + w->config->poll_timeout_ms <= now) {
        wait_leave(c);
        fr_stream_poll_timeout(c->stream);
    }
    while ((c = w->wait_head[FR_WAIT_IDLE]) && c->since + w->config->idle_timeout_ms <= now) {
        wait_leave(c);
        c->close_reason = "idle";
        FR_BUMP(w->metrics.idle_closed, 1);
        fr_conn_close(c);
    }
}

static int on_message_begin(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    fr_request_reset(&c->req);
    if (c->wait != FR_WAIT_READING)
        wait_enter(c, FR_WAIT_READING);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (over_header_limit(c, len))
        return -1;
    fr_request_append_url(&c->req, at, len);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (over_header_limit(c, len))
        return -1;
    fr_request_append_field(&c->req, at, len);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (over_header_limit(c, len))
        return -1;
    fr_request_append_value(&c->req, at, len);
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    snprintf(c->req.method, sizeof c->req.method, "%s", llhttp_method_name(p->method));
    c->req.http_major = p->http_major;
    c->req.http_minor = p->http_minor;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->worker->config->max_body) {
        c->err_status = 413;
        return -1;
    }
    /* A client that asks before sending its body (curl does for large POSTs) is told to go
     * on, rather than left to wait out its own timeout. */
    const char *expect = fr_request_header(&c->req, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && c->req.http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        fr_conn_write(c, fr_strndup(cont, sizeof cont - 1), sizeof cont - 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    fr_conn_t *c = conn_of(p);
    if (c->req.body_len + len > c->worker->config->max_body) {
        c->err_status = 413;
        return -1;
    }
    fr_request_append_body(&c->req, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    c->req.keep_alive = llhttp_should_keep_alive(p);
    if (!c->req.url)
        fr_request_append_url(&c->req, "", 0);
    FR_BUMP(c->worker->requests, 1);
    wait_leave(c);
    fr_dispatch(c);
    if (!c->stream && !c->closing && !c->close_after_write)
        wait_enter(c, FR_WAIT_IDLE);
    /* A stream owns the connection from here, and a closing connection reads no more:
     * either way, stop parsing what else the client sent. */
    if (c->stream || c->closing || c->close_after_write)
        return HPE_PAUSED;
    return 0;
}

void fr_conn_init_parser(void) {
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

static void log_closed(fr_conn_t *c) {
    if (!fr_log_enabled(FR_LOG_INFO))
        return;
    char f[512];
    uint64_t ms = fr_mono_ms() - c->opened_ms;
    fr_stream_t *s = c->stream;
    const char *reason = s && s->end_reason ? s->end_reason : c->close_reason ? c->close_reason : "client";
    if (s)
        snprintf(f, sizeof f,
                 "\"event\":\"CLOSED\",\"conn\":%llu,\"reason\":\"%s\",\"duration_ms\":%llu,"
                 "\"events\":%lu,\"bytes\":%lu,\"dropped\":%lu",
                 (unsigned long long)c->id, reason, (unsigned long long)ms, s->sent, s->bytes,
                 s->dropped[0] + s->dropped[1] + s->dropped[2]);
    else
        snprintf(f, sizeof f,
                 "\"event\":\"CLOSED\",\"conn\":%llu,\"reason\":\"%s\",\"duration_ms\":%llu",
                 (unsigned long long)c->id, reason, (unsigned long long)ms);
    fr_log_fields(FR_LOG_INFO, f);
}

static void on_closed(uv_handle_t *h) {
    fr_conn_t *c = FR_CONTAINER_OF((uv_tcp_t *)h, fr_conn_t, tcp);
    fr_worker_t *w = c->worker;
    log_closed(c);
    if (c->stream)
        fr_stream_free(c->stream);
    fr_request_reset(&c->req);
    free(c->parser);
    c->parser = NULL;
    free(c->held_input);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    fr_worker_count_conn(w, -1);
    c->closed = 1;
    if (c->holds == 0)
        free(c);
}

void fr_conn_hold(fr_conn_t *c) {
    c->holds++;
}

void fr_conn_release(fr_conn_t *c) {
    if (--c->holds == 0 && c->closed)
        free(c);
}

void fr_conn_end_poll(fr_conn_t *c) {
    fr_stream_t *s = c->stream;
    if (c->close_after_write)
        return; /* the stream goes with the connection once the answer is out */
    c->stream = NULL;
    fr_stream_detach(s);
    fr_stream_free(s);
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

void fr_conn_close(fr_conn_t *c) {
    if (c->closing)
        return;
    c->closing = 1;
    wait_leave(c);
    if (c->stream)
        fr_stream_detach(c->stream);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    fr_conn_t *c = FR_CONTAINER_OF((uv_tcp_t *)h, fr_conn_t, tcp);
    buf->base = c->worker->read_buf;
    buf->len = sizeof c->worker->read_buf;
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
    c->req.keep_alive = 0;
    c->close_reason = "error";
    wait_leave(c);
    fr_conn_respond_error(c, status, msg);
}

/* Keeps what a client sent while its long-poll is held (a pipelined next request): it is
 * parsed once the poll is answered. Bounded like a request. */
static void conn_hold_input(fr_conn_t *c, const char *data, size_t len) {
    size_t limit = c->worker->config->max_headers + c->worker->config->max_body;
    if (c->nheld_input + len > limit) {
        c->close_reason = "error";
        fr_conn_close(c);
        return;
    }
    c->held_input = fr_realloc(c->held_input, c->nheld_input + len);
    memcpy(c->held_input + c->nheld_input, data, len);
    c->nheld_input += len;
}

/* Parses request bytes; what follows a request that turned into a stream goes to the stream
 * (WebSocket frames sent right behind the handshake) or waits (a long-poll's next request). */
static void conn_feed(fr_conn_t *c, const char *data, size_t len) {
    if (!c->parser)
        return; /* a connection that streamed reads no requests (it is closing) */
    llhttp_errno_t err = llhttp_execute(c->parser, data, len);
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        const char *at = llhttp_get_error_pos(c->parser);
        const char *end = data + len;
        if (c->stream && !c->stream->poll) {
            /* An event stream or a WebSocket reads no more requests: the parser goes, and
             * an idle stream holds less. */
            free(c->parser);
            c->parser = NULL;
        }
        if (!at || at < data || at >= end || !c->stream || c->closing)
            return;
        if (c->stream->ws && !c->stream->joining)
            fr_ws_on_read(c->stream, at, (size_t)(end - at));
        else if (c->stream->poll)
            conn_hold_input(c, at, (size_t)(end - at));
        return;
    }
    if (err == HPE_OK)
        return;
    respond_parse_error(c, err);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    fr_conn_t *c = FR_CONTAINER_OF((uv_tcp_t *)s, fr_conn_t, tcp);
    if (nread < 0) {
        fr_conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    /* An SSE stream reads only to notice the client leaving; a WebSocket reads frames. */
    if (c->stream) {
        if (c->stream->ws)
            fr_ws_on_read(c->stream, buf->base, (size_t)nread);
        else if (c->stream->poll)
            conn_hold_input(c, buf->base, (size_t)nread);
        return;
    }
    if (c->close_after_write)
        return;
    conn_feed(c, buf->base, (size_t)nread);
}

void fr_conn_accept(fr_worker_t *w, uv_stream_t *listener) {
    if (!settings_ready)
        fr_conn_init_parser(); /* a harness that skipped fr_server_run (one thread) */
    fr_conn_t *c = fr_calloc(1, sizeof *c);
    c->worker = w;
    uv_tcp_init(w->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        free(c);
        return;
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    fr_worker_count_conn(w, +1);
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
    /* Unique over the process: worker k numbers k+1, k+1+N, k+1+2N, … */
    c->id = w->next_conn_id++ * (w->proc ? w->proc->nworkers : 1) + w->slot + 1;
    c->opened_ms = fr_mono_ms();
    FR_BUMP(w->metrics.connections, 1);
    if (fr_log_enabled(FR_LOG_INFO)) {
        char f[160];
        snprintf(f, sizeof f, "\"event\":\"CONNECTING\",\"conn\":%llu,\"remote\":\"%s\"",
                 (unsigned long long)c->id, c->remote);
        fr_log_fields(FR_LOG_INFO, f);
    }
    c->parser = fr_malloc(sizeof *c->parser);
    llhttp_init(c->parser, HTTP_REQUEST, &parser_settings);
    c->parser->data = c;
    wait_enter(c, FR_WAIT_READING);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

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

const char *fr_conn_cors_headers(fr_conn_t *c, char *buf, size_t len) {
    const char *origin = fr_request_header(&c->req, "origin");
    buf[0] = '\0';
    if (origin && fr_config_cors_allows(c->worker->config, origin) &&
        strpbrk(origin, "\r\n") == NULL)
        snprintf(buf, len, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
    return buf;
}

void fr_conn_respond(fr_conn_t *c, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t body_len) {
    char cors[512], headers[2048];
    fr_conn_cors_headers(c, cors, sizeof cors);
    snprintf(headers, sizeof headers, "%s%s", cors, extra_headers ? extra_headers : "");
    int keep = c->req.keep_alive && !c->worker->stopping;
    size_t len;
    char *resp = fr_http_response(status, content_type, headers, body, body_len, keep, &len);
    if (!keep)
        c->close_after_write = 1;
    /* A HEAD answer says how long the body would be, and sends none. */
    if (strcmp(c->req.method, "HEAD") == 0)
        len -= body_len;
    fr_conn_write(c, resp, len);
}

void fr_conn_respond_error(fr_conn_t *c, int status, const char *msg) {
    size_t len;
    char *body = fr_http_error_body(msg, &len);
    fr_conn_respond(c, status, "application/json", NULL, body, len);
    free(body);
}
