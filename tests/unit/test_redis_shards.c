/* The slot map read from CLUSTER SHARDS (broker/redis_shards.c): a healthy cluster, a shard
 * whose primary failed over, a shard without slots, and replies that are not a map. Replies
 * are RESP bytes parsed by hiredis' reader, as the broker gets them. */
#include <hiredis/hiredis.h>
#include <string.h>

#include "broker/redis_shards.h"
#include "fr_test.h"

static redisReply *reply_of(const char *resp) {
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, resp, strlen(resp));
    void *rep = NULL;
    redisReaderGetReply(rd, &rep);
    redisReaderFree(rd);
    return rep;
}

#define NODE(port, role, health)                                                               \
    "*10\r\n$2\r\nid\r\n$1\r\nx\r\n$4\r\nport\r\n:" port "\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n" \
    "$4\r\nrole\r\n$" role "\r\n$6\r\nhealth\r\n$" health "\r\n"

static void test_healthy(void) {
    redisReply *rep = reply_of(
        "*2\r\n"
        "*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:200\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n" NODE(
            "7000", "6\r\nmaster", "6\r\nonline") NODE("7003", "7\r\nreplica", "6\r\nonline")
        "*4\r\n$5\r\nslots\r\n*2\r\n:100\r\n:199\r\n$5\r\nnodes\r\n*1\r\n" NODE(
            "7001", "6\r\nmaster", "6\r\nonline"));
    REQUIRE(rep != NULL);
    fr_redis_shards_t m;
    char err[256];
    REQUIRE(fr_redis_shards_parse(rep, NULL, &m, err, sizeof err) == 0);
    REQUIRE(m.nshards == 2);
    CHECK_EQ_INT(m.shards[0].nranges, 2);
    CHECK_EQ_UINT(m.shards[0].ranges[1][0], 200);
    CHECK_EQ_UINT(m.shards[0].ranges[1][1], 16383);
    CHECK_EQ_INT(m.shards[0].nnodes, 2);
    CHECK_EQ_INT(m.shards[0].primary, 0);
    CHECK_EQ_STR(m.shards[0].nodes[1].addr.host, "127.0.0.1");
    CHECK_EQ_INT(m.shards[0].nodes[1].addr.port, 7003);
    CHECK_EQ_INT(m.shards[0].nodes[1].primary, 0);
    CHECK_EQ_INT(m.shards[1].nodes[0].addr.port, 7001);
    fr_redis_shards_free(&m);
    freeReplyObject(rep);
}

static void test_failover(void) {
    /* The failed primary still listed first; the promoted replica is the one to use. */
    redisReply *rep = reply_of(
        "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\nnodes\r\n*2\r\n" NODE(
            "7000", "6\r\nmaster", "4\r\nfail") NODE("7003", "6\r\nmaster", "6\r\nonline"));
    fr_redis_shards_t m;
    char err[256];
    REQUIRE(fr_redis_shards_parse(rep, NULL, &m, err, sizeof err) == 0);
    REQUIRE(m.nshards == 1);
    CHECK_EQ_INT(m.shards[0].primary, 1);
    CHECK_EQ_INT(m.shards[0].nodes[0].online, 0);
    fr_redis_shards_free(&m);
    freeReplyObject(rep);
}

static void test_malformed(void) {
    fr_redis_shards_t m;
    char err[256];
    redisReply *rep = reply_of("-ERR unknown command 'CLUSTER'\r\n");
    CHECK_EQ_INT(fr_redis_shards_parse(rep, NULL, &m, err, sizeof err), -1);
    CHECK(strstr(err, "unknown command") != NULL);
    fr_redis_shards_free(&m);
    freeReplyObject(rep);
    /* A bad range and a node without a port are left out; the rest stays. */
    rep = reply_of("*1\r\n*4\r\n$5\r\nslots\r\n*4\r\n:5\r\n:1\r\n:3\r\n:16384\r\n$5\r\nnodes\r\n"
                   "*2\r\n*2\r\n$2\r\nip\r\n$1\r\nh\r\n" NODE("7000", "6\r\nmaster",
                                                            "6\r\nonline"));
    REQUIRE(fr_redis_shards_parse(rep, NULL, &m, err, sizeof err) == 0);
    REQUIRE(m.nshards == 1);
    CHECK_EQ_INT(m.shards[0].nranges, 0);
    CHECK_EQ_INT(m.shards[0].nnodes, 1);
    CHECK_EQ_INT(m.shards[0].primary, 0);
    fr_redis_shards_free(&m);
    freeReplyObject(rep);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_healthy);
    FR_RUN(test_failover);
    FR_RUN(test_malformed);
    return FR_TEST_END();
}
