/* Connections: accepting, reading, writing, deadlines and closing. What the bytes mean is the
 * protocol's (c->proto: HTTP/1 in http/h1.c). */
#include "http/conn.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

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

/* ---- deadline lists ---------------------------------------------------------------------- */

void fr_conn_wait(fr_conn_t *c, int l) {
    fr_list_remove(&c->wait_link);
    c->wait = (unsigned)l;
    if (l == FR_WAIT_NONE)
        return;
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
        fr_conn_wait(c, FR_WAIT_NONE);
        c->close_reason = "timeout";
        FR_BUMP(h->metrics->timeouts, 1);
        c->proto->timeout(c);
    }
    while ((c = longest_waiting(h, FR_WAIT_IDLE)) &&
           c->since + h->config->idle_timeout_ms <= now) {
        fr_conn_wait(c, FR_WAIT_NONE);
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
        fr_sock_failed(c, (int)nread);
        fr_conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    c->proto->data(c, buf->base, (size_t)nread);
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
    if (!c->proto->closed(c))
        log_closed(c);
    fr_list_remove(&c->link);
    http->nconns--;
    http->count(http->ctx, -1);
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

void fr_conn_close(fr_conn_t *c) {
    if (c->closing)
        return;
    c->closing = 1;
    fr_conn_wait(c, FR_WAIT_NONE);
    c->proto->closing(c);
    fr_sock_close_mode(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_unaccepted(uv_handle_t *h) {
    free(FR_CONTAINER_OF((uv_tcp_t *)h, fr_conn_t, tcp));
}

void fr_conn_accept(fr_http_t *http, uv_stream_t *listener) {
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
    fr_sock_tune(c);
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
    c->x.remote = c->remote;
    FR_BUMP(http->metrics->connections, 1);
    if (fr_log_enabled(FR_LOG_INFO)) {
        char f[160];
        snprintf(f, sizeof f, "\"event\":\"CONNECTING\",\"conn\":%llu,\"remote\":\"%s\"",
                 (unsigned long long)c->x.id, c->remote);
        fr_log_fields(FR_LOG_INFO, f);
    }
    c->proto = &fr_h1_proto;
    c->proto->start(c);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct {
    uv_write_t req;
    fr_conn_t *conn;
    char *buf;             /* owned, or NULL */
    fr_sink_done_cb done;  /* or NULL */
    void *ctx;
    char first[24];        /* a temporary first buffer, copied */
} write_req_t;

static void on_write_done(uv_write_t *req, int status) {
    write_req_t *wr = (write_req_t *)req;
    fr_conn_t *c = wr->conn;
    fr_sink_done_cb done = wr->done;
    void *ctx = wr->ctx;
    free(wr->buf);
    free(wr);
    c->pending_writes--;
    if (status < 0)
        fr_sock_failed(c, status);
    if (done)
        done(ctx, status);
    if (status < 0)
        fr_conn_close(c);
    else if (c->close_after_write && c->pending_writes == 0)
        fr_conn_close(c);
}

void fr_conn_write(fr_conn_t *c, char *buf, size_t len) {
    if (c->closing) {
        free(buf);
        return;
    }
    write_req_t *wr = fr_calloc(1, sizeof *wr);
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

#define FR_SEND_MAX_BUFS 160

int fr_conn_send(fr_conn_t *c, const uv_buf_t *bufs, size_t n, int temp_first,
                 fr_sink_done_cb done, void *ctx) {
    if (c->closing)
        return UV_ECANCELED;
    if (n > FR_SEND_MAX_BUFS || (temp_first && bufs[0].len > sizeof((write_req_t *)0)->first))
        return UV_EINVAL;
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += bufs[i].len;
    ssize_t sent = want ? uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n) : 0;
    if (sent == UV_EAGAIN)
        sent = 0;
    if (sent < 0) {
        fr_sock_failed(c, (int)sent);
        return (int)sent;
    }
    if ((size_t)sent == want)
        return FR_SINK_DONE;
    /* Partial: the socket buffer is full. The rest goes to uv_write (which copies the array,
     * not the bytes), pointing into the caller's bytes and into a copy of a temporary first
     * buffer. */
    write_req_t *wr = fr_calloc(1, sizeof *wr);
    wr->conn = c;
    wr->done = done;
    wr->ctx = ctx;
    uv_buf_t rest[FR_SEND_MAX_BUFS];
    memcpy(rest, bufs, n * sizeof *bufs);
    if (temp_first) {
        memcpy(wr->first, bufs[0].base, bufs[0].len);
        rest[0].base = wr->first;
    }
    size_t k = 0, skip = (size_t)sent;
    while (skip >= rest[k].len) {
        skip -= rest[k].len;
        k++;
    }
    rest[k].base += skip;
    rest[k].len -= skip;
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, rest + k, (unsigned)(n - k),
                 on_write_done) != 0) {
        free(wr);
        return UV_EPIPE;
    }
    c->pending_writes++;
    return FR_SINK_PENDING;
}

size_t fr_conn_queued(const fr_conn_t *c) {
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}
