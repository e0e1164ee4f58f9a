/* Fuzz target: the URL codec and route patterns (src/url.h, src/router.h).
 *
 * Input: a route pattern, a newline, then a request target. Each function is compared with a
 * reference written here from the same contract:
 *   - fr_url_decode: %XX escapes (and '+' in queries), -1 on a short or non-hex escape or an
 *     encoded NUL, never more output than input;
 *   - fr_url_split: path up to the first '?', query after it;
 *   - fr_url_each_query: every key=value pair decoded, -1 exactly when one is malformed;
 *   - fr_url_path_escapes: a segment that decodes to "." or "..", or to text with '/' or '\',
 *     or does not decode, is refused; and a path it lets through never climbs out of the
 *     directory once decoded as a whole (the static route relies on this);
 *   - fr_pattern_compile / fr_pattern_match: which patterns compile, which paths match, and
 *     that every parameter is its segment decoded and every literal segment matched exactly. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "codec/router.h"
#include "codec/url.h"

static int hexv(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* -1 or the decoded length; out holds len+1 bytes. */
static long ref_decode(const char *s, size_t n, char *out, int plus) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (n - i < 3 || hexv(s[i + 1]) < 0 || hexv(s[i + 2]) < 0)
                return -1;
            int v = hexv(s[i + 1]) * 16 + hexv(s[i + 2]);
            if (v == 0)
                return -1;
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
    return (long)o;
}

static void check_decode(const char *s, size_t n, int plus) {
    char *a = malloc(n + 1), *b = malloc(n + 1);
    long ra = fr_url_decode(s, n, a, plus), rb = ref_decode(s, n, b, plus);
    if (ra != rb || (ra >= 0 && (memcmp(a, b, (size_t)ra) != 0 || a[ra] != '\0'))) {
        fz_dump("input", s, n);
        fz_fail("fr_url_decode(plus=%d) returned %ld, the reference %ld", plus, ra, rb);
    }
    free(a);
    free(b);
}

/* ---- queries ---- */

typedef struct {
    const char *q;
    size_t n, pos; /* where the reference walk stands */
    int calls;
} query_ctx_t;

/* Each callback must be the next non-empty pair of the query, decoded. */
static void on_pair(void *vctx, const char *k, size_t kl, const char *v, size_t vl) {
    query_ctx_t *c = vctx;
    while (c->pos < c->n && c->q[c->pos] == '&')
        c->pos++;
    size_t end = c->pos;
    while (end < c->n && c->q[end] != '&')
        end++;
    fz_expect(end > c->pos, "a query callback for an empty pair");
    const char *pair = c->q + c->pos;
    size_t pl = end - c->pos;
    const char *eq = memchr(pair, '=', pl);
    size_t rkl = eq ? (size_t)(eq - pair) : pl;
    char *rk = malloc(pl + 1), *rv = malloc(pl + 1);
    long dk = ref_decode(pair, rkl, rk, 1);
    long dv = eq ? ref_decode(eq + 1, pl - rkl - 1, rv, 1) : 0;
    fz_expect(dk >= 0 && dv >= 0, "a callback for a pair that does not decode");
    fz_expect((size_t)dk == kl && memcmp(rk, k, kl) == 0, "a query key decoded differently");
    fz_expect((size_t)dv == vl && (vl == 0 || memcmp(rv, v, vl) == 0),
              "a query value decoded differently");
    /* %00 never decodes (a NUL would cut the C string a hook sees); a raw NUL byte is left to
     * the HTTP parser, which refuses it in a request target. */
    if (!memchr(pair, '\0', pl))
        fz_expect(!memchr(k, '\0', kl) && !memchr(v, '\0', vl), "%%00 decoded into a query pair");
    free(rk);
    free(rv);
    c->pos = end;
    c->calls++;
}

static void check_query(const char *q, size_t n) {
    /* The reference outcome: -1 when any non-empty pair fails to decode. */
    int ref_rc = 0, ref_calls = 0;
    char *tmp = malloc(n + 1);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && q[i] != '&')
            continue;
        if (i > start) {
            const char *pair = q + start;
            size_t pl = i - start;
            const char *eq = memchr(pair, '=', pl);
            size_t kl = eq ? (size_t)(eq - pair) : pl;
            if (ref_decode(pair, kl, tmp, 1) < 0 ||
                (eq && ref_decode(eq + 1, pl - kl - 1, tmp, 1) < 0)) {
                ref_rc = -1;
                break;
            }
            ref_calls++;
        }
        start = i + 1;
    }
    free(tmp);
    query_ctx_t c = {q, n, 0, 0};
    int rc = fr_url_each_query(q, n, on_pair, &c);
    fz_expect(rc == ref_rc, "fr_url_each_query returned %d, the reference %d", rc, ref_rc);
    if (rc == 0)
        fz_expect(c.calls == ref_calls, "fr_url_each_query called back %d times, expected %d",
                  c.calls, ref_calls);
}

/* ---- static paths ---- */

static void check_escapes(const char *p, size_t n) {
    int ref = 0;
    char *seg = malloc(n + 1);
    size_t start = 0;
    for (size_t i = 0; i <= n && !ref; i++) {
        if (i < n && p[i] != '/')
            continue;
        long d = ref_decode(p + start, i - start, seg, 0);
        if (d < 0 || (d == 1 && seg[0] == '.') || (d == 2 && seg[0] == '.' && seg[1] == '.') ||
            memchr(seg, '/', (size_t)d) || memchr(seg, '\\', (size_t)d))
            ref = 1;
        start = i + 1;
    }
    int got = fr_url_path_escapes(p, n);
    /* A raw NUL (which the HTTP parser refuses before this) makes freshet compare a cut string
     * and refuse more than the reference: refusing is the safe side. */
    if (got != ref && !(got == 1 && memchr(p, '\0', n))) {
        fz_dump("path", p, n);
        fz_fail("fr_url_path_escapes says %d, the reference %d", got, ref);
    }
    if (!got) {
        /* What the static route does next: decode the whole path and append it to the root.
         * No component of that may be "..". */
        long d = fr_url_decode(p, n, seg, 0);
        fz_expect(d >= 0, "a path that passed the check does not decode");
        size_t s0 = 0;
        for (size_t i = 0; i <= (size_t)d; i++) {
            if (i < (size_t)d && seg[i] != '/')
                continue;
            fz_expect(!(i - s0 == 2 && seg[s0] == '.' && seg[s0 + 1] == '.'),
                      "a path with a '..' component passed fr_url_path_escapes");
            s0 = i + 1;
        }
        fz_expect(!memchr(seg, '\\', (size_t)d), "a backslash passed fr_url_path_escapes");
    }
    free(seg);
}

/* ---- patterns ---- */

static int ref_name_ok(const char *s, size_t n) {
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

typedef struct {
    const char *s;
    size_t n;
    int param;
} ref_seg_t;

/* Splits "/a/b" into segments after the leading '/'; "/" has none. */
static size_t ref_split(const char *s, size_t n, ref_seg_t *segs, size_t max) {
    size_t k = 0, start = 1;
    if (n <= 1)
        return 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && s[i] != '/')
            continue;
        if (k < max) {
            segs[k].s = s + start;
            segs[k].n = i - start;
            segs[k].param = 0;
        }
        k++;
        start = i + 1;
    }
    return k;
}

static void check_pattern(const char *pat, size_t pl, const char *path, size_t n) {
    fr_pattern_t p;
    const char *err = NULL;
    int rc = fr_pattern_compile(pat, &p, &err);

    enum { MAXSEG = 256 };
    ref_seg_t segs[MAXSEG];
    int ref_ok = pl > 0 && pat[0] == '/';
    size_t ns = ref_ok ? ref_split(pat, pl, segs, MAXSEG) : 0;
    if (ns > MAXSEG) {
        if (rc == 0) /* too many segments for the reference to follow */
            fr_pattern_free(&p);
        return;
    }
    int params = 0;
    for (size_t i = 0; i < ns && ref_ok; i++) {
        if (segs[i].n == 0 || segs[i].s[0] != ':')
            continue;
        segs[i].param = 1;
        if (!ref_name_ok(segs[i].s + 1, segs[i].n - 1)) {
            ref_ok = 0;
            break;
        }
        for (size_t k = 0; k < i; k++) {
            if (segs[k].param && segs[k].n == segs[i].n &&
                memcmp(segs[k].s, segs[i].s, segs[i].n) == 0)
                ref_ok = 0;
        }
        if (++params > FR_MAX_PARAMS)
            ref_ok = 0;
    }
    if ((rc == 0) != ref_ok) {
        fz_dump("pattern", pat, pl);
        fz_fail("fr_pattern_compile returned %d (%s), the reference says %s", rc,
                err ? err : "-", ref_ok ? "valid" : "invalid");
    }
    if (rc != 0) {
        fz_expect(err && *err, "a refused pattern without a message");
        return;
    }
    fz_expect(p.nsegs == ns, "compiled %zu segments, expected %zu", p.nsegs, ns);

    /* Matching. The reference walks the segments left to right as a router must: the first
     * literal that differs or empty parameter is a non-match (0), the first parameter that does
     * not decode is bad encoding (-1); a path with another segment count never matches. */
    fr_param_t out[FR_MAX_PARAMS];
    size_t nout = 99;
    int m = fr_pattern_match(&p, path, n, out, &nout);
    ref_seg_t ps[MAXSEG];
    size_t np = n > 0 && path[0] == '/' ? ref_split(path, n, ps, MAXSEG) : SIZE_MAX;
    int ref_m = np == ns;
    if (np != SIZE_MAX && np > MAXSEG) {
        ref_m = -2; /* unknown: too long for the reference */
    }
    char *tmp = malloc(n + 1);
    for (size_t i = 0; i < ns && ref_m == 1; i++) {
        if (segs[i].param) {
            if (ps[i].n == 0)
                ref_m = 0;
            else if (ref_decode(ps[i].s, ps[i].n, tmp, 0) < 0)
                ref_m = -1;
        } else if (segs[i].n != ps[i].n || memcmp(segs[i].s, ps[i].s, ps[i].n) != 0) {
            ref_m = 0;
        }
    }
    if (ref_m != -2 && m != ref_m) {
        fz_dump("pattern", pat, pl);
        fz_dump("path", path, n);
        fz_fail("fr_pattern_match returned %d, the reference %d", m, ref_m);
    }
    if (m == 1) {
        size_t k = 0;
        for (size_t i = 0; i < ns; i++) {
            if (!segs[i].param)
                continue;
            fz_expect(k < nout, "fewer parameters than the pattern has");
            fz_expect(strlen(out[k].name) == segs[i].n - 1 &&
                          memcmp(out[k].name, segs[i].s + 1, segs[i].n - 1) == 0,
                      "parameter %zu has the wrong name", k);
            long d = ref_decode(ps[i].s, ps[i].n, tmp, 0);
            /* Values are C strings: a raw NUL (refused by the HTTP parser before routing)
             * would cut them, so compare up to the first one. */
            size_t want = d >= 0 ? strnlen(tmp, (size_t)d) : 0;
            fz_expect(d >= 0 && strlen(out[k].value) == want &&
                          memcmp(out[k].value, tmp, want) == 0,
                      "parameter %zu is not its segment decoded", k);
            k++;
        }
        fz_expect(k == nout, "more parameters than the pattern has");
        fr_params_free(out, nout);
    } else {
        fz_expect(nout == 0, "a failed match left %zu parameters", nout);
    }
    free(tmp);
    fr_pattern_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    size_t pl = nl ? (size_t)(nl - s) : 0;
    const char *target = nl ? nl + 1 : s;
    size_t tl = size - (size_t)(target - s);

    check_decode(target, tl, 0);
    check_decode(target, tl, 1);

    size_t path_len, qlen;
    const char *query;
    fr_url_split(target, tl, &path_len, &query, &qlen);
    const char *q = memchr(target, '?', tl);
    fz_expect(path_len == (q ? (size_t)(q - target) : tl), "fr_url_split: wrong path length");
    fz_expect(q ? (query == q + 1 && qlen == tl - path_len - 1) : (query == NULL && qlen == 0),
              "fr_url_split: wrong query");
    if (query)
        check_query(query, qlen);
    check_escapes(target, path_len);

    /* The pattern is a C string in freshet (it comes from the app file). */
    if (nl && !memchr(s, '\0', pl)) {
        char *pat = malloc(pl + 1);
        memcpy(pat, s, pl);
        pat[pl] = '\0';
        check_pattern(pat, pl, target, path_len);
        free(pat);
    }
    return 0;
}
