/* The backend HTTP client against a tiny HTTP/1.1 server on 127.0.0.1:0 in the same loop:
 * bodies by length, chunks and close; the request bytes; keep-alive reuse, the pool's limits
 * and idle expiry; the one retry after a stale pooled connection; the deadline; refused
 * connections; the response limit; calls in flight; cancelling; refused input; closing the
 * client with calls in flight. The same server speaks TLS (http/tls.h) for https://: the
 * certificate checked against a CA file and the host, or refused without it, or for another
 * name; verification off; pools kept apart by scheme and trust; a handshake that stalls past
 * the deadline or is cancelled. Each test runs on a loop of its own and ends with every handle
 * closed (uv_loop_close succeeds), so nothing is left behind. */
#include <arpa/inet.h>
#include <signal.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "base/buf.h"
#include "base/util.h"
#include "client/http_client.h"
#include "fr_test.h"
#include "http/tls.h"
#include "tls_fixture.h"

/* ---- the server ------------------------------------------------------------------------------ */

#define MAX_SCONNS 32

typedef struct server_s server_t;

typedef struct {
    uv_tcp_t tcp;
    server_t *srv;
    fr_buf_t in;   /* bytes read and not yet answered */
    fr_tls_t tls;  /* when the server speaks TLS */
    int closing;
} sconn_t;

struct server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    int accepts, requests, eofs;
    sconn_t *conns[MAX_SCONNS];
    fr_buf_t last;  /* the last request, as it arrived */
    fr_tls_ctx_t *tls; /* set: connections speak TLS (a reference) */
    int stall;         /* set: bytes that arrive are read and never answered */
    int plain_400;     /* set: any bytes get a cleartext 400 and a close */
    int handshakes;    /* TLS handshakes completed */
    int resumed;       /* of which resumed a session */
};

typedef struct {
    uv_write_t req;
    char *buf;
    sconn_t *conn;
    int close_after;
} swrite_t;

static void on_sconn_closed(uv_handle_t *h) {
    sconn_t *c = (sconn_t *)h;
    for (int i = 0; i < MAX_SCONNS; i++)
        if (c->srv->conns[i] == c)
            c->srv->conns[i] = NULL;
    fr_buf_free(&c->in);
    fr_tls_close(&c->tls);
    free(c);
}

static void sconn_close(sconn_t *c) {
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_sconn_closed);
}

static void on_swritten(uv_write_t *req, int status) {
    swrite_t *w = (swrite_t *)req;
    if (w->close_after)
        sconn_close(w->conn);
    free(w->buf);
    free(w);
}

/* Bytes as they go on the wire: records when the server speaks TLS. */
static void sraw(sconn_t *c, const char *s, size_t n, int close_after) {
    swrite_t *w = fr_calloc(1, sizeof *w);
    w->buf = fr_strndup(s, n);
    w->conn = c;
    w->close_after = close_after;
    uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_swritten) != 0) {
        free(w->buf);
        free(w);
    }
}

static void ssend(sconn_t *c, const char *s, size_t n, int close_after) {
    if (!c->srv->tls) {
        sraw(c, s, n, close_after);
        return;
    }
    fr_buf_t out = {0};
    struct iovec v = {(void *)s, n};
    if (fr_tls_write(&c->tls, &v, 1, &out) == 0)
        sraw(c, out.p ? out.p : "", out.len, close_after);
    fr_buf_free(&out);
}

static void ssend_str(sconn_t *c, const char *s, int close_after) {
    ssend(c, s, strlen(s), close_after);
}

/* Answers by path. */
static void answer(sconn_t *c, const char *path) {
    if (!strcmp(path, "/cl") || !strncmp(path, "/cl?", 4)) {
        ssend_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Reply: Yes\r\n\r\nhello", 0);
    } else if (!strcmp(path, "/chunked")) {
        ssend_str(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", 0);
    } else if (!strcmp(path, "/eof")) {
        ssend_str(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 1);
    } else if (!strcmp(path, "/head")) {
        ssend_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 0);
    } else if (!strcmp(path, "/interim")) {
        ssend_str(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0);
    } else if (!strcmp(path, "/extra")) {
        ssend_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", 0);
    } else if (!strcmp(path, "/bad")) {
        ssend_str(c, "nonsense\r\n\r\n", 0);
    } else if (!strcmp(path, "/half")) {
        ssend_str(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1);
    } else if (!strcmp(path, "/reset")) {
        c->closing = 1;
        uv_tcp_close_reset(&c->tcp, on_sconn_closed);
    } else if (!strcmp(path, "/big")) {
        static char big[100100];
        int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        memset(big + n, 'x', 100000);
        ssend(c, big, (size_t)n + 100000, 0);
    } else if (strcmp(path, "/slow") != 0) {
        ssend_str(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0);
    }
}

/* The length of the first whole request in c->in, or 0. */
static size_t whole_request(sconn_t *c) {
    const char *end = c->in.p ? strstr(c->in.p, "\r\n\r\n") : NULL;
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->in.p) + 4, body = 0;
    const char *cl = strcasestr(c->in.p, "\r\ncontent-length:");
    if (cl && cl < end)
        body = strtoul(cl + 17, NULL, 10);
    return c->in.len >= head + body ? head + body : 0;
}

static void serve(sconn_t *c) {
    size_t n;
    while (!c->closing && (n = whole_request(c)) > 0) {
        server_t *s = c->srv;
        s->requests++;
        s->last.len = 0;
        fr_buf_put(&s->last, c->in.p, n);
        char path[256] = "";
        const char *sp = memchr(c->in.p, ' ', n);
        if (sp)
            sscanf(sp + 1, "%255s", path);
        memmove(c->in.p, c->in.p + n, c->in.len - n + 1);
        c->in.len -= n;
        answer(c, path);
    }
}

static void on_salloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char b[65536];
    *buf = uv_buf_init(b, sizeof b);
}

static void on_sread(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    sconn_t *c = (sconn_t *)st;
    if (nread < 0) {
        c->srv->eofs++;
        sconn_close(c);
        return;
    }
    server_t *s = c->srv;
    if (s->stall)
        return;
    if (s->plain_400) {
        sraw(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47, 1);
        return;
    }
    if (!s->tls) {
        fr_buf_put(&c->in, buf->base, (size_t)nread);
        serve(c);
        return;
    }
    const char *in = buf->base;
    size_t n = (size_t)nread;
    static char plain[FR_TLS_RECORD];
    for (;;) {
        fr_buf_t out = {0};
        int was_ready = c->tls.ready;
        ssize_t got = fr_tls_read(&c->tls, &in, &n, plain, sizeof plain, &out);
        if (out.len)
            sraw(c, out.p, out.len, 0);
        fr_buf_free(&out);
        if (!was_ready && c->tls.ready) {
            s->handshakes++;
            s->resumed += SSL_session_reused(c->tls.ssl);
        }
        if (got < 0) {
            sconn_close(c);
            return;
        }
        if (got == FR_TLS_AGAIN)
            return;
        fr_buf_put(&c->in, plain, (size_t)got);
        serve(c);
        if (c->closing)
            return;
    }
}

static void on_accept(uv_stream_t *l, int status) {
    server_t *s = l->data;
    sconn_t *c = fr_calloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    if (status < 0 || uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        sconn_close(c);
        return;
    }
    s->accepts++;
    if (s->tls && fr_tls_open(&c->tls, s->tls) != 0) {
        sconn_close(c);
        return;
    }
    for (int i = 0; i < MAX_SCONNS; i++)
        if (!s->conns[i]) {
            s->conns[i] = c;
            break;
        }
    uv_read_start((uv_stream_t *)&c->tcp, on_salloc, on_sread);
}

/* Listens on ip:0 and returns 0, or -1 when the address is not there (IPv6 off). */
static int server_start(server_t *s, uv_loop_t *loop, const char *ip) {
    memset(s, 0, sizeof *s);
    s->loop = loop;
    struct sockaddr_storage ss;
    if (strchr(ip, ':'))
        uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss);
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if (uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0) != 0 ||
        uv_listen((uv_stream_t *)&s->listener, 64, on_accept) != 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        return -1;
    }
    int len = sizeof ss;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* Closes every connection the server has (a FIN each), not the listener. */
static void server_drop_conns(server_t *s) {
    for (int i = 0; i < MAX_SCONNS; i++)
        if (s->conns[i])
            sconn_close(s->conns[i]);
}

static void server_stop(server_t *s) {
    server_drop_conns(s);
    uv_close((uv_handle_t *)&s->listener, NULL);
    fr_buf_free(&s->last);
}

/* ---- running the loop ------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t) {
    (void)t;
}

/* Runs the loop until *count reaches want or 5 s pass; a ticking timer keeps uv_run from
 * returning at once when only unreferenced handles are left. */
static int wait_for(uv_loop_t *loop, const int *count, int want) {
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uint64_t until = uv_hrtime() + 5000000000ull;
    while (*count < want && uv_hrtime() < until)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *count >= want;
}

/* Runs the loop for about ms milliseconds. */
static void spin(uv_loop_t *loop, uint64_t ms) {
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 2, 2);
    uint64_t until = uv_hrtime() + ms * 1000000ull;
    while (uv_hrtime() < until)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* ---- calls ------------------------------------------------------------------------------------ */

typedef struct {
    int calls;           /* times cb came */
    const char *err;     /* errbuf, or NULL */
    char errbuf[256];    /* err is borrowed for the callback's duration: a copy */
    int status;
    fr_buf_t body;
    fr_buf_t reply;      /* the X-Reply header */
    int nheaders;
    fr_hclient_t *client; /* when set, cb tries another call (refused while closing) */
    const char *then_err;
} result_t;

static void on_result(void *ctx, const fr_hresponse_t *res, const char *err) {
    result_t *r = ctx;
    r->calls++;
    r->err = NULL;
    if (err) {
        snprintf(r->errbuf, sizeof r->errbuf, "%s", err);
        r->err = r->errbuf;
    }
    if (res) {
        r->status = res->status;
        fr_buf_put(&r->body, res->body, res->body_len);
        r->nheaders = (int)res->nheaders;
        for (size_t i = 0; i < res->nheaders; i++)
            if (!strcmp(res->headers[i].name, "x-reply"))
                fr_buf_put(&r->reply, res->headers[i].value, res->headers[i].value_len);
    }
    if (r->client) {
        fr_hrequest_t rq = {.method = "GET", .url = "http://127.0.0.1:1/", .timeout_ms = 100};
        fr_hcall_t *call;
        int rc = fr_hclient_request(r->client, &rq, on_result, r, &call, &r->then_err);
        if (rc == 0)
            r->then_err = "started";
    }
}

static void result_free(result_t *r) {
    fr_buf_free(&r->body);
    fr_buf_free(&r->reply);
}

/* One test's world: a loop, a server on it and a client. */
typedef struct {
    uv_loop_t loop;
    server_t srv;
    fr_hclient_t *client;
    char url[128];
} world_t;

static int world_open(world_t *w, const fr_hclient_limits_t *limits) {
    uv_loop_init(&w->loop);
    if (server_start(&w->srv, &w->loop, "127.0.0.1") != 0)
        return -1;
    w->client = fr_hclient_new(&w->loop, limits);
    return 0;
}

/* Closes everything; the loop must then close with no handle left. */
static void world_close(world_t *w) {
    if (w->client)
        fr_hclient_close(w->client);
    server_stop(&w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&w->loop), 0);
}

static const char *url(world_t *w, const char *path) {
    snprintf(w->url, sizeof w->url, "http://127.0.0.1:%d%s", w->srv.port, path);
    return w->url;
}

/* Starts a call and waits for its answer. */
static int call(world_t *w, const char *method, const char *u, const char *body,
                uint64_t timeout_ms, result_t *r) {
    fr_hrequest_t rq = {.method = method, .url = u, .body = body,
                        .body_len = body ? strlen(body) : 0, .timeout_ms = timeout_ms};
    fr_hcall_t *c;
    const char *err = NULL;
    int before = r->calls;
    if (fr_hclient_request(w->client, &rq, on_result, r, &c, &err) != 0) {
        printf("    refused: %s\n", err);
        return -1;
    }
    /* The answer never comes inside fr_hclient_request. */
    CHECK_EQ_INT(r->calls, before);
    return wait_for(&w->loop, &r->calls, before + 1) ? 0 : -1;
}

static fr_hclient_stats_t stats(world_t *w) {
    fr_hclient_stats_t s;
    fr_hclient_stats(w->client, &s);
    return s;
}

/* ---- the tests -------------------------------------------------------------------------------- */

static void test_get_content_length(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t r = {0};
    if (CHECK(call(&w, "GET", url(&w, "/cl?q=1#frag"), NULL, 2000, &r) == 0)) {
        CHECK_EQ_STR(r.err, NULL);
        CHECK_EQ_INT(r.status, 200);
        CHECK_MEM_LIT(r.body.p, r.body.len, "hello");
        CHECK_MEM_LIT(r.reply.p, r.reply.len, "Yes");
    }
    char want[160];
    snprintf(want, sizeof want,
             "GET /cl?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: freshet\r\n\r\n",
             w.srv.port);
    CHECK_EQ_STR(w.srv.last.p, want);
    fr_hclient_stats_t s = stats(&w);
    CHECK_EQ_UINT(s.calls, 1);
    CHECK_EQ_UINT(s.failures, 0);
    CHECK_EQ_UINT(s.in_flight, 0);
    CHECK_EQ_UINT(s.idle, 1);
    result_free(&r);
    world_close(&w);
}

static void test_request_bytes(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t r = {0};
    /* A POST with a body says how long it is; one without says 0; headers go as given. */
    fr_hheader_t hs[] = {{"X-One", "1", 5, 1}, {"user-agent", "probe/2", 10, 7}};
    fr_hrequest_t rq = {.method = "POST", .url = url(&w, "/cl"), .headers = hs, .nheaders = 2,
                        .body = "a=1&b=2", .body_len = 7, .timeout_ms = 2000};
    fr_hcall_t *c;
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &c, NULL) == 0);
    REQUIRE(wait_for(&w.loop, &r.calls, 1));
    char want[256];
    snprintf(want, sizeof want,
             "POST /cl HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-One: 1\r\nuser-agent: probe/2\r\n"
             "Content-Length: 7\r\n\r\na=1&b=2", w.srv.port);
    CHECK_EQ_STR(w.srv.last.p, want);
    REQUIRE(call(&w, "PUT", url(&w, ""), NULL, 2000, &r) == 0);
    snprintf(want, sizeof want,
             "PUT / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n"
             "User-Agent: freshet\r\n\r\n", w.srv.port);
    CHECK_EQ_STR(w.srv.last.p, want);
    CHECK_EQ_INT(r.status, 404);
    CHECK_EQ_UINT(stats(&w).reused, 1);
    /* A query alone gets the root path; the default port is left out of Host. */
    char u[64];
    snprintf(u, sizeof u, "HTTP://127.0.0.1:%d?a=1&b", w.srv.port);
    REQUIRE(call(&w, "DELETE", u, NULL, 2000, &r) == 0);
    CHECK(w.srv.last.p && !strncmp(w.srv.last.p, "DELETE /?a=1&b HTTP/1.1\r\n", 25));
    CHECK_EQ_INT(r.calls, 3);
    result_free(&r);
    world_close(&w);
}

static void test_bodies(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    static const struct {
        const char *method, *path, *body;
        int reused_after; /* the connection went back to the pool */
    } cases[] = {
        {"GET", "/chunked", "abcdefg", 1},
        {"GET", "/eof", "until the end", 0},
        {"HEAD", "/head", "", 1},
        {"GET", "/interim", "ok", 1},
        {"GET", "/extra", "ok", 0},
    };
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        result_t r = {0};
        if (CHECK(call(&w, cases[i].method, url(&w, cases[i].path), NULL, 2000, &r) == 0)) {
            CHECK_EQ_STR(r.err, NULL);
            CHECK_EQ_INT(r.status, 200);
            CHECK_EQ_STR(r.body.p ? r.body.p : "", cases[i].body);
        }
        if (!CHECK_EQ_UINT(stats(&w).idle, cases[i].reused_after))
            printf("    %s\n", cases[i].path);
        /* Start each case on a fresh connection. */
        server_drop_conns(&w.srv);
        spin(&w.loop, 20);
        CHECK_EQ_UINT(stats(&w).idle, 0);
        result_free(&r);
    }
    world_close(&w);
}

static void test_broken_responses(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    static const struct {
        const char *path, *err;
    } cases[] = {
        {"/bad", "invalid response"},
        {"/half", "connection closed"},
        {"/reset", "connection reset"},
    };
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        result_t r = {0};
        if (CHECK(call(&w, "GET", url(&w, cases[i].path), NULL, 2000, &r) == 0))
            CHECK_EQ_STR(r.err, cases[i].err);
        CHECK_EQ_INT(r.status, 0);
        CHECK_EQ_UINT(stats(&w).idle, 0);
        result_free(&r);
    }
    CHECK_EQ_UINT(stats(&w).failures, 3);
    world_close(&w);
}

static void test_keep_alive_reuse(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t r = {0};
    for (int i = 0; i < 3; i++)
        REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r) == 0);
    CHECK_EQ_INT(w.srv.accepts, 1);
    CHECK_EQ_INT(w.srv.requests, 3);
    CHECK_EQ_UINT(stats(&w).reused, 2);
    CHECK_EQ_UINT(stats(&w).idle, 1);
    /* Another host:port is another pool: "localhost" names the same server, differently. */
    struct addrinfo *ai = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (getaddrinfo("localhost", NULL, &hints, &ai) == 0 && ai->ai_family == AF_INET) {
        char u[64];
        snprintf(u, sizeof u, "http://LocalHost:%d/cl", w.srv.port);
        REQUIRE(call(&w, "GET", u, NULL, 2000, &r) == 0);
        CHECK_EQ_STR(r.err, NULL);
        CHECK_EQ_INT(w.srv.accepts, 2);
        CHECK_EQ_UINT(stats(&w).idle, 2);
        snprintf(u, sizeof u, "http://localhost:%d/cl", w.srv.port);
        REQUIRE(call(&w, "GET", u, NULL, 2000, &r) == 0);
        CHECK_EQ_INT(w.srv.accepts, 2);
        CHECK_EQ_UINT(stats(&w).reused, 3);
        char want[64];
        snprintf(want, sizeof want, "Host: localhost:%d\r\n", w.srv.port);
        CHECK_CONTAINS(w.srv.last.p, want);
    }
    if (ai)
        freeaddrinfo(ai);
    result_free(&r);
    world_close(&w);
}

static void test_pool_limits_and_idle(void) {
    world_t w;
    fr_hclient_limits_t lim = {.max_idle_per_host = 1, .idle_ms = 60};
    REQUIRE(world_open(&w, &lim) == 0);
    /* Two calls at once need two connections; the pool keeps one of them. */
    result_t r = {0};
    fr_hrequest_t rq = {.method = "GET", .url = url(&w, "/cl"), .timeout_ms = 2000};
    fr_hcall_t *a, *b;
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &a, NULL) == 0);
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &b, NULL) == 0);
    REQUIRE(wait_for(&w.loop, &r.calls, 2));
    CHECK_EQ_INT(w.srv.accepts, 2);
    CHECK_EQ_UINT(stats(&w).idle, 1);
    /* Unused for idle_ms, it is closed. */
    spin(&w.loop, 150);
    CHECK_EQ_UINT(stats(&w).idle, 0);
    CHECK_EQ_INT(w.srv.eofs, 2);
    result_free(&r);
    world_close(&w);

    /* No pool at all. */
    fr_hclient_limits_t none = {.max_idle_per_host = 0};
    REQUIRE(world_open(&w, &none) == 0);
    result_t r2 = {0};
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r2) == 0);
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r2) == 0);
    CHECK_EQ_INT(w.srv.accepts, 2);
    CHECK_EQ_UINT(stats(&w).reused, 0);
    result_free(&r2);
    world_close(&w);
}

/* A pooled connection the server closes while it waits is noticed and dropped. */
static void test_pool_drops_closed(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t r = {0};
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r) == 0);
    CHECK_EQ_UINT(stats(&w).idle, 1);
    server_drop_conns(&w.srv);
    spin(&w.loop, 30);
    CHECK_EQ_UINT(stats(&w).idle, 0);
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r) == 0);
    CHECK_EQ_STR(r.err, NULL);
    CHECK_EQ_INT(w.srv.accepts, 2);
    CHECK_EQ_UINT(stats(&w).reused, 0);
    result_free(&r);
    world_close(&w);
}

/* The server closed a pooled connection and the client has not read the close yet: the call
 * reuses it, finds it dead before any response byte, and goes once more on a new one. A POST
 * is not sent twice. */
static void test_stale_retry(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t r = {0};
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r) == 0);
    server_drop_conns(&w.srv); /* closes at once; the client's loop has not run since */
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r) == 0);
    CHECK_EQ_STR(r.err, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(w.srv.accepts, 2);
    fr_hclient_stats_t s = stats(&w);
    CHECK_EQ_UINT(s.reused, 1);
    CHECK_EQ_UINT(s.retries, 1);
    CHECK_EQ_UINT(s.failures, 0);
    CHECK_EQ_UINT(s.idle, 1);

    server_drop_conns(&w.srv);
    result_t p = {0};
    REQUIRE(call(&w, "POST", url(&w, "/cl"), "x", 2000, &p) == 0);
    CHECK(p.err && (!strcmp(p.err, "connection closed") || !strcmp(p.err, "connection reset")));
    CHECK_EQ_UINT(stats(&w).retries, 1);
    CHECK_EQ_INT(w.srv.accepts, 2);
    result_free(&p);
    result_free(&r);
    world_close(&w);
}

static void test_timeout(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t r = {0};
    uint64_t t0 = uv_hrtime();
    REQUIRE(call(&w, "GET", url(&w, "/slow"), NULL, 100, &r) == 0);
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
    CHECK_EQ_STR(r.err, "timeout");
    CHECK(took_ms >= 90 && took_ms < 1000);
    fr_hclient_stats_t s = stats(&w);
    CHECK_EQ_UINT(s.timeouts, 1);
    CHECK_EQ_UINT(s.failures, 1);
    CHECK_EQ_UINT(s.idle, 0);
    /* The connection was closed, not kept. */
    REQUIRE(wait_for(&w.loop, &w.srv.eofs, 1));
    CHECK_EQ_INT(r.calls, 1);
    result_free(&r);
    world_close(&w);
}

/* A port nobody listens on: bound once to learn a free one, then closed. */
static int free_port(uv_loop_t *loop) {
    uv_tcp_t t;
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    uv_tcp_init(loop, &t);
    uv_tcp_bind(&t, (struct sockaddr *)&sin, 0);
    int len = sizeof sin;
    uv_tcp_getsockname(&t, (struct sockaddr *)&sin, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ntohs(sin.sin_port);
}

static void test_refused(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", free_port(&w.loop));
    result_t r = {0};
    REQUIRE(call(&w, "GET", u, NULL, 2000, &r) == 0);
    CHECK_EQ_STR(r.err, "connection refused");
    CHECK_EQ_UINT(stats(&w).failures, 1);
    spin(&w.loop, 20);
    CHECK_EQ_INT(r.calls, 1);
    result_free(&r);
    world_close(&w);
}

/* A failure met inside fr_hclient_request (here the socket cannot be made: no descriptor
 * left) is still told through cb, later. */
static void test_failure_at_start_comes_later(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    struct rlimit old, low;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    int lowest = dup(0);
    REQUIRE(lowest >= 0);
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    result_t r = {0};
    fr_hrequest_t rq = {.method = "GET", .url = url(&w, "/cl"), .timeout_ms = 2000};
    fr_hcall_t *c;
    int rc = fr_hclient_request(w.client, &rq, on_result, &r, &c, NULL);
    setrlimit(RLIMIT_NOFILE, &old);
    REQUIRE(rc == 0);
    CHECK_EQ_INT(r.calls, 0);
    REQUIRE(wait_for(&w.loop, &r.calls, 1));
    CHECK_EQ_STR(r.err, uv_strerror(UV_EMFILE));
    CHECK_EQ_INT(w.srv.accepts, 0);
    result_free(&r);
    world_close(&w);
}

static void test_response_too_large(void) {
    world_t w;
    fr_hclient_limits_t lim = {.max_response = 1000, .max_idle_per_host = 4};
    REQUIRE(world_open(&w, &lim) == 0);
    result_t r = {0};
    REQUIRE(call(&w, "GET", url(&w, "/big"), NULL, 2000, &r) == 0);
    CHECK_EQ_STR(r.err, "response too large");
    CHECK_EQ_UINT(stats(&w).idle, 0);
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r) == 0);
    CHECK_EQ_STR(r.err, NULL);
    CHECK_EQ_INT(w.srv.accepts, 2);
    result_free(&r);
    world_close(&w);
}

static void test_max_in_flight_and_cancel(void) {
    world_t w;
    fr_hclient_limits_t lim = {.max_in_flight = 2, .max_idle_per_host = 4};
    REQUIRE(world_open(&w, &lim) == 0);
    result_t r = {0};
    fr_hrequest_t rq = {.method = "GET", .url = url(&w, "/slow")};
    fr_hcall_t *a, *b, *c = (fr_hcall_t *)1;
    const char *err = NULL;
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &a, &err) == 0);
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &b, &err) == 0);
    CHECK_EQ_INT(fr_hclient_request(w.client, &rq, on_result, &r, &c, &err), -1);
    CHECK_EQ_STR(err, "too many calls in flight");
    CHECK(c == NULL);
    REQUIRE(wait_for(&w.loop, &w.srv.requests, 2));
    /* Cancelled: no answer ever, and the connections are closed. */
    fr_hcall_cancel(a);
    fr_hcall_cancel(b);
    CHECK_EQ_UINT(stats(&w).in_flight, 0);
    REQUIRE(wait_for(&w.loop, &w.srv.eofs, 2));
    spin(&w.loop, 20);
    CHECK_EQ_INT(r.calls, 0);
    CHECK_EQ_UINT(stats(&w).idle, 0);
    /* Room again. */
    rq.url = url(&w, "/cl");
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &a, &err) == 0);
    REQUIRE(wait_for(&w.loop, &r.calls, 1));
    CHECK_EQ_INT(r.status, 200);
    result_free(&r);
    world_close(&w);
}

/* Cancelled at every stage: before the lookup answers, before the connect completes, right
 * after the request went out. */
static void test_cancel_stages(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t r = {0};
    char u[64];
    snprintf(u, sizeof u, "http://localhost:%d/cl", w.srv.port);
    const char *urls[] = {u, url(&w, "/cl")};
    for (size_t i = 0; i < 2; i++) {
        fr_hrequest_t rq = {.method = "GET", .url = urls[i], .timeout_ms = 2000};
        fr_hcall_t *c;
        REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &c, NULL) == 0);
        fr_hcall_cancel(c);
    }
    spin(&w.loop, 50);
    CHECK_EQ_INT(r.calls, 0);
    /* After a pooled connection took the request: it is closed, not pooled again. */
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &r) == 0);
    CHECK_EQ_UINT(stats(&w).idle, 1);
    fr_hrequest_t rq = {.method = "GET", .url = url(&w, "/slow"), .timeout_ms = 2000};
    fr_hcall_t *c;
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &c, NULL) == 0);
    CHECK_EQ_UINT(stats(&w).idle, 0);
    fr_hcall_cancel(c);
    spin(&w.loop, 30);
    CHECK_EQ_INT(r.calls, 1);
    CHECK_EQ_UINT(stats(&w).idle, 0);
    CHECK_EQ_UINT(stats(&w).in_flight, 0);
    result_free(&r);
    world_close(&w);
}

static void test_refused_input(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    static const struct {
        const char *url, *err;
    } urls[] = {
        {"https://127.0.0.1:0/", "url has an invalid port"},
        {"HTTPS://[::1/", "url has an invalid host"},
        {"ftp://127.0.0.1/", "url must start with http:// or https://"},
        {"127.0.0.1/", "url must start with http:// or https://"},
        {"https:/127.0.0.1/", "url must start with http:// or https://"},
        {"http://user:pw@127.0.0.1/", "url may not have user info"},
        {"http://127.0.0.1/a b", "url has a space or a control character"},
        {"http://127.0.0.1/a\r\nX: y", "url has a space or a control character"},
        {"http://127.0.0.1/\x7f", "url has a space or a control character"},
        {"http:///path", "url has an invalid host"},
        {"http://ho$t/", "url has an invalid host"},
        {"http://[::1/", "url has an invalid host"},
        {"http://[zz]/", "url has an invalid host"},
        {"http://[::1]x/", "url has an invalid port"},
        {"http://127.0.0.1:0/", "url has an invalid port"},
        {"http://127.0.0.1:65536/", "url has an invalid port"},
        {"http://127.0.0.1:8a/", "url has an invalid port"},
        {NULL, "url must start with http:// or https://"},
    };
    result_t r = {0};
    for (size_t i = 0; i < FR_ARRAY_LEN(urls); i++) {
        fr_hrequest_t rq = {.method = "GET", .url = urls[i].url};
        fr_hcall_t *c = (fr_hcall_t *)1;
        const char *err = NULL;
        CHECK_EQ_INT(fr_hclient_request(w.client, &rq, on_result, &r, &c, &err), -1);
        if (!CHECK_EQ_STR(err, urls[i].err))
            printf("    url %zu\n", i);
        CHECK(c == NULL);
    }
    static const struct {
        const char *method;
        fr_hheader_t h;
        const char *err;
    } reqs[] = {
        {"GE T", {"X", "1", 1, 1}, "invalid method"},
        {"", {"X", "1", 1, 1}, "invalid method"},
        {"CONNECT", {"X", "1", 1, 1}, "method CONNECT is not supported"},
        {"GET", {"X Y", "1", 3, 1}, "invalid header name"},
        {"GET", {"X:", "1", 2, 1}, "invalid header name"},
        {"GET", {"", "1", 0, 1}, "invalid header name"},
        {"GET", {"X", "a\r\nEvil: 1", 1, 10}, "invalid header value"},
        {"GET", {"X", "a\nb", 1, 3}, "invalid header value"},
        {"GET", {"X", "a\0b", 1, 3}, "invalid header value"},
        {"GET", {"host", "x", 4, 1}, "header Host is not allowed"},
        {"GET", {"Content-length", "1", 14, 1}, "header Content-Length is not allowed"},
        {"GET", {"CONNECTION", "close", 10, 5}, "header Connection is not allowed"},
        {"GET", {"transfer-encoding", "chunked", 17, 7}, "header Transfer-Encoding is not allowed"},
    };
    for (size_t i = 0; i < FR_ARRAY_LEN(reqs); i++) {
        fr_hrequest_t rq = {.method = reqs[i].method, .url = url(&w, "/"), .headers = &reqs[i].h,
                            .nheaders = 1};
        fr_hcall_t *c;
        const char *err = NULL;
        CHECK_EQ_INT(fr_hclient_request(w.client, &rq, on_result, &r, &c, &err), -1);
        if (!CHECK_EQ_STR(err, reqs[i].err))
            printf("    request %zu\n", i);
    }
    spin(&w.loop, 10);
    CHECK_EQ_INT(r.calls, 0);
    CHECK_EQ_UINT(stats(&w).calls, 0);
    CHECK_EQ_INT(w.srv.accepts, 0);
    result_free(&r);
    world_close(&w);
}

static void test_ipv6_literal(void) {
    world_t w;
    uv_loop_init(&w.loop);
    if (server_start(&w.srv, &w.loop, "::1") != 0) {
        printf("    no IPv6 loopback here: skipped\n");
        uv_run(&w.loop, UV_RUN_DEFAULT);
        uv_loop_close(&w.loop);
        return;
    }
    w.client = fr_hclient_new(&w.loop, NULL);
    char u[64];
    snprintf(u, sizeof u, "http://[::1]:%d/cl", w.srv.port);
    result_t r = {0};
    REQUIRE(call(&w, "GET", u, NULL, 2000, &r) == 0);
    CHECK_EQ_STR(r.err, NULL);
    CHECK_EQ_INT(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "Host: [::1]:%d\r\n", w.srv.port);
    CHECK_CONTAINS(w.srv.last.p, want);
    result_free(&r);
    world_close(&w);
}

/* Closing answers every call in flight "shutting down" (and refuses new ones, even from inside
 * an answer), closes the pool and frees everything once the loop has run. */
static void test_close_with_calls_in_flight(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    result_t pooled = {0};
    REQUIRE(call(&w, "GET", url(&w, "/cl"), NULL, 2000, &pooled) == 0);
    result_t r = {0};
    r.client = w.client;
    fr_hrequest_t rq = {.method = "GET", .url = url(&w, "/slow"), .timeout_ms = 5000};
    fr_hcall_t *a, *b, *c;
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &a, NULL) == 0);
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &b, NULL) == 0);
    REQUIRE(wait_for(&w.loop, &w.srv.requests, 3));
    /* One more still looking its name up. */
    char u[64];
    snprintf(u, sizeof u, "http://localhost:%d/slow", w.srv.port);
    rq.url = u;
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &c, NULL) == 0);
    fr_hclient_close(w.client);
    CHECK_EQ_INT(r.calls, 3);
    CHECK_EQ_STR(r.err, "shutting down");
    CHECK_EQ_STR(r.then_err, "shutting down");
    w.client = NULL;
    result_free(&r);
    result_free(&pooled);
    world_close(&w);
}

/* ---- https ------------------------------------------------------------------------------------ */

/* The server's certificate, self-signed, for the names in san; it is its own CA file. */
typedef struct {
    world_t w;
    tls_fx_files_t files;
    char url[160];
} tworld_t;

static int tworld_open(tworld_t *t, const char *san) {
    if (world_open(&t->w, NULL) != 0)
        return -1;
    snprintf(t->files.dir, sizeof t->files.dir, "/tmp/frhcXXXXXX");
    if (!mkdtemp(t->files.dir))
        return -1;
    snprintf(t->files.cert, sizeof t->files.cert, "%s/cert.pem", t->files.dir);
    snprintf(t->files.key, sizeof t->files.key, "%s/key.pem", t->files.dir);
    if (tls_fx_write_pair_alt(t->files.cert, t->files.key, "backend", san) != 0)
        return -1;
    static const unsigned char alpn[] = "\x08http/1.1";
    char err[512];
    t->w.srv.tls = fr_tls_ctx_new(t->files.cert, t->files.key, alpn, sizeof alpn - 1, err,
                                  sizeof err);
    if (!t->w.srv.tls)
        printf("    fr_tls_ctx_new: %s\n", err);
    return t->w.srv.tls ? 0 : -1;
}

static void tworld_close(tworld_t *t) {
    world_close(&t->w);
    fr_tls_ctx_free(t->w.srv.tls);
    tls_fx_files_remove(&t->files, NULL, 0);
}

static const char *turl(tworld_t *t, const char *host, const char *path) {
    snprintf(t->url, sizeof t->url, "https://%s:%d%s", host, t->w.srv.port, path);
    return t->url;
}

/* A GET on the https world; ca NULL: the system's store. */
static int tcall(tworld_t *t, const char *u, const char *ca, int insecure, uint64_t timeout_ms,
                 result_t *r) {
    fr_hrequest_t rq = {.method = "GET", .url = u, .timeout_ms = timeout_ms, .ca_file = ca,
                        .insecure = insecure};
    fr_hcall_t *c;
    const char *err = NULL;
    int before = r->calls;
    if (fr_hclient_request(t->w.client, &rq, on_result, r, &c, &err) != 0) {
        printf("    refused: %s\n", err);
        return -1;
    }
    return wait_for(&t->w.loop, &r->calls, before + 1) ? 0 : -1;
}

static void test_https_with_ca(void) {
    tworld_t t;
    REQUIRE(tworld_open(&t, "DNS:localhost,IP:127.0.0.1") == 0);
    result_t r = {0};
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), t.files.cert, 0, 2000, &r) == 0);
    CHECK(r.err == NULL);
    if (r.err)
        printf("    err: %s\n", r.err);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT((int)r.body.len, 5);
    CHECK(r.body.len == 5 && memcmp(r.body.p, "hello", 5) == 0);
    /* The request as the server read it, decrypted: the Host header names no port 443. */
    CHECK(strstr(t.w.srv.last.p, "GET /cl HTTP/1.1\r\nHost: 127.0.0.1:") == t.w.srv.last.p);
    /* Keep-alive over TLS: the second and third calls ride the first connection. */
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/chunked"), t.files.cert, 0, 2000, &r) == 0);
    CHECK(r.err == NULL);
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), t.files.cert, 0, 2000, &r) == 0);
    CHECK(r.err == NULL);
    CHECK_EQ_INT(t.w.srv.accepts, 1);
    CHECK_EQ_INT(t.w.srv.handshakes, 1);
    CHECK_EQ_UINT(stats(&t.w).reused, 2);
    /* Plain http to the same host and port is another pool: it never takes the TLS one (the
     * TLS server reads its bytes as a bad record and closes). */
    snprintf(t.url, sizeof t.url, "http://127.0.0.1:%d/cl", t.w.srv.port);
    REQUIRE(tcall(&t, t.url, NULL, 0, 2000, &r) == 0);
    CHECK(r.err != NULL);
    CHECK_EQ_INT(t.w.srv.accepts, 2);
    /* A name the certificate carries, resolved. */
    REQUIRE(tcall(&t, turl(&t, "localhost", "/cl"), t.files.cert, 0, 2000, &r) == 0);
    if (r.err && strcmp(r.err, "connection refused") != 0) /* localhost may be ::1 first */
        CHECK_EQ_STR(r.err, "(none)");
    result_free(&r);
    tworld_close(&t);
}

static void test_https_refused_certificates(void) {
    tworld_t t;
    REQUIRE(tworld_open(&t, "DNS:other.example") == 0);
    result_t r = {0};
    /* The system's store does not know the server's CA. */
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), NULL, 0, 2000, &r) == 0);
    CHECK_CONTAINS(r.err ? r.err : "", "certificate verify failed: ");
    /* Trusted, but for another name: the address is not in the certificate. */
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), t.files.cert, 0, 2000, &r) == 0);
    CHECK_EQ_STR(r.err ? r.err : "", "certificate verify failed: IP address mismatch");
    CHECK_EQ_INT(t.w.srv.requests, 0);
    /* verify off: the call goes through, on a pool of its own. */
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), NULL, 1, 2000, &r) == 0);
    CHECK(r.err == NULL);
    CHECK_EQ_INT(r.status, 200);
    int accepts = t.w.srv.accepts;
    /* A checked call never takes the unchecked call's connection, and still fails. */
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), t.files.cert, 0, 2000, &r) == 0);
    CHECK_CONTAINS(r.err ? r.err : "", "certificate verify failed");
    CHECK_EQ_INT(t.w.srv.accepts, accepts + 1);
    CHECK_EQ_INT(t.w.srv.requests, 1);
    /* A CA file that is not there is refused at once. */
    fr_hrequest_t rq = {.method = "GET", .url = turl(&t, "127.0.0.1", "/cl"),
                        .ca_file = "/nonexistent/ca.pem"};
    fr_hcall_t *c;
    const char *err = NULL;
    CHECK_EQ_INT(fr_hclient_request(t.w.client, &rq, on_result, &r, &c, &err), -1);
    CHECK_EQ_STR(err, "cannot read the ca file /nonexistent/ca.pem: No such file or directory");
    result_free(&r);
    tworld_close(&t);
}

/* A connection after the first resumes the session the server gave, for the same key only. */
static void test_https_resumption(void) {
    tworld_t t;
    fr_hclient_limits_t limits = {.max_idle_per_host = 0};
    world_t *w = &t.w;
    REQUIRE(tworld_open(&t, "IP:127.0.0.1") == 0);
    fr_hclient_close(w->client);
    w->client = fr_hclient_new(&w->loop, &limits);
    result_t r = {0};
    for (int i = 0; i < 3; i++) {
        REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), t.files.cert, 0, 2000, &r) == 0);
        CHECK(r.err == NULL);
    }
    CHECK_EQ_INT(w->srv.accepts, 3);
    CHECK_EQ_INT(w->srv.handshakes, 3);
    CHECK_EQ_INT(w->srv.resumed, 2);
    /* Unchecked calls are another key: a full handshake first, then resumption of their own. */
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), NULL, 1, 2000, &r) == 0);
    CHECK(r.err == NULL);
    CHECK_EQ_INT(w->srv.resumed, 2);
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), NULL, 1, 2000, &r) == 0);
    CHECK_EQ_INT(w->srv.resumed, 3);
    /* The system's store never trusted this server: its key has no session to resume, and
     * the check still fails. */
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), NULL, 0, 2000, &r) == 0);
    CHECK_CONTAINS(r.err ? r.err : "", "certificate verify failed");
    CHECK_EQ_INT(w->srv.resumed, 3);
    result_free(&r);
    tworld_close(&t);
}

/* A server that reads the ClientHello and never answers: the deadline ends the call, and a
 * call cancelled mid-handshake leaves nothing behind. */
static void test_https_stalled_handshake(void) {
    tworld_t t;
    REQUIRE(tworld_open(&t, "IP:127.0.0.1") == 0);
    t.w.srv.stall = 1;
    result_t r = {0};
    uint64_t start = uv_hrtime();
    REQUIRE(tcall(&t, turl(&t, "127.0.0.1", "/cl"), t.files.cert, 0, 150, &r) == 0);
    CHECK_EQ_STR(r.err ? r.err : "", "timeout");
    CHECK((uv_hrtime() - start) / 1000000 < 1000);
    CHECK_EQ_UINT(stats(&t.w).timeouts, 1);
    fr_hrequest_t rq = {.method = "GET", .url = turl(&t, "127.0.0.1", "/cl"),
                        .ca_file = t.files.cert};
    fr_hcall_t *c;
    REQUIRE(fr_hclient_request(t.w.client, &rq, on_result, &r, &c, NULL) == 0);
    int accepts = t.w.srv.accepts;
    wait_for(&t.w.loop, &t.w.srv.accepts, accepts + 1);
    spin(&t.w.loop, 20);
    fr_hcall_cancel(c);
    spin(&t.w.loop, 20);
    CHECK_EQ_INT(r.calls, 1);
    CHECK_EQ_UINT(stats(&t.w).in_flight, 0);
    result_free(&r);
    tworld_close(&t);
}

/* https to a server that speaks cleartext: the handshake fails with OpenSSL's reason. */
static void test_https_to_cleartext(void) {
    world_t w;
    REQUIRE(world_open(&w, NULL) == 0);
    w.srv.plain_400 = 1;
    result_t r = {0};
    char u[96];
    snprintf(u, sizeof u, "https://127.0.0.1:%d/cl", w.srv.port);
    fr_hrequest_t rq = {.method = "GET", .url = u, .timeout_ms = 2000, .insecure = 1};
    fr_hcall_t *c;
    REQUIRE(fr_hclient_request(w.client, &rq, on_result, &r, &c, NULL) == 0);
    REQUIRE(wait_for(&w.loop, &r.calls, 1));
    CHECK_CONTAINS(r.err ? r.err : "", "tls handshake failed: ");
    CHECK_EQ_INT(r.status, 0);
    result_free(&r);
    world_close(&w);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_get_content_length);
    FR_RUN(test_request_bytes);
    FR_RUN(test_bodies);
    FR_RUN(test_broken_responses);
    FR_RUN(test_keep_alive_reuse);
    FR_RUN(test_pool_limits_and_idle);
    FR_RUN(test_pool_drops_closed);
    FR_RUN(test_stale_retry);
    FR_RUN(test_timeout);
    FR_RUN(test_refused);
    FR_RUN(test_failure_at_start_comes_later);
    FR_RUN(test_response_too_large);
    FR_RUN(test_max_in_flight_and_cancel);
    FR_RUN(test_cancel_stages);
    FR_RUN(test_refused_input);
    FR_RUN(test_ipv6_literal);
    FR_RUN(test_close_with_calls_in_flight);
    FR_RUN(test_https_with_ca);
    FR_RUN(test_https_refused_certificates);
    FR_RUN(test_https_resumption);
    FR_RUN(test_https_stalled_handshake);
    FR_RUN(test_https_to_cleartext);
    return FR_TEST_END();
}
