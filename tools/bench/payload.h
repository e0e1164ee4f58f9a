/* The publish body: a JSON object whose first fields carry what a subscriber needs to check a
 * delivery, padded to the requested size:
 *
 *     {"t":1718000000123456789,"s":42,"k":3,"w":0,"p":"xxxx...xxxx"}
 *
 *   t  scheduled send time, ns since the epoch (the latency clock starts here, not at the send)
 *   s  sequence number within the topic, from 0
 *   k  topic index (the stream knows which topic it asked for; a mismatch is an error)
 *   w  1 when published during warmup: checked for order but not measured
 *   p  padding
 *
 * The fixed order lets a subscriber parse only the first FR_PAYLOAD_HEAD bytes of the data
 * line, which it copies into a small buffer it already owns. No I/O here. */
#ifndef FR_PAYLOAD_H
#define FR_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* Longest possible text before "p": enough for the subscriber to capture. */
#define FR_PAYLOAD_HEAD 80
/* The smallest body: fields at their longest plus an empty padding string. */
#define FR_PAYLOAD_MIN 80

typedef struct fr_payload_s {
    uint64_t t;     /* scheduled time, realtime ns */
    uint64_t seq;   /* per-topic sequence number */
    uint32_t topic; /* topic index */
    int warmup;     /* published during warmup */
} fr_payload_t;

/* Writes a body of exactly `size` bytes (or the shortest possible body when `size` is too
 * small) into `out`, which holds at least max(size, FR_PAYLOAD_MIN) bytes. Returns its length. */
size_t fr_payload_format(char *out, const fr_payload_t *p, size_t size);

/* Parses the head of a body (the first `len` bytes, possibly cut short after the "w" field).
 * Returns 0, or -1 when it is not a freshet-bench payload. */
int fr_payload_parse(const char *data, size_t len, fr_payload_t *out);

#endif
