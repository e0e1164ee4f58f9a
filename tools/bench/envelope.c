/* A streaming reader of the WebSocket envelope's top-level members; see envelope.h. */
#include "envelope.h"

#include <string.h>

enum {
    S_START,    /* before the opening brace */
    S_KEY_WAIT, /* after '{' or ',': a member name or the closing brace */
    S_KEY,      /* inside a member name */
    S_KEY_ESC,  /* after a backslash in a member name */
    S_COLON,    /* after a member name */
    S_VALUE,    /* after the colon */
    S_STR,      /* inside a string value */
    S_ESC,      /* after a backslash in a string value */
    S_UNICODE,  /* inside the four hex digits of a \u escape */
    S_NESTED,   /* inside an object or array value */
    S_SCALAR,   /* inside a number or literal */
    S_AFTER,    /* after a value: ',' or '}' */
    S_DONE,     /* after the closing brace */
    S_BAD,      /* not an envelope: the rest is ignored */
};

/* The members kept. */
enum { M_OTHER, M_ID, M_EVENT, M_TYPE, M_DATA };

/* _raw bits inside a nested value. */
#define RAW_IN_STR 0x01
#define RAW_ESC 0x02

void fr_envelope_init(fr_envelope_t *e) {
    e->ok = 0;
    e->flags = 0;
    e->idlen = e->elen = e->tlen = e->dlen = 0;
    e->_state = S_START;
    e->_member = M_OTHER;
    e->_klen = 0;
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int classify(const fr_envelope_t *e) {
    size_t n = e->_klen;
    if (n == 2 && memcmp(e->_key, "id", 2) == 0)
        return M_ID;
    if (n == 5 && memcmp(e->_key, "event", 5) == 0)
        return M_EVENT;
    if (n == 4 && memcmp(e->_key, "type", 4) == 0)
        return M_TYPE;
    if (n == 4 && memcmp(e->_key, "data", 4) == 0)
        return M_DATA;
    return M_OTHER;
}

/* Where the value being read goes: its buffer, length and capacity, or NULL when it is not
 * kept. An id's capacity is one byte short of its buffer: a byte beyond it marks the id as too
 * long (see put). */
static char *target(fr_envelope_t *e, uint8_t **len, size_t *cap) {
    switch (e->_member) {
    case M_ID:
        *len = &e->idlen, *cap = sizeof e->id - 1;
        return e->id;
    case M_EVENT:
        *len = &e->elen, *cap = sizeof e->event - 1;
        return e->event;
    case M_TYPE:
        *len = &e->tlen, *cap = sizeof e->type - 1;
        return e->type;
    case M_DATA:
        *len = &e->dlen, *cap = sizeof e->data;
        return e->data;
    default:
        return NULL;
    }
}

/* Appends value bytes to the member they belong to, as far as it has room. */
static void put(fr_envelope_t *e, const char *p, size_t n) {
    uint8_t *len;
    size_t cap;
    char *dst = target(e, &len, &cap);
    if (!dst || !n)
        return;
    if (*len + n > cap && e->_member == M_ID)
        e->flags |= FR_ENV_ID_LONG;
    size_t take = n < cap - *len ? n : cap - *len;
    memcpy(dst + *len, p, take);
    *len = (uint8_t)(*len + take);
}

static void put_char(fr_envelope_t *e, char c) {
    uint8_t *len;
    size_t cap;
    char *dst = target(e, &len, &cap);
    if (dst && *len < cap)
        dst[(*len)++] = c;
    else if (dst && e->_member == M_ID)
        e->flags |= FR_ENV_ID_LONG;
}

/* A value begins: a member seen twice keeps its last value, as JSON parsers commonly do. */
static void value_start(fr_envelope_t *e) {
    switch (e->_member) {
    case M_ID:
        e->idlen = 0;
        e->flags &= (uint8_t) ~(FR_ENV_HAVE_ID | FR_ENV_ID_LONG);
        break;
    case M_EVENT:
        e->elen = 0;
        break;
    case M_TYPE:
        e->tlen = 0;
        e->flags &= (uint8_t)~FR_ENV_HAVE_TYPE;
        break;
    case M_DATA:
        e->dlen = 0;
        e->flags |= FR_ENV_HAVE_DATA;
        break;
    }
}

/* A string value ended: an id or a type counts only as a string. */
static void string_end(fr_envelope_t *e) {
    if (e->_member == M_ID)
        e->flags |= FR_ENV_HAVE_ID;
    else if (e->_member == M_TYPE)
        e->flags |= FR_ENV_HAVE_TYPE;
    e->_state = S_AFTER;
}

static char unescape(char c) {
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default: /* '"', '\\', '/' stand for themselves; anything else is kept as it is */
        return c;
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

void fr_envelope_feed(fr_envelope_t *e, const char *p, size_t len) {
    const char *end = p + len;
    const char *next_q = NULL, *next_bs = NULL; /* see S_STR */
    while (p < end) {
        char c = *p;
        switch (e->_state) {
        case S_START:
            p++;
            if (c == '{')
                e->_state = S_KEY_WAIT;
            else if (!is_ws(c))
                e->_state = S_BAD;
            break;
        case S_KEY_WAIT:
            p++;
            if (c == '"') {
                e->_klen = 0;
                e->_state = S_KEY;
            } else if (c == '}') {
                e->_state = S_DONE;
            } else if (!is_ws(c)) {
                e->_state = S_BAD;
            }
            break;
        case S_KEY: {
            const char *q = p;
            while (q < end && *q != '"' && *q != '\\')
                q++;
            size_t n = (size_t)(q - p);
            if (e->_klen != UINT8_MAX && e->_klen + n <= sizeof e->_key) {
                memcpy(e->_key + e->_klen, p, n);
                e->_klen = (uint8_t)(e->_klen + n);
            } else {
                e->_klen = UINT8_MAX; /* too long for any member kept */
            }
            p = q;
            if (p < end) {
                p++;
                if (*q == '"') {
                    e->_member = (uint8_t)classify(e);
                    e->_state = S_COLON;
                } else {
                    e->_state = S_KEY_ESC;
                }
            }
            break;
        }
        case S_KEY_ESC: /* no member kept has an escape in its name */
            p++;
            e->_klen = UINT8_MAX;
            e->_state = S_KEY;
            break;
        case S_COLON:
            p++;
            if (c == ':')
                e->_state = S_VALUE;
            else if (!is_ws(c))
                e->_state = S_BAD;
            break;
        case S_VALUE:
            if (is_ws(c)) {
                p++;
                break;
            }
            value_start(e);
            if (c == '"') {
                p++;
                e->_state = S_STR;
            } else if (c == '{' || c == '[') {
                p++;
                put_char(e, c);
                e->_depth = 1;
                e->_raw = 0;
                e->_state = S_NESTED;
            } else {
                e->_state = S_SCALAR;
            }
            break;
        case S_STR:
            /* One pass to the end of the string, or of the bytes: the captured head is copied
             * as it is scanned, escapes whose two bytes are both here are undone in place, and
             * beyond the head the next quote and the next backslash are found with memchr,
             * which skips long runs (the payload's padding) many bytes at a time. Each is
             * looked for again only once p has passed it, so a string full of escapes stays
             * linear. */
            while (p < end) {
                uint8_t *have;
                size_t cap;
                char *dst = target(e, &have, &cap);
                if (dst && *have < cap) {
                    size_t l = *have;
                    while (p < end && l < cap && *p != '"' && *p != '\\')
                        dst[l++] = *p++;
                    *have = (uint8_t)l;
                    if (p == end || l == cap)
                        continue; /* the bytes are all read, or the head is full */
                } else {
                    if (!next_q || next_q < p) {
                        next_q = memchr(p, '"', (size_t)(end - p));
                        if (!next_q)
                            next_q = end;
                    }
                    if (!next_bs || next_bs < p) {
                        next_bs = memchr(p, '\\', (size_t)(end - p));
                        if (!next_bs)
                            next_bs = end;
                    }
                    const char *q = next_q < next_bs ? next_q : next_bs;
                    put(e, p, (size_t)(q - p)); /* marks an id that is too long */
                    p = q;
                    if (p == end)
                        break;
                }
                if (*p == '"') {
                    p++;
                    string_end(e);
                    break;
                }
                if (p + 1 < end && p[1] != 'u') { /* a short escape, whole */
                    put_char(e, unescape(p[1]));
                    p += 2;
                    continue;
                }
                p++;
                e->_state = S_ESC;
                break;
            }
            break;
        case S_ESC:
            p++;
            if (c == 'u') {
                e->_uleft = 4;
                e->_ucode = 0;
                e->_state = S_UNICODE;
            } else {
                put_char(e, unescape(c));
                e->_state = S_STR;
            }
            break;
        case S_UNICODE: {
            p++;
            int d = hexval(c);
            if (d < 0) {
                e->_state = S_BAD;
                break;
            }
            e->_ucode = (uint16_t)(e->_ucode << 4 | d);
            if (--e->_uleft == 0) {
                put_char(e, e->_ucode < 0x80 ? (char)e->_ucode : '?');
                e->_state = S_STR;
            }
            break;
        }
        case S_NESTED:
            p++;
            put_char(e, c);
            if (e->_raw & RAW_IN_STR) {
                if (e->_raw & RAW_ESC)
                    e->_raw &= (uint8_t)~RAW_ESC;
                else if (c == '\\')
                    e->_raw |= RAW_ESC;
                else if (c == '"')
                    e->_raw = 0;
            } else if (c == '"') {
                e->_raw = RAW_IN_STR;
            } else if (c == '{' || c == '[') {
                e->_depth++;
            } else if ((c == '}' || c == ']') && --e->_depth == 0) {
                e->_state = S_AFTER;
            }
            break;
        case S_SCALAR:
            if (is_ws(c) || c == ',' || c == '}') {
                e->_state = S_AFTER; /* the byte is read again there */
            } else {
                p++;
                put_char(e, c);
            }
            break;
        case S_AFTER:
            p++;
            if (c == ',')
                e->_state = S_KEY_WAIT;
            else if (c == '}')
                e->_state = S_DONE;
            else if (!is_ws(c))
                e->_state = S_BAD;
            break;
        case S_DONE:
            p++;
            if (!is_ws(c))
                e->_state = S_BAD;
            break;
        default: /* S_BAD */
            return;
        }
    }
}

int fr_envelope_end(fr_envelope_t *e) {
    e->ok = e->_state == S_DONE;
    return e->ok;
}
