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

/* Wakes the loop at realtime `at` (ns); 0 disarms. */
static void arm(fr_pub_t *p, uint64_t at) {
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

/* The connection is unusable: what was in flight is lost, and the run goes on without more
 * publishes (the report shows the errors and the shortfall). */
static void fail(fr_pub_t *p, const char *why) {
    if (p->_failed)
        return;
    p->_failed = 1;
    p->errors += 1 + fr_pub_inflight(p); /* the connection, and the requests lost with it */
    p->answered = p->next;
    set_error(p, "publisher: %s", why);
    uv_read_stop((uv_stream_t *)&p->_tcp);
    if (!p->_connected && p->_on_connect) {
        p->done = 1;
        p->_on_connect(p);
        return;
    }
    finish_sending(p);
}

static void on_write(uv_write_t *req, int status) {
    fr_pub_slot_t *s = FR_CONTAINER_OF(req, fr_pub_slot_t, req);
    fr_pub_t *p = req->data;
    s->writing = 0;
    if (status == UV_ECANCELED)
        return;
    if (status < 0)
        fail(p, uv_strerror(status));
    else
        pump(p);
}

static void send_event(fr_pub_t *p, fr_pub_slot_t *s, uint64_t due) {
    const fr_opts_t *o = p->_opts;
    fr_payload_t pl;
    pl.t = due;
    pl.topic = (uint32_t)(p->next % o->topics);
    pl.seq = p->next / o->topics;
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
    if (p->_ssl) {
        /* The slot's records replace the request: the write sends them. */
        size_t n = 0, got;
        if (fr_btls_write(p->_ssl, b.base, b.len) < 0) {
            fail(p, "TLS: cannot encrypt a request");
            return;
        }
        for (;;) {
            if (s->ccap - n < 4096) {
                s->ccap = s->ccap * 2 + 8192;
                s->cbuf = realloc(s->cbuf, s->ccap);
                if (!s->cbuf)
                    abort();
            }
            if (!(got = fr_btls_take(p->_ssl, s->cbuf + n, s->ccap - n)))
                break;
            n += got;
        }
        b = uv_buf_init(s->cbuf, (unsigned)n);
    }
    s->writing = 1;
    s->waiting = 1;
    s->sent = fr_now_mono();
    s->req.data = p;
    p->next++;
    int rc = uv_write(&s->req, (uv_stream_t *)&p->_tcp, &b, 1, on_write);
    if (rc < 0) {
        s->writing = 0;
        fail(p, uv_strerror(rc));
    }
}

/* Sends every event that is due, as far as the pipeline allows. Called on each tick, each
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
        fr_pub_slot_t *s = &p->_slots[p->next % p->_nslots];
        if (s->writing || s->waiting) { /* pipeline full: the timetable waits, the clock not */
            if (p->_period > 0) {
                p->lag_now = now - due;
                if (p->lag_now > p->lag_max)
                    p->lag_max = p->lag_now;
            }
            arm(p, p->end_rt); /* answers resume the pump; this ends it if they never come */
            return;
        }
        send_event(p, s, due);
        if (p->_failed)
            return;
    }
}

static void on_tick(uv_poll_t *h, int status, int events) {
    fr_pub_t *p = h->data;
    uint64_t expirations;
    if (read(p->_timerfd, &expirations, sizeof expirations) < 0) {
        /* EAGAIN: already consumed; the pump below is harmless either way */
    }
    pump(p);
}

/* One complete answer: it belongs to the oldest request in flight (HTTP/1.1 answers in order). */
static void answered(fr_pub_t *p) {
    fr_pub_slot_t *s = &p->_slots[p->answered % p->_nslots];
    if (p->answered >= p->next || !s->waiting) {
        fail(p, "an answer arrived with no request in flight");
        return;
    }
    s->waiting = 0;
    p->answered++;
    fr_hist_record(&p->ack, fr_now_mono() - s->sent);
    if (p->_rstatus >= 200 && p->_rstatus < 300) {
        p->ok++;
    } else {
        char code[8];
        snprintf(code, sizeof code, "%u", p->_rstatus);
        p->errors++;
        set_error(p, "publish answered HTTP %s", code);
    }
}

/* The status line or a header line of an answer is in _rline. */
static int answer_line(fr_pub_t *p) {
    char *l = p->_rline;
    l[p->_rllen] = '\0';
    if (p->_rstate == RS_STATUS) {
        if (p->_rllen < 12 || memcmp(l, "HTTP/1.", 7) != 0)
            return -1;
        p->_rstatus = (uint16_t)atoi(l + 9);
        p->_rbody = 0;
        p->_rstate = RS_HEADER;
    } else if (p->_rllen == 0) {
        p->_rstate = RS_BODY;
    } else if (strncasecmp(l, "content-length:", 15) == 0) {
        p->_rbody = strtoull(l + 15, NULL, 10);
    } else if (strncasecmp(l, "transfer-encoding:", 18) == 0) {
        return -1; /* publish answers are short and carry Content-Length */
    }
    p->_rllen = 0;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    fr_pub_t *p = h->data;
    *buf = uv_buf_init(p->_rbuf, sizeof p->_rbuf);
}

/* Answers, as they arrive (plaintext): status lines, headers, bodies skipped. */
static void parse_answers(fr_pub_t *p, const char *c, const char *end) {
    while (c < end && !p->_failed) {
        if (p->_rstate == RS_BODY) {
            size_t n = (size_t)(end - c);
            if (n > p->_rbody)
                n = (size_t)p->_rbody;
            c += n;
            p->_rbody -= n;
            if (p->_rbody == 0) {
                p->_rstate = RS_STATUS;
                answered(p);
            }
            continue;
        }
        char ch = *c++;
        if (ch == '\n') {
            if (answer_line(p) < 0) {
                fail(p, "malformed or chunked publish answer");
                return;
            }
            if (p->_rstate == RS_BODY && p->_rbody == 0) {
                p->_rstate = RS_STATUS;
                answered(p);
            }
        } else if (ch != '\r' && p->_rllen < sizeof p->_rline - 1) {
            p->_rline[p->_rllen++] = ch;
        }
    }
}

static void on_control_write(uv_write_t *req, int status) {
    free(req);
}

/* --tls: sends the records that are not a request (handshake flights, a key update's answer). */
static void tls_flush(fr_pub_t *p) {
    char buf[16384 + 1024];
    size_t n;
    while ((n = fr_btls_take(p->_ssl, buf, sizeof buf)) > 0) {
        uv_write_t *req = fr_malloc(sizeof *req + n);
        memcpy(req + 1, buf, n);
        uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
        if (uv_write(req, (uv_stream_t *)&p->_tcp, &b, 1, on_control_write) < 0) {
            free(req);
            fail(p, "TLS: cannot write");
            return;
        }
    }
}

/* The connection is up (with --tls: its handshake is done). */
static void up(fr_pub_t *p) {
    p->_connected = 1;
    p->_on_connect(p);
}

/* --tls: the handshake first, then each record's plaintext to parse_answers. */
static void tls_read(fr_pub_t *p, const char *c, size_t n) {
    fr_btls_input(p->_ssl, c, n);
    if (!p->_tls_up) {
        const char *why = NULL;
        int hs = fr_btls_handshake(p->_ssl, &why);
        tls_flush(p);
        if (hs < 0)
            fail(p, why ? why : "TLS handshake failed");
        if (hs <= 0)
            return;
        p->_tls_up = 1;
        up(p);
    }
    ssize_t got = 0;
    while (!p->_failed && (got = fr_btls_read(p->_ssl, p->_tbuf, sizeof p->_tbuf)) > 0)
        parse_answers(p, p->_tbuf, p->_tbuf + got);
    if (!p->_failed && got < 0)
        fail(p, "the server closed the TLS session");
    if (!p->_failed)
        tls_flush(p);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    fr_pub_t *p = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        fail(p, nread == UV_EOF ? "the server closed the keep-alive connection"
                                : uv_strerror((int)nread));
        return;
    }
    if (p->_ssl)
        tls_read(p, buf->base, (size_t)nread);
    else
        parse_answers(p, buf->base, buf->base + nread);
    if (p->_connected)
        pump(p);
}

static void on_connect(uv_connect_t *req, int status) {
    fr_pub_t *p = req->data;
    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        fail(p, uv_strerror(status));
        return;
    }
    /* Pipelined small requests must not wait for Nagle. */
    uv_tcp_nodelay(&p->_tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&p->_tcp, on_alloc, on_read);
    if (rc < 0) {
        fail(p, uv_strerror(rc));
        return;
    }
    if (p->_opts->tls) {
        /* The ClientHello; the connection is up once the handshake is done (tls_read). */
        const char *why = NULL;
        p->_ssl = fr_btls_new(p->_opts);
        if (!p->_ssl || fr_btls_handshake(p->_ssl, &why) < 0) {
            fail(p, "TLS: cannot start a client");
            return;
        }
        tls_flush(p);
        return;
    }
    up(p);
}

void fr_pub_init(fr_pub_t *p, uv_loop_t *loop, const fr_opts_t *opts) {
    memset(p, 0, sizeof *p);
    p->_loop = loop;
    p->_opts = opts;
    p->g0 = UINT64_MAX;
    p->_nslots = opts->pipeline ? opts->pipeline : 1;
    p->_bufcap = HEADROOM + (opts->payload > FR_PAYLOAD_MIN ? opts->payload : FR_PAYLOAD_MIN);
    p->_slots = fr_calloc(p->_nslots, sizeof *p->_slots);
    for (uint32_t i = 0; i < p->_nslots; i++)
        p->_slots[i].buf = fr_malloc(p->_bufcap);
    uv_tcp_init(loop, &p->_tcp);
    p->_timerfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->_timerfd < 0) {
        perror("freshet-bench: timerfd_create");
        abort();
    }
    uv_poll_init(loop, &p->_tick, p->_timerfd);
    p->_tcp.data = p;
    p->_tick.data = p;
    p->_connect.data = p;
    p->_open = 2;
}

void fr_pub_connect(fr_pub_t *p, fr_pub_cb cb) {
    p->_on_connect = cb;
    int rc = uv_tcp_connect(&p->_connect, &p->_tcp, (const struct sockaddr *)&p->_opts->pub_server,
                            on_connect);
    if (rc < 0)
        fail(p, uv_strerror(rc));
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

static void on_close(uv_handle_t *h) {
    fr_pub_t *p = h->data;
    if (--p->_open > 0)
        return;
    for (uint32_t i = 0; i < p->_nslots; i++) {
        free(p->_slots[i].buf);
        free(p->_slots[i].cbuf);
    }
    free(p->_slots);
    fr_btls_free(p->_ssl);
    p->_ssl = NULL;
    p->_slots = NULL;
    close(p->_timerfd);
    p->_timerfd = -1;
    if (p->_on_closed)
        p->_on_closed(p);
}

void fr_pub_close(fr_pub_t *p, fr_pub_cb on_closed) {
    p->_on_closed = on_closed;
    p->done = 1;
    uv_close((uv_handle_t *)&p->_tcp, on_close);
    uv_close((uv_handle_t *)&p->_tick, on_close);
}
