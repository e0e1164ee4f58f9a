/* Server-Sent Events framing (WHATWG HTML, "server-sent events"). Pure codec: no I/O. */
#ifndef FR_SSE_H
#define FR_SSE_H

#include <stddef.h>

/* 1 when a field value (event name, id, topic) holds no CR, LF or NUL: such a byte would end
 * the line and let the value inject fields of its own. */
int fr_sse_field_ok(const char *s, size_t len);

/* Size of the event body: optional "event: <name>\n", one "data: <line>\n" per line of data
 * (LF, CR and CRLF all end a line, as the client splits them) and the closing "\n". */
size_t fr_sse_body_size(const char *name, size_t name_len, const char *data, size_t data_len);

/* Writes the body described above into out (fr_sse_body_size bytes); returns bytes written.
 * The caller has checked name with fr_sse_field_ok. name may be NULL. */
size_t fr_sse_body_write(char *out, const char *name, size_t name_len, const char *data,
                         size_t data_len);

#endif
