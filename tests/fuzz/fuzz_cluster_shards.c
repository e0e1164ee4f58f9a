/* Fuzz target: the slot map read from a Redis Cluster node's CLUSTER SHARDS reply
 * (broker/redis_shards.c), and the key slots the broker routes by (codec/slot.c).
 *
 * The input is RESP bytes as a node would send them, parsed by hiredis' reader (what the broker
 * does). Checked for every reply the reader accepts:
 *   - the parser never reads past the reply or trusts a count it was sent;
 *   - every range it keeps is inside 0..16383 with first <= last, every node has a host that
 *     fits with no spaces or control bytes and a port in 1..65535, and the primary index points
 *     at a node that says master;
 * and for the input taken as a key: fr_slot_of agrees with a reference written from the
 * Cluster specification (bit-by-bit CRC16-XMODEM, hash tags). */
#include <hiredis/hiredis.h>
#include <string.h>

#include "fuzz_common.h"
#include "broker/redis_shards.h"
#include "codec/slot.h"

static unsigned ref_crc(const unsigned char *p, size_t n) {
    unsigned crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

static unsigned ref_slot(const unsigned char *p, size_t n) {
    for (size_t s = 0; s < n; s++) {
        if (p[s] != '{')
            continue;
        for (size_t e = s + 1; e < n; e++) {
            if (p[e] == '}') {
                if (e > s + 1)
                    return ref_crc(p + s + 1, e - s - 1) % 16384;
                return ref_crc(p, n) % 16384;
            }
        }
        break;
    }
    return ref_crc(p, n) % 16384;
}

static void check_map(const fr_redis_shards_t *m) {
    for (size_t i = 0; i < m->nshards; i++) {
        const fr_redis_shard_t *s = &m->shards[i];
        for (size_t k = 0; k < s->nranges; k++)
            fz_expect(s->ranges[k][0] <= s->ranges[k][1] && s->ranges[k][1] < FR_SLOTS,
                      "a slot range outside 0..16383 or reversed");
        for (size_t k = 0; k < s->nnodes; k++) {
            const fr_redis_node_t *n = &s->nodes[k];
            size_t len = strnlen(n->addr.host, sizeof n->addr.host);
            fz_expect(len > 0 && len < sizeof n->addr.host, "a node host empty or unterminated");
            for (size_t c = 0; c < len; c++)
                fz_expect((unsigned char)n->addr.host[c] > ' ' &&
                              (unsigned char)n->addr.host[c] < 127,
                          "a node host with a space or a control byte");
            fz_expect(n->addr.port >= 1 && n->addr.port <= 65535, "a node port out of range");
        }
        fz_expect(s->primary < (int)s->nnodes, "the primary index past the nodes");
        if (s->primary >= 0)
            fz_expect(s->nodes[s->primary].primary, "the primary is not a master");
    }
}

/* hiredis 0.14 allocates an aggregate's declared element count before reading it (it has no
 * limit until 1.0), so "*454601234" alone asks for gigabytes. The replies come from the Redis
 * nodes the app names, and this target is about what the map reader makes of them: inputs that
 * declare more than a million elements or bytes are skipped. */
static int declares_huge(const uint8_t *data, size_t size) {
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*' && data[i] != '$' && data[i] != '%' && data[i] != '~' &&
            data[i] != '>')
            continue;
        unsigned long long n = 0;
        size_t j = i + 1;
        while (j < size && data[j] >= '0' && data[j] <= '9' && n < 100000000ULL)
            n = n * 10 + (unsigned)(data[j++] - '0');
        if (n > 1000000)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_expect(fr_slot_of((const char *)data, size) == ref_slot(data, size),
              "fr_slot_of disagrees with the reference");
    if (declares_huge(data, size))
        return 0;
    redisReader *rd = redisReaderCreate();
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < 4; i++) {
            void *rep = NULL;
            if (redisReaderGetReply(rd, &rep) != REDIS_OK || !rep)
                break;
            fr_redis_shards_t m;
            char err[256];
            fr_redis_shards_parse(rep, "10.0.0.1", &m, err, sizeof err);
            check_map(&m);
            fr_redis_shards_free(&m);
            freeReplyObject(rep);
        }
    }
    redisReaderFree(rd);
    return 0;
}
