/* HTTP/1: requests read with llhttp, one exchange at a time per connection, whole answers, and
 * the one place that writes an HTTP/1.1 response head. The sink that streams answers is
 * http/h1_sink.c.
 *
 *   bytes ──llhttp──► request ──handle()──► the app answers (fr_h1_respond), or a writer takes
 *                                            the exchange's sink (a stream, an open that waits)
 *
 * While a writer holds the exchange, what the client sends is held (a long-poll's next
 * request), dropped (an event stream listens only for the end) or handed to the writer (after
 * a 101). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"
#include "codec/access.h"
#include "http/conn.h"

static llhttp_settings_t parser_settings;
static int settings_ready;

static void feed(fr_conn_t *c, const char *data, size_t len);

static fr_conn_t *conn_of(llhttp_t *p) {
    return p->data;
}

/* A writer took the answer over (a stream, or an open waiting on the broker). */
static int taken(const fr_conn_t *c) {
    return c->x.sink.owner_ops != NULL;
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* Request line and headers together must fit in limits.headers. */
static int over_header_limit(fr_conn_t *c, size_t more) {
    c->x.req.header_bytes += more;
    if (c->x.req.header_bytes > c->http->config->max_headers) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    fr_request_reset(&c->x.req);
    c->x.last = 0;
    c->x.route_headers = NULL;
    c->x.started_us = fr_mono_us();
    c->answered = 0;
    if (c->wait != FR_WAIT_READING)
        fr_conn_wait(c, FR_WAIT_READING);
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
    /* A count as well as a size: thousands of tiny lines fit in a raised limits.headers, and
     * each costs a header table entry. */
    if (c->x.req.nheaders > c->http->config->max_header_lines) {
        c->err_status = 431;
        c->err_msg = "more header lines than limits.header_lines";
        return -1;
    }
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
    const char *bad_host;
    if (fr_request_check_host(&c->x.req, &bad_host) < 0) {
        c->err_status = 400;
        c->err_msg = bad_host;
        return -1;
    }
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

static int on_message_complete(llhttp_t *p) {
    fr_conn_t *c = conn_of(p);
    c->x.req.keep_alive = llhttp_should_keep_alive(p);
    if (!c->x.req.url)
        fr_request_append_url(&c->x.req, "", 0);
    FR_BUMP(c->http->requests, 1);
    fr_conn_wait(c, FR_WAIT_NONE);
    c->http->handle(c->http->ctx, &c->x);
    /* An answer that waits on the broker (a publish to Redis or NATS) holds the exchange
     * without taking its sink. */
    int waiting = !c->answered && !c->streamed && !c->closing;
    if (!taken(c) && !waiting && !c->close_after_write)
        fr_conn_wait(c, FR_WAIT_IDLE);
    /* A stream owns the connection from here, and a closing connection reads no more:
     * either way, stop parsing what else the client sent. So does an answer that waits, with
     * the sink taken (a hook that waits) or for the broker: HTTP/1.1 answers go out in the
     * order of their requests (RFC 9112 §9.3.2), so the next request is read once it is out. */
    if (taken(c) || waiting || c->streamed || c->closing || c->close_after_write) {
        c->paused = (taken(c) || waiting) && !c->streamed;
        return HPE_PAUSED;
    }
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

/* An unknown method is 501 (RFC 9110 §9.1) when it is at least a method-shaped token at the
 * start of a request line: garbage (a TLS hello on the plain port) stays a 400. llhttp stops
 * inside the token, at the first byte no method it knows has there. */
static int is_method_token(const char *data, size_t len, const char *at) {
    if (!at || at < data || at > data + len)
        return 0;
    const char *start = at, *end = at;
    while (start > data && strchr("\r\n", start[-1]) == NULL && start[-1] != ' ')
        start--;
    while (end < data + len && *end != ' ')
        end++;
    if (end == data + len || end == start || end - start > 32)
        return 0;
    for (const char *q = start; q < end; q++) {
        unsigned char ch = (unsigned char)*q;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return 0;
    }
    return 1;
}

static void respond_parse_error(fr_conn_t *c, llhttp_errno_t err) {
    int status = c->err_status ? c->err_status : 400;
    const char *msg;
    char detail[160];
    if (err == HPE_INVALID_METHOD && status == 501) {
        msg = "the method is not implemented";
    } else if (c->err_msg) {
        msg = c->err_msg;
    } else if (status == 431) {
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
    fr_conn_wait(c, FR_WAIT_NONE);
    fr_exchange_respond_error(&c->x, status, msg);
}

/* Keeps what a client sent while its answer is pending (a pipelined next request, WebSocket
 * frames behind the handshake): it is read once the answer is out. Bounded like a request. */
static void hold_input(fr_conn_t *c, const char *data, size_t len) {
    size_t limit = c->http->config->max_headers + c->http->config->max_body;
    if (c->nheld_input + len > limit) {
        c->close_reason = "error";
        c->abortive = 1; /* a client that floods a pending answer gets nothing more */
        fr_conn_close(c);
        return;
    }
    c->held_input = fr_realloc(c->held_input, c->nheld_input + len);
    memcpy(c->held_input + c->nheld_input, data, len);
    c->nheld_input += len;
}

/* A streaming connection reads no more requests: the parser and the request go, so an idle
 * stream holds less. Inside the parser's own callbacks they stay until it returns. */
void fr_h1_shed(fr_conn_t *c) {
    if (c->parsing)
        return;
    free(c->parser);
    c->parser = NULL;
    fr_request_reset(&c->x.req);
}

/* Parses request bytes; what follows a request that a writer took over goes to it (WebSocket
 * frames sent right behind the handshake) or waits (a long-poll's next request). */
static void feed(fr_conn_t *c, const char *data, size_t len) {
    c->parsing = 1;
    llhttp_errno_t err = llhttp_execute(c->parser, data, len);
    c->parsing = 0;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        const char *at = llhttp_get_error_pos(c->parser);
        const char *end = data + len;
        if (c->streamed)
            fr_h1_shed(c);
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
    if (err == HPE_INVALID_METHOD && !c->err_status &&
        is_method_token(data, len, llhttp_get_error_pos(c->parser)))
        c->err_status = 501;
    respond_parse_error(c, err);
}

void fr_h1_next(fr_conn_t *c) {
    c->paused = 0;
    fr_request_reset(&c->x.req);
    llhttp_resume(c->parser);
    fr_conn_wait(c, FR_WAIT_IDLE);
    if (c->held_input) {
        char *input = c->held_input;
        size_t n = c->nheld_input;
        c->held_input = NULL;
        c->nheld_input = 0;
        feed(c, input, n);
        free(input);
    }
}

/* ---- the exchange ------------------------------------------------------------------------- */

static void x_hold(fr_exchange_t *x) {
    fr_conn_hold(FR_CONTAINER_OF(x, fr_conn_t, x));
}

static void x_release(fr_exchange_t *x) {
    fr_conn_release(FR_CONTAINER_OF(x, fr_conn_t, x));
}

static void x_respond(fr_exchange_t *x, int status, const char *content_type,
                      const char *headers, const char *body, size_t len) {
    fr_h1_respond(FR_CONTAINER_OF(x, fr_conn_t, x), status, content_type, headers, body, len);
}

/* An HTTP/1 connection carries one exchange at a time, embedded in it. */
static const fr_exchange_ops_t h1_exchange_ops = {x_respond, x_hold, x_release};


/* ---- answers -------------------------------------------------------------------------------- */

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
    puts_(h, "\r\nAccess-Control-Expose-Headers: Last-Event-ID\r\nVary: Origin\r\n");
}

size_t fr_h1_head(fr_conn_t *c, const fr_head_t *hd, char *out, size_t cap) {
    head_t h = {out, 0, cap};
    if (hd->status == 101) {
        c->raw = 1;
        c->streamed = 1;
        puts_(&h, "HTTP/1.1 101 Switching Protocols\r\n");
        if (hd->headers)
            puts_(&h, hd->headers);
        if (c->x.route_headers)
            puts_(&h, c->x.route_headers);
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
        /* A 304 has no body, and the length of the one it stands for is not this answer's
         * to state (RFC 9110 §8.6). */
        if (hd->status != 304) {
            puts_(&h, "Content-Length: ");
            put_uint(&h, (uint64_t)hd->length);
            put(&h, "\r\n", 2);
        }
        puts_(&h, keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    } else {
        /* HTTP/1.0 has no chunks: the body ends with the connection. */
        c->chunked = c->x.req.http_major == 1 && c->x.req.http_minor >= 1;
        c->streamed = 1;
        puts_(&h, c->chunked ? "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
                             : "Connection: close\r\n");
    }
    if (hd->headers)
        puts_(&h, hd->headers);
    if (c->x.route_headers)
        puts_(&h, c->x.route_headers);
    put_cors(&h, c);
    put(&h, "\r\n", 2);
    out[h.len] = '\0';
    return h.len;
}

void fr_h1_continue(fr_conn_t *c) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    fr_conn_write(c, fr_strndup(cont, sizeof cont - 1), sizeof cont - 1);
}

void fr_h1_respond(fr_conn_t *c, int status, const char *content_type,
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
    c->answered = 1;
    if (c->http->access) {
        fr_access_entry_t e = {.unix_ms = fr_now_ms(),
                               .remote = c->remote,
                               .method = c->x.req.method,
                               .target = c->x.req.url,
                               .target_len = c->x.req.url ? c->x.req.url_len : 0,
                               .status = status,
                               .bytes = body_len,
                               .duration_us = fr_mono_us() - c->x.started_us,
                               .transport = "http"};
        fr_access_emit(c->http->access, c->http->config->access_log_json, &e);
    }
    /* The answer of a writer that gave the sink back (a hook that waited): the requests the
     * client sent meanwhile are read now. */
    if (c->paused && !taken(c) && !c->closing && !c->close_after_write)
        fr_h1_next(c);
}


/* ---- the protocol --------------------------------------------------------------------------- */

static void h1_start(fr_conn_t *c) {
    if (!settings_ready)
        fr_http_init_parser(); /* a harness that skipped the server's start (one thread) */
    fr_h1_sink_init(c);
    c->x.ops = &h1_exchange_ops;
    c->x.started_us = fr_mono_us();
    c->parser = fr_malloc(sizeof *c->parser);
    llhttp_init(c->parser, HTTP_REQUEST, &parser_settings);
    c->parser->data = c;
    fr_conn_wait(c, FR_WAIT_READING);
}

static void h1_data(fr_conn_t *c, const char *data, size_t len) {
    if (c->raw) {
        if (taken(c))
            c->x.sink.owner_ops->data(c->x.sink.owner, data, len);
        return;
    }
    /* An event stream reads only to notice the client leaving. */
    if (c->streamed)
        return;
    if (taken(c) || c->paused) {
        hold_input(c, data, len);
        return;
    }
    if (c->close_after_write)
        return;
    feed(c, data, len);
}

static void h1_timeout(fr_conn_t *c) {
    FR_BUMP(c->http->metrics->timeouts, 1);
    c->x.req.keep_alive = 0;
    fr_exchange_respond_error(&c->x, 408, "the request did not arrive in time");
}

static void h1_closing(fr_conn_t *c) {
    c->x.gone = 1;
    if (taken(c))
        c->x.sink.owner_ops->gone(c->x.sink.owner, c->close_reason);
}

static int h1_closed(fr_conn_t *c) {
    int logged = c->streamed;
    if (taken(c)) {
        /* The writer logs its own CLOSED line (with what it sent) and frees itself. */
        const fr_sink_owner_ops_t *ops = c->x.sink.owner_ops;
        c->x.sink.owner_ops = NULL;
        ops->closed(c->x.sink.owner);
        logged = 1;
    }
    fr_request_reset(&c->x.req);
    free(c->parser);
    c->parser = NULL;
    free(c->held_input);
    c->held_input = NULL;
    return logged;
}

const fr_proto_t fr_h1_proto = {h1_start, h1_data, h1_timeout, h1_closing, h1_closed, NULL};
