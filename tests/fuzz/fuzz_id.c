/* Fuzz target: event ids as clients send them back (Last-Event-ID, ?lastEventId=, a WebSocket
 * resume), src/codec/id.h and src/codec/ids.h.
 *
 * The first byte picks how many topics the stream follows (its low 6 bits) and what the rest
 * is (bit 7): the header value itself, or positions that a stream formats and reads back.
 *
 * A header value. Checked:
 *   - fr_id_parse_list accepts exactly the comma-joined canonical ids (no sign, no spaces, no
 *     leading zeros, each number below 2^64) and never writes past `max`;
 *   - what it accepts formats back to the very same bytes, so no two spellings name one id
 *     (a resume point cannot be smuggled past a comparison made on the text);
 *   - fr_id_parse agrees with the list parser on a single element;
 *   - fr_id_cmp is a total order on what was parsed, and fr_id_next always moves forward;
 *   - fr_ids_parse reads comma-joined ids as fr_id_parse_list does, and accepts a v1 id exactly
 *     when a reference decoder (written here from the layout in ids.h, with 128-bit sums)
 *     decodes it to 2..max positions whose reference encoding is the input byte for byte: one
 *     spelling per list of positions; its *why is set whenever it refuses.
 *
 * Positions (ms and seq near each other, far apart, at 0 and at 2^64 - 1). Checked: the id
 * fr_ids_format writes fits fr_ids_max_len, is the plain id for one topic and the reference's
 * bytes for several, uses only A-Z a-z 0-9 - _ after "v1", and reads back to the positions. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "codec/id.h"
#include "codec/ids.h"

#define MAX_IDS 64

/* The canonical text of one id, decided without freshet's parser. */
static int ref_number(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static int ref_id(const char *s, size_t n, fr_id_t *out) {
    const char *dash = memchr(s, '-', n);
    if (!dash)
        return 0;
    size_t a = (size_t)(dash - s);
    return ref_number(s, a, &out->ms) && ref_number(dash + 1, n - a - 1, &out->seq);
}


/* ---- the v1 form, decided without freshet's codec ---------------------------------------- */

typedef unsigned __int128 u128;

static const char ref_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int ref_digit(char c) {
    const char *p = c ? memchr(ref_alphabet, c, sizeof ref_alphabet) : NULL;
    return p ? (int)(p - ref_alphabet) : -1;
}

/* Any spelling of a number (the canonical one is decided by encoding again): digits while the
 * one before has bit 5 set; the first holds `head` value bits under its flags. */
static int ref_read(const char *s, size_t n, size_t *at, int head, int *flags, uint64_t *out) {
    u128 v = 0;
    int shift = 0, count = 0, d;
    do {
        if (*at >= n || (d = ref_digit(s[*at])) < 0 || ++count > 24)
            return 0;
        (*at)++;
        int bits = count == 1 ? head : 5;
        if (count == 1)
            *flags = (d & 31) >> head;
        v += (u128)(unsigned)(d & ((1 << bits) - 1)) << shift;
        shift += bits;
    } while (d & 32);
    if (v > UINT64_MAX)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Appends the digits of v: how many 5-bit groups it needs past the head decides the count. */
static void ref_write(char *out, size_t *len, uint64_t v, int head, int flags) {
    int extra = 0;
    for (u128 rest = (u128)v >> head; rest; rest >>= 5)
        extra++;
    for (int k = 0; k <= extra; k++) {
        int bits = k == 0 ? head : 5, shift = k == 0 ? 0 : head + 5 * (k - 1);
        int d = (int)(((u128)v >> shift) & ((1u << bits) - 1));
        if (k == 0)
            d |= flags << head;
        if (k < extra)
            d |= 32;
        out[(*len)++] = ref_alphabet[d];
    }
}

static size_t ref_encode(const fr_id_t *ids, size_t n, char *out) {
    uint64_t hi = 0, lo = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (ids[i].ms > hi)
            hi = ids[i].ms;
        if (ids[i].ms < lo)
            lo = ids[i].ms;
    }
    size_t len = 0;
    out[len++] = 'v';
    out[len++] = '1';
    ref_write(out, &len, hi, 5, 0);
    ref_write(out, &len, hi - lo, 5, 0);
    for (size_t i = 0; i < n; i++) {
        int from_lo = ids[i].ms - lo < hi - ids[i].ms;
        uint64_t delta = from_lo ? ids[i].ms - lo : hi - ids[i].ms;
        ref_write(out, &len, delta, 3, (ids[i].seq ? 2 : 0) | from_lo);
        if (ids[i].seq)
            ref_write(out, &len, ids[i].seq, 5, 0);
    }
    return len;
}

#define REF_TEXT_MAX (MAX_IDS * 40 + 64)

/* Positions of a v1 id, or -1: decoded leniently, then it must be the reference's own text. */
static int ref_v1(const char *s, size_t n, fr_id_t *out, size_t max) {
    if (n < 2 || s[0] != 'v' || s[1] != '1')
        return -1;
    size_t at = 2;
    int flags;
    uint64_t hi, span;
    if (!ref_read(s, n, &at, 5, &flags, &hi) || !ref_read(s, n, &at, 5, &flags, &span) ||
        span > hi)
        return -1;
    size_t count = 0;
    while (at < n) {
        uint64_t delta, seq = 0;
        if (!ref_read(s, n, &at, 3, &flags, &delta) || count == max)
            return -1;
        if ((flags & 2) && !ref_read(s, n, &at, 5, &(int){0}, &seq))
            return -1;
        u128 ms = (flags & 1) ? (u128)(hi - span) + delta : (u128)hi - delta;
        if (!(flags & 1) && delta > hi)
            return -1;
        if (ms > UINT64_MAX)
            return -1;
        out[count++] = (fr_id_t){(uint64_t)ms, seq};
    }
    if (count < 2)
        return -1;
    char text[REF_TEXT_MAX];
    size_t len = ref_encode(out, count, text);
    return len == n && memcmp(text, s, n) == 0 ? (int)count : -1;
}

/* Positions from the input's bytes: near a base, anywhere, or at the edges. */
static void check_positions(const uint8_t *data, size_t size, size_t n) {
    fz_reader_t r = {data, size, 0};
    uint64_t base = 0;
    for (int k = 0; k < 8; k++)
        base = base << 8 | fz_u8(&r);
    fr_id_t ids[MAX_IDS];
    for (size_t i = 0; i < n; i++) {
        uint8_t how = fz_u8(&r);
        uint64_t v = 0;
        switch (how & 3) {
        case 0: ids[i].ms = base - (fz_u8(&r) | (uint64_t)fz_u8(&r) << 8); break;
        case 1: ids[i].ms = base + fz_u8(&r); break;
        case 2:
            for (int k = 0; k < 8; k++)
                v = v << 8 | fz_u8(&r);
            ids[i].ms = v;
            break;
        default: ids[i].ms = (how & 4) ? UINT64_MAX : 0; break;
        }
        switch ((how >> 3) & 3) {
        case 0: ids[i].seq = 0; break;
        case 1: ids[i].seq = fz_u8(&r); break;
        case 2: ids[i].seq = UINT64_MAX - fz_u8(&r); break;
        default:
            for (int k = 0; k < 8; k++)
                v = v << 8 | fz_u8(&r);
            ids[i].seq = v;
            break;
        }
    }
    char text[REF_TEXT_MAX];
    size_t max_len = fr_ids_max_len(n);
    fz_expect(max_len <= sizeof text, "fr_ids_max_len(%zu) = %zu is larger than expected", n,
              max_len);
    memset(text, 'x', sizeof text);
    size_t len = fr_ids_format(ids, n, text);
    fz_expect(len < max_len && text[len] == '\0', "fr_ids_format overran fr_ids_max_len");
    if (n == 1) {
        char one[FR_ID_MAX_LEN];
        size_t ol = fr_id_format(ids[0], one);
        fz_expect(ol == len && memcmp(one, text, len) == 0, "one topic: not the plain id");
    } else {
        char want[REF_TEXT_MAX];
        size_t wl = ref_encode(ids, n, want);
        if (wl != len || memcmp(want, text, len) != 0) {
            fz_dump("fr_ids_format", text, len);
            fz_dump("reference", want, wl);
            fz_fail("fr_ids_format disagrees with the reference for %zu positions", n);
        }
        for (size_t i = 2; i < len; i++)
            fz_expect(ref_digit(text[i]) >= 0, "a byte outside the alphabet at %zu", i);
    }
    fr_id_t back[MAX_IDS + 1];
    memset(back, 0xA5, sizeof back);
    const char *why = NULL;
    int got = fr_ids_parse(text, len, back, n, &why);
    if (got != (int)n) {
        fz_dump("id", text, len);
        fz_fail("a formatted id does not read back: %d of %zu (%s)", got, n, why ? why : "");
    }
    for (size_t i = 0; i < n; i++)
        fz_expect(fr_id_cmp(back[i], ids[i]) == 0, "position %zu read back differently", i);
}

/* fr_ids_parse on a header value: the v1 reference, or the comma-joined parser. */
static void check_v1(const char *s, size_t n, size_t max) {
    fr_id_t got_ids[MAX_IDS + 1], want[MAX_IDS];
    memset(got_ids, 0xA5, sizeof got_ids);
    fr_id_t guard = got_ids[max];
    const char *why = NULL;
    int got = fr_ids_parse(s, n, got_ids, max, &why);
    fz_expect(memcmp(&got_ids[max], &guard, sizeof guard) == 0, "fr_ids_parse wrote past max=%zu",
              max);
    int ref = n >= 2 && s[0] == 'v' && s[1] == '1' ? ref_v1(s, n, want, max)
                                                   : fr_id_parse_list(s, n, want, max);
    if (got != ref) {
        fz_dump("input", s, n);
        fz_fail("fr_ids_parse returned %d, the reference %d (max %zu; %s)", got, ref, max,
                why ? why : "");
    }
    fz_expect(got >= 0 || (why && *why), "fr_ids_parse refused without saying why");
    for (int i = 0; i < got; i++)
        fz_expect(fr_id_cmp(got_ids[i], want[i]) == 0, "position %d parsed differently", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    /* The first byte picks how many ids the stream follows (1..64), as s->ntopics does. */
    size_t max = (size_t)(data[0] % MAX_IDS) + 1;
    if (data[0] & 0x80) {
        check_positions(data + 1, size - 1, max);
        return 0;
    }
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    check_v1(s, n, max);

    /* A guard slot past max: the parser must never write it. */
    fr_id_t out[MAX_IDS + 1];
    memset(out, 0xA5, sizeof out);
    fr_id_t guard = out[max];
    int got = fr_id_parse_list(s, n, out, max);
    fz_expect(memcmp(&out[max], &guard, sizeof guard) == 0, "fr_id_parse_list wrote past max=%zu",
              max);

    /* The reference: split at every comma, every piece must be an id, at most max of them. */
    fr_id_t ref[MAX_IDS];
    int ref_n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        if (ref_n == (int)max || !ref_id(s + start, i - start, &ref[ref_n])) {
            ref_n = -1;
            break;
        }
        ref_n++;
        start = i + 1;
    }
    if (got != ref_n) {
        fz_dump("input", s, n);
        fz_fail("fr_id_parse_list returned %d, the reference %d (max %zu)", got, ref_n, max);
    }
    if (got < 0)
        return 0;

    /* Accepted: every id formats back to its own text, and the join is the input. */
    char text[MAX_IDS * FR_ID_MAX_LEN];
    size_t tl = 0;
    for (int i = 0; i < got; i++) {
        fz_expect(out[i].ms == ref[i].ms && out[i].seq == ref[i].seq, "id %d parsed differently", i);
        if (i)
            text[tl++] = ',';
        char one[FR_ID_MAX_LEN];
        size_t ol = fr_id_format(out[i], one);
        fz_expect(ol < FR_ID_MAX_LEN && one[ol] == '\0', "fr_id_format overran or lost its NUL");
        fr_id_t back;
        fz_expect(fr_id_parse(one, ol, &back) == 0 && fr_id_cmp(back, out[i]) == 0,
                  "a formatted id does not parse back to itself");
        memcpy(text + tl, one, ol);
        tl += ol;
    }
    if (tl != n || memcmp(text, s, n) != 0) {
        fz_dump("input", s, n);
        fz_dump("formatted", text, tl);
        fz_fail("accepted ids do not format back to the input");
    }
    if (got == 1) {
        fr_id_t one;
        fz_expect(fr_id_parse(s, n, &one) == 0 && fr_id_cmp(one, out[0]) == 0,
                  "fr_id_parse disagrees with fr_id_parse_list on one id");
    }

    /* Order: antisymmetric and consistent with the numbers; the next id is always greater,
     * except from the very last id there is (ms and seq both at their maximum), which no clock
     * reaches. */
    for (int i = 0; i < got; i++) {
        for (int k = 0; k < got; k++) {
            int c = fr_id_cmp(out[i], out[k]), d = fr_id_cmp(out[k], out[i]);
            fz_expect(c == -d, "fr_id_cmp is not antisymmetric");
            int want = out[i].ms != out[k].ms ? (out[i].ms < out[k].ms ? -1 : 1)
                       : out[i].seq != out[k].seq ? (out[i].seq < out[k].seq ? -1 : 1)
                                                  : 0;
            fz_expect(c == want, "fr_id_cmp disagrees with the numbers");
        }
        if (out[i].ms == UINT64_MAX)
            continue;
        uint64_t clocks[3] = {0, out[i].ms, out[i].ms + 1};
        for (int k = 0; k < 3; k++) {
            fr_id_t next = fr_id_next(out[i], clocks[k]);
            fz_expect(fr_id_cmp(next, out[i]) > 0, "fr_id_next did not move forward");
        }
    }
    return 0;
}
