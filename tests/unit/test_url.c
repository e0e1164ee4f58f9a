/* URL pieces: percent-decoding, splitting, query pairs, path traversal checks. */
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "codec/url.h"

/* Decodes a literal; returns the result length and copies the text into out (64 bytes). */
static long decode(const char *src, int plus, char *out) {
    memset(out, '#', 64);
    return fr_url_decode(src, strlen(src), out, plus);
}

static void test_decode_plain_and_escapes(void) {
    char out[64];
    CHECK_EQ_INT(decode("", 0, out), 0);
    CHECK_EQ_STR(out, "");
    CHECK_EQ_INT(decode("abc", 0, out), 3);
    CHECK_EQ_STR(out, "abc");
    CHECK_EQ_INT(decode("a%20b", 0, out), 3);
    CHECK_EQ_STR(out, "a b");
    CHECK_EQ_INT(decode("%41%62%7e", 0, out), 3);
    CHECK_EQ_STR(out, "Ab~");
    CHECK_EQ_INT(decode("%2f%2F", 0, out), 2); /* hex digits in either case */
    CHECK_EQ_STR(out, "//");
    CHECK_EQ_INT(decode("%C3%A9", 0, out), 2);
    CHECK_EQ_STR(out, "\xc3\xa9");
    CHECK_EQ_INT(decode("%25", 0, out), 1); /* a percent sign, not decoded again */
    CHECK_EQ_STR(out, "%");
    CHECK_EQ_INT(decode("%2541", 0, out), 3);
    CHECK_EQ_STR(out, "%41");
    /* Only len bytes are read, and the output is terminated there. */
    memset(out, '#', sizeof out);
    CHECK_EQ_INT(fr_url_decode("ab%41cd", 5, out, 0), 3);
    CHECK_EQ_STR(out, "abA");
}

static void test_decode_plus(void) {
    char out[64];
    CHECK_EQ_INT(decode("a+b", 1, out), 3);
    CHECK_EQ_STR(out, "a b");
    CHECK_EQ_INT(decode("a+b", 0, out), 3);
    CHECK_EQ_STR(out, "a+b");
    /* An encoded plus is a plus in both modes. */
    CHECK_EQ_INT(decode("a%2Bb", 1, out), 3);
    CHECK_EQ_STR(out, "a+b");
    CHECK_EQ_INT(decode("a%2bb", 0, out), 3);
    CHECK_EQ_STR(out, "a+b");
    CHECK_EQ_INT(decode("++", 1, out), 2);
    CHECK_EQ_STR(out, "  ");
}

static void test_decode_errors(void) {
    char out[64];
    CHECK_EQ_INT(decode("%zz", 0, out), -1);
    CHECK_EQ_INT(decode("%g0", 0, out), -1);
    CHECK_EQ_INT(decode("%0g", 0, out), -1);
    CHECK_EQ_INT(decode("a%", 0, out), -1);
    CHECK_EQ_INT(decode("a%4", 0, out), -1);
    CHECK_EQ_INT(decode("%", 1, out), -1);
    CHECK_EQ_INT(decode("%%41", 0, out), -1);
    CHECK_EQ_INT(decode("%00", 0, out), -1);
    CHECK_EQ_INT(decode("a%00b", 1, out), -1);
    CHECK_EQ_INT(decode("% 1", 0, out), -1);
    /* A truncated escape cut off by len, though the buffer goes on. */
    CHECK_EQ_INT(fr_url_decode("a%41", 3, out, 0), -1);
}

static void test_split(void) {
    static const char sentinel[] = "unset";
    size_t plen = 99, qlen = 99;
    const char *q = sentinel;
    const char *u = "/rooms/a?x=1&y=2";
    fr_url_split(u, strlen(u), &plen, &q, &qlen);
    CHECK_EQ_UINT(plen, 8);
    CHECK(q == u + 9);
    CHECK_EQ_UINT(qlen, 7);
    CHECK_MEM_LIT(q, qlen, "x=1&y=2");

    u = "/plain";
    fr_url_split(u, strlen(u), &plen, &q, &qlen);
    CHECK_EQ_UINT(plen, 6);
    CHECK(q == NULL);
    CHECK_EQ_UINT(qlen, 0);

    /* An empty query is present but empty. */
    u = "/p?";
    fr_url_split(u, strlen(u), &plen, &q, &qlen);
    CHECK_EQ_UINT(plen, 2);
    CHECK(q == u + 3);
    CHECK_EQ_UINT(qlen, 0);

    /* Only the first '?' splits. */
    u = "/p?a=?&b";
    fr_url_split(u, strlen(u), &plen, &q, &qlen);
    CHECK_EQ_UINT(plen, 2);
    CHECK_MEM_LIT(q, qlen, "a=?&b");

    u = "?x";
    fr_url_split(u, strlen(u), &plen, &q, &qlen);
    CHECK_EQ_UINT(plen, 0);
    CHECK_MEM_LIT(q, qlen, "x");

    /* len bounds the search. */
    u = "/p?x";
    fr_url_split(u, 2, &plen, &q, &qlen);
    CHECK_EQ_UINT(plen, 2);
    CHECK(q == NULL);
}

/* Collects query pairs as "key=value" strings with their lengths checked. */
typedef struct {
    int n;
    char pairs[16][64];
    int len_ok;
} pairs_t;

static void collect(void *ctx, const char *key, size_t klen, const char *val, size_t vlen) {
    pairs_t *p = ctx;
    if (strlen(key) != klen || strlen(val) != vlen)
        p->len_ok = 0;
    if (p->n < 16)
        snprintf(p->pairs[p->n++], sizeof p->pairs[0], "%s=%s", key, val);
}

static int each(const char *q, pairs_t *p) {
    memset(p, 0, sizeof *p);
    p->len_ok = 1;
    return fr_url_each_query(q, strlen(q), collect, p);
}

static void test_each_query(void) {
    pairs_t p;
    CHECK_EQ_INT(each("a=1&b=two", &p), 0);
    REQUIRE(p.n == 2);
    CHECK_EQ_STR(p.pairs[0], "a=1");
    CHECK_EQ_STR(p.pairs[1], "b=two");
    CHECK(p.len_ok);

    /* Repeated keys are each reported, in order. */
    CHECK_EQ_INT(each("topic=a&topic=b&topic=c", &p), 0);
    REQUIRE(p.n == 3);
    CHECK_EQ_STR(p.pairs[0], "topic=a");
    CHECK_EQ_STR(p.pairs[1], "topic=b");
    CHECK_EQ_STR(p.pairs[2], "topic=c");

    /* A key without '=' has an empty value; empty pairs are skipped. */
    CHECK_EQ_INT(each("flag&&x=1&", &p), 0);
    REQUIRE(p.n == 2);
    CHECK_EQ_STR(p.pairs[0], "flag=");
    CHECK_EQ_STR(p.pairs[1], "x=1");
    CHECK_EQ_INT(each("", &p), 0);
    CHECK_EQ_INT(p.n, 0);
    CHECK_EQ_INT(each("&&&", &p), 0);
    CHECK_EQ_INT(p.n, 0);

    /* Empty key, empty value, '=' inside the value. */
    CHECK_EQ_INT(each("=v&k=&e=a=b", &p), 0);
    REQUIRE(p.n == 3);
    CHECK_EQ_STR(p.pairs[0], "=v");
    CHECK_EQ_STR(p.pairs[1], "k=");
    CHECK_EQ_STR(p.pairs[2], "e=a=b");

    /* Both halves are decoded, '+' as a space. */
    CHECK_EQ_INT(each("na%6De=a+b%21&x%3Dy=1", &p), 0);
    REQUIRE(p.n == 2);
    CHECK_EQ_STR(p.pairs[0], "name=a b!");
    CHECK_EQ_STR(p.pairs[1], "x=y=1");
    CHECK(p.len_ok);
}

static void test_each_query_errors(void) {
    pairs_t p;
    CHECK_EQ_INT(each("a=%zz", &p), -1);
    CHECK_EQ_INT(each("%zz=1", &p), -1);
    CHECK_EQ_INT(each("a=1&b=%", &p), -1);
    /* Earlier pairs may have been reported; nothing after the bad one. */
    CHECK(p.n <= 1);
    CHECK_EQ_INT(each("a=%00", &p), -1);
    CHECK_EQ_INT(each("a=1&b=%2&c=3", &p), -1);
    CHECK(p.n <= 1);
}

#define ESCAPES(lit) fr_url_path_escapes((lit), sizeof(lit) - 1)

static void test_path_escapes(void) {
    CHECK_EQ_INT(ESCAPES("/.."), 1);
    CHECK_EQ_INT(ESCAPES("/../etc/passwd"), 1);
    CHECK_EQ_INT(ESCAPES("/a/../b"), 1);
    CHECK_EQ_INT(ESCAPES("a/../b"), 1);
    CHECK_EQ_INT(ESCAPES("/a/.."), 1);
    CHECK_EQ_INT(ESCAPES(".."), 1);
    CHECK_EQ_INT(ESCAPES("/%2e%2e/x"), 1);
    CHECK_EQ_INT(ESCAPES("/%2E%2e/x"), 1);
    CHECK_EQ_INT(ESCAPES("/.%2e/x"), 1);
    CHECK_EQ_INT(ESCAPES("/."), 1);
    CHECK_EQ_INT(ESCAPES("/a/./b"), 1);
    CHECK_EQ_INT(ESCAPES("/%2e"), 1);
    CHECK_EQ_INT(ESCAPES("/a%2fb"), 1);
    CHECK_EQ_INT(ESCAPES("/a%2F..%2Fb"), 1);
    CHECK_EQ_INT(ESCAPES("/a\\b"), 1);
    CHECK_EQ_INT(ESCAPES("/..%5c..%5cwin.ini"), 1);
    /* Undecodable segments cannot be judged safe. */
    CHECK_EQ_INT(ESCAPES("/a%zz"), 1);
    CHECK_EQ_INT(ESCAPES("/a%00"), 1);
}

static void test_path_normal(void) {
    CHECK_EQ_INT(ESCAPES("/"), 0);
    CHECK_EQ_INT(ESCAPES(""), 0);
    CHECK_EQ_INT(ESCAPES("/index.html"), 0);
    CHECK_EQ_INT(ESCAPES("/static/js/app.min.js"), 0);
    CHECK_EQ_INT(ESCAPES("/..."), 0);
    CHECK_EQ_INT(ESCAPES("/..a/b"), 0);
    CHECK_EQ_INT(ESCAPES("/a../b"), 0);
    CHECK_EQ_INT(ESCAPES("/.hidden"), 0);
    CHECK_EQ_INT(ESCAPES("/a%20b.txt"), 0);
    CHECK_EQ_INT(ESCAPES("/dir/"), 0);
    CHECK_EQ_INT(ESCAPES("/caf%C3%A9"), 0);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_decode_plain_and_escapes);
    FR_RUN(test_decode_plus);
    FR_RUN(test_decode_errors);
    FR_RUN(test_split);
    FR_RUN(test_each_query);
    FR_RUN(test_each_query_errors);
    FR_RUN(test_path_escapes);
    FR_RUN(test_path_normal);
    return FR_TEST_END();
}
