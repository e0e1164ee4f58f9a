/* Helpers the fuzz targets share: an input reader, independent reference checks (UTF-8, JSON,
 * a WHATWG event-stream parser, chunked HTTP bodies) and a way to stop with a clear message.
 *
 * The references are written from the specifications, not from freshet's code, so a target can
 * compare what freshet produced with what a client would make of it. Everything is static and
 * header-only: each target is one .c file plus the core library.
 *
 *   fz_reader_t  ──fz_u8/fz_take──► bytes of the input, in order, never past its end
 *   fz_utf8_ok   ── Unicode Table 3-7 well-formed sequences
 *   fz_json_*    ── RFC 8259 strict parser; string values are decoded for comparison
 *   fz_sse_*     ── HTML "event stream interpretation": lines → dispatched events
 *   fz_expect    ── abort() with a message: libFuzzer records the input as a crash */
#ifndef FR_FUZZ_COMMON_H
#define FR_FUZZ_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failing ---------------------------------------------------------------------------- */

/* Prints bytes so that CR, LF and NUL are visible in the crash report. */
static inline void fz_dump(const char *label, const void *p, size_t n) {
    const unsigned char *s = p;
    fprintf(stderr, "  %s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n && i < 2000; i++) {
        unsigned char c = s[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fprintf(stderr, "\"%s\n", n > 2000 ? "…" : "");
}

/* A broken invariant: report and abort, so libFuzzer saves the input as crash-<sha1>. */
__attribute__((noreturn, format(printf, 1, 2))) static inline void fz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("\nFUZZ INVARIANT BROKEN: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#define fz_expect(cond, ...)     \
    do {                         \
        if (!(cond))             \
            fz_fail(__VA_ARGS__); \
    } while (0)

/* ---- reading the input -------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} fz_reader_t;

static inline size_t fz_left(const fz_reader_t *r) {
    return r->len - r->pos;
}

/* The next byte, or 0 once the input is used up (so short inputs still make choices). */
static inline uint8_t fz_u8(fz_reader_t *r) {
    return r->pos < r->len ? r->p[r->pos++] : 0;
}

/* Up to n bytes (fewer at the end); *got says how many. */
static inline const uint8_t *fz_take(fz_reader_t *r, size_t n, size_t *got) {
    size_t k = fz_left(r) < n ? fz_left(r) : n;
    const uint8_t *p = r->p + r->pos;
    r->pos += k;
    *got = k;
    return p;
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* Well-formed UTF-8 per Unicode Table 3-7: no overlong forms, no surrogates, nothing past
 * U+10FFFF. Written as a table walk, unlike freshet's decoder, so the two can disagree. */
static inline int fz_utf8_ok(const void *buf, size_t n) {
    const unsigned char *s = buf;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        unsigned lo = 0x80, hi = 0xBF;
        size_t more;
        if (c <= 0x7F) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c == 0xE0) {
            more = 2;
            lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            more = 2;
        } else if (c == 0xED) {
            more = 2;
            hi = 0x9F;
        } else if (c == 0xF0) {
            more = 3;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            more = 3;
        } else if (c == 0xF4) {
            more = 3;
            hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < more)
            return 0;
        for (size_t k = 1; k <= more; k++) {
            unsigned b = s[i + k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
                return 0;
        }
        i += more + 1;
    }
    return 1;
}

/* ---- a growing byte buffer ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} fz_buf_t;

static inline void fz_put(fz_buf_t *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void fz_putc(fz_buf_t *b, char c) {
    fz_put(b, &c, 1);
}

static inline void fz_buf_free(fz_buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- JSON (RFC 8259) ---------------------------------------------------------------------- */

/* A strict parser: whitespace, literals, numbers in the RFC grammar, strings with every escape
 * decoded (surrogate pairs joined, lone surrogates refused, raw control characters refused),
 * nesting bounded. When `want` names a top-level key whose value is a string, that string's
 * decoded bytes end up in *found (found_set = 1). */
typedef struct {
    const char *s;
    size_t n, i;
    int depth;
    const char *want; /* top-level key to capture, or NULL */
    fz_buf_t *found;
    int found_set;
    int found_is_string;
    size_t found_start, found_end; /* the raw text of a captured value of any kind */
} fz_json_t;

static int fz_json_value(fz_json_t *j, fz_buf_t *str_out);

static inline void fz_json_ws(fz_json_t *j) {
    while (j->i < j->n &&
           (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static inline int fz_json_hex4(fz_json_t *j, unsigned *out) {
    if (j->n - j->i < 4)
        return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = j->s[j->i++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

static inline void fz_utf8_put(fz_buf_t *b, unsigned cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    fz_put(b, u, k);
}

static inline int fz_json_string(fz_json_t *j, fz_buf_t *out) {
    if (j->i >= j->n || j->s[j->i] != '"')
        return 0;
    j->i++;
    size_t start = j->i;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == '"') {
            if (!fz_utf8_ok(j->s + start, j->i - start))
                return 0;
            j->i++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c != '\\') {
            if (out)
                fz_putc(out, (char)c);
            j->i++;
            continue;
        }
        if (++j->i >= j->n)
            return 0;
        char e = j->s[j->i++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            if (out)
                fz_putc(out, map[simple - "\"\\/bfnrt"]);
            continue;
        }
        if (e != 'u')
            return 0;
        unsigned cp;
        if (!fz_json_hex4(j, &cp))
            return 0;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (j->n - j->i < 6 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u')
                return 0;
            j->i += 2;
            if (!fz_json_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return 0;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (out)
            fz_utf8_put(out, cp);
    }
    return 0;
}

static inline int fz_json_number(fz_json_t *j) {
    size_t i = j->i;
    if (i < j->n && j->s[i] == '-')
        i++;
    if (i >= j->n)
        return 0;
    if (j->s[i] == '0') {
        i++;
    } else if (j->s[i] >= '1' && j->s[i] <= '9') {
        while (i < j->n && j->s[i] >= '0' && j->s[i] <= '9')
            i++;
    } else {
        return 0;
    }
    if (i < j->n && j->s[i] == '.') {
        i++;
        size_t d = i;
        while (i < j->n && j->s[i] >= '0' && j->s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < j->n && (j->s[i] == 'e' || j->s[i] == 'E')) {
        i++;
        if (i < j->n && (j->s[i] == '+' || j->s[i] == '-'))
            i++;
        size_t d = i;
        while (i < j->n && j->s[i] >= '0' && j->s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    j->i = i;
    return 1;
}

static inline int fz_json_lit(fz_json_t *j, const char *lit) {
    size_t k = strlen(lit);
    if (j->n - j->i < k || memcmp(j->s + j->i, lit, k) != 0)
        return 0;
    j->i += k;
    return 1;
}

static int fz_json_value(fz_json_t *j, fz_buf_t *str_out) {
    fz_json_ws(j);
    if (j->i >= j->n || j->depth > 200)
        return 0;
    char c = j->s[j->i];
    if (c == '"')
        return fz_json_string(j, str_out);
    if (c == '{' || c == '[') {
        int object = c == '{';
        j->depth++;
        j->i++;
        fz_json_ws(j);
        if (j->i < j->n && j->s[j->i] == (object ? '}' : ']')) {
            j->i++;
            j->depth--;
            return 1;
        }
        for (;;) {
            int capture = 0;
            if (object) {
                fz_buf_t key = {0};
                fz_json_ws(j);
                if (!fz_json_string(j, &key)) {
                    fz_buf_free(&key);
                    return 0;
                }
                capture = j->depth == 1 && j->want && key.p && strcmp(key.p, j->want) == 0 &&
                          strlen(j->want) == key.len;
                if (j->depth == 1 && j->want && !key.p && j->want[0] == '\0')
                    capture = 1;
                fz_buf_free(&key);
                fz_json_ws(j);
                if (j->i >= j->n || j->s[j->i] != ':')
                    return 0;
                j->i++;
            }
            fz_json_ws(j);
            size_t vstart = j->i;
            int is_string = j->i < j->n && j->s[j->i] == '"';
            if (capture)
                j->found->len = 0;
            if (!fz_json_value(j, capture && is_string ? j->found : NULL))
                return 0;
            if (capture) {
                j->found_set = 1;
                j->found_is_string = is_string;
                j->found_start = vstart;
                j->found_end = j->i;
            }
            fz_json_ws(j);
            if (j->i < j->n && j->s[j->i] == ',') {
                j->i++;
                continue;
            }
            if (j->i < j->n && j->s[j->i] == (object ? '}' : ']')) {
                j->i++;
                j->depth--;
                return 1;
            }
            return 0;
        }
    }
    if (c == 't')
        return fz_json_lit(j, "true");
    if (c == 'f')
        return fz_json_lit(j, "false");
    if (c == 'n')
        return fz_json_lit(j, "null");
    return fz_json_number(j);
}

/* 1 when s[0..n) is one JSON text. */
static inline int fz_json_valid(const char *s, size_t n) {
    fz_json_t j = {s, n, 0, 0, NULL, NULL, 0, 0, 0, 0};
    if (!fz_json_value(&j, NULL))
        return 0;
    fz_json_ws(&j);
    return j.i == n;
}

/* Parses a JSON object and captures the top-level member `key`. Returns 1 when the text is
 * valid JSON; then *set says whether the key was there, *is_string whether its value was a
 * string (decoded into out), and [*vstart, *vend) is the value's raw text. */
static inline int fz_json_member(const char *s, size_t n, const char *key, fz_buf_t *out,
                                 int *set, int *is_string, size_t *vstart, size_t *vend) {
    fz_json_t j = {s, n, 0, 0, key, out, 0, 0, 0, 0};
    out->len = 0;
    fz_put(out, "", 0);
    if (!fz_json_value(&j, NULL))
        return 0;
    fz_json_ws(&j);
    if (j.i != n)
        return 0;
    *set = j.found_set;
    *is_string = j.found_is_string;
    *vstart = j.found_start;
    *vend = j.found_end;
    return 1;
}

/* ---- the event-stream interpretation (HTML §9.2.6) ----------------------------------------- */

/* What a browser's EventSource would dispatch. Fields other than id, event, data and retry are
 * ignored by the spec, but a stream from freshet never has any: `other` counts them, as does
 * `bad_retry` for retry lines that are not all digits. */
typedef struct {
    fz_buf_t data;       /* data buffer of the event being read */
    fz_buf_t type;       /* event type buffer */
    fz_buf_t last_id;    /* last event ID buffer */
    int id_seen;         /* this block had an id field */
    int data_seen;
    /* Results. */
    size_t events;       /* dispatched */
    size_t other;        /* lines with an unknown field name */
    size_t bad_retry;
    size_t comments;
    size_t retries;
    /* The last dispatched event. */
    fz_buf_t ev_data, ev_type, ev_id;
    int ev_had_id;
    /* Called for each dispatched event when set. */
    void (*on_event)(void *ctx, const char *type, size_t tlen, const char *data, size_t dlen,
                     const char *id, size_t idlen, int had_id);
    void *ctx;
} fz_sse_t;

static inline void fz_sse_free(fz_sse_t *p) {
    fz_buf_free(&p->data);
    fz_buf_free(&p->type);
    fz_buf_free(&p->last_id);
    fz_buf_free(&p->ev_data);
    fz_buf_free(&p->ev_type);
    fz_buf_free(&p->ev_id);
}

static inline void fz_sse_dispatch(fz_sse_t *p) {
    int had_id = p->id_seen;
    p->id_seen = 0;
    if (!p->data_seen) {
        p->type.len = 0;
        return;
    }
    p->data_seen = 0;
    /* The buffer ends with the LF the last data line appended; the spec removes it. */
    size_t dlen = p->data.len;
    if (dlen && p->data.p[dlen - 1] == '\n')
        dlen--;
    p->events++;
    p->ev_data.len = p->ev_type.len = p->ev_id.len = 0;
    fz_put(&p->ev_data, p->data.p ? p->data.p : "", dlen);
    if (p->type.len)
        fz_put(&p->ev_type, p->type.p, p->type.len);
    else
        fz_put(&p->ev_type, "message", 7);
    fz_put(&p->ev_id, p->last_id.p ? p->last_id.p : "", p->last_id.len);
    p->ev_had_id = had_id;
    if (p->on_event)
        p->on_event(p->ctx, p->ev_type.p, p->ev_type.len, p->ev_data.p, p->ev_data.len,
                    p->ev_id.p, p->ev_id.len, had_id);
    p->data.len = 0;
    p->type.len = 0;
}

static inline void fz_sse_line(fz_sse_t *p, const char *line, size_t n) {
    if (n == 0) {
        fz_sse_dispatch(p);
        return;
    }
    if (line[0] == ':') {
        p->comments++;
        return;
    }
    const char *colon = memchr(line, ':', n);
    size_t fl = colon ? (size_t)(colon - line) : n;
    const char *v = colon ? colon + 1 : line + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl && v[0] == ' ') {
        v++;
        vl--;
    }
    if (fl == 4 && memcmp(line, "data", 4) == 0) {
        fz_put(&p->data, v, vl);
        fz_putc(&p->data, '\n');
        p->data_seen = 1;
    } else if (fl == 5 && memcmp(line, "event", 5) == 0) {
        p->type.len = 0;
        fz_put(&p->type, v, vl);
    } else if (fl == 2 && memcmp(line, "id", 2) == 0) {
        if (!memchr(v, '\0', vl)) {
            p->last_id.len = 0;
            fz_put(&p->last_id, v, vl);
            p->id_seen = 1;
        }
    } else if (fl == 5 && memcmp(line, "retry", 5) == 0) {
        int digits = vl > 0;
        for (size_t i = 0; i < vl; i++)
            digits &= v[i] >= '0' && v[i] <= '9';
        if (digits)
            p->retries++;
        else
            p->bad_retry++;
    } else {
        p->other++;
    }
}

/* Feeds a whole body (CR, LF and CRLF end lines); a final line without its end is not
 * processed, as a client would still be waiting for the rest of it. Returns the bytes of that
 * unfinished line. */
static inline size_t fz_sse_feed(fz_sse_t *p, const char *s, size_t n) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\n' && s[i] != '\r')
            continue;
        fz_sse_line(p, s + start, i - start);
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    return n - start;
}

/* Lines a stream from freshet may hold: the fields it writes, comments and blank lines. Any
 * other line means a value broke out of its field. Also refuses CR anywhere: freshet ends lines
 * with LF only, so a CR can only come from a value. Returns NULL or what was wrong. */
static inline const char *fz_sse_lines_ok(const char *s, size_t n) {
    if (memchr(s, '\r', n))
        return "a CR in the event stream";
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\n')
            continue;
        const char *l = s + start;
        size_t len = i - start;
        start = i + 1;
        if (i == n && len == 0)
            break;
        if (len == 0 || l[0] == ':')
            continue;
        if ((len >= 4 && memcmp(l, "id: ", 4) == 0) || (len >= 7 && memcmp(l, "event: ", 7) == 0) ||
            (len >= 6 && memcmp(l, "data: ", 6) == 0) || (len >= 7 && memcmp(l, "retry: ", 7) == 0))
            continue;
        if (i == n)
            return NULL; /* an unfinished last line: the stream was cut, not corrupted */
        return "a line that is not id:, event:, data:, retry:, a comment or blank";
    }
    return NULL;
}

#endif
