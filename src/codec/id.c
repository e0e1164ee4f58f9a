#include "codec/id.h"

#include <stdio.h>

#include "base/util.h"

static int parse_u64(const char *s, size_t len, uint64_t *out) {
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int fr_id_parse(const char *s, size_t len, fr_id_t *out) {
    size_t dash = 0;
    while (dash < len && s[dash] != '-')
        dash++;
    if (dash == len)
        return -1;
    fr_id_t id;
    if (parse_u64(s, dash, &id.ms) < 0 || parse_u64(s + dash + 1, len - dash - 1, &id.seq) < 0)
        return -1;
    *out = id;
    return 0;
}

int fr_id_parse_list(const char *s, size_t len, fr_id_t *out, size_t max) {
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        if (n == max || fr_id_parse(s + start, i - start, &out[n]) < 0)
            return -1;
        n++;
        start = i + 1;
    }
    return (int)n;
}

size_t fr_id_format(fr_id_t id, char *buf) {
    size_t n = fr_u64_format(buf, id.ms);
    buf[n++] = '-';
    n += fr_u64_format(buf + n, id.seq);
    buf[n] = '\0';
    return n;
}

fr_id_t fr_id_next(fr_id_t last, uint64_t now_ms) {
    fr_id_t id;
    if (now_ms > last.ms) {
        id.ms = now_ms;
        id.seq = 0;
    } else if (last.seq == UINT64_MAX) {
        id.ms = last.ms + 1;
        id.seq = 0;
    } else {
        id.ms = last.ms;
        id.seq = last.seq + 1;
    }
    return id;
}
