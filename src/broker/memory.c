#include "broker/memory.h"

#include <stdlib.h>

#include "base/util.h"

static void memory_publish(fr_broker_t *b, const fr_pub_t *p, fr_published_cb cb, void *ctx) {
    fr_id_t id = {0, 0};
    const char *err;
    if (fr_hub_publish(b->hub, p->topic, p->name, p->data, p->len, p->prio, p->json, &id, &err) <
        0) {
        cb(ctx, FR_PUB_INVALID, id, err);
        return;
    }
    cb(ctx, 0, id, NULL);
}

/* Positions and missed events of every topic; with subs, the subscriptions too, all under the
 * hub's lock: no event (from this worker or another) can fall between what was read and what
 * will be delivered live. */
static fr_join_t *memory_read(fr_broker_t *b, fr_sub_t *subs, char *const *topics,
                              const fr_id_t *after, size_t n, size_t max_events) {
    fr_join_t *res = fr_calloc(1, sizeof *res);
    res->ntopics = n;
    res->topics = fr_calloc(n ? n : 1, sizeof *res->topics);
    fr_hub_lock(b->hub);
    for (size_t i = 0; i < n; i++) {
        fr_join_topic_t *t = &res->topics[i];
        t->last = fr_hub_position(b->hub, topics[i]);
        if (after) {
            fr_resume_t r = fr_hub_check_resume(b->hub, topics[i], after[i]);
            t->status = r == FR_RESUME_OK      ? FR_JOIN_OK
                        : r == FR_RESUME_STALE ? FR_JOIN_STALE
                                               : FR_JOIN_INVALID;
            if (t->status == FR_JOIN_OK)
                fr_hub_events_after(b->hub, topics[i], after[i], max_events, &t->events,
                                    &t->nevents);
        }
        if (subs)
            fr_hub_subscribe(b->hub, &subs[i], topics[i]);
    }
    fr_hub_unlock(b->hub);
    return res;
}

static int memory_join(fr_broker_t *b, fr_sub_t *subs, char *const *topics, const fr_id_t *after,
                       size_t n, size_t max_events, fr_join_cb cb, void *ctx) {
    cb(ctx, memory_read(b, subs, topics, after, n, max_events));
    return 0;
}

static int memory_replay(fr_broker_t *b, char *const *topics, const fr_id_t *after, size_t n,
                         size_t max_events, fr_join_cb cb, void *ctx) {
    cb(ctx, memory_read(b, NULL, topics, after, n, max_events));
    return 0;
}

static fr_id_t memory_position(fr_broker_t *b, const char *topic) {
    return fr_hub_position(b->hub, topic);
}

static void memory_presence(fr_broker_t *b, const char *topic, fr_presence_t *out) {
    fr_presence_local(b->hub, topic, out);
}

static int memory_ready(const fr_broker_t *b) {
    (void)b;
    return 1;
}

static void memory_sweep(fr_broker_t *b) {
    fr_hub_sweep(b->hub);
}

static void memory_free(fr_broker_t *b) {
    free(b);
}

static const fr_broker_ops_t memory_ops = {
    .kind = "memory",
    .publish = memory_publish,
    .join = memory_join,
    .replay = memory_replay,
    .position = memory_position,
    .presence = memory_presence,
    .ready = memory_ready,
    .sweep = memory_sweep,
    .free = memory_free,
};

fr_broker_t *fr_memory_broker_new(fr_hub_t *hub, unsigned slot) {
    fr_broker_t *b = fr_calloc(1, sizeof *b);
    b->ops = &memory_ops;
    b->hub = hub;
    b->slot = slot;
    return b;
}
