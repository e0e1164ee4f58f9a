/* The slot map of a Redis Cluster, read from a CLUSTER SHARDS reply (Redis 7.0+). Pure: it
 * reads a parsed reply (hiredis' redisReply) and does no I/O, so it is unit-tested and fuzzed
 * (tests/fuzz/fuzz_cluster_shards.c) on its own. The reply is what a cluster node says, read
 * as untrusted: anything malformed is skipped or refused, never trusted for a size.
 *
 *   CLUSTER SHARDS → [ shard… ],  shard = ["slots", [start, end, start, end…],
 *                                          "nodes", [ node… ]]
 *                                  node  = ["id", "…", "port", 7000, "ip", "10.0.0.5",
 *                                           "endpoint", "10.0.0.5", "role", "master",
 *                                           "health", "online", …] */
#ifndef FR_BROKER_REDIS_SHARDS_H
#define FR_BROKER_REDIS_SHARDS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "broker/redis_url.h"

typedef struct {
    fr_redis_addr_t addr; /* endpoint (else ip) and port */
    int primary;          /* role master */
    int online;           /* health online */
} fr_redis_node_t;

typedef struct {
    unsigned (*ranges)[2]; /* owned: [first, last] slot pairs, each within 0..16383 */
    size_t nranges;
    fr_redis_node_t *nodes; /* owned */
    size_t nnodes;
    int primary;            /* index in nodes of the primary (an online one first), or -1 */
} fr_redis_shard_t;

typedef struct {
    fr_redis_shard_t *shards; /* owned */
    size_t nshards;
} fr_redis_shards_t;

/* Reads a CLUSTER SHARDS reply into out (zeroed first). `asked` (may be NULL) is the host the
 * question went to: a node with an empty address (one that never met another node) is there.
 * Returns 0, or -1 with a message in err when rep is not a CLUSTER SHARDS answer at all; shards
 * and nodes that are malformed are left out. Free with fr_redis_shards_free either way. */
int fr_redis_shards_parse(const redisReply *rep, const char *asked, fr_redis_shards_t *out,
                          char *err, size_t errlen);
void fr_redis_shards_free(fr_redis_shards_t *m);

#endif
