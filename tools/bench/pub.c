/* The publisher's timetable, requests and answers; see pub.h. */
#include "pub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "payload.h"
#include "tls.h"

/* Room before the body for the request head, which is written right-aligned against the body
 * so that head and body leave in one buffer. Paths, prefix and host are bounded by fr_opts_t. */
#define HEADROOM 320

enum { RS_STATUS, RS_HEADER, RS_BODY };

static void pump(fr_pub_t *p);

static void set_error(fr_pub_t *p, const char *fmt, const char *arg) {
    if (!p->first_error[0])
        snprintf(p->first_error, sizeof p->first_error, fmt, arg);
}

/* Wakes the loop at realtime `at` (ns); 0 disarms. Flat out, every pump with the pipelines full
 * asks for the same end time again: that costs no system call. */
static void arm(fr_pub_t *p, uint64_t at) {
    if (at == p->_armed)
        return;
    p->_armed = at;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = (time_t)(at / 1000000000u);
    its.it_value.tv_nsec = (long)(at % 1000000000u);
    if (p->_timerfd >= 0)
        timerfd_settime(p->_timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void finish_sending(fr_pub_t *p) {
    if (p->done)
        return;
    p->done = 1;
    arm(p, 0);
    if (p->g0 == UINT64_MAX)
        p->g0 = p->next;
    if (p->_on_done)
        p->_on_done(p);
}

/* A connection is unusable: what was in flight on it is lost, and the run goes on without more
 * publishes (the report shows the errors and the shortfall); the other connections' answers
 * still count. Before every connection is up, the connect phase fails instead. */
static void fail(fr_pub_conn_t *c, const char *why) {
    fr_pub_t *p = c->pub;
    if (c->failed)
        return;
    c->failed = 1;
    uint64_t lost = c->sent - c->answered;
    p->errors += 1 + lost; /* the connection, and the requests lost with it */
    p->answered += lost;
    c->answered = c->sent;
    set_error(p, "publisher: %s", why);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (p->_failed)
        return;
    p->_failed = 1;
    if (!p->_connected && p->_on_connect) {
        fr_pub_cb cb = p->_on_connect;
        p->_on_connect = NULL; /* once, however many connections fail */
        p->done = 1;
        cb(p);
        return;
    }
    finish_sending(p);
}

/* 1 when the connection's next slot can take a request. */
static int conn_free(const fr_pub_t *p, const fr_pub_conn_t *c) {
    const fr_pub_slot_t *s = &c->slots[c->sent % p->_nslots];
    return !c->failed && !s->writing && !s->waiting;
}

/* Queues the connection behind the others that can take a request, if it can: finding the next
 * one is then one step, not a scan of every connection per publish. */
static void ready(fr_pub_conn_t *c) {
    fr_pub_t *p = c->pub;
    if (c->queued || !conn_free(p, c))
        return;
    c->queued = 1;
    p->_ready[(p->_ready_head + p->_ready_len++) % p->_nconns] = c->index;
}

static void on_write(uv_write_t *req, int status) {
    fr_pub_slot_t *s = FR_CONTAINER_OF(req, fr_pub_slot_t, req);
    fr_pub_conn_t *c = req->data;
    s->writing = 0;
    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        fail(c, uv_strerror(status));
        return;
    }
    ready(c);
    pump(c->pub);
}

static void send_event(fr_pub_t *p, fr_pub_conn_t *c, fr_pub_slot_t *s, uint64_t due) {
    const fr_opts_t *o = p->_opts;
    fr_payload_t pl;
    memset(&pl, 0, sizeof pl);
    pl.t = due;
    pl.topic = (uint32_t)(p->next % o->topics);
    if (c->seq) {
        pl.seq = c->seq[pl.topic]++;
        pl.conns = 1;
        pl.conn = c->index;
        pl.g = p->next;
    } else {
        pl.seq = p->next / o->topics;
    }
    pl.warmup = due < p->measure_rt;
    if (!pl.warmup && p->g0 == UINT64_MAX)
        p->g0 = p->next;
    char *body = s->buf + HEADROOM;
    size_t blen = fr_payload_format(body, &pl, o->payload);
    char head[HEADROOM];
    int hl = snprintf(head, sizeof head,
                      "POST %s%s%u HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      o->pub_path, o->prefix, pl.topic, o->host, ntohs(o->pub_server.sin_port), blen);
    memcpy(body - hl, head, (size_t)hl);
    uv_buf_t b = uv_buf_init(body - hl, (unsigned)((size_t)hl + blen));
    if (c->ssl) {
        /* The slot's records replace the request: the write sends them. */
        size_t n = 0, got;
        if (fr_btls_write(c->ssl, b.base, b.len) < 0) {
            fail(c, "TLS: cannot encrypt a request");
            return;
        }
        for (;;) {
            if (s->ccap - n < 4096) {
                s->ccap = s->ccap * 2 + 8192;
                s->cbuf = realloc(s->cbuf, s->ccap);
                if (!s->cbuf)
                    abort();
            }
            if (!(got = fr_btls_take(c->ssl, s->cbuf + n, s->ccap - n)))
                break;
            n += got;
        }
        b = uv_buf_init(s->cbuf, (unsigned)n);
    }
    s->waiting = 1;
    s->sent = fr_now_mono();
    p->next++;
    c->sent++;
    /* What the socket takes at once needs no write request: libuv re-arms the socket's poll
     * each time one completes, a system call per publish that would be the client's, not the
     * server's. The rest, if any, is queued (libuv refuses try_write while writes wait). */
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        fail(c, uv_strerror(n));
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (unsigned)n;
    }
    s->writing = 1;
    s->req.data = c;
    int rc = uv_write(&s->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        s->writing = 0;
        fail(c, uv_strerror(rc));
    }
}

/* The connection that has waited longest with its next slot free (its write done, its answer
 * in), or NULL when every pipeline is full. */
static fr_pub_conn_t *next_conn(fr_pub_t *p) {
    while (p->_ready_len) {
        fr_pub_conn_t *c = &p->_conns[p->_ready[p->_ready_head]];
        p->_ready_head = (p->_ready_head + 1) % p->_nconns;
        p->_ready_len--;
        c->queued = 0;
        if (conn_free(p, c))
            return c;
    }
    return NULL;
}

/* Sends every event that is due, as far as the pipelines allow. Called on each tick, each
 * answer and each completed write. */
static void pump(fr_pub_t *p) {
    if (p->done || p->_failed || !p->_connected || !p->_origin_rt)
        return;
    uint64_t now = fr_now_rt();
    if (now >= p->end_rt) {
        finish_sending(p);
        return;
    }
    for (;;) {
        uint64_t due = now;
        if (p->_period > 0) {
            due = p->_origin_rt + (uint64_t)((double)p->next * p->_period);
            if (due >= p->end_rt) {
                finish_sending(p);
                return;
            }
            if (due > now) {
                p->lag_now = 0;
                arm(p, due);
                return;
            }
        }
        fr_pub_conn_t *c = next_conn(p);
        if (!c) { /* pipelines full: the timetable waits, the clock not */
            if (p->_period > 0) {
                p->lag_now = now - due;
                if (p->lag_now > p->lag_max)
                    p->lag_max = p->lag_now;
            }
            arm(p, p->end_rt); /* answers resume the pump; this ends it if they never come */
            return;
        }
        send_event(p, c, &c->slots[c->sent % p->_nslots], due);
        if (p->_failed)
            return;
        ready(c); /* its pipeline's next slot, after the other connections' turns */
    }
}

static void on_tick(uv_poll_t *h, int status, int events) {
    fr_pub_t *p = h->data;
    uint64_t expirations;
    p->_armed = 0; /* a timerfd armed once is disarmed when it expires */
    if (read(p->_timerfd, &expirations, sizeof expirations) < 0) {
        /* EAGAIN: already consumed; the pump below is harmless either way */
    }
    pump(p);
}

/* One complete answer: it belongs to the connection's oldest request in flight (HTTP/1.1
 * answers in order). */
static void answered(fr_pub_conn_t *c) {
    fr_pub_t *p = c->pub;
    fr_pub_slot_t *s = &c->slots[c->answered % p->_nslots];
    if (c->answered >= c->sent || !s->waiting) {
        fail(c, "an answer arrived with no request in flight");
        return;
    }
    s->waiting = 0;
    c->answered++;
    ready(c);
    p->answered++;
    fr_hist_record(&p->ack, fr_now_mono() - s->sent);
    if (c->rstatus >= 200 && c->rstatus < 300) {
        p->ok++;
    } else {
        char code[8];
        snprintf(code, sizeof code, "%u", c->rstatus);
        p->errors++;
        set_error(p, "publish answered HTTP %s", code);
    }
}

/* The status line or a header line of an answer is in _rline. */
static int answer_line(fr_pub_conn_t *c) {
    char *l = c->rline;
    l[c->rllen] = '\0';
    if (c->rstate == RS_STATUS) {
        if (c->rllen < 12 || memcmp(l, "HTTP/1.", 7) != 0)
            return -1;
        c->rstatus = (uint16_t)atoi(l + 9);
        c->rbody = 0;
        c->rstate = RS_HEADER;
    } else if (c->rllen == 0) {
        c->rstate = RS_BODY;
    } else if (strncasecmp(l, "content-length:", 15) == 0) {
        c->rbody = strtoull(l + 15, NULL, 10);
    } else if (strncasecmp(l, "transfer-encoding:", 18) == 0) {
        return -1; /* publish answers are short and carry Content-Length */
    }
    c->rllen = 0;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    fr_pub_conn_t *c = h->data;
    *buf = uv_buf_init(c->pub->_rbuf, sizeof c->pub->_rbuf);
}

/* Answers, as they arrive (plaintext): status lines, headers, bodies skipped. */
static void parse_answers(fr_pub_conn_t *c, const char *b, const char *end) {
    while (b < end && !c->failed) {
        if (c->rstate == RS_BODY) {
            size_t n = (size_t)(end - b);
            if (n > c->rbody)
                n = (size_t)c->rbody;
            b += n;
            c->rbody -= n;
            if (c->rbody == 0) {
                c->rstate = RS_STATUS;
                answered(c);
            }
            continue;
        }
        char ch = *b++;
        if (ch == '\n') {
            if (answer_line(c) < 0) {
                fail(c, "malformed or chunked publish answer");
                return;
            }
            if (c->rstate == RS_BODY && c->rbody == 0) {
                c->rstate = RS_STATUS;
                answered(c);
            }
        } else if (ch != '\r' && c->rllen < sizeof c->rline - 1) {
            c->rline[c->rllen++] = ch;
        }
    }
}

static void on_control_write(uv_write_t *req, int status) {
    free(req);
}

/* --tls: sends the records that are not a request (handshake flights, a key update's answer). */
static void tls_flush(fr_pub_conn_t *c) {
    char buf[16384 + 1024];
    size_t n;
    while ((n = fr_btls_take(c->ssl, buf, sizeof buf)) > 0) {
        uv_write_t *req = fr_malloc(sizeof *req + n);
        memcpy(req + 1, buf, n);
        uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
        if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_control_write) < 0) {
            free(req);
            fail(c, "TLS: cannot write");
            return;
        }
    }
}

/* A connection is up (with --tls: its handshake is done); the publisher is once all are. */
static void up(fr_pub_conn_t *c) {
    fr_pub_t *p = c->pub;
    c->connected = 1;
    ready(c);
    if (++p->_nup < p->_nconns || p->_failed)
        return;
    p->_connected = 1;
    fr_pub_cb cb = p->_on_connect;
    p->_on_connect = NULL;
    if (cb)
        cb(p);
}

/* --tls: the handshake first, then each record's plaintext to parse_answers. */
static void tls_read(fr_pub_conn_t *c, const char *b, size_t n) {
    fr_pub_t *p = c->pub;
    fr_btls_input(c->ssl, b, n);
    if (!c->tls_up) {
        const char *why = NULL;
        int hs = fr_btls_handshake(c->ssl, &why);
        tls_flush(c);
        if (hs < 0)
            fail(c, why ? why : "TLS handshake failed");
        if (hs <= 0 || c->failed)
            return;
        c->tls_up = 1;
        up(c);
    }
    ssize_t got = 0;
    while (!c->failed && (got = fr_btls_read(c->ssl, p->_tbuf, sizeof p->_tbuf)) > 0)
        parse_answers(c, p->_tbuf, p->_tbuf + got);
    if (!c->failed && got < 0)
        fail(c, "the server closed the TLS session");
    if (!c->failed)
        tls_flush(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    fr_pub_conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        fail(c, nread == UV_EOF ? "the server closed the keep-alive connection"
                                : uv_strerror((int)nread));
        return;
    }
    if (c->ssl)
        tls_read(c, buf->base, (size_t)nread);
    else
        parse_answers(c, buf->base, buf->base + nread);
    if (c->pub->_connected)
        pump(c->pub);
}

static void on_connect(uv_connect_t *req, int status) {
    fr_pub_conn_t *c = req->data;
    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        fail(c, uv_strerror(status));
        return;
    }
    /* Pipelined small requests must not wait for Nagle. */
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail(c, uv_strerror(rc));
        return;
    }
    if (c->pub->_opts->tls) {
        /* The ClientHello; the connection is up once the handshake is done (tls_read). */
        const char *why = NULL;
        c->ssl = fr_btls_new(c->pub->_opts);
        if (!c->ssl || fr_btls_handshake(c->ssl, &why) < 0) {
            fail(c, "TLS: cannot start a client");
            return;
        }
        tls_flush(c);
        return;
    }
    up(c);
}

void fr_pub_init(fr_pub_t *p, uv_loop_t *loop, const fr_opts_t *opts) {
    memset(p, 0, sizeof *p);
    p->_loop = loop;
    p->_opts = opts;
    p->g0 = UINT64_MAX;
    p->_nslots = opts->pipeline ? opts->pipeline : 1;
    p->_nconns = opts->pub_conns ? opts->pub_conns : 1;
    p->_bufcap =
        HEADROOM + (opts->payload > FR_PAYLOAD_MIN_CONNS ? opts->payload : FR_PAYLOAD_MIN_CONNS);
    p->_conns = fr_calloc(p->_nconns, sizeof *p->_conns);
    p->_ready = fr_calloc(p->_nconns, sizeof *p->_ready);
    for (uint32_t k = 0; k < p->_nconns; k++) {
        fr_pub_conn_t *c = &p->_conns[k];
        c->pub = p;
        c->index = k;
        c->slots = fr_calloc(p->_nslots, sizeof *c->slots);
        for (uint32_t i = 0; i < p->_nslots; i++)
            c->slots[i].buf = fr_malloc(p->_bufcap);
        if (p->_nconns > 1)
            c->seq = fr_calloc(opts->topics, sizeof *c->seq);
        uv_tcp_init(loop, &c->tcp);
        c->tcp.data = c;
        c->connect.data = c;
    }
    p->_timerfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->_timerfd < 0) {
        perror("freshet-bench: timerfd_create");
        abort();
    }
    uv_poll_init(loop, &p->_tick, p->_timerfd);
    p->_tick.data = p;
    p->_open = p->_nconns + 1;
}

void fr_pub_connect(fr_pub_t *p, fr_pub_cb cb) {
    p->_on_connect = cb;
    for (uint32_t k = 0; k < p->_nconns && !p->_failed; k++) {
        fr_pub_conn_t *c = &p->_conns[k];
        int rc = uv_tcp_connect(&c->connect, &c->tcp,
                                (const struct sockaddr *)&p->_opts->pub_server, on_connect);
        if (rc < 0)
            fail(c, uv_strerror(rc));
    }
}

void fr_pub_start(fr_pub_t *p, fr_pub_cb on_done) {
    const fr_opts_t *o = p->_opts;
    p->_on_done = on_done;
    p->_origin_rt = fr_now_rt();
    p->measure_rt = p->_origin_rt + (uint64_t)(o->warmup * 1e9);
    p->end_rt = p->measure_rt + (uint64_t)(o->duration * 1e9);
    if (o->rate > 0)
        p->_period = 1e9 / o->rate;
    if (p->_failed || p->done) { /* the connection broke before the start */
        p->done = 0;
        finish_sending(p);
        return;
    }
    uv_poll_start(&p->_tick, UV_READABLE, on_tick);
    /* Flat out, answers drive the publisher; the timer only ends it should they stop. */
    if (p->_period == 0)
        arm(p, p->end_rt);
    pump(p);
}

uint64_t fr_pub_inflight(const fr_pub_t *p) {
    return p->next - p->answered;
}

uint64_t fr_pub_unsent(const fr_pub_t *p) {
    if (p->_period <= 0 || !p->_origin_rt)
        return 0;
    uint64_t until = fr_now_rt();
    if (until > p->end_rt)
        until = p->end_rt;
    /* Events due at or before `until`, i.e. indices 0 .. floor((until - origin) / period), with
     * the last one excluded when it falls on the end itself (the timetable stops before it). */
    uint64_t due = (uint64_t)((double)(until - p->_origin_rt) / p->_period) + 1;
    if (until == p->end_rt &&
        p->_origin_rt + (uint64_t)((double)(due - 1) * p->_period) >= p->end_rt)
        due--;
    return due > p->next ? due - p->next : 0;
}

static void pub_closed(fr_pub_t *p) {
    if (--p->_open > 0)
        return;
    for (uint32_t k = 0; k < p->_nconns; k++) {
        fr_pub_conn_t *c = &p->_conns[k];
        for (uint32_t i = 0; i < p->_nslots; i++) {
            free(c->slots[i].buf);
            free(c->slots[i].cbuf);
        }
        free(c->slots);
        free(c->seq);
        fr_btls_free(c->ssl);
    }
    free(p->_conns);
    p->_conns = NULL;
    free(p->_ready);
    p->_ready = NULL;
    close(p->_timerfd);
    p->_timerfd = -1;
    if (p->_on_closed)
        p->_on_closed(p);
}

static void on_conn_close(uv_handle_t *h) {
    pub_closed(((fr_pub_conn_t *)h->data)->pub);
}

static void on_tick_close(uv_handle_t *h) {
    pub_closed(h->data);
}

void fr_pub_close(fr_pub_t *p, fr_pub_cb on_closed) {
    p->_on_closed = on_closed;
    p->done = 1;
    for (uint32_t k = 0; k < p->_nconns; k++)
        uv_close((uv_handle_t *)&p->_conns[k].tcp, on_conn_close);
    uv_close((uv_handle_t *)&p->_tick, on_tick_close);
}
