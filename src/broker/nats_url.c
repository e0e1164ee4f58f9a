#include "broker/nats_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static int fail(char *err, size_t errlen, const char *url, const char *what) {
    snprintf(err, errlen, "broker: %s in \"%s\"", what, url);
    return -1;
}

/* A decimal number of at most 9 digits in [min, max]; -1 when it is not one. */
static long number(const char *s, size_t n, long min, long max) {
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < min || v > max ? -1 : v;
}

static int name_ok(const char *s, size_t n) {
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int params(const char *q, fr_nats_url_t *u, const char *url, char *err, size_t errlen) {
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (n == 0 || !eq)
            return fail(err, errlen, url, "empty or malformed parameter");
        size_t kn = (size_t)(eq - q), vn = n - kn - 1;
        if (kn == 8 && memcmp(q, "replicas", 8) == 0) {
            long r = number(eq + 1, vn, 1, 5);
            if (r < 0)
                return fail(err, errlen, url, "replicas must be a whole number from 1 to 5");
            u->replicas = (unsigned)r;
        } else if (kn == 6 && memcmp(q, "stream", 6) == 0) {
            if (!name_ok(eq + 1, vn))
                return fail(err, errlen, url,
                            "stream must be 1-64 characters from A-Z a-z 0-9 _ -");
            memcpy(u->stream, eq + 1, vn);
            u->stream[vn] = '\0';
        } else {
            char what[96];
            snprintf(what, sizeof what, "unknown parameter '%.*s' (known: replicas, stream)",
                     (int)(kn > 40 ? 40 : kn), q);
            return fail(err, errlen, url, what);
        }
        q += n;
        if (*q == '&') {
            q++;
            if (!*q)
                return fail(err, errlen, url, "empty or malformed parameter");
        }
    }
    return 0;
}

/* One host[:port] of the list; appended to u->servers with the credentials in front. */
static int server(const char *s, size_t n, const char *cred, size_t credn, fr_nats_url_t *u,
                  const char *url, char *err, size_t errlen) {
    const char *host = s, *port = NULL;
    size_t hn = n, pn = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || close == s + 1)
            return fail(err, errlen, url, "bad IPv6 address (write it as [addr]:port)");
        hn = (size_t)(close - s) + 1;
        if (hn < n) {
            if (s[hn] != ':')
                return fail(err, errlen, url, "unexpected text after ']'");
            port = s + hn + 1;
            pn = n - hn - 1;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon) {
            hn = (size_t)(colon - s);
            port = colon + 1;
            pn = n - hn - 1;
        }
    }
    if (hn == 0)
        return fail(err, errlen, url, "a server address without a host");
    if (hn >= 256)
        return fail(err, errlen, url, "host name too long");
    for (size_t i = host[0] == '[' ? 1 : 0; i < (host[0] == '[' ? hn - 1 : hn); i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 32 || c >= 127 || c == '@' || c == '/' || c == '?' || c == ',' ||
            (c == ':' && host[0] != '['))
            return fail(err, errlen, url, "bad host name");
    }
    long p = 4222;
    if (port && (p = number(port, pn, 1, 65535)) < 0)
        return fail(err, errlen, url, "bad port");
    if (u->nservers == FR_NATS_MAX_SERVERS)
        return fail(err, errlen, url, "at most 16 servers");
    size_t cap = 7 + credn + 1 + hn + 8;
    char *out = fr_malloc(cap);
    snprintf(out, cap, "nats://%.*s%s%.*s:%ld", (int)credn, cred, credn ? "@" : "", (int)hn, host,
             p);
    u->servers = fr_realloc(u->servers, (u->nservers + 1) * sizeof *u->servers);
    u->servers[u->nservers++] = out;
    return 0;
}

int fr_nats_url_parse(const char *url, fr_nats_url_t *u, char *err, size_t errlen) {
    memset(u, 0, sizeof *u);
    u->replicas = 1;
    strcpy(u->stream, "freshet");
    if (strncmp(url, "nats://", 7) != 0) {
        snprintf(err, errlen, "broker: expected nats://host:port[,host:port...][?params], got "
                              "\"%s\"", url);
        return -1;
    }
    const char *rest = url + 7;
    const char *at = strrchr(rest, '@');
    const char *q = strchr(at ? at : rest, '?');
    size_t base_len = q ? (size_t)(q - rest) : strlen(rest);
    const char *cred = "";
    size_t credn = 0;
    if (at && at < rest + base_len) {
        cred = rest;
        credn = (size_t)(at - rest);
        if (!memchr(cred, ':', credn) && credn == 0)
            goto bad_cred;
        for (size_t i = 0; i < credn; i++)
            if ((unsigned char)cred[i] <= 32 || (unsigned char)cred[i] >= 127 || cred[i] == '/' ||
                cred[i] == ',')
                goto bad_cred;
        base_len -= credn + 1;
        rest = at + 1;
    }
    if (base_len == 0) {
        fail(err, errlen, url, "no server address");
        goto fail;
    }
    for (size_t i = 0; i <= base_len;) {
        size_t n = 0;
        while (i + n < base_len && rest[i + n] != ',')
            n++;
        if (server(rest + i, n, cred, credn, u, url, err, errlen) < 0)
            goto fail;
        i += n + 1;
    }
    if (q && params(q + 1, u, url, err, errlen) < 0)
        goto fail;
    return 0;
bad_cred:
    fail(err, errlen, url, "bad credentials (user:password@)");
fail:
    fr_nats_url_free(u);
    return -1;
}

void fr_nats_url_free(fr_nats_url_t *u) {
    for (size_t i = 0; i < u->nservers; i++)
        free(u->servers[i]);
    free(u->servers);
    u->servers = NULL;
    u->nservers = 0;
}
