#include "codec/id.h"

#include <stdio.h>

#include "base/util.h"

int fr_id_parse(const char *s, size_t len, fr_id_t *out) {
    size_t dash = 0;
    while (dash < len && s[dash] != '-')
        dash++;
    if (dash == len)
        return -1;
    fr_id_t id;
    if (fr_u64_parse(s, dash, &id.ms) < 0 || fr_u64_parse(s + dash + 1, len - dash - 1, &id.seq) < 0)
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
