#include "broker/redis_shards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "codec/slot.h"

/* At most this many shards, nodes per shard and slot ranges per shard are read: a real cluster
 * has far fewer, and a hostile reply cannot make the map grow without bound. */
#define MAX_SHARDS 1024
#define MAX_NODES 64
#define MAX_RANGES FR_SLOTS

static int is_str(const redisReply *r, const char *s) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* The value of a key in a flat [key, value, …] array; NULL when absent. */
static const redisReply *field(const redisReply *map, const char *key) {
    if (!map || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (is_str(map->element[i], key))
            return map->element[i + 1];
    return NULL;
}

/* A port as Redis sends it (an integer; a string is taken too). */
static int port_of(const redisReply *r) {
    long long v = -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r && r->type == REDIS_REPLY_STRING && r->len > 0 && r->len < 6) {
        v = 0;
        for (size_t i = 0; i < r->len; i++) {
            if (r->str[i] < '0' || r->str[i] > '9')
                return -1;
            v = v * 10 + (r->str[i] - '0');
        }
    }
    return v >= 1 && v <= 65535 ? (int)v : -1;
}

/* A host as a node names itself: printable, no spaces, fits an address. Empty and "?" (a
 * node whose endpoint is unknown) are not hosts. */
static int host_ok(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(((fr_redis_addr_t *)0)->host))
        return 0;
    if (r->len == 1 && r->str[0] == '?')
        return 0;
    for (size_t i = 0; i < r->len; i++) {
        unsigned char c = (unsigned char)r->str[i];
        if (c <= ' ' || c >= 127)
            return 0;
    }
    return 1;
}

static int node_parse(const redisReply *n, const char *asked, fr_redis_node_t *out) {
    const redisReply *host = field(n, "endpoint");
    if (!host_ok(host))
        host = field(n, "ip");
    int port = port_of(field(n, "port"));
    if (port < 0)
        return -1;
    if (host_ok(host)) {
        memcpy(out->addr.host, host->str, host->len);
        out->addr.host[host->len] = '\0';
    } else if (asked && host && host->type == REDIS_REPLY_STRING && host->len == 0 &&
               strlen(asked) < sizeof out->addr.host) {
        /* A node that never met another one does not know its own address: it is the one
         * that was asked. */
        strcpy(out->addr.host, asked);
    } else {
        return -1;
    }
    out->addr.port = port;
    out->primary = is_str(field(n, "role"), "master");
    out->online = is_str(field(n, "health"), "online");
    return 0;
}

static long long slot_num(const redisReply *r) {
    return r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer < FR_SLOTS
               ? r->integer
               : -1;
}

static void shard_parse(const redisReply *s, const char *asked, fr_redis_shard_t *out) {
    out->primary = -1;
    const redisReply *slots = field(s, "slots"), *nodes = field(s, "nodes");
    if (slots && slots->type == REDIS_REPLY_ARRAY) {
        size_t n = slots->elements / 2;
        if (n > MAX_RANGES)
            n = MAX_RANGES;
        out->ranges = n ? fr_calloc(n, sizeof *out->ranges) : NULL;
        for (size_t i = 0; i < n; i++) {
            long long a = slot_num(slots->element[2 * i]), b = slot_num(slots->element[2 * i + 1]);
            if (a < 0 || b < a)
                continue;
            out->ranges[out->nranges][0] = (unsigned)a;
            out->ranges[out->nranges][1] = (unsigned)b;
            out->nranges++;
        }
    }
    if (nodes && nodes->type == REDIS_REPLY_ARRAY) {
        size_t n = nodes->elements < MAX_NODES ? nodes->elements : MAX_NODES;
        out->nodes = n ? fr_calloc(n, sizeof *out->nodes) : NULL;
        for (size_t i = 0; i < n; i++) {
            fr_redis_node_t *node = &out->nodes[out->nnodes];
            if (node_parse(nodes->element[i], asked, node) < 0)
                continue;
            /* The first online primary serves the shard (a second one would be a cluster in
             * the middle of changing its mind; the next refresh settles it); a failed one
             * still names the shard until a replica takes over. */
            if (node->primary &&
                (out->primary < 0 || (node->online && !out->nodes[out->primary].online)))
                out->primary = (int)out->nnodes;
            out->nnodes++;
        }
    }
}

int fr_redis_shards_parse(const redisReply *rep, const char *asked, fr_redis_shards_t *out,
                          char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "%s", rep && rep->type == REDIS_REPLY_ERROR
                                        ? rep->str
                                        : "CLUSTER SHARDS did not answer with a list");
        return -1;
    }
    size_t n = rep->elements < MAX_SHARDS ? rep->elements : MAX_SHARDS;
    out->shards = n ? fr_calloc(n, sizeof *out->shards) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (!rep->element[i] || rep->element[i]->type != REDIS_REPLY_ARRAY)
            continue;
        shard_parse(rep->element[i], asked, &out->shards[out->nshards++]);
    }
    return 0;
}

void fr_redis_shards_free(fr_redis_shards_t *m) {
    for (size_t i = 0; i < m->nshards; i++) {
        free(m->shards[i].ranges);
        free(m->shards[i].nodes);
    }
    free(m->shards);
    memset(m, 0, sizeof *m);
}
