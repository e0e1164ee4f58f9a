/* Publish body codec; see payload.h for the format. */
#include "payload.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

size_t fr_payload_format(char *out, const fr_payload_t *p, size_t size) {
    int n;
    if (p->conns)
        n = snprintf(out, FR_PAYLOAD_MIN_CONNS,
                     "{\"t\":%" PRIu64 ",\"s\":%" PRIu64 ",\"k\":%u,\"c\":%u,\"g\":%" PRIu64
                     ",\"w\":%d,\"p\":\"",
                     p->t, p->seq, p->topic, p->conn, p->g, p->warmup ? 1 : 0);
    else
        n = snprintf(out, FR_PAYLOAD_MIN,
                     "{\"t\":%" PRIu64 ",\"s\":%" PRIu64 ",\"k\":%u,\"w\":%d,\"p\":\"", p->t,
                     p->seq, p->topic, p->warmup ? 1 : 0);
    size_t head = (size_t)n;
    size_t pad = size > head + 2 ? size - head - 2 : 0;
    memset(out + head, 'x', pad);
    memcpy(out + head + pad, "\"}", 2);
    return head + pad + 2;
}

/* Expects `key` (e.g. "\"t\":") at *pos and reads the unsigned number after it. */
static int field(const char *s, size_t len, size_t *pos, const char *key, uint64_t *out) {
    size_t klen = strlen(key);
    if (len - *pos < klen || memcmp(s + *pos, key, klen) != 0)
        return -1;
    size_t i = *pos + klen;
    uint64_t v = 0;
    size_t start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 20)
        v = v * 10 + (uint64_t)(s[i++] - '0');
    if (i == start)
        return -1;
    *out = v;
    *pos = i;
    return 0;
}

int fr_payload_parse(const char *data, size_t len, fr_payload_t *out) {
    size_t pos = 0;
    uint64_t t, s, k, c = 0, g = 0, w;
    if (field(data, len, &pos, "{\"t\":", &t) || field(data, len, &pos, ",\"s\":", &s) ||
        field(data, len, &pos, ",\"k\":", &k))
        return -1;
    int conns = field(data, len, &pos, ",\"c\":", &c) == 0;
    if ((conns && field(data, len, &pos, ",\"g\":", &g)) || field(data, len, &pos, ",\"w\":", &w))
        return -1;
    if (k > UINT32_MAX || c > UINT32_MAX)
        return -1;
    out->t = t;
    out->seq = s;
    out->g = g;
    out->topic = (uint32_t)k;
    out->conn = (uint32_t)c;
    out->conns = conns;
    out->warmup = w != 0;
    return 0;
}
