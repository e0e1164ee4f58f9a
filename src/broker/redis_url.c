/* The Redis broker's URL: where the primary is (one address, a unix socket, or the Sentinels
 * that know it), the credentials, the database, and how many replicas a publish waits for.
 *
 *   redis://[[user]:password@]host[:port][/db][?params]                    port 6379
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]…]/master[/db][?params]
 *                                                                          port 26379
 *   redis-cluster://[[user]:password@]host[:port][,host[:port]…][?params]   port 6379
 *   unix:///path/to/redis.sock[?params]
 *   params: replicas=N (0–100) and wait=MS (1–60000, only with replicas), joined by '&'
 *
 * A host may be a name, an IPv4 address or an IPv6 address in brackets ([::1]:6379). The
 * password ends at the URL's last '@', so it may hold any character; nothing is
 * percent-decoded. Pure parsing: no I/O. */
#include "broker/redis_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define SENTINELS_MAX 16
#define REDIS_PORT 6379
#define SENTINEL_PORT 26379
#define WAIT_DEFAULT_MS 1000

/* Parses a decimal number in [min, max] from s[0..len); -1 when it is not one. */
static long parse_num(const char *s, size_t len, long min, long max) {
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < min || v > max ? -1 : v;
}

/* One "host[:port]" (or "[v6][:port]") of len bytes into a. An empty host is 127.0.0.1 when
 * allow_empty is set. Returns 0, or -1 with a message. */
static int parse_hostport(const char *s, size_t len, int defport, int allow_empty,
                          fr_redis_addr_t *a, const char *url, char *err, size_t errlen) {
    const char *host = s, *port = NULL;
    size_t hlen = len, plen = 0;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close == s + 1) {
            snprintf(err, errlen, "broker: bad IPv6 address in '%s' (write it as [addr]:port)",
                     url);
            return -1;
        }
        host = s + 1;
        hlen = (size_t)(close - s - 1);
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest > 0 && close[1] != ':') {
            snprintf(err, errlen, "broker: unexpected text after ']' in '%s'", url);
            return -1;
        }
        if (rest > 0) {
            port = close + 2;
            plen = rest - 1;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
            plen = len - hlen - 1;
        }
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 127 || c == '@' || c == '/' || c == '?' || c == ',' ||
            (c == ':' && s[0] != '[')) {
            snprintf(err, errlen, "broker: bad host name in '%s'", url);
            return -1;
        }
    }
    if (hlen == 0 && !allow_empty) {
        snprintf(err, errlen, "broker: a Sentinel address without a host in '%s'", url);
        return -1;
    }
    if (hlen >= sizeof a->host) {
        snprintf(err, errlen, "broker: host name too long");
        return -1;
    }
    a->port = defport;
    if (port) {
        long p = parse_num(port, plen, 1, 65535);
        if (p < 0) {
            snprintf(err, errlen, "broker: bad port in '%s'", url);
            return -1;
        }
        a->port = (int)p;
    }
    if (hlen == 0)
        snprintf(a->host, sizeof a->host, "127.0.0.1");
    else
        snprintf(a->host, sizeof a->host, "%.*s", (int)hlen, host);
    return 0;
}

/* "replicas=N&wait=MS" (the text after '?'). */
static int parse_params(const char *q, fr_redis_url_t *u, const char *url, char *err,
                        size_t errlen) {
    int have_wait = 0;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        const char *v = eq ? eq + 1 : q + len;
        size_t vlen = eq ? len - klen - 1 : 0;
        if (klen == 8 && memcmp(q, "replicas", 8) == 0) {
            long n = parse_num(v, vlen, 0, 100);
            if (n < 0) {
                snprintf(err, errlen,
                         "broker: replicas must be a whole number from 0 to 100 in "
                         "'%s'",
                         url);
                return -1;
            }
            u->replicas = (unsigned)n;
        } else if (klen == 4 && memcmp(q, "wait", 4) == 0) {
            long n = parse_num(v, vlen, 1, 60000);
            if (n < 0) {
                snprintf(err, errlen, "broker: wait must be milliseconds from 1 to 60000 in '%s'",
                         url);
                return -1;
            }
            u->wait_ms = (unsigned)n;
            have_wait = 1;
        } else {
            snprintf(err, errlen,
                     "broker: unknown parameter '%.*s' in '%s' (known: replicas, "
                     "wait)",
                     (int)klen, q, url);
            return -1;
        }
        q += len + (amp ? 1 : 0);
        if (amp && !*q) {
            snprintf(err, errlen, "broker: empty parameter in '%s'", url);
            return -1;
        }
    }
    if (have_wait && u->replicas == 0) {
        snprintf(err, errlen, "broker: wait= only means something with replicas=N, in '%s'", url);
        return -1;
    }
    return 0;
}

/* "[[user]:password@]" up to `at` (the URL's last '@', or NULL). */
static void parse_userinfo(const char *p, const char *at, fr_redis_url_t *u) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon) {
        if (colon > p)
            u->user = fr_strndup(p, (size_t)(colon - p));
        u->password = fr_strndup(colon + 1, (size_t)(at - colon - 1));
    } else {
        u->password = fr_strndup(p, (size_t)(at - p));
    }
}

static int parse_db(const char *s, size_t len, fr_redis_url_t *u, const char *url, char *err,
                    size_t errlen) {
    long db = parse_num(s, len, 0, 1000);
    if (db < 0) {
        snprintf(err, errlen, "broker: bad database number in '%s'", url);
        return -1;
    }
    u->db = (int)db;
    return 0;
}

/* "host[:port],host[:port]…" of a cluster: the seed nodes asked for the slot map. No database:
 * a cluster has only database 0. */
static int parse_cluster(const char *p, size_t len, fr_redis_url_t *u, const char *url, char *err,
                         size_t errlen) {
    if (memchr(p, '/', len)) {
        snprintf(err, errlen, "broker: a Redis Cluster has no database number, in '%s'", url);
        return -1;
    }
    if (len == 0) {
        snprintf(err, errlen, "broker: redis-cluster:// needs at least one host:port, in '%s'",
                 url);
        return -1;
    }
    const char *h = p, *end = p + len;
    while (h < end) {
        const char *comma = memchr(h, ',', (size_t)(end - h));
        const char *stop = comma ? comma : end;
        if (u->nsentinels == SENTINELS_MAX) {
            snprintf(err, errlen, "broker: at most %d seed nodes in '%s'", SENTINELS_MAX, url);
            return -1;
        }
        u->sentinels = fr_realloc(u->sentinels, (u->nsentinels + 1) * sizeof *u->sentinels);
        if (parse_hostport(h, (size_t)(stop - h), REDIS_PORT, 0, &u->sentinels[u->nsentinels],
                           url, err, errlen) < 0)
            return -1;
        u->nsentinels++;
        h = stop + (comma ? 1 : 0);
        if (comma && h == end) {
            snprintf(err, errlen, "broker: a seed address without a host in '%s'", url);
            return -1;
        }
    }
    return 0;
}

static int parse_sentinel(const char *p, size_t len, fr_redis_url_t *u, const char *url, char *err,
                          size_t errlen) {
    const char *slash = memchr(p, '/', len);
    if (!slash || slash == p) {
        snprintf(err, errlen,
                 "broker: expected redis-sentinel://host:port[,host:port...]/"
                 "master-name[/db], got '%s'",
                 url);
        return -1;
    }
    const char *h = p;
    while (h < slash) {
        const char *comma = memchr(h, ',', (size_t)(slash - h));
        const char *end = comma ? comma : slash;
        if (u->nsentinels == SENTINELS_MAX) {
            snprintf(err, errlen, "broker: at most %d Sentinels in '%s'", SENTINELS_MAX, url);
            return -1;
        }
        u->sentinels = fr_realloc(u->sentinels, (u->nsentinels + 1) * sizeof *u->sentinels);
        if (parse_hostport(h, (size_t)(end - h), SENTINEL_PORT, 0, &u->sentinels[u->nsentinels],
                           url, err, errlen) < 0)
            return -1;
        u->nsentinels++;
        h = end + (comma ? 1 : 0);
        if (comma && h == slash) {
            snprintf(err, errlen, "broker: a Sentinel address without a host in '%s'", url);
            return -1;
        }
    }
    const char *name = slash + 1, *end = p + len;
    const char *next = memchr(name, '/', (size_t)(end - name));
    size_t nlen = next ? (size_t)(next - name) : (size_t)(end - name);
    if (nlen == 0) {
        snprintf(err, errlen,
                 "broker: the master name is missing in '%s' "
                 "(redis-sentinel://host:port/master-name)",
                 url);
        return -1;
    }
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 127 || c == ',' || c == '@' || c == '#') {
            snprintf(err, errlen, "broker: bad master name in '%s'", url);
            return -1;
        }
    }
    if (nlen > 200) {
        snprintf(err, errlen, "broker: master name too long");
        return -1;
    }
    u->master = fr_strndup(name, nlen);
    if (next && next + 1 < end)
        return parse_db(next + 1, (size_t)(end - next - 1), u, url, err, errlen);
    return 0;
}

int fr_redis_url_parse(const char *url, fr_redis_url_t *u, char *err, size_t errlen) {
    memset(u, 0, sizeof *u);
    u->wait_ms = WAIT_DEFAULT_MS;
    /* Neither the parameters nor a host or master name hold '@': the URL's last one ends the
     * password, which may therefore hold '@', '/' or '?'; the parameters start after it. */
    const char *at = strrchr(url, '@');
    const char *q = strchr(at ? at : url, '?');
    size_t len = q ? (size_t)(q - url) : strlen(url);
    if (q && parse_params(q + 1, u, url, err, errlen) < 0)
        goto fail;
    if (strncmp(url, "unix://", 7) == 0) {
        if (len <= 8 || url[7] != '/') {
            snprintf(err, errlen, "broker: unix:// wants an absolute path, got '%s'", url);
            goto fail;
        }
        u->unix_path = fr_strndup(url + 7, len - 7);
        return 0;
    }
    int sentinel = strncmp(url, "redis-sentinel://", 17) == 0;
    int cluster = strncmp(url, "redis-cluster://", 16) == 0;
    if (!sentinel && !cluster && strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "broker: expected memory, redis://host:port[/db], "
                 "redis-sentinel://host:port[,host:port...]/master-name[/db], "
                 "redis-cluster://host:port[,host:port...] or unix:///path, got '%s'",
                 url);
        goto fail;
    }
    const char *hosts = url + (sentinel ? 17 : cluster ? 16 : 8), *end = url + len;
    if (at && at < end) {
        parse_userinfo(hosts, at, u);
        hosts = at + 1;
    }
    if (cluster) {
        u->cluster = 1;
        if (parse_cluster(hosts, (size_t)(end - hosts), u, url, err, errlen) < 0)
            goto fail;
        u->addr = u->sentinels[0];
        return 0;
    }
    if (sentinel) {
        u->sentinel = 1;
        if (parse_sentinel(hosts, (size_t)(end - hosts), u, url, err, errlen) < 0)
            goto fail;
        return 0;
    }
    const char *slash = memchr(hosts, '/', (size_t)(end - hosts));
    if (parse_hostport(hosts, (size_t)((slash ? slash : end) - hosts), REDIS_PORT, 1, &u->addr, url,
                       err, errlen) < 0)
        goto fail;
    if (slash && slash + 1 < end &&
        parse_db(slash + 1, (size_t)(end - slash - 1), u, url, err, errlen) < 0)
        goto fail;
    return 0;
fail:
    fr_redis_url_free(u);
    return -1;
}

void fr_redis_url_free(fr_redis_url_t *u) {
    free(u->unix_path);
    free(u->sentinels);
    free(u->master);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

int fr_redis_url_check(const char *url, char *err, size_t errlen) {
    fr_redis_url_t u;
    if (fr_redis_url_parse(url, &u, err, errlen) < 0)
        return -1;
    fr_redis_url_free(&u);
    return 0;
}
