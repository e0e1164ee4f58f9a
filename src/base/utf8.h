/* UTF-8 as the Unicode Standard defines it (chapter 3, table 3-7 "well-formed UTF-8 byte
 * sequences"): no overlong forms, no surrogates (U+D800..U+DFFF), nothing past U+10FFFF. Event
 * payloads, topics and every JSON string the server writes are checked against it. */
#ifndef FR_UTF8_H
#define FR_UTF8_H

#include <stddef.h>

/* 1 when s[0..len) is well-formed UTF-8, 0 otherwise. */
int fr_utf8_valid(const char *s, size_t len);

/* The length (1 to 4) of the well-formed sequence that starts at s, which holds len bytes; 0
 * when len is 0 or the bytes at s start no well-formed sequence (a stray continuation byte, a
 * lead byte that can never start one, a sequence cut short by the end or by a byte that does
 * not continue it). A caller that replaces bad input skips one byte on 0 and looks again. */
size_t fr_utf8_next(const char *s, size_t len);

#endif
