/* Response head, chunked decoding and SSE field parsing; see sse_reader.h. */
#include "sse_reader.h"

#include <string.h>
#include <strings.h>

/* Response states. */
enum {
    ST_STATUS,
    ST_HEADER,
    ST_CHUNK_SIZE,
    ST_CHUNK_EXT,
    ST_CHUNK_DATA,
    ST_CHUNK_END,
    ST_TRAILER,
    ST_RAW,
    ST_DONE
};
/* SSE line states. */
enum { LS_START, LS_NAME, LS_VALUE_START, LS_VALUE };
/* Fields of interest; everything else is skipped. */
enum { F_OTHER, F_DATA, F_EVENT, F_RETRY, F_COMMENT, F_ID };

#define FL_CHUNKED 0x01     /* Transfer-Encoding: chunked was in the head */
#define FL_HAVE_DATA 0x02   /* the block's first data line is complete */
#define FL_SIZE_DIGITS 0x04 /* the chunk-size line had at least one hex digit */
#define FL_HAVE_ID 0x08     /* the block had an id line */
#define FL_ID_LONG 0x10     /* that id did not fit in id[] */

void fr_sse_reader_init(fr_sse_reader_t *r) {
    memset(r, 0, sizeof *r);
    r->state = ST_STATUS;
    r->line_state = LS_START;
}

static int classify(const char *name, size_t len) {
    if (len == 4 && memcmp(name, "data", 4) == 0)
        return F_DATA;
    if (len == 5 && memcmp(name, "event", 5) == 0)
        return F_EVENT;
    if (len == 5 && memcmp(name, "retry", 5) == 0)
        return F_RETRY;
    if (len == 2 && memcmp(name, "id", 2) == 0)
        return F_ID;
    return F_OTHER;
}

static void line_end(fr_sse_reader_t *r, const fr_sse_hooks_t *hooks, void *ud) {
    switch (r->field) {
    case F_DATA:
        if (!(r->flags & FL_HAVE_DATA)) {
            if (r->dlen && r->data[r->dlen - 1] == '\r')
                r->dlen--;
            r->flags |= FL_HAVE_DATA;
        }
        break;
    case F_EVENT:
        if (r->elen && r->event[r->elen - 1] == '\r')
            r->elen--;
        break;
    case F_RETRY:
        hooks->on_retry(ud);
        break;
    case F_COMMENT:
        hooks->on_comment(ud);
        break;
    case F_ID:
        if (r->idlen && r->id[r->idlen - 1] == '\r')
            r->idlen--;
        if (r->idlen > FR_SSE_ID_MAX - 1)
            r->flags |= FL_ID_LONG;
        /* An id holding NUL is ignored, as EventSource ignores it. */
        if (memchr(r->id, '\0', r->idlen) == NULL)
            r->flags |= FL_HAVE_ID;
        break;
    }
    r->line_state = LS_START;
}

/* A field line begins: an id line replaces the block's id so far (the last one wins). */
static void field_start(fr_sse_reader_t *r, uint8_t field) {
    r->field = field;
    if (field == F_ID) {
        r->idlen = 0;
        r->flags &= (uint8_t)~FL_ID_LONG;
    }
}

/* A blank line ends the block: its id (if any) becomes the stream's last id, and the block is
 * dispatched when it had data, as EventSource does. */
static void dispatch(fr_sse_reader_t *r, const fr_sse_hooks_t *hooks, void *ud) {
    if (r->flags & FL_HAVE_ID)
        hooks->on_id(ud, r->id, r->idlen, (r->flags & FL_ID_LONG) != 0);
    r->flags &= (uint8_t) ~(FL_HAVE_ID | FL_ID_LONG);
    if (r->flags & FL_HAVE_DATA)
        hooks->on_event(ud, r->event, r->elen, r->data, r->dlen);
    r->flags &= (uint8_t)~FL_HAVE_DATA;
    r->dlen = 0;
    r->elen = 0;
}

/* Event-stream bytes (chunk framing already removed). Values are skipped with memchr; only the
 * heads of the first data line and of the event name are copied. */
static void sse_feed(fr_sse_reader_t *r, const char *p, size_t n, const fr_sse_hooks_t *hooks,
                     void *ud) {
    const char *end = p + n;
    while (p < end) {
        switch (r->line_state) {
        case LS_START:
            if (*p == '\n') {
                dispatch(r, hooks, ud);
                p++;
            } else if (*p == '\r') {
                p++;
            } else if (*p == ':') {
                r->field = F_COMMENT;
                r->line_state = LS_VALUE;
                p++;
            } else {
                r->llen = 0;
                r->line_state = LS_NAME;
            }
            break;
        case LS_NAME:
            while (p < end) {
                char c = *p++;
                if (c == ':') {
                    field_start(r, (uint8_t)classify(r->line, r->llen));
                    r->line_state = LS_VALUE_START;
                    break;
                }
                if (c == '\n') { /* a field name alone means an empty value */
                    field_start(r, (uint8_t)classify(r->line, r->llen));
                    line_end(r, hooks, ud);
                    break;
                }
                if (c != '\r' && r->llen < sizeof r->line)
                    r->line[r->llen++] = c;
            }
            break;
        case LS_VALUE_START:
            if (*p == ' ')
                p++;
            r->line_state = LS_VALUE;
            break;
        case LS_VALUE: {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            size_t seg = (size_t)(stop - p);
            if (r->field == F_DATA && !(r->flags & FL_HAVE_DATA)) {
                size_t room = sizeof r->data - r->dlen;
                size_t take = seg < room ? seg : room;
                memcpy(r->data + r->dlen, p, take);
                r->dlen = (uint8_t)(r->dlen + take);
            } else if (r->field == F_EVENT) {
                size_t room = sizeof r->event - 1 - r->elen;
                size_t take = seg < room ? seg : room;
                memcpy(r->event + r->elen, p, take);
                r->elen = (uint8_t)(r->elen + take);
            } else if (r->field == F_ID) {
                /* One byte more than an id may hold, so a '\r' before the '\n' still fits
                 * when the id itself does; what does not fit marks the id as too long. */
                size_t room = sizeof r->id - r->idlen;
                size_t take = seg < room ? seg : room;
                memcpy(r->id + r->idlen, p, take);
                r->idlen = (uint8_t)(r->idlen + take);
                if (take < seg)
                    r->flags |= FL_ID_LONG;
            }
            p = stop;
            if (nl) {
                p++;
                line_end(r, hooks, ud);
            }
            break;
        }
        }
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The status line or a header line is complete in r->line. */
static int head_line(fr_sse_reader_t *r) {
    r->line[r->llen < sizeof r->line ? r->llen : sizeof r->line - 1] = '\0';
    if (r->state == ST_STATUS) {
        const char *l = r->line;
        if (r->llen < 12 || memcmp(l, "HTTP/1.", 7) != 0 || l[8] != ' ')
            return FR_SSE_EPROTO;
        if (l[9] < '0' || l[9] > '9' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9')
            return FR_SSE_EPROTO;
        r->status = (uint16_t)((l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0'));
        r->state = ST_HEADER;
    } else if (r->llen == 0) {
        if (r->status != 200)
            return FR_SSE_ESTATUS;
        r->state = (r->flags & FL_CHUNKED) ? ST_CHUNK_SIZE : ST_RAW;
    } else if (strncasecmp(r->line, "transfer-encoding:", 18) == 0 &&
               strcasestr(r->line + 18, "chunked")) {
        r->flags |= FL_CHUNKED;
    }
    r->llen = 0;
    return FR_SSE_OK;
}

/* The chunk-size line ended: a zero size starts the trailer, anything else the data. */
static int size_done(fr_sse_reader_t *r) {
    if (!(r->flags & FL_SIZE_DIGITS))
        return FR_SSE_EPROTO;
    r->flags &= (uint8_t)~FL_SIZE_DIGITS;
    r->llen = 0;
    r->state = r->chunk_left ? ST_CHUNK_DATA : ST_TRAILER;
    return FR_SSE_OK;
}

int fr_sse_reader_feed(fr_sse_reader_t *r, const char *buf, size_t len, const fr_sse_hooks_t *hooks,
                       void *ud) {
    const char *p = buf, *end = buf + len;
    int rc;
    while (p < end) {
        switch (r->state) {
        case ST_STATUS:
        case ST_HEADER: {
            char c = *p++;
            if (c == '\n') {
                if ((rc = head_line(r)) != FR_SSE_OK)
                    return rc;
            } else if (c != '\r' && r->llen < sizeof r->line - 1) {
                r->line[r->llen++] = c;
            }
            break;
        }
        case ST_CHUNK_SIZE: {
            char c = *p++;
            int d = hexval(c);
            if (d >= 0) {
                if (r->chunk_left >> 56)
                    return FR_SSE_EPROTO;
                r->chunk_left = r->chunk_left * 16 + (uint64_t)d;
                r->flags |= FL_SIZE_DIGITS;
            } else if (c == '\n') {
                if ((rc = size_done(r)) != FR_SSE_OK)
                    return rc;
            } else if (c == ';' || c == ' ' || c == '\t') {
                r->state = ST_CHUNK_EXT;
            } else if (c != '\r') {
                return FR_SSE_EPROTO;
            }
            break;
        }
        case ST_CHUNK_EXT: {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) {
                p = end;
            } else {
                p = nl + 1;
                if ((rc = size_done(r)) != FR_SSE_OK)
                    return rc;
            }
            break;
        }
        case ST_CHUNK_DATA: {
            size_t avail = (size_t)(end - p);
            size_t n = r->chunk_left < avail ? (size_t)r->chunk_left : avail;
            sse_feed(r, p, n, hooks, ud);
            p += n;
            r->chunk_left -= n;
            if (r->chunk_left == 0)
                r->state = ST_CHUNK_END;
            break;
        }
        case ST_CHUNK_END: { /* the CRLF after chunk data */
            char c = *p++;
            if (c == '\n')
                r->state = ST_CHUNK_SIZE;
            else if (c != '\r')
                return FR_SSE_EPROTO;
            break;
        }
        case ST_TRAILER: {
            char c = *p++;
            if (c == '\n') {
                if (r->llen == 0) {
                    r->state = ST_DONE;
                    return FR_SSE_END;
                }
                r->llen = 0;
            } else if (c != '\r') {
                r->llen = 1;
            }
            break;
        }
        case ST_RAW:
            sse_feed(r, p, (size_t)(end - p), hooks, ud);
            p = end;
            break;
        default:
            return FR_SSE_END;
        }
    }
    return FR_SSE_OK;
}
