/* Redis Cluster key slots (codec/slot.c): the CRC Redis uses, hash tags as Redis reads them, and
 * a topic's slot computed on its real keys. The expected slots are Redis' own answers
 * (CLUSTER KEYSLOT on Redis 7.0). */
#include <string.h>

#include "fr_test.h"
#include "codec/slot.h"

static unsigned slot(const char *key) {
    return fr_slot_of(key, strlen(key));
}

static void test_crc(void) {
    /* The check value of CRC16-XMODEM. */
    CHECK_EQ_UINT(fr_crc16("123456789", 9), 0x31C3);
    CHECK_EQ_UINT(fr_crc16("", 0), 0);
}

static void test_known_slots(void) {
    CHECK_EQ_UINT(slot("foo"), 12182);
    CHECK_EQ_UINT(slot("bar"), 5061);
    CHECK_EQ_UINT(slot("hello"), 866);
    CHECK_EQ_UINT(slot(""), 0);
}

static void test_hash_tags(void) {
    CHECK_EQ_UINT(slot("{user1000}.following"), slot("user1000"));
    CHECK_EQ_UINT(slot("{user1000}.followers"), slot("user1000"));
    /* An empty tag: the whole key. */
    CHECK_EQ_UINT(slot("foo{}{bar}"), fr_crc16("foo{}{bar}", 10) & 16383);
    /* The first '{' and the first '}' after it. */
    CHECK_EQ_UINT(slot("foo{{bar}}zap"), slot("{bar"));
    CHECK_EQ_UINT(slot("foo{bar}{zap}"), slot("bar"));
    /* No closing brace: the whole key. */
    CHECK_EQ_UINT(slot("foo{bar"), fr_crc16("foo{bar", 7) & 16383);
    /* Bytes after a NUL count (keys are binary). */
    CHECK(fr_slot_of("a\0b", 3) != fr_slot_of("a", 1));
}

static void test_topics(void) {
    const char *topics[] = {"room:lobby", "a}b", "}x", "{t}", "x{y}z", "", "ü}", "}", "{}"};
    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++) {
        char key[64];
        int n = snprintf(key, sizeof key, "fr:{%s}:s", topics[i]);
        CHECK_EQ_UINT(fr_slot_of_topic(topics[i]), fr_slot_of(key, (size_t)n));
        /* The channel is in the Stream's slot, unless the tag is empty. */
        if (topics[i][0] == '}' || topics[i][0] == '\0')
            continue;
        key[n - 1] = 'c';
        CHECK_EQ_UINT(fr_slot_of_topic(topics[i]), fr_slot_of(key, (size_t)n));
    }
    CHECK_EQ_UINT(fr_slot_of_topic("room:lobby"), slot("room:lobby"));
    CHECK_EQ_UINT(fr_slot_of_topic("a}b"), slot("a"));
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_crc);
    FR_RUN(test_known_slots);
    FR_RUN(test_hash_tags);
    FR_RUN(test_topics);
    return FR_TEST_END();
}
