/* A sink: where a stream's bytes go. A stream never touches a socket; it writes through the
 * small interface below, which an HTTP/1 connection implements today (chunked, or plain until
 * close, or raw after a 101) and which a TLS connection or an HTTP/2 stream can implement
 * next. Many sinks may share one connection (HTTP/2); each sink has at most one writer.
 *
 *   stream ──head──► sink      status line and headers (or HEADERS)
 *          ──write─►           a batch of buffers: taken now, or held until done()
 *          ──end───►           the body is complete (last chunk, END_STREAM)
 *          ──abort─►           stop now (close, RST_STREAM)
 *   stream ◄─gone───  sink     the peer went away: deliver nothing more
 *          ◄─closed─           the sink will call nothing more: the writer may free itself
 *          ◄─data───           bytes the peer sent after a 101 (WebSocket frames)
 *
 * After end() the sink calls nothing on its writer: the writer frees itself once its pending
 * write, if any, is done (the sink stays alive until then).
 *
 * The writer owns the bytes it hands to write(): when write() answers FR_SINK_PENDING the sink
 * keeps pointing into them until it calls done(), and the writer keeps them alive until then.
 * A writer has at most one write pending.
 *
 * write() gets the array itself, with room around it: bufs[-1] and bufs[n] are the sink's to
 * fill, so it frames a body (an HTTP/1 chunk's head and end) in place instead of copying the
 * array. The writer leaves them free and reads nothing back from the array. */
#ifndef FR_SINK_H
#define FR_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct fr_sink_s fr_sink_t;

/* A response head. */
typedef struct {
    int status;
    const char *content_type; /* NULL: none */
    const char *headers;      /* more "Name: value\r\n" lines, or NULL */
    int64_t length;           /* the body's length, or -1 when it is streamed until end() */
} fr_head_t;

/* write() results besides a negative error. */
enum { FR_SINK_DONE = 0, FR_SINK_PENDING = 1 };

/* Called once a pending write has left (status 0) or failed (< 0, e.g. UV_ECANCELED). */
typedef void (*fr_sink_done_cb)(void *ctx, int status);

typedef struct {
    /* Sends the response head; a 101 turns the sink raw (bytes go out as they are). */
    void (*head)(fr_sink_t *sink, const fr_head_t *head);
    /* Writes bufs[0..n) (len bytes in all) as body bytes: FR_SINK_DONE when the sink took them
     * all, FR_SINK_PENDING when it holds part of them until done(ctx, status), or < 0 when it
     * can take nothing (closing, or the write failed: the sink is finished). bufs[-1] and
     * bufs[n] are the sink's (see above). */
    int (*write)(fr_sink_t *sink, uv_buf_t *bufs, size_t n, size_t len, fr_sink_done_cb done,
                 void *ctx);
    /* Bytes accepted but not yet on the wire (the socket's queue, a closed flow-control
     * window): they count against the writer's budget. A sink holds a writer's bytes only
     * while one of its writes is pending, so a writer asks only then. */
    size_t (*queued)(const fr_sink_t *sink);
    /* The body is complete. With reuse = 1 an HTTP/1 connection may carry the client's next
     * request; with 0 it closes once the last bytes are out. */
    void (*end)(fr_sink_t *sink, int reuse);
    /* Stops now: nothing more is sent. */
    void (*abort)(fr_sink_t *sink);
    /* The writer is set up: what the peer sent before it was (WebSocket frames right behind
     * the handshake) may be handed over now. */
    void (*ready)(fr_sink_t *sink);
} fr_sink_ops_t;

/* What the sink tells its writer. */
typedef struct {
    /* The peer is gone or the connection is closing (reason: a static string, or NULL when the
     * client left): write nothing more. */
    void (*gone)(void *owner, const char *reason);
    /* The sink will call nothing more and no write is pending: the owner may free itself. */
    void (*closed)(void *owner);
    /* Bytes the peer sent after a 101 head (a WebSocket's frames); borrowed for the call. */
    void (*data)(void *owner, const char *bytes, size_t len);
} fr_sink_owner_ops_t;

struct fr_sink_s {
    const fr_sink_ops_t *ops;
    const fr_sink_owner_ops_t *owner_ops; /* NULL while no writer is attached */
    void *owner;
};

/* Attaches a writer; the sink calls owner_ops on it from now on. */
static inline void fr_sink_attach(fr_sink_t *sink, const fr_sink_owner_ops_t *ops, void *owner) {
    sink->owner_ops = ops;
    sink->owner = owner;
}

#endif
