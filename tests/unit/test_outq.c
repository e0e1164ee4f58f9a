/* The out-queue's policy on its own: what a full queue drops first, when a critical event ends
 * the stream instead, conflation, the disconnect policy, the lag cut-off, the byte budget with
 * what the sink still holds, and holes. */
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "stream/outq.h"

static fr_event_t *ev(uint64_t seq, fr_priority_t prio, const char *data) {
    return fr_event_build("t", (fr_id_t){1000, seq}, NULL, data, strlen(data), prio, 0, 1000);
}

/* Offers an event of `topic` (the queue takes its own reference; ours is released). */
static fr_admit_t offer(fr_outq_t *q, uint64_t seq, fr_priority_t prio, uint32_t topic,
                        fr_slow_t slow, uint64_t *last_seq, const fr_tier_t *budget, size_t held,
                        fr_admit_info_t *info) {
    fr_event_t *e = ev(seq, prio, "payload");
    fr_item_t it = {.kind = FR_ITEM_EVENT, .ev = e, .topic = topic};
    it.shared = e->frame;
    it.shared_len = (uint32_t)e->frame_len;
    fr_admit_t r = fr_outq_admit(q, &it, slow, last_seq, budget, held, info);
    fr_event_release(e);
    return r;
}

/* The ids of the queued events, oldest first, as seq numbers (0 for a hole). */
static size_t queued(fr_outq_t *q, uint64_t *out) {
    for (size_t i = 0; i < q->len; i++) {
        fr_item_t *it = fr_outq_at(q, i);
        out[i] = it->ev ? it->ev->id.seq : 0;
    }
    return q->len;
}

static const fr_tier_t small = {"small", 0, 0, 3, 1u << 20, 100};

static void test_drops_telemetry_first_then_normal(void) {
    fr_outq_t q;
    fr_outq_init(&q);
    uint64_t last = 0;
    fr_admit_info_t info;
    CHECK_EQ_INT(offer(&q, 1, FR_PRIO_TELEMETRY, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_QUEUED);
    CHECK_EQ_INT(offer(&q, 2, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_QUEUED);
    CHECK_EQ_INT(offer(&q, 3, FR_PRIO_TELEMETRY, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_QUEUED);
    /* Full (3 events). A normal event takes the place of the oldest telemetry. */
    CHECK_EQ_INT(offer(&q, 4, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_QUEUED);
    CHECK(info.victim && info.victim_prio == FR_PRIO_TELEMETRY);
    /* Another telemetry event finds nothing less important: it is the one dropped. */
    CHECK_EQ_INT(offer(&q, 5, FR_PRIO_TELEMETRY, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_DROPPED);
    CHECK(info.self_dropped && !info.queued);
    /* A critical event takes the place of the telemetry left, then of the oldest normal. */
    CHECK_EQ_INT(offer(&q, 6, FR_PRIO_CRITICAL, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_QUEUED);
    CHECK(info.victim && info.victim_prio == FR_PRIO_TELEMETRY);
    CHECK_EQ_INT(offer(&q, 7, FR_PRIO_CRITICAL, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_QUEUED);
    CHECK(info.victim && info.victim_prio == FR_PRIO_NORMAL);
    fr_outq_skip_holes(&q);
    uint64_t seqs[16];
    size_t n = queued(&q, seqs);
    uint64_t live[16];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (seqs[i])
            live[k++] = seqs[i];
    REQUIRE(k == 3);
    CHECK_EQ_UINT(live[0], 4);
    CHECK_EQ_UINT(live[1], 6);
    CHECK_EQ_UINT(live[2], 7);
    CHECK_EQ_UINT(q.dropped[FR_PRIO_TELEMETRY], 3);
    CHECK_EQ_UINT(q.dropped[FR_PRIO_NORMAL], 1);
    CHECK_EQ_UINT(q.unreported, 4);
    fr_outq_close(&q);
}

static void test_critical_is_never_dropped_silently(void) {
    fr_outq_t q;
    fr_outq_init(&q);
    uint64_t last = 0;
    fr_admit_info_t info;
    for (uint64_t i = 1; i <= 3; i++)
        offer(&q, i, FR_PRIO_CRITICAL, 0, FR_SLOW_DROP, &last, &small, 0, &info);
    CHECK_EQ_INT(offer(&q, 4, FR_PRIO_CRITICAL, 0, FR_SLOW_DROP, &last, &small, 0, &info),
                 FR_ADMIT_EVICT_DROP);
    CHECK(!info.queued && !info.self_dropped);
    CHECK_EQ_UINT(q.live, 3);
    fr_outq_close(&q);
}

static void test_conflation_keeps_the_newest(void) {
    fr_outq_t q;
    fr_outq_init(&q);
    uint64_t last_a = 0, last_b = 0;
    fr_admit_info_t info;
    offer(&q, 1, FR_PRIO_NORMAL, 0, FR_SLOW_CONFLATE, &last_a, &small, 0, &info);
    /* The newest item is the topic's own: replaced where it stands. */
    CHECK_EQ_INT(offer(&q, 2, FR_PRIO_NORMAL, 0, FR_SLOW_CONFLATE, &last_a, &small, 0, &info),
                 FR_ADMIT_REPLACED);
    CHECK(info.conflated);
    CHECK_EQ_UINT(q.len, 1);
    CHECK_EQ_UINT(fr_outq_at(&q, 0)->ev->id.seq, 2);
    /* Another topic's event behind it: the next one of topic 0 leaves a hole and goes last. */
    offer(&q, 3, FR_PRIO_NORMAL, 1, FR_SLOW_CONFLATE, &last_b, &small, 0, &info);
    CHECK_EQ_INT(offer(&q, 4, FR_PRIO_NORMAL, 0, FR_SLOW_CONFLATE, &last_a, &small, 0, &info),
                 FR_ADMIT_QUEUED);
    CHECK(info.conflated);
    uint64_t seqs[8];
    size_t n = queued(&q, seqs);
    REQUIRE(n == 3);
    CHECK_EQ_UINT(seqs[0], 0); /* the hole */
    CHECK_EQ_UINT(seqs[1], 3);
    CHECK_EQ_UINT(seqs[2], 4);
    CHECK_EQ_UINT(q.live, 2);
    fr_outq_skip_holes(&q);
    CHECK_EQ_UINT(q.len, 2);
    fr_outq_close(&q);
}

static void test_disconnect_policy(void) {
    fr_outq_t q;
    fr_outq_init(&q);
    uint64_t last = 0;
    fr_admit_info_t info;
    for (uint64_t i = 1; i <= 3; i++)
        CHECK_EQ_INT(offer(&q, i, FR_PRIO_NORMAL, 0, FR_SLOW_DISCONNECT, &last, &small, 0, &info),
                     FR_ADMIT_QUEUED);
    CHECK_EQ_INT(offer(&q, 4, FR_PRIO_TELEMETRY, 0, FR_SLOW_DISCONNECT, &last, &small, 0, &info),
                 FR_ADMIT_EVICT_SLOW);
    fr_outq_close(&q);
}

static void test_lag_cut_off(void) {
    const fr_tier_t tight = {"tight", 0, 0, 2, 1u << 20, 4};
    fr_outq_t q;
    fr_outq_init(&q);
    uint64_t last = 0;
    fr_admit_info_t info;
    offer(&q, 1, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &tight, 0, &info);
    offer(&q, 2, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &tight, 0, &info);
    /* Two queued; each drop in a row counts: 2 + 1, 2 + 2, then 2 + 3 > 4. */
    CHECK_EQ_INT(offer(&q, 3, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &tight, 0, &info),
                 FR_ADMIT_DROPPED);
    CHECK_EQ_INT(offer(&q, 4, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &tight, 0, &info),
                 FR_ADMIT_DROPPED);
    CHECK_EQ_INT(offer(&q, 5, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &tight, 0, &info),
                 FR_ADMIT_EVICT_LAG);
    CHECK_EQ_UINT(q.streak, 3);
    /* A write that empties the queue ends the streak. */
    fr_item_t taken[2] = {*fr_outq_at(&q, 0), *fr_outq_at(&q, 1)};
    fr_outq_take(&q, 2);
    fr_item_release(&taken[0]);
    fr_item_release(&taken[1]);
    fr_outq_written(&q);
    CHECK_EQ_UINT(q.streak, 0);
    CHECK_EQ_INT(offer(&q, 6, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &tight, 0, &info),
                 FR_ADMIT_QUEUED);
    fr_outq_close(&q);
}

static void test_byte_budget_counts_what_the_sink_holds(void) {
    fr_event_t *e = ev(1, FR_PRIO_NORMAL, "payload");
    size_t one = e->frame_len;
    fr_event_release(e);
    const fr_tier_t bytes = {"bytes", 0, 0, 100, 3 * one, 1000};
    fr_outq_t q;
    fr_outq_init(&q);
    uint64_t last = 0;
    fr_admit_info_t info;
    CHECK_EQ_INT(offer(&q, 1, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &bytes, 0, &info),
                 FR_ADMIT_QUEUED);
    /* The sink still holds two frames' worth: a second event would pass the byte budget. */
    CHECK_EQ_INT(offer(&q, 2, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &bytes, 2 * one, &info),
                 FR_ADMIT_DROPPED);
    CHECK_EQ_INT(offer(&q, 3, FR_PRIO_NORMAL, 0, FR_SLOW_DROP, &last, &bytes, 0, &info),
                 FR_ADMIT_QUEUED);
    CHECK_EQ_UINT(q.bytes, 2 * one);
    fr_outq_close(&q);
}

/* The fast path decides as fr_outq_admit would, and a written front leaves with its counts. */
static void test_fast_path_and_release_front(void) {
    fr_outq_t q;
    fr_outq_init(&q);
    fr_tier_t budget = {.queue = 3, .bytes = 1 << 20, .lag = 100};
    uint64_t last = 0;
    size_t fast = 0;
    for (uint64_t seq = 1; seq <= 4; seq++) {
        fr_event_t *e = ev(seq, seq == 2 ? FR_PRIO_CRITICAL : FR_PRIO_NORMAL, "payload");
        fr_item_t it = {.kind = FR_ITEM_EVENT, .ev = e, .shared = e->frame,
                        .shared_len = (uint32_t)e->frame_len};
        if (fr_outq_admit_fast(&q, &it, FR_SLOW_DROP, &last, &budget, 0))
            fast++;
        fr_event_release(e);
    }
    /* Three fit; the fourth is over the queue and left to fr_outq_admit. */
    CHECK_EQ_UINT(fast, 3);
    CHECK_EQ_UINT(q.live, 3);
    CHECK_EQ_UINT(q.by_prio[FR_PRIO_CRITICAL], 1);
    CHECK_EQ_UINT(last, fr_outq_at(&q, 2)->seq);
    /* With conflation and a queued event of the topic, the fast path stands aside. */
    fr_event_t *e = ev(9, FR_PRIO_NORMAL, "payload");
    fr_item_t it = {.kind = FR_ITEM_EVENT, .ev = e, .shared = e->frame,
                    .shared_len = (uint32_t)e->frame_len};
    budget.queue = 10;
    CHECK(!fr_outq_admit_fast(&q, &it, FR_SLOW_CONFLATE, &last, &budget, 0));
    fr_event_release(e);
    size_t bytes = q.bytes;
    fr_outq_push_owned(&q, strdup("x"), 1);
    fr_outq_release_front(&q, 2);
    CHECK_EQ_UINT(q.len, 2);
    CHECK_EQ_UINT(q.live, 1);
    CHECK_EQ_UINT(q.by_prio[FR_PRIO_CRITICAL], 0);
    CHECK_EQ_UINT(q.bytes, bytes / 3 + 1);
    fr_outq_release_front(&q, 2);
    CHECK_EQ_UINT(q.live, 0);
    CHECK_EQ_UINT(q.bytes, 0);
    fr_outq_close(&q);
}

static void test_bytes_items_and_take(void) {
    fr_outq_t q;
    fr_outq_init(&q);
    static const char hb[] = ":\n\n";
    fr_outq_push_static(&q, hb, 3);
    fr_outq_push_owned(&q, strdup("retry: 1\n\n"), 10);
    CHECK_EQ_UINT(q.len, 2);
    CHECK_EQ_UINT(q.live, 0);
    CHECK_EQ_UINT(q.bytes, 13);
    uv_buf_t bufs[2];
    CHECK_EQ_UINT(fr_item_bufs(fr_outq_at(&q, 0), bufs), 1);
    CHECK_MEM_LIT(bufs[0].base, bufs[0].len, ":\n\n");
    fr_item_t taken = *fr_outq_at(&q, 0);
    fr_outq_take(&q, 1);
    fr_item_release(&taken);
    CHECK_EQ_UINT(q.bytes, 10);
    fr_outq_close(&q);
    CHECK(q.q == NULL);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_drops_telemetry_first_then_normal);
    FR_RUN(test_critical_is_never_dropped_silently);
    FR_RUN(test_conflation_keeps_the_newest);
    FR_RUN(test_disconnect_policy);
    FR_RUN(test_lag_cut_off);
    FR_RUN(test_byte_budget_counts_what_the_sink_holds);
    FR_RUN(test_bytes_items_and_take);
    FR_RUN(test_fast_path_and_release_front);
    return FR_TEST_END();
}
