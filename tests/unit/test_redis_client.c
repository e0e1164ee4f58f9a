/* freshet.redis's client against a tiny Redis stand-in on 127.0.0.1:0 in the same loop: the
 * calls of one loop turn leave in one write and their replies come back to the right callers;
 * a refused connection answers at once until the backoff is over; a server that answers
 * nothing gives "timeout" and the connection is dropped; a cancelled call's reply is
 * discarded; the in-flight limit; closing with calls in flight. Each test runs on a loop of its
 * own and ends with every handle closed (uv_loop_close succeeds). */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/buf.h"
#include "base/util.h"
#include "client/redis_client.h"
#include "fr_test.h"

/* ---- the stand-in: answers each command with its number (":0", ":1", …), or nothing ------ */

typedef struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    int mute;          /* read, never answer */
    int reads, commands, eofs;
    uv_tcp_t *conn;    /* the one accepted connection */
    fr_buf_t in;
} server_t;

static void on_sconn_closed(uv_handle_t *h) {
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    static char slab[65536];
    b->base = slab;
    b->len = sizeof slab;
}

static void on_swritten(uv_write_t *w, int status) {
    free(w->data);
    free(w);
}

static void on_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    server_t *srv = s->data;
    if (n < 0) {
        srv->eofs++;
        srv->conn = NULL;
        uv_close((uv_handle_t *)s, on_sconn_closed);
        return;
    }
    if (n == 0)
        return;
    srv->reads++;
    /* Commands are RESP arrays; the test's arguments never start a line with '*'. */
    for (ssize_t i = 0; i < n; i++)
        if (b->base[i] == '*' && (i == 0 || b->base[i - 1] == '\n')) {
            int seq = srv->commands++;
            if (srv->mute)
                continue;
            char *out = fr_malloc(32);
            int len = snprintf(out, 32, ":%d\r\n", seq);
            uv_write_t *w = fr_malloc(sizeof *w);
            w->data = out;
            uv_buf_t ob = uv_buf_init(out, (unsigned)len);
            uv_write(w, s, &ob, 1, on_swritten);
        }
}

static void on_sconnect(uv_stream_t *l, int status) {
    server_t *srv = l->data;
    uv_tcp_t *c = fr_calloc(1, sizeof *c);
    uv_tcp_init(srv->loop, c);
    c->data = srv;
    if (uv_accept(l, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, on_sconn_closed);
        return;
    }
    srv->conn = c;
    uv_read_start((uv_stream_t *)c, on_alloc, on_sread);
}

static void server_start(server_t *srv, uv_loop_t *loop) {
    memset(srv, 0, sizeof *srv);
    srv->loop = loop;
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&srv->listener, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&srv->listener, 16, on_sconnect);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&got, &len);
    srv->port = ntohs(got.sin_port);
}

static void server_stop(server_t *srv) {
    uv_close((uv_handle_t *)&srv->listener, NULL);
    if (srv->conn)
        uv_close((uv_handle_t *)srv->conn, on_sconn_closed);
    srv->conn = NULL;
}

/* A port nothing listens on: bound, then closed. */
static int dead_port(uv_loop_t *loop) {
    server_t srv;
    server_start(&srv, loop);
    int port = srv.port;
    server_stop(&srv);
    uv_run(loop, UV_RUN_NOWAIT);
    return port;
}

/* ---- calls ---------------------------------------------------------------------------------- */

typedef struct {
    int done;
    long long value;   /* an integer reply */
    const char *err;
    int order;         /* when it was answered, among the test's calls */
    fr_rclient_t *again; /* set: call again from the callback */
    int again_rc;
    const char *again_err;
} answer_t;

static int call(fr_rclient_t *c, answer_t *a, uint64_t timeout_ms, fr_rcall_t **rc,
                const char **err);

static int answered;

static void on_answer(void *ctx, const redisReply *reply, const char *err) {
    answer_t *a = ctx;
    a->done++;
    a->err = err;
    a->order = answered++;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        a->value = reply->integer;
    if (a->again) {
        static answer_t later;
        a->again_rc = call(a->again, &later, 100, NULL, &a->again_err);
    }
}

static fr_rclient_t *client(uv_loop_t *loop, int port, unsigned max_in_flight) {
    char url[64], err[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    return fr_rclient_new(loop, url, NULL, NULL, max_in_flight, err, sizeof err);
}

static int call(fr_rclient_t *c, answer_t *a, uint64_t timeout_ms, fr_rcall_t **rc,
                const char **err) {
    const char *argv[] = {"GET", "key"};
    size_t lens[] = {3, 3};
    return fr_rclient_command(c, 2, argv, lens, timeout_ms, on_answer, a, rc, err);
}

static void on_stop_timer(uv_timer_t *t) {
    uv_stop(t->data);
}

static void run_ms(uv_loop_t *loop, uint64_t ms) {
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = loop;
    uv_timer_start(&t, on_stop_timer, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void finish(uv_loop_t *loop, fr_rclient_t *c, server_t *srv) {
    if (c)
        fr_rclient_close(c);
    if (srv)
        server_stop(srv);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_pipeline(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    server_start(&srv, &loop);
    fr_rclient_t *c = client(&loop, srv.port, 100);
    answer_t a[50] = {{0}};
    answered = 0;
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(call(c, &a[i], 1000, NULL, NULL), 0);
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(a[i].done, 0); /* never inside fr_rclient_command */
    run_ms(&loop, 200);
    /* CLIENT SETNAME first, then the 50 calls: all in the one write made once connected. */
    CHECK_EQ_INT(srv.commands, 51);
    CHECK_EQ_INT(srv.reads, 1);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ_INT(a[i].done, 1);
        CHECK(a[i].err == NULL);
        CHECK_EQ_INT(a[i].value, i + 1);
        CHECK_EQ_INT(a[i].order, i);
    }
    fr_rclient_stats_t st;
    fr_rclient_stats(c, &st);
    CHECK_EQ_INT(st.calls, 50);
    CHECK_EQ_INT(st.connects, 1);
    CHECK_EQ_INT(st.in_flight, 0);
    finish(&loop, c, &srv);
}

static void test_refused(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    fr_rclient_t *c = client(&loop, dead_port(&loop), 100);
    answer_t a = {0}, b = {0}, d = {0};
    const char *err = NULL;
    CHECK_EQ_INT(call(c, &a, 1000, NULL, NULL), 0);
    run_ms(&loop, 20);
    CHECK_EQ_INT(a.done, 1);
    CHECK_EQ_STR(a.err, "connection refused");
    /* Within the backoff: refused at once, without a callback. */
    CHECK_EQ_INT(call(c, &b, 1000, NULL, &err), -1);
    CHECK_EQ_STR(err, "connection refused");
    /* After it: tried again. */
    run_ms(&loop, 80);
    CHECK_EQ_INT(call(c, &d, 1000, NULL, NULL), 0);
    run_ms(&loop, 20);
    CHECK_EQ_INT(d.done, 1);
    CHECK_EQ_STR(d.err, "connection refused");
    CHECK_EQ_INT(b.done, 0);
    finish(&loop, c, NULL);
}

static void test_stuck(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    server_start(&srv, &loop);
    srv.mute = 1;
    fr_rclient_t *c = client(&loop, srv.port, 100);
    answer_t a = {0}, b = {0};
    CHECK_EQ_INT(call(c, &a, 100, NULL, NULL), 0);
    CHECK_EQ_INT(call(c, &b, 500, NULL, NULL), 0);
    b.again = c;
    uint64_t t0 = uv_now(&loop);
    run_ms(&loop, 150);
    CHECK_EQ_INT(a.done, 1);
    CHECK_EQ_STR(a.err, "timeout");
    /* Nothing was heard for a whole call's timeout: the connection is dropped, and the call
     * behind it hears so too, before its own deadline. */
    CHECK_EQ_INT(b.done, 1);
    CHECK_EQ_STR(b.err, "timeout");
    CHECK(uv_now(&loop) - t0 < 400);
    /* A hook resumed by that answer and calling again hears it at once (the backoff). */
    CHECK_EQ_INT(b.again_rc, -1);
    CHECK_EQ_STR(b.again_err, "timeout");
    run_ms(&loop, 20);
    CHECK_EQ_INT(srv.eofs, 1);
    fr_rclient_stats_t st;
    fr_rclient_stats(c, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    CHECK_EQ_INT(st.timeouts, 1);
    finish(&loop, c, &srv);
}

static void test_cancel_and_limit(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    server_start(&srv, &loop);
    fr_rclient_t *c = client(&loop, srv.port, 2);
    answer_t a = {0}, b = {0}, d = {0};
    fr_rcall_t *rc = NULL;
    const char *err = NULL;
    answered = 0;
    CHECK_EQ_INT(call(c, &a, 1000, &rc, NULL), 0);
    CHECK_EQ_INT(call(c, &b, 1000, NULL, NULL), 0);
    CHECK_EQ_INT(call(c, &d, 1000, NULL, &err), -1);
    CHECK_EQ_STR(err, "too many redis calls in flight");
    fr_rcall_cancel(rc);
    run_ms(&loop, 100);
    CHECK_EQ_INT(a.done, 0);
    CHECK_EQ_INT(b.done, 1);
    CHECK_EQ_INT(b.value, 2); /* its own reply, not the cancelled call's */
    CHECK_EQ_INT(call(c, &d, 1000, NULL, NULL), 0);
    run_ms(&loop, 50);
    CHECK_EQ_INT(d.value, 3);
    finish(&loop, c, &srv);
}

static void test_close_in_flight(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_t srv;
    server_start(&srv, &loop);
    srv.mute = 1;
    fr_rclient_t *c = client(&loop, srv.port, 10);
    answer_t a = {0};
    CHECK_EQ_INT(call(c, &a, 0, NULL, NULL), 0);
    run_ms(&loop, 30);
    fr_rclient_close(c);
    CHECK_EQ_INT(a.done, 1);
    CHECK_EQ_STR(a.err, "shutting down");
    finish(&loop, NULL, &srv);
}

static void test_bad_url(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[128] = "";
    CHECK(fr_rclient_new(&loop, "http://x", NULL, NULL, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "expected") != NULL);
    /* A Sentinel URL without anyone to name the primary: calls say so at once. */
    fr_rclient_t *c = fr_rclient_new(&loop, "redis-sentinel://127.0.0.1:1/mm", NULL, NULL, 1,
                                     err, sizeof err);
    REQUIRE(c != NULL);
    answer_t a = {0};
    const char *why = NULL;
    CHECK_EQ_INT(call(c, &a, 100, NULL, &why), -1);
    CHECK_EQ_STR(why, "redis primary unknown");
    finish(&loop, c, NULL);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_pipeline);
    FR_RUN(test_refused);
    FR_RUN(test_stuck);
    FR_RUN(test_cancel_and_limit);
    FR_RUN(test_close_in_flight);
    FR_RUN(test_bad_url);
    return FR_TEST_END();
}
