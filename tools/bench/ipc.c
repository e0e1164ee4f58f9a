/* Length-prefixed records over a socketpair; see ipc.h. */
#include "ipc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct record_s {
    uv_write_t req;
    uint32_t head[2]; /* type, length */
    char payload[];
} record_t;

static void on_write(uv_write_t *req, int status) {
    free(FR_CONTAINER_OF(req, record_t, req));
}

int fr_ipc_send(fr_ipc_t *ch, uint32_t type, const void *data, size_t len) {
    if (ch->_closing)
        return UV_ECANCELED;
    record_t *r = fr_malloc(sizeof *r + len);
    r->head[0] = type;
    r->head[1] = (uint32_t)len;
    memcpy(r->payload, data, len);
    uv_buf_t b = uv_buf_init((char *)r->head, (unsigned)(sizeof r->head + len));
    int rc = uv_write(&r->req, (uv_stream_t *)&ch->pipe, &b, 1, on_write);
    if (rc < 0)
        free(r);
    return rc;
}

static void on_close(uv_handle_t *h) {
    fr_ipc_t *ch = h->data;
    free(ch->_buf);
    ch->_buf = NULL;
    if (ch->_on_closed)
        ch->_on_closed(ch);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    fr_ipc_t *ch = h->data;
    if (ch->_cap - ch->_len < 65536) {
        ch->_cap = ch->_cap ? ch->_cap * 2 : 131072;
        char *nb = realloc(ch->_buf, ch->_cap);
        if (!nb) {
            fprintf(stderr, "freshet-bench: out of memory at %s:%d\n", __FILE__, __LINE__);
            abort();
        }
        ch->_buf = nb;
    }
    *buf = uv_buf_init(ch->_buf + ch->_len, (unsigned)(ch->_cap - ch->_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    fr_ipc_t *ch = s->data;
    if (nread < 0) {
        uv_read_stop(s);
        ch->eof = 1;
        if (ch->_on_eof)
            ch->_on_eof(ch);
        return;
    }
    ch->_len += (size_t)nread;
    size_t off = 0;
    while (ch->_len - off >= 8) {
        uint32_t head[2];
        memcpy(head, ch->_buf + off, sizeof head);
        if (ch->_len - off - 8 < head[1])
            break;
        ch->_on_record(ch, head[0], ch->_buf + off + 8, head[1]);
        off += 8 + (size_t)head[1];
    }
    memmove(ch->_buf, ch->_buf + off, ch->_len - off);
    ch->_len -= off;
}

int fr_ipc_open(fr_ipc_t *ch, uv_loop_t *loop, int fd, fr_ipc_record_cb on_record,
                fr_ipc_cb on_eof) {
    memset(ch, 0, sizeof *ch);
    ch->_on_record = on_record;
    ch->_on_eof = on_eof;
    int rc = uv_pipe_init(loop, &ch->pipe, 0);
    if (rc < 0)
        return rc;
    ch->pipe.data = ch;
    if ((rc = uv_pipe_open(&ch->pipe, fd)) < 0)
        return rc;
    return uv_read_start((uv_stream_t *)&ch->pipe, on_alloc, on_read);
}

/* Queued writes complete before a shutdown does, so closing from the shutdown callback loses
 * no record (uv_close alone would cancel them). */
static void on_shutdown(uv_shutdown_t *req, int status) {
    fr_ipc_t *ch = req->data;
    ch->_shut = 2;
    if (ch->_closing)
        uv_close((uv_handle_t *)&ch->pipe, on_close);
}

static void start_shutdown(fr_ipc_t *ch) {
    if (ch->_shut)
        return;
    ch->_shutdown.data = ch;
    /* Fails when the other end is gone: there is nobody left to tell. */
    ch->_shut = uv_shutdown(&ch->_shutdown, (uv_stream_t *)&ch->pipe, on_shutdown) < 0 ? 2 : 1;
}

void fr_ipc_shutdown(fr_ipc_t *ch) {
    start_shutdown(ch);
}

void fr_ipc_close(fr_ipc_t *ch, fr_ipc_cb on_closed) {
    if (ch->_closing)
        return;
    ch->_closing = 1;
    ch->_on_closed = on_closed;
    start_shutdown(ch);
    if (ch->_shut == 2)
        uv_close((uv_handle_t *)&ch->pipe, on_close);
}
