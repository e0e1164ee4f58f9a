/* JSON string literals (RFC 8259, section 7) that are valid whatever bytes they are made from:
 * the one escaper behind log lines, error bodies and WebSocket envelopes.
 *
 * '"' and '\' are escaped; control characters (U+0000..U+001F) become \n, \r, \t or \u00XX;
 * every byte that does not belong to a well-formed UTF-8 sequence (base/utf8.h) becomes one
 * \ufffd (U+FFFD REPLACEMENT CHARACTER) — a stray byte, a lead byte whose sequence is cut
 * short, each byte of an overlong form, of an encoded surrogate or of a sequence past
 * U+10FFFF. Everything else, well-formed multi-byte sequences included, is copied as is. */
#ifndef FR_JSON_H
#define FR_JSON_H

#include <stddef.h>

#include "base/buf.h"

/* Appends s[0..n) to b as a quoted JSON string. s may hold NUL bytes (written as \u0000). */
void fr_json_put_string(fr_buf_t *b, const char *s, size_t n);

/* Writes s[0..n) as a quoted JSON string into out, which holds cap bytes, and ends it with a
 * NUL; returns the length written (the NUL not counted). When the whole does not fit, it
 * writes as many characters as fit and closes the string: a cut never falls inside a UTF-8
 * sequence or an escape, so the result is always a valid JSON string. cap must be at least 3
 * (two quotes and the NUL); below that out gets an empty C string and 0 is returned. For a
 * NUL-terminated string pass strlen(s). */
size_t fr_json_write_string(char *out, size_t cap, const char *s, size_t n);

#endif
