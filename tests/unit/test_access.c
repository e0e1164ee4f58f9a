/* Access-log lines: which query values are redacted, the text and JSON shapes, and that
 * hostile bytes in a target keep a text line one line and a JSON line valid. */
#include <string.h>

#include "fr_test.h"
#include "base/utf8.h"
#include "codec/access.h"

static void check_redact(const char *in, const char *expect, const char *file, int line) {
    fr_buf_t b = {0};
    fr_access_redact(in, strlen(in), &b);
    fr_t_mem(b.p, b.len, expect, strlen(expect), "fr_access_redact", in, file, line);
    fr_buf_free(&b);
}
#define REDACT(in, expect) check_redact((in), (expect), __FILE__, __LINE__)

static void test_redact(void) {
    REDACT("/a/b", "/a/b");
    REDACT("/a?x=1&y=2", "/a?x=1&y=2");
    REDACT("/a?token=abc", "/a?token=REDACTED");
    REDACT("/a?access_token=abc&x=1", "/a?access_token=REDACTED&x=1");
    REDACT("/a?API_KEY=k&Secret=s&password=p&Authorization=z&jwt=j&sig=q",
           "/a?API_KEY=REDACTED&Secret=REDACTED&password=REDACTED&Authorization=REDACTED"
           "&jwt=REDACTED&sig=REDACTED");
    REDACT("/a?api%5Fkey=k&%74oken=t", "/a?api%5Fkey=REDACTED&%74oken=REDACTED");
    REDACT("/a?session_id=1&credentials=2", "/a?session_id=REDACTED&credentials=REDACTED");
    REDACT("/a?token", "/a?token");               /* no value: nothing to hide */
    REDACT("/a?token=", "/a?token=REDACTED");
    REDACT("/a?&&token=x&", "/a?&&token=REDACTED&");
    REDACT("/a?", "/a?");
    REDACT("/a?%zz=1&key=%", "/a?%zz=1&key=REDACTED");
}

static void test_text_line(void) {
    fr_access_entry_t e = {.unix_ms = 1700000000123ull, .remote = "10.0.0.1", .method = "GET",
                           .target = "/x?token=t", .target_len = 10, .status = 200,
                           .bytes = 42, .duration_us = 1234567, .transport = "sse"};
    fr_buf_t b = {0};
    fr_access_format(&e, 0, &b);
    const char *want = "2023-11-14T22:13:20.123Z 10.0.0.1 \"GET /x?token=REDACTED\" 200 42 "
                       "1234.567 sse\n";
    CHECK_MEM(b.p, b.len, want, strlen(want));
    fr_buf_free(&b);
    /* Hostile bytes: still one line, no bare space, quote or backslash from the target. */
    static const char hostile[] = "/a b\"c\\d\n\r\x01\xff";
    e.target = hostile;
    e.target_len = sizeof hostile - 1;
    e.method = NULL;
    fr_access_format(&e, 0, &b);
    const char *want2 = "2023-11-14T22:13:20.123Z 10.0.0.1 \"- /a\\x20b\\x22c\\x5cd\\x0a\\x0d"
                        "\\x01\\xff\" 200 42 1234.567 sse\n";
    CHECK_MEM(b.p, b.len, want2, strlen(want2));
    fr_buf_free(&b);
}

static void test_json_line(void) {
    static const char bad[] = "/\xff\xc3?password=p\"";
    fr_access_entry_t e = {.unix_ms = 1700000000001ull, .remote = "::1", .method = "POST",
                           .target = bad, .target_len = sizeof bad - 1, .status = 201,
                           .bytes = 0, .duration_us = 5, .transport = "http"};
    fr_buf_t b = {0};
    fr_access_format(&e, 1, &b);
    const char *want = "{\"ts\":\"2023-11-14T22:13:20.001Z\",\"client\":\"::1\",\"method\":\"POST\","
                       "\"path\":\"/\\ufffd\\ufffd?password=REDACTED\",\"status\":201,"
                       "\"bytes\":0,\"duration_ms\":0.005,\"transport\":\"http\"}\n";
    CHECK_MEM(b.p, b.len, want, strlen(want));
    CHECK(fr_utf8_valid(b.p, b.len));
    fr_buf_free(&b);
    e.target = NULL;
    fr_access_format(&e, 1, &b);
    CHECK(strstr(b.p, "\"path\":\"-\"") != NULL);
    fr_buf_free(&b);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_redact);
    FR_RUN(test_text_line);
    FR_RUN(test_json_line);
    return FR_TEST_END();
}
