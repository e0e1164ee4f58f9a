/* HTTP-dates and entity tags for conditional requests (codec/http_date.c). */
#include <string.h>
#include <time.h>

#include "fr_test.h"
#include "codec/http_date.h"

static void test_parse_known_dates(void) {
    int64_t t = -1;
    CHECK_EQ_INT(fr_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    CHECK_EQ_INT(t, 784111777);
    CHECK_EQ_INT(fr_http_date_parse("Thu, 01 Jan 1970 00:00:00 GMT", &t), 0);
    CHECK_EQ_INT(t, 0);
    CHECK_EQ_INT(fr_http_date_parse("Tue, 29 Feb 2028 23:59:59 GMT", &t), 0);
    CHECK_EQ_INT(t, 1835481599);
}

static void test_parse_refuses(void) {
    static const char *const bad[] = {
        "",
        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850: obsolete */
        "Sun Nov  6 08:49:37 1994",       /* asctime: obsolete */
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nvv 1994 08:49:37 GMT",
        "Sun, 31 Apr 1994 08:49:37 GMT",
        "Sun, 29 Feb 2100 08:49:37 GMT", /* not a leap year */
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1969 08:49:37 GMT",
        "Sun, 06 Nov 19x4 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t t = 42;
        CHECK_EQ_INT(fr_http_date_parse(bad[i], &t), -1);
        CHECK_EQ_INT(t, 42);
    }
}

static void test_format_round_trips(void) {
    char out[FR_HTTP_DATE_LEN + 1];
    fr_http_date_format(784111777, out);
    CHECK_EQ_STR(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    fr_http_date_format(0, out);
    CHECK_EQ_STR(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    /* Against the C library's own calendar, over a spread of instants. */
    for (int64_t t = 0; t < 4102444800; t += 86400 * 37 + 3671) {
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        char want[64];
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        fr_http_date_format(t, out);
        CHECK_EQ_STR(out, want);
        int64_t back = -1;
        CHECK_EQ_INT(fr_http_date_parse(out, &back), 0);
        CHECK_EQ_INT(back, t);
    }
}

static void test_etag_match(void) {
    const char *tag = "\"1a-2b-3c\"";
    CHECK_EQ_INT(fr_http_etag_match("\"1a-2b-3c\"", tag), 1);
    CHECK_EQ_INT(fr_http_etag_match("W/\"1a-2b-3c\"", tag), 1); /* weak comparison */
    CHECK_EQ_INT(fr_http_etag_match("\"x\", \"1a-2b-3c\"", tag), 1);
    CHECK_EQ_INT(fr_http_etag_match("\"x\",W/\"y\" ,\t\"1a-2b-3c\"", tag), 1);
    CHECK_EQ_INT(fr_http_etag_match("*", tag), 1);
    CHECK_EQ_INT(fr_http_etag_match("", tag), 0);
    CHECK_EQ_INT(fr_http_etag_match("\"1a-2b-3\"", tag), 0);
    CHECK_EQ_INT(fr_http_etag_match("1a-2b-3c", tag), 0);  /* unquoted */
    CHECK_EQ_INT(fr_http_etag_match("\"1a-2b-3c", tag), 0); /* unterminated */
    CHECK_EQ_INT(fr_http_etag_match("\"x\", junk, \"1a-2b-3c\"", tag), 0);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_parse_known_dates);
    FR_RUN(test_parse_refuses);
    FR_RUN(test_format_round_trips);
    FR_RUN(test_etag_match);
    return FR_TEST_END();
}
