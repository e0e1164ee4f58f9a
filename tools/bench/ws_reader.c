/* The upgrade answer and server frames of a WebSocket subscription; see ws_reader.h. */
#include "ws_reader.h"

#include <string.h>
#include <strings.h>

/* Where in the answer the reader is. */
enum { ST_STATUS, ST_HEADER, ST_FRAME, ST_PAYLOAD, ST_CONTROL, ST_END };

#define WS_F_UPGRADE 0x01    /* Upgrade: websocket was in the head */
#define WS_F_CONNECTION 0x02 /* Connection: Upgrade was in the head */
#define WS_F_ACCEPT 0x04     /* Sec-WebSocket-Accept was the expected value */
#define WS_F_LONG_LINE 0x08  /* the header line did not fit in line[] */
#define WS_F_IN_MSG 0x10     /* a text or binary message has begun and not ended */
#define WS_F_FIN 0x20        /* the current frame is the last of its message */

void fr_ws_reader_init(fr_ws_reader_t *r, const char *key) {
    memset(r, 0, sizeof *r);
    r->state = ST_STATUS;
    fr_ws_accept(key, FR_WS_KEY_LEN, r->accept);
}

/* The value of a header line whose name is `name` (case-insensitive), spaces trimmed, or
 * NULL. The line is NUL-terminated and has no CR. */
static char *header_value(char *line, const char *name) {
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char *end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return v;
}

/* The status line or a header line is complete in r->u.line. */
static int head_line(fr_ws_reader_t *r, const fr_ws_hooks_t *hooks, void *ud) {
    char *l = r->u.line;
    l[r->llen] = '\0';
    int long_line = (r->flags & WS_F_LONG_LINE) != 0;
    r->flags &= (uint8_t)~WS_F_LONG_LINE;
    r->llen = 0;
    if (r->state == ST_STATUS) {
        if (strlen(l) < 12 || memcmp(l, "HTTP/1.", 7) != 0 || l[8] != ' ')
            return FR_WS_EPROTO;
        if (l[9] < '0' || l[9] > '9' || l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9')
            return FR_WS_EPROTO;
        r->status = (uint16_t)((l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0'));
        r->state = ST_HEADER;
        return FR_WS_OK;
    }
    if (*l == '\0' && !long_line) { /* the head ended */
        if (r->status != 101)
            return FR_WS_ESTATUS;
        if ((r->flags & (WS_F_UPGRADE | WS_F_CONNECTION | WS_F_ACCEPT)) !=
            (WS_F_UPGRADE | WS_F_CONNECTION | WS_F_ACCEPT))
            return FR_WS_EUPGRADE;
        r->state = ST_FRAME;
        r->hlen = 0;
        hooks->on_open(ud);
        return FR_WS_OK;
    }
    if (long_line) /* none of the headers checked below is that long when it is right */
        return FR_WS_OK;
    const char *v;
    if ((v = header_value(l, "upgrade")) && strcasecmp(v, "websocket") == 0)
        r->flags |= WS_F_UPGRADE;
    else if ((v = header_value(l, "connection")) && strcasestr(v, "upgrade"))
        r->flags |= WS_F_CONNECTION;
    else if ((v = header_value(l, "sec-websocket-accept")) && strcmp(v, r->accept) == 0)
        r->flags |= WS_F_ACCEPT;
    return FR_WS_OK;
}

/* The final frame of a text or binary message ended: report what the envelope held. */
static void message_end(fr_ws_reader_t *r, const fr_ws_hooks_t *hooks, void *ud) {
    fr_envelope_t *e = &r->env;
    r->flags &= (uint8_t)~WS_F_IN_MSG;
    if (!fr_envelope_end(e)) {
        hooks->on_event(ud, "", 0, "", 0);
        return;
    }
    if (e->flags & FR_ENV_HAVE_ID)
        hooks->on_id(ud, e->id, e->idlen, (e->flags & FR_ENV_ID_LONG) != 0);
    if (e->flags & FR_ENV_HAVE_TYPE)
        hooks->on_event(ud, e->type, e->tlen, "", 0);
    else
        hooks->on_event(ud, e->event, e->elen, e->data,
                        (e->flags & FR_ENV_HAVE_DATA) ? e->dlen : 0);
}

/* A data frame's payload is all in. */
static void data_done(fr_ws_reader_t *r, const fr_ws_hooks_t *hooks, void *ud) {
    if (r->flags & WS_F_FIN)
        message_end(r, hooks, ud);
    r->state = ST_FRAME;
    r->hlen = 0;
}

/* A control frame's payload is all in. */
static int control_done(fr_ws_reader_t *r, const fr_ws_hooks_t *hooks, void *ud) {
    r->state = ST_FRAME;
    r->hlen = 0;
    if (r->opcode == FR_WS_OP_PING) {
        hooks->on_ping(ud, r->u.ctl, r->clen);
    } else if (r->opcode == FR_WS_OP_CLOSE) {
        r->close_code =
            r->clen >= 2 ? (uint16_t)((uint8_t)r->u.ctl[0] << 8 | (uint8_t)r->u.ctl[1]) : 1005;
        r->state = ST_END;
        return FR_WS_CLOSED;
    }
    return FR_WS_OK; /* a pong nobody asked for is allowed, and ignored */
}

/* The frame header is complete in r->hdr: check it and get ready for the payload. */
static int frame_begin(fr_ws_reader_t *r, const fr_ws_hooks_t *hooks, void *ud) {
    const uint8_t *h = r->hdr;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | h[i];
        if (len >> 63)
            return FR_WS_EPROTO;
    }
    r->opcode = h[0] & 0x0f;
    if (h[0] & 0x80)
        r->flags |= WS_F_FIN;
    else
        r->flags &= (uint8_t)~WS_F_FIN;
    r->left = len;
    if (r->opcode & 0x08) { /* control frames: final, short, of a known kind */
        if (!(h[0] & 0x80) || len > FR_WS_CONTROL_MAX ||
            (r->opcode != FR_WS_OP_CLOSE && r->opcode != FR_WS_OP_PING &&
             r->opcode != FR_WS_OP_PONG))
            return FR_WS_EPROTO;
        r->clen = 0;
        r->state = ST_CONTROL;
        return len ? FR_WS_OK : control_done(r, hooks, ud);
    }
    if (r->opcode == FR_WS_OP_CONT) {
        if (!(r->flags & WS_F_IN_MSG))
            return FR_WS_EPROTO;
    } else if (r->opcode == FR_WS_OP_TEXT || r->opcode == FR_WS_OP_BINARY) {
        if (r->flags & WS_F_IN_MSG) /* the previous message has not ended */
            return FR_WS_EPROTO;
        r->flags |= WS_F_IN_MSG;
        fr_envelope_init(&r->env);
    } else {
        return FR_WS_EPROTO;
    }
    r->state = ST_PAYLOAD;
    if (!len)
        data_done(r, hooks, ud);
    return FR_WS_OK;
}

int fr_ws_reader_feed(fr_ws_reader_t *r, const char *buf, size_t len, const fr_ws_hooks_t *hooks,
                      void *ud) {
    const char *p = buf, *end = buf + len;
    int rc;
    while (p < end) {
        switch (r->state) {
        case ST_STATUS:
        case ST_HEADER: {
            char c = *p++;
            if (c == '\n') {
                if ((rc = head_line(r, hooks, ud)) != FR_WS_OK)
                    return rc;
            } else if (c == '\r') {
                /* line ends are "\r\n" or "\n" */
            } else if (r->llen < sizeof r->u.line - 1) {
                r->u.line[r->llen++] = c;
            } else {
                r->flags |= WS_F_LONG_LINE;
            }
            break;
        }
        case ST_FRAME: {
            r->hdr[r->hlen++] = (uint8_t)*p++;
            if (r->hlen == 2) {
                /* No extension was negotiated, so no RSV bit; a server never masks. */
                if ((r->hdr[0] & 0x70) || (r->hdr[1] & 0x80))
                    return FR_WS_EPROTO;
                uint8_t l7 = r->hdr[1] & 0x7f;
                r->hneed = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0));
            }
            if (r->hlen >= 2 && r->hlen == r->hneed && (rc = frame_begin(r, hooks, ud)) != FR_WS_OK)
                return rc;
            break;
        }
        case ST_PAYLOAD: {
            size_t avail = (size_t)(end - p);
            size_t n = r->left < avail ? (size_t)r->left : avail;
            fr_envelope_feed(&r->env, p, n);
            p += n;
            r->left -= n;
            if (!r->left)
                data_done(r, hooks, ud);
            break;
        }
        case ST_CONTROL: {
            size_t avail = (size_t)(end - p);
            size_t n = r->left < avail ? (size_t)r->left : avail;
            memcpy(r->u.ctl + r->clen, p, n);
            r->clen = (uint8_t)(r->clen + n);
            p += n;
            r->left -= n;
            if (!r->left && (rc = control_done(r, hooks, ud)) != FR_WS_OK)
                return rc;
            break;
        }
        default: /* ST_END */
            return FR_WS_CLOSED;
        }
    }
    return FR_WS_OK;
}
