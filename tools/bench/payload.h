/* The publish body: a JSON object whose first fields carry what a subscriber needs to check a
 * delivery, padded to the requested size:
 *
 *     {"t":1718000000123456789,"s":42,"k":3,"w":0,"p":"xxxx...xxxx"}
 *     {"t":1718000000123456789,"s":42,"k":3,"c":2,"g":517,"w":0,"p":"xxxx...xxxx"}
 *
 *   t  scheduled send time, ns since the epoch (the latency clock starts here, not at the send)
 *   s  sequence number within the topic, from 0; with several publishing connections, within
 *      the topic and the connection
 *   k  topic index (the stream knows which topic it asked for; a mismatch is an error)
 *   c  --pub-conns above 1 only: index of the publishing connection
 *   g  --pub-conns above 1 only: the event's global index (the publisher's count)
 *   w  1 when published during warmup: checked for order but not measured
 *   p  padding
 *
 * Why "c" and "g": publishes on different connections may be stored in another order than they
 * were sent, so order is only defined per connection; "g" tells a resumed stream whether an
 * event was published after a --storm drop. With one connection the second form is never sent
 * (g is then s * topics + k) and the body keeps its smaller minimum size.
 *
 * The fixed order lets a subscriber parse only the first FR_PAYLOAD_HEAD bytes of the data
 * line, which it copies into a small buffer it already owns. No I/O here. */
#ifndef FR_PAYLOAD_H
#define FR_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* Longest possible text before "p" (with "c" and "g"): enough for the subscriber to capture. */
#define FR_PAYLOAD_HEAD 120
/* The smallest body: fields at their longest plus an empty padding string, without "c" and
 * "g" (one publishing connection) and with them (connection index below 10,000). */
#define FR_PAYLOAD_MIN 80
#define FR_PAYLOAD_MIN_CONNS 120

typedef struct fr_payload_s {
    uint64_t t;     /* scheduled time, realtime ns */
    uint64_t seq;   /* per-topic (and per-connection) sequence number */
    uint64_t g;     /* global index; only when `conns` */
    uint32_t topic; /* topic index */
    uint32_t conn;  /* publishing connection; 0 unless `conns` */
    int conns;      /* the body carries "c" and "g" (several publishing connections) */
    int warmup;     /* published during warmup */
} fr_payload_t;

/* Writes a body of exactly `size` bytes (or the shortest possible body when `size` is too
 * small) into `out`, which holds at least max(size, FR_PAYLOAD_MIN_CONNS) bytes. "c" and "g"
 * are written when p->conns is set. Returns its length. */
size_t fr_payload_format(char *out, const fr_payload_t *p, size_t size);

/* Parses the head of a body (the first `len` bytes, possibly cut short after the "w" field),
 * either form. Returns 0, or -1 when it is not a freshet-bench payload. */
int fr_payload_parse(const char *data, size_t len, fr_payload_t *out);

#endif
