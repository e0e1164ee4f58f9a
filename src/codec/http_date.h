/* Validators of conditional requests (RFC 9110 §8.8, §13): HTTP-dates and entity tags. Pure
 * functions over client bytes: no I/O, no allocation. */
#ifndef FR_HTTP_DATE_H
#define FR_HTTP_DATE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), without its NUL. */
#define FR_HTTP_DATE_LEN 29

/* Parses an IMF-fixdate into seconds since the epoch: 0, or -1 when s (NUL-terminated) is not
 * one. The obsolete forms (RFC 850, asctime) are refused: a sender must not produce them, and
 * a cache validator that cannot be read is ignored, which costs a full answer only. */
int fr_http_date_parse(const char *s, int64_t *out);

/* Writes the IMF-fixdate of t (UTC, seconds since the epoch, >= 0) and a NUL into
 * out[FR_HTTP_DATE_LEN + 1]. */
void fr_http_date_format(int64_t t, char *out);

/* 1 when an If-None-Match value matches etag (a quoted strong tag as the server sends it): the
 * value is "*" or lists the tag, compared weakly (a W/ prefix is ignored, RFC 9110 §13.1.2);
 * else 0. A malformed list matches nothing from the point it stops making sense. */
int fr_http_etag_match(const char *list, const char *etag);

#endif
