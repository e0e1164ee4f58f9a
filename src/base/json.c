#include "base/json.h"

#include <string.h>

#include "base/utf8.h"

/* The escape of one byte that cannot go out as it is (6 bytes at most). */
#define ESCAPE_MAX 6

/* Length of the run at the start of s[0..n) that goes out unchanged: printable ASCII other
 * than '"' and '\', and whole well-formed multi-byte sequences. */
static size_t plain_run(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == '"' || c == '\\')
                break;
            i++;
        } else {
            size_t k = fr_utf8_next((const char *)s + i, n - i);
            if (k == 0)
                break;
            i += k;
        }
    }
    return i;
}

/* Writes the escape of a byte plain_run stopped at; returns its length. A byte of 0x80 or
 * more stops a run only when no well-formed sequence starts there. */
static size_t escape_byte(unsigned char c, char out[ESCAPE_MAX]) {
    static const char hex[] = "0123456789abcdef";
    if (c >= 0x80) {
        memcpy(out, "\\ufffd", 6);
        return 6;
    }
    out[0] = '\\';
    switch (c) {
    case '"':
        out[1] = '"';
        return 2;
    case '\\':
        out[1] = '\\';
        return 2;
    case '\n':
        out[1] = 'n';
        return 2;
    case '\r':
        out[1] = 'r';
        return 2;
    case '\t':
        out[1] = 't';
        return 2;
    default:
        memcpy(out + 1, "u00", 3);
        out[4] = hex[c >> 4];
        out[5] = hex[c & 0xF];
        return 6;
    }
}

void fr_json_put_string(fr_buf_t *b, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    fr_buf_reserve(b, n + 2); /* enough unless something needs escaping */
    fr_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t run = plain_run(s + i, n - i);
        fr_buf_put(b, s + i, run);
        i += run;
        if (i < n) {
            char esc[ESCAPE_MAX];
            fr_buf_put(b, esc, escape_byte(s[i], esc));
            i++;
        }
    }
    fr_buf_putc(b, '"');
}

size_t fr_json_write_string(char *out, size_t cap, const char *str, size_t n) {
    if (cap < 3) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0, end = cap - 2; /* out[end] is kept for the closing quote, out[end + 1] the NUL */
    out[o++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = plain_run(s + i, n - i);
        if (run > end - o) {
            /* Cut at a character boundary: the run holds whole sequences, so stepping back
             * over continuation bytes finds the start of the one the room would split. */
            run = end - o;
            while (run > 0 && (s[i + run] & 0xC0) == 0x80)
                run--;
            memcpy(out + o, s + i, run);
            o += run;
            break;
        }
        memcpy(out + o, s + i, run);
        o += run;
        i += run;
        if (i < n) {
            char esc[ESCAPE_MAX];
            size_t el = escape_byte(s[i], esc);
            if (el > end - o)
                break;
            memcpy(out + o, esc, el);
            o += el;
            i++;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}
