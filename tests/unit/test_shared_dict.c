/* freshet.shared: typed values, counters, expiry on a caller-supplied clock, the size bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "core/shared_dict.h"

#define K(s) (s), strlen(s)

static int set_str(fr_shared_t *d, const char *key, const char *s, uint64_t ttl, uint64_t now) {
    fr_sv_t v = {FR_SV_STRING, 0, (char *)s, strlen(s)};
    return fr_shared_set(d, K(key), &v, ttl, now);
}

static int set_num(fr_shared_t *d, const char *key, double n, uint64_t ttl, uint64_t now) {
    fr_sv_t v = {FR_SV_NUMBER, n, NULL, 0};
    return fr_shared_set(d, K(key), &v, ttl, now);
}

static int set_bool(fr_shared_t *d, const char *key, int b, uint64_t ttl, uint64_t now) {
    fr_sv_t v = {FR_SV_BOOL, b ? 1 : 0, NULL, 0};
    return fr_shared_set(d, K(key), &v, ttl, now);
}

static void test_set_get_types(void) {
    fr_shared_t *d = fr_shared_new(100);
    fr_sv_t v;
    CHECK_EQ_INT(fr_shared_get(d, K("missing"), &v, 0), 0);

    CHECK_EQ_INT(set_str(d, "s", "hello", 0, 0), 0);
    memset(&v, 0, sizeof v);
    CHECK_EQ_INT(fr_shared_get(d, K("s"), &v, 0), 1);
    CHECK_EQ_INT(v.type, FR_SV_STRING);
    CHECK_MEM_LIT(v.str, v.len, "hello");
    free(v.str);

    /* Strings are byte strings: NUL inside is kept, and the dictionary owns its copy. */
    char buf[] = "a\0b";
    fr_sv_t in = {FR_SV_STRING, 0, buf, 3};
    CHECK_EQ_INT(fr_shared_set(d, K("bin"), &in, 0, 0), 0);
    buf[0] = 'X';
    CHECK_EQ_INT(fr_shared_get(d, K("bin"), &v, 0), 1);
    CHECK_MEM_LIT(v.str, v.len, "a\0b");
    free(v.str);

    CHECK_EQ_INT(set_num(d, "n", 3.25, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_get(d, K("n"), &v, 0), 1);
    CHECK_EQ_INT(v.type, FR_SV_NUMBER);
    CHECK_EQ_DBL(v.num, 3.25);
    CHECK(v.str == NULL);

    CHECK_EQ_INT(set_bool(d, "t", 1, 0, 0), 0);
    CHECK_EQ_INT(set_bool(d, "f", 0, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_get(d, K("t"), &v, 0), 1);
    CHECK_EQ_INT(v.type, FR_SV_BOOL);
    CHECK_EQ_DBL(v.num, 1);
    CHECK_EQ_INT(fr_shared_get(d, K("f"), &v, 0), 1);
    CHECK_EQ_INT(v.type, FR_SV_BOOL);
    CHECK_EQ_DBL(v.num, 0);

    /* Keys are compared by bytes and length. */
    CHECK_EQ_INT(fr_shared_get(d, "s", 1, &v, 0), 1);
    free(v.str);
    CHECK_EQ_INT(fr_shared_get(d, "ss", 2, &v, 0), 0);
    CHECK_EQ_INT(fr_shared_get(d, "", 0, &v, 0), 0);
    CHECK_EQ_UINT(fr_shared_count(d), 5);
    fr_shared_free(d);
}

static void test_overwrite_and_delete(void) {
    fr_shared_t *d = fr_shared_new(100);
    fr_sv_t v;
    CHECK_EQ_INT(set_str(d, "k", "first", 0, 0), 0);
    CHECK_EQ_INT(set_str(d, "k", "second value", 0, 0), 0);
    CHECK_EQ_UINT(fr_shared_count(d), 1);
    CHECK_EQ_INT(fr_shared_get(d, K("k"), &v, 0), 1);
    CHECK_MEM_LIT(v.str, v.len, "second value");
    free(v.str);

    /* A string replaced by a number (the old string is freed: LeakSanitizer checks). */
    CHECK_EQ_INT(set_num(d, "k", 7, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_get(d, K("k"), &v, 0), 1);
    CHECK_EQ_INT(v.type, FR_SV_NUMBER);
    CHECK_EQ_DBL(v.num, 7);
    CHECK(v.str == NULL);
    CHECK_EQ_INT(set_str(d, "k", "back", 0, 0), 0);
    CHECK_EQ_INT(fr_shared_get(d, K("k"), &v, 0), 1);
    CHECK_MEM_LIT(v.str, v.len, "back");
    free(v.str);

    CHECK_EQ_INT(fr_shared_delete(d, K("k")), 1);
    CHECK_EQ_INT(fr_shared_get(d, K("k"), &v, 0), 0);
    CHECK_EQ_INT(fr_shared_delete(d, K("k")), 0);
    CHECK_EQ_UINT(fr_shared_count(d), 0);
    fr_shared_free(d);
}

static void test_incr(void) {
    fr_shared_t *d = fr_shared_new(100);
    double out = -1;
    /* Absent without init: an error, nothing created. */
    CHECK_EQ_INT(fr_shared_incr(d, K("c"), 1, 0, 0, 0, 0, &out), -1);
    CHECK_EQ_UINT(fr_shared_count(d), 0);
    /* Absent with init: init + delta. */
    CHECK_EQ_INT(fr_shared_incr(d, K("c"), 1, 1, 10, 0, 0, &out), 0);
    CHECK_EQ_DBL(out, 11);
    /* Present: init is ignored. */
    CHECK_EQ_INT(fr_shared_incr(d, K("c"), 5, 1, 100, 0, 0, &out), 0);
    CHECK_EQ_DBL(out, 16);
    CHECK_EQ_INT(fr_shared_incr(d, K("c"), -20, 0, 0, 0, 0, &out), 0);
    CHECK_EQ_DBL(out, -4);
    CHECK_EQ_INT(fr_shared_incr(d, K("c"), 0.5, 0, 0, 0, 0, &out), 0);
    CHECK_EQ_DBL(out, -3.5);
    fr_sv_t v;
    CHECK_EQ_INT(fr_shared_get(d, K("c"), &v, 0), 1);
    CHECK_EQ_INT(v.type, FR_SV_NUMBER);
    CHECK_EQ_DBL(v.num, -3.5);

    /* A counter set as a number first. */
    CHECK_EQ_INT(set_num(d, "n", 2, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_incr(d, K("n"), 3, 0, 0, 0, 0, &out), 0);
    CHECK_EQ_DBL(out, 5);

    /* Not a number: -2, and the value is untouched. */
    CHECK_EQ_INT(set_str(d, "s", "12", 0, 0), 0);
    out = 99;
    CHECK_EQ_INT(fr_shared_incr(d, K("s"), 1, 1, 0, 0, 0, &out), -2);
    CHECK_EQ_DBL(out, 99);
    CHECK_EQ_INT(fr_shared_get(d, K("s"), &v, 0), 1);
    CHECK_EQ_INT(v.type, FR_SV_STRING);
    CHECK_MEM_LIT(v.str, v.len, "12");
    free(v.str);
    CHECK_EQ_INT(set_bool(d, "b", 1, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_incr(d, K("b"), 1, 0, 0, 0, 0, &out), -2);
    fr_shared_free(d);
}

static void test_ttl(void) {
    fr_shared_t *d = fr_shared_new(100);
    fr_sv_t v;
    CHECK_EQ_INT(set_str(d, "short", "x", 100, 1000), 0); /* expires at 1100 */
    CHECK_EQ_INT(set_str(d, "forever", "y", 0, 1000), 0);
    CHECK_EQ_INT(fr_shared_get(d, K("short"), &v, 1000), 1);
    free(v.str);
    CHECK_EQ_INT(fr_shared_get(d, K("short"), &v, 1099), 1);
    free(v.str);
    CHECK_EQ_INT(fr_shared_get(d, K("short"), &v, 1100), 0);
    CHECK_EQ_INT(fr_shared_get(d, K("short"), &v, 1050), 0); /* gone for good */
    CHECK_EQ_INT(fr_shared_get(d, K("forever"), &v, UINT64_MAX / 2), 1);
    free(v.str);
    CHECK_EQ_UINT(fr_shared_count(d), 1);

    /* Setting again renews (or removes) the expiry. */
    CHECK_EQ_INT(set_num(d, "r", 1, 50, 0), 0);
    CHECK_EQ_INT(set_num(d, "r", 2, 50, 40), 0); /* now expires at 90 */
    CHECK_EQ_INT(fr_shared_get(d, K("r"), &v, 60), 1);
    CHECK_EQ_DBL(v.num, 2);
    CHECK_EQ_INT(set_num(d, "r", 3, 0, 60), 0);
    CHECK_EQ_INT(fr_shared_get(d, K("r"), &v, 1000000), 1);

    /* An expired counter is absent: incr without init fails, with init starts over. */
    double out = 0;
    CHECK_EQ_INT(fr_shared_incr(d, K("hits"), 1, 1, 0, 10, 0, &out), 0);
    CHECK_EQ_DBL(out, 1);
    CHECK_EQ_INT(fr_shared_incr(d, K("hits"), 1, 0, 0, 0, 5, &out), 0);
    CHECK_EQ_DBL(out, 2);
    CHECK_EQ_INT(fr_shared_incr(d, K("hits"), 1, 0, 0, 0, 10, &out), -1);
    CHECK_EQ_INT(fr_shared_incr(d, K("hits"), 1, 1, 100, 10, 10, &out), 0);
    CHECK_EQ_DBL(out, 101);
    /* An expired string no longer blocks incr with -2. */
    CHECK_EQ_INT(set_str(d, "was_str", "x", 5, 0), 0);
    CHECK_EQ_INT(fr_shared_incr(d, K("was_str"), 1, 1, 0, 0, 5, &out), 0);
    CHECK_EQ_DBL(out, 1);
    fr_shared_free(d);
}

static void test_max_entries(void) {
    fr_shared_t *d = fr_shared_new(3);
    CHECK_EQ_INT(set_num(d, "a", 1, 0, 0), 0);
    CHECK_EQ_INT(set_num(d, "b", 2, 0, 0), 0);
    CHECK_EQ_INT(set_num(d, "c", 3, 0, 0), 0);
    CHECK_EQ_INT(set_num(d, "d", 4, 0, 0), -1);
    fr_sv_t v;
    CHECK_EQ_INT(fr_shared_get(d, K("d"), &v, 0), 0);
    double out;
    CHECK_EQ_INT(fr_shared_incr(d, K("e"), 1, 1, 0, 0, 0, &out), -3);
    CHECK_EQ_UINT(fr_shared_count(d), 3);
    /* Updating an existing key needs no room. */
    CHECK_EQ_INT(set_num(d, "a", 10, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_incr(d, K("b"), 1, 0, 0, 0, 0, &out), 0);
    /* Deleting makes room. */
    CHECK_EQ_INT(fr_shared_delete(d, K("c")), 1);
    CHECK_EQ_INT(set_num(d, "d", 4, 0, 0), 0);
    CHECK_EQ_UINT(fr_shared_count(d), 3);
    fr_shared_free(d);
}

static void test_expired_entries_free_room(void) {
    /* An entry past its expiry is gone for every reader; it must not keep holding a slot of the
     * bound, or a dictionary of short-lived keys (rate limits per client) fills up for good. */
    fr_shared_t *d = fr_shared_new(2);
    CHECK_EQ_INT(set_num(d, "a", 1, 10, 0), 0);
    CHECK_EQ_INT(set_num(d, "b", 1, 10, 0), 0);
    CHECK_EQ_INT(set_num(d, "c", 1, 0, 100), 0);
    double out;
    CHECK_EQ_INT(fr_shared_incr(d, K("d"), 1, 1, 0, 0, 100, &out), 0);
    fr_shared_free(d);
}

static void test_many_keys(void) {
    /* Far more keys than the initial buckets: every rehash must keep every key reachable. */
    enum { N = 5000 };
    fr_shared_t *d = fr_shared_new(N);
    char key[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        fr_sv_t v = {FR_SV_NUMBER, i, NULL, 0};
        if (fr_shared_set(d, key, (size_t)n, &v, 0, 0) != 0) {
            CHECK(!"set failed below the bound");
            break;
        }
    }
    CHECK_EQ_UINT(fr_shared_count(d), N);
    int right = 0;
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        fr_sv_t v;
        right += fr_shared_get(d, key, (size_t)n, &v, 0) == 1 && v.type == FR_SV_NUMBER &&
                 v.num == i;
    }
    CHECK_EQ_INT(right, N);
    /* The bound holds at exactly N. */
    CHECK_EQ_INT(set_num(d, "one more", 1, 0, 0), -1);
    /* Delete every other key; the rest are still there. */
    for (int i = 0; i < N; i += 2) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        fr_shared_delete(d, key, (size_t)n);
    }
    CHECK_EQ_UINT(fr_shared_count(d), N / 2);
    right = 0;
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        fr_sv_t v;
        right += fr_shared_get(d, key, (size_t)n, &v, 0) == (i % 2);
    }
    CHECK_EQ_INT(right, N);
    fr_shared_free(d);
}

static void test_keys_are_bytes(void) {
    /* Keys are compared by bytes and length: NUL bytes inside them count. */
    fr_shared_t *d = fr_shared_new(10);
    fr_sv_t one = {FR_SV_NUMBER, 1, NULL, 0}, two = {FR_SV_NUMBER, 2, NULL, 0},
            three = {FR_SV_NUMBER, 3, NULL, 0}, v;
    CHECK_EQ_INT(fr_shared_set(d, "a\0b", 3, &one, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_set(d, "a\0c", 3, &two, 0, 0), 0);
    CHECK_EQ_INT(fr_shared_set(d, "a", 1, &three, 0, 0), 0);
    CHECK_EQ_UINT(fr_shared_count(d), 3);
    CHECK(fr_shared_get(d, "a\0b", 3, &v, 0) == 1 && v.num == 1);
    CHECK(fr_shared_get(d, "a\0c", 3, &v, 0) == 1 && v.num == 2);
    CHECK(fr_shared_get(d, "a", 1, &v, 0) == 1 && v.num == 3);
    CHECK_EQ_INT(fr_shared_get(d, "a\0", 2, &v, 0), 0);
    CHECK_EQ_INT(fr_shared_delete(d, "a\0b", 3), 1);
    CHECK_EQ_INT(fr_shared_get(d, "a\0b", 3, &v, 0), 0);
    CHECK(fr_shared_get(d, "a\0c", 3, &v, 0) == 1 && v.num == 2);
    fr_shared_free(d);
}

static void test_global(void) {
    fr_shared_t *g = fr_shared_global();
    REQUIRE(g != NULL);
    CHECK(fr_shared_global() == g);
    CHECK_EQ_INT(set_str(g, "global", "v", 0, 0), 0);
    fr_sv_t v;
    CHECK_EQ_INT(fr_shared_get(fr_shared_global(), K("global"), &v, 0), 1);
    free(v.str);
    fr_shared_shutdown();
    fr_shared_shutdown(); /* twice is harmless */
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_set_get_types);
    FR_RUN(test_overwrite_and_delete);
    FR_RUN(test_incr);
    FR_RUN(test_ttl);
    FR_RUN(test_max_entries);
    FR_RUN(test_expired_entries_free_room);
    FR_RUN(test_many_keys);
    FR_RUN(test_keys_are_bytes);
    FR_RUN(test_global);
    return FR_TEST_END();
}
