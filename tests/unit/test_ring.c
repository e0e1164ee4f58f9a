/* Replay ring: bounded, ordered, every slot one reference. */
#include <stdio.h>
#include <string.h>

#include "core/event.h"
#include "fr_test.h"
#include "core/ring.h"

/* An event with id (ms, seq), published at `at`; the caller owns the returned reference. */
static fr_event_t *mk(uint64_t ms, uint64_t seq, uint64_t at) {
    const char *err = NULL;
    char data[64];
    int n = snprintf(data, sizeof data, "%llu-%llu", (unsigned long long)ms,
                     (unsigned long long)seq);
    return fr_event_new("t", (fr_id_t){ms, seq}, NULL, data, (size_t)n, FR_PRIO_NORMAL, 0, at,
                        &err);
}

/* Pushes an event and drops the test's own reference: the ring keeps it alive. */
static void push(fr_ring_t *r, uint64_t ms, uint64_t seq, uint64_t at) {
    fr_event_t *ev = mk(ms, seq, at);
    fr_ring_push(r, ev);
    fr_event_release(ev);
}

static fr_id_t id(uint64_t ms, uint64_t seq) {
    return (fr_id_t){ms, seq};
}

/* Checks the ring holds exactly the events with ms = first..first+n-1 (seq 0), oldest first. */
static void check_ms_run(const fr_ring_t *r, uint64_t first, size_t n, const char *file, int line) {
    fr_t_eq_uint(r->count, n, "ring count", "expected", file, line);
    for (size_t i = 0; i < r->count && i < n; i++) {
        fr_event_t *ev = fr_ring_at(r, i);
        if (!fr_t_eq_uint(ev->id.ms, first + i, "fr_ring_at(i)->id.ms", "expected", file, line))
            printf("    at index %zu\n", i);
        if (!fr_t_eq_int(ev->refs, 1, "held event refs", "1", file, line))
            printf("    at index %zu\n", i);
    }
}

#define CHECK_RUN(r, first, n) check_ms_run((r), (first), (n), __FILE__, __LINE__)

static void test_push_and_wrap(void) {
    fr_ring_t r;
    fr_ring_init(&r, 4);
    CHECK_EQ_UINT(r.count, 0);
    CHECK_EQ_INT(r.has_evicted, 0);
    for (uint64_t ms = 1; ms <= 4; ms++)
        push(&r, ms, 0, 0);
    CHECK_RUN(&r, 1, 4);
    CHECK_EQ_INT(r.has_evicted, 0);

    push(&r, 5, 0, 0);
    CHECK_RUN(&r, 2, 4);
    CHECK_EQ_INT(r.has_evicted, 1);
    CHECK_EQ_UINT(r.evicted_upto.ms, 1);
    CHECK_EQ_UINT(r.evicted_upto.seq, 0);

    /* Go twice round the slots: order and eviction stay exact across the wrap. */
    for (uint64_t ms = 6; ms <= 13; ms++)
        push(&r, ms, 0, 0);
    CHECK_RUN(&r, 10, 4);
    CHECK_EQ_UINT(r.evicted_upto.ms, 9);
    CHECK(r.cap <= 4);
    fr_ring_close(&r);
    CHECK_EQ_UINT(r.count, 0);
    CHECK(r.slots == NULL);
}

static void test_push_takes_a_reference(void) {
    fr_ring_t r;
    fr_ring_init(&r, 2);
    fr_event_t *a = mk(1, 0, 0);
    fr_ring_push(&r, a);
    CHECK_EQ_INT(a->refs, 2);
    fr_event_retain(a); /* keep it past eviction to see the ring let go */
    push(&r, 2, 0, 0);
    push(&r, 3, 0, 0);
    CHECK_EQ_INT(a->refs, 2);
    fr_event_release(a);
    CHECK_EQ_INT(a->refs, 1);
    fr_event_release(a);
    fr_ring_close(&r);
}

static void test_after_and_contains(void) {
    fr_ring_t r;
    fr_ring_init(&r, 16);
    /* ids 10-0, 10-1, 20-0, 30-5 */
    push(&r, 10, 0, 0);
    push(&r, 10, 1, 0);
    push(&r, 20, 0, 0);
    push(&r, 30, 5, 0);
    CHECK_EQ_UINT(fr_ring_after(&r, id(0, 0)), 0);  /* before all */
    CHECK_EQ_UINT(fr_ring_after(&r, id(9, 99)), 0);
    CHECK_EQ_UINT(fr_ring_after(&r, id(10, 0)), 1); /* exact match: the next one */
    CHECK_EQ_UINT(fr_ring_after(&r, id(10, 1)), 2);
    CHECK_EQ_UINT(fr_ring_after(&r, id(15, 0)), 2); /* between */
    CHECK_EQ_UINT(fr_ring_after(&r, id(20, 0)), 3);
    CHECK_EQ_UINT(fr_ring_after(&r, id(30, 4)), 3);
    CHECK_EQ_UINT(fr_ring_after(&r, id(30, 5)), 4); /* the last: nothing after */
    CHECK_EQ_UINT(fr_ring_after(&r, id(99, 0)), 4); /* after all */

    CHECK_EQ_INT(fr_ring_contains(&r, id(10, 0)), 1);
    CHECK_EQ_INT(fr_ring_contains(&r, id(10, 1)), 1);
    CHECK_EQ_INT(fr_ring_contains(&r, id(20, 0)), 1);
    CHECK_EQ_INT(fr_ring_contains(&r, id(30, 5)), 1);
    CHECK_EQ_INT(fr_ring_contains(&r, id(10, 2)), 0);
    CHECK_EQ_INT(fr_ring_contains(&r, id(5, 0)), 0);
    CHECK_EQ_INT(fr_ring_contains(&r, id(30, 6)), 0);
    CHECK_EQ_INT(fr_ring_contains(&r, id(25, 0)), 0);
    fr_ring_close(&r);

    /* An empty ring: nothing after anything, contains nothing. */
    fr_ring_init(&r, 16);
    CHECK_EQ_UINT(fr_ring_after(&r, id(1, 0)), 0);
    CHECK_EQ_INT(fr_ring_contains(&r, id(1, 0)), 0);
    fr_ring_close(&r);
}

static void test_after_across_wrap(void) {
    fr_ring_t r;
    fr_ring_init(&r, 5);
    for (uint64_t ms = 1; ms <= 12; ms++)
        push(&r, ms, 0, 0);
    /* Holds 8..12 with head somewhere in the middle of the slots. */
    CHECK_RUN(&r, 8, 5);
    for (uint64_t ms = 0; ms <= 13; ms++) {
        size_t want = ms < 8 ? 0 : ms >= 12 ? 5 : (size_t)(ms - 7);
        if (!CHECK_EQ_UINT(fr_ring_after(&r, id(ms, 0)), want))
            printf("    after %llu-0\n", (unsigned long long)ms);
        int held = ms >= 8 && ms <= 12;
        if (!CHECK_EQ_INT(fr_ring_contains(&r, id(ms, 0)), held))
            printf("    contains %llu-0\n", (unsigned long long)ms);
    }
    fr_ring_close(&r);
}

static void test_expire(void) {
    fr_ring_t r;
    fr_ring_init(&r, 10);
    push(&r, 1, 0, 100);
    push(&r, 2, 0, 200);
    push(&r, 3, 0, 300);
    push(&r, 4, 0, 400);
    CHECK_EQ_UINT(fr_ring_expire(&r, 100), 0); /* published_at == cutoff stays */
    CHECK_EQ_INT(r.has_evicted, 0);
    CHECK_EQ_UINT(fr_ring_expire(&r, 250), 2);
    CHECK_RUN(&r, 3, 2);
    CHECK_EQ_INT(r.has_evicted, 1);
    CHECK_EQ_UINT(r.evicted_upto.ms, 2);
    CHECK_EQ_UINT(fr_ring_expire(&r, 250), 0);
    CHECK_EQ_UINT(fr_ring_expire(&r, 10000), 2);
    CHECK_EQ_UINT(r.count, 0);
    CHECK_EQ_UINT(r.evicted_upto.ms, 4);
    CHECK_EQ_INT(fr_ring_contains(&r, id(4, 0)), 0);
    CHECK_EQ_UINT(fr_ring_after(&r, id(0, 0)), 0);
    /* Usable again after emptying. */
    push(&r, 5, 0, 500);
    CHECK_RUN(&r, 5, 1);
    CHECK_EQ_UINT(r.evicted_upto.ms, 4);
    fr_ring_close(&r);
}

static void test_expire_releases_large_ring(void) {
    fr_ring_t r;
    fr_ring_init(&r, 100);
    for (uint64_t ms = 1; ms <= 40; ms++)
        push(&r, ms, 0, ms);
    CHECK_EQ_UINT(fr_ring_expire(&r, 1000), 40);
    CHECK_EQ_UINT(r.count, 0);
    CHECK_EQ_UINT(r.evicted_upto.ms, 40);
    /* Pushing after the slots were given back grows again from nothing. */
    for (uint64_t ms = 41; ms <= 60; ms++)
        push(&r, ms, 0, ms);
    CHECK_RUN(&r, 41, 20);
    CHECK_EQ_UINT(fr_ring_after(&r, id(50, 0)), 10);
    fr_ring_close(&r);
}

static void test_zero_max(void) {
    fr_ring_t r;
    fr_ring_init(&r, 0);
    fr_event_t *ev = mk(7, 3, 0);
    fr_ring_push(&r, ev);
    CHECK_EQ_UINT(r.count, 0);
    CHECK_EQ_INT(r.has_evicted, 1);
    CHECK_EQ_UINT(r.evicted_upto.ms, 7);
    CHECK_EQ_UINT(r.evicted_upto.seq, 3);
    CHECK_EQ_INT(ev->refs, 1); /* nothing was retained */
    fr_event_release(ev);
    push(&r, 8, 0, 0);
    CHECK_EQ_UINT(r.evicted_upto.ms, 8);
    CHECK_EQ_UINT(fr_ring_after(&r, id(0, 0)), 0);
    CHECK_EQ_INT(fr_ring_contains(&r, id(8, 0)), 0);
    CHECK_EQ_UINT(fr_ring_expire(&r, 100), 0);
    fr_ring_close(&r);
}

static void test_growth_keeps_order(void) {
    /* Fill a small allocation, wrap it by evicting via expire and pushing more, then grow: the
     * copy must start at head, not at slot 0. */
    fr_ring_t r;
    fr_ring_init(&r, 64);
    for (uint64_t ms = 1; ms <= 8; ms++)
        push(&r, ms, 0, ms);
    size_t cap_before = r.cap;
    CHECK_EQ_UINT(fr_ring_expire(&r, 6), 5); /* drops 1..5, head moves to slot 5 */
    CHECK_RUN(&r, 6, 3);
    for (uint64_t ms = 9; ms <= 13; ms++) /* fills the slots again, wrapping past the end */
        push(&r, ms, 0, ms);
    CHECK_EQ_UINT(r.cap, cap_before);
    CHECK_RUN(&r, 6, 8);
    for (uint64_t ms = 14; ms <= 40; ms++) /* grows (more than once) */
        push(&r, ms, 0, ms);
    CHECK(r.cap > cap_before);
    CHECK_RUN(&r, 6, 35);
    CHECK_EQ_INT(r.has_evicted, 1);
    CHECK_EQ_UINT(r.evicted_upto.ms, 5);
    /* Up to the bound, then evicting the oldest. */
    for (uint64_t ms = 41; ms <= 100; ms++)
        push(&r, ms, 0, ms);
    CHECK_EQ_UINT(r.cap, 64);
    CHECK_RUN(&r, 37, 64);
    CHECK_EQ_UINT(r.evicted_upto.ms, 36);
    fr_ring_close(&r);
}

static void test_bound_not_power_of_two(void) {
    fr_ring_t r;
    fr_ring_init(&r, 3);
    for (uint64_t ms = 1; ms <= 7; ms++)
        push(&r, ms, 0, 0);
    CHECK_RUN(&r, 5, 3);
    CHECK_EQ_UINT(r.evicted_upto.ms, 4);
    CHECK(r.cap <= 3);
    fr_ring_close(&r);

    fr_ring_init(&r, 1);
    push(&r, 1, 0, 0);
    push(&r, 2, 0, 0);
    CHECK_RUN(&r, 2, 1);
    CHECK_EQ_UINT(r.evicted_upto.ms, 1);
    fr_ring_close(&r);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_push_and_wrap);
    FR_RUN(test_push_takes_a_reference);
    FR_RUN(test_after_and_contains);
    FR_RUN(test_after_across_wrap);
    FR_RUN(test_expire);
    FR_RUN(test_expire_releases_large_ring);
    FR_RUN(test_zero_max);
    FR_RUN(test_growth_keeps_order);
    FR_RUN(test_bound_not_power_of_two);
    return FR_TEST_END();
}
