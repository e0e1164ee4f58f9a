#include "codec/nats.h"

#include <string.h>

static const char HEX[] = "0123456789ABCDEF";

static int plain(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

size_t fr_nats_token_encode(const char *topic, size_t len, char *out) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)topic[i];
        if (plain(c)) {
            out[n++] = (char)c;
        } else {
            out[n++] = '=';
            out[n++] = HEX[c >> 4];
            out[n++] = HEX[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower case is not canonical */
}

long fr_nats_token_decode(const char *token, size_t len, char *out) {
    if (len == 0)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (plain(c)) {
            out[n++] = (char)c;
            continue;
        }
        if (c != '=' || len - i < 3)
            return -1;
        int hi = hexval(token[i + 1]), lo = hexval(token[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        unsigned char v = (unsigned char)(hi << 4 | lo);
        if (v == 0 || plain(v))
            return -1;
        out[n++] = (char)v;
        i += 2;
    }
    out[n] = '\0';
    return (long)n;
}

/* ---- PubAck: a small reader for the JSON JetStream sends back ---------------------------- */

typedef struct {
    const char *p, *end;
} rd_t;

static void ws(rd_t *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\r' || *r->p == '\n'))
        r->p++;
}

static int eat(rd_t *r, char c) {
    ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return 1;
    }
    return 0;
}

/* A string: its raw bytes between the quotes (escapes kept) in *s, *n. */
static int str(rd_t *r, const char **s, size_t *n) {
    ws(r);
    if (r->p >= r->end || *r->p != '"')
        return -1;
    const char *start = ++r->p;
    while (r->p < r->end && *r->p != '"') {
        if (*r->p == '\\') {
            if (++r->p >= r->end)
                return -1;
        } else if ((unsigned char)*r->p < 0x20) {
            return -1;
        }
        r->p++;
    }
    if (r->p >= r->end)
        return -1;
    *s = start;
    *n = (size_t)(r->p - start);
    r->p++;
    return 0;
}

/* An unsigned integer below 2^64 (no sign, fraction or exponent). */
static int uint(rd_t *r, uint64_t *v) {
    ws(r);
    if (r->p >= r->end || *r->p < '0' || *r->p > '9')
        return -1;
    uint64_t x = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        unsigned d = (unsigned)(*r->p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
        r->p++;
    }
    if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
        return -1;
    *v = x;
    return 0;
}

static int skip(rd_t *r, int depth);

static int skip_members(rd_t *r, int depth, char close, int keyed) {
    if (eat(r, close))
        return 0;
    do {
        if (keyed) {
            const char *k;
            size_t kn;
            if (str(r, &k, &kn) < 0 || !eat(r, ':'))
                return -1;
        }
        if (skip(r, depth + 1) < 0)
            return -1;
    } while (eat(r, ','));
    return eat(r, close) ? 0 : -1;
}

/* Any JSON value, nested at most 16 deep. */
static int skip(rd_t *r, int depth) {
    if (depth > 16)
        return -1;
    ws(r);
    if (r->p >= r->end)
        return -1;
    const char *s;
    size_t n;
    uint64_t v;
    switch (*r->p) {
    case '"':
        return str(r, &s, &n);
    case '{':
        r->p++;
        return skip_members(r, depth, '}', 1);
    case '[':
        r->p++;
        return skip_members(r, depth, ']', 0);
    case '-':
        r->p++;
        return uint(r, &v) < 0 ? -1 : 0;
    default:
        if (*r->p >= '0' && *r->p <= '9')
            return uint(r, &v);
        static const char *const words[] = {"true", "false", "null"};
        for (size_t i = 0; i < 3; i++) {
            size_t wl = strlen(words[i]);
            if ((size_t)(r->end - r->p) >= wl && memcmp(r->p, words[i], wl) == 0) {
                r->p += wl;
                return 0;
            }
        }
        return -1;
    }
}

static int key_is(const char *k, size_t kn, const char *want) {
    return kn == strlen(want) && memcmp(k, want, kn) == 0;
}

/* {"code":…,"err_code":…,"description":"…"} */
static int error_object(rd_t *r, int *code, char *desc, size_t cap) {
    if (!eat(r, '{'))
        return -1;
    int have_code = 0;
    if (eat(r, '}'))
        return -1;
    do {
        const char *k;
        size_t kn;
        if (str(r, &k, &kn) < 0 || !eat(r, ':'))
            return -1;
        if (key_is(k, kn, "code")) {
            uint64_t v;
            if (uint(r, &v) < 0 || v > 999)
                return -1;
            *code = (int)v;
            have_code = 1;
        } else if (key_is(k, kn, "description")) {
            const char *d;
            size_t dn;
            if (str(r, &d, &dn) < 0)
                return -1;
            if (cap) {
                size_t m = dn < cap - 1 ? dn : cap - 1;
                memcpy(desc, d, m);
                desc[m] = '\0';
            }
        } else if (skip(r, 1) < 0) {
            return -1;
        }
    } while (eat(r, ','));
    return eat(r, '}') && have_code ? 0 : -1;
}

int fr_nats_puback_parse(const char *s, size_t len, uint64_t *seq, int *code, char *desc,
                         size_t desc_cap) {
    rd_t r = {s, s + len};
    uint64_t got = 0;
    int have_seq = 0, have_stream = 0, have_error = 0;
    *code = 0;
    if (desc_cap)
        desc[0] = '\0';
    if (!eat(&r, '{') || eat(&r, '}'))
        return -1;
    do {
        const char *k;
        size_t kn;
        if (str(&r, &k, &kn) < 0 || !eat(&r, ':'))
            return -1;
        if (key_is(k, kn, "seq")) {
            if (have_seq || uint(&r, &got) < 0)
                return -1;
            have_seq = 1;
        } else if (key_is(k, kn, "stream")) {
            const char *v;
            size_t vn;
            if (str(&r, &v, &vn) < 0 || vn == 0)
                return -1;
            have_stream = 1;
        } else if (key_is(k, kn, "error")) {
            if (have_error || error_object(&r, code, desc, desc_cap) < 0)
                return -1;
            have_error = 1;
        } else if (skip(&r, 1) < 0) {
            return -1;
        }
    } while (eat(&r, ','));
    if (!eat(&r, '}'))
        return -1;
    ws(&r);
    if (r.p != r.end)
        return -1;
    if (have_error)
        return 1;
    if (!have_seq || !have_stream || got == 0)
        return -1;
    *seq = got;
    return 0;
}
