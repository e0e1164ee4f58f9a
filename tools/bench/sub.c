/* Subscriber connections: connect, read, check, measure; see sub.h. */
#include "sub.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "payload.h"
#include "tls.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum {
    SUB_IDLE,       /* not started */
    SUB_CONNECTING, /* connect or request under way, stream not started yet */
    SUB_STREAMING,  /* the stream started */
    SUB_CLOSING,    /* uv_close called */
    SUB_CLOSED,     /* no handle (never opened, or closed) */
    SUB_REDIAL,     /* closed by the storm, waiting for its turn to reconnect (no handle) */
};

static void start_more(fr_subs_t *g);
static void on_event(void *ud, const char *event, size_t elen, const char *data, size_t dlen);
static void on_comment(void *ud);
static void on_retry(void *ud);
static void on_id(void *ud, const char *id, size_t len, int too_long);
static void on_open(void *ud);
static void on_ping(void *ud, const char *payload, size_t len);
static void storm_more(fr_subs_t *g);

static const fr_sse_hooks_t hooks = {on_event, on_comment, on_retry, on_id};
static const fr_ws_hooks_t ws_hooks = {on_open, on_event, on_id, on_ping};

/* xorshift64*: WebSocket keys and masks only need to differ from one frame to the next, not to
 * resist an attacker, and a draw costs a few ns. */
static uint64_t rng_next(fr_subs_t *g) {
    uint64_t x = g->_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g->_rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void handle_closed(fr_subs_t *g) {
    if (--g->_open == 0 && g->_closing) {
        free(g->_subs);
        free(g->_ws);
        free(g->_seqs);
        g->_subs = NULL;
        g->_ws = NULL;
        g->_seqs = NULL;
        if (g->_on_closed)
            g->_on_closed(g);
    }
}

/* A dropped stream reconnects only once its handle is closed: the handle's memory is reused.
 * handle_closed may free the group when it is closing, so nothing is touched after it then. */
static void on_sub_close(uv_handle_t *h) {
    fr_sub_t *sub = FR_CONTAINER_OF(h, fr_sub_t, tcp);
    fr_subs_t *g = sub->group;
    fr_btls_free(sub->ssl);
    sub->ssl = NULL;
    sub->tls_up = 0;
    int redial = sub->dropping && !g->_closing;
    sub->dropping = 0;
    sub->state = redial ? SUB_REDIAL : SUB_CLOSED;
    handle_closed(g);
    if (redial)
        storm_more(g);
}

static void on_timer_close(uv_handle_t *h) {
    handle_closed(h->data);
}

static void close_sub(fr_sub_t *sub) {
    if (sub->state == SUB_CLOSING || sub->state == SUB_CLOSED || sub->state == SUB_IDLE ||
        sub->state == SUB_REDIAL)
        return;
    sub->state = SUB_CLOSING;
    uv_close((uv_handle_t *)&sub->tcp, on_sub_close);
}

static void on_notify(uv_timer_t *t) {
    fr_subs_t *g = t->data;
    if (g->_on_connected && !g->_closing)
        g->_on_connected(g);
}

static void maybe_connected(fr_subs_t *g) {
    if (g->connect_over || g->_settled < g->_count)
        return;
    g->connect_over = 1;
    uv_timer_stop(&g->_phase_timer);
    /* From a fresh stack: the owner may start the publisher or write to a pipe. */
    uv_timer_start(&g->_notify, on_notify, 0, 0);
}

/* A stream left the connect phase, ready or not: make room for the next connect. */
static void settle(fr_subs_t *g) {
    g->_connecting--;
    g->_settled++;
    if (!g->_in_start)
        start_more(g);
    maybe_connected(g);
}

/* A storm reconnect left its connect phase, live again or failed: make room for the next. */
static void storm_settle(fr_subs_t *g) {
    g->_connecting--;
    if (!g->_in_start)
        storm_more(g);
}

/* The stream failed or ended. Before it started this is a failed connect (or a failed storm
 * reconnect); afterwards a disconnect, which the run reports as an error (events after it are
 * lost). */
static void lost(fr_sub_t *sub, const char *why) {
    fr_subs_t *g = sub->group;
    if (sub->state == SUB_CONNECTING && sub->resumed) {
        g->c.storm_failed++;
        fr_counters_error(&g->c, "subscriber %u, reconnecting: %s",
                          g->_first + (uint32_t)(sub - g->_subs), why);
        close_sub(sub);
        storm_settle(g);
    } else if (sub->state == SUB_CONNECTING) {
        g->c.connect_failed++;
        fr_counters_error(&g->c, "subscriber %u: %s", g->_first + (uint32_t)(sub - g->_subs), why);
        close_sub(sub);
        settle(g);
    } else if (sub->state == SUB_STREAMING) {
        if (!g->_closing) {
            g->c.disconnects++;
            fr_counters_error(&g->c, "subscriber %u: %s", g->_first + (uint32_t)(sub - g->_subs),
                              why);
        }
        close_sub(sub);
    }
}

static void become_ready(fr_sub_t *sub) {
    fr_subs_t *g = sub->group;
    if (sub->state != SUB_CONNECTING)
        return;
    sub->state = SUB_STREAMING;
    if (sub->resumed) { /* live again after the storm */
        uint64_t dt = fr_now_mono() - g->_storm_at;
        g->c.storm_live++;
        if (dt > g->c.storm_live_max)
            g->c.storm_live_max = dt;
        fr_hist_record(&g->storm, dt);
        storm_settle(g);
        return;
    }
    sub->was_ready = 1;
    g->c.ready++;
    fr_hist_record(&g->connect, fr_now_mono() - sub->started);
    settle(g);
}

static void on_retry(void *ud) {
    become_ready(ud);
}

static void on_open(void *ud) {
    become_ready(ud);
}

/* The id of every event is kept: it is what a browser would send back as Last-Event-ID. */
static void on_id(void *ud, const char *id, size_t len, int too_long) {
    fr_sub_t *sub = ud;
    if (too_long) {
        sub->idlen = 0;
        fr_counters_error(&sub->group->c,
                          "an event id longer than %d bytes: streams cannot resume with it",
                          FR_SSE_ID_MAX - 1);
        return;
    }
    memcpy(sub->last_id, id, len);
    sub->idlen = (uint8_t)len;
}

/* Events of topic k among global indices [0, n): round-robin puts index i on topic i % M. */
static uint64_t topic_share(uint64_t n, uint32_t k, uint32_t m) {
    return n / m + (k < n % m ? 1 : 0);
}

static void on_comment(void *ud) {
    fr_sub_t *sub = ud;
    sub->group->c.heartbeats++;
    become_ready(sub); /* for servers that open a stream with a comment, not retry: */
}

/* Whether a resumed stream's event was published after the storm's drop. */
static int after_drop(const fr_subs_t *g, const fr_sub_t *sub, const fr_payload_t *p) {
    if (p->conns)
        return p->g >= g->_storm_g;
    return p->seq >= topic_share(g->_storm_g, sub->topic, g->_opts->topics);
}

/* One event: check its order on the stream's topic (and publishing connection: two
 * connections' publishes may be stored in either order), then measure it. A duplicate is not a
 * delivery; an out-of-order event is (it arrived, late), and the gap it left was counted. */
static void on_event(void *ud, const char *event, size_t elen, const char *data, size_t dlen) {
    fr_sub_t *sub = ud;
    fr_subs_t *g = sub->group;
    become_ready(sub);
    if (elen == 7 && memcmp(event, "dropped", 7) == 0) {
        g->c.dropped_notices++;
        return;
    }
    fr_payload_t p;
    if (fr_payload_parse(data, dlen, &p) != 0) {
        g->c.other_events++;
        return;
    }
    if (p.topic != sub->topic) {
        g->c.wrong_topic++;
        fr_counters_error(&g->c, "an event of topic %u arrived on a stream of topic %u", p.topic,
                          sub->topic);
        return;
    }
    uint32_t npc = g->_opts->pub_conns;
    if (p.conns != (npc > 1) || p.conn >= npc) {
        g->c.other_events++;
        fr_counters_error(&g->c, "an event of publishing connection %u%s, with --pub-conns %u",
                          p.conn, p.conns ? "" : " (no \"c\" field)", npc);
        return;
    }
    uint64_t *next = &sub->next_seq[p.conn];
    if (p.seq == *next) {
        (*next)++;
    } else if (p.seq > *next) {
        g->c.gaps += p.seq - *next;
        if (sub->resumed)
            g->c.storm_gaps += p.seq - *next;
        *next = p.seq + 1;
    } else if (p.seq + 1 == *next) {
        g->c.duplicates++;
        if (sub->resumed)
            g->c.storm_duplicates++;
        return;
    } else {
        g->c.out_of_order++;
        if (sub->resumed)
            g->c.storm_out_of_order++;
    }
    /* Caught up: the first event published after the drop arrived, every earlier one either
     * before the drop or through the resume (the order check above counts what was not). */
    if (sub->resumed && !sub->caught_up && after_drop(g, sub, &p)) {
        uint64_t dt = fr_now_mono() - g->_storm_at;
        sub->caught_up = 1;
        g->c.storm_caught_up++;
        if (dt > g->c.storm_catchup_max)
            g->c.storm_catchup_max = dt;
    }
    uint64_t lat = g->_now_rt > p.t ? g->_now_rt - p.t : 0;
    if (lat > g->c.interval_lat_max)
        g->c.interval_lat_max = lat;
    if (p.warmup) {
        g->c.warmup_delivered++;
        return;
    }
    g->c.delivered++;
    g->c.last_delivery_rt = g->_now_rt;
    fr_hist_record(&g->latency, lat);
}

typedef struct late_write_s {
    uv_write_t req;
    char buf[];
} late_write_t;

static void on_late_write(uv_write_t *req, int status) {
    free(FR_CONTAINER_OF(req, late_write_t, req));
}

/* Writes `n` bytes (copied when needed) to the subscriber's socket. What a subscriber writes is
 * small (a request, a pong, a close) and its socket's send buffer all but empty, so
 * uv_try_write takes it whole and no write request is kept per connection; the copy below is
 * for the odd case. */
static int raw_write(fr_sub_t *sub, const char *data, size_t n) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
    int rc = uv_try_write((uv_stream_t *)&sub->tcp, &b, 1);
    if (rc >= 0 && (size_t)rc == n)
        return 0;
    if (rc < 0 && rc != UV_EAGAIN)
        return rc;
    size_t done = rc > 0 ? (size_t)rc : 0;
    late_write_t *w = fr_malloc(sizeof *w + n - done);
    memcpy(w->buf, data + done, n - done);
    b = uv_buf_init(w->buf, (unsigned)(n - done));
    rc = uv_write(&w->req, (uv_stream_t *)&sub->tcp, &b, 1, on_late_write);
    if (rc < 0)
        free(w);
    return rc;
}

/* --tls: sends the records the client has made (handshake flights, requests, frames). */
static int tls_flush(fr_sub_t *sub) {
    char buf[16384 + 1024];
    size_t n;
    while ((n = fr_btls_take(sub->ssl, buf, sizeof buf)) > 0) {
        int rc = raw_write(sub, buf, n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Writes what the subscriber says: as it is, or with --tls as records. */
static int sub_write(fr_sub_t *sub, const char *data, size_t n) {
    if (!sub->ssl)
        return raw_write(sub, data, n);
    if (fr_btls_write(sub->ssl, data, n) < 0)
        return UV_EPROTO;
    return tls_flush(sub);
}

/* A masked control frame to the server; a failed write shows up as a failed read soon. */
static void ws_send_control(fr_sub_t *sub, int opcode, const void *payload, size_t len) {
    char frame[FR_WS_CONTROL_FRAME_MAX];
    uint64_t r = rng_next(sub->group);
    uint8_t mask[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    size_t n = fr_ws_control(frame, opcode, payload, len, mask);
    (void)sub_write(sub, frame, n);
}

/* A ping is the WebSocket's heartbeat; the pong echoes its payload (RFC 6455, 5.5.3). */
static void on_ping(void *ud, const char *payload, size_t len) {
    fr_sub_t *sub = ud;
    sub->group->c.heartbeats++;
    ws_send_control(sub, FR_WS_OP_PONG, payload, len);
}

/* Bytes of a WebSocket subscriber. A close from the server is answered with a close holding
 * the same code, as RFC 6455 asks, and ends the stream like an SSE stream that ends. */
static void ws_read(fr_sub_t *sub, const char *buf, size_t n) {
    fr_subs_t *g = sub->group;
    fr_ws_reader_t *r = &g->_ws[sub - g->_subs];
    int rc = fr_ws_reader_feed(r, buf, n, &ws_hooks, sub);
    if (rc == FR_WS_OK)
        return;
    char why[96];
    if (rc == FR_WS_CLOSED) {
        uint8_t code[2] = {(uint8_t)(r->close_code >> 8), (uint8_t)r->close_code};
        ws_send_control(sub, FR_WS_OP_CLOSE, code, r->close_code == 1005 ? 0 : 2);
        snprintf(why, sizeof why, "the server closed the WebSocket (code %u)", r->close_code);
    } else if (rc == FR_WS_ESTATUS) {
        if (!sub->resumed) /* a refused reconnect is one of storm_failed instead */
            g->c.http_errors++;
        snprintf(why, sizeof why, "answered HTTP %u instead of 101", r->status);
    } else if (rc == FR_WS_EUPGRADE) {
        g->c.parse_errors++;
        snprintf(why, sizeof why,
                 "a 101 without the right Upgrade, Connection or Sec-WebSocket-Accept");
    } else {
        g->c.parse_errors++;
        snprintf(why, sizeof why, "malformed HTTP response or WebSocket frame");
    }
    lost(sub, why);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    fr_sub_t *sub = FR_CONTAINER_OF(h, fr_sub_t, tcp);
    *buf = uv_buf_init(sub->group->_rbuf, sizeof sub->group->_rbuf);
}

/* What the server sent (plaintext): the SSE stream or the WebSocket. */
static void sub_data(fr_sub_t *sub, const char *p, size_t n) {
    fr_subs_t *g = sub->group;
    if (g->_opts->ws) {
        ws_read(sub, p, n);
        return;
    }
    int rc = fr_sse_reader_feed(&sub->reader, p, n, &hooks, sub);
    if (rc == FR_SSE_OK)
        return;
    char why[64];
    if (rc == FR_SSE_ESTATUS) {
        if (!sub->resumed) /* a refused reconnect is one of storm_failed instead */
            g->c.http_errors++;
        snprintf(why, sizeof why, "answered HTTP %u instead of a stream", sub->reader.status);
    } else if (rc == FR_SSE_EPROTO) {
        g->c.parse_errors++;
        snprintf(why, sizeof why, "malformed HTTP response or chunk framing");
    } else {
        snprintf(why, sizeof why, "the server ended the stream");
    }
    lost(sub, why);
}

static int send_request(fr_sub_t *sub);

static int live(const fr_sub_t *sub) {
    return sub->state == SUB_CONNECTING || sub->state == SUB_STREAMING;
}

/* --tls: ciphertext from the server. The handshake first (then the request goes out), then
 * each record's plaintext to sub_data. */
static void tls_read(fr_sub_t *sub, const char *p, size_t n) {
    fr_subs_t *g = sub->group;
    fr_btls_input(sub->ssl, p, n);
    if (!sub->tls_up) {
        const char *why = NULL;
        int hs = fr_btls_handshake(sub->ssl, &why);
        if (tls_flush(sub) < 0 || hs < 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "TLS handshake: %s", why ? why : "cannot write");
            lost(sub, msg);
            return;
        }
        if (hs == 0)
            return;
        sub->tls_up = 1;
        if (send_request(sub) < 0) {
            lost(sub, "request: cannot write");
            return;
        }
    }
    ssize_t got = 0;
    while (live(sub) && (got = fr_btls_read(sub->ssl, g->_tbuf, sizeof g->_tbuf)) > 0)
        sub_data(sub, g->_tbuf, (size_t)got);
    if (live(sub) && got < 0)
        lost(sub, "the server closed the TLS session");
    else if (live(sub))
        (void)tls_flush(sub); /* a key update's answer, if any */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    fr_sub_t *sub = FR_CONTAINER_OF(stream, fr_sub_t, tcp);
    fr_subs_t *g = sub->group;
    if (nread == 0)
        return;
    if (nread < 0) {
        lost(sub, nread == UV_EOF ? "the server closed the connection" : uv_strerror((int)nread));
        return;
    }
    g->c.bytes += (uint64_t)nread;
    g->c.reads++;
    g->_now_rt = fr_now_rt();
    if (sub->ssl)
        tls_read(sub, buf->base, (size_t)nread);
    else
        sub_data(sub, buf->base, (size_t)nread);
}

/* ?lastEventId= takes the id percent-encoded: every byte but RFC 3986's unreserved ones. */
static void query_escape(char *out, size_t cap, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 <= cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* Sends the stream request: an SSE GET, or a WebSocket upgrade with a fresh key (whose
 * expected accept the reader keeps). A storm reconnect resumes with the last id, as
 * Last-Event-ID over SSE and in the query over WebSocket, as a browser would. */
static int send_request(fr_sub_t *sub) {
    fr_subs_t *g = sub->group;
    const fr_opts_t *o = g->_opts;
    char req[1024], resume[FR_SSE_ID_MAX * 3 + 32] = "";
    int n;
    if (o->ws) {
        uint8_t nonce[16];
        char key[FR_WS_KEY_LEN + 1];
        uint64_t a = rng_next(g), b = rng_next(g);
        memcpy(nonce, &a, 8);
        memcpy(nonce + 8, &b, 8);
        fr_ws_key(nonce, key);
        fr_ws_reader_init(&g->_ws[sub - g->_subs], key);
        if (sub->resumed && sub->idlen) {
            char id[FR_SSE_ID_MAX * 3 + 1];
            query_escape(id, sizeof id, sub->last_id, sub->idlen);
            snprintf(resume, sizeof resume, "%clastEventId=%s",
                     strchr(o->sub_path, '?') ? '&' : '?', id);
        }
        n = snprintf(req, sizeof req,
                     "GET %s%s%u%s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     o->sub_path, o->prefix, sub->topic, resume, o->host, ntohs(o->server.sin_port),
                     key);
    } else {
        if (sub->resumed && sub->idlen)
            snprintf(resume, sizeof resume, "Last-Event-ID: %.*s\r\n", (int)sub->idlen,
                     sub->last_id);
        n = snprintf(req, sizeof req,
                     "GET %s%s%u HTTP/1.1\r\nHost: %s:%u\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n%s\r\n",
                     o->sub_path, o->prefix, sub->topic, o->host, ntohs(o->server.sin_port),
                     resume);
    }
    return sub_write(sub, req, (size_t)n);
}

static void on_connect(uv_connect_t *req, int status) {
    fr_sub_t *sub = FR_CONTAINER_OF(req, fr_sub_t, connect);
    if (status == UV_ECANCELED || sub->state != SUB_CONNECTING)
        return;
    char why[96];
    if (status < 0) {
        snprintf(why, sizeof why, "connect: %s", uv_strerror(status));
        lost(sub, why);
        return;
    }
    int rc;
    if (sub->group->_opts->tls) {
        /* The ClientHello first; the request once the handshake is done (tls_read). */
        const char *err = NULL;
        sub->ssl = fr_btls_new(sub->group->_opts);
        if (!sub->ssl || fr_btls_handshake(sub->ssl, &err) < 0) {
            lost(sub, "TLS: cannot start a client");
            return;
        }
        rc = tls_flush(sub);
    } else {
        rc = send_request(sub);
    }
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&sub->tcp, on_alloc, on_read);
    if (rc < 0) {
        snprintf(why, sizeof why, "request: %s", uv_strerror(rc));
        lost(sub, why);
    }
}

/* Opens the connection of a subscriber, the first time or after the storm. Binding a source
 * address first spreads the connections over several 127.0.0.x, each with its own ephemeral
 * port range; IP_BIND_ADDRESS_NO_PORT leaves the port choice to connect(), so a bound socket
 * does not reserve a port for every destination. */
static void dial(fr_sub_t *sub) {
    fr_subs_t *g = sub->group;
    const fr_opts_t *o = g->_opts;
    uint32_t j = g->_first + (uint32_t)(sub - g->_subs);
    char why[96];
    if (!o->ws) /* a WebSocket's reader starts with the key, in send_request */
        fr_sse_reader_init(&sub->reader);
    g->_connecting++;
    int rc = uv_tcp_init_ex(g->_loop, &sub->tcp, AF_INET);
    if (rc < 0) { /* no handle was opened, so there is none to close */
        fr_counters_error(&g->c, "subscriber %u: socket: %s", j, uv_strerror(rc));
        sub->state = SUB_CLOSED;
        if (sub->resumed) {
            g->c.storm_failed++;
            storm_settle(g);
        } else {
            g->c.connect_failed++;
            settle(g);
        }
        return;
    }
    g->_open++;
    sub->state = SUB_CONNECTING;
    if (o->src_count) {
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)&sub->tcp, &fd) == 0)
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src;
        memset(&src, 0, sizeof src);
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(o->src_first + j % o->src_count);
        rc = uv_tcp_bind(&sub->tcp, (const struct sockaddr *)&src, 0);
        if (rc < 0) {
            snprintf(why, sizeof why, "bind: %s", uv_strerror(rc));
            lost(sub, why);
            return;
        }
    }
    sub->started = fr_now_mono();
    rc = uv_tcp_connect(&sub->connect, &sub->tcp, (const struct sockaddr *)&o->server, on_connect);
    if (rc < 0) {
        snprintf(why, sizeof why, "connect: %s", uv_strerror(rc));
        lost(sub, why);
    }
}

static void start_one(fr_subs_t *g, uint32_t i) {
    fr_sub_t *sub = &g->_subs[i];
    sub->group = g;
    sub->topic = (g->_first + i) % g->_opts->topics;
    dial(sub);
}

static void start_more(fr_subs_t *g) {
    if (g->_closing || g->connect_over)
        return;
    g->_in_start = 1;
    while (g->_next < g->_count && g->_connecting < g->_opts->connect_burst)
        start_one(g, g->_next++);
    g->_in_start = 0;
    maybe_connected(g);
}

/* --connect-timeout passed: whatever has not started by now counts as failed. */
static void on_phase_timeout(uv_timer_t *t) {
    fr_subs_t *g = t->data;
    uint32_t never = g->_count - g->_next;
    g->_next = g->_count; /* settle() below must not start anything new */
    for (uint32_t i = 0; i < g->_count; i++) {
        if (g->_subs[i].state == SUB_CONNECTING)
            lost(&g->_subs[i], "no stream within --connect-timeout");
    }
    g->c.connect_failed += never;
    if (never)
        fr_counters_error(&g->c, "%u subscribers were never started within --connect-timeout",
                          never);
    g->_settled = g->_count;
    maybe_connected(g);
}

void fr_subs_init(fr_subs_t *g, uv_loop_t *loop, const fr_opts_t *opts, uint32_t first,
                  uint32_t count) {
    memset(g, 0, sizeof *g);
    g->_loop = loop;
    g->_opts = opts;
    g->_first = first;
    g->_count = count;
    g->_subs = fr_calloc(count, sizeof *g->_subs);
    g->_seqs = fr_calloc(count ? count : 1, (size_t)opts->pub_conns * sizeof *g->_seqs);
    for (uint32_t i = 0; i < count; i++)
        g->_subs[i].next_seq = g->_seqs + (size_t)i * opts->pub_conns;
    if (opts->ws)
        g->_ws = fr_calloc(count ? count : 1, sizeof *g->_ws);
    g->c.conns = count;
    uv_timer_init(loop, &g->_phase_timer);
    uv_timer_init(loop, &g->_notify);
    g->_phase_timer.data = g;
    g->_notify.data = g;
    g->_open = 2;
    if (getrandom(&g->_rng, sizeof g->_rng, GRND_NONBLOCK) != sizeof g->_rng)
        g->_rng = fr_now_rt() ^ ((uint64_t)getpid() << 32);
    g->_rng ^= (uint64_t)first * 0x9E3779B97F4A7C15ULL;
    if (!g->_rng)
        g->_rng = 1;
}

void fr_subs_start(fr_subs_t *g, fr_subs_cb on_connected) {
    g->_on_connected = on_connected;
    uv_timer_start(&g->_phase_timer, on_phase_timeout,
                   (uint64_t)(g->_opts->connect_timeout * 1000.0), 0);
    start_more(g);
}

void fr_subs_set_window(fr_subs_t *g, uint64_t g0, uint64_t g1) {
    uint32_t m = g->_opts->topics;
    g->c.windows = 1;
    for (uint32_t i = 0; i < g->_count; i++) {
        const fr_sub_t *sub = &g->_subs[i];
        if (sub->was_ready)
            g->c.expected += topic_share(g1, sub->topic, m) - topic_share(g0, sub->topic, m);
    }
}

/* Reconnects dropped streams in index order, --connect-burst at a time. Closes complete in one
 * loop iteration (in reverse order), so the walk waits at the first stream still closing and
 * on_sub_close resumes it. */
static void storm_more(fr_subs_t *g) {
    if (g->_closing)
        return;
    g->_in_start = 1;
    while (g->_redial_next < g->_count && g->_connecting < g->_opts->connect_burst) {
        fr_sub_t *sub = &g->_subs[g->_redial_next];
        if (sub->dropping)
            break;
        g->_redial_next++;
        if (sub->state == SUB_REDIAL)
            dial(sub);
    }
    g->_in_start = 0;
}

void fr_subs_storm(fr_subs_t *g, uint64_t g_drop) {
    if (g->_closing || g->_storm_at)
        return;
    g->_storm_at = fr_now_mono();
    g->_storm_g = g_drop;
    g->_redial_next = 0;
    for (uint32_t i = 0; i < g->_count; i++) {
        fr_sub_t *sub = &g->_subs[i];
        if (sub->state != SUB_STREAMING)
            continue;
        sub->dropping = 1;
        sub->resumed = 1;
        g->c.storm_dropped++;
        if (!sub->idlen)
            g->c.storm_no_id++;
        close_sub(sub);
    }
}

void fr_subs_close(fr_subs_t *g, fr_subs_cb on_closed) {
    if (g->_closing)
        return;
    g->_closing = 1;
    g->_on_closed = on_closed;
    static const uint8_t normal[2] = {1000 >> 8, 1000 & 0xff};
    for (uint32_t i = 0; i < g->_count; i++) {
        /* A WebSocket ends with a close frame, so the server sees a client that leaves, not a
         * connection that breaks. */
        if (g->_opts->ws && g->_subs[i].state == SUB_STREAMING)
            ws_send_control(&g->_subs[i], FR_WS_OP_CLOSE, normal, sizeof normal);
        close_sub(&g->_subs[i]);
    }
    uv_close((uv_handle_t *)&g->_phase_timer, on_timer_close);
    uv_close((uv_handle_t *)&g->_notify, on_timer_close);
}
