/* WebSocket as a stream transport: the handshake on a stream route, events as JSON envelope
 * text frames, and what clients send (subscribe, unsubscribe, resume, and messages for the
 * route's `message` hook).
 *
 *   envelope: {"v":1,"topic":"room:1","id":"1732176000000-0","event":"message","data":…}
 *   control:  {"v":1,"type":"dropped"|"reset"|"subscribed"|"error"|"pong", …}
 *
 * The id is the one an SSE client would see (the positions of every topic for a stream that
 * follows several), so the same resume logic serves every transport. */
#ifndef FR_WS_STREAM_H
#define FR_WS_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

struct fr_conn_s;
struct fr_stream_s;

/* 1 when the request asks to upgrade to WebSocket. */
int fr_ws_wants_upgrade(struct fr_conn_s *c);

/* Checks the handshake headers. Returns 0 with the accept key (and whether the client offered
 * the freshet.v1 subprotocol), or -1 after answering (400, 403 or 426). */
int fr_ws_check_handshake(struct fr_conn_s *c, char accept[29], int *proto);
/* Writes the 101 answer. */
void fr_ws_send_handshake(struct fr_conn_s *c, const char *accept, int proto);

/* The event's envelope frame for a stream that follows one topic: built once, cached on the
 * event (borrowed while the event lives). */
const char *fr_ws_event_frame(fr_event_t *ev, size_t *len);
/* The envelope frame with another id (a stream that follows several topics). Caller frees. */
char *fr_ws_event_frame_with_id(const fr_event_t *ev, const char *id, size_t *len);

/* A text frame holding payload; a close frame. Caller frees. */
char *fr_ws_text_frame(const char *payload, size_t len, size_t *out_len);
char *fr_ws_close_frame(uint16_t code, const char *reason, size_t *out_len);

/* Bytes the client sent on an open WebSocket stream. */
void fr_ws_on_read(struct fr_stream_s *s, const char *data, size_t len);

/* The close code for a stream ending for `reason` (see fr_stream_t.end_reason). */
uint16_t fr_ws_close_code(const char *reason, const char **text);

extern const char fr_ws_ping_frame[2];

#endif
