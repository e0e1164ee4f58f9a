#include "codec/ids.h"

#include <string.h>

#include "base/b64url.h"

#define MARK "v1"
#define MARK_LEN 2
/* Digits of a number: 64 bits in 5-bit groups (13), and a topic's 3 + 5 × 13 bits (14). */
#define NUM_DIGITS 13
#define TOPIC_DIGITS 14

#define FLAG_SEQ 2 /* of a topic's head digit, above its 3 delta bits */
#define FLAG_LO 1

static const char digits[] = FR_B64URL_DIGITS;

static int digit_value(char c) {
    return fr_b64url_value((unsigned char)c);
}

size_t fr_ids_max_len(size_t n) {
    if (n < 2)
        return FR_ID_MAX_LEN;
    return MARK_LEN + 2 * NUM_DIGITS + n * (TOPIC_DIGITS + NUM_DIGITS) + 1;
}

/* Writes v with `head` data bits in its first digit, under `flags`; returns the digit count. */
static size_t put_num(char *out, uint64_t v, unsigned head, unsigned flags) {
    unsigned low = (unsigned)(v & ((1u << head) - 1));
    v >>= head;
    size_t n = 0;
    out[n++] = digits[(v ? 32u : 0u) | (flags << head) | low];
    while (v) {
        unsigned g = (unsigned)(v & 31);
        v >>= 5;
        out[n++] = digits[(v ? 32u : 0u) | g];
    }
    return n;
}

/* Reads a number written by put_num: the shortest spelling only, below 2^64. */
static int get_num(const char *s, size_t len, size_t *at, unsigned head, unsigned *flags,
                   uint64_t *out, const char **why) {
    int c = *at < len ? digit_value(s[*at]) : -1;
    if (c < 0) {
        *why = *at < len ? "a character other than A-Z a-z 0-9 - _" : "it ends inside a number";
        return -1;
    }
    (*at)++;
    *flags = ((unsigned)c & 31) >> head;
    uint64_t v = (unsigned)c & ((1u << head) - 1);
    unsigned shift = head;
    while (c & 32) {
        c = *at < len ? digit_value(s[*at]) : -1;
        if (c < 0) {
            *why = *at < len ? "a character other than A-Z a-z 0-9 - _" : "it ends inside a number";
            return -1;
        }
        (*at)++;
        uint64_t g = (unsigned)c & 31;
        if (shift >= 64 || (shift > 59 && (g >> (64 - shift)) != 0)) {
            *why = "a number above 2^64 - 1";
            return -1;
        }
        if (!(c & 32) && g == 0) {
            *why = "a number not written in its shortest form";
            return -1;
        }
        v |= g << shift;
        shift += 5;
    }
    *out = v;
    return 0;
}

size_t fr_ids_format(const fr_id_t *ids, size_t n, char *buf) {
    if (n == 0) {
        buf[0] = '\0';
        return 0;
    }
    if (n == 1)
        return fr_id_format(ids[0], buf);
    uint64_t hi = ids[0].ms, lo = ids[0].ms;
    for (size_t i = 1; i < n; i++) {
        hi = ids[i].ms > hi ? ids[i].ms : hi;
        lo = ids[i].ms < lo ? ids[i].ms : lo;
    }
    memcpy(buf, MARK, MARK_LEN);
    size_t len = MARK_LEN;
    len += put_num(buf + len, hi, 5, 0);
    len += put_num(buf + len, hi - lo, 5, 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t down = hi - ids[i].ms, up = ids[i].ms - lo;
        unsigned flags = (ids[i].seq ? FLAG_SEQ : 0) | (up < down ? FLAG_LO : 0);
        len += put_num(buf + len, up < down ? up : down, 3, flags);
        if (ids[i].seq)
            len += put_num(buf + len, ids[i].seq, 5, 0);
    }
    buf[len] = '\0';
    return len;
}

static int parse_v1(const char *s, size_t len, fr_id_t *out, size_t max, const char **why) {
    size_t at = MARK_LEN;
    unsigned flags;
    uint64_t hi, span;
    if (get_num(s, len, &at, 5, &flags, &hi, why) < 0 ||
        get_num(s, len, &at, 5, &flags, &span, why) < 0)
        return -1;
    if (span > hi) {
        *why = "its oldest position is before 0";
        return -1;
    }
    uint64_t lo = hi - span;
    int seen_hi = 0, seen_lo = 0;
    size_t n = 0;
    while (at < len) {
        uint64_t delta, seq = 0;
        if (get_num(s, len, &at, 3, &flags, &delta, why) < 0)
            return -1;
        if ((flags & FLAG_SEQ) && get_num(s, len, &at, 5, &(unsigned){0}, &seq, why) < 0)
            return -1;
        if ((flags & FLAG_SEQ) && seq == 0) {
            *why = "a seq of 0 written out";
            return -1;
        }
        if (delta > span) {
            *why = "a position outside the range the id gives";
            return -1;
        }
        uint64_t ms = (flags & FLAG_LO) ? lo + delta : hi - delta;
        uint64_t down = hi - ms, up = ms - lo;
        if (((flags & FLAG_LO) != 0) != (up < down)) {
            *why = "a position counted from the farther end";
            return -1;
        }
        if (n == max) {
            *why = "more positions than the stream has topics";
            return -1;
        }
        seen_hi |= ms == hi;
        seen_lo |= ms == lo;
        out[n++] = (fr_id_t){ms, seq};
    }
    if (n < 2) {
        *why = "a v1 id holds two positions or more (one topic: <ms>-<seq>)";
        return -1;
    }
    if (!seen_hi || !seen_lo) {
        *why = "its newest or oldest millisecond is no topic's";
        return -1;
    }
    return (int)n;
}

int fr_ids_parse(const char *s, size_t len, fr_id_t *out, size_t max, const char **why) {
    if (len >= MARK_LEN && memcmp(s, MARK, MARK_LEN) == 0)
        return parse_v1(s, len, out, max, why);
    int n = fr_id_parse_list(s, len, out, max);
    if (n < 0 && len && s[0] >= '0' && s[0] <= '9')
        *why = "expected <ms>-<seq>, or one per topic comma-joined (no more than the stream's "
               "topics)";
    else if (n < 0)
        *why = "expected an id this server sent: <ms>-<seq>, or v1... for several topics";
    return n;
}
