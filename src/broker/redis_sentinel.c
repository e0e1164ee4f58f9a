/* Where the primary is, according to the Sentinels (broker = "redis-sentinel://…"). hiredis has
 * no Sentinel support; this is the little a node needs, on the same loop and adapter as its
 * other connections:
 *
 *   queries   SENTINEL MASTER <name> to one Sentinel at a time, over a kept connection: its
 *             address, and the configuration epoch that says which answer is newer. Asked at
 *             start, every few seconds (a missed notification must not leave the node on a
 *             demoted primary), and whenever a connection to the primary is due again. A
 *             Sentinel that does not answer within a second, or does not know the master, is
 *             left for the next one in the URL's list.
 *   +switch-master  one subscribed connection to one Sentinel: a failover it announces moves
 *             the node at once, without waiting for the next question.
 *
 * Every answer goes to fr_redis_conn_primary (redis_conn.c), which moves both connections when
 * the address changed and connects those that wait for an address. An answer older than one
 * already followed (a lower epoch: a Sentinel that has not heard of the failover yet) is
 * ignored. */
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#define ASK_EVERY_MS 2000
#define ANSWER_TIMEOUT_MS 1000
#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 1000

static void on_timer(uv_timer_t *t);

static const fr_redis_addr_t *sentinel_at(const fr_redis_t *r, size_t i) {
    return &r->url.sentinels[i % r->url.nsentinels];
}

/* ---- queries ------------------------------------------------------------------------------ */

static void q_close(fr_redis_t *r) {
    redisAsyncContext *ac = r->sentinel.q;
    if (!ac)
        return;
    r->sentinel.q = NULL;
    ac->data = NULL; /* its callbacks (NULL replies now) and its disconnect see nothing */
    redisAsyncFree(ac);
}

/* The question failed: the next one goes to the next Sentinel, after a pause that grows while
 * they keep failing. */
static void ask_failed(fr_redis_t *r, const char *why) {
    fr_redis_sentinel_t *st = &r->sentinel;
    const fr_redis_addr_t *a = sentinel_at(r, st->at);
    if (st->failures % r->url.nsentinels == 0)
        fr_warn("redis: Sentinel %s:%d: %s; asking the next one", a->host, a->port, why);
    st->asking = 0;
    q_close(r);
    st->at = (st->at + 1) % r->url.nsentinels;
    unsigned d = RETRY_BASE_MS << (st->failures > 4 ? 4 : st->failures);
    st->failures++;
    uv_timer_start(&st->timer, on_timer, d > RETRY_CAP_MS ? RETRY_CAP_MS : d, 0);
}

static const char *field_str(const redisReply *rep, const char *name) {
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0)
            return v->str;
    }
    return NULL;
}

static void on_answer(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing)
        return;
    fr_redis_sentinel_t *st = &r->sentinel;
    uv_timer_stop(&st->timer);
    if (!rep) {
        /* The connection went (hiredis is freeing it): forget it, do not free it again. */
        st->q = NULL;
        ac->data = NULL;
        ask_failed(r, "connection lost");
        return;
    }
    st->asking = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[300];
        snprintf(why, sizeof why, "'%.200s' (does it monitor '%s'?)", rep->str, r->url.master);
        ask_failed(r, why);
        return;
    }
    const char *ip = rep->type == REDIS_REPLY_ARRAY ? field_str(rep, "ip") : NULL;
    const char *port = rep->type == REDIS_REPLY_ARRAY ? field_str(rep, "port") : NULL;
    const char *epoch = rep->type == REDIS_REPLY_ARRAY ? field_str(rep, "config-epoch") : NULL;
    long p = port ? strtol(port, NULL, 10) : 0;
    if (!ip || p <= 0 || p > 65535 || strlen(ip) >= sizeof r->primary.host) {
        ask_failed(r, "unexpected answer to SENTINEL MASTER");
        return;
    }
    st->failures = 0;
    uint64_t e = epoch ? strtoull(epoch, NULL, 10) : 0;
    if (e < st->epoch || (st->epoch_unknown && e == st->epoch)) {
        /* This Sentinel has not heard of the newest failover yet: ask another next time. */
        fr_debug("redis: Sentinel %s:%d is behind (epoch %llu); ignoring its answer",
                 sentinel_at(r, st->at)->host, sentinel_at(r, st->at)->port, (unsigned long long)e);
        st->at = (st->at + 1) % r->url.nsentinels;
        return;
    }
    st->epoch = e;
    st->epoch_unknown = 0;
    fr_redis_conn_primary(r, ip, (int)p);
}

static void on_q_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing || status == REDIS_OK)
        return;
    /* hiredis frees a context whose connect failed, answering its commands with NULL first:
     * on_answer has run already and moved on. */
    if (r->sentinel.q == ac)
        r->sentinel.q = NULL;
}

static void on_q_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (r && r->sentinel.q == ac)
        r->sentinel.q = NULL;
}

void fr_redis_sentinel_ask(fr_redis_t *r) {
    fr_redis_sentinel_t *st = &r->sentinel;
    if (!r->url.sentinel || r->closing || st->asking)
        return;
    if (!st->q) {
        st->q = fr_redis_connect(r, sentinel_at(r, st->at), "sentinel");
        if (!st->q) {
            ask_failed(r, "cannot connect");
            return;
        }
        redisAsyncSetConnectCallback(st->q, on_q_connected);
        redisAsyncSetDisconnectCallback(st->q, on_q_disconnected);
    }
    st->asking = 1;
    st->asked_ms = fr_mono_ms();
    if (redisAsyncCommand(st->q, on_answer, NULL, "SENTINEL MASTER %s", r->url.master) !=
        REDIS_OK) {
        ask_failed(r, "cannot send the question");
        return;
    }
    uv_timer_start(&st->timer, on_timer, ANSWER_TIMEOUT_MS, 0);
}

/* The answer's deadline, or the pause after a failed question. */
static void on_timer(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->closing)
        return;
    if (r->sentinel.asking) {
        char why[64];
        snprintf(why, sizeof why, "no answer within %d ms", ANSWER_TIMEOUT_MS);
        ask_failed(r, why);
        return;
    }
    fr_redis_sentinel_ask(r);
}

/* ---- +switch-master ------------------------------------------------------------------------ */

static void s_close(fr_redis_t *r) {
    redisAsyncContext *ac = r->sentinel.s;
    if (!ac)
        return;
    r->sentinel.s = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* "<master> <old ip> <old port> <new ip> <new port>" */
static void on_switch(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[2]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") != 0)
        return;
    char name[256], oldip[256], newip[256];
    int oldport, newport;
    if (sscanf(rep->element[2]->str, "%255s %255s %d %255s %d", name, oldip, &oldport, newip,
               &newport) != 5 ||
        strcmp(name, r->url.master) != 0 || newport <= 0 || newport > 65535)
        return;
    fr_redis_sentinel_t *st = &r->sentinel;
    fr_info("redis: Sentinel: +switch-master %s %s:%d -> %s:%d", name, oldip, oldport, newip,
            newport);
    /* A failover raised the epoch: answers of the old one are stale from now on. The same
     * Sentinel is asked next, to learn the new epoch. */
    st->epoch_unknown = 1;
    st->at = st->sub_at;
    fr_redis_conn_primary(r, newip, newport);
    fr_redis_sentinel_ask(r);
}

static void on_s_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing || status == REDIS_OK)
        return;
    if (r->sentinel.s == ac) {
        r->sentinel.s = NULL;
        r->sentinel.sub_at = (r->sentinel.sub_at + 1) % r->url.nsentinels;
    }
}

static void on_s_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (!r || r->sentinel.s != ac)
        return;
    r->sentinel.s = NULL;
    r->sentinel.sub_at = (r->sentinel.sub_at + 1) % r->url.nsentinels;
}

static void s_connect(fr_redis_t *r) {
    fr_redis_sentinel_t *st = &r->sentinel;
    st->s = fr_redis_connect(r, sentinel_at(r, st->sub_at), "sentinel-sub");
    if (!st->s) {
        st->sub_at = (st->sub_at + 1) % r->url.nsentinels;
        return;
    }
    redisAsyncSetConnectCallback(st->s, on_s_connected);
    redisAsyncSetDisconnectCallback(st->s, on_s_disconnected);
    redisAsyncCommand(st->s, on_switch, NULL, "SUBSCRIBE +switch-master");
}

/* ---- upkeep -------------------------------------------------------------------------------- */

void fr_redis_sentinel_tick(fr_redis_t *r, uint64_t now) {
    fr_redis_sentinel_t *st = &r->sentinel;
    if (r->closing)
        return;
    if (!st->s)
        s_connect(r); /* at most once a second, through the Sentinels in turn */
    int waiting = (r->cmd_wants_addr && !r->cmd) || (r->sub_wants_addr && !r->sub);
    if (!st->asking && !uv_is_active((uv_handle_t *)&st->timer) &&
        (waiting || now - st->asked_ms >= ASK_EVERY_MS))
        fr_redis_sentinel_ask(r);
}

void fr_redis_sentinel_stop(fr_redis_t *r) {
    q_close(r);
    s_close(r);
    r->sentinel.asking = 0;
}
