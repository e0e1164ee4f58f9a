/* The topics this node follows on NATS. A topic is followed while a local stream subscribes to
 * it in the hub (the hub's on_follow), and a little longer: unsubscribing at once would race a
 * quick re-follow. A followed topic has two core subscriptions: its live subject, where
 * JetStream republishes each stored event, and its presence subject, where other nodes ask who
 * follows it.
 *
 * Every live event names the sequence of the topic's previous event (Nats-Last-Sequence).
 * Events are delivered only in an unbroken chain from `last`, the newest event this node
 * delivered: when one names a previous event this node never delivered, the gap is read from
 * the stream (a fill) and the live events wait behind it. A fill also runs after every
 * reconnect, and once shortly after a topic is first followed (the cluster may route its
 * subject here a little after the subscription) unless a live event arrived first. When the
 * stream no longer holds the events of a gap, the hub is told the topic was lost
 * (fr_hub_lose): its streams come back through Last-Event-ID and get 416 or reset. */
#include "broker/nats_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "codec/nats.h"

#define UNFOLLOW_AFTER_MS 5000
#define RECHECK_AFTER_MS 1000
/* Live events held behind a fill at most; past it they are dropped and read by the next
 * fill instead. */
#define MAX_HELD 10000

static nfollow_t *follow_of(fr_hnode_t *h) {
    return h ? FR_HTABLE_ENTRY(h, nfollow_t, hnode) : NULL;
}

static nfollow_t *follow_find(fr_nats_t *n, const char *topic) {
    return follow_of(fr_htable_find(&n->follows, topic, strlen(topic)));
}

static void drop_held(nfollow_t *f) {
    for (size_t i = 0; i < f->nheld; i++)
        natsMsg_Destroy(f->held[i]);
    free(f->held);
    f->held = NULL;
    f->nheld = 0;
}

static void hold(nfollow_t *f, natsMsg *m) {
    if (f->nheld >= MAX_HELD) {
        drop_held(f);
        f->fill_again = 1;
    }
    if (f->nheld % 64 == 0)
        f->held = fr_realloc(f->held, (f->nheld + 64) * sizeof *f->held);
    f->held[f->nheld++] = m;
}

static void follow_free(fr_nats_t *n, nfollow_t *f) {
    fr_htable_remove(&n->follows, &f->hnode);
    fr_nats_unsubscribe(&f->live);
    fr_nats_unsubscribe(&f->ask);
    drop_held(f);
    free(f->topic);
    free(f->token);
    free(f);
}

static void subscribe(fr_nats_t *n, nfollow_t *f) {
    if (f->live || !n->nc)
        return;
    char *live = fr_nats_subject(n, 'l', f->topic), *ask = fr_nats_subject(n, 'p', f->topic);
    f->live = fr_nats_subscribe(n, live, NQ_LIVE);
    f->ask = fr_nats_subscribe(n, ask, NQ_PRESENCE_ASK);
    free(live);
    free(ask);
    f->recheck_at = fr_mono_ms() + RECHECK_AFTER_MS;
}

void fr_nats_on_follow(void *ctx, const char *topic, int follow) {
    fr_nats_t *n = ctx;
    nfollow_t *f = follow_find(n, topic);
    if (!f) {
        if (!follow)
            return;
        f = fr_calloc(1, sizeof *f);
        size_t len = strlen(topic);
        f->topic = fr_strndup(topic, len);
        f->token = fr_malloc(FR_NATS_TOKEN_MAX(len) + 1);
        fr_nats_token_encode(topic, len, f->token);
        fr_htable_insert(&n->follows, &f->hnode, f->topic, len);
    }
    if (!follow) {
        f->wanted = 0;
        f->unwanted_since = fr_mono_ms();
        return;
    }
    f->wanted = 1;
    subscribe(n, f);
}

/* ---- delivering ------------------------------------------------------------------------- */

static void fill(fr_nats_t *n, nfollow_t *f);

/* One live event in the chain: delivered, skipped (delivered already), or it shows a gap. Takes
 * m. Returns 0 when the caller may go on with the next held event, -1 when a fill started. */
static int deliver_live(fr_nats_t *n, nfollow_t *f, natsMsg *m) {
    uint64_t seq = fr_nats_header_u64(m, "Nats-Sequence");
    uint64_t prev = fr_nats_header_u64(m, "Nats-Last-Sequence");
    if (seq == 0 || seq <= f->last) {
        natsMsg_Destroy(m);
        return 0;
    }
    if (prev > f->last) {
        n->gaps++;
        hold(f, m);
        fill(n, f);
        return -1;
    }
    fr_event_t *ev = fr_nats_event_from(m, f->topic, n->created_ms, seq);
    natsMsg_Destroy(m);
    f->last = seq;
    /* A live event in an unbroken chain shows the subject reaches this node: the recheck is not
     * needed. Skipping it matters under load, since a fill holds every live event of the topic
     * until it answers, and the held ones then reach the streams in one burst that can exceed
     * their queues (limits: the tier's queue) and cut streams that were keeping up. */
    f->recheck_at = 0;
    if (!ev) {
        fr_warn("nats: dropping an event of '%s' that freshet cannot deliver", f->topic);
        return 0;
    }
    fr_hub_deliver(n->base.hub, ev);
    fr_event_release(ev);
    return 0;
}

/* Hands the held events on in order, until one shows a gap (a fill starts, the rest wait). */
static void release_held(fr_nats_t *n, nfollow_t *f) {
    while (f->nheld && f->known && !f->filling) {
        natsMsg *m = f->held[0];
        memmove(f->held, f->held + 1, (f->nheld - 1) * sizeof *f->held);
        f->nheld--;
        if (deliver_live(n, f, m) < 0) {
            /* deliver_live held m again at the end: move it back to the front. */
            memmove(f->held + 1, f->held, (f->nheld - 1) * sizeof *f->held);
            f->held[0] = m;
            return;
        }
    }
    if (f->fill_again && f->known && !f->filling) {
        f->fill_again = 0;
        fill(n, f);
    }
}

void fr_nats_follow_live(fr_nats_t *n, natsMsg *msg) {
    const char *subj = natsMsg_GetSubject(msg);
    size_t pl = strlen(n->prefix);
    if (strncmp(subj, n->prefix, pl) != 0 || strncmp(subj + pl, ".l.", 3) != 0) {
        natsMsg_Destroy(msg);
        return;
    }
    const char *token = subj + pl + 3;
    size_t tl = strlen(token);
    char stack[512];
    char *topic = tl < sizeof stack ? stack : fr_malloc(tl + 1);
    nfollow_t *f = NULL;
    if (fr_nats_token_decode(token, tl, topic) > 0)
        f = follow_find(n, topic);
    if (topic != stack)
        free(topic);
    if (!f || !f->live) {
        natsMsg_Destroy(msg);
        return;
    }
    if (!f->known || f->filling || f->nheld) {
        hold(f, msg);
        return;
    }
    deliver_live(n, f, msg);
}

/* ---- fills ------------------------------------------------------------------------------ */

static void on_filled(njob_t *j) {
    fr_nats_t *n = j->n;
    nfollow_t *f = n->closing ? NULL : follow_find(n, j->topics[0]);
    if (!f || f->fill_gen != j->fill_gen)
        return;
    f->filling = 0;
    fr_join_t *res = j->res;
    if (!res || res->error || res->ntopics != 1) {
        /* JetStream did not answer: the held events go (the next fill reads them), and the
         * fill runs again at the next tick or reconnect. */
        drop_held(f);
        f->recheck_at = fr_mono_ms() + RECHECK_AFTER_MS;
        return;
    }
    fr_join_topic_t *t = &res->topics[0];
    n->fills_done++;
    if (t->status == FR_JOIN_OK) {
        for (size_t k = 0; k < t->nevents; k++) {
            fr_hub_deliver(n->base.hub, t->events[k]);
            f->last = t->events[k]->id.seq;
        }
    } else {
        n->lost++;
        fr_warn("nats: events of '%s' are gone from the stream (aged out, past the window, or "
                "the stream is new); its streams end and resume through Last-Event-ID",
                f->topic);
        fr_hub_lose(n->base.hub, f->topic);
    }
    if (t->last.seq > f->last || t->status != FR_JOIN_OK)
        f->last = t->last.seq;
    if (t->status != FR_JOIN_OK)
        f->chain_from = f->last;
    f->known = 1;
    release_held(n, f);
}

/* Reads what the stream holds of the topic after `last` (and its position). */
static void fill(fr_nats_t *n, nfollow_t *f) {
    if (f->filling || !fr_nats_usable(n))
        return;
    f->filling = 1;
    f->recheck_at = 0;
    f->fill_gen = ++n->fills;
    njob_t *j = fr_nats_job_new(n, JOB_READ);
    char *const topics[] = {f->topic};
    fr_id_t after = {n->created_ms, f->last};
    fr_nats_job_topics(n, j, topics, &after, 1);
    j->refill = 1;
    j->fill_gen = f->fill_gen;
    j->done = on_filled;
    fr_nats_job_start(n, j);
}

void fr_nats_follow_joined(fr_nats_t *n, const njob_t *j, fr_join_t *res) {
    for (size_t i = 0; i < j->n_topics; i++) {
        nfollow_t *f = follow_find(n, j->topics[i]);
        fr_join_topic_t *t = &res->topics[i];
        if (!f)
            continue;
        if (f->known) {
            /* Another join made the follow known from a later position: the events between
             * this one's and it never reached the hub. */
            if (t->status != FR_JOIN_OK || t->last.seq >= f->chain_from)
                continue;
            if (!j->after) {
                t->last.seq = f->chain_from; /* a fresh stream starts there: before it opens */
            } else {
                fr_warn("nats: a resume of '%s' raced another join; it is told to start over",
                        f->topic);
                t->status = FR_JOIN_STALE;
                for (size_t k = 0; k < t->nevents; k++)
                    fr_event_release(t->events[k]);
                t->nevents = 0;
            }
            continue;
        }
        f->known = 1;
        f->last = t->last.seq;
        /* Other joins of the topic may still be in flight with earlier positions: their
         * streams need the live events held since the subscription, not just those after this
         * join's position. They go to the hub from the first held one on (a stream drops what
         * is not after its own position); its previous event starts the chain. */
        uint64_t prev = f->nheld ? fr_nats_header_u64(f->held[0], "Nats-Last-Sequence") : 0;
        if (f->nheld && prev < f->last)
            f->last = prev;
        f->chain_from = f->last;
        if (!f->filling)
            release_held(n, f);
    }
}

void fr_nats_follow_refill_all(fr_nats_t *n) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&n->follows, &it);
    for (nfollow_t *f; (f = follow_of(fr_htable_iter_next(&it)));) {
        if (!f->live)
            subscribe(n, f); /* the first connection came after the follow */
        if (!f->wanted || !f->known)
            continue;
        f->filling = 0; /* a fill of the old connection is void */
        drop_held(f);
        fill(n, f);
    }
}

/* ---- presence --------------------------------------------------------------------------- */

void fr_nats_follow_presence_ask(fr_nats_t *n, natsMsg *msg) {
    const char *subj = natsMsg_GetSubject(msg), *reply = natsMsg_GetReply(msg);
    size_t pl = strlen(n->prefix);
    if (reply && strncmp(subj, n->prefix, pl) == 0 && strncmp(subj + pl, ".p.", 3) == 0) {
        const char *token = subj + pl + 3;
        size_t tl = strlen(token);
        char *topic = fr_malloc(tl + 1);
        if (fr_nats_token_decode(token, tl, topic) > 0) {
            nfollow_t *f = follow_find(n, topic);
            if (f && f->wanted) {
                fr_presence_t mine;
                fr_presence_local(n->base.hub, topic, &mine);
                size_t len;
                char *part = fr_presence_encode(&mine, &len);
                natsConnection_Publish(n->nc, reply, part, (int)len);
                free(part);
                fr_presence_free(&mine);
            }
        }
        free(topic);
    }
    natsMsg_Destroy(msg);
}

/* ---- upkeep ----------------------------------------------------------------------------- */

void fr_nats_follow_tick(fr_nats_t *n, uint64_t now) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&n->follows, &it);
    for (nfollow_t *f; (f = follow_of(fr_htable_iter_next(&it)));) {
        if (!f->wanted) {
            if (now - f->unwanted_since >= UNFOLLOW_AFTER_MS && !f->filling)
                follow_free(n, f);
            continue;
        }
        if (f->recheck_at && now >= f->recheck_at && f->known && !f->filling)
            fill(n, f);
    }
}

void fr_nats_follow_free_all(fr_nats_t *n) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&n->follows, &it);
    for (nfollow_t *f; (f = follow_of(fr_htable_iter_next(&it)));)
        follow_free(n, f);
}
