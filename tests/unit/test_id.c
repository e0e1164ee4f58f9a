/* Event id codec: parsing, formatting, ordering and issuing. */
#include <string.h>

#include "fr_test.h"
#include "codec/id.h"

static int parse(const char *s, fr_id_t *out) {
    return fr_id_parse(s, strlen(s), out);
}

static void test_parse_valid(void) {
    fr_id_t id = {99, 99};
    CHECK_EQ_INT(parse("0-0", &id), 0);
    CHECK_EQ_UINT(id.ms, 0);
    CHECK_EQ_UINT(id.seq, 0);
    CHECK_EQ_INT(parse("1700000000123-7", &id), 0);
    CHECK_EQ_UINT(id.ms, 1700000000123ull);
    CHECK_EQ_UINT(id.seq, 7);
    CHECK_EQ_INT(parse("5-10", &id), 0);
    CHECK_EQ_UINT(id.ms, 5);
    CHECK_EQ_UINT(id.seq, 10);
    /* Only len bytes are read: the rest of the buffer is not part of the id. */
    CHECK_EQ_INT(fr_id_parse("12-34,56-78", 5, &id), 0);
    CHECK_EQ_UINT(id.ms, 12);
    CHECK_EQ_UINT(id.seq, 34);
}

static void test_parse_rejects(void) {
    static const char *const bad[] = {
        "",
        "1",
        "-1",
        "1-",
        "-",
        "a-1",
        "1-a",
        "01-1",
        "1-01",
        "00-0",
        " 1-1",
        "1-1 ",
        "1 -1",
        "+1-1",
        "1-+1",
        "1--1",
        "1-1-1",
        "0x1-1",
        "1/-1", /* the characters right before '0' and after '9' */
        "1-1:",
        "123456789012345678901-0", /* 21 digits */
        "0-123456789012345678901",
        "18446744073709551616-0", /* UINT64_MAX + 1 */
        "0-18446744073709551616",
        "99999999999999999999-0", /* 20 digits, still too big */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_id_t id;
        if (!CHECK_EQ_INT(parse(bad[i], &id), -1))
            printf("    input: \"%s\"\n", bad[i]);
    }
    fr_id_t id;
    CHECK_EQ_INT(fr_id_parse("1\0-1", 4, &id), -1);
}

static void test_max_round_trip(void) {
    fr_id_t id;
    CHECK_EQ_INT(parse("18446744073709551615-18446744073709551615", &id), 0);
    CHECK_EQ_UINT(id.ms, UINT64_MAX);
    CHECK_EQ_UINT(id.seq, UINT64_MAX);
    char buf[FR_ID_MAX_LEN];
    memset(buf, 'x', sizeof buf);
    size_t n = fr_id_format(id, buf);
    CHECK_EQ_UINT(n, 41);
    CHECK_EQ_STR(buf, "18446744073709551615-18446744073709551615");
    CHECK_EQ_INT(buf[41], '\0');

    fr_id_t back;
    CHECK_EQ_INT(fr_id_parse(buf, n, &back), 0);
    CHECK_EQ_INT(fr_id_cmp(id, back), 0);

    n = fr_id_format((fr_id_t){0, 0}, buf);
    CHECK_EQ_UINT(n, 3);
    CHECK_EQ_STR(buf, "0-0");
    n = fr_id_format((fr_id_t){1700000000123ull, 42}, buf);
    CHECK_EQ_STR(buf, "1700000000123-42");
    CHECK_EQ_UINT(n, strlen("1700000000123-42"));
}

static void test_cmp(void) {
    fr_id_t a = {1, 5}, b = {2, 0}, c = {2, 1}, d = {2, 1};
    CHECK_EQ_INT(fr_id_cmp(a, b), -1);
    CHECK_EQ_INT(fr_id_cmp(b, a), 1);
    CHECK_EQ_INT(fr_id_cmp(b, c), -1);
    CHECK_EQ_INT(fr_id_cmp(c, b), 1);
    CHECK_EQ_INT(fr_id_cmp(c, d), 0);
    /* ms dominates seq. */
    CHECK_EQ_INT(fr_id_cmp((fr_id_t){1, UINT64_MAX}, (fr_id_t){2, 0}), -1);
    CHECK_EQ_INT(fr_id_cmp((fr_id_t){UINT64_MAX, 0}, (fr_id_t){0, UINT64_MAX}), 1);
    CHECK_EQ_INT(fr_id_cmp((fr_id_t){0, 0}, (fr_id_t){0, 0}), 0);
}

static void test_next(void) {
    fr_id_t last = {1000, 3};
    /* Same millisecond: the sequence moves on. */
    fr_id_t n = fr_id_next(last, 1000);
    CHECK_EQ_UINT(n.ms, 1000);
    CHECK_EQ_UINT(n.seq, 4);
    /* A later millisecond starts a new sequence. */
    n = fr_id_next(last, 1001);
    CHECK_EQ_UINT(n.ms, 1001);
    CHECK_EQ_UINT(n.seq, 0);
    /* The clock went back: ids still increase. */
    n = fr_id_next(last, 500);
    CHECK_EQ_UINT(n.ms, 1000);
    CHECK_EQ_UINT(n.seq, 4);
    CHECK_EQ_INT(fr_id_cmp(n, last), 1);

    /* A run of ids under a clock that jumps around is strictly increasing. */
    static const uint64_t clock[] = {10, 10, 10, 12, 11, 5, 12, 13, 13, 9, 20, 20};
    fr_id_t prev = {0, 0};
    for (size_t i = 0; i < sizeof clock / sizeof clock[0]; i++) {
        fr_id_t id = fr_id_next(prev, clock[i]);
        if (!CHECK_EQ_INT(fr_id_cmp(id, prev), 1))
            printf("    step %zu, clock %llu\n", i, (unsigned long long)clock[i]);
        prev = id;
    }
    CHECK_EQ_UINT(prev.ms, 20);
    CHECK_EQ_UINT(prev.seq, 1);
}

static void test_next_at_sequence_limit(void) {
    /* The contract is that the next id is after `last`, whatever the clock says; a full
     * sequence must move to the next millisecond rather than wrap to 0. */
    fr_id_t last = {1000, UINT64_MAX};
    fr_id_t n = fr_id_next(last, 1000);
    CHECK_EQ_INT(fr_id_cmp(n, last), 1);
    n = fr_id_next(last, 999);
    CHECK_EQ_INT(fr_id_cmp(n, last), 1);
}

static void test_parse_list(void) {
    fr_id_t ids[4];
    const char *one = "5-1";
    CHECK_EQ_INT(fr_id_parse_list(one, strlen(one), ids, 4), 1);
    CHECK(ids[0].ms == 5 && ids[0].seq == 1);

    const char *three = "1-0,22-3,333-44";
    CHECK_EQ_INT(fr_id_parse_list(three, strlen(three), ids, 4), 3);
    CHECK(ids[0].ms == 1 && ids[0].seq == 0);
    CHECK(ids[1].ms == 22 && ids[1].seq == 3);
    CHECK(ids[2].ms == 333 && ids[2].seq == 44);

    /* Exactly max is fine; one more is refused without writing past the array. */
    CHECK_EQ_INT(fr_id_parse_list(three, strlen(three), ids, 3), 3);
    fr_id_t two[2];
    CHECK_EQ_INT(fr_id_parse_list(three, strlen(three), two, 2), -1);
    CHECK_EQ_INT(fr_id_parse_list(one, strlen(one), ids, 0), -1);
}

static void test_parse_list_rejects(void) {
    static const char *const bad[] = {
        "",          /* no element at all */
        ",",
        "1-0,,2-0",  /* empty element */
        ",1-0",
        "1-0,",      /* trailing comma */
        "1-0, 2-0",  /* spaces are not allowed */
        "1-0,x",
        "1-0;2-0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_id_t ids[4];
        if (!CHECK_EQ_INT(fr_id_parse_list(bad[i], strlen(bad[i]), ids, 4), -1))
            printf("    input: \"%s\"\n", bad[i]);
    }
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_parse_valid);
    FR_RUN(test_parse_rejects);
    FR_RUN(test_max_round_trip);
    FR_RUN(test_cmp);
    FR_RUN(test_next);
    FR_RUN(test_next_at_sequence_limit);
    FR_RUN(test_parse_list);
    FR_RUN(test_parse_list_rejects);
    return FR_TEST_END();
}
