/* Fuzz target: the backend client's response reader (src/client/http_response.h), which reads
 * what a backend service (or anything listening where a script points) sends back.
 *
 * Input: [flags][limit][response bytes…]
 *   flags bit 0     the request was HEAD
 *   flags bits 1-5  piece size - 1 (1 to 32 bytes) for the second reading
 *   flags bit 6     the peer closes after the last byte (fr_hres_eof)
 *   limit           the byte limit: 16 + 64 * limit, or 1 MiB for 255
 *
 * The bytes are read twice, in one piece and in pieces, and both readings must agree: state,
 * error, bytes taken, status, headers, body and whether the connection may be reused. Checked
 * on every complete response:
 *   - the status is final (200 to 999) and the bytes taken fit the limit;
 *   - header names are non-empty lower-case tokens, values hold no CR, LF or NUL nor blanks at
 *     either end, and both are NUL-terminated where their length says;
 *   - a response to HEAD, a 204 and a 304 have no body;
 *   - a body framed by one Content-Length (no Transfer-Encoding) is that many bytes and is the
 *     bytes right before where the response ended;
 *   - a reusable connection had nothing after the response and no close to read to.
 * A failure names one of the reader's three errors; a reading still going took every byte. */
#include <stdint.h>
#include <string.h>

#include "client/http_response.h"
#include "fuzz_common.h"

typedef struct {
    fr_hres_state_t st;
    size_t used;
} reading_t;

static reading_t read_all(fr_hres_t *r, const char *s, size_t n, size_t piece, int eof) {
    reading_t out = {FR_HRES_MORE, 0};
    size_t off = 0;
    while (off < n && out.st == FR_HRES_MORE) {
        size_t k = piece && n - off > piece ? piece : n - off, u;
        out.st = fr_hres_feed(r, s + off, k, &u);
        fz_expect(u <= k, "fr_hres_feed took %zu of %zu bytes", u, k);
        fz_expect(out.st != FR_HRES_MORE || u == k, "a reading that goes on left bytes behind");
        out.used += u;
        off += k;
    }
    if (out.st == FR_HRES_MORE && eof)
        out.st = fr_hres_eof(r);
    return out;
}

static int tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const fr_hheader_t *find(const fr_hresponse_t *res, const char *name, int *count) {
    const fr_hheader_t *found = NULL;
    *count = 0;
    for (size_t i = 0; i < res->nheaders; i++)
        if (res->headers[i].name_len == strlen(name) &&
            memcmp(res->headers[i].name, name, res->headers[i].name_len) == 0) {
            found = &res->headers[i];
            ++*count;
        }
    return found;
}

static void check_headers(const fr_hresponse_t *res) {
    for (size_t i = 0; i < res->nheaders; i++) {
        const fr_hheader_t *h = &res->headers[i];
        fz_expect(h->name_len > 0 && h->name[h->name_len] == '\0', "header %zu: name", i);
        for (size_t j = 0; j < h->name_len; j++)
            fz_expect(tchar((unsigned char)h->name[j]), "header %zu: byte %02x in its name", i,
                      (unsigned char)h->name[j]);
        fz_expect(h->value[h->value_len] == '\0', "header %zu: value not NUL-terminated", i);
        fz_expect(!memchr(h->value, '\r', h->value_len) && !memchr(h->value, '\n', h->value_len) &&
                      !memchr(h->value, '\0', h->value_len),
                  "header %zu: CR, LF or NUL in its value", i);
        if (h->value_len) {
            char a = h->value[0], z = h->value[h->value_len - 1];
            fz_expect(a != ' ' && a != '\t' && z != ' ' && z != '\t',
                      "header %zu: a blank at an end of its value", i);
        }
    }
}

/* A complete response, read in one piece from s[0..n). */
static void check_response(const fr_hres_t *r, const char *s, size_t n, size_t used, int head) {
    const fr_hresponse_t *res = fr_hres_response(r);
    fz_expect(res != NULL, "DONE without a response");
    fz_expect(res->status >= 200 && res->status <= 999, "status %d", res->status);
    fz_expect(used <= r->limit && used <= n, "took %zu bytes, limit %zu", used, r->limit);
    fz_expect(res->body && res->body[res->body_len] == '\0', "body not NUL-terminated");
    check_headers(res);
    int bodiless = head || res->status == 204 || res->status == 304;
    fz_expect(!bodiless || res->body_len == 0, "%s response with a %zu-byte body",
              head ? "a HEAD" : "a 204/304", res->body_len);
    int ncl, nte;
    const fr_hheader_t *cl = find(res, "content-length", &ncl);
    find(res, "transfer-encoding", &nte);
    if (!bodiless && ncl == 1 && nte == 0) {
        unsigned long long want = 0;
        for (size_t i = 0; i < cl->value_len && want < (1ull << 40); i++)
            want = want * 10 + (unsigned)(cl->value[i] - '0');
        fz_expect(res->body_len == want, "Content-Length %llu, body %zu", want, res->body_len);
        fz_expect(memcmp(res->body, s + used - res->body_len, res->body_len) == 0,
                  "the body is not the bytes before the response's end");
    }
    if (fr_hres_reusable(r))
        fz_expect(used == n, "reusable with %zu bytes after the response", n - used);
}

static void compare(const fr_hres_t *a, reading_t ra, const fr_hres_t *b, reading_t rb,
                    size_t n) {
    fz_expect(ra.st == rb.st, "one piece: state %d, pieces: state %d", ra.st, rb.st);
    if (ra.st == FR_HRES_FAIL) {
        fz_expect(strcmp(a->err, b->err) == 0, "errors differ: %s / %s", a->err, b->err);
        return;
    }
    fz_expect(ra.used == rb.used, "took %zu bytes in one piece, %zu in pieces", ra.used, rb.used);
    if (ra.st != FR_HRES_DONE)
        return;
    /* In pieces, bytes after the response may sit in a piece the reader never saw. */
    fz_expect(fr_hres_reusable(a) == (fr_hres_reusable(b) && rb.used == n), "reuse differs");
    const fr_hresponse_t *x = fr_hres_response(a), *y = fr_hres_response(b);
    fz_expect(x->status == y->status && x->nheaders == y->nheaders &&
                  x->body_len == y->body_len && memcmp(x->body, y->body, x->body_len) == 0,
              "responses differ");
    for (size_t i = 0; i < x->nheaders; i++) {
        const fr_hheader_t *p = &x->headers[i], *q = &y->headers[i];
        fz_expect(p->name_len == q->name_len && p->value_len == q->value_len &&
                      memcmp(p->name, q->name, p->name_len) == 0 &&
                      memcmp(p->value, q->value, p->value_len) == 0,
                  "header %zu differs", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader_t in = {data, size, 0};
    uint8_t flags = fz_u8(&in), lim = fz_u8(&in);
    int head = flags & 1, eof = (flags >> 6) & 1;
    size_t piece = ((flags >> 1) & 31) + 1;
    size_t limit = lim == 255 ? (size_t)1 << 20 : 16 + 64 * (size_t)lim;
    size_t n;
    const char *s = (const char *)fz_take(&in, fz_left(&in), &n);

    fr_hres_t a, b;
    fr_hres_init(&a, limit, head);
    fr_hres_init(&b, limit, head);
    reading_t ra = read_all(&a, s, n, 0, eof), rb = read_all(&b, s, n, piece, eof);
    if (ra.st == FR_HRES_FAIL)
        fz_expect(a.err && (!strcmp(a.err, "invalid response") ||
                            !strcmp(a.err, "response too large") ||
                            !strcmp(a.err, "connection closed")),
                  "unexpected error %s", a.err ? a.err : "(none)");
    else if (ra.st == FR_HRES_MORE)
        fz_expect(ra.used == n && n <= limit, "a reading that goes on took %zu of %zu", ra.used,
                  n);
    else
        check_response(&a, s, n, ra.used, head);
    compare(&a, ra, &b, rb, n);
    fr_hres_free(&a);
    fr_hres_free(&b);
    return 0;
}
