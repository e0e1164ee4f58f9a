/* WebSocket (RFC 6455), server side: the handshake's accept key, an incremental parser for the
 * frames a client sends, and headers for the frames the server sends. Pure codec: no I/O.
 *
 *   socket bytes ──fr_ws_parse──► FR_WS_MESSAGE (text/binary reassembled, ping/pong/close)
 *                      │          FR_WS_NEED_MORE (all bytes kept, feed the next read)
 *                      └────────► FR_WS_ERROR (send a close with msg.close_code, then hang up)
 *
 * The parser owns its buffers; a message's bytes are borrowed until the next call. */
#ifndef FR_WS_H
#define FR_WS_H

#include <stddef.h>
#include <stdint.h>

#define FR_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum {
    FR_WS_OP_CONT = 0,
    FR_WS_OP_TEXT = 1,
    FR_WS_OP_BINARY = 2,
    FR_WS_OP_CLOSE = 8,
    FR_WS_OP_PING = 9,
    FR_WS_OP_PONG = 10
};

enum {
    FR_WS_CLOSE_NORMAL = 1000,
    FR_WS_CLOSE_GOING_AWAY = 1001,
    FR_WS_CLOSE_PROTOCOL = 1002,
    FR_WS_CLOSE_UNSUPPORTED = 1003,
    FR_WS_CLOSE_NO_STATUS = 1005, /* reported, never sent */
    FR_WS_CLOSE_INVALID = 1007,
    FR_WS_CLOSE_POLICY = 1008,
    FR_WS_CLOSE_TOO_BIG = 1009,
    FR_WS_CLOSE_INTERNAL = 1011,
    FR_WS_CLOSE_TRY_AGAIN = 1013,
};

/* fr_ws_parse results. */
#define FR_WS_NEED_MORE 0
#define FR_WS_MESSAGE 1
#define FR_WS_ERROR (-1)

typedef struct {
    int opcode;       /* FR_WS_OP_TEXT, _BINARY, _PING, _PONG or _CLOSE; 0 on error */
    const char *data; /* payload, NUL-terminated (never NULL); borrowed until the next call */
    size_t len;
    uint16_t close_code; /* close: the peer's code, 1005 when it sent none; error: code to send */
    const char *reason;  /* close: the peer's reason, inside data; error: static ASCII text */
    size_t reason_len;
} fr_ws_msg_t;

typedef struct fr_ws_parser_s {
    size_t max_size; /* largest data message accepted, summed over its fragments */
    /* Private. */
    int _state, _fin, _op; /* the frame being read */
    uint8_t _hdr[14];      /* its header, up to 2 + 8 length bytes + 4 mask bytes */
    size_t _hdr_have, _hdr_need;
    uint64_t _frame_len, _frame_pos;
    int _msg_op; /* opcode of the open data message, 0 when none */
    char *_buf;  /* owned: the data message reassembled from its fragments */
    size_t _buf_len, _buf_cap;
    char _ctrl[126];                    /* the control frame's payload and a NUL */
    int _utf8_need, _utf8_lo, _utf8_hi; /* where a text message's UTF-8 check stands */
    int _delivered;                     /* a data message was returned: reset it on the next call */
    uint16_t _err_code;                 /* non-zero once an error was returned: errors are final */
    const char *_err_reason;
} fr_ws_parser_t;

void fr_ws_parser_init(fr_ws_parser_t *p, size_t max_size);
/* Frees the parser's buffers; messages it returned are no longer valid. */
void fr_ws_parser_close(fr_ws_parser_t *p);

/* Reads frames from data[0..len) and sets *consumed to the bytes used. FR_WS_MESSAGE: *msg
 * holds one message; call again with the bytes that remain. Pings, pongs and closes come back
 * as they arrive, even between the fragments of a data message. FR_WS_NEED_MORE: every byte
 * was used and kept. FR_WS_ERROR: msg->close_code is 1002 (protocol), 1007 (text or close
 * reason not UTF-8) or 1009 (over max_size), msg->reason says why; every later call fails the
 * same. After a close the peer may send nothing more (§5.5.1), so the caller stops reading. */
int fr_ws_parse(fr_ws_parser_t *p, const char *data, size_t len, size_t *consumed,
                fr_ws_msg_t *msg);

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (surrounding spaces ignored): 28
 * characters and a NUL in out. Returns 0, or -1 when the key is not base64 of 16 bytes. */
int fr_ws_accept_key(const char *client_key, size_t len, char out[29]);

/* Writes an unmasked frame header; returns its length (2, 4 or 10). payload_len < 2^63. */
size_t fr_ws_header(uint8_t out[10], int opcode, uint64_t payload_len, int fin);

/* Writes a close frame's payload: the code and as much of the NUL-terminated reason (may be
 * NULL) as fits, cut on a UTF-8 boundary. Code 0 or 1005 gives the empty payload. Returns its
 * length. */
size_t fr_ws_close_payload(uint8_t out[125], uint16_t code, const char *reason);

/* 1 when a close frame may carry this code (RFC 6455 §7.4 and the IANA registry). */
int fr_ws_close_code_ok(unsigned code);

#endif
