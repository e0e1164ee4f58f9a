/* Event ids: "<ms>-<seq>", the shape of Redis Stream ids, strictly increasing per topic.
 * Pure codec: no allocation, no I/O. */
#ifndef FR_ID_H
#define FR_ID_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t ms;  /* wall-clock milliseconds when the id was issued */
    uint64_t seq; /* order among ids issued in the same millisecond */
} fr_id_t;

/* Longest text form: two 20-digit numbers, a dash and the terminating NUL. */
#define FR_ID_MAX_LEN 42

/* Parses exactly "<digits>-<digits>" (no sign, no spaces, no leading zeros, no overflow).
 * Returns 0, or -1 when `s` is not an id. */
int fr_id_parse(const char *s, size_t len, fr_id_t *out);

/* Parses a comma-separated list of ids into out[0..max). Returns the count, or -1 when any
 * element is malformed or there are more than `max`. */
int fr_id_parse_list(const char *s, size_t len, fr_id_t *out, size_t max);

/* Writes the text form and a NUL into buf (FR_ID_MAX_LEN bytes); returns its length. */
size_t fr_id_format(fr_id_t id, char *buf);

/* -1, 0 or 1. Inline: every delivery compares the event's id with the stream's position. */
static inline int fr_id_cmp(fr_id_t a, fr_id_t b) {
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq)
        return a.seq < b.seq ? -1 : 1;
    return 0;
}

/* The next id after `last` at wall-clock `now_ms`: the clock going backwards never makes ids
 * go backwards. */
fr_id_t fr_id_next(fr_id_t last, uint64_t now_ms);

#endif
