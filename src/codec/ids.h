/* Multi-topic ids: where a stream stands in every topic it follows, as one Last-Event-ID.
 * Pure codec: no allocation, no I/O.
 *
 * One topic: its own id, "<ms>-<seq>" (codec/id.h). Several: "v1" and base64url digits
 * (A-Z a-z 0-9 - _: nothing to escape in an SSE id: line, a header or a query string):
 *
 *   v1 <hi> <span> <topic> <topic> …      one <topic> per topic, in the stream's order
 *
 *   hi     the newest millisecond of all the positions
 *   span   hi minus the oldest (lo = hi - span)
 *   topic  a delta to the nearer end: ms = hi - delta, or ms = lo + delta; then the seq,
 *          present only when it is not 0
 *
 * A number is written in groups of 5 bits, lowest first, one digit per group; a digit's bit 5
 * (value 32) says that another digit follows. A topic's first digit holds two flags and only 3
 * bits of its delta:
 *
 *   bit:   5      4            3               2 1 0
 *          more   seq follows  counts from lo  delta, lowest bits
 *
 * So a topic at either end costs one digit ("A" at the newest), one within 256 ms of an end two,
 * within 8 s three, 4 min four, 2 h five (and the seq's digits when it is not 0). 64 topics
 * that moved within the last hour: at most 2 + 9 + 5 + 64 × 5 = 336 bytes, where comma-joined
 * ids took 64 × 16 - 1 = 1023.
 *
 * Every list of positions has exactly one spelling (shortest digits, hi and lo attained, the
 * nearer end, ties to hi), so an id cannot be smuggled past a comparison made on its text.
 * Comma-joined ids ("<ms>-<seq>,<ms>-<seq>…", what streams sent before) are still read. */
#ifndef FR_IDS_H
#define FR_IDS_H

#include <stddef.h>

#include "codec/id.h"

/* Room for the text of n positions and its NUL. */
size_t fr_ids_max_len(size_t n);

/* Writes the id of n positions and a NUL into buf (fr_ids_max_len(n) bytes): "" for none, the
 * plain id for one, the v1 form for several. Returns its length. */
size_t fr_ids_format(const fr_id_t *ids, size_t n, char *buf);

/* Reads an id sent back by a client: a plain id, comma-joined ids, or the v1 form, into
 * out[0..max). Returns how many positions it holds, or -1 with *why saying what is wrong (a
 * static string) when it is none of those or holds more than max. */
int fr_ids_parse(const char *s, size_t len, fr_id_t *out, size_t max, const char **why);

#endif
