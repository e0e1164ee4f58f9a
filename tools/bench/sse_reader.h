/* The client side of an SSE stream: HTTP/1.1 response head, chunked transfer decoding and
 * text/event-stream fields, fed with whatever bytes a read returned. No I/O and no allocation:
 * the state lives in a struct embedded in each connection, and an event's data is reported
 * as the first FR_PAYLOAD_HEAD bytes of its first data line (all freshet-bench needs; the rest
 * is skipped with memchr). An `id:` value is kept whole, up to FR_SSE_ID_MAX - 1 bytes, so a
 * stream can resume with it: freshet's `1732180000123-4` (or one such part per topic), nchan's
 * `1732180000:0`, a plain number.
 *
 *   bytes --> [head: status line, Transfer-Encoding] --> [chunk sizes / chunk data] --+
 *                                                                                     |
 *     hooks <-- on_retry / on_comment / on_event  <-- [SSE lines: field: value\n] <---+
 *
 * Line ends are "\n" or "\r\n" (a lone "\r" is not treated as a line end). A body without
 * chunked encoding is read as is until the connection closes. */
#ifndef FR_SSE_READER_H
#define FR_SSE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "payload.h"

/* Room for an id and its NUL; a longer id is reported as too long. */
#define FR_SSE_ID_MAX 96

typedef struct fr_sse_hooks_s {
    /* A block with at least one data line ended. `event` is the event name ("" when none,
     * cut to 15 bytes), `data` the head of the first data line. Both are borrowed. */
    void (*on_event)(void *ud, const char *event, size_t elen, const char *data, size_t dlen);
    void (*on_comment)(void *ud); /* a line starting with ':' (freshet's heartbeat) */
    void (*on_retry)(void *ud);   /* a retry: line (freshet's first frame) */
    /* A block that ends (blank line) carried an id: line: it sets the stream's last event id,
     * as EventSource does, before on_event for the same block. `id` is borrowed; `len` is 0
     * for an empty id (which clears it), and `too_long` says the id was cut. */
    void (*on_id)(void *ud, const char *id, size_t len, int too_long);
} fr_sse_hooks_t;

typedef struct fr_sse_reader_s {
    uint64_t chunk_left;        /* bytes of chunk data still to come */
    uint16_t status;            /* HTTP status, once the status line is in */
    uint8_t state;              /* where in the response we are (head, chunk framing, body) */
    uint8_t line_state;         /* where in an SSE line we are */
    uint8_t field;              /* which field the current SSE line carries */
    uint8_t flags;              /* FR_SSE_F_* */
    uint8_t llen;               /* bytes in line[] */
    uint8_t dlen;               /* bytes in data[] */
    uint8_t elen;               /* bytes in event[] */
    uint8_t idlen;              /* bytes in id[] */
    char line[32];              /* head of a header line, or an SSE field name */
    char data[FR_PAYLOAD_HEAD]; /* head of the block's first data line */
    char event[16];             /* the block's event name */
    char id[FR_SSE_ID_MAX];     /* the block's id */
} fr_sse_reader_t;

enum {
    FR_SSE_OK = 0,       /* all bytes consumed; feed more */
    FR_SSE_END = 1,      /* the chunked body ended cleanly (terminating chunk) */
    FR_SSE_ESTATUS = -1, /* the head ended with a status other than 200 (see ->status) */
    FR_SSE_EPROTO = -2,  /* not HTTP, or broken chunk framing */
};

void fr_sse_reader_init(fr_sse_reader_t *r);

/* Parses `len` bytes, calling `hooks` with `ud` as it goes. Returns FR_SSE_OK, FR_SSE_END or a
 * negative code; after a non-zero return the reader must not be fed again. */
int fr_sse_reader_feed(fr_sse_reader_t *r, const char *buf, size_t len, const fr_sse_hooks_t *hooks,
                       void *ud);

#endif
