/* The JSON object a WebSocket message carries, read as it arrives: freshet's envelope
 *
 *     {"v":1,"topic":"t0","id":"1732176000000-1","event":"message","data":"{\"t\":…,\"s\":…}"}
 *     {"v":1,"type":"dropped","dropped":3}
 *
 * Only four members of the top-level object are kept, wherever they stand and however the
 * message is cut into frames and reads: "id" (whole, up to FR_SSE_ID_MAX - 1 bytes), "event"
 * and "type" (cut to 15 bytes), and the head of "data" (FR_PAYLOAD_HEAD bytes). "data" may be a
 * string, whose escapes are undone (a \uXXXX beyond ASCII becomes '?': the payload's fields
 * are ASCII), or any other JSON value, kept as its raw text; freshet sends the publish body as
 * a string, or as the value itself when it was published from a Lua table. Everything else is
 * skipped byte by byte without being copied. No I/O and no allocation: the state is a struct
 * embedded in the connection's reader.
 *
 * The scanner is lenient: it follows the structure of a well-formed object and marks the
 * message as not an envelope at the first byte that does not fit (fr_envelope_t.ok stays 0);
 * it does not check numbers, literals or UTF-8. */
#ifndef FR_ENVELOPE_H
#define FR_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "payload.h"
#include "sse_reader.h"

#define FR_ENV_HAVE_ID 0x01   /* the object had an "id" member that is a string */
#define FR_ENV_ID_LONG 0x02   /* that id did not fit in id[] */
#define FR_ENV_HAVE_TYPE 0x04 /* the object had a "type" member: a notice, not an event */
#define FR_ENV_HAVE_DATA 0x08 /* the object had a "data" member */

typedef struct fr_envelope_s {
    /* read-only, complete once fr_envelope_end() returned */
    uint8_t ok;    /* the message was one JSON object, closed */
    uint8_t flags; /* FR_ENV_* */
    uint8_t idlen, elen, tlen, dlen;
    char id[FR_SSE_ID_MAX];
    char event[16];
    char type[16];
    char data[FR_PAYLOAD_HEAD];

    /* private */
    uint8_t _state;
    uint8_t _member; /* which member's value is being read */
    uint8_t _klen;   /* bytes in _key */
    uint8_t _raw;    /* inside a nested value: in a string, after a backslash */
    uint8_t _uleft;  /* hex digits of a \u escape still to come */
    uint16_t _ucode; /* the \u escape so far */
    uint32_t _depth; /* nesting inside a value that is an object or an array */
    char _key[8];    /* the member name, enough to tell the four apart */
} fr_envelope_t;

/* Starts a message. */
void fr_envelope_init(fr_envelope_t *e);

/* Reads `len` more bytes of the message. */
void fr_envelope_feed(fr_envelope_t *e, const char *p, size_t len);

/* The message is complete: sets `ok`, and returns it. */
int fr_envelope_end(fr_envelope_t *e);

#endif
