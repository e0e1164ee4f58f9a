/* Server-Sent Events as a stream transport, and long-poll, which answers with the same
 * event-stream body once per request:
 *
 *   sse   200 text/event-stream, "retry:" first, then events as they come, ":" heartbeats
 *   poll  one 200 with what is there (or 204 after the poll timeout), Content-Length, and
 *         the connection goes on to the client's next request */
#ifndef FR_TRANSPORT_SSE_H
#define FR_TRANSPORT_SSE_H

#include "stream/stream.h"

extern const fr_transport_t fr_transport_sse;
extern const fr_transport_t fr_transport_poll;

/* 1 when an Accept header lets the client take text/event-stream (or there is none). */
int fr_sse_accepts(const char *accept);
/* 1 when an Accept header names text/event-stream itself, as a browser's EventSource does
 * (curl's default, any type, does not). */
int fr_sse_asks(const char *accept);

#endif
