/* The NATS broker (see broker/nats.h): its fr_broker_ops_t, creating and freeing it, the
 * connection and the bridge from the client library's threads, publishing and presence.
 * JetStream API calls are in broker/nats_read.c, the followed topics in broker/nats_follow.c. */
#include "broker/nats_private.h"

/* The adapter is a header of static functions: included once, here. */
#include <nats/adapters/libuv.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "codec/nats.h"

/* A publish JetStream has not acknowledged in this long is answered 503 (maybe stored). */
#define ACK_TIMEOUT_MS 5000
/* Publishes waiting for their PubAck at most; past it a publish is refused (503). */
#define MAX_IN_FLIGHT 65536
#define PRESENCE_WATCH_MS 30000

/* Whether any NATS broker was made (the library was opened). Set on the main thread while
 * workers are set up, read at exit. */
static int library_used;

/* ---- the bridge ------------------------------------------------------------------------- */

void fr_nats_bridge_push(fr_nats_bridge_t *br, nq_kind_t kind, natsMsg *msg) {
    nq_item_t *it = fr_malloc(sizeof *it);
    it->next = NULL;
    it->kind = kind;
    it->msg = msg;
    uv_mutex_lock(&br->mu);
    if (br->tail)
        br->tail->next = it;
    else
        br->head = it;
    br->tail = it;
    if (kind == NQ_CLOSED || kind == NQ_SUB_DONE)
        br->lib_refs--;
    /* Under the lock: once the loop sees lib_refs at 0 it closes `async`, and no send may
     * follow that. */
    uv_async_send(&br->async);
    uv_mutex_unlock(&br->mu);
}

static void on_lib_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure,
                       nq_kind_t kind) {
    (void)nc;
    (void)sub;
    fr_nats_bridge_push(closure, kind, msg);
}

static void on_live_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *cl) {
    on_lib_msg(nc, sub, msg, cl, NQ_LIVE);
}

static void on_ask_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *cl) {
    on_lib_msg(nc, sub, msg, cl, NQ_PRESENCE_ASK);
}

static void on_inbox_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *cl) {
    on_lib_msg(nc, sub, msg, cl, NQ_INBOX);
}

static void on_sub_complete(void *closure) {
    fr_nats_bridge_push(closure, NQ_SUB_DONE, NULL);
}

static void on_disconnected(natsConnection *nc, void *closure) {
    (void)nc;
    fr_nats_bridge_push(closure, NQ_DISCONNECTED, NULL);
}

static void on_reconnected(natsConnection *nc, void *closure) {
    (void)nc;
    fr_nats_bridge_push(closure, NQ_RECONNECTED, NULL);
}

static void on_closed(natsConnection *nc, void *closure) {
    (void)nc;
    fr_nats_bridge_push(closure, NQ_CLOSED, NULL);
}

natsSubscription *fr_nats_subscribe(fr_nats_t *n, const char *subject, nq_kind_t kind) {
    natsMsgHandler h = kind == NQ_LIVE ? on_live_msg : kind == NQ_INBOX ? on_inbox_msg : on_ask_msg;
    natsSubscription *sub = NULL;
    fr_nats_bridge_t *br = n->bridge;
    if (!n->nc || natsConnection_Subscribe(&sub, n->nc, subject, h, br) != NATS_OK)
        return NULL;
    uv_mutex_lock(&br->mu);
    br->lib_refs++;
    uv_mutex_unlock(&br->mu);
    if (natsSubscription_SetOnCompleteCB(sub, on_sub_complete, br) != NATS_OK) {
        /* Without the callback the reference is never given back: the broker then waits for
         * the connection's close alone, which completes every subscription. */
        uv_mutex_lock(&br->mu);
        br->lib_refs--;
        uv_mutex_unlock(&br->mu);
    }
    /* The library's default (65536 messages) drops past it; a gap is read back from the
     * stream, but the loop empties the queue quicker than that anyway. */
    natsSubscription_SetPendingLimits(sub, 1 << 20, 256 << 20);
    return sub;
}

void fr_nats_unsubscribe(natsSubscription **sub) {
    if (!*sub)
        return;
    natsSubscription_Unsubscribe(*sub);
    natsSubscription_Destroy(*sub);
    *sub = NULL;
}

int fr_nats_usable(const fr_nats_t *n) {
    return n->nc && n->connected && n->stream_ready && !n->closing &&
           natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED;
}

/* ---- publishing ------------------------------------------------------------------------- */

static npub_t *pub_find(fr_nats_t *n, uint64_t key) {
    fr_hnode_t *h = fr_htable_find(&n->pubs, &key, sizeof key);
    return h ? FR_HTABLE_ENTRY(h, npub_t, hnode) : NULL;
}

static void pub_answer(fr_nats_t *n, npub_t *p, int status, uint64_t seq, const char *err) {
    fr_htable_remove(&n->pubs, &p->hnode);
    fr_id_t id = {n->created_ms, seq};
    if (status != 0)
        id = (fr_id_t){0, 0};
    p->cb(p->ctx, status, id, err);
    free(p);
}

static void nats_publish(fr_broker_t *b, const fr_pub_t *ev, fr_published_cb cb, void *ctx) {
    fr_nats_t *n = (fr_nats_t *)b;
    fr_id_t none = {0, 0};
    const char *err;
    if (fr_event_validate(ev->topic, ev->name, ev->data, ev->len, &err) < 0) {
        cb(ctx, FR_PUB_INVALID, none, err);
        return;
    }
    if (!fr_nats_usable(n) || n->pubs.count >= MAX_IN_FLIGHT) {
        cb(ctx, FR_PUB_UNAVAILABLE, none, "the broker is unavailable");
        return;
    }
    char *subject = fr_nats_subject(n, 's', ev->topic);
    char reply[96];
    uint64_t key = ++n->next_pub;
    snprintf(reply, sizeof reply, "%s.a.%llu", n->inbox, (unsigned long long)key);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, reply, ev->data, (int)ev->len);
    free(subject);
    char ms[24];
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)fr_now_ms());
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Fr-Ms", ms);
    if (s == NATS_OK && ev->name && *ev->name)
        s = natsMsgHeader_Set(m, "Fr-Event", ev->name);
    if (s == NATS_OK && ev->prio != FR_PRIO_NORMAL)
        s = natsMsgHeader_Set(m, "Fr-Priority", fr_priority_name(ev->prio));
    if (s == NATS_OK && ev->json)
        s = natsMsgHeader_Set(m, "Fr-Json", "1");
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(n->nc, m);
    natsMsg_Destroy(m);
    if (s != NATS_OK) {
        cb(ctx, FR_PUB_UNAVAILABLE, none, "the broker is unavailable");
        return;
    }
    npub_t *p = fr_calloc(1, sizeof *p);
    p->key = key;
    p->cb = cb;
    p->ctx = ctx;
    p->sent_ms = fr_mono_ms();
    fr_htable_insert(&n->pubs, &p->hnode, &p->key, sizeof p->key);
}

/* "<inbox>.a.<n>": a PubAck. */
static void on_puback(fr_nats_t *n, uint64_t key, natsMsg *msg) {
    npub_t *p = pub_find(n, key);
    if (!p)
        return; /* answered already (timed out) */
    if (natsMsg_IsNoResponders(msg)) {
        pub_answer(n, p, FR_PUB_UNAVAILABLE, 0, "JetStream is unavailable (no responders)");
        return;
    }
    uint64_t seq = 0;
    int code = 0;
    char desc[200];
    int rc = fr_nats_puback_parse(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &seq,
                                  &code, desc, sizeof desc);
    if (rc == 0) {
        pub_answer(n, p, 0, seq, NULL);
    } else if (rc == 1) {
        char why[260];
        snprintf(why, sizeof why, "JetStream refused the event: %s", desc);
        pub_answer(n, p, code == 400 ? FR_PUB_INVALID : FR_PUB_UNAVAILABLE, 0, why);
    } else {
        pub_answer(n, p, FR_PUB_UNCERTAIN, 0,
                   "unexpected answer from JetStream: the event may have been stored");
    }
}

static void pubs_expire(fr_nats_t *n, uint64_t now, int all) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&n->pubs, &it);
    for (fr_hnode_t *h; (h = fr_htable_iter_next(&it));) {
        npub_t *p = FR_HTABLE_ENTRY(h, npub_t, hnode);
        if (all || now - p->sent_ms >= ACK_TIMEOUT_MS)
            pub_answer(n, p, FR_PUB_UNCERTAIN, 0,
                       "JetStream did not acknowledge the event in time: it may have been "
                       "stored");
    }
}

/* ---- presence --------------------------------------------------------------------------- */

static nwatch_t *watch_find(fr_nats_t *n, const char *topic) {
    for (fr_list_t *l = fr_list_first(&n->watches); l; l = fr_list_next(&n->watches, l)) {
        nwatch_t *w = FR_LIST_ENTRY(l, nwatch_t, link);
        if (strcmp(w->topic, topic) == 0)
            return w;
    }
    return NULL;
}

static void watch_free(nwatch_t *w) {
    fr_list_remove(&w->link);
    fr_presence_free(&w->cached);
    fr_presence_free(&w->collect);
    free(w->topic);
    free(w);
}

/* Asks every node following the topic for its part; the answers of one round become the
 * cached answer when the next round starts (a second later). */
static void watch_ask(fr_nats_t *n, nwatch_t *w) {
    /* A new id per round: a late answer to the round before is not counted twice. */
    w->id = ++n->next_watch;
    char reply[112];
    snprintf(reply, sizeof reply, "%s.p.%llu", n->inbox, (unsigned long long)w->id);
    char *subject = fr_nats_subject(n, 'p', w->topic);
    natsConnection_PublishRequest(n->nc, subject, reply, "", 0);
    free(subject);
}

static void presence_tick(fr_nats_t *n, uint64_t now) {
    for (fr_list_t *l = fr_list_first(&n->watches), *next; l; l = next) {
        next = fr_list_next(&n->watches, l);
        nwatch_t *w = FR_LIST_ENTRY(l, nwatch_t, link);
        if (now - w->asked_ms > PRESENCE_WATCH_MS) {
            watch_free(w);
            continue;
        }
        if (!fr_nats_usable(n))
            continue;
        fr_presence_free(&w->cached);
        w->cached = w->collect;
        memset(&w->collect, 0, sizeof w->collect);
        w->fetched = 1;
        watch_ask(n, w);
    }
}

/* "<inbox>.p.<watch id>": one node's part. */
static void on_presence_part(fr_nats_t *n, uint64_t id, natsMsg *msg) {
    for (fr_list_t *l = fr_list_first(&n->watches); l; l = fr_list_next(&n->watches, l)) {
        nwatch_t *w = FR_LIST_ENTRY(l, nwatch_t, link);
        if (w->id == id) {
            /* Counts the node too. */
            fr_presence_merge(&w->collect, natsMsg_GetData(msg),
                              (size_t)natsMsg_GetDataLength(msg));
            return;
        }
    }
}

static void nats_presence(fr_broker_t *b, const char *topic, fr_presence_t *out) {
    fr_nats_t *n = (fr_nats_t *)b;
    nwatch_t *w = watch_find(n, topic);
    if (!w) {
        w = fr_calloc(1, sizeof *w);
        w->topic = fr_strdup(topic);
        fr_list_insert_head(&n->watches, &w->link);
        if (fr_nats_usable(n))
            watch_ask(n, w);
    }
    w->asked_ms = fr_mono_ms();
    if (w->fetched)
        fr_presence_copy(out, &w->cached);
    else
        fr_presence_local(n->base.hub, topic, out);
}

/* ---- what the bridge brings ------------------------------------------------------------- */

static void on_inbox(fr_nats_t *n, natsMsg *msg) {
    const char *subj = natsMsg_GetSubject(msg);
    size_t il = strlen(n->inbox);
    if (strncmp(subj, n->inbox, il) != 0 || subj[il] != '.' || !subj[il + 1] || subj[il + 2] != '.')
        return;
    char kind = subj[il + 1];
    char *end;
    unsigned long long key = strtoull(subj + il + 3, &end, 10);
    if (*end)
        return;
    if (kind == 'a')
        on_puback(n, key, msg);
    else if (kind == 'p')
        on_presence_part(n, key, msg);
}

static void ensure_stream(fr_nats_t *n);
static void maybe_finish(fr_nats_t *n);

static void on_bridge_closed(uv_handle_t *h) {
    fr_nats_bridge_t *br = h->data;
    /* Library threads are done with it: their last push happened before lib_refs reached 0. */
    for (nq_item_t *it = br->head, *next; it; it = next) {
        next = it->next;
        if (it->msg)
            natsMsg_Destroy(it->msg);
        free(it);
    }
    uv_mutex_destroy(&br->mu);
    free(br);
}

static void on_bridge(uv_async_t *h) {
    fr_nats_bridge_t *br = h->data;
    uv_mutex_lock(&br->mu);
    nq_item_t *items = br->head;
    br->head = br->tail = NULL;
    unsigned refs = br->lib_refs;
    nattach_t *attach = br->attach;
    br->attach = NULL;
    uv_mutex_unlock(&br->mu);
    if (attach) {
        /* A pool thread waits inside natsConnection_Connect for this, even when the broker is
         * closing (the connection is closed once the connect returns). */
        attach->status = natsLibuv_Attach(attach->user, h->loop, attach->nc, attach->sock);
        uv_sem_post(&attach->done);
    }
    fr_nats_t *n = br->n;
    for (nq_item_t *it = items, *next; it; it = next) {
        next = it->next;
        if (n && !n->closing) {
            switch (it->kind) {
            case NQ_LIVE:
                fr_nats_follow_live(n, it->msg);
                it->msg = NULL;
                break;
            case NQ_PRESENCE_ASK:
                fr_nats_follow_presence_ask(n, it->msg);
                it->msg = NULL;
                break;
            case NQ_INBOX:
                on_inbox(n, it->msg);
                break;
            case NQ_DISCONNECTED:
                if (n->connected)
                    fr_warn("nats: disconnected; reconnecting");
                n->connected = 0;
                break;
            case NQ_RECONNECTED: {
                if (!n->nc)
                    break; /* the first connect's answer is still on its way (on_connected) */
                char url[256] = "";
                natsConnection_GetConnectedUrl(n->nc, url, sizeof url);
                fr_info("nats: reconnected to %s", url);
                n->connected = 1;
                n->reconnects++;
                /* Publishes go on meanwhile (JetStream answers them, or they time out); the
                 * check tells whether the stream is new (a server that lost its store), then
                 * every followed topic is filled from the last event this node delivered. */
                n->need_ensure = 1;
                ensure_stream(n);
                break;
            }
            case NQ_CLOSED:
                n->connected = 0;
                break;
            case NQ_SUB_DONE:
                break;
            }
        }
        if (it->msg)
            natsMsg_Destroy(it->msg);
        free(it);
    }
    if (n && n->closing)
        maybe_finish(n);
    else if (!n && refs == 0 && !br->closing) {
        br->closing = 1;
        uv_close((uv_handle_t *)&br->async, on_bridge_closed);
    }
}

/* ---- the connection --------------------------------------------------------------------- */

static void on_ensured(njob_t *j) {
    fr_nats_t *n = j->n;
    n->ensuring = 0;
    if (n->closing)
        return;
    if (j->failed) {
        if (n->ensure_failures++ % 10 == 0)
            fr_warn("nats: cannot create or update stream '%s': %s", n->url.stream, j->err);
        return; /* the tick tries again */
    }
    n->ensure_failures = 0;
    n->need_ensure = 0;
    uint64_t was = n->created_ms;
    n->created_ms = j->created_ms;
    n->stream_ready = 1;
    if (was && was != n->created_ms)
        fr_warn("nats: stream '%s' was created anew: events of followed topics may be lost",
                n->url.stream);
    fr_nats_follow_refill_all(n);
}

static void ensure_stream(fr_nats_t *n) {
    if (n->ensuring || !n->js || n->closing)
        return;
    n->ensuring = 1;
    njob_t *j = fr_nats_job_new(n, JOB_ENSURE);
    j->cfg = fr_nats_stream_config(n);
    j->done = on_ensured;
    fr_nats_job_start(n, j);
}

/* The first connection is made on a pool thread: natsConnection_Connect blocks until the
 * server answered (up to the 1 s timeout per server of the list), which the worker's loop must
 * not. (The library's retry-on-failed-connect option would not help: its first attempt blocks
 * the same way.) The adapter attaches a connection's socket to the loop, and its first attach
 * must run on the loop's thread: on_attach asks the loop through the bridge and waits. Later
 * attaches (reconnects) are scheduled by the adapter itself. */
static _Thread_local fr_nats_bridge_t *connecting;

static natsStatus on_attach(void **user, void *loop, natsConnection *nc, natsSock sock) {
    fr_nats_bridge_t *br = connecting;
    if (*user || !br)
        return natsLibuv_Attach(user, loop, nc, sock);
    nattach_t a = {.user = user, .nc = nc, .sock = sock, .status = NATS_ERR};
    if (uv_sem_init(&a.done, 0) != 0)
        return NATS_ERR;
    uv_mutex_lock(&br->mu);
    br->attach = &a;
    uv_async_send(&br->async);
    uv_mutex_unlock(&br->mu);
    uv_sem_wait(&a.done);
    uv_sem_destroy(&a.done);
    return a.status;
}

void fr_nats_connect_work(njob_t *j) {
    fr_nats_bridge_t *br = j->ctx;
    connecting = br;
    j->status = natsConnection_Connect(&j->nc, j->opts);
    connecting = NULL;
    if (j->status == NATS_OK) {
        uv_mutex_lock(&br->mu);
        br->lib_refs++; /* given back by the closed callback */
        uv_mutex_unlock(&br->mu);
    }
}

static void on_connected(njob_t *j) {
    fr_nats_t *n = j->n;
    n->connecting = 0;
    if (j->status != NATS_OK) {
        unsigned f = n->connect_failures < 5 ? n->connect_failures : 5;
        n->connect_failures++;
        n->next_connect = fr_mono_ms() + (200u << f);
        if (n->connect_failures == 1 || n->connect_failures % 30 == 0)
            fr_warn("nats: cannot connect to %s: %s", n->url.servers[0],
                    natsStatus_GetText(j->status));
        return;
    }
    natsConnection *nc = j->nc;
    j->nc = NULL;
    n->nc = nc;
    if (n->closing) {
        natsConnection_Close(nc); /* freed once its closed callback came (maybe_finish) */
        return;
    }
    /* It may have dropped already: then the reconnected callback follows. */
    n->connected = natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
    n->connect_failures = 0;
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    fr_info("nats: connected to %s", url);
    natsInbox *inbox = NULL;
    natsInbox_Create(&inbox);
    snprintf(n->inbox, sizeof n->inbox, "%s", inbox ? (const char *)inbox : "_INBOX.freshet");
    natsInbox_Destroy(inbox);
    char sub[80];
    snprintf(sub, sizeof sub, "%s.>", n->inbox);
    n->inbox_sub = fr_nats_subscribe(n, sub, NQ_INBOX);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    natsConnection_JetStream(&n->js, nc, &jo);
    ensure_stream(n);
}

static void connect_start(fr_nats_t *n) {
    /* The adapter must know which thread runs this loop before the first attach. */
    natsLibuv_SetThreadLocalLoop(n->loop);
    n->connecting = 1;
    njob_t *j = fr_nats_job_new(n, JOB_CONNECT);
    j->opts = n->opts;
    j->ctx = n->bridge;
    j->done = on_connected;
    fr_nats_job_start(n, j);
}

static void on_tick(uv_timer_t *t) {
    fr_nats_t *n = t->data;
    uint64_t now = fr_mono_ms();
    if (!n->nc && !n->connecting && now >= n->next_connect)
        connect_start(n);
    if (n->nc && n->connected && (!n->stream_ready || n->need_ensure))
        ensure_stream(n);
    pubs_expire(n, now, 0);
    fr_nats_follow_tick(n, now);
    presence_tick(n, now);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static const fr_broker_ops_t nats_ops;

fr_broker_t *fr_nats_broker_new(uv_loop_t *loop, fr_hub_t *hub, const char *url,
                                size_t replay_events, uint64_t replay_ms, fr_metrics_t *metrics,
                                char *err, size_t errlen) {
    fr_nats_t *n = fr_calloc(1, sizeof *n);
    if (fr_nats_url_parse(url, &n->url, err, errlen) < 0) {
        free(n);
        return NULL;
    }
    natsLibuv_Init();
    library_used = 1;
    if (natsOptions_Create(&n->opts) != NATS_OK) {
        snprintf(err, errlen, "broker: the NATS client library cannot start");
        fr_nats_url_free(&n->url);
        free(n);
        return NULL;
    }
    n->base.ops = &nats_ops;
    n->base.hub = hub;
    n->loop = loop;
    n->replay_events = replay_events;
    n->replay_ms = replay_ms;
    n->metrics = metrics;
    snprintf(n->prefix, sizeof n->prefix, "fr.%s", n->url.stream);
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        uint64_t x = fr_now_ms() ^ (uint64_t)getpid();
        memcpy(rnd, &x, sizeof rnd);
    }
    for (int i = 0; i < 8; i++)
        snprintf(n->node + 2 * i, 3, "%02x", rnd[i]);
    fr_htable_init(&n->follows);
    fr_htable_init(&n->pubs);
    fr_list_init(&n->watches);
    fr_list_init(&n->job_list);
    fr_nats_bridge_t *br = fr_calloc(1, sizeof *br);
    uv_mutex_init(&br->mu);
    uv_async_init(loop, &br->async, on_bridge);
    br->async.data = br;
    br->n = n;
    n->bridge = br;

    char name[40];
    snprintf(name, sizeof name, "freshet-%s", n->node);
    natsOptions *o = n->opts;
    natsOptions_SetServers(o, (const char **)n->url.servers, (int)n->url.nservers);
    natsOptions_SetName(o, name);
    natsOptions_SetEventLoop(o, loop, on_attach, natsLibuv_Read, natsLibuv_Write,
                             natsLibuv_Detach);
    natsOptions_UseGlobalMessageDelivery(o, true);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 100);
    natsOptions_SetReconnectJitter(o, 100, 100);
    natsOptions_SetTimeout(o, 1000);
    natsOptions_SetPingInterval(o, 2000);
    natsOptions_SetMaxPingsOut(o, 2);
    natsOptions_SetFailRequestsOnDisconnect(o, true);
    natsOptions_SetDisconnectedCB(o, on_disconnected, br);
    natsOptions_SetReconnectedCB(o, on_reconnected, br);
    natsOptions_SetClosedCB(o, on_closed, br);

    uv_timer_init(loop, &n->tick);
    n->tick.data = n;
    n->tick_open = 1;
    /* The first connect starts once the worker's loop runs (on_tick: the adapter must learn
     * the loop's thread first); then once a second the tick keeps things going. */
    uv_timer_start(&n->tick, on_tick, 0, 1000);
    hub->on_follow = fr_nats_on_follow;
    hub->follow_ctx = n;
    return &n->base;
}

void fr_nats_finish_check(fr_nats_t *n) {
    maybe_finish(n);
}

static void on_tick_closed(uv_handle_t *h) {
    fr_nats_t *n = h->data;
    n->tick_open = 0;
    maybe_finish(n);
}

/* Frees the broker once nothing can call into it: the tick closed, no job in flight, and the
 * library done with the connection (closed callback and every subscription completed). The
 * bridge outlives it until the library's last reference is back. */
static void maybe_finish(fr_nats_t *n) {
    fr_nats_bridge_t *br = n->bridge;
    uv_mutex_lock(&br->mu);
    unsigned refs = br->lib_refs;
    uv_mutex_unlock(&br->mu);
    if (n->tick_open || n->jobs > 0 || refs > 0)
        return;
    br->n = NULL;
    if (n->js)
        jsCtx_Destroy(n->js);
    if (n->nc)
        natsConnection_Destroy(n->nc);
    natsOptions_Destroy(n->opts);
    fr_nats_follow_free_all(n);
    fr_htable_close(&n->follows);
    fr_htable_close(&n->pubs);
    for (fr_list_t *l; (l = fr_list_first(&n->watches));)
        watch_free(FR_LIST_ENTRY(l, nwatch_t, link));
    fr_nats_url_free(&n->url);
    free(n);
    br->closing = 1;
    uv_close((uv_handle_t *)&br->async, on_bridge_closed);
}

static void nats_free(fr_broker_t *b) {
    fr_nats_t *n = (fr_nats_t *)b;
    if (n->closing)
        return;
    n->base.hub->on_follow = NULL;
    n->base.hub->follow_ctx = NULL;
    n->closing = 1;
    pubs_expire(n, 0, 1);
    /* Joins and locates in flight hear of the failure now, as the other brokers' do: their
     * callers may be gone by the time the thread pool hands the jobs back. */
    for (fr_list_t *l = fr_list_first(&n->job_list); l; l = fr_list_next(&n->job_list, l)) {
        njob_t *j = FR_LIST_ENTRY(l, njob_t, link);
        if (j->orphaned || j->kind == JOB_CONNECT)
            continue; /* a connect's answer is needed: its connection must be closed */
        j->orphaned = 1;
        if (j->cb) {
            fr_join_t *res = fr_calloc(1, sizeof *res);
            res->error = 1;
            j->cb(j->ctx, res);
        } else if (j->locate_cb) {
            j->locate_cb(j->ctx, FR_PUB_UNAVAILABLE, (fr_id_t){0, 0}, "the broker is closing");
        }
    }
    fr_nats_unsubscribe(&n->inbox_sub);
    fr_htable_iter_t it;
    fr_htable_iter_init(&n->follows, &it);
    for (fr_hnode_t *h; (h = fr_htable_iter_next(&it));) {
        nfollow_t *f = FR_HTABLE_ENTRY(h, nfollow_t, hnode);
        fr_nats_unsubscribe(&f->live);
        fr_nats_unsubscribe(&f->ask);
    }
    if (n->nc)
        natsConnection_Close(n->nc);
    uv_timer_stop(&n->tick);
    uv_close((uv_handle_t *)&n->tick, on_tick_closed);
}

static int nats_ready(const fr_broker_t *b) {
    return fr_nats_usable((const fr_nats_t *)b);
}

static size_t nats_health(const fr_broker_t *b, char *buf, size_t cap) {
    const fr_nats_t *n = (const fr_nats_t *)b;
    char url[256] = "";
    if (n->nc && n->connected)
        natsConnection_GetConnectedUrl(n->nc, url, sizeof url);
    /* The URL may hold credentials: only host:port after them. */
    const char *at = strrchr(url, '@'), *shown = at ? at + 1 : url;
    if (!at && strncmp(url, "nats://", 7) == 0)
        shown = url + 7;
    int len = snprintf(buf, cap,
                       ",\"server\":\"%s\",\"stream\":\"%s\",\"replicas\":%u,"
                       "\"stream_ready\":%s,\"reconnects\":%lu,\"fills\":%lu,\"gaps\":%lu,"
                       "\"lost\":%lu,\"in_flight\":%zu",
                       shown, n->url.stream, n->url.replicas, n->stream_ready ? "true" : "false",
                       n->reconnects, n->fills_done, n->gaps, n->lost, n->pubs.count);
    return len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
}

/* ---- joins ------------------------------------------------------------------------------ */

static void on_join_read(njob_t *j) {
    fr_nats_t *n = j->n;
    fr_join_t *res = j->res;
    j->res = NULL;
    if (!res) {
        res = fr_calloc(1, sizeof *res);
        res->error = 1;
    }
    if (!n->closing && !res->error)
        fr_nats_follow_joined(n, j, res);
    j->cb(j->ctx, res);
}

static int nats_join(fr_broker_t *b, fr_sub_t *subs, char *const *topics, const fr_id_t *after,
                     size_t count, size_t max_events, fr_join_cb cb, void *ctx) {
    fr_nats_t *n = (fr_nats_t *)b;
    if (!fr_nats_usable(n))
        return -1;
    /* The first subscriber of a topic subscribes this node to its live subject (on_follow)
     * before the read is sent on the same connection: the server has the subscription before
     * it answers the read. What the cluster routes late shows as a gap (Nats-Last-Sequence)
     * on the next live event, and the recheck a second later. */
    for (size_t i = 0; i < count; i++)
        fr_hub_subscribe(b->hub, &subs[i], topics[i]);
    njob_t *j = fr_nats_job_new(n, JOB_READ);
    fr_nats_job_topics(n, j, topics, after, count);
    j->max_events = max_events < n->replay_events ? max_events : n->replay_events;
    j->cb = cb;
    j->ctx = ctx;
    j->done = on_join_read;
    fr_nats_job_start(n, j);
    return 0;
}

static fr_id_t nats_position(fr_broker_t *b, const char *topic) {
    fr_nats_t *n = (fr_nats_t *)b;
    fr_id_t pos = fr_hub_position(b->hub, topic);
    if (pos.ms < n->created_ms)
        pos = (fr_id_t){n->created_ms, 0};
    return pos;
}

static void on_located(njob_t *j) {
    fr_id_t none = {0, 0};
    if (!j->res || j->res->error || j->res->ntopics != 1)
        j->locate_cb(j->ctx, FR_PUB_UNAVAILABLE, none, "the broker is unavailable");
    else
        j->locate_cb(j->ctx, 0, j->res->topics[0].last, NULL);
}

static void nats_locate(fr_broker_t *b, const char *topic, fr_published_cb cb, void *ctx) {
    fr_nats_t *n = (fr_nats_t *)b;
    if (!fr_nats_usable(n)) {
        cb(ctx, FR_PUB_UNAVAILABLE, (fr_id_t){0, 0}, "the broker is unavailable");
        return;
    }
    njob_t *j = fr_nats_job_new(n, JOB_LOCATE);
    char *const topics[] = {(char *)topic};
    fr_nats_job_topics(n, j, topics, NULL, 1);
    j->locate_cb = cb;
    j->ctx = ctx;
    j->done = on_located;
    fr_nats_job_start(n, j);
}

static void nats_sweep(fr_broker_t *b) {
    fr_hub_sweep(b->hub);
}

static const fr_broker_ops_t nats_ops = {
    .kind = "nats",
    .publish = nats_publish,
    .join = nats_join,
    .replay = NULL, /* an open stream resumes by reconnecting */
    .position = nats_position,
    .locate = nats_locate,
    .presence = nats_presence,
    .ready = nats_ready,
    .health = nats_health,
    .sweep = nats_sweep,
    .free = nats_free,
};

int fr_nats_url_check(const char *url, char *err, size_t errlen) {
    fr_nats_url_t u;
    if (fr_nats_url_parse(url, &u, err, errlen) < 0)
        return -1;
    fr_nats_url_free(&u);
    return 0;
}

int fr_nats_url_is(const char *url) {
    return strncmp(url, "nats://", 7) == 0;
}

void fr_nats_shutdown(void) {
    if (library_used)
        nats_CloseAndWait(2000);
}
