/* JetStream API calls of the NATS broker, on libuv's thread pool: the library's calls block
 * until the answer is read, and the loop is what reads it. A job carries copies of all it
 * needs; its work function touches nothing else of freshet (events it builds are plain,
 * reference-counted memory), and its result goes back to the loop in the after-callback.
 *
 * Reads use Direct Get (the stream allows it): the topic's last event (last by subject), the
 * event a resume names (by sequence), and what follows it (next by subject, one at a time). */
#include "broker/nats_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "codec/nats.h"

char *fr_nats_subject(const fr_nats_t *n, char kind, const char *topic) {
    size_t tl = strlen(topic);
    size_t pl = strlen(n->prefix);
    char *s = fr_malloc(pl + 3 + FR_NATS_TOKEN_MAX(tl) + 1);
    memcpy(s, n->prefix, pl);
    s[pl] = '.';
    s[pl + 1] = kind;
    s[pl + 2] = '.';
    fr_nats_token_encode(topic, tl, s + pl + 3);
    return s;
}

/* ---- the stream's configuration --------------------------------------------------------- */

typedef struct {
    jsStreamConfig cfg; /* first: freed through it */
    jsRePublish rp;
    const char *subjects[1];
    char subject[96], source[96], dest[96], name[65];
} stream_config_t;

jsStreamConfig *fr_nats_stream_config(const fr_nats_t *n) {
    stream_config_t *c = fr_calloc(1, sizeof *c);
    jsStreamConfig_Init(&c->cfg);
    snprintf(c->name, sizeof c->name, "%s", n->url.stream);
    snprintf(c->subject, sizeof c->subject, "%s.s.*", n->prefix);
    snprintf(c->source, sizeof c->source, "%s.s.>", n->prefix);
    snprintf(c->dest, sizeof c->dest, "%s.l.>", n->prefix);
    c->subjects[0] = c->subject;
    c->cfg.Name = c->name;
    c->cfg.Subjects = c->subjects;
    c->cfg.SubjectsLen = 1;
    c->cfg.Storage = js_FileStorage;
    c->cfg.Replicas = n->url.replicas;
    /* One more than the window: the event just before the window stays as the boundary, so
     * a resume from it is still known to be exact (as on the other brokers). */
    c->cfg.MaxMsgsPerSubject = (int64_t)n->replay_events + 1;
    /* No max age: it would drop a quiet topic's last event too, and with it the only record of
     * the topic's newest id, so a resume from that id could not be told exact (the other
     * brokers answer it 200; JetStream 2.9 forgets a subject with its last message). Resumes
     * check the time window themselves, as Redis resumes do. */
    c->cfg.MaxAge = 0;
    c->cfg.Discard = js_DiscardOld;
    c->cfg.AllowDirect = true;
    c->rp.Source = c->source;
    c->rp.Destination = c->dest;
    c->cfg.RePublish = &c->rp;
    return &c->cfg;
}

void fr_nats_stream_config_free(jsStreamConfig *c) {
    free(c);
}

/* ---- events from messages --------------------------------------------------------------- */

uint64_t fr_nats_header_u64(natsMsg *m, const char *key) {
    const char *v = NULL;
    if (natsMsgHeader_Get(m, key, &v) != NATS_OK || !v)
        return 0;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end || end == v ? 0 : (uint64_t)x;
}

fr_event_t *fr_nats_event_from(natsMsg *m, const char *topic, uint64_t created_ms, uint64_t seq) {
    const char *name = NULL, *prio_s = NULL, *json = NULL;
    natsMsgHeader_Get(m, "Fr-Event", &name);
    natsMsgHeader_Get(m, "Fr-Priority", &prio_s);
    natsMsgHeader_Get(m, "Fr-Json", &json);
    fr_priority_t prio = FR_PRIO_NORMAL;
    if (prio_s && fr_priority_parse(prio_s, &prio) < 0)
        prio = FR_PRIO_NORMAL;
    uint64_t ms = fr_nats_header_u64(m, "Fr-Ms");
    if (!ms) {
        int64_t t = natsMsg_GetTime(m);
        ms = t > 0 ? (uint64_t)t / 1000000 : fr_now_ms();
    }
    const char *data = natsMsg_GetData(m);
    const char *err;
    fr_id_t id = {created_ms, seq};
    return fr_event_new(topic, id, name && *name ? name : NULL, data ? data : "",
                        (size_t)natsMsg_GetDataLength(m), prio, json && strcmp(json, "1") == 0,
                        ms, &err);
}

/* The stream sequence of a message Direct Get returned. */
static uint64_t msg_seq(natsMsg *m) {
    uint64_t s = fr_nats_header_u64(m, "Nats-Sequence");
    return s ? s : natsMsg_GetSequence(m);
}

static const char *msg_subject(natsMsg *m) {
    const char *v = NULL;
    if (natsMsgHeader_Get(m, "Nats-Subject", &v) == NATS_OK && v)
        return v;
    return natsMsg_GetSubject(m);
}

/* ---- jobs ------------------------------------------------------------------------------- */

njob_t *fr_nats_job_new(fr_nats_t *n, job_kind_t kind) {
    njob_t *j = fr_calloc(1, sizeof *j);
    j->kind = kind;
    j->n = n;
    j->js = n->js;
    snprintf(j->stream, sizeof j->stream, "%s", n->url.stream);
    j->created_ms = n->created_ms;
    j->replay_ms = n->replay_ms;
    j->max_events = n->replay_events;
    j->req.data = j;
    return j;
}

void fr_nats_job_topics(fr_nats_t *n, njob_t *j, char *const *topics, const fr_id_t *after,
                        size_t count) {
    j->n_topics = count;
    j->topics = fr_calloc(count ? count : 1, sizeof *j->topics);
    j->subjects = fr_calloc(count ? count : 1, sizeof *j->subjects);
    for (size_t i = 0; i < count; i++) {
        j->topics[i] = fr_strdup(topics[i]);
        j->subjects[i] = fr_nats_subject(n, 's', topics[i]);
    }
    if (after) {
        j->after = fr_calloc(count ? count : 1, sizeof *j->after);
        memcpy(j->after, after, count * sizeof *after);
    }
}

void fr_nats_job_free(njob_t *j) {
    for (size_t i = 0; i < j->n_topics; i++) {
        free(j->topics[i]);
        free(j->subjects[i]);
    }
    free(j->topics);
    free(j->subjects);
    free(j->after);
    if (j->res)
        fr_join_free(j->res);
    if (j->cfg)
        fr_nats_stream_config_free(j->cfg);
    free(j);
}

static void work_ensure(njob_t *j) {
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    natsStatus s = js_AddStream(&si, j->js, j->cfg, NULL, &code);
    if (s != NATS_OK && code == JSStreamNameExistErr) {
        /* It exists with another configuration (another window or replica count): this
         * node's settings win, as a Redis node's window does. */
        code = 0;
        s = js_UpdateStream(&si, j->js, j->cfg, NULL, &code);
    }
    if (s != NATS_OK || !si) {
        j->failed = 1;
        const char *why = nats_GetLastError(NULL);
        snprintf(j->err, sizeof j->err, "%s (JetStream error %d)",
                 why && *why ? why : natsStatus_GetText(s), (int)code);
        jsStreamInfo_Destroy(si);
        return;
    }
    j->created_ms = (uint64_t)(si->Created / 1000000);
    jsStreamInfo_Destroy(si);
}

/* Direct Get; 1 with *m, 0 when there is no such message, -1 when JetStream did not answer. */
static int direct_get(njob_t *j, uint64_t seq, const char *next_by, const char *last_by,
                      natsMsg **m) {
    jsDirectGetMsgOptions o;
    jsDirectGetMsgOptions_Init(&o);
    o.Sequence = seq;
    o.NextBySubject = next_by;
    o.LastBySubject = last_by;
    *m = NULL;
    natsStatus s = js_DirectGetMsg(m, j->js, j->stream, NULL, &o);
    if (s == NATS_OK)
        return 1;
    return s == NATS_NOT_FOUND ? 0 : -1;
}

/* The stream's last sequence over every topic; -1 when JetStream did not answer. */
static int stream_last(njob_t *j, uint64_t *last) {
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, j->js, j->stream, NULL, NULL) != NATS_OK || !si)
        return -1;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

/* One topic: its position and, with an id, whether a resume from it is exact and what follows
 * it. Returns -1 when JetStream did not answer.
 *
 * An id is <created>-<S>, S a stream sequence. Event ids have S on their own topic; the
 * position of a topic nothing was published on yet is the stream's last sequence then (on
 * another topic, or 0 in an empty stream). The stream has no max age, only a count limit per
 * topic, which drops the oldest first: the topic's last event is always held. A resume from S
 * is exact when S is that last event or later (nothing of the topic followed it: a quiet topic
 * resumes from its last id however long ago it was), or when S is held (then so is everything
 * of the topic after it) and the first event after it is within the time window (the window is
 * checked here, as the memory broker's ring would have expired it). An id past the stream's
 * last sequence was never issued. */
static int read_topic(njob_t *j, size_t i, fr_join_topic_t *t) {
    natsMsg *m = NULL;
    int got = direct_get(j, 0, NULL, j->subjects[i], &m);
    if (got < 0)
        return -1;
    uint64_t last = got ? msg_seq(m) : 0;
    natsMsg_Destroy(m);
    t->status = FR_JOIN_OK;
    uint64_t pos = last;
    if (!last && !j->refill) {
        /* Nothing held of this topic: its position is the stream's, so a resume from it knows
         * that everything after it is on hand. Read before looking at the topic again, so an
         * event of the topic stored in between is not taken as older than the position. */
        if (stream_last(j, &pos) < 0)
            return -1;
        got = direct_get(j, 0, NULL, j->subjects[i], &m);
        if (got < 0)
            return -1;
        if (got) {
            last = pos = msg_seq(m);
            natsMsg_Destroy(m);
        }
    }
    t->last = (fr_id_t){j->created_ms, pos};
    if (!j->after)
        return 0;
    fr_id_t x = j->after[i];
    if (x.ms != j->created_ms) {
        /* An id of an older stream (or another broker): those events are gone. An id from
         * after the stream's creation time was never issued. */
        t->status = x.ms < j->created_ms ? FR_JOIN_STALE : FR_JOIN_INVALID;
        return 0;
    }
    if (x.seq == last || x.seq == pos)
        return 0;
    if (j->refill && x.seq > last)
        return 0; /* nothing of the topic after what this node delivered */
    uint64_t cutoff = j->replay_ms ? fr_now_ms() - j->replay_ms : 0;
    int held = 0, mine = 0;
    if (x.seq > 0) {
        got = direct_get(j, x.seq, NULL, NULL, &m);
        if (got < 0)
            return -1;
        held = got;
        mine = got && strcmp(msg_subject(m), j->subjects[i]) == 0;
        natsMsg_Destroy(m);
    }
    if (x.seq > last) {
        /* Nothing of the topic after x: its last event is always held (the count limit drops
         * the oldest first), so this is a position, exact, unless the stream never reached x. */
        if (!held) {
            uint64_t sl;
            if (stream_last(j, &sl) < 0)
                return -1;
            if (x.seq > sl)
                t->status = FR_JOIN_INVALID;
        }
        return 0;
    }
    if (!held) {
        /* Dropped (events of the topic after it may have gone too), or never issued. */
        t->status = FR_JOIN_STALE;
        return 0;
    }
    size_t cap = 16;
    t->events = fr_calloc(cap, sizeof *t->events);
    uint64_t at = x.seq, first = 0;
    while (at < last) {
        got = direct_get(j, at + 1, j->subjects[i], NULL, &m);
        if (got < 0)
            return -1;
        if (!got)
            break;
        uint64_t seq = msg_seq(m);
        if (seq <= at) {
            natsMsg_Destroy(m);
            break;
        }
        at = seq;
        if (!first)
            first = seq;
        fr_event_t *ev = fr_nats_event_from(m, j->topics[i], j->created_ms, seq);
        natsMsg_Destroy(m);
        if (!ev)
            continue;
        if (t->nevents == 0 && cutoff && ev->published_at < cutoff && !j->refill) {
            fr_event_release(ev);
            t->status = FR_JOIN_STALE;
            break;
        }
        if (t->nevents == j->max_events) {
            fr_event_release(ev);
            t->status = FR_JOIN_STALE;
            break;
        }
        if (t->nevents == cap) {
            cap *= 2;
            t->events = fr_realloc(t->events, cap * sizeof *t->events);
        }
        t->events[t->nevents++] = ev;
    }
    if (t->status == FR_JOIN_OK && at < last)
        t->status = FR_JOIN_STALE; /* the topic's events ended before its last one: not exact */
    if (t->status == FR_JOIN_OK && first) {
        /* The walk reads one event at a time while the count limit may drop the topic's
         * oldest: next-by-subject would then step over what went. What the walk started from
         * (the id's own event, or the first of the topic after a position) still held
         * afterwards means nothing after it was dropped. */
        got = direct_get(j, mine ? x.seq : first, NULL, NULL, &m);
        if (got < 0)
            return -1;
        natsMsg_Destroy(m);
        if (!got)
            t->status = FR_JOIN_STALE;
    }
    if (at > t->last.seq)
        t->last.seq = at;
    if (t->status != FR_JOIN_OK) {
        for (size_t k = 0; k < t->nevents; k++)
            fr_event_release(t->events[k]);
        t->nevents = 0;
    }
    return 0;
}

static void work_read(njob_t *j) {
    fr_join_t *res = fr_calloc(1, sizeof *res);
    res->ntopics = j->n_topics;
    res->topics = fr_calloc(j->n_topics ? j->n_topics : 1, sizeof *res->topics);
    for (size_t i = 0; i < j->n_topics && !res->error; i++)
        if (read_topic(j, i, &res->topics[i]) < 0)
            res->error = 1;
    j->res = res;
}

static void on_work(uv_work_t *req) {
    njob_t *j = req->data;
    if (j->kind == JOB_CONNECT)
        fr_nats_connect_work(j);
    else if (j->kind == JOB_ENSURE)
        work_ensure(j);
    else
        work_read(j);
    /* The library keeps per-thread memory for errors; a pool thread lives on. */
    nats_ReleaseThreadMemory();
}

static void on_after_work(uv_work_t *req, int status) {
    njob_t *j = req->data;
    fr_nats_t *n = j->n;
    n->jobs--;
    if (status != 0 && j->kind == JOB_ENSURE) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "%s", uv_strerror(status));
    }
    fr_list_remove(&j->link);
    if (!j->orphaned)
        j->done(j);
    fr_nats_job_free(j);
    if (n->closing)
        fr_nats_finish_check(n);
}

void fr_nats_job_start(fr_nats_t *n, njob_t *j) {
    n->jobs++;
    fr_list_insert_head(&n->job_list, &j->link);
    uv_queue_work(n->loop, &j->req, on_work, on_after_work);
}
