/* Requests as parsed: the Host rules of RFC 9112 §3.2 and absolute-form targets (§3.2.2). */
#include <string.h>

#include "fr_test.h"
#include "codec/http.h"

#define VALID(s) fr_http_host_valid((s), strlen(s))

static void test_host_values(void) {
    CHECK(VALID(""));
    CHECK(VALID("example.com"));
    CHECK(VALID("example.com:8080"));
    CHECK(VALID("example.com:"));
    CHECK(VALID("127.0.0.1:3000"));
    CHECK(VALID("[::1]"));
    CHECK(VALID("[::1]:443"));
    CHECK(VALID("a%20b"));
    CHECK(!VALID("a b"));
    CHECK(!VALID("a/b"));
    CHECK(!VALID("u@h"));
    CHECK(!VALID("a:port"));
    CHECK(!VALID("a:123456"));
    CHECK(!VALID("[::1"));
    CHECK(!VALID("[]"));
    CHECK(!VALID("[::1]x"));
    CHECK(!VALID("a%2"));
    CHECK(!VALID("a%zz"));
    CHECK(!VALID("a\x80"));
}

/* A request of the given target and Host lines (NULL-terminated). */
static void make(fr_request_t *req, const char *url, int minor, const char *const *hosts) {
    memset(req, 0, sizeof *req);
    fr_request_append_url(req, url, strlen(url));
    for (; *hosts; hosts++) {
        fr_request_append_field(req, "Host", 4);
        fr_request_append_value(req, *hosts, strlen(*hosts));
    }
    req->http_major = 1;
    req->http_minor = (uint8_t)minor;
}

static void test_check_host(void) {
    fr_request_t req;
    const char *msg = NULL;
    static const char *const none[] = {NULL}, *const one[] = {"a", NULL},
                             *const two[] = {"a", "evil", NULL}, *const bad[] = {"a b", NULL};
    make(&req, "/x", 1, none);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), -1);
    CHECK(strstr(msg, "Host") != NULL);
    fr_request_reset(&req);
    make(&req, "/x", 0, none);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), 0);
    fr_request_reset(&req);
    make(&req, "/x", 1, one);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), 0);
    CHECK_EQ_STR(req.url, "/x");
    fr_request_reset(&req);
    make(&req, "/x", 0, two);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), -1);
    fr_request_reset(&req);
    make(&req, "/x", 1, bad);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), -1);
    fr_request_reset(&req);
}

static void test_absolute_form(void) {
    fr_request_t req;
    const char *msg = NULL;
    static const char *const one[] = {"other", NULL}, *const none[] = {NULL};
    make(&req, "http://app.example:81/a/b?q=1", 1, one);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), 0);
    CHECK_EQ_STR(req.url, "/a/b?q=1");
    CHECK_EQ_INT(req.url_len, 8);
    CHECK_EQ_STR(fr_request_header(&req, "host"), "app.example:81");
    fr_request_reset(&req);
    make(&req, "HTTPS://h?q", 1, one);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), 0);
    CHECK_EQ_STR(req.url, "/?q");
    fr_request_reset(&req);
    make(&req, "http://h", 0, none);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), 0);
    CHECK_EQ_STR(req.url, "/");
    fr_request_reset(&req);
    make(&req, "http:///x", 1, one);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), -1);
    fr_request_reset(&req);
    make(&req, "http://u@h/x", 1, one);
    CHECK_EQ_INT(fr_request_check_host(&req, &msg), -1);
    fr_request_reset(&req);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_host_values);
    FR_RUN(test_check_host);
    FR_RUN(test_absolute_form);
    return FR_TEST_END();
}
