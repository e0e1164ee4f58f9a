/* The client's side of the WebSocket handshake and the few frames a subscriber sends (RFC 6455):
 * the Sec-WebSocket-Key it offers, the Sec-WebSocket-Accept the server must answer with, and
 * masked control frames (pong, close). No I/O and no allocation.
 *
 *   accept = base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
 *
 * SHA-1 is here only for that check: the tool needs no cryptographic strength from it, and its
 * own small implementation keeps freshet-bench free of libraries besides libuv. */
#ifndef FR_WS_CODEC_H
#define FR_WS_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Characters of a key (16 bytes in base64) and of an accept value (20 bytes in base64). */
#define FR_WS_KEY_LEN 24
#define FR_WS_ACCEPT_LEN 28

/* Opcodes (RFC 6455, 5.2). */
enum {
    FR_WS_OP_CONT = 0x0,
    FR_WS_OP_TEXT = 0x1,
    FR_WS_OP_BINARY = 0x2,
    FR_WS_OP_CLOSE = 0x8,
    FR_WS_OP_PING = 0x9,
    FR_WS_OP_PONG = 0xA,
};

/* The longest control frame payload, and so the longest frame fr_ws_control() writes. */
#define FR_WS_CONTROL_MAX 125
#define FR_WS_CONTROL_FRAME_MAX (2 + 4 + FR_WS_CONTROL_MAX)

/* SHA-1 of `len` bytes into `out`. */
void fr_sha1(const void *data, size_t len, uint8_t out[20]);

/* Standard base64 with padding of `n` bytes into `out`, which holds 4 * ((n + 2) / 3) + 1
 * bytes; returns the length written, not counting the NUL. */
size_t fr_base64(const uint8_t *in, size_t n, char *out);

/* The key a client offers, from 16 random bytes: FR_WS_KEY_LEN characters and a NUL. */
void fr_ws_key(const uint8_t nonce[16], char key[FR_WS_KEY_LEN + 1]);

/* The Sec-WebSocket-Accept value for `key` (`len` bytes): FR_WS_ACCEPT_LEN characters and a
 * NUL. */
void fr_ws_accept(const char *key, size_t len, char accept[FR_WS_ACCEPT_LEN + 1]);

/* Writes a final, masked frame with `opcode` and at most FR_WS_CONTROL_MAX bytes of `payload`
 * (more are cut) into `out`, which holds FR_WS_CONTROL_FRAME_MAX bytes. Returns its length. */
size_t fr_ws_control(char *out, int opcode, const void *payload, size_t len, const uint8_t mask[4]);

#endif
