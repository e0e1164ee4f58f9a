/* The response reader on its own: status, lower-case headers, the three ways a body ends,
 * interim responses, bodiless statuses, HEAD, the byte limit, whether the connection may be
 * reused, and the same answer however the bytes are cut. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "client/http_response.h"
#include "fr_test.h"

/* Feeds s in pieces of `piece` bytes (0: all at once) and returns the state at the end; *used
 * totals the bytes taken. eof: the peer closes after the last byte. */
static fr_hres_state_t feed(fr_hres_t *r, const char *s, size_t piece, int eof, size_t *used) {
    size_t len = strlen(s), off = 0, took = 0;
    fr_hres_state_t st = FR_HRES_MORE;
    while (off < len && st == FR_HRES_MORE) {
        size_t n = piece && len - off > piece ? piece : len - off;
        size_t u;
        st = fr_hres_feed(r, s + off, n, &u);
        took += u;
        off += n;
    }
    if (st == FR_HRES_MORE && eof)
        st = fr_hres_eof(r);
    if (used)
        *used = took;
    return st;
}

/* The value of header `name` in a complete response, or NULL. */
static const char *header(const fr_hresponse_t *res, const char *name) {
    for (size_t i = 0; i < res->nheaders; i++)
        if (res->headers[i].name_len == strlen(name) && memcmp(res->headers[i].name, name,
                                                                res->headers[i].name_len) == 0)
            return res->headers[i].value;
    return NULL;
}

static void test_content_length(void) {
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Mixed-CASE:  a b  "
                             "\r\nContent-Length: 5\r\n\r\nhello";
    for (size_t piece = 0; piece < 8; piece++) {
        fr_hres_t r;
        fr_hres_init(&r, 1 << 20, 0);
        size_t used;
        CHECK_EQ_INT(feed(&r, in, piece, 0, &used), FR_HRES_DONE);
        CHECK_EQ_UINT(used, strlen(in));
        const fr_hresponse_t *res = fr_hres_response(&r);
        if (CHECK(res)) {
            CHECK_EQ_INT(res->status, 200);
            CHECK_EQ_UINT(res->nheaders, 3);
            CHECK_EQ_STR(header(res, "content-type"), "text/plain");
            CHECK_EQ_STR(header(res, "x-mixed-case"), "a b");
            CHECK_EQ_UINT(res->headers[1].value_len, 3);
            CHECK_MEM_LIT(res->body, res->body_len, "hello");
        }
        CHECK(fr_hres_reusable(&r));
        fr_hres_free(&r);
    }
}

static void test_chunked_with_trailers(void) {
    static const char in[] = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
    for (size_t piece = 0; piece < 6; piece++) {
        fr_hres_t r;
        fr_hres_init(&r, 1 << 20, 0);
        size_t used;
        CHECK_EQ_INT(feed(&r, in, piece, 0, &used), FR_HRES_DONE);
        CHECK_EQ_UINT(used, strlen(in));
        const fr_hresponse_t *res = fr_hres_response(&r);
        if (CHECK(res)) {
            CHECK_EQ_INT(res->status, 201);
            CHECK_MEM_LIT(res->body, res->body_len, "hello, world");
            CHECK_EQ_UINT(res->nheaders, 1); /* trailers are not headers */
            CHECK(header(res, "x-trailer") == NULL);
        }
        CHECK(fr_hres_reusable(&r));
        fr_hres_free(&r);
    }
}

static void test_read_until_close(void) {
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
    fr_hres_t r;
    fr_hres_init(&r, 1 << 20, 0);
    CHECK_EQ_INT(feed(&r, in, 3, 0, NULL), FR_HRES_MORE);
    CHECK(fr_hres_response(&r) == NULL);
    CHECK_EQ_INT(fr_hres_eof(&r), FR_HRES_DONE);
    const fr_hresponse_t *res = fr_hres_response(&r);
    if (CHECK(res))
        CHECK_MEM_LIT(res->body, res->body_len, "all of it");
    CHECK(!fr_hres_reusable(&r));
    fr_hres_free(&r);
}

static void test_cut_short(void) {
    static const char *cases[] = {
        "", "HTTP/1.1 200", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "HTTP/1.1 100 Continue\r\n\r\n",
    };
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        fr_hres_t r;
        fr_hres_init(&r, 1 << 20, 0);
        CHECK_EQ_INT(feed(&r, cases[i], 0, 1, NULL), FR_HRES_FAIL);
        CHECK_EQ_STR(r.err, "connection closed");
        fr_hres_free(&r);
    }
}

static void test_interim_skipped(void) {
    static const char in[] = "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
                             "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Late: 2\r\n\r\nok";
    for (size_t piece = 0; piece < 5; piece++) {
        fr_hres_t r;
        fr_hres_init(&r, 1 << 20, 0);
        CHECK_EQ_INT(feed(&r, in, piece, 0, NULL), FR_HRES_DONE);
        const fr_hresponse_t *res = fr_hres_response(&r);
        if (CHECK(res)) {
            CHECK_EQ_INT(res->status, 200);
            CHECK_EQ_UINT(res->nheaders, 2);
            CHECK(header(res, "x-early") == NULL && header(res, "link") == NULL);
            CHECK_EQ_STR(header(res, "x-late"), "2");
            CHECK_MEM_LIT(res->body, res->body_len, "ok");
        }
        fr_hres_free(&r);
    }
}

/* A response to HEAD, and 204 and 304 responses, end with their head whatever their headers
 * say; the next response on the connection follows right after. */
static void test_no_body(void) {
    static const struct {
        const char *in;
        int head;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 0},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0},
        {"HTTP/1.1 304 Not Modified\r\n\r\n", 0},
    };
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        fr_hres_t r;
        fr_hres_init(&r, 1 << 20, cases[i].head);
        size_t used;
        CHECK_EQ_INT(feed(&r, cases[i].in, 0, 0, &used), FR_HRES_DONE);
        CHECK_EQ_UINT(used, strlen(cases[i].in));
        const fr_hresponse_t *res = fr_hres_response(&r);
        if (CHECK(res))
            CHECK_EQ_UINT(res->body_len, 0);
        CHECK(fr_hres_reusable(&r));
        fr_hres_free(&r);
    }
}

/* Bytes after the response are not the reader's: it says where it stopped and that the
 * connection holds more than it should. */
static void test_leftover(void) {
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
    fr_hres_t r;
    fr_hres_init(&r, 1 << 20, 0);
    size_t used;
    CHECK_EQ_INT(fr_hres_feed(&r, in, strlen(in), &used), FR_HRES_DONE);
    CHECK_EQ_UINT(used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    CHECK(!fr_hres_reusable(&r));
    /* Done stays done. */
    CHECK_EQ_INT(fr_hres_feed(&r, "x", 1, &used), FR_HRES_DONE);
    CHECK_EQ_UINT(used, 0);
    fr_hres_free(&r);
}

static void test_not_kept_alive(void) {
    static const char *cases[] = {
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    };
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        fr_hres_t r;
        fr_hres_init(&r, 1 << 20, 0);
        CHECK_EQ_INT(feed(&r, cases[i], 0, 0, NULL), FR_HRES_DONE);
        CHECK(!fr_hres_reusable(&r));
        fr_hres_free(&r);
    }
    fr_hres_t r;
    fr_hres_init(&r, 1 << 20, 0);
    CHECK_EQ_INT(feed(&r, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
                      0, 0, NULL),
                 FR_HRES_DONE);
    CHECK(fr_hres_reusable(&r));
    fr_hres_free(&r);
}

/* The limit counts every byte of the exchange and is exact: a response of exactly `limit`
 * bytes passes, one byte more does not, however the bytes are cut. */
static void test_limit(void) {
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    size_t n = strlen(in);
    for (size_t piece = 0; piece < 4; piece++) {
        fr_hres_t r;
        fr_hres_init(&r, n, 0);
        CHECK_EQ_INT(feed(&r, in, piece, 0, NULL), FR_HRES_DONE);
        fr_hres_free(&r);
        fr_hres_init(&r, n - 1, 0);
        CHECK_EQ_INT(feed(&r, in, piece, 0, NULL), FR_HRES_FAIL);
        CHECK_EQ_STR(r.err, "response too large");
        fr_hres_free(&r);
    }
    /* A body read until close, and interim responses, count too. */
    fr_hres_t r;
    fr_hres_init(&r, 30, 0);
    CHECK_EQ_INT(feed(&r, "HTTP/1.1 200 OK\r\n\r\n0123456789abcdef", 0, 1, NULL), FR_HRES_FAIL);
    CHECK_EQ_STR(r.err, "response too large");
    fr_hres_free(&r);
    fr_hres_init(&r, 60, 0);
    CHECK_EQ_INT(feed(&r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 100 Continue\r\n\r\n", 0, 0, NULL),
                 FR_HRES_FAIL);
    CHECK_EQ_STR(r.err, "response too large");
    fr_hres_free(&r);
}

static void test_invalid(void) {
    static const char *cases[] = {
        "garbage\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: no name\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: 1\r\n:\r\nContent-Length: 0\r\n\r\n",
    };
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        fr_hres_t r;
        fr_hres_init(&r, 1 << 20, 0);
        fr_hres_state_t st = feed(&r, cases[i], 0, 0, NULL);
        if (!CHECK_EQ_INT(st, FR_HRES_FAIL))
            printf("    case %zu\n", i);
        CHECK_EQ_STR(r.err, "invalid response");
        /* A failed reader stays failed, the close too. */
        CHECK_EQ_INT(fr_hres_eof(&r), FR_HRES_FAIL);
        fr_hres_free(&r);
    }
}

static void test_empty_header_value(void) {
    fr_hres_t r;
    fr_hres_init(&r, 1 << 20, 0);
    CHECK_EQ_INT(feed(&r, "HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Blank:   \r\nContent-Length: 0\r\n\r\n",
                      1, 0, NULL),
                 FR_HRES_DONE);
    const fr_hresponse_t *res = fr_hres_response(&r);
    if (CHECK(res) && CHECK_EQ_UINT(res->nheaders, 3)) {
        CHECK_EQ_STR(header(res, "x-empty"), "");
        CHECK_EQ_STR(header(res, "x-blank"), "");
        CHECK_EQ_UINT(res->headers[0].value_len, 0);
        CHECK_EQ_UINT(res->body_len, 0);
        CHECK_EQ_STR(res->body, "");
    }
    fr_hres_free(&r);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_content_length);
    FR_RUN(test_chunked_with_trailers);
    FR_RUN(test_read_until_close);
    FR_RUN(test_cut_short);
    FR_RUN(test_interim_skipped);
    FR_RUN(test_no_body);
    FR_RUN(test_leftover);
    FR_RUN(test_not_kept_alive);
    FR_RUN(test_limit);
    FR_RUN(test_invalid);
    FR_RUN(test_empty_header_value);
    return FR_TEST_END();
}
