#include "codec/url.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

long fr_url_decode(const char *src, size_t len, char *out, int plus_is_space) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = fr_hex_value(src[i + 1]), lo = fr_hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return -1;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

void fr_url_split(const char *url, size_t len, size_t *path_len, const char **query,
                  size_t *query_len) {
    const char *q = memchr(url, '?', len);
    if (!q) {
        *path_len = len;
        *query = NULL;
        *query_len = 0;
        return;
    }
    *path_len = (size_t)(q - url);
    *query = q + 1;
    *query_len = len - *path_len - 1;
}

int fr_url_each_query(const char *query, size_t len, fr_query_cb fn, void *ctx) {
    char *buf = fr_malloc(len + 1);
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && query[i] != '&')
            continue;
        if (i > start) {
            const char *pair = query + start;
            size_t plen = i - start;
            const char *eq = memchr(pair, '=', plen);
            size_t klen = eq ? (size_t)(eq - pair) : plen;
            char *val = NULL;
            long kd = fr_url_decode(pair, klen, buf, 1);
            if (kd < 0) {
                rc = -1;
                break;
            }
            char *key = fr_strndup(buf, (size_t)kd);
            long vd = 0;
            if (eq) {
                vd = fr_url_decode(eq + 1, plen - klen - 1, buf, 1);
                if (vd < 0) {
                    free(key);
                    rc = -1;
                    break;
                }
                val = buf;
            }
            fn(ctx, key, (size_t)kd, val ? val : "", (size_t)vd);
            free(key);
        }
        start = i + 1;
    }
    free(buf);
    return rc;
}

int fr_url_path_escapes(const char *path, size_t len) {
    char *buf = fr_malloc(len + 1);
    int escapes = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len && !escapes; i++) {
        if (i < len && path[i] != '/')
            continue;
        long n = fr_url_decode(path + start, i - start, buf, 0);
        if (n < 0 || strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0 ||
            memchr(buf, '/', (size_t)n) || memchr(buf, '\\', (size_t)n))
            escapes = 1;
        start = i + 1;
    }
    free(buf);
    return escapes;
}
