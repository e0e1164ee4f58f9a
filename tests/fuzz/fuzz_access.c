/* Fuzz target: access-log lines (src/codec/access.h).
 *
 * Input: a request target, any bytes. For each, checks the contract against references
 * written here:
 *   - the JSON line is one valid JSON text followed by '\n', and its "path" member, decoded,
 *     is valid UTF-8;
 *   - the text line holds exactly one '\n', at its end, no other byte below 0x20 or above
 *     0x7e, and exactly two '"' (around method and target);
 *   - redaction never lengthens a pair's key, and no value of a key named "token" survives:
 *     after redaction no "token=" is followed by anything but REDACTED, '&' or the end. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "codec/access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *target = (const char *)data;
    fr_access_entry_t e = {.unix_ms = 1700000000000ull, .remote = "127.0.0.1", .method = "GET",
                           .target = target, .target_len = size, .status = 200, .bytes = size,
                           .duration_us = size * 7, .transport = "http"};
    fr_buf_t json = {0}, text = {0}, red = {0};
    fr_access_format(&e, 1, &json);
    fz_expect(json.len > 0 && json.p[json.len - 1] == '\n', "a JSON line ends in a newline");
    fz_expect(fz_json_valid(json.p, json.len - 1), "the JSON line is not valid JSON");
    fz_buf_t path = {0};
    int set = 0, is_string = 0;
    size_t vs, ve;
    fz_expect(fz_json_member(json.p, json.len - 1, "path", &path, &set, &is_string, &vs, &ve),
              "JSON member");
    fz_expect(set && is_string && fz_utf8_ok(path.p, path.len), "path is a UTF-8 string");
    fz_buf_free(&path);

    fr_access_format(&e, 0, &text);
    size_t quotes = 0;
    for (size_t i = 0; i < text.len; i++) {
        unsigned char c = (unsigned char)text.p[i];
        if (i + 1 == text.len)
            fz_expect(c == '\n', "a text line ends in a newline");
        else
            fz_expect(c >= 0x20 && c <= 0x7e, "a raw control or non-ASCII byte in a text line");
        quotes += c == '"';
    }
    fz_expect(quotes == 2, "a text line has two quotes, around method and target");

    fr_access_redact(target, size, &red);
    const char *q = red.p ? memchr(red.p, '?', red.len) : NULL;
    for (const char *p = q; p && p < red.p + red.len;) {
        const char *t = memmem(p, (size_t)(red.p + red.len - p), "token=", 6);
        if (!t)
            break;
        const char *v = t + 6;
        size_t left = (size_t)(red.p + red.len - v);
        /* Inside a pair whose key merely ends in "token" (e.g. "xtoken=") the value is
         * redacted too; a "token=" inside a value is not a key. */
        const char *start = q + 1;
        for (const char *x = t; x > q + 1; x--) {
            if (x[-1] == '&') {
                start = x;
                break;
            }
        }
        int is_key = !memchr(start, '=', (size_t)(t - start));
        if (is_key)
            fz_expect(left == 0 || *v == '&' || (left >= 8 && memcmp(v, "REDACTED", 8) == 0),
                      "a token value survived redaction");
        p = v;
    }
    fr_buf_free(&json);
    fr_buf_free(&text);
    fr_buf_free(&red);
    return 0;
}
