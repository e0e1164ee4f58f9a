/* Opening a stream, as a sequence of stages over one context that owns the request (its Lua
 * table and the connection's hold) until the stream is live or refused:
 *
 *   transport → capacity → auth → topics → tier → on_slow → Last-Event-ID → join → start
 *
 * A stage goes on to the next, answers the request and stops, or waits: it returns
 * STAGE_WAIT and whatever it waits for calls open_run again on a later loop turn. The hooks
 * (auth, topics, tier) wait when the script waits (freshet.sleep, freshet.http.request: see
 * app/hookcall.h); the join waits when the broker answers over the network. While a stage
 * waits, the open is the exchange's writer: a client that leaves cancels the hook's wait and
 * frees the open, or, during a join, the join's answer frees it instead of answering. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/hookcall.h"
#include "base/log.h"
#include "base/util.h"
#include "codec/ids.h"
#include "lua/hooks.h"
#include "transport/sse.h"
#include "transport/ws.h"

typedef enum { STAGE_NEXT, STAGE_WAIT, STAGE_DONE } stage_result_t;

typedef struct open_s open_t;
typedef stage_result_t (*stage_fn)(open_t *o);
/* Reads a hook's results from the VM's stack. */
typedef stage_result_t (*reader_fn)(open_t *o);

struct open_s {
    fr_app_t *app;
    fr_exchange_t *x;              /* held until the open is over */
    fr_vm_t *vm;                   /* one reference */
    const fr_route_t *route;       /* borrowed from vm */
    int req_ref;                   /* owned until the transport takes it (WebSocket) */
    size_t stage;
    int running;                   /* open_run is on the stack */
    int waiting;                   /* a stage waits for a callback */
    int gone;                      /* the client left while a stage waited */
    int in_band;                   /* refusals for now go in the stream (an EventSource) */
    int admitted;                  /* holds a place in app->opening until it joins */
    fr_hookcall_t hc;              /* the hook that waits, if one does */
    reader_fn reader;              /* what reads its results */
    const char *hook;              /* its name */
    /* What the stages found; each moves into the stream once it exists. */
    const fr_transport_t *tp;
    void *tp_state;                /* owned: the transport's state */
    int who_ref;                   /* owned */
    char *who_id;                  /* owned */
    const fr_tier_t *tier;
    char **topics;                 /* owned */
    size_t ntopics;
    uint8_t *slow;                 /* owned */
    fr_id_t *after;                /* owned: the Last-Event-ID positions, or NULL */
    fr_stream_t *stream;           /* owned until it starts */
    fr_joined_t joined;
};

static void open_run(open_t *o);

/* Gives back the place the stream guard gave this open. */
static void open_leave_guard(open_t *o) {
    if (o->admitted) {
        o->admitted = 0;
        FR_DROP(o->app->opening, 1);
    }
}

static void open_free(open_t *o) {
    lua_State *L = o->vm->L;
    open_leave_guard(o);
    if (o->stream)
        fr_stream_free(o->stream);
    if (o->tp_state)
        fr_ws_state_discard(o->tp_state, L);
    luaL_unref(L, LUA_REGISTRYINDEX, o->req_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, o->who_ref);
    free(o->who_id);
    fr_topics_free(o->topics, o->ntopics);
    free(o->slow);
    free(o->after);
    fr_vm_release(o->vm);
    o->x->ops->release(o->x);
    free(o);
}

static stage_result_t refuse(open_t *o, int status, const char *msg) {
    fr_exchange_respond_error(o->x, status, msg);
    return STAGE_DONE;
}

static stage_result_t refuse_500(open_t *o) {
    return refuse(o, 500, "internal error");
}

/* A refusal that only means "not now": an EventSource gets it in the stream, so it comes
 * back (app/refuse.c). */
static stage_result_t refuse_for_now(open_t *o, fr_refusal_t why, int status,
                                     unsigned retry_after_s, const char *msg) {
    fr_app_refuse_stream(o->app, o->x, o->in_band, why, status, retry_after_s, msg);
    return STAGE_DONE;
}

/* A hook that failed: 504 when it did not answer in time (which may pass), else 500. */
static stage_result_t refuse_hook(open_t *o, int status, const char *what) {
    if (status != FR_TASK_TIMEOUT)
        return refuse_500(o);
    char msg[160];
    snprintf(msg, sizeof msg, "the route's %s hook did not answer in time", what);
    return refuse_for_now(o, FR_REFUSAL_TIMEOUT, 504, 0, msg);
}

/* 1 when the request's query has key=value. */
static int query_is(open_t *o, const char *key, const char *value) {
    lua_State *L = o->vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, o->req_ref);
    lua_getfield(L, -1, "query");
    lua_getfield(L, -1, key);
    int is = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), value) == 0;
    lua_pop(L, 3);
    return is;
}

/* ---- while a stage waits, the open is the connection's writer ----------------------------- */

static void on_gone(void *owner, const char *reason) {
    (void)reason;
    open_t *o = owner;
    o->gone = 1;
}

static void on_closed(void *owner) {
    open_t *o = owner;
    o->gone = 1;
    /* The stage's callback still comes; it frees the open. */
}

static void on_data(void *owner, const char *bytes, size_t len) {
    (void)owner, (void)bytes, (void)len; /* nothing reads before the stream starts */
}

static const fr_sink_owner_ops_t open_owner_ops = {on_gone, on_closed, on_data};

static void own_sink(open_t *o, int own) {
    fr_sink_attach(&o->x->sink, own ? &open_owner_ops : NULL, own ? o : NULL);
}

/* ---- the stages --------------------------------------------------------------------------- */

/* Which transport the client asked for: long-poll (?transport=poll), a WebSocket upgrade, or
 * an event stream (which its Accept header must allow). */
static stage_result_t stage_transport(open_t *o) {
    fr_exchange_t *x = o->x;
    lua_State *L = o->vm->L;
    if (query_is(o, "transport", "poll")) {
        o->tp = &fr_transport_poll;
        return STAGE_NEXT;
    }
    if (fr_ws_wants_upgrade(&x->req)) {
        fr_ws_refusal_t why;
        /* The transport keeps the request table for the topics hooks a subscribe calls. */
        lua_rawgeti(L, LUA_REGISTRYINDEX, o->req_ref);
        int ws_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        if (fr_ws_handshake(&x->req, o->app->config, ws_ref, &o->tp_state, &why) < 0) {
            luaL_unref(L, LUA_REGISTRYINDEX, ws_ref);
            if (why.headers) {
                char body[160];
                int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", why.message);
                x->last = 1;
                fr_exchange_respond(x, why.status, "application/json", why.headers, body,
                                (size_t)n);
                return STAGE_DONE;
            }
            return refuse(o, why.status, why.message);
        }
        o->tp = &fr_transport_ws;
        return STAGE_NEXT;
    }
    const char *accept = fr_request_header(&x->req, "accept");
    if (!fr_sse_accepts(accept))
        return refuse(o, 406,
                      "this route streams text/event-stream; send Accept: text/event-stream "
                      "(or */*)");
    o->tp = &fr_transport_sse;
    /* What a browser's EventSource sends, unless the client says it reads statuses. */
    o->in_band = fr_sse_asks(accept) && !query_is(o, "refusal", "status");
    return STAGE_NEXT;
}

/* The stream guard: streams, and opens on their way to becoming one, stay within the capacity
 * the descriptor limit leaves (connections still reading a request do not count: they may be
 * the streams). An open that passes holds its place until it joins or ends. */
static stage_result_t stage_capacity(open_t *o) {
    fr_app_t *app = o->app;
    if (app->http->stopping)
        return refuse_for_now(o, FR_REFUSAL_DRAIN, 503, 1, "shutting down");
    fr_fds_view_t v;
    app->host->fds(app->host_ctx, &v);
    if (v.streams >= v.capacity) {
        FR_BUMP(app->metrics->refused_fds, 1);
        return refuse_for_now(o, FR_REFUSAL_FDS, 503, 5, "the server is at its connection limit");
    }
    o->admitted = 1;
    FR_BUMP(app->opening, 1);
    return STAGE_NEXT;
}

/* ---- hooks, which may wait ----------------------------------------------------------------- */

static stage_result_t run_hook(open_t *o, const char *what, int nargs, int nresults,
                               reader_fn read) {
    int rc = fr_hookcall_run(&o->hc, o->vm, o->route, what, nargs, nresults);
    if (rc == FR_TASK_WAIT) {
        o->reader = read;
        o->hook = what;
        return STAGE_WAIT;
    }
    if (rc != FR_TASK_OK)
        return refuse_hook(o, rc, what);
    return read(o);
}

static void on_hook_done(fr_hookcall_t *hc, int status) {
    open_t *o = FR_CONTAINER_OF(hc, open_t, hc);
    stage_result_t r = STAGE_DONE;
    if (status == FR_TASK_OK)
        r = o->reader(o);
    else
        r = refuse_hook(o, status, o->hook);
    if (r == STAGE_DONE)
        open_free(o);
    else
        open_run(o);
}

static void on_hook_dropped(fr_hookcall_t *hc) {
    open_free(FR_CONTAINER_OF(hc, open_t, hc));
}

static stage_result_t read_auth(open_t *o) {
    char msg[256];
    int status = fr_hook_read_auth(o->vm, o->route, &o->who_ref, msg, sizeof msg);
    /* The route says "not now" (a backend it needs is down, a limit of its own): as the
     * server's own refusals. 401 and 403 stay final: retrying brings no new credentials. */
    if (status == 429 || status == 503)
        return refuse_for_now(o, FR_REFUSAL_ROUTE, status, 0, msg);
    if (status)
        return refuse(o, status, msg);
    o->who_id = fr_hook_who_id(o->vm, o->who_ref);
    return STAGE_NEXT;
}

static stage_result_t stage_auth(open_t *o) {
    int nargs = fr_hook_push_auth(o->vm, o->route, o->req_ref);
    if (nargs)
        return run_hook(o, "auth", nargs, 3, read_auth);
    o->who_ref = fr_hook_anonymous(o->vm);
    return STAGE_NEXT;
}

static stage_result_t read_topics(open_t *o) {
    const char *msg;
    switch (fr_hook_read_topics(o->vm, o->route, &o->topics, &o->ntopics, &msg)) {
    case FR_TOPICS_OK: return STAGE_NEXT;
    case FR_TOPICS_BAD_NAME:
        return refuse(o, 400, "the request names an invalid topic (CR, LF, NUL or not UTF-8)");
    default: return refuse_500(o);
    }
}

static stage_result_t stage_topics(open_t *o) {
    int nargs = fr_hook_push_topics(o->vm, o->route, o->req_ref, o->who_ref, LUA_NOREF);
    return run_hook(o, "topics", nargs, 1, read_topics);
}

static stage_result_t read_tier(open_t *o) {
    fr_app_t *app = o->app;
    if (fr_hook_read_tier(o->vm, o->route, app->config, &o->tier) < 0)
        return refuse_500(o);
    if (!o->tier)
        return STAGE_NEXT;
    char client[300];
    unsigned retry_after;
    fr_hook_client_id(o->vm, o->who_ref, o->x->remote, client, sizeof client);
    if (fr_ratelimit_take(app->limits, FR_RL_CONNECT, o->tier, client, 1, fr_mono_ms(),
                          &retry_after) == 0)
        return STAGE_NEXT;
    fr_app_count_limited(app, o->tier);
    char msg[96];
    snprintf(msg, sizeof msg, "too many new streams: retry in %u s", retry_after);
    return refuse_for_now(o, FR_REFUSAL_RATE, 429, retry_after, msg);
}

static stage_result_t stage_tier(open_t *o) {
    int nargs = fr_hook_push_tier(o->vm, o->route, o->req_ref, o->who_ref);
    if (!nargs)
        return STAGE_NEXT;
    return run_hook(o, "tier", nargs, 1, read_tier);
}

static stage_result_t stage_slow(open_t *o) {
    if (fr_hook_slow(o->vm, o->route, o->topics, o->ntopics, o->who_ref, &o->slow) < 0)
        return refuse_500(o);
    return STAGE_NEXT;
}

/* The Last-Event-ID header, else the lastEventId query parameter (EventSource polyfills and
 * clients that cannot set headers): a position per topic (codec/ids.h). */
static stage_result_t stage_last_id(open_t *o) {
    lua_State *L = o->vm->L;
    const char *last = fr_request_header(&o->x->req, "last-event-id");
    int from_query = !last || !*last;
    if (from_query) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, o->req_ref);
        lua_getfield(L, -1, "query");
        lua_getfield(L, -1, "lastEventId");
        last = lua_isstring(L, -1) ? lua_tostring(L, -1) : NULL;
    }
    stage_result_t rc = STAGE_NEXT;
    if (last && *last) {
        o->after = fr_calloc(o->ntopics, sizeof *o->after);
        const char *why = NULL;
        int n = fr_ids_parse(last, strlen(last), o->after, o->ntopics, &why);
        if (n < 0 || (size_t)n != o->ntopics) {
            char msg[192];
            if (n < 0)
                snprintf(msg, sizeof msg, "malformed Last-Event-ID: %s", why);
            else
                snprintf(msg, sizeof msg,
                         "Last-Event-ID holds %d positions but this stream follows %zu topics", n,
                         o->ntopics);
            rc = refuse(o, 400, msg);
        }
    }
    if (from_query)
        lua_pop(L, 3);
    return rc;
}

static void on_joined(void *ctx, fr_stream_t *s, const fr_joined_t *how) {
    (void)s;
    open_t *o = ctx;
    o->joined = *how;
    o->waiting = 0;
    if (!o->running)
        open_run(o);
}

/* The stream exists from here: it subscribes, and the broker says where each topic stands
 * (over the network with Redis: the open waits). */
static stage_result_t stage_join(open_t *o) {
    fr_app_t *app = o->app;
    fr_stream_init_t init = {
        .tp = o->tp,
        .tp_state = o->tp_state,
        .vm = o->vm,
        .route = o->route,
        .who_ref = o->who_ref,
        .who_id = o->who_id,
        .budget = o->tier,
        .topics = o->topics,
        .ntopics = o->ntopics,
        .slow = o->slow,
        .id = o->x->id,
        .remote = o->x->remote,
        .opened_ms = o->x->opened_ms,
        .started_us = o->x->started_us,
        .access_target = app->streams->access && o->x->req.url
                             ? fr_strndup(o->x->req.url, o->x->req.url_len)
                             : NULL,
    };
    o->stream = fr_stream_new(app->streams, &init);
    o->tp_state = NULL;
    o->who_ref = LUA_NOREF;
    o->who_id = NULL;
    o->topics = NULL;
    o->ntopics = 0;
    o->slow = NULL;
    o->waiting = 1;
    own_sink(o, 1);
    int rc = fr_stream_join(o->stream, o->after, on_joined, o);
    /* From here the streams' count holds it (a failed join ends the open now). */
    open_leave_guard(o);
    if (rc < 0) {
        o->waiting = 0;
        o->joined.error = 1;
    }
    return o->waiting ? STAGE_WAIT : STAGE_NEXT;
}

static stage_result_t stage_start(open_t *o) {
    fr_app_t *app = o->app;
    fr_exchange_t *x = o->x;
    own_sink(o, 0);
    if (o->joined.error)
        return refuse_for_now(o, FR_REFUSAL_BROKER, 503, 2, "the broker is unavailable");
    if (o->joined.invalid) {
        FR_BUMP(app->metrics->resume_invalid, 1);
        return refuse(o, 400, "Last-Event-ID was never issued by this stream");
    }
    if (o->after) {
        FR_BUMP(app->metrics->resumes, 1);
        if (o->joined.stale && !o->route->on_gap_reset) {
            FR_BUMP(app->metrics->resume_stale, 1);
            return refuse(o, 416, "Last-Event-ID is older than the replay window: reload the "
                                  "state and reconnect without it");
        }
    }
    fr_stream_t *s = o->stream;
    o->stream = NULL; /* the connection's sink owns it from here */
    fr_stream_start(s, &x->sink, o->joined.stale);
    return STAGE_DONE;
}

static const stage_fn stages[] = {stage_transport, stage_capacity, stage_auth,
                                  stage_topics,    stage_tier,     stage_slow,
                                  stage_last_id,   stage_join,     stage_start};

static void open_run(open_t *o) {
    o->running = 1;
    while (o->stage < FR_ARRAY_LEN(stages)) {
        if (o->gone) {
            own_sink(o, 0);
            break; /* the client left while a stage waited: answer nobody */
        }
        stage_result_t r = stages[o->stage](o);
        if (r == STAGE_WAIT) {
            o->stage++;
            o->running = 0;
            return;
        }
        if (r == STAGE_DONE)
            break;
        o->stage++;
    }
    open_free(o);
}

void fr_app_open(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref) {
    open_t *o = fr_calloc(1, sizeof *o);
    o->app = app;
    o->x = x;
    x->ops->hold(x);
    o->vm = app->vm;
    fr_vm_retain(o->vm);
    o->route = route;
    o->req_ref = req_ref;
    o->who_ref = LUA_NOREF;
    o->hc.x = x;
    o->hc.done = on_hook_done;
    o->hc.dropped = on_hook_dropped;
    open_run(o);
}
