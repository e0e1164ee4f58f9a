#include "broker/redis_io.h"

#include <stdlib.h>

#include "base/util.h"

/* hiredis on a worker's loop, for the broker's connections and freshet.redis's
 * (client/redis_client.c).
 *
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
    void (*before_write)(redisAsyncContext *ac); /* optional: fills the buffer last thing */
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
    if (io->before_write)
        io->before_write(io->ac);
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

int fr_redis_io_attach(redisAsyncContext *ac, uv_loop_t *loop,
                       void (*before_write)(redisAsyncContext *ac)) {
    redis_io_t *io = fr_calloc(1, sizeof *io);
    if (uv_poll_init(loop, &io->poll, ac->c.fd) != 0) {
        free(io);
        return -1;
    }
    uv_idle_init(loop, &io->idle);
    uv_check_init(loop, &io->check);
    io->open = 3;
    io->ac = ac;
    io->before_write = before_write;
    io->poll.data = io->idle.data = io->check.data = io;
    ac->ev.data = io;
    ac->ev.addRead = io_add_read;
    ac->ev.delRead = io_del_read;
    ac->ev.addWrite = io_add_write;
    ac->ev.delWrite = io_del_write;
    ac->ev.cleanup = io_cleanup;
    return 0;
}

void fr_redis_io_want_write(redisAsyncContext *ac) {
    io_add_write(ac->ev.data);
}
