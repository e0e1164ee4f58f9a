/* Presence on Redis: who follows a topic across every node. Each node writes its own part for
 * every topic it follows into the topic's presence hash (fr:{topic}:p, a field per node, see
 * broker/redis_lib.c), where parts expire unless rewritten; a node that is asked about a topic
 * reads the merged answer every tick for as long as someone keeps asking, and answers from that
 * copy, so freshet.presence never waits for Redis. */
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define PRESENCE_TTL_MS 5000
#define PRESENCE_WATCH_MS 30000

/* A topic whose presence someone asked for: its merged answer, fetched every tick. */
typedef struct watch_s {
    char *topic;          /* owned */
    fr_presence_t cached; /* owned */
    int fetched;          /* cached holds an answer from Redis */
    uint64_t asked_ms;    /* monotonic: watches nobody asks about any more are dropped */
    fr_list_t link;       /* in r->watches */
} watch_t;

typedef struct {
    fr_redis_t *r;
    char *topic; /* owned */
} presence_fetch_t;

static watch_t *watch_find(fr_redis_t *r, const char *topic) {
    for (fr_list_t *l = fr_list_first(&r->watches); l; l = fr_list_next(&r->watches, l)) {
        watch_t *w = FR_LIST_ENTRY(l, watch_t, link);
        if (strcmp(w->topic, topic) == 0)
            return w;
    }
    return NULL;
}

static void watch_free(watch_t *w) {
    fr_list_remove(&w->link);
    fr_presence_free(&w->cached);
    free(w->topic);
    free(w);
}

static void on_presence(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    presence_fetch_t *pf = priv;
    redisReply *rep = reply;
    watch_t *w = pf->r->closing ? NULL : watch_find(pf->r, pf->topic);
    if (w && rep && rep->type == REDIS_REPLY_ARRAY) {
        fr_presence_t merged = {0};
        for (size_t i = 0; i < rep->elements; i++) {
            if (rep->element[i]->type == REDIS_REPLY_STRING)
                fr_presence_merge(&merged, rep->element[i]->str, rep->element[i]->len);
        }
        fr_presence_free(&w->cached);
        w->cached = merged;
        w->fetched = 1;
    }
    free(pf->topic);
    free(pf);
}

static void presence_fetch(fr_redis_t *r, const char *topic) {
    presence_fetch_t *pf = fr_malloc(sizeof *pf);
    pf->r = r;
    pf->topic = fr_strdup(topic);
    if (redisAsyncCommand(r->cmd, on_presence, pf, "FCALL freshet_presence_get 1 fr:{%s}:p",
                          topic) != REDIS_OK) {
        free(pf->topic);
        free(pf);
    }
}

/* Every second: this node writes its part for every topic it follows (every other second —
 * parts live 5 s) and reads the merged answer of topics someone asked about recently. */
void fr_redis_presence_tick(fr_redis_t *r, uint64_t now) {
    if (r->ticks++ % 2 == 0) {
        fr_htable_iter_t it;
        fr_htable_iter_init(&r->follows, &it);
        for (follow_t *f; (f = fr_redis_follow_of(fr_htable_iter_next(&it)));) {
            if (!f->wanted)
                continue;
            fr_presence_t mine;
            fr_presence_local(r->base.hub, f->topic, &mine);
            size_t len;
            char *part = fr_presence_encode(&mine, &len);
            redisAsyncCommand(r->cmd, NULL, NULL, "FCALL freshet_presence_put 1 fr:{%s}:p %s %b %d",
                              f->topic, r->node, part, len, PRESENCE_TTL_MS);
            free(part);
            fr_presence_free(&mine);
        }
    }
    for (fr_list_t *l = fr_list_first(&r->watches), *next; l; l = next) {
        next = fr_list_next(&r->watches, l);
        watch_t *w = FR_LIST_ENTRY(l, watch_t, link);
        if (now - w->asked_ms > PRESENCE_WATCH_MS)
            watch_free(w);
        else
            presence_fetch(r, w->topic);
    }
}

static void presence_copy(fr_presence_t *dst, const fr_presence_t *src) {
    memset(dst, 0, sizeof *dst);
    dst->count = src->count;
    dst->nodes = src->nodes;
    for (size_t i = 0; i < src->nids; i++)
        fr_presence_add_id(dst, src->ids[i]);
}

void fr_redis_presence(fr_broker_t *b, const char *topic, fr_presence_t *out) {
    fr_redis_t *r = (fr_redis_t *)b;
    watch_t *w = watch_find(r, topic);
    if (!w) {
        w = fr_calloc(1, sizeof *w);
        w->topic = fr_strdup(topic);
        fr_list_insert_head(&r->watches, &w->link);
        if (r->cmd_ready)
            presence_fetch(r, topic);
    }
    w->asked_ms = fr_mono_ms();
    if (w->fetched)
        presence_copy(out, &w->cached);
    else
        fr_presence_local(r->base.hub, topic, out);
}

void fr_redis_presence_drop(fr_redis_t *r, const char *topic) {
    if (r->cmd_ready)
        redisAsyncCommand(r->cmd, NULL, NULL, "FCALL freshet_presence_drop 1 fr:{%s}:p %s", topic,
                          r->node);
}

void fr_redis_presence_free(fr_redis_t *r) {
    for (fr_list_t *l; (l = fr_list_first(&r->watches));)
        watch_free(FR_LIST_ENTRY(l, watch_t, link));
}
