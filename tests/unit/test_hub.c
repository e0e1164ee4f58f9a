/* The hub: per-topic ids, delivery, resume checks, replay merging, forgetting topics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "core/hub.h"
#include "base/util.h"

/* A start far in the future pins every id to that millisecond, so ids depend only on the
 * sequence and the tests do not depend on how fast the machine is. */
static uint64_t future_start(void) {
    return fr_now_ms() + 3600u * 1000u;
}

/* Publishes and flushes, as one turn of the worker's loop does. */
static fr_id_t pub(fr_hub_t *hub, const char *topic, const char *data) {
    fr_id_t id = {0, 0};
    const char *err = NULL;
    int rc = fr_hub_publish(hub, topic, NULL, data, strlen(data), FR_PRIO_NORMAL, 0, &id, &err);
    if (rc != 0)
        printf("    publish on %s failed: %s\n", topic, err ? err : "(no message)");
    fr_hub_flush(hub, 0);
    return id;
}

/* Waits (spinning, at most a millisecond or two) until the wall clock passes ms, so the next
 * id starts a new millisecond and leaves a gap of unissued ids behind it. */
static void spin_past(uint64_t ms) {
    while (fr_now_ms() <= ms) {
    }
}

/* ---- subscribers that record what they get ---- */

typedef struct {
    fr_sub_t sub;
    fr_event_t *got[64];
    size_t n;
    fr_hub_t *hub;
    int unsubscribe_on_first; /* the callback detaches itself, as a lagging stream does */
} recorder_t;

static void record(fr_sub_t *sub, fr_event_t *ev) {
    recorder_t *r = sub->owner;
    if (r->n < 64) {
        fr_event_retain(ev);
        r->got[r->n++] = ev;
    }
    if (r->unsubscribe_on_first)
        fr_hub_unsubscribe(r->hub, sub);
}

static void recorder_lost(fr_sub_t *sub) {
    (void)sub;
}

static const fr_sub_ops_t recorder_ops = {record, recorder_lost};

static void recorder_init(recorder_t *r, fr_hub_t *hub) {
    memset(r, 0, sizeof *r);
    r->hub = hub;
    r->sub.ops = &recorder_ops;
    r->sub.owner = r;
}

static void recorder_free(recorder_t *r) {
    for (size_t i = 0; i < r->n; i++)
        fr_event_release(r->got[i]);
    r->n = 0;
}

static void test_ids_increase_within_a_millisecond(void) {
    fr_hub_t hub;
    uint64_t start = future_start();
    fr_hub_init(&hub, 1, 100, 0, start);
    fr_id_t prev = fr_hub_position(&hub, "t");
    CHECK_EQ_UINT(prev.ms, start);
    CHECK_EQ_UINT(prev.seq, 0);
    for (int i = 0; i < 50; i++) {
        fr_id_t id = pub(&hub, "t", "x");
        if (!CHECK_EQ_INT(fr_id_cmp(id, prev), 1))
            printf("    publish %d\n", i);
        prev = id;
    }
    /* All in the pinned millisecond, numbered 1..50. */
    CHECK_EQ_UINT(prev.ms, start);
    CHECK_EQ_UINT(prev.seq, 50);
    fr_id_t pos = fr_hub_position(&hub, "t");
    CHECK_EQ_INT(fr_id_cmp(pos, prev), 0);
    CHECK_EQ_UINT(hub.published, 50);
    fr_hub_close(&hub);

    /* With the real clock: consecutive publishes are usually in one millisecond. */
    fr_hub_init(&hub, 1, 100, 0, fr_now_ms());
    prev = fr_hub_position(&hub, "t");
    for (int i = 0; i < 200; i++) {
        fr_id_t id = pub(&hub, "t", "x");
        if (!CHECK_EQ_INT(fr_id_cmp(id, prev), 1))
            printf("    publish %d\n", i);
        prev = id;
    }
    fr_hub_close(&hub);
}

static void test_topics_have_their_own_sequence(void) {
    fr_hub_t hub;
    uint64_t start = future_start();
    fr_hub_init(&hub, 1, 100, 0, start);
    fr_id_t a1 = pub(&hub, "a", "1");
    fr_id_t b1 = pub(&hub, "b", "1");
    fr_id_t a2 = pub(&hub, "a", "2");
    CHECK_EQ_UINT(a1.seq, 1);
    CHECK_EQ_UINT(b1.seq, 1);
    CHECK_EQ_UINT(a2.seq, 2);
    CHECK_EQ_UINT(hub.topics.count, 2);
    fr_topic_t *t = fr_hub_find(&hub, "a");
    REQUIRE(t != NULL);
    CHECK_EQ_UINT(t->ring.count, 2);
    CHECK_EQ_UINT(t->published, 2);
    CHECK(fr_hub_find(&hub, "c") == NULL);
    fr_hub_close(&hub);
}

/* A publish stores at once and fans out at the flush: the publisher never waits for the
 * subscribers, and a stream that joins in between skips what its position covers. */
static void test_fan_out_waits_for_the_flush(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 100, 0, future_start());
    recorder_t r;
    recorder_init(&r, &hub);
    fr_hub_subscribe(&hub, &r.sub, "room");
    fr_id_t id;
    const char *err;
    CHECK_EQ_INT(fr_hub_publish(&hub, "room", NULL, "x", 1, FR_PRIO_NORMAL, 0, &id, &err), 0);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(fr_id_cmp(fr_hub_position(&hub, "room"), id), 0);
    CHECK_EQ_UINT(fr_hub_find(&hub, "room")->ring.count, 1);
    fr_hub_flush(&hub, 0);
    CHECK_EQ_INT(r.n, 1);
    fr_hub_flush(&hub, 0);
    CHECK_EQ_INT(r.n, 1);
    fr_hub_unsubscribe(&hub, &r.sub);
    recorder_free(&r);
    fr_hub_close(&hub);
}

static void test_deliver_in_order_and_unsubscribe(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 100, 0, future_start());
    recorder_t r1, r2;
    recorder_init(&r1, &hub);
    recorder_init(&r2, &hub);
    fr_hub_subscribe(&hub, &r1.sub, "room");
    fr_hub_subscribe(&hub, &r2.sub, "room");
    CHECK(r1.sub.topic != NULL);
    CHECK(r1.sub.topic == fr_hub_find(&hub, "room"));

    fr_id_t ids[3];
    ids[0] = pub(&hub, "room", "one");
    ids[1] = pub(&hub, "room", "two");
    pub(&hub, "other", "not for them");
    ids[2] = pub(&hub, "room", "three");
    static const char *const want[] = {"one", "two", "three"};
    recorder_t *rs[] = {&r1, &r2};
    for (int k = 0; k < 2; k++) {
        REQUIRE(rs[k]->n == 3);
        for (size_t i = 0; i < 3; i++) {
            CHECK_EQ_STR(rs[k]->got[i]->data, want[i]);
            CHECK_EQ_INT(fr_id_cmp(rs[k]->got[i]->id, ids[i]), 0);
            CHECK_EQ_STR(rs[k]->got[i]->topic, "room");
        }
    }

    fr_hub_unsubscribe(&hub, &r1.sub);
    CHECK(r1.sub.topic == NULL);
    pub(&hub, "room", "four");
    CHECK_EQ_UINT(r1.n, 3);
    CHECK_EQ_UINT(r2.n, 4);
    CHECK_EQ_STR(r2.got[3]->data, "four");
    /* Unsubscribing twice is harmless. */
    fr_hub_unsubscribe(&hub, &r1.sub);

    fr_hub_unsubscribe(&hub, &r2.sub);
    pub(&hub, "room", "five");
    CHECK_EQ_UINT(r2.n, 4);
    recorder_free(&r1);
    recorder_free(&r2);
    fr_hub_close(&hub);
}

static void test_deliver_may_unsubscribe_itself(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 0, 0, future_start());
    recorder_t a, b, c;
    recorder_init(&a, &hub);
    recorder_init(&b, &hub);
    recorder_init(&c, &hub);
    b.unsubscribe_on_first = 1;
    fr_hub_subscribe(&hub, &a.sub, "t");
    fr_hub_subscribe(&hub, &b.sub, "t");
    fr_hub_subscribe(&hub, &c.sub, "t");
    pub(&hub, "t", "1");
    CHECK_EQ_UINT(a.n, 1);
    CHECK_EQ_UINT(b.n, 1);
    CHECK_EQ_UINT(c.n, 1);
    pub(&hub, "t", "2");
    CHECK_EQ_UINT(a.n, 2);
    CHECK_EQ_UINT(b.n, 1);
    CHECK_EQ_UINT(c.n, 2);
    /* The last subscriber leaving from inside delivery, with replay off: the topic outlives the
     * walk over its subscribers and is forgotten afterwards. */
    fr_hub_unsubscribe(&hub, &a.sub);
    c.unsubscribe_on_first = 1;
    pub(&hub, "t", "3");
    CHECK_EQ_UINT(c.n, 3);
    CHECK(fr_hub_find(&hub, "t") == NULL);
    CHECK_EQ_UINT(hub.topics.count, 0);
    recorder_free(&a);
    recorder_free(&b);
    recorder_free(&c);
    fr_hub_close(&hub);
}

static void test_resume_ok(void) {
    fr_hub_t hub;
    uint64_t start = future_start();
    fr_hub_init(&hub, 1, 100, 0, start);

    /* A topic nobody has used: its position is a valid place to resume from. */
    fr_id_t fresh = fr_hub_position(&hub, "fresh");
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "fresh", fresh), FR_RESUME_OK);

    fr_id_t before = fr_hub_position(&hub, "t");
    fr_id_t e1 = pub(&hub, "t", "1");
    fr_id_t e2 = pub(&hub, "t", "2");
    fr_id_t e3 = pub(&hub, "t", "3");
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", before), FR_RESUME_OK);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e1), FR_RESUME_OK);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e2), FR_RESUME_OK);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e3), FR_RESUME_OK); /* the last id */
    fr_hub_close(&hub);
}

static void test_resume_invalid(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 100, 0, fr_now_ms());
    fr_id_t e1 = pub(&hub, "t", "1");
    spin_past(e1.ms);
    fr_id_t e2 = pub(&hub, "t", "2");
    REQUIRE(e2.ms > e1.ms);

    /* Ahead of the last id. */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){e2.ms, e2.seq + 1}), FR_RESUME_INVALID);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){e2.ms + 1, 0}), FR_RESUME_INVALID);
    /* Between two real ids, never issued. */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){e1.ms, e1.seq + 1}), FR_RESUME_INVALID);
    /* A topic that does not exist cannot have issued anything past the hub's floor. */
    fr_id_t pos = fr_hub_position(&hub, "nothing");
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "nothing", (fr_id_t){pos.ms, pos.seq + 1}),
                 FR_RESUME_INVALID);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "nothing", (fr_id_t){pos.ms + 10, 0}),
                 FR_RESUME_INVALID);
    /* The real ones still resume. */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e1), FR_RESUME_OK);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e2), FR_RESUME_OK);
    fr_hub_close(&hub);
}

static void test_resume_stale_after_eviction(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 3, 0, future_start());
    fr_id_t before = fr_hub_position(&hub, "t");
    fr_id_t e[5];
    for (int i = 0; i < 5; i++)
        e[i] = pub(&hub, "t", "x");
    /* The ring holds e3..e5; e1 and e2 are gone. */
    fr_topic_t *t = fr_hub_find(&hub, "t");
    REQUIRE(t != NULL);
    CHECK_EQ_UINT(t->ring.count, 3);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e[0]), FR_RESUME_STALE); /* e2 was lost */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", before), FR_RESUME_STALE);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e[1]), FR_RESUME_OK); /* everything after e2 held */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e[2]), FR_RESUME_OK);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", e[4]), FR_RESUME_OK);
    fr_hub_close(&hub);
}

static void test_resume_stale_before_start(void) {
    uint64_t start = 1700000000000ull;
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 100, 0, start);
    /* An id from before this process started, on a topic never seen. */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){start - 1, 5}), FR_RESUME_STALE);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){1, 0}), FR_RESUME_STALE);
    /* The start itself is the position of a fresh topic. */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){start, 0}), FR_RESUME_OK);
    /* And on a topic that has events now. */
    pub(&hub, "t", "x");
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){start - 1, 5}), FR_RESUME_STALE);
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", (fr_id_t){start, 0}), FR_RESUME_OK);
    fr_hub_close(&hub);
}

/* ---- replay ---- */

/* The events a resuming stream missed: exactly those after its id, oldest first, capped at
 * the newest `max`. */
static void test_events_after(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 100, 0, future_start());
    fr_id_t a1 = pub(&hub, "a", "a1");
    pub(&hub, "b", "b1");
    pub(&hub, "a", "a2");
    pub(&hub, "a", "a3");
    fr_event_t **evs;
    size_t n;

    fr_hub_events_after(&hub, "a", fr_hub_find(&hub, "a")->born, 100, &evs, &n);
    REQUIRE(n == 3);
    CHECK_EQ_STR(evs[0]->data, "a1");
    CHECK_EQ_STR(evs[1]->data, "a2");
    CHECK_EQ_STR(evs[2]->data, "a3");
    for (size_t i = 0; i < n; i++)
        fr_event_release(evs[i]);
    free(evs);

    fr_hub_events_after(&hub, "a", a1, 100, &evs, &n);
    REQUIRE(n == 2);
    CHECK_EQ_STR(evs[0]->data, "a2");
    CHECK_EQ_STR(evs[1]->data, "a3");
    for (size_t i = 0; i < n; i++)
        fr_event_release(evs[i]);
    free(evs);

    /* Capped: the newest ones, still oldest first. */
    fr_hub_events_after(&hub, "a", fr_hub_find(&hub, "a")->born, 1, &evs, &n);
    REQUIRE(n == 1);
    CHECK_EQ_STR(evs[0]->data, "a3");
    fr_event_release(evs[0]);
    free(evs);

    /* A topic that does not exist holds nothing. */
    fr_hub_events_after(&hub, "zzz", (fr_id_t){0, 0}, 100, &evs, &n);
    CHECK_EQ_UINT(n, 0);
    free(evs);
    fr_hub_close(&hub);
}

static void test_forget_and_recreate(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 100, 0, future_start());
    recorder_t r;
    recorder_init(&r, &hub);
    fr_hub_subscribe(&hub, &r.sub, "t");
    CHECK_EQ_UINT(hub.topics.count, 1);
    fr_hub_unsubscribe(&hub, &r.sub);
    /* No subscribers, nothing to replay: gone. */
    CHECK_EQ_UINT(hub.topics.count, 0);
    CHECK(fr_hub_find(&hub, "t") == NULL);
    fr_hub_close(&hub);

    /* With replay off, a topic with no subscribers is forgotten right after each publish. */
    fr_hub_init(&hub, 1, 0, 0, future_start());
    fr_id_t first = pub(&hub, "t", "1");
    CHECK_EQ_UINT(hub.topics.count, 0);
    CHECK(fr_hub_find(&hub, "t") == NULL);
    /* Its last id stays a valid resume point: nothing after it was lost. */
    CHECK_EQ_INT(fr_hub_check_resume(&hub, "t", first), FR_RESUME_OK);
    fr_id_t prev = first;
    for (int i = 0; i < 5; i++) {
        fr_id_t id = pub(&hub, "t", "again");
        if (!CHECK_EQ_INT(fr_id_cmp(id, prev), 1))
            printf("    recreated topic reissued %llu-%llu after %llu-%llu\n",
                   (unsigned long long)id.ms, (unsigned long long)id.seq,
                   (unsigned long long)prev.ms, (unsigned long long)prev.seq);
        prev = id;
    }
    /* A new topic also starts above every forgotten id. */
    fr_id_t other = pub(&hub, "u", "x");
    CHECK_EQ_INT(fr_id_cmp(other, prev), 1);
    fr_hub_close(&hub);

    /* A topic with events held is kept while nobody listens. */
    fr_hub_init(&hub, 1, 10, 0, future_start());
    recorder_init(&r, &hub);
    fr_hub_subscribe(&hub, &r.sub, "kept");
    pub(&hub, "kept", "x");
    fr_hub_unsubscribe(&hub, &r.sub);
    CHECK_EQ_UINT(hub.topics.count, 1);
    CHECK(fr_hub_find(&hub, "kept") != NULL);
    fr_hub_sweep(&hub); /* no time window: nothing expires */
    CHECK_EQ_UINT(hub.topics.count, 1);
    recorder_free(&r);
    fr_hub_close(&hub);
}

static void test_many_topics(void) {
    /* More topics than the initial bucket count: every one is still found. */
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 4, 0, future_start());
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "topic-%d", i);
        pub(&hub, name, "x");
    }
    CHECK_EQ_UINT(hub.topics.count, 300);
    int found = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "topic-%d", i);
        fr_topic_t *t = fr_hub_find(&hub, name);
        found += t != NULL && strcmp(t->name, name) == 0 && t->ring.count == 1;
    }
    CHECK_EQ_INT(found, 300);
    fr_hub_close(&hub);
}

static void test_publish_rejects(void) {
    fr_hub_t hub;
    fr_hub_init(&hub, 1, 100, 0, future_start());
    recorder_t r;
    recorder_init(&r, &hub);
    fr_hub_subscribe(&hub, &r.sub, "t");
    fr_id_t pos = fr_hub_position(&hub, "t");

    fr_id_t id = {123, 456};
    const char *err = NULL;
    CHECK_EQ_INT(fr_hub_publish(&hub, "t", NULL, "bad\xff", 4, FR_PRIO_NORMAL, 0, &id, &err), -1);
    CHECK(err != NULL);
    CHECK_CONTAINS(err, "UTF-8");
    err = NULL;
    CHECK_EQ_INT(fr_hub_publish(&hub, "t", "a\nb", "ok", 2, FR_PRIO_NORMAL, 0, &id, &err), -1);
    CHECK(err != NULL);
    err = NULL;
    CHECK_EQ_INT(fr_hub_publish(&hub, "x\ry", NULL, "ok", 2, FR_PRIO_NORMAL, 0, &id, &err), -1);
    CHECK(err != NULL);
    /* Nothing was published anywhere, and no topic was created for the bad name. */
    CHECK_EQ_UINT(r.n, 0);
    CHECK_EQ_UINT(hub.published, 0);
    CHECK_EQ_UINT(hub.topics.count, 1);
    CHECK_EQ_UINT(fr_hub_find(&hub, "t")->ring.count, 0);
    CHECK_EQ_INT(fr_id_cmp(fr_hub_position(&hub, "t"), pos), 0);
    fr_hub_unsubscribe(&hub, &r.sub);
    fr_hub_close(&hub);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_ids_increase_within_a_millisecond);
    FR_RUN(test_topics_have_their_own_sequence);
    FR_RUN(test_fan_out_waits_for_the_flush);
    FR_RUN(test_deliver_in_order_and_unsubscribe);
    FR_RUN(test_deliver_may_unsubscribe_itself);
    FR_RUN(test_resume_ok);
    FR_RUN(test_resume_invalid);
    FR_RUN(test_resume_stale_after_eviction);
    FR_RUN(test_resume_stale_before_start);
    FR_RUN(test_events_after);
    FR_RUN(test_forget_and_recreate);
    FR_RUN(test_many_topics);
    FR_RUN(test_publish_rejects);
    return FR_TEST_END();
}
