/* RESP commands (see codec/resp.h). */
#include "codec/resp.h"

#include <string.h>

static size_t digits(size_t n) {
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

/* Writes "<c><n>\r\n" at out; returns the bytes written. */
static size_t header(char *out, char c, size_t n) {
    size_t d = digits(n);
    out[0] = c;
    for (size_t i = d; i > 0; i--) {
        out[i] = (char)('0' + n % 10);
        n /= 10;
    }
    out[d + 1] = '\r';
    out[d + 2] = '\n';
    return d + 3;
}

size_t fr_resp_prefix(char *out, char kind, size_t n) {
    return header(out, kind, n);
}

size_t fr_resp_bulk(char *out, const char *s, size_t len) {
    size_t at = header(out, '$', len);
    if (len)
        memcpy(out + at, s, len);
    at += len;
    out[at++] = '\r';
    out[at++] = '\n';
    return at;
}

size_t fr_resp_command_size(size_t argc, const char *const *argv, const size_t *lens) {
    (void)argv;
    size_t n = 3 + digits(argc);
    for (size_t i = 0; i < argc; i++)
        n += 3 + digits(lens[i]) + lens[i] + 2;
    return n;
}

size_t fr_resp_command_write(char *out, size_t argc, const char *const *argv, const size_t *lens) {
    size_t at = header(out, '*', argc);
    for (size_t i = 0; i < argc; i++)
        at += fr_resp_bulk(out + at, argv[i], lens[i]);
    return at;
}
