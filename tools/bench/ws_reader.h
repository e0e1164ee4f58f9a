/* The client side of a WebSocket subscription (RFC 6455): the server's answer to the upgrade,
 * then its frames, fed with whatever bytes a read returned. No I/O and no allocation: the state
 * lives in a struct embedded in each connection, like the SSE reader's.
 *
 *   bytes --> [head: 101, Upgrade, Connection, Sec-WebSocket-Accept] --> on_open
 *         --> [frame header: FIN, opcode, length; server frames are never masked]
 *               text / binary / continuation --> [envelope: id, event, type, data] --+
 *               ping --> on_ping (the owner answers with a pong)                      |
 *               close --> FR_WS_CLOSED (the owner answers with a close)               |
 *                                                                                     |
 *     hooks <-- on_id, then on_event, when a message's final frame ended <------------+
 *
 * A message is one JSON envelope (see envelope.h): an event gives on_event with its event name
 * and the head of its data; a notice (a "type" member) gives on_event with the type as the
 * name and no data, so a "dropped" notice reads like SSE's `event: dropped`; anything else
 * gives on_event with neither. An "id" member gives on_id first, as an SSE id: line does. */
#ifndef FR_WS_READER_H
#define FR_WS_READER_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "ws_codec.h"

typedef struct fr_ws_hooks_s {
    void (*on_open)(void *ud); /* the 101 answer was right: the stream started */
    /* Same meanings as the SSE reader's hooks of the same names (sse_reader.h). */
    void (*on_event)(void *ud, const char *event, size_t elen, const char *data, size_t dlen);
    void (*on_id)(void *ud, const char *id, size_t len, int too_long);
    /* A ping with `len` bytes of payload (borrowed), to be echoed in a pong. */
    void (*on_ping)(void *ud, const char *payload, size_t len);
} fr_ws_hooks_t;

typedef struct fr_ws_reader_s {
    uint64_t left;       /* payload bytes of the current frame still to come */
    uint16_t status;     /* HTTP status, once the status line is in */
    uint16_t close_code; /* the code of the server's close frame; 1005 when it had none */
    uint8_t state;       /* where in the answer we are (head, frame header, payload) */
    uint8_t flags;       /* WS_F_* in ws_reader.c */
    uint8_t opcode;      /* the current frame's opcode */
    uint8_t hlen;        /* bytes of the frame header read so far */
    uint8_t hneed;       /* bytes the frame header has in all */
    uint8_t llen;        /* bytes in line[] */
    uint8_t clen;        /* bytes in ctl[] */
    uint8_t hdr[10];     /* the frame header */
    union {
        char line[64];               /* head: a header line */
        char ctl[FR_WS_CONTROL_MAX]; /* frames: a control frame's payload */
    } u;
    char accept[FR_WS_ACCEPT_LEN + 1]; /* what Sec-WebSocket-Accept must say */
    fr_envelope_t env;                 /* the message being read */
} fr_ws_reader_t;

enum {
    FR_WS_OK = 0,        /* all bytes consumed; feed more */
    FR_WS_CLOSED = 1,    /* the server sent a close frame (see ->close_code) */
    FR_WS_ESTATUS = -1,  /* the head ended with a status other than 101 (see ->status) */
    FR_WS_EPROTO = -2,   /* not HTTP, or a frame RFC 6455 forbids a server to send */
    FR_WS_EUPGRADE = -3, /* a 101 without Upgrade: websocket, Connection: Upgrade or the
                            right Sec-WebSocket-Accept */
};

/* Starts a connection that offered `key` (FR_WS_KEY_LEN characters). */
void fr_ws_reader_init(fr_ws_reader_t *r, const char *key);

/* Parses `len` bytes, calling `hooks` with `ud` as it goes. Returns FR_WS_OK or, once and
 * for good, FR_WS_CLOSED or a negative code; the reader must not be fed again after that. */
int fr_ws_reader_feed(fr_ws_reader_t *r, const char *buf, size_t len, const fr_ws_hooks_t *hooks,
                      void *ud);

#endif
