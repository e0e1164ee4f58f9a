#include "client/redis_client.h"

#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

#include "base/list.h"
#include "base/log.h"
#include "base/util.h"
#include "broker/redis_io.h"

#define RETRY_BASE_MS 50u
#define RETRY_CAP_MS 2000u

struct fr_rcall_s {
    fr_list_t link;          /* in client->waiting while cb is due */
    fr_rcall_cb cb;          /* NULL once answered, given up or cancelled */
    void *ctx;
    uint64_t deadline;       /* loop ms; 0: none */
    unsigned long heard_at;  /* client->replies when it was sent */
};

/* Every waiting call has a hiredis callback due, which frees it: given up or not, a call is
 * freed by the reply (or by the end of its connection), never earlier, since hiredis holds
 * its pointer until then. */
struct fr_rclient_s {
    uv_loop_t *loop;
    fr_redis_url_t url;
    fr_rclient_where_cb where;
    void *where_ctx;
    unsigned max_in_flight;
    redisAsyncContext *ac;   /* the connection; NULL while down */
    uint64_t down_until;     /* while down, calls before this fail with down_why */
    const char *down_why;
    unsigned attempts;       /* connections lost in a row, for the backoff */
    const char *dropping;    /* set while we free ac ourselves: what its calls hear */
    unsigned long replies;   /* replies heard, ever: a call that saw none is on a stuck link */
    fr_list_t waiting;       /* calls whose cb is due, oldest first */
    uv_timer_t deadline;     /* the nearest deadline of a waiting call */
    uint64_t armed;          /* when it fires; 0: stopped */
    uv_timer_t later;        /* drops the connection outside hiredis' callbacks */
    int closing;
    int handles;             /* timers not closed yet */
    fr_rclient_stats_t stats;
};

static uint64_t now_ms(const fr_rclient_t *c) {
    return uv_now(c->loop);
}

/* What a script hears when a connection fails; hiredis only has strerror's words. */
static const char *transport_error(const redisContext *rc) {
    switch (rc->err) {
    case REDIS_ERR_EOF:
        return "connection closed";
    case REDIS_ERR_IO:
        if (strstr(rc->errstr, "refused"))
            return "connection refused";
        if (strstr(rc->errstr, "reset"))
            return "connection reset";
        if (strstr(rc->errstr, "timed out"))
            return "timeout";
        return "connection failed";
    case REDIS_ERR_OTHER:
        if (strstr(rc->errstr, "resolve") || strstr(rc->errstr, "Name or service"))
            return "host not found";
        return "connection failed";
    case 0:
        return "connection closed";
    default:
        return "connection failed";
    }
}

static void went_down(fr_rclient_t *c, const char *why) {
    unsigned shift = c->attempts > 6 ? 6 : c->attempts;
    unsigned wait = RETRY_BASE_MS << shift;
    if (wait > RETRY_CAP_MS)
        wait = RETRY_CAP_MS;
    c->attempts++;
    c->down_why = why;
    c->down_until = now_ms(c) + wait;
}

/* Frees the connection now: its calls are answered `why` (the callbacks run inside). Never
 * called from a hiredis callback. */
static void drop(fr_rclient_t *c, const char *why) {
    redisAsyncContext *ac = c->ac;
    if (!ac)
        return;
    c->ac = NULL;
    if (!c->closing)
        went_down(c, why);
    c->dropping = why;
    redisAsyncFree(ac);
    c->dropping = NULL;
}

static void on_later(uv_timer_t *h) {
    fr_rclient_t *c = h->data;
    drop(c, "connection closed");
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
    fr_rcall_t *call = priv;
    fr_rclient_t *c = ac->data;
    const redisReply *reply = r;
    const char *err = NULL;
    c->stats.in_flight--;
    if (!reply) {
        /* The connection is going: detach it first, so a hook resumed below that calls again
         * does not reach a context hiredis is freeing. */
        err = c->dropping ? c->dropping : transport_error(&ac->c);
        if (ac == c->ac) {
            c->ac = NULL;
            went_down(c, err);
        }
    } else {
        c->replies++;
        c->attempts = 0;
        /* After a failover the old primary takes reads but refuses writes: reconnect, so the
         * next connect asks where the primary is now. */
        if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "READONLY", 8) == 0 &&
            ac == c->ac)
            uv_timer_start(&c->later, on_later, 0, 0);
    }
    fr_rcall_cb cb = call->cb;
    void *ctx = call->ctx;
    fr_list_remove(&call->link);
    free(call);
    if (!cb)
        return;
    if (err)
        c->stats.failures++;
    cb(ctx, err ? NULL : reply, err);
}

/* The replies of AUTH, SELECT and CLIENT SETNAME: only a refusal is worth a line (the calls
 * behind it then fail with Redis' own words, NOAUTH and the like). */
static void on_setup(redisAsyncContext *ac, void *r, void *what) {
    const redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        fr_warn("redis (freshet.redis): %s refused: %s", (const char *)what, reply->str);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    fr_rclient_t *c = ac->data;
    if (status == REDIS_OK || ac != c->ac)
        return;
    /* hiredis frees the context next and answers its calls; they hear why. */
    c->ac = NULL;
    went_down(c, transport_error(&ac->c));
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    fr_rclient_t *c = ac->data;
    if (ac != c->ac)
        return;
    c->ac = NULL;
    went_down(c, status == REDIS_OK ? "connection closed" : transport_error(&ac->c));
}

/* Opens the connection; its setup commands go first, the calls queue behind them and leave
 * once it is up. */
static int open_conn(fr_rclient_t *c, const char **err) {
    redisAsyncContext *ac;
    if (c->url.unix_path) {
        ac = redisAsyncConnectUnix(c->url.unix_path);
    } else {
        fr_redis_addr_t a = c->url.addr;
        if (c->url.sentinel && (!c->where || c->where(c->where_ctx, &a) < 0)) {
            went_down(c, "redis primary unknown");
            *err = c->down_why;
            return -1;
        }
        ac = redisAsyncConnect(a.host, a.port);
    }
    if (!ac || ac->err || fr_redis_io_attach(ac, c->loop, NULL) < 0) {
        const char *why = ac && ac->err ? transport_error(&ac->c) : "connection failed";
        if (ac)
            redisAsyncFree(ac);
        went_down(c, why);
        *err = why;
        return -1;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (c->url.password) {
        if (c->url.user)
            redisAsyncCommand(ac, on_setup, "AUTH", "AUTH %s %s", c->url.user, c->url.password);
        else
            redisAsyncCommand(ac, on_setup, "AUTH", "AUTH %s", c->url.password);
    }
    if (c->url.db)
        redisAsyncCommand(ac, on_setup, "SELECT", "SELECT %d", c->url.db);
    /* Named in CLIENT LIST, apart from the broker's connections. */
    redisAsyncCommand(ac, on_setup, "CLIENT SETNAME", "CLIENT SETNAME freshet-app");
    c->ac = ac;
    c->stats.connects++;
    return 0;
}

static void arm(fr_rclient_t *c, uint64_t deadline);

/* The nearest deadline has come: its calls hear "timeout". A call that heard no reply at all
 * on its connection since it was sent says the connection is stuck (a stopped server, a
 * host that drops packets): it is dropped, and its other calls hear "timeout" too. */
static void on_deadline(uv_timer_t *h) {
    fr_rclient_t *c = h->data;
    uint64_t now = now_ms(c);
    c->armed = 0;
    fr_list_t due;
    fr_list_init(&due);
    int stuck = 0;
    for (fr_list_t *l = c->waiting.next, *next; l != &c->waiting; l = next) {
        next = l->next;
        fr_rcall_t *call = FR_LIST_ENTRY(l, fr_rcall_t, link);
        if (call->deadline && call->deadline <= now) {
            fr_list_remove(l);
            fr_list_insert_tail(&due, l);
            if (call->heard_at == c->replies)
                stuck = 1;
        }
    }
    /* Answered one by one: a hook resumed here may cancel or start other calls. */
    for (fr_list_t *l; (l = fr_list_first(&due));) {
        fr_rcall_t *call = FR_LIST_ENTRY(l, fr_rcall_t, link);
        fr_list_remove(l);
        fr_rcall_cb cb = call->cb;
        call->cb = NULL;
        c->stats.failures++;
        c->stats.timeouts++;
        if (cb)
            cb(call->ctx, NULL, "timeout");
    }
    if (stuck && !c->closing)
        drop(c, "timeout");
    for (fr_list_t *l = c->waiting.next; l != &c->waiting; l = l->next)
        arm(c, FR_LIST_ENTRY(l, fr_rcall_t, link)->deadline);
}

static void arm(fr_rclient_t *c, uint64_t deadline) {
    if (!deadline || c->closing || (c->armed && c->armed <= deadline))
        return;
    uint64_t now = now_ms(c);
    c->armed = deadline;
    uv_timer_start(&c->deadline, on_deadline, deadline > now ? deadline - now : 0, 0);
}

fr_rclient_t *fr_rclient_new(uv_loop_t *loop, const char *url, fr_rclient_where_cb where,
                             void *where_ctx, unsigned max_in_flight, char *err,
                             size_t errlen) {
    fr_rclient_t *c = fr_calloc(1, sizeof *c);
    if (fr_redis_url_parse(url, &c->url, err, errlen) < 0) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->where = where;
    c->where_ctx = where_ctx;
    c->max_in_flight = max_in_flight ? max_in_flight : 1;
    fr_list_init(&c->waiting);
    uv_timer_init(loop, &c->deadline);
    uv_timer_init(loop, &c->later);
    c->deadline.data = c->later.data = c;
    c->handles = 2;
    return c;
}

static void on_closed(uv_handle_t *h) {
    fr_rclient_t *c = h->data;
    if (--c->handles == 0) {
        fr_redis_url_free(&c->url);
        free(c);
    }
}

void fr_rclient_close(fr_rclient_t *c) {
    if (!c || c->closing)
        return;
    c->closing = 1;
    drop(c, "shutting down");
    uv_close((uv_handle_t *)&c->deadline, on_closed);
    uv_close((uv_handle_t *)&c->later, on_closed);
}

int fr_rclient_command(fr_rclient_t *c, int argc, const char **argv, const size_t *argvlen,
                       uint64_t timeout_ms, fr_rcall_cb cb, void *ctx, fr_rcall_t **call,
                       const char **err) {
    const char *why;
    if (!err)
        err = &why;
    if (c->closing) {
        *err = "shutting down";
        return -1;
    }
    if (c->stats.in_flight >= c->max_in_flight) {
        *err = "too many redis calls in flight";
        return -1;
    }
    if (!c->ac) {
        if (now_ms(c) < c->down_until) {
            *err = c->down_why;
            return -1;
        }
        if (open_conn(c, err) < 0)
            return -1;
    }
    fr_rcall_t *rc = fr_calloc(1, sizeof *rc);
    if (redisAsyncCommandArgv(c->ac, on_reply, rc, argc, argv, argvlen) != REDIS_OK) {
        free(rc);
        *err = "connection closed";
        return -1;
    }
    rc->cb = cb;
    rc->ctx = ctx;
    rc->deadline = timeout_ms ? now_ms(c) + timeout_ms : 0;
    rc->heard_at = c->replies;
    fr_list_insert_tail(&c->waiting, &rc->link);
    c->stats.in_flight++;
    c->stats.calls++;
    arm(c, rc->deadline);
    if (call)
        *call = rc;
    return 0;
}

void fr_rcall_cancel(fr_rcall_t *call) {
    call->cb = NULL;
    fr_list_remove(&call->link);
}

void fr_rclient_stats(const fr_rclient_t *c, fr_rclient_stats_t *out) {
    *out = c->stats;
}
