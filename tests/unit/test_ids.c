/* Multi-topic ids (codec/ids.h): the v1 form, its size at 64 topics, comma-joined ids still
 * read, bounds, and what a client's garbage is told. */
#include <stdlib.h>
#include <string.h>

#include "codec/ids.h"
#include "fr_test.h"

#define MAXN 64

static char *format(const fr_id_t *ids, size_t n) {
    static char buf[4096];
    size_t max = fr_ids_max_len(n);
    CHECK(max <= sizeof buf);
    memset(buf, 'x', sizeof buf);
    size_t len = fr_ids_format(ids, n, buf);
    CHECK(len < max);
    CHECK_EQ_UINT(strlen(buf), len);
    return buf;
}

static int parse(const char *s, fr_id_t *out, size_t max, const char **why) {
    *why = NULL;
    return fr_ids_parse(s, strlen(s), out, max, why);
}

static int same(const fr_id_t *a, const fr_id_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fr_id_cmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

/* Worked by hand from the layout in ids.h: hi 1000 is "of" (8 | more, then 31). */
static void test_known_bytes(void) {
    static const struct {
        fr_id_t ids[3];
        size_t n;
        const char *text;
    } cases[] = {
        {{{1000, 0}, {1000, 0}}, 2, "v1ofAAA"},             /* span 0, both at hi */
        {{{1000, 0}, {990, 5}}, 2, "v1ofKAYF"},             /* from lo, with a seq */
        {{{1000, 0}, {995, 0}, {990, 0}}, 3, "v1ofKAFI"},   /* a tie goes to hi */
        {{{1000, 0}, {900, 0}, {990, 0}}, 3, "v1ofkDAIiB"}, /* span 100; 10 below hi */
        {{{0, 0}, {0, 0}}, 2, "v1AAAA"},
        {{{UINT64_MAX, UINT64_MAX}, {0, 0}}, 2, "v1____________P____________PQ____________PI"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *got = format(cases[c].ids, cases[c].n);
        if (!CHECK_EQ_STR(got, cases[c].text))
            printf("    case %zu\n", c);
        fr_id_t back[3];
        const char *why;
        CHECK_EQ_INT(parse(cases[c].text, back, 3, &why), (int)cases[c].n);
        CHECK(same(back, cases[c].ids, cases[c].n));
    }
}

/* One topic keeps its plain id (publish answers, Redis Stream ids); none is empty. */
static void test_one_and_none(void) {
    fr_id_t one = {1732176000000ull, 3};
    CHECK_EQ_STR(format(&one, 1), "1732176000000-3");
    CHECK_EQ_UINT(fr_ids_max_len(1), FR_ID_MAX_LEN);
    CHECK_EQ_STR(format(&one, 0), "");
    fr_id_t back;
    const char *why;
    CHECK_EQ_INT(parse("1732176000000-3", &back, 1, &why), 1);
    CHECK(fr_id_cmp(back, one) == 0);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Positions near each other, far apart, at 0, at the maximum: each formats, parses back to
 * itself, and stays within fr_ids_max_len. */
static void test_round_trip(void) {
    static const uint64_t edges[] = {0,         1, 7, 8, 255, 256, 1732176000000ull, UINT64_MAX - 1,
                                     UINT64_MAX};
    for (int round = 0; round < 3000; round++) {
        size_t n = 2 + rnd() % (MAXN - 1);
        fr_id_t ids[MAXN];
        uint64_t base = rnd() % 3 ? 1732176000000ull + rnd() % 100000 : rnd();
        for (size_t i = 0; i < n; i++) {
            switch (rnd() % 5) {
            case 0:
                ids[i].ms = edges[rnd() % (sizeof edges / sizeof edges[0])];
                break;
            case 1:
                ids[i].ms = rnd();
                break;
            default:
                ids[i].ms = base - rnd() % 5000;
                break;
            }
            uint64_t k = rnd() % 6;
            ids[i].seq = k < 3 ? 0 : k == 3 ? rnd() % 40 : k == 4 ? UINT64_MAX : rnd();
        }
        const char *text = format(ids, n);
        CHECK_EQ_UINT(strncmp(text, "v1", 2), 0);
        fr_id_t back[MAXN + 1];
        memset(back, 0xA5, sizeof back);
        fr_id_t guard = back[n];
        const char *why;
        int got = parse(text, back, n, &why);
        if (!CHECK_EQ_INT(got, (int)n) || !CHECK(same(back, ids, n))) {
            printf("    round %d: %s (%s)\n", round, text, why ? why : "");
            return;
        }
        CHECK(memcmp(&back[n], &guard, sizeof guard) == 0);
        /* One fewer slot than positions: refused, nothing written past. */
        memset(back, 0xA5, sizeof back);
        guard = back[n - 1];
        CHECK_EQ_INT(parse(text, back, n - 1, &why), -1);
        CHECK(memcmp(&back[n - 1], &guard, sizeof guard) == 0);
    }
}

/* The size this is for: 64 topics, measured against the comma-joined form streams sent
 * before. Printed so the figures in docs/ROUTES.md can be checked. */
static void test_size_at_64_topics(void) {
    const uint64_t now = 1732176000000ull;
    fr_id_t ids[64];
    char joined[64 * FR_ID_MAX_LEN];
    struct {
        const char *what;
        uint64_t spread;
        size_t most;
    } cases[] = {
        {"within 8 s", 8000, 2 + 9 + 3 + 64 * 3},
        {"within 4 min", 240000, 2 + 9 + 4 + 64 * 4},
        {"within the hour", 3600000, 2 + 9 + 5 + 64 * 5},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t jl = 0;
        for (size_t i = 0; i < 64; i++) {
            ids[i] = (fr_id_t){now - rnd() % cases[c].spread, 0};
            if (i)
                joined[jl++] = ',';
            jl += fr_id_format(ids[i], joined + jl);
        }
        const char *text = format(ids, 64);
        size_t len = strlen(text);
        printf("    64 topics %s: %zu bytes (comma-joined: %zu)\n", cases[c].what, len, jl);
        CHECK_EQ_UINT(jl, 1023);
        CHECK(len <= cases[c].most);
        fr_id_t back[64];
        const char *why;
        CHECK_EQ_INT(parse(text, back, 64, &why), 64);
        CHECK(same(back, ids, 64));
    }
    /* A stream just opened on 64 topics, most of which never had an event: they all stand at
     * the same (oldest) position and cost a digit each. */
    for (size_t i = 0; i < 64; i++)
        ids[i] = (fr_id_t){i % 8 ? now - 86400000 : now - rnd() % 8000, 0};
    size_t len = strlen(format(ids, 64));
    printf("    64 topics, 8 with events: %zu bytes\n", len);
    CHECK(len <= 2 + 9 + 6 + 8 * 3 + 56);
}

/* What streams sent before this form: comma-joined ids keep resuming. */
static void test_comma_joined_still_read(void) {
    fr_id_t out[4];
    const char *why;
    CHECK_EQ_INT(parse("1732176000000-3,1732176000002-0", out, 2, &why), 2);
    CHECK(out[0].ms == 1732176000000ull && out[0].seq == 3);
    CHECK(out[1].ms == 1732176000002ull && out[1].seq == 0);
    /* …and name the same positions as the v1 form written for them. */
    fr_id_t v1[2];
    CHECK_EQ_INT(parse(format(out, 2), v1, 2, &why), 2);
    CHECK(same(v1, out, 2));
    CHECK_EQ_INT(parse("1-0,2-0,3-0", out, 2, &why), -1);
    CHECK_CONTAINS(why, "comma-joined");
}

static void test_rejects(void) {
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"", "expected an id this server sent"},
        {"v2ofAAA", "expected an id this server sent"},
        {"V1ofAAA", "expected an id this server sent"},
        {"x1-0", "expected an id this server sent"},
        {"1-0,x", "expected <ms>-<seq>"},
        {"v1", "ends inside a number"},
        {"v1of", "ends inside a number"},
        {"v1o", "ends inside a number"},
        {"v1ofAAQ", "ends inside a number"},
        {"v1ofA", "two positions or more"},
        {"v1ofAA", "two positions or more"},
        {"v1ofAA.A", "a character other than"},
        {"v1ofA A", "a character other than"},
        {"v1ofA,AA", "a character other than"},
        {"v1ofA%41A", "a character other than"},
        {"v1ofAA=", "a character other than"},
        {"v1ofAA\xc3\xa9", "a character other than"},
        {"v1oAAAA", "shortest form"},                  /* hi 8 with an empty last group */
        {"v1ofAAgA", "shortest form"},                 /* a topic's delta likewise */
        {"v1ofAQ_A", "shortest form"},                 /* and a seq */
        {"v1_____________AAA", "above 2^64 - 1"},      /* 13 full groups */
        {"v1____________QAAA", "above 2^64 - 1"},      /* bit 64 */
        {"v1ofAAAAi_____________B", "above 2^64 - 1"}, /* a delta */
        {"v1BCAI", "before 0"},                        /* span 2 > hi 1 */
        {"v1ofKjBI", "outside the range"},             /* delta 11 > span 10 */
        {"v1ofKAiB", "farther end"},                   /* 990 counted down from hi */
        {"v1ofKANI", "farther end"},                   /* a tie counted from lo */
        {"v1ofKAA", "newest or oldest"},               /* nothing at lo */
        {"v1ofKBI", "newest or oldest"},               /* nothing at hi */
        {"v1ofAQAA", "a seq of 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_id_t out[4];
        const char *why;
        int n = parse(bad[i].text, out, 4, &why);
        if (!CHECK_EQ_INT(n, -1) || !CHECK(why != NULL)) {
            printf("    input: \"%s\"\n", bad[i].text);
            continue;
        }
        if (!CHECK_CONTAINS(why, bad[i].why))
            printf("    input: \"%s\"\n", bad[i].text);
    }
    fr_id_t out[2];
    const char *why;
    CHECK_EQ_INT(parse("v1ofAAAA", out, 2, &why), -1);
    CHECK_CONTAINS(why, "more positions than the stream has topics");
    /* A NUL inside is not the end of the id. */
    CHECK_EQ_INT(fr_ids_parse("v1ofA\0AA", 8, out, 2, &why), -1);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_known_bytes);
    FR_RUN(test_one_and_none);
    FR_RUN(test_round_trip);
    FR_RUN(test_size_at_64_topics);
    FR_RUN(test_comma_joined_still_read);
    FR_RUN(test_rejects);
    return FR_TEST_END();
}
