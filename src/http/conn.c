/* Connections: accepting, reading, writing, deadlines and closing. What the bytes mean is the
 * protocol's (c->proto: HTTP/1 in http/h1.c); on an HTTPS listener TLS (http/tls.c) sits
 * between the socket and the protocol, here. */
#include "http/conn.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

/* The protocols a TLS connection may speak, in the server's order of preference: ALPN offers
 * these, and the client's choice picks the connection's protocol. A client that sends no ALPN
 * speaks HTTP/1.1. */
static const struct {
    const char *alpn;
    const fr_proto_t *proto;
} protocols[] = {
    {"h2", &fr_h2_proto},
    {"http/1.1", &fr_h1_proto},
};

/* A TLS connection: the connection, then its TLS state, in one allocation, so a cleartext
 * connection carries nothing for TLS (c->tls says which one a connection is). */
typedef struct {
    fr_conn_t c;
    fr_tls_t tls;
} tls_conn_t;

_Static_assert(offsetof(tls_conn_t, c) == 0, "a TLS connection is freed as its fr_conn_t");

static fr_tls_t *tls_of(fr_conn_t *c) {
    return &FR_CONTAINER_OF(c, tls_conn_t, c)->tls;
}

static const fr_proto_t handshake_proto;
static const fr_proto_t preface_proto;

void fr_http_init(fr_http_t *http, uv_loop_t *loop, const fr_config_t *config,
                  fr_metrics_t *metrics) {
    memset(http, 0, sizeof *http);
    http->loop = loop;
    http->config = config;
    http->metrics = metrics;
    http->id_step = 1;
    http->id_first = 1;
    fr_list_init(&http->conns);
    fr_list_init(&http->h2_dirty);
    fr_h2_clients_init(&http->own_h2_clients);
    http->h2_clients = &http->own_h2_clients;
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
        if (c->proto->drain) {
            if (!c->close_reason)
                c->close_reason = reason;
            c->proto->drain(c);
            continue;
        }
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

static void tls_read(fr_conn_t *c, const char *in, size_t n);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    fr_conn_t *c = FR_CONTAINER_OF((uv_tcp_t *)s, fr_conn_t, tcp);
    if (nread < 0) {
        /* A client that shut its side after asking still reads the answer it asked for. */
        if (nread == UV_EOF && c->body_out && !c->closing) {
            uv_read_stop(s);
            c->x.last = 1;
            return;
        }
        fr_sock_failed(c, (int)nread);
        fr_conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    if (c->tls) {
        tls_read(c, buf->base, (size_t)nread);
        return;
    }
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
    if (c->tls)
        fr_tls_close(tls_of(c));
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

static void tls_goodbye(fr_conn_t *c);

void fr_conn_close(fr_conn_t *c) {
    if (c->closing)
        return;
    c->closing = 1;
    fr_conn_wait(c, FR_WAIT_NONE);
    c->proto->closing(c);
    if (c->tls)
        tls_goodbye(c);
    fr_sock_close_mode(c);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_unaccepted(uv_handle_t *h) {
    free(FR_CONTAINER_OF((uv_tcp_t *)h, fr_conn_t, tcp));
}

void fr_conn_accept(fr_http_t *http, uv_stream_t *listener) {
    fr_conn_t *c = http->tls ? &((tls_conn_t *)fr_calloc(1, sizeof(tls_conn_t)))->c
                             : fr_calloc(1, sizeof *c);
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
    c->x.id = fr_http_next_id(http);
    c->x.opened_ms = fr_mono_ms();
    c->x.remote = c->remote;
    FR_BUMP(http->metrics->connections, 1);
    if (fr_log_enabled(FR_LOG_INFO)) {
        char f[160];
        snprintf(f, sizeof f, "\"event\":\"CONNECTING\",\"conn\":%llu,\"remote\":\"%s\"",
                 (unsigned long long)c->x.id, c->remote);
        fr_log_fields(FR_LOG_INFO, f);
    }
    if (http->tls) {
        /* The protocol is chosen once the handshake is done (tls_start). */
        c->tls = 1;
        c->proto = &handshake_proto;
        if (fr_tls_open(tls_of(c), http->tls) < 0) {
            c->close_reason = "tls";
            fr_conn_close(c);
            return;
        }
    } else {
        /* On an h2c listener the first bytes tell HTTP/2's preface from an HTTP/1 request. */
        c->proto = http->config->h2c ? &preface_proto : &fr_h1_proto;
    }
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

static int tls_encrypt(fr_conn_t *c, const uv_buf_t *bufs, size_t n);

void fr_conn_write(fr_conn_t *c, char *buf, size_t len) {
    if (c->closing) {
        free(buf);
        return;
    }
    if (c->tls) {
        /* The records take the plaintext's place, and go the way it would have gone. */
        uv_buf_t plain = uv_buf_init(buf, (unsigned)len);
        int rc = tls_encrypt(c, &plain, 1);
        free(buf);
        if (rc < 0) {
            fr_conn_close(c);
            return;
        }
        buf = fr_buf_take(&c->http->tls_out, &len);
    }
    /* Most answers fit the socket at once: written here, they cost no write request, and
     * libuv does not re-arm the socket's poll for the finished request (an epoll_ctl per
     * answer). A connection's last answer keeps the request, whose callback closes it once
     * the bytes are out; try_write takes nothing while earlier writes are queued, so the
     * order holds. */
    size_t sent = 0;
    if (!c->close_after_write) {
        uv_buf_t now = uv_buf_init(buf, (unsigned)len);
        ssize_t n = uv_try_write((uv_stream_t *)&c->tcp, &now, 1);
        /* A failed socket: the request below meets the error too, and its callback
         * closes the connection as for any failed write. */
        sent = n > 0 ? (size_t)n : 0;
        if (sent == len) {
            free(buf);
            return;
        }
    }
    write_req_t *wr = fr_calloc(1, sizeof *wr);
    wr->conn = c;
    wr->buf = buf;
    uv_buf_t b = uv_buf_init(buf + sent, (unsigned)(len - sent));
    c->pending_writes++;
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
        c->pending_writes--;
        free(buf);
        free(wr);
        fr_conn_close(c);
    }
}

#define FR_SEND_MAX_BUFS 160

static int tls_send(fr_conn_t *c, fr_sink_done_cb done, void *ctx);

int fr_conn_send(fr_conn_t *c, const uv_buf_t *bufs, size_t n, int temp_first,
                 fr_sink_done_cb done, void *ctx) {
    if (c->closing)
        return UV_ECANCELED;
    if (n > FR_SEND_MAX_BUFS || (temp_first && bufs[0].len > sizeof((write_req_t *)0)->first))
        return UV_EINVAL;
    if (c->tls) {
        /* The caller's bytes become records now: nothing points into them afterwards. */
        if (tls_encrypt(c, bufs, n) < 0)
            return UV_EPROTO;
        return tls_send(c, done, ctx);
    }
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

static int queue_write(fr_conn_t *c, char *buf, size_t len, fr_sink_done_cb done, void *ctx);

int fr_conn_send_copy(fr_conn_t *c, const char *bytes, size_t len, fr_sink_done_cb done,
                      void *ctx) {
    if (c->closing)
        return UV_ECANCELED;
    if (c->tls) {
        uv_buf_t plain = uv_buf_init((char *)bytes, (unsigned)len);
        if (tls_encrypt(c, &plain, 1) < 0)
            return UV_EPROTO;
        return tls_send(c, done, ctx);
    }
    uv_buf_t b = uv_buf_init((char *)bytes, (unsigned)len);
    ssize_t sent = len ? uv_try_write((uv_stream_t *)&c->tcp, &b, 1) : 0;
    if (sent == UV_EAGAIN)
        sent = 0;
    if (sent < 0)
        return (int)sent;
    if ((size_t)sent == len)
        return FR_SINK_DONE;
    size_t rest = len - (size_t)sent;
    char *copy = fr_malloc(rest);
    memcpy(copy, bytes + sent, rest);
    return queue_write(c, copy, rest, done, ctx);
}

void fr_conn_last_words(fr_conn_t *c, const char *bytes, size_t len) {
    if (fr_conn_queued(c) > 0 || len == 0)
        return; /* the close cancels what is queued: these must not overtake it */
    if (c->tls) {
        uv_buf_t plain = uv_buf_init((char *)bytes, (unsigned)len);
        if (fr_tls_write_bufs(tls_of(c), &plain, 1, &c->http->tls_out) == 0) {
            uv_buf_t b = uv_buf_init(c->http->tls_out.p, (unsigned)c->http->tls_out.len);
            (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
        c->http->tls_out.len = 0;
        return;
    }
    uv_buf_t b = uv_buf_init((char *)bytes, (unsigned)len);
    (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

uint64_t fr_http_next_id(fr_http_t *http) {
    return http->next_id++ * http->id_step + http->id_first;
}

/* ---- TLS ------------------------------------------------------------------------------------ */

/* The ALPN list of the protocols table in wire format, built once. */
static pthread_once_t alpn_once = PTHREAD_ONCE_INIT;
static unsigned char alpn_wire[64];
static size_t alpn_len;

static void build_alpn(void) {
    for (size_t i = 0; i < FR_ARRAY_LEN(protocols); i++) {
        size_t k = strlen(protocols[i].alpn);
        if (k == 0 || k > 255 || alpn_len + 1 + k > sizeof alpn_wire)
            abort(); /* the table is wrong: a programming error */
        alpn_wire[alpn_len++] = (unsigned char)k;
        memcpy(alpn_wire + alpn_len, protocols[i].alpn, k);
        alpn_len += k;
    }
}

fr_tls_ctx_t *fr_http_tls_new(const char *cert, const char *key, char *err, size_t errlen) {
    pthread_once(&alpn_once, build_alpn);
    return fr_tls_ctx_new(cert, key, alpn_wire, alpn_len, err, errlen);
}

void fr_http_free(fr_http_t *http) {
    fr_http_set_tls(http, NULL);
    fr_buf_free(&http->h2_out);
    fr_h2_clients_close(&http->own_h2_clients);
}

void fr_http_set_tls(fr_http_t *http, fr_tls_ctx_t *ctx) {
    fr_tls_ctx_free(http->tls);
    http->tls = ctx;
    if (!ctx)
        fr_buf_free(&http->tls_out);
}

/* Encrypts into http->tls_out, which is empty before and is sent or taken right after. */
static int tls_encrypt(fr_conn_t *c, const uv_buf_t *bufs, size_t n) {
    if (fr_tls_write_bufs(tls_of(c), bufs, n, &c->http->tls_out) == 0)
        return 0;
    c->http->tls_out.len = 0;
    c->close_reason = "tls";
    return -1;
}

/* A write that keeps its own bytes (ciphertext that the socket did not take at once). */
static int queue_write(fr_conn_t *c, char *buf, size_t len, fr_sink_done_cb done, void *ctx) {
    write_req_t *wr = fr_calloc(1, sizeof *wr);
    wr->conn = c;
    wr->buf = buf;
    wr->done = done;
    wr->ctx = ctx;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
        free(buf);
        free(wr);
        return UV_EPIPE;
    }
    c->pending_writes++;
    return FR_SINK_PENDING;
}

/* Sends the ciphertext in http->tls_out as fr_conn_send sends bytes: what the socket takes at
 * once is gone (FR_SINK_DONE); the rest is copied and queued, and done(ctx) runs once it has
 * left (FR_SINK_PENDING). The queue counts in fr_conn_queued, so a slow TLS reader meets its
 * stream's budgets exactly as a cleartext one does. */
static int tls_send(fr_conn_t *c, fr_sink_done_cb done, void *ctx) {
    fr_buf_t *out = &c->http->tls_out;
    if (out->len == 0)
        return FR_SINK_DONE;
    uv_buf_t b = uv_buf_init(out->p, (unsigned)out->len);
    ssize_t sent = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (sent == UV_EAGAIN)
        sent = 0;
    int rc = FR_SINK_DONE;
    if (sent < 0) {
        rc = (int)sent;
    } else if ((size_t)sent < out->len) {
        size_t rest = out->len - (size_t)sent;
        char *copy = fr_malloc(rest);
        memcpy(copy, out->p + sent, rest);
        rc = queue_write(c, copy, rest, done, ctx);
    }
    out->len = 0;
    /* One very large write does not keep its buffer's size for the worker's life. */
    if (out->cap > (1u << 20))
        fr_buf_free(out);
    return rc;
}

/* The handshake is done: the protocol ALPN chose (HTTP/1.1 without ALPN) takes over. */
static void tls_start(fr_conn_t *c) {
    fr_tls_t *t = tls_of(c);
    unsigned len;
    const unsigned char *name = fr_tls_alpn(t, &len);
    const fr_proto_t *proto = &fr_h1_proto;
    for (size_t i = 0; name && i < FR_ARRAY_LEN(protocols); i++) {
        if (strlen(protocols[i].alpn) == len && memcmp(protocols[i].alpn, name, len) == 0)
            proto = protocols[i].proto;
    }
    FR_BUMP(c->http->metrics->tls_handshakes, 1);
    if (fr_log_enabled(FR_LOG_DEBUG)) {
        char f[200];
        snprintf(f, sizeof f,
                 "\"event\":\"TLS\",\"conn\":%llu,\"version\":\"%s\",\"cipher\":\"%s\","
                 "\"alpn\":\"%.*s\"",
                 (unsigned long long)c->x.id, fr_tls_version(t), fr_tls_cipher(t), (int)len,
                 name ? (const char *)name : "");
        fr_log_fields(FR_LOG_DEBUG, f);
    }
    c->proto = proto;
    c->proto->start(c);
}

/* The peer sent close_notify (it leaves, as with a TCP FIN), or the session failed. */
static void tls_failed(fr_conn_t *c, ssize_t why) {
    if (why == FR_TLS_ERROR) {
        if (c->proto == &handshake_proto)
            FR_BUMP(c->http->metrics->tls_failures, 1);
        if (!c->close_reason)
            c->close_reason = "tls";
        fr_debug("conn %llu from %s: tls: %s", (unsigned long long)c->x.id, c->remote,
                 fr_tls_why());
    }
    fr_conn_close(c);
}

/* Ciphertext from the socket: handshake first, then plaintext to the protocol, record by
 * record. What the server must send meanwhile (its handshake flights, a session ticket, an
 * alert) leaves before the protocol sees anything, so it precedes any answer on the wire. */
static void tls_read(fr_conn_t *c, const char *in, size_t n) {
    fr_http_t *h = c->http;
    fr_tls_t *t = tls_of(c);
    while (!c->closing) {
        ssize_t got = fr_tls_read(t, &in, &n, h->tls_plain, sizeof h->tls_plain, &h->tls_out);
        if (tls_send(c, NULL, NULL) < 0) {
            fr_conn_close(c);
            return;
        }
        if (got < 0) {
            tls_failed(c, got);
            return;
        }
        if (c->proto == &handshake_proto && t->ready)
            tls_start(c);
        if (got == FR_TLS_AGAIN)
            return;
        c->proto->data(c, h->tls_plain, (size_t)got);
    }
}

/* A close_notify before the socket closes, when nothing queued is still to go before it (the
 * close cancels what is queued, and the alert must not overtake it). Best effort: a socket
 * that cannot take it at once does without. */
static void tls_goodbye(fr_conn_t *c) {
    fr_buf_t *out = &c->http->tls_out;
    if (c->proto == &handshake_proto || fr_conn_queued(c) > 0)
        return;
    fr_tls_shutdown(tls_of(c), out);
    if (out->len) {
        uv_buf_t b = uv_buf_init(out->p, (unsigned)out->len);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    out->len = 0;
}

/* While the handshake runs the connection speaks no protocol yet; it must finish within the
 * time a request's headers have (limits: timeouts.headers). */
static void hs_start(fr_conn_t *c) {
    fr_conn_wait(c, FR_WAIT_READING);
}

static void hs_data(fr_conn_t *c, const char *bytes, size_t len) {
    (void)c;
    (void)bytes;
    (void)len; /* never called: tls_read hands plaintext on only once a protocol is chosen */
}

static void hs_timeout(fr_conn_t *c) {
    FR_BUMP(c->http->metrics->tls_failures, 1);
    fr_conn_close(c);
}

static void hs_closing(fr_conn_t *c) {
    (void)c;
}

static int hs_closed(fr_conn_t *c) {
    (void)c;
    return 0;
}

static const fr_proto_t handshake_proto = {hs_start, hs_data, hs_timeout, hs_closing, hs_closed,
                                           NULL};

/* ---- h2c: HTTP/2 with prior knowledge ------------------------------------------------------- */

/* What an HTTP/2 client sends first (RFC 9113, 3.4); no HTTP/1 request starts with "PRI *". */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define FR_PREFACE_LEN (sizeof h2_preface - 1)

/* Until the first bytes tell, they are kept (in held_input, HTTP/1's, unused until then). */
static void pf_start(fr_conn_t *c) {
    fr_conn_wait(c, FR_WAIT_READING);
}

static void pf_data(fr_conn_t *c, const char *bytes, size_t len) {
    size_t have = c->nheld_input;
    size_t cmp = have + len < FR_PREFACE_LEN ? len : FR_PREFACE_LEN - have;
    int h2 = memcmp(bytes, h2_preface + have, cmp) == 0;
    if (h2 && have + len < FR_PREFACE_LEN) {
        c->held_input = fr_realloc(c->held_input, have + len);
        memcpy(c->held_input + have, bytes, len);
        c->nheld_input = have + len;
        return;
    }
    char *held = c->held_input;
    c->held_input = NULL;
    c->nheld_input = 0;
    fr_conn_wait(c, FR_WAIT_NONE);
    c->proto = h2 ? &fr_h2_proto : &fr_h1_proto;
    c->proto->start(c);
    if (have && !c->closing)
        c->proto->data(c, held, have);
    free(held);
    if (!c->closing)
        c->proto->data(c, bytes, len);
}

static void pf_timeout(fr_conn_t *c) {
    fr_conn_close(c);
}

static void pf_closing(fr_conn_t *c) {
    (void)c;
}

static int pf_closed(fr_conn_t *c) {
    free(c->held_input);
    c->held_input = NULL;
    return 0;
}

static const fr_proto_t preface_proto = {pf_start, pf_data, pf_timeout, pf_closing, pf_closed,
                                         NULL};
