#include "codec/sse.h"

#include <string.h>

int fr_sse_field_ok(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '\0')
            return 0;
    }
    return 1;
}

#define DATA_PREFIX "data: "
#define DATA_PREFIX_LEN (sizeof(DATA_PREFIX) - 1)
#define EVENT_PREFIX "event: "
#define EVENT_PREFIX_LEN (sizeof(EVENT_PREFIX) - 1)

static size_t count_lines(const char *data, size_t len) {
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            lines++;
        } else if (data[i] == '\r') {
            lines++;
            if (i + 1 < len && data[i + 1] == '\n')
                i++;
        }
    }
    return lines;
}

size_t fr_sse_body_size(const char *name, size_t name_len, const char *data, size_t data_len) {
    size_t size = 1; /* the blank line that dispatches the event */
    if (name && name_len)
        size += EVENT_PREFIX_LEN + name_len + 1;
    size_t lines = count_lines(data, data_len);
    size_t line_end_bytes = 0;
    for (size_t i = 0; i < data_len; i++) {
        if (data[i] == '\n' || data[i] == '\r')
            line_end_bytes++;
    }
    /* Each line costs the prefix and an LF; the CR/LF bytes of the data are not copied. */
    size += lines * (DATA_PREFIX_LEN + 1) + (data_len - line_end_bytes);
    return size;
}

size_t fr_sse_body_write(char *out, const char *name, size_t name_len, const char *data,
                         size_t data_len) {
    char *p = out;
    if (name && name_len) {
        memcpy(p, EVENT_PREFIX, EVENT_PREFIX_LEN);
        p += EVENT_PREFIX_LEN;
        memcpy(p, name, name_len);
        p += name_len;
        *p++ = '\n';
    }
    size_t start = 0;
    for (size_t i = 0; i <= data_len; i++) {
        if (i < data_len && data[i] != '\n' && data[i] != '\r')
            continue;
        memcpy(p, DATA_PREFIX, DATA_PREFIX_LEN);
        p += DATA_PREFIX_LEN;
        memcpy(p, data + start, i - start);
        p += i - start;
        *p++ = '\n';
        if (i + 1 < data_len && data[i] == '\r' && data[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    *p++ = '\n';
    return (size_t)(p - out);
}
