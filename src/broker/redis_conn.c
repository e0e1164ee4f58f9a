/* The Redis broker's two connections per worker, one for commands and one in subscribe mode,
 * on the worker's loop: connecting (with a deadline per attempt), reconnecting with backoff and
 * jitter, a PING a second that drops a command connection which stopped answering, a probe
 * every few seconds that proves the subscriber still hears what is published, and failovers:
 * a primary that stops being one (READONLY, LOADING, ROLE) or moves (a Sentinel says so) makes
 * the node drop both connections and connect where the primary is now. What a connection
 * coming back or going away means for follows and joins is redis_follow.c's; asking the
 * Sentinels is redis_sentinel.c's.
 *
 *   down ──retry timer (backoff)──► redis://: connect
 *                                  redis-sentinel://: ask a Sentinel ─answer─► connect there
 *   connecting ──► (redis-sentinel://: ROLE must say master) ──► ready
 *   ready ──EOF, error, PING unanswered, probe lost, READONLY/LOADING──► down
 *   any ──a Sentinel names another primary──► both dropped, both connect there now */
#include "broker/redis_io.h"
#include "broker/redis_private.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 5000
#define PING_EVERY_MS 1000
#define PING_DEAD_MS 3000
/* A connect that neither succeeds nor fails (a host that drops packets) gets a deadline. */
#define CONNECT_TIMEOUT_MS 1000
/* The subscriber's probe: one every PROBE_EVERY_MS; it fails when its message has not come
 * back PROBE_TIMEOUT_MS after Redis ran the PUBLISH (or the PUBLISH reached no subscriber). */
#define PROBE_EVERY_MS 2000
#define PROBE_TIMEOUT_MS 2000

static void cmd_connect(fr_redis_t *r);
static void sub_connect(fr_redis_t *r);
static void on_cmd_retry(uv_timer_t *t);
static void on_sub_retry(uv_timer_t *t);

/* The publishes of this iteration become their calls first, right before the command
 * connection writes (hiredis' request to write them then asks for nothing more). */
static void before_write(redisAsyncContext *ac) {
    fr_redis_t *r = ac->data;
    if (r && ac == r->cmd && r->nbatches)
        fr_redis_publish_flush(r);
}

/* ---- connecting ----------------------------------------------------------------------------- */

redisAsyncContext *fr_redis_connect(fr_redis_t *r, const fr_redis_addr_t *addr,
                                    const char *role) {
    redisAsyncContext *ac;
    if (!addr && r->url.unix_path) {
        ac = redisAsyncConnectUnix(r->url.unix_path);
    } else {
        const fr_redis_addr_t *a = addr ? addr : &r->primary;
        ac = redisAsyncConnect(a->host, a->port);
    }
    if (!ac)
        return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    if (fr_redis_io_attach(ac, r->loop, before_write) < 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    /* Sent as soon as the connection is up, before anything else. A Sentinel without a
     * password answers AUTH with an error, which is ignored like every reply without a
     * callback. */
    if (r->url.password) {
        if (r->url.user)
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", r->url.user, r->url.password);
        else
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->url.password);
    }
    /* Names the connection in CLIENT LIST (where an operator, or a test, looks for it). */
    redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME freshet-%s-%s", r->node, role);
    return ac;
}

void fr_redis_conn_want_write(fr_redis_t *r) {
    if (r->cmd)
        fr_redis_io_want_write(r->cmd);
}

static unsigned backoff_ms(unsigned attempt) {
    unsigned d = RETRY_BASE_MS << (attempt > 6 ? 6 : attempt);
    if (d > RETRY_CAP_MS)
        d = RETRY_CAP_MS;
    return d * 3 / 4 + (unsigned)rand() % (d / 2 + 1);
}

static const char *where(const fr_redis_t *r, char *buf, size_t cap) {
    if (r->url.unix_path)
        snprintf(buf, cap, "%s", r->url.unix_path);
    else
        snprintf(buf, cap, "%s:%d", r->primary.host, r->primary.port);
    return buf;
}

/* 1 when a ROLE reply says master; 0 for a replica or a Sentinel; -1 when it says nothing
 * (an error: a user that may not run ROLE is taken at its word and relies on READONLY). */
static int role_is_master(const redisReply *rep) {
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return -1;
    return strcmp(rep->element[0]->str, "master") == 0;
}

static void publish_gauges(fr_redis_t *r) {
    if (!r->metrics)
        return;
    __atomic_store_n(&r->metrics->redis_primary_up, (unsigned long)r->cmd_ready,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&r->metrics->redis_sub_live,
                     (unsigned long)(r->sub_ready && r->probe_subscribed), __ATOMIC_RELAXED);
}

/* ---- the subscriber connection ------------------------------------------------------------ */

/* The subscriber is down and its backoff is over: connect (redis://) or first ask a Sentinel
 * where to (the answer calls fr_redis_conn_primary, which connects it). */
static void sub_due(fr_redis_t *r) {
    if (r->url.sentinel) {
        r->sub_wants_addr = 1;
        fr_redis_sentinel_ask(r);
    } else {
        sub_connect(r);
    }
}

static void sub_retry_later(fr_redis_t *r) {
    uv_timer_start(&r->sub_retry, on_sub_retry, backoff_ms(r->sub_attempt++), 0);
}

static void on_sub_retry(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->sub_connecting) {
        r->sub_connecting = 0;
        redisAsyncContext *ac = r->sub;
        r->sub = NULL;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        sub_retry_later(r);
        return;
    }
    sub_due(r);
}

static void on_probe_reply(redisAsyncContext *ac, void *reply, void *priv);

/* The subscriber is usable: subscribe again to what this node follows, and to the probe. */
static void sub_set_ready(fr_redis_t *r) {
    r->sub_ready = 1;
    r->sub_attempt = 0;
    r->probe_subscribed = 0;
    r->probe_seq = 0;
    r->probe_ok = fr_mono_ms(); /* the first probe is due one interval from now */
    r->sub_since = r->probe_ok;
    char buf[300];
    fr_info("redis: subscriber connected to %s", where(r, buf, sizeof buf));
    redisAsyncCommand(r->sub, on_probe_reply, NULL, "SUBSCRIBE %s", r->probe_channel);
    fr_redis_follow_resubscribe(r);
}

/* A connection's ROLE named a replica: a failover happened under this node. */
static void role_failover(fr_redis_t *r) {
    char buf[300], why[400];
    snprintf(why, sizeof why, "%s is not the primary (ROLE)", where(r, buf, sizeof buf));
    fr_redis_conn_failover(r, why);
}

static void on_sub_role(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    if (!r || r->closing || !reply || !r->sub_role)
        return;
    r->sub_role = 0;
    int master = role_is_master(reply);
    if (master == 0) {
        role_failover(r);
        return;
    }
    sub_set_ready(r);
}

static void on_sub_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing)
        return;
    r->sub_connecting = 0;
    uv_timer_stop(&r->sub_retry);
    if (status != REDIS_OK) {
        r->sub = NULL;
        sub_retry_later(r);
        return;
    }
    if (r->url.sentinel) {
        /* Only a primary will do: a replica would deliver late or not at all. */
        r->sub_role = 1;
        redisAsyncCommand(r->sub, on_sub_role, NULL, "ROLE");
        return;
    }
    sub_set_ready(r);
}

static void on_sub_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (!r)
        return;
    if (r->cluster && !r->closing)
        fr_redis_cluster_stale(r->cluster); /* a primary that died: its replica may take over */
    int was_ready = r->sub_ready;
    r->sub = NULL;
    r->sub_ready = 0;
    r->sub_role = 0;
    r->probe_subscribed = 0;
    r->probe_seq = 0;
    publish_gauges(r);
    fr_redis_follow_fail_waiters(r);
    if (r->closing)
        return;
    if (was_ready && r->metrics)
        FR_BUMP(r->metrics->redis_sub_losses, 1);
    fr_warn("redis: subscriber connection lost; reconnecting");
    sub_retry_later(r);
}

/* A cluster shard's subscriber reads every reply itself (hiredis 0.14 does not know sharded
 * pub/sub): the probe's, the topics', and errors, which for SSUBSCRIBE mean the slot moved. */
static void on_sub_raw(redisAsyncContext *ac, redisReply *rep) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing || ac != r->sub)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (strncmp(rep->str, "MOVED ", 6) == 0 || strncmp(rep->str, "ASK ", 4) == 0) {
            fr_redis_cluster_moved(r->cluster, r, rep->str);
        } else {
            fr_warn("redis: the subscriber of %s:%d got '%.200s'", r->primary.host,
                    r->primary.port, rep->str);
            fr_redis_cluster_stale(r->cluster);
        }
        return;
    }
    on_probe_reply(ac, rep, NULL);
    if (ac->data == r && r->sub == ac)
        fr_redis_follow_on_reply(ac, rep, NULL);
}

static void sub_connect(fr_redis_t *r) {
    r->sub_wants_addr = 0;
    if (r->closing || r->sub)
        return;
    r->sub = fr_redis_connect(r, NULL, "sub");
    if (!r->sub) {
        sub_retry_later(r);
        return;
    }
    if (r->cluster)
        fr_redis_io_raw(r->sub, on_sub_raw);
    redisAsyncSetConnectCallback(r->sub, on_sub_connected);
    redisAsyncSetDisconnectCallback(r->sub, on_sub_disconnected);
    r->sub_connecting = 1;
    uv_timer_start(&r->sub_retry, on_sub_retry, CONNECT_TIMEOUT_MS, 0);
}

/* Drops the subscriber (not from inside its own callbacks: use fr_redis_conn_failover). */
static void sub_drop(fr_redis_t *r) {
    redisAsyncContext *ac = r->sub;
    if (!ac)
        return;
    if (r->sub_connecting) {
        r->sub_connecting = 0;
        r->sub = NULL;
        ac->data = NULL;
        uv_timer_stop(&r->sub_retry);
        redisAsyncFree(ac);
        sub_retry_later(r);
        return;
    }
    redisAsyncFree(ac); /* on_sub_disconnected runs, and schedules the retry */
}

/* ---- the command connection --------------------------------------------------------------- */

static void cmd_due(fr_redis_t *r) {
    if (r->url.sentinel) {
        r->cmd_wants_addr = 1;
        fr_redis_sentinel_ask(r);
    } else {
        cmd_connect(r);
    }
}

static void cmd_retry_later(fr_redis_t *r) {
    uv_timer_start(&r->cmd_retry, on_cmd_retry, backoff_ms(r->cmd_attempt++), 0);
}

static void on_cmd_retry(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->cmd_connecting) {
        r->cmd_connecting = 0;
        redisAsyncContext *ac = r->cmd;
        r->cmd = NULL;
        if (ac) {
            ac->data = NULL;
            redisAsyncFree(ac);
        }
        cmd_retry_later(r);
        return;
    }
    cmd_due(r);
}

static void on_library_loaded(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing || !rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (fr_redis_conn_check_reply(r, rep))
            return;
        fr_error("redis: cannot load the freshet functions: %s", rep->str);
        redisAsyncDisconnect(ac);
        return;
    }
    r->cmd_ready = 1;
    r->cmd_attempt = 0;
    r->ping_pending = 0;
    publish_gauges(r);
    fr_redis_follow_refill_pending(r);
    char buf[300];
    fr_info("redis: connected to %s, functions loaded", where(r, buf, sizeof buf));
}

/* The connection is to a primary: set it up (database, functions). */
static void cmd_setup(fr_redis_t *r) {
    redisAsyncContext *c = r->cmd;
    if (r->url.db)
        redisAsyncCommand(c, NULL, NULL, "SELECT %d", r->url.db);
    const char *lib = r->cluster ? fr_redis_cluster_library(r->cluster) : fr_redis_library;
    redisAsyncCommand(c, on_library_loaded, NULL, "FUNCTION LOAD REPLACE %s", lib);
}

static void on_cmd_role(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    if (!r || r->closing || !reply || !r->cmd_role)
        return;
    r->cmd_role = 0;
    int master = role_is_master(reply);
    if (master == 0) {
        role_failover(r);
        return;
    }
    if (master < 0)
        fr_warn("redis: ROLE refused (%s); relying on READONLY to notice a replica",
                ((redisReply *)reply)->type == REDIS_REPLY_ERROR ? ((redisReply *)reply)->str
                                                                 : "unexpected reply");
    cmd_setup(r);
}

static void on_cmd_connected(const redisAsyncContext *ac, int status) {
    fr_redis_t *r = ac->data;
    if (!r || r->closing)
        return;
    r->cmd_connecting = 0;
    uv_timer_stop(&r->cmd_retry);
    if (status != REDIS_OK) {
        r->cmd = NULL;
        if (r->cmd_attempt == 0) {
            char buf[300];
            fr_warn("redis: cannot connect to %s; retrying", where(r, buf, sizeof buf));
        }
        cmd_retry_later(r);
        return;
    }
    if (r->url.sentinel) {
        r->cmd_role = 1;
        redisAsyncCommand(r->cmd, on_cmd_role, NULL, "ROLE");
        return;
    }
    cmd_setup(r);
}

static void on_cmd_disconnected(const redisAsyncContext *ac, int status) {
    (void)status;
    fr_redis_t *r = ac->data;
    if (!r)
        return;
    r->cmd = NULL;
    r->cmd_ready = 0;
    r->cmd_role = 0;
    r->probe_seq = 0;
    publish_gauges(r);
    fr_redis_publish_fail_all(r);
    fr_redis_wait_fail_all(r);
    if (r->closing)
        return;
    if (r->cluster)
        fr_redis_cluster_stale(r->cluster);
    fr_warn("redis: command connection lost; publishes answer 503 until it is back");
    cmd_retry_later(r);
}

static void cmd_connect(fr_redis_t *r) {
    r->cmd_wants_addr = 0;
    if (r->closing || r->cmd)
        return;
    r->cmd = fr_redis_connect(r, NULL, "cmd");
    if (!r->cmd) {
        cmd_retry_later(r);
        return;
    }
    redisAsyncSetConnectCallback(r->cmd, on_cmd_connected);
    redisAsyncSetDisconnectCallback(r->cmd, on_cmd_disconnected);
    r->cmd_connecting = 1;
    uv_timer_start(&r->cmd_retry, on_cmd_retry, CONNECT_TIMEOUT_MS, 0);
}

static void cmd_drop(fr_redis_t *r) {
    redisAsyncContext *ac = r->cmd;
    if (!ac)
        return;
    if (r->cmd_connecting) {
        r->cmd_connecting = 0;
        r->cmd = NULL;
        ac->data = NULL;
        uv_timer_stop(&r->cmd_retry);
        redisAsyncFree(ac);
        cmd_retry_later(r);
        return;
    }
    /* Not redisAsyncDisconnect: it waits for replies that may never come. Freeing answers
     * every pending command (publishes get 503) and reports the disconnect. */
    redisAsyncFree(ac);
}

/* ---- failovers ------------------------------------------------------------------------------ */

void fr_redis_conn_primary(fr_redis_t *r, const char *host, int port) {
    if (r->closing)
        return;
    int moved =
        !r->have_primary || strcmp(r->primary.host, host) != 0 || r->primary.port != port;
    if (moved) {
        if (r->have_primary) {
            fr_warn("redis: the primary of '%s' is now %s:%d (was %s:%d); reconnecting there",
                    r->url.master ? r->url.master : "a cluster shard", host, port,
                    r->primary.host, r->primary.port);
            if (r->metrics)
                FR_BUMP(r->metrics->redis_failovers, 1);
        } else {
            fr_info("redis: the Sentinels say the primary of '%s' is %s:%d", r->url.master, host,
                    port);
        }
        snprintf(r->primary.host, sizeof r->primary.host, "%s", host);
        r->primary.port = port;
        r->have_primary = 1;
        /* Nothing may stay on the old one: drop both, then connect both now. */
        cmd_drop(r);
        sub_drop(r);
        r->cmd_attempt = r->sub_attempt = 0;
        r->cmd_wants_addr = r->sub_wants_addr = 1;
    }
    if (r->cmd_wants_addr && !r->cmd) {
        uv_timer_stop(&r->cmd_retry);
        cmd_connect(r);
    }
    if (r->sub_wants_addr && !r->sub) {
        uv_timer_stop(&r->sub_retry);
        sub_connect(r);
    }
}

static void on_failover(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    if (r->closing || !r->failover_why[0])
        return;
    fr_warn("redis: %s: a failover is probably under way; dropping both connections and "
            "finding the primary again", r->failover_why);
    r->failover_why[0] = '\0';
    if (r->metrics)
        FR_BUMP(r->metrics->redis_failovers, 1);
    cmd_drop(r);
    sub_drop(r);
    /* The retry timers (with backoff, so a primary that stays a replica is not hammered) ask
     * the Sentinels again, or reconnect to the one address. */
}

void fr_redis_conn_failover(fr_redis_t *r, const char *why) {
    if (r->closing || r->failover_why[0])
        return;
    size_t n = strlen(why);
    if (n >= sizeof r->failover_why)
        n = sizeof r->failover_why - 1;
    memcpy(r->failover_why, why, n);
    r->failover_why[n] = '\0';
    uv_timer_start(&r->failover, on_failover, 0, 0);
}

int fr_redis_conn_check_reply(fr_redis_t *r, const redisReply *rep) {
    if (!r || !rep || rep->type != REDIS_REPLY_ERROR)
        return 0;
    if (r->cluster && (strncmp(rep->str, "MOVED ", 6) == 0 || strncmp(rep->str, "ASK ", 4) == 0)) {
        fr_redis_cluster_moved(r->cluster, r, rep->str);
        return 0;
    }
    if (r->cluster && strncmp(rep->str, "CLUSTERDOWN", 11) == 0)
        fr_redis_cluster_stale(r->cluster);
    if (strncmp(rep->str, "READONLY", 8) != 0 && strncmp(rep->str, "LOADING", 7) != 0 &&
        strncmp(rep->str, "MASTERDOWN", 10) != 0)
        return 0;
    char buf[300], why[512];
    snprintf(why, sizeof why, "%s answered '%.120s'", where(r, buf, sizeof buf), rep->str);
    fr_redis_conn_failover(r, why);
    return 1;
}

/* ---- the subscriber's probe ----------------------------------------------------------------
 * A subscription can die while its TCP connection looks fine (a proxy or a replica in between,
 * a server that lost track of it): nothing arrives, and nothing says so. So the node publishes
 * on a channel of its own through the command connection and expects to hear it on the
 * subscriber; when it does not, it drops the subscriber, which reconnects, subscribes again and
 * refills every topic from its Stream. */

static void probe_fail(fr_redis_t *r, const char *why) {
    if (r->metrics)
        FR_BUMP(r->metrics->redis_probe_failures, 1);
    fr_warn("redis: the subscriber failed its probe (%s); reconnecting it", why);
    r->probe_seq = 0;
    r->probe_subscribed = 0;
    publish_gauges(r);
    sub_drop(r);
}

/* On the subscriber: the probe channel's subscription confirmed, or a probe heard. */
static void on_probe_reply(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    if (!r || r->closing || !rep || ac != r->sub || rep->type != REDIS_REPLY_ARRAY ||
        rep->elements < 3 || rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        r->probe_subscribed = 1;
        publish_gauges(r);
    } else if (strcmp(kind, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING) {
        unsigned long seq = strtoul(rep->element[2]->str, NULL, 10);
        if (seq && seq == r->probe_seq) {
            uint64_t now = fr_mono_ms();
            r->probe_rtt = now - r->probe_sent;
            r->probe_ok = now;
            r->probe_seq = 0;
        }
    }
}

/* On the command connection: Redis ran the PUBLISH; its reply counts the subscribers. */
static void on_probe_published(redisAsyncContext *ac, void *reply, void *priv) {
    fr_redis_t *r = ac->data;
    redisReply *rep = reply;
    unsigned long seq = (unsigned long)(uintptr_t)priv;
    if (!r || r->closing || seq != r->probe_seq)
        return;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        r->probe_seq = 0; /* the command connection went away: not the subscriber's fault */
        return;
    }
    r->probe_published = fr_mono_ms();
    if (rep->integer == 0)
        probe_fail(r, "Redis has no subscriber on the probe channel");
}

static void probe_tick(fr_redis_t *r, uint64_t now) {
    if (!r->sub_ready || !r->cmd_ready || !r->sub)
        return;
    if (!r->probe_subscribed) {
        if (now - r->sub_since > PROBE_TIMEOUT_MS + PROBE_EVERY_MS)
            probe_fail(r, "the probe channel's subscription was never confirmed");
        return;
    }
    if (r->probe_seq) {
        if (r->probe_published && now - r->probe_published > PROBE_TIMEOUT_MS) {
            char why[96];
            snprintf(why, sizeof why, "no message %d ms after Redis published it",
                     PROBE_TIMEOUT_MS);
            probe_fail(r, why);
        }
        return;
    }
    if (now - r->probe_ok < PROBE_EVERY_MS)
        return;
    r->probe_seq = (unsigned long)now; /* monotonic ms: unique, and never 0 */
    r->probe_sent = now;
    r->probe_published = 0;
    char seq[24];
    snprintf(seq, sizeof seq, "%lu", r->probe_seq);
    redisAsyncCommand(r->cmd, on_probe_published, (void *)(uintptr_t)r->probe_seq,
                      "PUBLISH %s %s", r->probe_channel, seq);
}

/* ---- the tick ------------------------------------------------------------------------------ */

static void on_pong(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    fr_redis_t *r = ac->data;
    if (!r || !reply)
        return;
    r->ping_pending = 0;
    /* With Sentinels the PING is a ROLE: a primary demoted while this node stayed connected
     * (a failover it did not hear of) is left within a second. */
    if (r->url.sentinel && role_is_master(reply) == 0) {
        char buf[300], why[400];
        snprintf(why, sizeof why, "%s is no longer the primary (ROLE)", where(r, buf, sizeof buf));
        fr_redis_conn_failover(r, why);
    }
}

/* Once a second: a command connection that stopped answering is dropped (it reconnects), the
 * subscriber is probed, the Sentinels are asked again, presence is written and read
 * (redis_presence.c), and topics nobody followed for a while are unsubscribed. */
static void on_tick(uv_timer_t *t) {
    fr_redis_t *r = t->data;
    uint64_t now = fr_mono_ms();
    if (r->cmd_ready) {
        /* A WAIT holds the connection for up to wait= ms: the PING waits behind it. */
        unsigned dead = PING_DEAD_MS + (r->url.replicas ? r->url.wait_ms : 0);
        if (r->ping_pending && now - r->ping_sent > dead) {
            fr_warn("redis: no answer for %u ms; reconnecting", dead);
            r->ping_pending = 0;
            cmd_drop(r);
        } else if (!r->ping_pending) {
            r->ping_pending = 1;
            r->ping_sent = now;
            redisAsyncCommand(r->cmd, on_pong, NULL, r->url.sentinel ? "ROLE" : "PING");
        }
    }
    probe_tick(r, now);
    if (r->url.sentinel)
        fr_redis_sentinel_tick(r, now);
    if (r->cmd_ready) {
        fr_redis_presence_tick(r, now);
        fr_redis_follow_refill_pending(r); /* fills that failed on an error reply */
    }
    if (r->sub_ready)
        fr_redis_follow_sweep(r, now);
    publish_gauges(r);
}

void fr_redis_conn_start(fr_redis_t *r) {
    snprintf(r->probe_channel, sizeof r->probe_channel, "fr:probe:%s", r->node);
    uv_timer_start(&r->tick, on_tick, PING_EVERY_MS, PING_EVERY_MS);
    if (r->url.sentinel) {
        r->cmd_wants_addr = r->sub_wants_addr = 1;
        fr_redis_sentinel_ask(r);
        return;
    }
    cmd_connect(r);
    sub_connect(r);
}

void fr_redis_conn_stop(fr_redis_t *r) {
    redisAsyncContext *cmd = r->cmd, *sub = r->sub;
    r->cmd = r->sub = NULL;
    r->cmd_ready = r->sub_ready = 0;
    /* Freeing the contexts answers every pending command with a NULL reply: publishes and
     * joins hear of the failure; nothing reconnects once `closing` is set. */
    if (cmd)
        redisAsyncFree(cmd);
    if (sub)
        redisAsyncFree(sub);
    fr_redis_wait_fail_all(r);
    fr_redis_follow_fail_waiters(r);
    fr_redis_sentinel_stop(r);
}
