#include "broker/redis_io.h"

#include <stdlib.h>

#include "base/util.h"

typedef struct {
    uv_poll_t handle;
    redisAsyncContext *ac; /* NULL once hiredis has called cleanup */
    int wanted;            /* UV_READABLE | UV_WRITABLE that hiredis asked for */
} io_t;

static void on_handle_closed(uv_handle_t *h) {
    free(FR_CONTAINER_OF((uv_poll_t *)h, io_t, handle));
}

static void on_poll(uv_poll_t *h, int status, int events) {
    io_t *io = FR_CONTAINER_OF(h, io_t, handle);
    /* An error or a hang-up goes to hiredis as a read: the read finds what went wrong and
     * hiredis reports the disconnect, which may run cleanup (io->ac becomes NULL). */
    if (io->ac && (status < 0 || (events & (UV_READABLE | UV_DISCONNECT))))
        redisAsyncHandleRead(io->ac);
    if (io->ac && status == 0 && (events & UV_WRITABLE))
        redisAsyncHandleWrite(io->ac);
}

static void want(io_t *io, int on, int what) {
    int before = io->wanted;
    io->wanted = on ? before | what : before & ~what;
    if (io->wanted == before)
        return;
    if (io->wanted)
        uv_poll_start(&io->handle, io->wanted, on_poll);
    else
        uv_poll_stop(&io->handle);
}

static void add_read(void *p) { want(p, 1, UV_READABLE); }
static void del_read(void *p) { want(p, 0, UV_READABLE); }
static void add_write(void *p) { want(p, 1, UV_WRITABLE); }
static void del_write(void *p) { want(p, 0, UV_WRITABLE); }

static void cleanup(void *p) {
    io_t *io = p;
    io->ac = NULL;
    uv_close((uv_handle_t *)&io->handle, on_handle_closed);
}

int fr_redis_io_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    io_t *io = fr_calloc(1, sizeof *io);
    if (uv_poll_init(loop, &io->handle, ac->c.fd) != 0) {
        free(io);
        return -1;
    }
    io->ac = ac;
    ac->ev.data = io;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
