/* The JSON string escaper: escapes, every control character, ill-formed UTF-8 replaced by
 * U+FFFD byte by byte, and the bounded variant's cuts, which fall only between characters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "base/json.h"
#include "base/utf8.h"

/* Escapes s[0..n) into a fresh buffer and compares with the expected literal. */
static void check_put(const char *s, size_t n, const char *expect, const char *file, int line) {
    fr_buf_t b = {0};
    fr_json_put_string(&b, s, n);
    fr_t_mem(b.p, b.len, expect, strlen(expect), "fr_json_put_string", expect, file, line);
    fr_buf_free(&b);
}
#define PUT(lit, expect) check_put((lit), sizeof(lit) - 1, (expect), __FILE__, __LINE__)

/* ---- a checker and a decoder for what the escaper writes ---------------------------------- */

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes a JSON string literal (RFC 8259 grammar) into out; returns -1 when j[0..n) is not
 * exactly one valid literal in UTF-8. \uXXXX escapes below U+0080 and U+FFFD are all the
 * escaper writes, so those are all this decoder needs to turn back into bytes. */
static int json_decode(const char *j, size_t n, fr_buf_t *out) {
    if (n < 2 || j[0] != '"' || j[n - 1] != '"' || !fr_utf8_valid(j, n))
        return -1;
    for (size_t i = 1; i < n - 1;) {
        unsigned char c = (unsigned char)j[i];
        if (c < 0x20 || c == '"')
            return -1;
        if (c != '\\') {
            fr_buf_putc(out, (char)c);
            i++;
            continue;
        }
        if (i + 1 >= n - 1)
            return -1;
        char e = j[i + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            fr_buf_putc(out, to[simple - "\"\\/bfnrt"]);
            i += 2;
            continue;
        }
        if (e != 'u' || i + 6 > n - 1)
            return -1;
        int v = 0;
        for (int k = 0; k < 4; k++) {
            int h = hexval(j[i + 2 + k]);
            if (h < 0)
                return -1;
            v = v * 16 + h;
        }
        if (v < 0x80)
            fr_buf_putc(out, (char)v);
        else if (v == 0xFFFD)
            fr_buf_puts(out, "\xef\xbf\xbd");
        else
            return -1;
        i += 6;
    }
    return 0;
}

/* What the input should read as: each ill-formed byte replaced by U+FFFD. */
static void replaced(const char *s, size_t n, fr_buf_t *out) {
    for (size_t i = 0; i < n;) {
        size_t k = fr_utf8_next(s + i, n - i);
        if (k) {
            fr_buf_put(out, s + i, k);
            i += k;
        } else {
            fr_buf_puts(out, "\xef\xbf\xbd");
            i++;
        }
    }
}

/* Where the units of an escaped literal end (an escape, or a whole UTF-8 character): the only
 * places a cut may fall. marks[i] is 1 when one ends at offset i of j (the opening quote is
 * unit 0). */
static void unit_ends(const char *j, size_t n, char *marks) {
    memset(marks, 0, n + 1);
    marks[1] = 1;
    for (size_t i = 1; i < n - 1;) {
        size_t k = j[i] == '\\' ? (j[i + 1] == 'u' ? 6 : 2) : fr_utf8_next(j + i, n - 1 - i);
        if (k == 0)
            k = 1; /* cannot happen in valid output; json_decode reports it */
        i += k;
        marks[i] = 1;
    }
}

/* ---- fr_json_put_string ------------------------------------------------------------------- */

static void test_plain_and_quotes(void) {
    PUT("", "\"\"");
    PUT("hello, world", "\"hello, world\"");
    PUT("say \"hi\"", "\"say \\\"hi\\\"\"");
    PUT("back\\slash", "\"back\\\\slash\"");
    PUT("/ and ~ and \x7f", "\"/ and ~ and \x7f\""); /* DEL needs no escape */
}

static void test_every_control_character(void) {
    for (int c = 0; c < 0x20; c++) {
        char in[3] = {'a', (char)c, 'b'};
        char want[16];
        if (c == '\n')
            snprintf(want, sizeof want, "\"a\\nb\"");
        else if (c == '\r')
            snprintf(want, sizeof want, "\"a\\rb\"");
        else if (c == '\t')
            snprintf(want, sizeof want, "\"a\\tb\"");
        else
            snprintf(want, sizeof want, "\"a\\u%04xb\"", c);
        check_put(in, 3, want, __FILE__, __LINE__);
    }
    PUT("\x00\x1f", "\"\\u0000\\u001f\""); /* NUL bytes are data */
}

static void test_well_formed_utf8_is_copied(void) {
    PUT("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    PUT("\xe2\x82\xac 5", "\"\xe2\x82\xac 5\"");
    PUT("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
    PUT("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf",
        "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
}

#define FFFD "\\ufffd"

static void test_ill_formed_utf8_becomes_fffd(void) {
    PUT("\xff", "\"" FFFD "\"");
    PUT("a\xfe" "b", "\"a" FFFD "b\"");
    PUT("\x80", "\"" FFFD "\"");                                     /* stray continuation */
    PUT("\xc3\xa9\xa9", "\"\xc3\xa9" FFFD "\"");                     /* one too many */
    PUT("\xc0\x80", "\"" FFFD FFFD "\"");                            /* overlong NUL */
    PUT("\xc1\xbf", "\"" FFFD FFFD "\"");                            /* overlong U+007F */
    PUT("\xe0\x80\xaf", "\"" FFFD FFFD FFFD "\"");                   /* overlong '/' */
    PUT("\xf0\x8f\xbf\xbf", "\"" FFFD FFFD FFFD FFFD "\"");          /* overlong U+FFFF */
    PUT("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"");                   /* U+D800 */
    PUT("\xed\xbf\xbf", "\"" FFFD FFFD FFFD "\"");                   /* U+DFFF */
    PUT("\xed\xa0\xbd\xed\xb8\x80", "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\""); /* a CESU pair */
    PUT("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");          /* U+110000 */
    PUT("\xf7\xbf\xbf\xbf", "\"" FFFD FFFD FFFD FFFD "\"");          /* U+1FFFFF */
    PUT("\xf8\x88\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD FFFD "\""); /* the old 5-byte form */
}

static void test_truncated_sequences(void) {
    PUT("\xc3", "\"" FFFD "\"");
    PUT("\xe2\x82", "\"" FFFD FFFD "\"");
    PUT("\xf0\x9f\x98", "\"" FFFD FFFD FFFD "\"");
    PUT("ok\xe2", "\"ok" FFFD "\"");
    /* Cut short by a byte that does not continue it: that byte is read on its own. */
    PUT("\xe2\x82z", "\"" FFFD FFFD "z\"");
    PUT("\xe2\x82\"", "\"" FFFD FFFD "\\\"\"");
    PUT("\xc3\xc3\xa9", "\"" FFFD "\xc3\xa9\"");
    PUT("\xf0\x9f\x98\xf0\x9f\x98\x80", "\"" FFFD FFFD FFFD "\xf0\x9f\x98\x80\"");
    /* The length ends the input, not a NUL: a sequence cut by n is truncated. */
    check_put("\xc3\xa9", 1, "\"" FFFD "\"", __FILE__, __LINE__);
}

static void test_appends_to_what_is_there(void) {
    fr_buf_t b = {0};
    fr_buf_puts(&b, "{\"k\":");
    fr_json_put_string(&b, "v\n", 2);
    fr_buf_putc(&b, '}');
    CHECK_EQ_STR(b.p, "{\"k\":\"v\\n\"}");
    fr_buf_free(&b);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random bytes, biased towards the interesting ones. */
static size_t random_input(char *s, size_t cap) {
    static const unsigned char pick[] = {'a', '"', '\\', '\n', 0x00, 0x1f, 0x7f, 0x80, 0xbf,
                                         0xc2, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0,
                                         0x9f, 0x98, 0xf4, 0x90, 0xff};
    size_t n = (size_t)(rng() % cap);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(rng() % 2 ? pick[rng() % sizeof pick] : rng() % 256);
    return n;
}

/* Whatever the bytes, the output is one valid JSON string that reads as the input with each
 * ill-formed byte replaced. */
static void test_any_bytes_give_valid_json(void) {
    size_t bad = 0;
    for (int round = 0; round < 20000; round++) {
        char in[64];
        size_t n = random_input(in, sizeof in);
        fr_buf_t out = {0}, dec = {0}, want = {0};
        fr_json_put_string(&out, in, n);
        replaced(in, n, &want);
        if (json_decode(out.p, out.len, &dec) < 0 || dec.len != want.len ||
            (dec.len && memcmp(dec.p, want.p, dec.len) != 0)) {
            if (bad++ == 0)
                fr_t_print_bytes("first bad input", in, n);
        }
        fr_buf_free(&out);
        fr_buf_free(&dec);
        fr_buf_free(&want);
    }
    CHECK_EQ_UINT(bad, 0);
}

/* ---- fr_json_write_string ----------------------------------------------------------------- */

/* Writes s with every capacity from 0 to past the whole and checks each result: NUL-ended at
 * the returned length, a valid JSON string, equal to the whole output up to a unit boundary,
 * and as long as the room allows (the last unit that fits is in). */
static void check_bounded(const char *s, size_t n, const char *file, int line) {
    fr_buf_t full = {0};
    fr_json_put_string(&full, s, n);
    char *marks = malloc(full.len + 1);
    unit_ends(full.p, full.len, marks);
    size_t bad = 0;
    for (size_t cap = 0; cap <= full.len + 4; cap++) {
        char *out = malloc(cap + 1);
        memset(out, 'X', cap + 1);
        size_t len = fr_json_write_string(out, cap, s, n);
        int ok = out[cap] == 'X'; /* nothing past cap */
        if (cap < 3) {
            ok = ok && len == 0 && (cap == 0 || out[0] == '\0');
        } else {
            fr_buf_t dec = {0};
            size_t body = len - 1; /* up to the closing quote */
            /* The longest prefix that fits: quotes and NUL take 3 bytes. */
            size_t best = 0;
            for (size_t k = 1; k < full.len && k - 1 <= cap - 3; k++)
                best = marks[k] ? k : best;
            ok = ok && len < cap && out[len] == '\0' && json_decode(out, len, &dec) == 0 &&
                 memcmp(out, full.p, body) == 0 && marks[body] && body == best;
            if (cap >= full.len + 1)
                ok = ok && len == full.len && memcmp(out, full.p, len) == 0;
            fr_buf_free(&dec);
        }
        if (!ok && bad++ == 0) {
            printf("    cap %zu gave %zu bytes\n", cap, len);
            fr_t_print_bytes("output", out, cap ? len : 0);
            fr_t_print_bytes("whole ", full.p, full.len);
        }
        free(out);
    }
    fr_t_eq_uint(bad, 0, "bad capacities", "0", file, line);
    free(marks);
    fr_buf_free(&full);
}
#define BOUNDED(lit) check_bounded((lit), sizeof(lit) - 1, __FILE__, __LINE__)

static void test_bounded_never_splits(void) {
    BOUNDED("");
    BOUNDED("plain ascii text");
    BOUNDED("caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80 and \xf4\x8f\xbf\xbf");
    BOUNDED("q\"b\\n\nr\rt\tc\x01\x1f");
    BOUNDED("\xff\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82");
    BOUNDED("\xf0\x9f\x98\x80\"\xf0\x9f\x98\x80\x01\xf0\x9f\x98\x80\xff\xf0\x9f\x98\x80");
}

static void test_bounded_random(void) {
    for (int round = 0; round < 300; round++) {
        char in[48];
        size_t n = random_input(in, sizeof in);
        check_bounded(in, n, __FILE__, __LINE__);
    }
}

/* The use it is shaped for: a NUL-terminated string into a fixed buffer. */
static void test_bounded_c_string_into_fixed_buffer(void) {
    const char *route = "/rooms/:id/\"quoted\"";
    char buf[200];
    size_t n = fr_json_write_string(buf, sizeof buf, route, strlen(route));
    CHECK_EQ_STR(buf, "\"/rooms/:id/\\\"quoted\\\"\"");
    CHECK_EQ_UINT(n, strlen(buf));
    char small[8];
    n = fr_json_write_string(small, sizeof small, "ab\"cdef", 7);
    CHECK_EQ_STR(small, "\"ab\\\"c\""); /* 7 bytes and the NUL */
    n = fr_json_write_string(small, sizeof small, "abcd\xe2\x82\xac", 7);
    CHECK_EQ_STR(small, "\"abcd\"");    /* the euro sign would need 3 bytes; 1 is left */
    n = fr_json_write_string(small, sizeof small, "abc\x01", 4);
    CHECK_EQ_STR(small, "\"abc\"");     /* \u0001 would need 6 */
    CHECK_EQ_UINT(n, 5);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_plain_and_quotes);
    FR_RUN(test_every_control_character);
    FR_RUN(test_well_formed_utf8_is_copied);
    FR_RUN(test_ill_formed_utf8_becomes_fffd);
    FR_RUN(test_truncated_sequences);
    FR_RUN(test_appends_to_what_is_there);
    FR_RUN(test_any_bytes_give_valid_json);
    FR_RUN(test_bounded_never_splits);
    FR_RUN(test_bounded_random);
    FR_RUN(test_bounded_c_string_into_fixed_buffer);
    return FR_TEST_END();
}
