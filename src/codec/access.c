#include "codec/access.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "base/util.h"
#include "codec/url.h"

/* Parts of query keys that name a secret; a key is matched percent-decoded and in lower case,
 * so "Access_Token", "api%5Fkey" and "X-Signature" are all caught. Redacting a harmless key
 * that happens to contain one of these costs a value in a log line; missing a secret would
 * put it in every copy of the logs. */
static const char *const secret_parts[] = {"token", "key", "secret", "passw", "auth", "jwt",
                                           "sig", "session", "credential"};

static int key_is_secret(const char *key, size_t len) {
    char stack[128];
    char *low = len < sizeof stack ? stack : fr_malloc(len + 1); /* a long key is rare */
    long n = fr_url_decode(key, len, low, 1);
    if (n < 0) { /* malformed: judge the bytes as sent */
        memcpy(low, key, len);
        n = (long)len;
    }
    for (long i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)low[i]);
    int secret = 0;
    for (size_t i = 0; i < sizeof secret_parts / sizeof secret_parts[0] && !secret; i++)
        secret = memmem(low, (size_t)n, secret_parts[i], strlen(secret_parts[i])) != NULL;
    if (low != stack)
        free(low);
    return secret;
}

void fr_access_redact(const char *target, size_t len, fr_buf_t *out) {
    const char *q = memchr(target, '?', len);
    if (!q) {
        fr_buf_put(out, target, len);
        return;
    }
    fr_buf_put(out, target, (size_t)(q - target) + 1);
    const char *p = q + 1, *end = target + len;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        if (eq && key_is_secret(p, (size_t)(eq - p))) {
            fr_buf_put(out, p, (size_t)(eq - p) + 1);
            fr_buf_put(out, "REDACTED", 8);
        } else {
            fr_buf_put(out, p, (size_t)(pair_end - p));
        }
        if (!amp)
            break;
        fr_buf_put(out, "&", 1);
        p = amp + 1;
    }
}

/* A text line is split on spaces and ends at '\n': nothing from the client may add either. */
static void put_text_escaped(fr_buf_t *out, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            fr_buf_put(out, esc, 4);
        } else {
            fr_buf_put(out, (const char *)&s[i], 1);
        }
    }
}

static void put_time(fr_buf_t *out, uint64_t unix_ms) {
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    char ts[40];
    gmtime_r(&secs, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fr_buf_put(out, ts, n);
    fr_buf_printf(out, ".%03uZ", (unsigned)(unix_ms % 1000));
}

void fr_access_format(const fr_access_entry_t *e, int json, fr_buf_t *out) {
    const char *method = e->method && e->method[0] ? e->method : "-";
    fr_buf_t target = {0};
    if (e->target)
        fr_access_redact(e->target, e->target_len, &target);
    else
        fr_buf_put(&target, "-", 1);
    const char *remote = e->remote ? e->remote : "-";
    unsigned long long us = (unsigned long long)e->duration_us;
    if (json) {
        fr_buf_put(out, "{\"ts\":\"", 7);
        put_time(out, e->unix_ms);
        fr_buf_put(out, "\",\"client\":", 11);
        fr_json_put_string(out, remote, strlen(remote));
        fr_buf_put(out, ",\"method\":", 10);
        fr_json_put_string(out, method, strlen(method));
        fr_buf_put(out, ",\"path\":", 8);
        fr_json_put_string(out, target.p ? target.p : "", target.len);
        fr_buf_printf(out, ",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%llu.%03llu,"
                           "\"transport\":\"%s\"}\n",
                      e->status, (unsigned long long)e->bytes, us / 1000, us % 1000,
                      e->transport);
    } else {
        put_time(out, e->unix_ms);
        fr_buf_put(out, " ", 1);
        put_text_escaped(out, remote, strlen(remote));
        fr_buf_put(out, " \"", 2);
        put_text_escaped(out, method, strlen(method));
        fr_buf_put(out, " ", 1);
        put_text_escaped(out, target.p ? target.p : "", target.len);
        fr_buf_printf(out, "\" %d %llu %llu.%03llu %s\n", e->status, (unsigned long long)e->bytes,
                      us / 1000, us % 1000, e->transport);
    }
    fr_buf_free(&target);
}

void fr_access_emit(fr_linefile_t *f, int json, const fr_access_entry_t *e) {
    if (!f)
        return;
    fr_buf_t line = {0};
    fr_buf_reserve(&line, 256 + e->target_len);
    fr_access_format(e, json, &line);
    fr_linefile_write(f, line.p, line.len);
    fr_buf_free(&line);
}
