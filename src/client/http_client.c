/* The backend HTTP client: see client/http_client.h.
 *
 *   fr_hclient_request ─► checks (URL, method, headers) ─► the request bytes, built once
 *        └─► a pooled connection to host:port ──────────────────────────► write ─► read
 *            or numeric host ─► connect ──────────────────────────────────┘
 *            or name ─► uv_getaddrinfo ─► connect ──────────────────────────┘
 *   read ─► fr_hres_feed ─► DONE ─► the connection back to the pool (or closed) ─► cb
 *
 * Who owns what: the client owns its calls (until their deadline timer has closed), its
 * connections (until their handle has closed) and the pools; a call owns its request bytes,
 * its response reader and the strings it was given. A name lookup cannot be taken back from
 * libuv, so it is its own allocation and outlives a call that ends first. The client itself
 * goes once its last handle has closed and its last lookup has come back. */
#include "client/http_client.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/hash.h"
#include "base/list.h"
#include "base/util.h"
#include "client/http_response.h"
#include "client/https.h"

typedef struct hconn_s hconn_t;

/* The idle connections to one host:port; it exists while it holds one. */
typedef struct {
    fr_hnode_t hnode;
    char *key;      /* owned */
    fr_list_t idle; /* hconn_t.pool_link, the most recently used first */
    unsigned nidle;
} pool_t;

struct hconn_s {
    uv_tcp_t tcp;                 /* the struct is freed in this handle's close callback */
    uv_connect_t connect;
    uv_write_t write;             /* cleartext: the request */
    fr_hclient_t *client;
    fr_hcall_t *call;             /* the call it serves; NULL while idle or closing */
    char *key;                    /* owned: the pool it may go back to */
    struct sockaddr_storage addr; /* the peer: a retry dials it again */
    char *wbuf;                   /* owned: request bytes a write still reads after its call */
    fr_tls_t tls;                 /* https: the session (its SSL owned), else empty */
    pool_t *pool;                 /* while idle */
    fr_list_t link;               /* client->conns, until it starts closing */
    fr_list_t pool_link;          /* pool->idle, while idle */
    fr_list_t idle_link;          /* client->idle (longest idle first), while idle */
    uint64_t idle_since;          /* loop time */
    unsigned writing;             /* writes in flight */
    unsigned closing : 1;
    unsigned pooled : 1;          /* it was taken from the pool: the peer may have dropped it */
    unsigned is_tls : 1;          /* https: every byte goes through tls */
};

/* Ciphertext the socket did not take at once. */
typedef struct {
    uv_write_t req;
    hconn_t *conn;
    char *buf; /* owned */
} twrite_t;

/* A name being looked up. */
typedef struct {
    uv_getaddrinfo_t req;
    fr_hclient_t *client;
    fr_hcall_t *call; /* NULL once the call no longer waits for the answer */
} lookup_t;

struct fr_hcall_s {
    uv_timer_t timer;             /* the deadline; the struct is freed in its close callback */
    fr_hclient_t *client;
    fr_hcall_cb cb;
    void *ctx;
    fr_list_t link;               /* client->calls while in flight */
    char *host;                   /* owned: the URL's host, without brackets */
    char *key;                    /* owned: the pool's key */
    int port;
    uint64_t timeout_ms;
    char *req;                    /* owned: the request bytes, kept for one retry */
    size_t req_len;
    lookup_t *lookup;             /* while the host's name resolves */
    hconn_t *conn;                /* while connecting or connected */
    struct sockaddr_storage addr; /* where conn goes */
    fr_hres_t res;                /* the response being read */
    const char *err;              /* a failure met inside fr_hclient_request, told later */
    fr_tls_ctx_t *tls_ctx;        /* https: the trust store (the client's), else NULL */
    char why[200];                /* a failure's text when it is made for this call */
    unsigned idempotent : 1;      /* may be sent again after a stale connection */
    unsigned verify : 1;          /* https: check the server's certificate and name */
    unsigned head : 1;
    unsigned retried : 1;
    unsigned got_bytes : 1;       /* a response byte arrived: it is too late to retry */
    unsigned starting : 1;        /* inside fr_hclient_request: cb must wait */
    unsigned done : 1;
};

struct fr_hclient_s {
    uv_loop_t *loop;
    fr_hclient_limits_t limits;
    fr_list_t calls;       /* fr_hcall_t in flight */
    fr_list_t conns;       /* hconn_t not closing */
    fr_list_t idle;        /* hconn_t.idle_link, longest idle first */
    fr_htable_t pools;     /* pool_t by key */
    uv_timer_t sweep;      /* closes connections idle past limits.idle_ms */
    fr_hclient_stats_t stats;
    unsigned holds;        /* handles not closed yet and lookups not back yet */
    int closing;
    fr_https_t *https;     /* owned: the trust stores https calls use, made on the first */
    fr_buf_t tls_out;      /* ciphertext being made; empty between calls into tls */
    char why[300];         /* fr_hclient_request's -1 text when it is made for the call */
    char read_buf[65536];  /* every read lands here and is parsed at once */
    char plain[FR_TLS_RECORD]; /* a record's plaintext, parsed at once */
};

static const char TIMEOUT[] = "timeout";

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void tls_input(hconn_t *k, const char *in, size_t n);
static void call_fail(fr_hcall_t *call, const char *err);
static void call_broken(fr_hcall_t *call, const char *err);

/* What a script sees for a libuv error: the texts the header promises, else libuv's own. */
static const char *err_text(int status) {
    switch (status) {
    case UV_ECONNREFUSED:
        return "connection refused";
    case UV_ECONNRESET:
        return "connection reset";
    case UV_EOF:
    case UV_EPIPE:
        return "connection closed";
    case UV_ETIMEDOUT:
        return TIMEOUT;
    default:
        return uv_strerror(status);
    }
}

static void client_unhold(fr_hclient_t *c) {
    if (--c->holds > 0 || !c->closing)
        return;
    fr_htable_close(&c->pools);
    fr_https_free(c->https);
    fr_buf_free(&c->tls_out);
    free(c);
}

/* ---- pools ---------------------------------------------------------------------------------- */

static pool_t *pool_find(fr_hclient_t *c, const char *key) {
    fr_hnode_t *n = fr_htable_find(&c->pools, key, strlen(key));
    return n ? FR_HTABLE_ENTRY(n, pool_t, hnode) : NULL;
}

static pool_t *pool_new(fr_hclient_t *c, const char *key) {
    pool_t *p = fr_calloc(1, sizeof *p);
    p->key = fr_strdup(key);
    fr_list_init(&p->idle);
    fr_htable_insert(&c->pools, &p->hnode, p->key, strlen(p->key));
    return p;
}

/* Takes an idle connection out of its pool (and the pool away once empty). */
static void conn_unidle(hconn_t *k) {
    fr_hclient_t *c = k->client;
    pool_t *p = k->pool;
    fr_list_remove(&k->pool_link);
    fr_list_remove(&k->idle_link);
    k->pool = NULL;
    c->stats.idle--;
    uv_ref((uv_handle_t *)&k->tcp);
    if (--p->nidle == 0) {
        fr_htable_remove(&c->pools, &p->hnode);
        free(p->key);
        free(p);
    }
}

static void on_conn_closed(uv_handle_t *h) {
    hconn_t *k = FR_CONTAINER_OF((uv_tcp_t *)h, hconn_t, tcp);
    fr_hclient_t *c = k->client;
    fr_tls_close(&k->tls); /* before the key its session points at */
    free(k->wbuf);
    free(k->key);
    free(k);
    client_unhold(c);
}

/* TLS's close_notify, when the session is up and nothing is queued before it (best effort: a
 * socket that cannot take it at once does without). Besides telling the server, it keeps the
 * session resumable: OpenSSL will not resume one that ended without it. */
static void tls_goodbye(hconn_t *k) {
    fr_buf_t *out = &k->client->tls_out;
    if (!k->is_tls || k->writing)
        return;
    fr_tls_shutdown(&k->tls, out);
    if (out->len) {
        uv_buf_t b = uv_buf_init(out->p, (unsigned)out->len);
        (void)uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    }
    out->len = 0;
}

/* A pending connect or write is called back with UV_ECANCELED before the handle closes. */
static void conn_close(hconn_t *k) {
    if (k->closing)
        return;
    k->closing = 1;
    tls_goodbye(k);
    k->call = NULL;
    if (k->pool)
        conn_unidle(k);
    fr_list_remove(&k->link);
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed);
}

static void on_sweep(uv_timer_t *t) {
    fr_hclient_t *c = FR_CONTAINER_OF(t, fr_hclient_t, sweep);
    uint64_t now = uv_now(c->loop);
    fr_list_t *l;
    while ((l = fr_list_first(&c->idle))) {
        hconn_t *k = FR_LIST_ENTRY(l, hconn_t, idle_link);
        if (k->idle_since + c->limits.idle_ms > now) {
            uv_timer_start(t, on_sweep, k->idle_since + c->limits.idle_ms - now, 0);
            return;
        }
        conn_close(k);
    }
}

/* Keeps a connection for the next call to its host:port. A full pool keeps the ones it has:
 * they are as good, and closing this one costs nothing more. */
static void pool_put(fr_hclient_t *c, hconn_t *k) {
    pool_t *p = pool_find(c, k->key);
    if (c->closing || (p ? p->nidle : 0) >= c->limits.max_idle_per_host) {
        conn_close(k);
        return;
    }
    if (!p)
        p = pool_new(c, k->key);
    k->call = NULL;
    k->pool = p;
    fr_list_insert_head(&p->idle, &k->pool_link);
    p->nidle++;
    k->idle_since = uv_now(c->loop);
    fr_list_insert_tail(&c->idle, &k->idle_link);
    c->stats.idle++;
    /* The pool alone never keeps the loop running. */
    uv_unref((uv_handle_t *)&k->tcp);
    if (!uv_is_active((uv_handle_t *)&c->sweep))
        uv_timer_start(&c->sweep, on_sweep, c->limits.idle_ms, 0);
}

/* The most recently used idle connection to key: the likeliest to be still open. */
static hconn_t *pool_take(fr_hclient_t *c, const char *key) {
    pool_t *p = pool_find(c, key);
    fr_list_t *l = p ? fr_list_first(&p->idle) : NULL;
    if (!l)
        return NULL;
    hconn_t *k = FR_LIST_ENTRY(l, hconn_t, pool_link);
    conn_unidle(k);
    k->pooled = 1;
    return k;
}

/* ---- a call's connection ------------------------------------------------------------------ */

static hconn_t *conn_new(fr_hclient_t *c, const char *key, const struct sockaddr_storage *addr) {
    hconn_t *k = fr_calloc(1, sizeof *k);
    k->client = c;
    k->key = fr_strdup(key);
    k->addr = *addr;
    uv_tcp_init(c->loop, &k->tcp);
    c->holds++;
    fr_list_insert_tail(&c->conns, &k->link);
    return k;
}

/* The call lets its connection go, closed. A write in flight still reads the request bytes:
 * they go with the connection, and a call that sends them again keeps a copy. */
static void call_drop_conn(fr_hcall_t *call, int again) {
    hconn_t *k = call->conn;
    if (!k)
        return;
    call->conn = NULL;
    if (k->writing && !k->is_tls) {
        k->wbuf = call->req;
        call->req = again ? fr_strndup(k->wbuf, call->req_len) : NULL;
    }
    conn_close(k);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    hconn_t *k = FR_CONTAINER_OF((uv_tcp_t *)h, hconn_t, tcp);
    buf->base = k->client->read_buf;
    buf->len = sizeof k->client->read_buf;
}

static void on_write(uv_write_t *w, int status) {
    hconn_t *k = FR_CONTAINER_OF(w, hconn_t, write);
    k->writing--;
    free(k->wbuf);
    k->wbuf = NULL;
    if (status < 0 && !k->closing && k->call)
        call_broken(k->call, err_text(status));
}

static void on_twrite(uv_write_t *req, int status) {
    twrite_t *w = FR_CONTAINER_OF(req, twrite_t, req);
    hconn_t *k = w->conn;
    free(w->buf);
    free(w);
    k->writing--;
    if (status < 0 && !k->closing && k->call)
        call_broken(k->call, err_text(status));
}

/* Sends the ciphertext in client->tls_out and empties it: what the socket takes at once is
 * gone, the rest is copied and queued behind the writes in flight (uv_try_write takes nothing
 * while some are queued, so records keep their order). Returns 0 or a libuv error. */
static int tls_flush(hconn_t *k) {
    fr_buf_t *out = &k->client->tls_out;
    if (out->len == 0)
        return 0;
    uv_buf_t b = uv_buf_init(out->p, (unsigned)out->len);
    ssize_t sent = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (sent == UV_EAGAIN)
        sent = 0;
    int rc = 0;
    if (sent < 0) {
        rc = (int)sent;
    } else if ((size_t)sent < out->len) {
        twrite_t *w = fr_calloc(1, sizeof *w);
        w->conn = k;
        w->buf = fr_strndup(out->p + sent, out->len - (size_t)sent);
        b = uv_buf_init(w->buf, (unsigned)(out->len - (size_t)sent));
        rc = uv_write(&w->req, (uv_stream_t *)&k->tcp, &b, 1, on_twrite);
        if (rc < 0) {
            free(w->buf);
            free(w);
        } else {
            k->writing++;
        }
    }
    out->len = 0;
    if (out->cap > (1u << 20))
        fr_buf_free(out);
    return rc;
}

/* The request as records; before the handshake's end, nothing yet (its end sends it). */
static void call_send_tls(fr_hcall_t *call) {
    hconn_t *k = call->conn;
    if (!k->tls.ready)
        return;
    struct iovec v = {call->req, call->req_len};
    if (fr_tls_write(&k->tls, &v, 1, &call->client->tls_out) < 0) {
        call->client->tls_out.len = 0;
        snprintf(call->why, sizeof call->why, "tls error: %s", fr_tls_why());
        call_fail(call, call->why);
        return;
    }
    int rc = tls_flush(k);
    if (rc < 0)
        call_broken(call, err_text(rc));
}

static void call_send(fr_hcall_t *call) {
    hconn_t *k = call->conn;
    if (k->is_tls) {
        call_send_tls(call);
        return;
    }
    uv_buf_t b = uv_buf_init(call->req, (unsigned)call->req_len);
    int rc = uv_write(&k->write, (uv_stream_t *)&k->tcp, &b, 1, on_write);
    if (rc < 0) {
        call_broken(call, err_text(rc));
        return;
    }
    k->writing++;
}

static void on_connect(uv_connect_t *req, int status) {
    hconn_t *k = FR_CONTAINER_OF(req, hconn_t, connect);
    if (k->closing)
        return; /* its call ended first */
    fr_hcall_t *call = k->call;
    int rc = status;
    if (rc == 0) {
        uv_tcp_nodelay(&k->tcp, 1);
        rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
    }
    if (rc < 0) {
        call_fail(call, err_text(rc));
        return;
    }
    if (k->is_tls)
        tls_input(k, NULL, 0); /* the ClientHello */
    else
        call_send(call);
}

static void call_dial(fr_hcall_t *call) {
    hconn_t *k = conn_new(call->client, call->key, &call->addr);
    call->conn = k;
    k->call = call;
    if (call->tls_ctx) {
        if (fr_https_open(&k->tls, call->client->https, call->tls_ctx, call->host, call->verify,
                          k->key) < 0) {
            call_fail(call, "tls handshake failed: cannot start a session");
            return;
        }
        k->is_tls = 1;
    }
    int rc = uv_tcp_connect(&k->connect, &k->tcp, (const struct sockaddr *)&call->addr,
                            on_connect);
    if (rc < 0)
        call_fail(call, err_text(rc));
}

/* ---- the end of a call ------------------------------------------------------------------- */

static void on_call_closed(uv_handle_t *h) {
    fr_hcall_t *call = FR_CONTAINER_OF((uv_timer_t *)h, fr_hcall_t, timer);
    fr_hclient_t *c = call->client;
    free(call);
    client_unhold(c);
}

/* Ends the call (its connection is already settled) and, unless it was cancelled, answers.
 * The struct lives on until the deadline's handle has closed, after cb returns. */
static void call_end(fr_hcall_t *call, const fr_hresponse_t *res, const char *err, int answer) {
    fr_hclient_t *c = call->client;
    call->done = 1;
    fr_list_remove(&call->link);
    c->stats.in_flight--;
    if (call->lookup) {
        call->lookup->call = NULL;
        uv_cancel((uv_req_t *)&call->lookup->req);
        call->lookup = NULL;
    }
    uv_close((uv_handle_t *)&call->timer, on_call_closed);
    if (answer)
        call->cb(call->ctx, res, err);
    fr_hres_free(&call->res);
    free(call->req);
    free(call->host);
    free(call->key);
    call->req = call->host = call->key = NULL;
}

static void on_deadline(uv_timer_t *t) {
    fr_hcall_t *call = FR_CONTAINER_OF(t, fr_hcall_t, timer);
    call_fail(call, call->err ? call->err : TIMEOUT);
}

/* A failure inside fr_hclient_request is told at the next turn of the loop, through the
 * deadline's timer, so cb never runs before the caller has its call. */
static void call_fail(fr_hcall_t *call, const char *err) {
    fr_hclient_t *c = call->client;
    call_drop_conn(call, 0);
    if (call->starting) {
        if (!call->err)
            call->err = err;
        uv_timer_start(&call->timer, on_deadline, 0, 0);
        return;
    }
    c->stats.failures++;
    if (err == TIMEOUT)
        c->stats.timeouts++;
    call_end(call, NULL, err, 1);
}

static void call_succeed(fr_hcall_t *call) {
    hconn_t *k = call->conn;
    /* A connection still writing was answered before the server read all of the request: it
     * is in no state to carry another. */
    if (fr_hres_reusable(&call->res) && !k->writing) {
        call->conn = NULL;
        pool_put(call->client, k);
    } else {
        call_drop_conn(call, 0);
    }
    call_end(call, fr_hres_response(&call->res), NULL, 1);
}

/* The connection broke before the response was complete. A pooled one the server had
 * dropped before it could see this request is the usual cause when nothing came back: an
 * idempotent call goes once more, on a new connection to the same address. */
static void call_broken(fr_hcall_t *call, const char *err) {
    hconn_t *k = call->conn;
    if (k->pooled && !call->got_bytes && !call->retried && call->idempotent) {
        call->retried = 1;
        call->client->stats.retries++;
        call_drop_conn(call, 1);
        fr_hres_free(&call->res);
        fr_hres_init(&call->res, call->client->limits.max_response, call->head);
        call_dial(call);
        return;
    }
    call_fail(call, err);
}

/* The peer closed (a FIN, or TLS's close_notify) while the call waits. */
static void call_eof(fr_hcall_t *call) {
    if (fr_hres_eof(&call->res) == FR_HRES_DONE)
        call_succeed(call);
    else if (call->conn->is_tls && !call->conn->tls.ready)
        call_fail(call, "tls handshake failed: the server closed the connection");
    else
        call_broken(call, call->res.err);
}

/* Response bytes for the call; `more`: other bytes follow them. Returns 1 once the call has
 * ended (its connection may already serve another call). */
static int call_input(fr_hcall_t *call, const char *p, size_t n, int more) {
    call->got_bytes = 1;
    size_t used;
    fr_hres_state_t st = fr_hres_feed(&call->res, p, n, &used);
    if (st == FR_HRES_DONE) {
        /* Records after the response are not its: the connection is in no state to reuse. */
        if (more)
            call->res.leftover = 1;
        call_succeed(call);
        return 1;
    }
    if (st == FR_HRES_FAIL) {
        call_fail(call, call->res.err);
        return 1;
    }
    return 0;
}

/* Ciphertext from the socket (none when the connection opens: the ClientHello goes out).
 * What tls must send meanwhile (its handshake flights, alerts) leaves first; the request goes
 * once the handshake is done; plaintext is the response, record by record. An idle
 * connection that receives anything but tls's own messages (a ticket) is closed. */
static void tls_input(hconn_t *k, const char *in, size_t n) {
    fr_hclient_t *c = k->client;
    for (;;) {
        int was_ready = k->tls.ready;
        ssize_t got = fr_tls_read(&k->tls, &in, &n, c->plain, sizeof c->plain, &c->tls_out);
        fr_hcall_t *call = k->call;
        if (got == FR_TLS_ERROR && call) {
            if (was_ready)
                snprintf(call->why, sizeof call->why, "tls error: %s", fr_tls_why());
            else
                fr_https_why(&k->tls, call->why, sizeof call->why);
        }
        int rc = tls_flush(k);
        if (!call) {
            if (rc < 0 || got != FR_TLS_AGAIN)
                conn_close(k);
            return;
        }
        if (got == FR_TLS_ERROR) {
            call_fail(call, call->why);
            return;
        }
        if (rc < 0) {
            call_broken(call, err_text(rc));
            return;
        }
        if (got == FR_TLS_CLOSED) {
            call_eof(call);
            return;
        }
        if (!was_ready && k->tls.ready) {
            call_send(call);
            if (k->closing || k->call != call)
                return;
        }
        if (got == FR_TLS_AGAIN || call_input(call, c->plain, (size_t)got, n > 0))
            return;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    hconn_t *k = FR_CONTAINER_OF((uv_tcp_t *)s, hconn_t, tcp);
    fr_hcall_t *call = k->call;
    if (nread == 0 || k->closing)
        return;
    if (nread > 0 && k->is_tls) {
        tls_input(k, buf->base, (size_t)nread);
        return;
    }
    if (!call) {
        /* Idle: the server closed it, or sent what nobody asked for. */
        conn_close(k);
        return;
    }
    if (nread == UV_EOF)
        call_eof(call);
    else if (nread < 0)
        call_broken(call, err_text((int)nread));
    else
        call_input(call, buf->base, (size_t)nread, 0);
}

/* ---- name lookup ------------------------------------------------------------------------- */

static void on_lookup(uv_getaddrinfo_t *req, int status, struct addrinfo *ai) {
    lookup_t *l = FR_CONTAINER_OF(req, lookup_t, req);
    fr_hclient_t *c = l->client;
    fr_hcall_t *call = l->call;
    if (call) {
        call->lookup = NULL;
        if (status < 0 || !ai || ai->ai_addrlen > sizeof call->addr ||
            (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) {
            call_fail(call, "host not found");
        } else {
            memcpy(&call->addr, ai->ai_addr, ai->ai_addrlen);
            call_dial(call);
        }
    }
    uv_freeaddrinfo(ai);
    free(l);
    client_unhold(c);
}

static void call_lookup(fr_hcall_t *call) {
    fr_hclient_t *c = call->client;
    lookup_t *l = fr_calloc(1, sizeof *l);
    l->client = c;
    l->call = call;
    char port[8];
    snprintf(port, sizeof port, "%d", call->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    int rc = uv_getaddrinfo(c->loop, &l->req, on_lookup, call->host, port, &hints);
    if (rc < 0) {
        free(l);
        call_fail(call, "host not found");
        return;
    }
    c->holds++;
    call->lookup = l;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* The parts of an http:// or https:// URL, pointing into it. */
typedef struct {
    const char *host;   /* without brackets */
    size_t host_len;
    const char *target; /* path and query, fragment dropped; may be empty */
    size_t target_len;
    int port;
    int ipv6;
    int tls;            /* https */
} url_t;

static int is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int all_in(const char *s, size_t n, const char *set) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!alnum && (!ch || !strchr(set, ch)))
            return 0;
    }
    return 1;
}

/* The scheme's own port: the URL need not name it. */
static int default_port(const url_t *u) {
    return u->tls ? 443 : 80;
}

/* The port after the host: empty (the scheme's) or 1 to 65535. */
static const char *url_port(const char *s, const char *end, url_t *u) {
    u->port = default_port(u);
    if (s == end)
        return NULL;
    if (*s != ':' || end - s > 6)
        return "url has an invalid port";
    long v = 0;
    for (const char *p = s + 1; p < end; p++) {
        if (*p < '0' || *p > '9')
            return "url has an invalid port";
        v = v * 10 + (*p - '0');
    }
    if (end - s > 1 && (v < 1 || v > 65535))
        return "url has an invalid port";
    if (end - s > 1)
        u->port = (int)v;
    return NULL;
}

/* host[:port] or [IPv6][:port]: names are letters, digits, '-', '.' and '_'. */
static const char *url_authority(const char *s, size_t n, url_t *u) {
    const char *end = s + n, *after;
    if (memchr(s, '@', n))
        return "url may not have user info";
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return "url has an invalid host";
        u->host = s + 1;
        u->host_len = (size_t)(close - s - 1);
        u->ipv6 = 1;
        after = close + 1;
        char ip[64];
        unsigned char bin[16];
        if (u->host_len >= sizeof ip)
            return "url has an invalid host";
        memcpy(ip, u->host, u->host_len);
        ip[u->host_len] = '\0';
        if (uv_inet_pton(AF_INET6, ip, bin) != 0)
            return "url has an invalid host";
    } else {
        const char *colon = memchr(s, ':', n);
        u->host = s;
        u->host_len = (size_t)((colon ? colon : end) - s);
        after = s + u->host_len;
        if (!all_in(u->host, u->host_len, "-._"))
            return "url has an invalid host";
    }
    if (u->host_len == 0 || u->host_len > 253)
        return "url has an invalid host";
    return url_port(after, end, u);
}

static const char *url_parse(const char *url, url_t *u) {
    static const char scheme[] = "url must start with http:// or https://";
    memset(u, 0, sizeof *u);
    if (!url)
        return scheme;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "url has a space or a control character";
    if (strncasecmp(url, "https://", 8) == 0)
        u->tls = 1;
    else if (strncasecmp(url, "http://", 7) != 0)
        return scheme;
    const char *auth = url + (u->tls ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    const char *err = url_authority(auth, alen, u);
    if (err)
        return err;
    u->target = auth + alen;
    u->target_len = strcspn(u->target, "#");
    return NULL;
}

static const char *check_method(const char *m) {
    size_t n = m ? strlen(m) : 0;
    if (n == 0 || n > 32)
        return "invalid method";
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)m[i]))
            return "invalid method";
    /* CONNECT turns the connection into a tunnel, which is not what a call is. */
    if (strcmp(m, "CONNECT") == 0)
        return "method CONNECT is not supported";
    return NULL;
}

static int name_is(const fr_hheader_t *h, const char *name) {
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Names are tokens and values hold no line break or NUL, so no header can smuggle another
 * line; the headers the client writes itself are the client's. */
static const char *check_headers(const fr_hheader_t *hs, size_t n) {
    static const char *const own[][2] = {
        {"Host", "header Host is not allowed"},
        {"Content-Length", "header Content-Length is not allowed"},
        {"Connection", "header Connection is not allowed"},
        {"Transfer-Encoding", "header Transfer-Encoding is not allowed"},
    };
    if (n && !hs)
        return "invalid header name";
    for (size_t i = 0; i < n; i++) {
        const fr_hheader_t *h = &hs[i];
        if (!h->name || h->name_len == 0)
            return "invalid header name";
        for (size_t j = 0; j < h->name_len; j++)
            if (!is_tchar((unsigned char)h->name[j]))
                return "invalid header name";
        if (h->value_len && !h->value)
            return "invalid header value";
        for (size_t j = 0; j < h->value_len; j++)
            if (h->value[j] == '\r' || h->value[j] == '\n' || h->value[j] == '\0')
                return "invalid header value";
        for (size_t j = 0; j < FR_ARRAY_LEN(own); j++)
            if (name_is(h, own[j][0]))
                return own[j][1];
    }
    return NULL;
}

/* host, bracketed when IPv6, and :port unless the scheme's: the Host header and, lower-cased,
 * part of the pool's key. */
static void put_hostport(fr_buf_t *b, const url_t *u) {
    if (u->ipv6)
        fr_buf_putc(b, '[');
    fr_buf_put(b, u->host, u->host_len);
    if (u->ipv6)
        fr_buf_putc(b, ']');
    if (u->port != default_port(u))
        fr_buf_printf(b, ":%d", u->port);
}

/* The whole request in one buffer, for one write. */
static char *request_bytes(const fr_hrequest_t *rq, const url_t *u, size_t *len) {
    fr_buf_t b = {0};
    size_t body_len = rq->body ? rq->body_len : 0;
    fr_buf_reserve(&b, 256 + u->target_len + body_len);
    fr_buf_puts(&b, rq->method);
    fr_buf_putc(&b, ' ');
    if (u->target_len == 0 || u->target[0] != '/')
        fr_buf_putc(&b, '/');
    fr_buf_put(&b, u->target, u->target_len);
    fr_buf_puts(&b, " HTTP/1.1\r\nHost: ");
    put_hostport(&b, u);
    fr_buf_puts(&b, "\r\n");
    int agent = 0;
    for (size_t i = 0; i < rq->nheaders; i++) {
        const fr_hheader_t *h = &rq->headers[i];
        agent |= name_is(h, "User-Agent");
        fr_buf_put(&b, h->name, h->name_len);
        fr_buf_puts(&b, ": ");
        fr_buf_put(&b, h->value, h->value_len);
        fr_buf_puts(&b, "\r\n");
    }
    const char *m = rq->method;
    if (body_len || !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH"))
        fr_buf_printf(&b, "Content-Length: %zu\r\n", body_len);
    if (!agent)
        fr_buf_puts(&b, "User-Agent: freshet\r\n");
    fr_buf_puts(&b, "\r\n");
    fr_buf_put(&b, rq->body, body_len);
    return fr_buf_take(&b, len);
}

static fr_hcall_t *call_new(fr_hclient_t *c, const fr_hrequest_t *rq, const url_t *u,
                            fr_tls_ctx_t *tls_ctx, fr_hcall_cb cb, void *ctx) {
    fr_hcall_t *call = fr_calloc(1, sizeof *call);
    call->client = c;
    call->cb = cb;
    call->ctx = ctx;
    call->host = fr_strndup(u->host, u->host_len);
    call->port = u->port;
    call->tls_ctx = tls_ctx;
    call->verify = !rq->insecure;
    /* A connection goes back to calls that would have made the same one: same scheme, host and
     * port, and for https the same trust (one checked against another CA file, or not checked,
     * must not carry a call that asks for more). */
    fr_buf_t key = {0};
    fr_buf_puts(&key, u->tls ? "https://" : "http://");
    size_t from = key.len;
    put_hostport(&key, u);
    for (size_t i = from; i < key.len; i++)
        if (key.p[i] >= 'A' && key.p[i] <= 'Z')
            key.p[i] = (char)(key.p[i] - 'A' + 'a');
    if (u->tls && rq->insecure)
        fr_buf_puts(&key, " unverified");
    else if (u->tls && rq->ca_file)
        fr_buf_printf(&key, " ca=%s", rq->ca_file);
    call->key = fr_buf_take(&key, NULL);
    call->req = request_bytes(rq, u, &call->req_len);
    call->timeout_ms = rq->timeout_ms;
    const char *m = rq->method;
    call->head = strcmp(m, "HEAD") == 0;
    call->idempotent = call->head || !strcmp(m, "GET") || !strcmp(m, "PUT") ||
                       !strcmp(m, "DELETE") || !strcmp(m, "OPTIONS");
    fr_hres_init(&call->res, c->limits.max_response, call->head);
    uv_timer_init(c->loop, &call->timer);
    c->holds++;
    fr_list_insert_tail(&c->calls, &call->link);
    c->stats.in_flight++;
    c->stats.calls++;
    return call;
}

/* A pooled connection, else the address (numeric hosts need no lookup), else the lookup. */
static void call_begin(fr_hcall_t *call, const url_t *u) {
    fr_hclient_t *c = call->client;
    if (call->timeout_ms)
        uv_timer_start(&call->timer, on_deadline, call->timeout_ms, 0);
    hconn_t *k = pool_take(c, call->key);
    if (k) {
        c->stats.reused++;
        call->conn = k;
        k->call = call;
        call->addr = k->addr;
        call_send(call);
        return;
    }
    /* The URL's check made sure an IPv6 host is an address. */
    if (u->ipv6 ? uv_ip6_addr(call->host, call->port, (struct sockaddr_in6 *)&call->addr) == 0
                : uv_ip4_addr(call->host, call->port, (struct sockaddr_in *)&call->addr) == 0)
        call_dial(call);
    else
        call_lookup(call);
}

static int refuse(const char **err, const char *why) {
    if (err)
        *err = why;
    return -1;
}

int fr_hclient_request(fr_hclient_t *c, const fr_hrequest_t *rq, fr_hcall_cb cb, void *ctx,
                       fr_hcall_t **out, const char **err) {
    if (out)
        *out = NULL;
    if (c->closing)
        return refuse(err, "shutting down");
    if (!rq || !cb)
        return refuse(err, "invalid request");
    url_t u;
    const char *why = url_parse(rq->url, &u);
    if (!why)
        why = check_method(rq->method);
    if (!why)
        why = check_headers(rq->headers, rq->nheaders);
    if (!why && rq->body && rq->body_len > FR_HCLIENT_MAX_BODY)
        why = "body too large";
    if (why)
        return refuse(err, why);
    if (c->stats.in_flight >= c->limits.max_in_flight)
        return refuse(err, "too many calls in flight");
    fr_tls_ctx_t *tls_ctx = NULL;
    if (u.tls) {
        if (!c->https)
            c->https = fr_https_new();
        /* Unchecked calls need no store; the system's is as good as any to hold them. */
        tls_ctx = fr_https_ctx(c->https, rq->insecure ? NULL : rq->ca_file, c->why, sizeof c->why);
        if (!tls_ctx)
            return refuse(err, c->why);
    }
    fr_hcall_t *call = call_new(c, rq, &u, tls_ctx, cb, ctx);
    if (out)
        *out = call;
    call->starting = 1;
    call_begin(call, &u);
    call->starting = 0;
    return 0;
}

void fr_hcall_cancel(fr_hcall_t *call) {
    if (!call || call->done)
        return;
    call_drop_conn(call, 0);
    call_end(call, NULL, NULL, 0);
}

/* ---- the client ---------------------------------------------------------------------------- */

fr_hclient_t *fr_hclient_new(uv_loop_t *loop, const fr_hclient_limits_t *limits) {
    fr_hclient_t *c = fr_calloc(1, sizeof *c);
    c->loop = loop;
    if (limits)
        c->limits = *limits;
    else
        c->limits.max_idle_per_host = FR_HCLIENT_DEFAULT_IDLE_PER_HOST;
    if (!c->limits.max_response)
        c->limits.max_response = FR_HCLIENT_DEFAULT_MAX_RESPONSE;
    if (!c->limits.max_in_flight)
        c->limits.max_in_flight = FR_HCLIENT_DEFAULT_MAX_IN_FLIGHT;
    if (!c->limits.idle_ms)
        c->limits.idle_ms = FR_HCLIENT_DEFAULT_IDLE_MS;
    fr_list_init(&c->calls);
    fr_list_init(&c->conns);
    fr_list_init(&c->idle);
    fr_htable_init(&c->pools);
    uv_timer_init(loop, &c->sweep);
    uv_unref((uv_handle_t *)&c->sweep);
    c->holds = 1;
    return c;
}

static void on_sweep_closed(uv_handle_t *h) {
    client_unhold(FR_CONTAINER_OF((uv_timer_t *)h, fr_hclient_t, sweep));
}

void fr_hclient_close(fr_hclient_t *c) {
    if (!c || c->closing)
        return;
    c->closing = 1;
    /* Each answer may cancel other calls or start new ones (refused now): take the first
     * call left each time rather than walk a list that changes under the walk. */
    fr_list_t *l;
    while ((l = fr_list_first(&c->calls)))
        call_fail(FR_LIST_ENTRY(l, fr_hcall_t, link), "shutting down");
    while ((l = fr_list_first(&c->conns)))
        conn_close(FR_LIST_ENTRY(l, hconn_t, link));
    uv_close((uv_handle_t *)&c->sweep, on_sweep_closed);
}

void fr_hclient_stats(const fr_hclient_t *c, fr_hclient_stats_t *out) {
    *out = c->stats;
}
