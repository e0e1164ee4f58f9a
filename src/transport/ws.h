/* WebSocket as a stream transport: the handshake on a stream route, events as JSON envelope
 * text frames, pings, and what clients send (subscribe, unsubscribe, resume, ping, and
 * messages for the route's `message` hook).
 *
 *   envelope: {"v":1,"topic":"room:1","id":"1732176000000-0","event":"message","data":…}
 *   control:  {"v":1,"type":"dropped"|"reset"|"subscribed"|"error"|"pong", …}
 *
 * The id is the one an SSE client would see (the positions of every topic for a stream that
 * follows several), so the same resume logic serves every transport. */
#ifndef FR_TRANSPORT_WS_H
#define FR_TRANSPORT_WS_H

#include <lua.h>
#include <stddef.h>

#include "codec/http.h"
#include "core/config.h"
#include "stream/stream.h"

extern const fr_transport_t fr_transport_ws;

/* 1 when the request asks to upgrade to WebSocket. */
int fr_ws_wants_upgrade(const fr_request_t *req);

/* A handshake that cannot be answered with 101. */
typedef struct {
    int status;          /* 400, 403 or 426 */
    const char *message; /* for the error body */
    const char *headers; /* more header lines for the answer, or NULL */
} fr_ws_refusal_t;

/* Checks the handshake headers. Returns 0 with the transport's state for the stream (which
 * takes it, with req_ref: the request table that later topics hooks get); -1 with *why. */
int fr_ws_handshake(const fr_request_t *req, const fr_config_t *cfg, int req_ref,
                    void **state, fr_ws_refusal_t *why);
/* The event's envelope frame for a stream that follows one topic: built once, cached on the
 * event (borrowed while the event lives). */
const char *fr_ws_event_frame(fr_event_t *ev, size_t *len);
/* The envelope frame with another id (a stream that follows several topics). Caller frees. */
char *fr_ws_event_frame_with_id(const fr_event_t *ev, const char *id, size_t *len);

/* Frees a state that never reached a stream (the open refused it), releasing its req_ref. */
void fr_ws_state_discard(void *state, lua_State *L);

#endif
