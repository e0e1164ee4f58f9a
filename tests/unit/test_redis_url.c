/* The Redis broker's URL (src/broker/redis_url.c): redis://, redis-sentinel:// and unix://,
 * credentials, database, ?replicas=N&wait=MS, and the words of each refusal.
 * tests/integration/87_redis_sentinel_url.py holds the app file's check (lua/freshet/app.lua) to
 * the same verdicts. */
#include <stdlib.h>
#include <string.h>

#include "broker/redis_private.h"
#include "fr_test.h"

static int parse(const char *url, fr_redis_url_t *u, char *err) {
    memset(err, 0, 512);
    return fr_redis_url_parse(url, u, err, 512);
}

static void test_redis_forms(void) {
    fr_redis_url_t u;
    char err[512];
    REQUIRE(parse("redis://127.0.0.1:6379", &u, err) == 0);
    CHECK_EQ_INT(u.sentinel, 0);
    CHECK_EQ_STR(u.addr.host, "127.0.0.1");
    CHECK_EQ_INT(u.addr.port, 6379);
    CHECK_EQ_INT(u.db, 0);
    CHECK_EQ_INT(u.replicas, 0);
    CHECK(u.user == NULL && u.password == NULL && u.unix_path == NULL);
    fr_redis_url_free(&u);

    REQUIRE(parse("redis://", &u, err) == 0); /* everything defaults */
    CHECK_EQ_STR(u.addr.host, "127.0.0.1");
    CHECK_EQ_INT(u.addr.port, 6379);
    fr_redis_url_free(&u);

    REQUIRE(parse("redis://cache.internal/7", &u, err) == 0);
    CHECK_EQ_STR(u.addr.host, "cache.internal");
    CHECK_EQ_INT(u.addr.port, 6379);
    CHECK_EQ_INT(u.db, 7);
    fr_redis_url_free(&u);

    REQUIRE(parse("redis://:s3cret@10.0.0.5:6380/2", &u, err) == 0);
    CHECK(u.user == NULL);
    CHECK_EQ_STR(u.password, "s3cret");
    CHECK_EQ_STR(u.addr.host, "10.0.0.5");
    CHECK_EQ_INT(u.addr.port, 6380);
    CHECK_EQ_INT(u.db, 2);
    fr_redis_url_free(&u);

    REQUIRE(parse("redis://freshet:p@ss/w?rd@h:1", &u, err) == 0); /* the last '@' ends it */
    CHECK_EQ_STR(u.user, "freshet");
    CHECK_EQ_STR(u.password, "p@ss/w?rd");
    CHECK_EQ_STR(u.addr.host, "h");
    CHECK_EQ_INT(u.addr.port, 1);
    fr_redis_url_free(&u);

    REQUIRE(parse("redis://justpassword@h", &u, err) == 0);
    CHECK(u.user == NULL);
    CHECK_EQ_STR(u.password, "justpassword");
    fr_redis_url_free(&u);

    REQUIRE(parse("redis://[::1]:7000/", &u, err) == 0);
    CHECK_EQ_STR(u.addr.host, "::1");
    CHECK_EQ_INT(u.addr.port, 7000);
    CHECK_EQ_INT(u.db, 0);
    fr_redis_url_free(&u);

    REQUIRE(parse("unix:///run/redis/redis.sock?replicas=1", &u, err) == 0);
    CHECK_EQ_STR(u.unix_path, "/run/redis/redis.sock");
    CHECK_EQ_INT(u.replicas, 1);
    CHECK_EQ_INT(u.wait_ms, 1000);
    fr_redis_url_free(&u);
}

static void test_sentinel_forms(void) {
    fr_redis_url_t u;
    char err[512];
    REQUIRE(parse("redis-sentinel://10.0.0.1:26379,10.0.0.2,[fe80::1]:26380/mymaster/3"
                  "?replicas=2&wait=250",
                  &u, err) == 0);
    CHECK_EQ_INT(u.sentinel, 1);
    REQUIRE(u.nsentinels == 3);
    CHECK_EQ_STR(u.sentinels[0].host, "10.0.0.1");
    CHECK_EQ_INT(u.sentinels[0].port, 26379);
    CHECK_EQ_STR(u.sentinels[1].host, "10.0.0.2");
    CHECK_EQ_INT(u.sentinels[1].port, 26379); /* Sentinel's default port */
    CHECK_EQ_STR(u.sentinels[2].host, "fe80::1");
    CHECK_EQ_INT(u.sentinels[2].port, 26380);
    CHECK_EQ_STR(u.master, "mymaster");
    CHECK_EQ_INT(u.db, 3);
    CHECK_EQ_INT(u.replicas, 2);
    CHECK_EQ_INT(u.wait_ms, 250);
    fr_redis_url_free(&u);

    REQUIRE(parse("redis-sentinel://user:pw@s1:1,s2:2/m.x-1_b", &u, err) == 0);
    CHECK_EQ_STR(u.user, "user");
    CHECK_EQ_STR(u.password, "pw");
    CHECK_EQ_INT(u.nsentinels, 2);
    CHECK_EQ_STR(u.master, "m.x-1_b");
    CHECK_EQ_INT(u.db, 0);
    fr_redis_url_free(&u);

    REQUIRE(parse("redis-sentinel://s/m/", &u, err) == 0);
    CHECK_EQ_STR(u.master, "m");
    fr_redis_url_free(&u);

    REQUIRE(parse("redis-sentinel://s/m?replicas=0", &u, err) == 0);
    CHECK_EQ_INT(u.replicas, 0);
    fr_redis_url_free(&u);
}

static void test_cluster_forms(void) {
    fr_redis_url_t u;
    char err[512];
    REQUIRE(parse("redis-cluster://:pw@10.0.0.1:7000,10.0.0.2,[::1]:7002?replicas=1", &u, err) ==
            0);
    CHECK_EQ_INT(u.cluster, 1);
    CHECK_EQ_INT(u.sentinel, 0);
    REQUIRE(u.nsentinels == 3);
    CHECK_EQ_STR(u.sentinels[0].host, "10.0.0.1");
    CHECK_EQ_INT(u.sentinels[0].port, 7000);
    CHECK_EQ_INT(u.sentinels[1].port, 6379);
    CHECK_EQ_STR(u.sentinels[2].host, "::1");
    CHECK_EQ_STR(u.password, "pw");
    CHECK_EQ_INT(u.replicas, 1);
    CHECK(u.master == NULL);
    fr_redis_url_free(&u);
}

/* Each malformed URL is refused, with the words a user needs; nothing is left to free. */
static void test_refusals(void) {
    static const struct {
        const char *url, *words;
    } cases[] = {
        {"http://h:1", "expected memory, redis://"},
        {"redis:/h", "expected memory, redis://"},
        {"redis://h:0", "bad port"},
        {"redis://h:65536", "bad port"},
        {"redis://h:", "bad port"},
        {"redis://h:x", "bad port"},
        {"redis://h:1/1001", "bad database number"},
        {"redis://h:1/x", "bad database number"},
        {"redis://h:1/1/2", "bad database number"},
        {"redis://h h:1", "bad host name"},
        {"redis://[::1:1", "bad IPv6 address"},
        {"redis://[]:1", "bad IPv6 address"},
        {"redis://[::1]x", "unexpected text after ']'"},
        {"redis://[::1]:", "bad port"},
        {"redis://h?replicas=x", "replicas must be a whole number"},
        {"redis://h?replicas=101", "replicas must be a whole number"},
        {"redis://h?replicas=", "replicas must be a whole number"},
        {"redis://h?replicas=1&wait=0", "wait must be milliseconds"},
        {"redis://h?replicas=1&wait=60001", "wait must be milliseconds"},
        {"redis://h?wait=100", "wait= only means something with replicas"},
        {"redis://h?replica=1", "unknown parameter 'replica'"},
        {"redis://h?replicas=1&", "empty parameter"},
        {"unix://run/redis.sock", "unix:// wants an absolute path"},
        {"unix:///", "unix:// wants an absolute path"},
        {"redis-sentinel://h:26379", "expected redis-sentinel://host:port"},
        {"redis-sentinel:///m", "expected redis-sentinel://host:port"},
        {"redis-sentinel://h:26379/", "the master name is missing"},
        {"redis-sentinel://h1,,h2/m", "a Sentinel address without a host"},
        {"redis-sentinel://h1,/m", "a Sentinel address without a host"},
        {"redis-sentinel://:1/m", "a Sentinel address without a host"},
        {"redis-sentinel://h:99999/m", "bad port"},
        {"redis-sentinel://h/m#1", "bad master name"},
        {"redis-sentinel://h/m,n", "bad master name"},
        {"redis-sentinel://h/m/db", "bad database number"},
        {"redis-sentinel://h/m?replicas=1&wait=x", "wait must be milliseconds"},
        {"redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m", "at most 16 Sentinels"},
        {"redis-cluster://", "needs at least one host:port"},
        {"redis-cluster://h:7000/1", "has no database number"},
        {"redis-cluster://h1,,h2", "address without a host"},
        {"redis-cluster://h1,", "a seed address without a host"},
        {"redis-cluster://h:0", "bad port"},
        {"redis-cluster://h?wait=1", "wait= only means something with replicas"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fr_redis_url_t u;
        char err[512];
        int rc = parse(cases[i].url, &u, err);
        if (rc == 0)
            fr_redis_url_free(&u);
        CHECK_EQ_INT(rc, -1);
        if (!strstr(err, cases[i].words))
            printf("  url %s: got '%s', expected it to say '%s'\n", cases[i].url, err,
                   cases[i].words);
        CHECK(strstr(err, cases[i].words) != NULL);
        CHECK(strncmp(err, "broker: ", 8) == 0);
        /* A refusal leaves nothing behind (LeakSanitizer checks) and zeroes the struct. */
        CHECK(u.sentinels == NULL && u.master == NULL && u.password == NULL);
    }
}

static void test_check(void) {
    char err[512];
    CHECK_EQ_INT(fr_redis_url_check("redis-sentinel://h/m", err, sizeof err), 0);
    CHECK_EQ_INT(fr_redis_url_check("redis-sentinel://h", err, sizeof err), -1);
    CHECK(strstr(err, "master-name") != NULL);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_redis_forms);
    FR_RUN(test_sentinel_forms);
    FR_RUN(test_cluster_forms);
    FR_RUN(test_refusals);
    FR_RUN(test_check);
    return FR_TEST_END();
}
