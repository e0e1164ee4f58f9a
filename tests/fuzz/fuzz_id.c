/* Fuzz target: event ids as clients send them back (Last-Event-ID, ?lastEventId=, a WebSocket
 * resume), src/id.h.
 *
 * The input is the header value itself. Checked:
 *   - fr_id_parse_list accepts exactly the comma-joined canonical ids (no sign, no spaces, no
 *     leading zeros, each number below 2^64) and never writes past `max`;
 *   - what it accepts formats back to the very same bytes, so no two spellings name one id
 *     (a resume point cannot be smuggled past a comparison made on the text);
 *   - fr_id_parse agrees with the list parser on a single element;
 *   - fr_id_cmp is a total order on what was parsed, and fr_id_next always moves forward. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "codec/id.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    /* The first byte picks how many ids the stream follows (1..64), as s->ntopics does. */
    size_t max = (size_t)(data[0] % MAX_IDS) + 1;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;

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
