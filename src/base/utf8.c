#include "base/utf8.h"

#include <stdint.h>
#include <string.h>

/* Table 3-7 of the Unicode Standard: the lead byte fixes the length and the range the second
 * byte must fall in (which is what excludes overlongs, surrogates and code points past
 * U+10FFFF); every later byte is 80..BF. */
static inline size_t seq_len(const unsigned char *s, size_t len) {
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* below: an overlong form of U+0000..U+07FF */
        else if (c == 0xED)
            hi = 0x9F; /* above: a surrogate */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* below: an overlong form of U+0000..U+FFFF */
        else if (c == 0xF4)
            hi = 0x8F; /* above: past U+10FFFF */
    } else {
        return 0; /* 80..C1 (a continuation or an overlong lead) or F5..FF */
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    }
    return n;
}

size_t fr_utf8_next(const char *s, size_t len) {
    return len ? seq_len((const unsigned char *)s, len) : 0;
}

int fr_utf8_valid(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        /* Payloads are mostly ASCII: eight bytes at a time while no high bit is set. */
        while (i + 8 <= len) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            if (v & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        size_t n = seq_len(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}
