/* Access-log lines: one per HTTP answer and per stream end, as text or as a JSON object. Pure
 * codec: the caller gives the time and the bytes; base/linefile.h writes them out.
 *
 * The request target is logged without secrets: in its query, the value of every key whose
 * name (percent-decoded, any case) contains token, key, secret, passw, auth, jwt, sig,
 * session or credential becomes REDACTED; other pairs are kept as sent. Whatever bytes the
 * target holds, a text line stays one line (control bytes, spaces, quotes, backslashes and
 * non-ASCII bytes are written as \xHH) and a JSON line stays valid JSON (base/json.h). */
#ifndef FR_ACCESS_H
#define FR_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/linefile.h"

typedef struct {
    uint64_t unix_ms;       /* when the answer or the stream ended */
    const char *remote;     /* client address, NUL-terminated */
    const char *method;     /* NULL or "": "-" (a request that did not parse that far) */
    const char *target;     /* as received: path and query; NULL: "-" */
    size_t target_len;
    int status;
    uint64_t bytes;         /* body bytes sent */
    uint64_t duration_us;   /* from the request's first byte to the end of the answer */
    const char *transport;  /* "http", "sse", "ws" or "poll" */
} fr_access_entry_t;

/* Appends one line (ending in '\n') to out.
 *   text: <time> <client> "<method> <target>" <status> <bytes> <duration ms> <transport>
 *   json: {"ts":…,"client":…,"method":…,"path":…,"status":…,"bytes":…,"duration_ms":…,
 *          "transport":…} */
void fr_access_format(const fr_access_entry_t *e, int json, fr_buf_t *out);

/* Formats e and hands the line to f's writer thread (which does the I/O); f NULL: nothing. */
void fr_access_emit(fr_linefile_t *f, int json, const fr_access_entry_t *e);

/* Appends the target with secret query values redacted (the bytes as they are otherwise). */
void fr_access_redact(const char *target, size_t len, fr_buf_t *out);

#endif
