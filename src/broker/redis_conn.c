/* The Redis broker's two connections per worker, one for commands and one in subscribe mode,
 * on the worker's loop: connecting (with a deadline per attempt), reconnecting with backoff and
 * jitter, and a PING a second that drops a command connection which stopped answering. What a
 * connection coming back or going away means for follows and joins is redis_follow.c's. */
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/util.h"

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 5000
#define PING_EVERY_MS 1000
#define PING_DEAD_MS 3000
/* hiredis' libuv adapter drops poll errors, so a refused connect is never reported: each
 * attempt gets a deadline of its own. */
#define CONNECT_TIMEOUT_MS 1000

static void cmd_connect(fr_redis_t *r);
static void sub_connect(fr_redis_t *r);

/* ---- hiredis on the worker's loop ------------------------------------------------------------
 * hiredis' own libuv adapter returns early when libuv reports a poll error, so a connection
 * that dies with an error (or a refused connect) is never noticed. This one hands every error
 * to hiredis as a read, and hiredis then finds the failure and reports the disconnect.
 *
 * hiredis appends each command to its output buffer and asks for the write event. Once the
 * connection is up, this adapter does not wait for the socket to say it is writable: it writes
 * the buffer right after the loop's poll (a check handle; an idle handle keeps the loop from
 * blocking meanwhile), so every command buffered during one loop iteration leaves in one write
 * in that same iteration, and no epoll_ctl is spent per batch. Only a full socket (hiredis asks
 * again from inside that write) or a connect in progress waits for the write event. */

typedef struct {
    uv_poll_t poll;
    uv_idle_t idle;        /* active while commands wait for the check: no blocking poll */
    uv_check_t check;      /* writes them right after this iteration's poll */
    redisAsyncContext *ac; /* NULL once hiredis has let go of the context */
    int events;            /* what the poll waits for */
    int flushing;          /* inside the check's write */
    int open;              /* handles not closed yet: the struct goes with the last */
} redis_io_t;

static void on_io_closed(uv_handle_t *h) {
    redis_io_t *io = h->data;
    if (--io->open == 0)
        free(io);
}

static void on_io(uv_poll_t *h, int status, int events) {
    redis_io_t *io = h->data;
    if (!io->ac)
        return;
    if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))) {
        redisAsyncHandleRead(io->ac);
        if (!io->ac)
            return; /* the read found the end of the connection */
    }
    if (status == 0 && (events & UV_WRITABLE))
        redisAsyncHandleWrite(io->ac);
}

static void io_update(redis_io_t *io, int add, int events) {
    int want = add ? io->events | events : io->events & ~events;
    if (want == io->events)
        return;
    io->events = want;
    if (io->events)
        uv_poll_start(&io->poll, io->events, on_io);
    else
        uv_poll_stop(&io->poll);
}

static void on_idle(uv_idle_t *h) {
    (void)h; /* only keeps the poll from blocking until the check has written */
}

static void on_check(uv_check_t *h) {
    redis_io_t *io = h->data;
    uv_idle_stop(&io->idle);
    uv_check_stop(&io->check);
    if (!io->ac)
        return;
    io->flushing = 1;
    redisAsyncHandleWrite(io->ac); /* may end the connection: io->ac is NULL then */
    io->flushing = 0;
}

static void io_add_read(void *p) {
    io_update(p, 1, UV_READABLE);
}
static void io_del_read(void *p) {
    io_update(p, 0, UV_READABLE);
}
static void io_add_write(void *p) {
    redis_io_t *io = p;
    if (io->flushing || !(io->ac->c.flags & REDIS_CONNECTED)) {
        io_update(io, 1, UV_WRITABLE);
        return;
    }
    if (!uv_is_active((uv_handle_t *)&io->check)) {
        uv_idle_start(&io->idle, on_idle);
        uv_check_start(&io->check, on_check);
    }
}
static void io_del_write(void *p) {
    redis_io_t *io = p;
    io_update(io, 0, UV_WRITABLE);
    uv_idle_stop(&io->idle);
    uv_check_stop(&io->check);
}

static void io_cleanup(void *p) {
    redis_io_t *io = p;
    io->ac = NULL;
    uv_close((uv_handle_t *)&io->poll, on_io_closed);
    uv_close((uv_handle_t *)&io->idle, on_io_closed);
    uv_close((uv_handle_t *)&io->check, on_io_closed);
}

static int io_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    redis_io_t *io = fr_calloc(1, sizeof *io);
    if (uv_poll_init(loop, &io->poll, ac->c.fd) != 0) {
        free(io);
        return -1;
    }
    uv_idle_init(loop, &io->idle);
    uv_check_init(loop, &io->check);
    io->open = 3;
    io->ac = ac;
    io->poll.data = io->idle.data = io->check.data = io;
    ac->ev.data = io;
    ac->ev.addRead = io_add_read;
    ac->ev.delRead = io_del_read;
    ac->ev.addWrite = io_add_write;
    ac->ev.delWrite = io_del_write;
    ac->ev.cleanup = io_cleanup;
    return 0;
}

static redisAsyncContext *connect_ctx(fr_redis_t *r) {
    redisAsyncContext *ac = r->unix_path ? redisAsyncConnectUnix(r->unix_path)
                                         : redisAsyncConnect(r->host, r->port);
    if (!ac)
        return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    if (io_attach(ac, r->loop) < 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    if (r->password) {
        if (r->user)
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", r->user, r->password);
        else
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->password);
    }
    return ac;
}

static unsigned backoff_ms(unsigned attempt) {
    unsigned d = RETRY_BASE_MS << (attempt > 6 ? 6 : attempt);
    if (d > RETRY_CAP_MS)
        d = RETRY_CAP_MS;
    return d * 3 / 4 + (unsigned)rand() % (d / 2 + 1);
}


/* ---- the subscriber connection ------------------------------------------------------------ */

static void on_sub_retry(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->sub_connecting) {
        r->sub_connecting = 0;
        redisAsyncContext *ac = r->sub;
        r->sub = NULL;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
        return;
    }
    sub_connect(r);
}

static void on_sub_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing)
        return;
    r->sub_connecting = 0;
    uv_timer_stop(&r->sub_retry);
    if (status != REDIS_OK) {
        r->sub = NULL;
        uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
        return;
    }
    r->sub_attempt = 0;
    r->sub_ready = 1;
    fr_info("redis: subscriber connected to %s:%d", r->host, r->port);
    fr_redis_follow_resubscribe(r);
}

static void on_sub_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (!r)
        return;
    r->sub = NULL;
    r->sub_ready = 0;
    fr_redis_follow_fail_waiters(r);
    if (r->closing)
        return;
    fr_warn("redis: subscriber connection lost; reconnecting");
    uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
}

static void sub_connect(fr_redis_t *r) {
    if (r->closing)
        return;
    r->sub = connect_ctx(r);
    if (!r->sub) {
        uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
        return;
    }
    redisAsyncSetConnectCallback(r->sub, on_sub_connected);
    redisAsyncSetDisconnectCallback(r->sub, on_sub_disconnected);
    r->sub_connecting = 1;
    uv_timer_start(&r->sub_retry, on_sub_retry, CONNECT_TIMEOUT_MS, 0);
}

/* ---- the command connection --------------------------------------------------------------- */

static void on_cmd_retry(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->cmd_connecting) {
        r->cmd_connecting = 0;
        redisAsyncContext *ac = r->cmd;
        r->cmd = NULL;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
        return;
    }
    cmd_connect(r);
}

static void on_library_loaded(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing || !rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        fr_error("redis: cannot load the freshet functions: %s", rep->str);
        redisAsyncDisconnect(ac);
        return;
    }
    r->cmd_ready = 1;
    r->ping_pending = 0;
    fr_redis_follow_refill_pending(r);
    fr_info("redis: connected to %s:%d, functions loaded", r->unix_path ? r->unix_path : r->host,
            r->port);
}

static void on_cmd_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing)
        return;
    r->cmd_connecting = 0;
    uv_timer_stop(&r->cmd_retry);
    if (status != REDIS_OK) {
        r->cmd = NULL;
        if (r->cmd_attempt == 0)
            fr_warn("redis: cannot connect to %s:%d; retrying", r->host, r->port);
        uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
        return;
    }
    r->cmd_attempt = 0;
    redisAsyncContext *c = r->cmd;
    if (r->db)
        redisAsyncCommand(c, NULL, NULL, "SELECT %d", r->db);
    redisAsyncCommand(c, on_library_loaded, NULL, "FUNCTION LOAD REPLACE %s", fr_redis_library);
}

static void on_cmd_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (!r)
        return;
    r->cmd = NULL;
    r->cmd_ready = 0;
    if (r->closing)
        return;
    fr_warn("redis: command connection lost; publishes answer 503 until it is back");
    uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
}

static void cmd_connect(fr_redis_t *r) {
    if (r->closing)
        return;
    r->cmd = connect_ctx(r);
    if (!r->cmd) {
        uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
        return;
    }
    redisAsyncSetConnectCallback(r->cmd, on_cmd_connected);
    redisAsyncSetDisconnectCallback(r->cmd, on_cmd_disconnected);
    r->cmd_connecting = 1;
    uv_timer_start(&r->cmd_retry, on_cmd_retry, CONNECT_TIMEOUT_MS, 0);
}

/* ---- the tick ------------------------------------------------------------------------------ */

static void on_pong(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    if (r && reply)
        r->ping_pending = 0;
}

/* Once a second: a command connection that stopped answering is dropped (it reconnects),
 * presence is written and read (redis_presence.c), and topics nobody followed for a while are
 * unsubscribed. */
static void on_tick(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    uint64_t now = fr_mono_ms();
    if (r->cmd_ready) {
        if (r->ping_pending && now - r->ping_sent > PING_DEAD_MS) {
            fr_warn("redis: no answer for %d ms; reconnecting", PING_DEAD_MS);
            /* Not redisAsyncDisconnect: it waits for the replies that are not coming. Freeing
             * answers every pending command (publishes get 503) and reports the disconnect. */
            r->ping_pending = 0;
            redisAsyncFree(r->cmd);
        } else if (!r->ping_pending) {
            r->ping_pending = 1;
            r->ping_sent = now;
            redisAsyncCommand(r->cmd, on_pong, NULL, "PING");
        }
    }
    if (r->cmd_ready)
        fr_redis_presence_tick(r, now);
    if (r->sub_ready)
        fr_redis_follow_sweep(r, now);
}

void fr_redis_conn_start(fr_redis_t *r) {
    uv_timer_start(&r->tick, on_tick, PING_EVERY_MS, PING_EVERY_MS);
    cmd_connect(r);
    sub_connect(r);
}
