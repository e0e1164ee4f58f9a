/* UTF-8: whole-string validation and the length of the sequence at a position. */
#include <stdint.h>
#include <string.h>

#include "fr_test.h"
#include "base/utf8.h"

#define VALID(lit) fr_utf8_valid((lit), sizeof(lit) - 1)

static void test_utf8_valid_forms(void) {
    CHECK_EQ_INT(VALID(""), 1);
    CHECK_EQ_INT(VALID("plain ascii ~\x7f"), 1);
    CHECK_EQ_INT(VALID("\x00"), 1);
    CHECK_EQ_INT(VALID("\xc2\x80"), 1);         /* U+0080, smallest 2-byte */
    CHECK_EQ_INT(VALID("\xc3\xa9"), 1);         /* é */
    CHECK_EQ_INT(VALID("\xdf\xbf"), 1);         /* U+07FF */
    CHECK_EQ_INT(VALID("\xe0\xa0\x80"), 1);     /* U+0800, smallest 3-byte */
    CHECK_EQ_INT(VALID("\xe2\x82\xac"), 1);     /* € */
    CHECK_EQ_INT(VALID("\xed\x9f\xbf"), 1);     /* U+D7FF, just below surrogates */
    CHECK_EQ_INT(VALID("\xee\x80\x80"), 1);     /* U+E000, just above surrogates */
    CHECK_EQ_INT(VALID("\xef\xbf\xbf"), 1);     /* U+FFFF */
    CHECK_EQ_INT(VALID("\xf0\x90\x80\x80"), 1); /* U+10000, smallest 4-byte */
    CHECK_EQ_INT(VALID("\xf0\x9f\x98\x80"), 1); /* 😀 */
    CHECK_EQ_INT(VALID("\xf4\x8f\xbf\xbf"), 1); /* U+10FFFF, the last code point */
    CHECK_EQ_INT(VALID("a\xc3\xa9z\xf0\x9f\x98\x80!"), 1);
}

static void test_utf8_invalid_forms(void) {
    CHECK_EQ_INT(VALID("\xc0\x80"), 0);         /* overlong NUL */
    CHECK_EQ_INT(VALID("\xc1\xbf"), 0);         /* overlong 2-byte */
    CHECK_EQ_INT(VALID("\xe0\x80\x80"), 0);     /* overlong 3-byte */
    CHECK_EQ_INT(VALID("\xe0\x9f\xbf"), 0);     /* overlong U+07FF */
    CHECK_EQ_INT(VALID("\xf0\x80\x80\x80"), 0); /* overlong 4-byte */
    CHECK_EQ_INT(VALID("\xf0\x8f\xbf\xbf"), 0); /* overlong U+FFFF */
    CHECK_EQ_INT(VALID("\xed\xa0\x80"), 0);     /* U+D800, a surrogate */
    CHECK_EQ_INT(VALID("\xed\xbf\xbf"), 0);     /* U+DFFF */
    CHECK_EQ_INT(VALID("\xf4\x90\x80\x80"), 0); /* U+110000 */
    CHECK_EQ_INT(VALID("\xf5\x80\x80\x80"), 0);
    CHECK_EQ_INT(VALID("\xff"), 0);
    CHECK_EQ_INT(VALID("\xfe"), 0);
    CHECK_EQ_INT(VALID("a\xff" "b"), 0);
}

static void test_utf8_truncated_and_stray(void) {
    CHECK_EQ_INT(VALID("\xc3"), 0);
    CHECK_EQ_INT(VALID("\xe2\x82"), 0);
    CHECK_EQ_INT(VALID("\xf0\x9f\x98"), 0);
    CHECK_EQ_INT(VALID("ok\xe2"), 0);
    /* Truncated then followed by ASCII: the continuation check must see the ASCII byte. */
    CHECK_EQ_INT(VALID("\xe2\x82z"), 0);
    CHECK_EQ_INT(VALID("\xc3z"), 0);
    /* Continuation bytes with no lead byte. */
    CHECK_EQ_INT(VALID("\x80"), 0);
    CHECK_EQ_INT(VALID("\xbf"), 0);
    CHECK_EQ_INT(VALID("a\x80z"), 0);
    CHECK_EQ_INT(VALID("\xc3\xa9\xa9"), 0);
    /* The length bounds the check: a valid sequence cut by len is truncated. */
    CHECK_EQ_INT(fr_utf8_valid("\xc3\xa9", 1), 0);
    CHECK_EQ_INT(fr_utf8_valid("\xc3\xa9", 2), 1);
}

/* A second decoder, written the other way round from the one under test: it reads the length
 * from the lead byte's high bits, decodes the code point, and rejects what decodes to an
 * overlong form, a surrogate or a value past U+10FFFF. */
static size_t ref_next(const unsigned char *s, size_t len) {
    if (len == 0)
        return 0;
    size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || len < n)
        return 0;
    uint32_t cp = n == 1 ? s[0] : (uint32_t)(s[0] & (0x7F >> n));
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return n;
}

static size_t encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

#define NEXT(lit) fr_utf8_next((lit), sizeof(lit) - 1)

static void test_next_lengths(void) {
    CHECK_EQ_UINT(fr_utf8_next("", 0), 0);
    CHECK_EQ_UINT(fr_utf8_next("abc", 0), 0); /* len, not the NUL, ends the input */
    CHECK_EQ_UINT(NEXT("\x00"), 1);
    CHECK_EQ_UINT(NEXT("a"), 1);
    CHECK_EQ_UINT(NEXT("\x7f"), 1);
    CHECK_EQ_UINT(NEXT("\xc3\xa9tail"), 2);
    CHECK_EQ_UINT(NEXT("\xe2\x82\xac tail"), 3);
    CHECK_EQ_UINT(NEXT("\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 4);
    CHECK_EQ_UINT(NEXT("\xf4\x8f\xbf\xbf"), 4);
}

static void test_next_ill_formed(void) {
    CHECK_EQ_UINT(NEXT("\x80"), 0);             /* a continuation byte with no lead */
    CHECK_EQ_UINT(NEXT("\xbf" "a"), 0);
    CHECK_EQ_UINT(NEXT("\xc0\x80"), 0);         /* overlong NUL */
    CHECK_EQ_UINT(NEXT("\xc1\xbf"), 0);
    CHECK_EQ_UINT(NEXT("\xe0\x9f\xbf"), 0);     /* overlong U+07FF */
    CHECK_EQ_UINT(NEXT("\xf0\x8f\xbf\xbf"), 0); /* overlong U+FFFF */
    CHECK_EQ_UINT(NEXT("\xed\xa0\x80"), 0);     /* U+D800 */
    CHECK_EQ_UINT(NEXT("\xed\xbf\xbf"), 0);     /* U+DFFF */
    CHECK_EQ_UINT(NEXT("\xf4\x90\x80\x80"), 0); /* U+110000 */
    CHECK_EQ_UINT(NEXT("\xf5\x80\x80\x80"), 0);
    CHECK_EQ_UINT(NEXT("\xf8\x88\x80\x80\x80"), 0); /* the old 5-byte form */
    CHECK_EQ_UINT(NEXT("\xfe"), 0);
    CHECK_EQ_UINT(NEXT("\xff"), 0);
    /* Cut short by the end, or by a byte that does not continue the sequence. */
    CHECK_EQ_UINT(NEXT("\xc3"), 0);
    CHECK_EQ_UINT(NEXT("\xe2\x82"), 0);
    CHECK_EQ_UINT(NEXT("\xf0\x9f\x98"), 0);
    CHECK_EQ_UINT(NEXT("\xe2\x82z"), 0);
    CHECK_EQ_UINT(NEXT("\xf0\x9f\x98\xc3\xa9"), 0);
    CHECK_EQ_UINT(fr_utf8_next("\xe2\x82\xac", 2), 0);
}

/* Every scalar value encodes to a sequence of its length; every surrogate, encoded the same
 * way, is refused. */
static void test_next_every_code_point(void) {
    unsigned char b[4];
    size_t wrong = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode(cp, b);
        size_t want = cp >= 0xD800 && cp <= 0xDFFF ? 0 : n;
        if (fr_utf8_next((const char *)b, n) != want ||
            fr_utf8_valid((const char *)b, n) != (want != 0))
            wrong++;
    }
    CHECK_EQ_UINT(wrong, 0);
}

/* Every string of two and three bytes, and every four-byte string whose lead can start a
 * four-byte sequence (with its last two bytes at the edges of the continuation range), agree
 * with the second decoder. */
static void test_next_agrees_with_reference(void) {
    unsigned char b[4];
    size_t wrong = 0, tried = 0;
    for (unsigned x = 0; x < 0x10000; x++) {
        b[0] = (unsigned char)(x >> 8);
        b[1] = (unsigned char)x;
        wrong += fr_utf8_next((const char *)b, 2) != ref_next(b, 2);
        wrong += fr_utf8_next((const char *)b, 1) != ref_next(b, 1);
        tried += 2;
    }
    for (unsigned x = 0; x < 0x1000000; x++) {
        b[0] = (unsigned char)(x >> 16);
        b[1] = (unsigned char)(x >> 8);
        b[2] = (unsigned char)x;
        wrong += fr_utf8_next((const char *)b, 3) != ref_next(b, 3);
        tried++;
    }
    static const unsigned char edge[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0};
    for (unsigned lead = 0xF0; lead <= 0xFF; lead++) {
        for (unsigned second = 0; second < 0x100; second++) {
            for (size_t i = 0; i < sizeof edge; i++) {
                for (size_t j = 0; j < sizeof edge; j++) {
                    unsigned char s[4] = {(unsigned char)lead, (unsigned char)second, edge[i],
                                          edge[j]};
                    wrong += fr_utf8_next((const char *)s, 4) != ref_next(s, 4);
                    wrong += fr_utf8_valid((const char *)s, 4) != (ref_next(s, 4) == 4);
                    tried++;
                }
            }
        }
    }
    CHECK(tried > 0x1000000);
    CHECK_EQ_UINT(wrong, 0);
}

/* The eight-bytes-at-a-time ASCII scan hands over to the sequence check at any offset. */
static void test_valid_at_every_offset(void) {
    char s[40];
    for (size_t at = 0; at + 4 <= sizeof s; at++) {
        memset(s, 'a', sizeof s);
        memcpy(s + at, "\xf0\x9f\x98\x80", 4);
        CHECK_EQ_INT(fr_utf8_valid(s, sizeof s), 1);
        s[at + 3] = 'x';
        CHECK_EQ_INT(fr_utf8_valid(s, sizeof s), 0);
        s[at + 3] = '\x80';
        CHECK_EQ_INT(fr_utf8_valid(s, at + 3), 0); /* cut by len */
    }
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_utf8_valid_forms);
    FR_RUN(test_utf8_invalid_forms);
    FR_RUN(test_utf8_truncated_and_stray);
    FR_RUN(test_next_lengths);
    FR_RUN(test_next_ill_formed);
    FR_RUN(test_next_every_code_point);
    FR_RUN(test_next_agrees_with_reference);
    FR_RUN(test_valid_at_every_offset);
    return FR_TEST_END();
}
