/* SSE framing, field checks and event construction (UTF-8 validation: test_utf8.c). */
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "fr_test.h"
#include "codec/sse.h"

/* Frames data (and an optional name) and compares with the expected body byte for byte. The
 * size function must agree with the writer exactly: the frame buffer is allocated from it. */
static void check_body(const char *name, const char *data, size_t data_len, const char *expect,
                       const char *file, int line) {
    size_t name_len = name ? strlen(name) : 0;
    size_t size = fr_sse_body_size(name, name_len, data, data_len);
    /* Guard bytes after the body catch a writer that goes past the size it reported. */
    char *buf = malloc(size + 16);
    memset(buf, '#', size + 16);
    size_t wrote = fr_sse_body_write(buf, name, name_len, data, data_len);
    if (!fr_t_eq_uint(size, wrote, "fr_sse_body_size", "fr_sse_body_write", file, line))
        printf("    data: %s\n", data);
    fr_t_mem(buf, wrote, expect, strlen(expect), "body", "expected", file, line);
    int intact = 1;
    for (size_t i = size; i < size + 16; i++)
        intact &= buf[i] == '#';
    fr_t_check(intact, "no byte written past fr_sse_body_size", file, line);
    free(buf);
}

#define BODY(name, lit, expect) check_body((name), (lit), sizeof(lit) - 1, (expect), __FILE__, __LINE__)

static void test_body_single_line(void) {
    BODY(NULL, "hello", "data: hello\n\n");
    BODY(NULL, "x", "data: x\n\n");
}

static void test_body_empty_data(void) {
    BODY(NULL, "", "data: \n\n");
    BODY("ping", "", "event: ping\ndata: \n\n");
}

static void test_body_multiline_lf(void) {
    BODY(NULL, "a\nb", "data: a\ndata: b\n\n");
    BODY(NULL, "one\ntwo\nthree", "data: one\ndata: two\ndata: three\n\n");
}

static void test_body_multiline_cr(void) {
    BODY(NULL, "a\rb", "data: a\ndata: b\n\n");
    BODY(NULL, "a\r\rb", "data: a\ndata: \ndata: b\n\n");
}

static void test_body_multiline_crlf(void) {
    BODY(NULL, "a\r\nb", "data: a\ndata: b\n\n");
    BODY(NULL, "a\r\n\r\nb", "data: a\ndata: \ndata: b\n\n");
}

static void test_body_mixed_line_ends(void) {
    /* LF CR: two line ends (an LF is never the first half of a pair). */
    BODY(NULL, "a\n\rb", "data: a\ndata: \ndata: b\n\n");
    BODY(NULL, "a\r\nb\nc\rd", "data: a\ndata: b\ndata: c\ndata: d\n\n");
    BODY(NULL, "\n", "data: \ndata: \n\n");
    BODY(NULL, "\r\n", "data: \ndata: \n\n");
}

static void test_body_trailing_newline(void) {
    BODY(NULL, "a\n", "data: a\ndata: \n\n");
    BODY(NULL, "a\r", "data: a\ndata: \n\n");
    BODY(NULL, "a\r\n", "data: a\ndata: \n\n");
}

static void test_body_leading_space_kept(void) {
    /* The client strips one space after "data:"; the prefix supplies it, so the data's own
     * leading space must survive. */
    BODY(NULL, " a", "data:  a\n\n");
    BODY(NULL, "  two\n three", "data:   two\ndata:  three\n\n");
}

static void test_body_event_name(void) {
    BODY("update", "x", "event: update\ndata: x\n\n");
    BODY("update", "a\nb", "event: update\ndata: a\ndata: b\n\n");
    /* An empty name is no name. */
    size_t sz = fr_sse_body_size("", 0, "x", 1);
    CHECK_EQ_UINT(sz, strlen("data: x\n\n"));
}

static void test_body_utf8_and_nul(void) {
    BODY(NULL, "h\xc3\xa9llo", "data: h\xc3\xa9llo\n\n");
    /* A NUL byte is data, not a line end. */
    char buf[32];
    size_t n = fr_sse_body_write(buf, NULL, 0, "a\0b", 3);
    CHECK_EQ_UINT(n, fr_sse_body_size(NULL, 0, "a\0b", 3));
    CHECK_MEM_LIT(buf, n, "data: a\0b\n\n");
}

static void test_field_ok(void) {
    CHECK_EQ_INT(fr_sse_field_ok("topic:1", 7), 1);
    CHECK_EQ_INT(fr_sse_field_ok("", 0), 1);
    CHECK_EQ_INT(fr_sse_field_ok("a\nb", 3), 0);
    CHECK_EQ_INT(fr_sse_field_ok("a\rb", 3), 0);
    CHECK_EQ_INT(fr_sse_field_ok("a\0b", 3), 0);
    CHECK_EQ_INT(fr_sse_field_ok("\n", 1), 0);
    CHECK_EQ_INT(fr_sse_field_ok("ab\r", 3), 0);
    /* Only the first len bytes count. */
    CHECK_EQ_INT(fr_sse_field_ok("ab\n", 2), 1);
}

static void test_event_frame(void) {
    const char *err = NULL;
    fr_id_t id = {5, 1};
    fr_event_t *ev = fr_event_new("room", id, "x", "y", 1, FR_PRIO_NORMAL, 0, 1234, &err);
    REQUIRE(ev != NULL);
    CHECK_MEM_LIT(ev->frame, ev->frame_len, "id: 5-1\nevent: x\ndata: y\n\n");
    CHECK_EQ_UINT(ev->body_off, strlen("id: 5-1\n"));
    CHECK_MEM_LIT(ev->frame + ev->body_off, ev->frame_len - ev->body_off, "event: x\ndata: y\n\n");
    CHECK_EQ_STR(ev->topic, "room");
    CHECK_EQ_STR(ev->name, "x");
    CHECK_MEM_LIT(ev->data, ev->data_len, "y");
    CHECK_EQ_INT(ev->data[ev->data_len], '\0');
    CHECK_EQ_UINT(ev->id.ms, 5);
    CHECK_EQ_UINT(ev->id.seq, 1);
    CHECK_EQ_UINT(ev->published_at, 1234);
    CHECK_EQ_INT(ev->priority, FR_PRIO_NORMAL);
    CHECK_EQ_INT(ev->refs, 1);
    fr_event_release(ev);
}

static void test_event_frame_no_name_multiline(void) {
    const char *err = NULL;
    fr_id_t id = {1700000000123ull, 42};
    fr_event_t *ev = fr_event_new("t", id, NULL, "a\r\nb", 4, FR_PRIO_CRITICAL, 1, 0, &err);
    REQUIRE(ev != NULL);
    CHECK_MEM_LIT(ev->frame, ev->frame_len, "id: 1700000000123-42\ndata: a\ndata: b\n\n");
    CHECK_EQ_UINT(ev->body_off, strlen("id: 1700000000123-42\n"));
    CHECK(ev->name == NULL);
    CHECK_EQ_INT(ev->json, 1);
    /* data keeps the original bytes; only the frame splits lines. */
    CHECK_MEM_LIT(ev->data, ev->data_len, "a\r\nb");
    fr_event_release(ev);

    /* An empty name is the same as no name. */
    ev = fr_event_new("t", (fr_id_t){1, 0}, "", "", 0, FR_PRIO_NORMAL, 0, 0, &err);
    REQUIRE(ev != NULL);
    CHECK(ev->name == NULL);
    CHECK_MEM_LIT(ev->frame, ev->frame_len, "id: 1-0\ndata: \n\n");
    fr_event_release(ev);
}

/* Expects fr_event_new to refuse and to say why. */
static void check_rejected(const char *topic, const char *name, const char *data, size_t len,
                           const char *file, int line) {
    const char *err = NULL;
    fr_event_t *ev = fr_event_new(topic, (fr_id_t){1, 0}, name, data, len, FR_PRIO_NORMAL, 0, 0,
                                  &err);
    fr_t_check(ev == NULL, "fr_event_new returns NULL", file, line);
    fr_t_check(err != NULL && *err != '\0', "fr_event_new sets a message", file, line);
    const char *verr = NULL;
    fr_t_check(fr_event_validate(topic, name, data, len, &verr) == -1,
               "fr_event_validate returns -1", file, line);
    fr_t_check(verr != NULL && *verr != '\0', "fr_event_validate sets a message", file, line);
    if (ev)
        fr_event_release(ev);
}

#define REJECTED(topic, name, lit) check_rejected((topic), (name), (lit), sizeof(lit) - 1, __FILE__, __LINE__)

static void test_event_rejects(void) {
    REJECTED("a\nb", NULL, "d");
    REJECTED("a\rb", NULL, "d");
    REJECTED("", NULL, "d");
    REJECTED(NULL, NULL, "d");
    REJECTED("t\xff", NULL, "d");
    REJECTED("t", "x\ny", "d");
    REJECTED("t", "x\ry", "d");
    REJECTED("t", "\xc0\x80", "d");
    REJECTED("t", NULL, "\xff");
    REJECTED("t", NULL, "ok\xed\xa0\x80");
    REJECTED("t", NULL, "\xe2\x82");
    /* A C string cannot hold NUL inside a topic or name; a NUL in data is UTF-8 and allowed. */
    const char *err = NULL;
    fr_event_t *ev = fr_event_new("t", (fr_id_t){1, 0}, NULL, "a\0b", 3, FR_PRIO_NORMAL, 0, 0,
                                  &err);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_MEM_LIT(ev->data, ev->data_len, "a\0b");
        fr_event_release(ev);
    }
}

static void test_event_messages(void) {
    const char *err = NULL;
    CHECK(fr_event_new("t", (fr_id_t){1, 0}, NULL, "\xff", 1, FR_PRIO_NORMAL, 0, 0, &err) == NULL);
    CHECK_CONTAINS(err, "UTF-8");
    err = NULL;
    CHECK(fr_event_new("a\nb", (fr_id_t){1, 0}, NULL, "", 0, FR_PRIO_NORMAL, 0, 0, &err) == NULL);
    CHECK_CONTAINS(err, "topic");
    err = NULL;
    CHECK(fr_event_new("t", (fr_id_t){1, 0}, "a\rb", "", 0, FR_PRIO_NORMAL, 0, 0, &err) == NULL);
    CHECK_CONTAINS(err, "name");
}

static void test_event_refcount(void) {
    const char *err = NULL;
    fr_event_t *ev = fr_event_new("t", (fr_id_t){9, 9}, "n", "payload", 7, FR_PRIO_TELEMETRY, 0,
                                  7, &err);
    REQUIRE(ev != NULL);
    fr_event_retain(ev);
    fr_event_retain(ev);
    CHECK_EQ_INT(ev->refs, 3);
    fr_event_release(ev);
    fr_event_release(ev);
    CHECK_EQ_INT(ev->refs, 1);
    /* Still usable while one reference remains. */
    CHECK_MEM_LIT(ev->data, ev->data_len, "payload");
    fr_event_release(ev); /* the last one frees it: LeakSanitizer would report otherwise */
    fr_event_release(NULL);
}

static void test_priority_names(void) {
    fr_priority_t p = FR_PRIO_NORMAL;
    CHECK_EQ_INT(fr_priority_parse("critical", &p), 0);
    CHECK_EQ_INT(p, FR_PRIO_CRITICAL);
    CHECK_EQ_INT(fr_priority_parse("telemetry", &p), 0);
    CHECK_EQ_INT(p, FR_PRIO_TELEMETRY);
    CHECK_EQ_INT(fr_priority_parse("normal", &p), 0);
    CHECK_EQ_INT(p, FR_PRIO_NORMAL);
    CHECK_EQ_INT(fr_priority_parse("urgent", &p), -1);
    CHECK_EQ_INT(fr_priority_parse("", &p), -1);
    CHECK_EQ_STR(fr_priority_name(FR_PRIO_CRITICAL), "critical");
    CHECK_EQ_STR(fr_priority_name(FR_PRIO_TELEMETRY), "telemetry");
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_body_single_line);
    FR_RUN(test_body_empty_data);
    FR_RUN(test_body_multiline_lf);
    FR_RUN(test_body_multiline_cr);
    FR_RUN(test_body_multiline_crlf);
    FR_RUN(test_body_mixed_line_ends);
    FR_RUN(test_body_trailing_newline);
    FR_RUN(test_body_leading_space_kept);
    FR_RUN(test_body_event_name);
    FR_RUN(test_body_utf8_and_nul);
    FR_RUN(test_field_ok);
    FR_RUN(test_event_frame);
    FR_RUN(test_event_frame_no_name_multiline);
    FR_RUN(test_event_rejects);
    FR_RUN(test_event_messages);
    FR_RUN(test_event_refcount);
    FR_RUN(test_priority_names);
    return FR_TEST_END();
}
