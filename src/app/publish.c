/* Publish routes: POST body → auth → tier → publish(req, body, who) → events → 201 with the
 * ids. Each hook may wait (app/hookcall.h); the request is held until the broker answered. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/hookcall.h"
#include "base/log.h"
#include "base/util.h"
#include "lua/hooks.h"

#define FR_MAX_PUBLISH 256

typedef struct {
    const char *topic, *name, *data; /* borrowed from Lua values kept on the stack */
    size_t data_len;
    fr_priority_t prio;
    int json;
} pub_item_t;

/* Reads one {topic=, data=, event=, priority=} table at idx into it; leaves the (maybe
 * JSON-encoded) data string on the stack so the borrowed pointers stay valid. Returns 0, 400
 * with *msg for bad content, or 500 for a script mistake (logged). */
static int read_item(fr_vm_t *vm, const fr_route_t *route, int idx, pub_item_t *it,
                     const char **msg) {
    lua_State *L = vm->L;
    lua_getfield(L, idx, "topic");
    lua_getfield(L, idx, "event");
    lua_getfield(L, idx, "priority");
    int top = lua_gettop(L);
    if (lua_type(L, top - 2) != LUA_TSTRING) {
        fr_error("route %s: publish hook: topic must be a string, got %s", route->pattern.source,
                 luaL_typename(L, top - 2));
        return 500;
    }
    size_t tlen;
    it->topic = lua_tolstring(L, top - 2, &tlen);
    /* A NUL inside a Lua string would cut the name short on its way into C. */
    if (strlen(it->topic) != tlen) {
        *msg = "topic must be UTF-8 without CR, LF or NUL";
        return 400;
    }
    it->name = NULL;
    if (!lua_isnil(L, top - 1)) {
        if (lua_type(L, top - 1) != LUA_TSTRING) {
            fr_error("route %s: publish hook: event must be a string, got %s",
                     route->pattern.source, luaL_typename(L, top - 1));
            return 500;
        }
        size_t nlen;
        it->name = lua_tolstring(L, top - 1, &nlen);
        if (strlen(it->name) != nlen) {
            *msg = "event name must be UTF-8 without CR, LF or NUL";
            return 400;
        }
        if (!*it->name)
            it->name = NULL;
    }
    it->prio = FR_PRIO_NORMAL;
    if (!lua_isnil(L, top)) {
        const char *p = lua_tostring(L, top);
        if (!p || fr_priority_parse(p, &it->prio) < 0) {
            *msg = "priority must be critical, normal or telemetry";
            return 400;
        }
    }
    lua_getfield(L, idx, "data");
    it->json = 0;
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->encode_ref);
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            fr_error("route %s: publish hook: data cannot be sent as JSON: %s",
                     route->pattern.source, lua_tostring(L, -1));
            return 500;
        }
        it->json = 1;
    } else if (lua_type(L, -1) != LUA_TSTRING) {
        fr_error("route %s: publish hook: data must be a string or a table, got %s",
                 route->pattern.source, luaL_typename(L, -1));
        return 500;
    }
    it->data = lua_tolstring(L, -1, &it->data_len);
    if (fr_event_validate(it->topic, it->name, it->data, it->data_len, msg) < 0)
        return 400;
    return 0;
}

static void respond_ids(fr_exchange_t *x, fr_id_t *ids, size_t n, int many) {
    size_t cap = 16 + n * (FR_ID_MAX_LEN + 3), len = 0;
    char *body = fr_malloc(cap);
    const char *open = many ? "{\"ids\":[" : "{\"id\":";
    memcpy(body, open, strlen(open));
    len = strlen(open);
    for (size_t i = 0; i < n; i++) {
        if (i)
            body[len++] = ',';
        body[len++] = '"';
        len += fr_id_format(ids[i], body + len);
        body[len++] = '"';
    }
    memcpy(body + len, many ? "]}" : "}", many ? 2 : 1);
    len += many ? 2 : 1;
    fr_exchange_respond(x, 201, "application/json", NULL, body, len);
    free(body);
}

typedef struct batch_s batch_t;

typedef struct {
    batch_t *batch;
    size_t index;
    fr_priority_t prio;
} item_ref_t;

/* Events of one request on their way to the broker. */
struct batch_s {
    fr_exchange_t *x;       /* held until the last answer */
    fr_metrics_t *metrics;
    fr_id_t *ids;       /* owned */
    item_ref_t *refs;   /* owned: the context of each event's callback */
    size_t n, pending;
    int many;
    int status;         /* worst outcome so far: 0, then -2 (invalid), -1 (unavailable),
                         * -3 (stored but not confirmed: the client must hear of it) */
    char err[200];
};

/* 503 for events that may have been stored: the message says so (a client that publishes
 * again may publish twice; one that gives up may have published after all). */
static void respond_uncertain(fr_exchange_t *x, const char *msg) {
    size_t len;
    char *body = fr_http_error_body(msg, &len);
    fr_exchange_respond(x, 503, "application/json", "Retry-After: 2\r\n", body, len);
    free(body);
}

static void batch_done(batch_t *b) {
    if (--b->pending > 0)
        return;
    fr_exchange_t *x = b->x;
    if (!x->gone) {
        if (b->status == FR_PUB_UNAVAILABLE)
            fr_exchange_respond(x, 503, "application/json", "Retry-After: 2\r\n",
                            "{\"error\":\"the broker is unavailable\"}", 37);
        else if (b->status == FR_PUB_UNCERTAIN)
            respond_uncertain(x, b->err);
        else if (b->status < 0)
            fr_exchange_respond_error(x, 400, b->err);
        else
            respond_ids(x, b->ids, b->n, b->many);
    }
    x->ops->release(x);
    free(b->ids);
    free(b->refs);
    free(b);
}

static void on_item_published(void *ctx, int status, fr_id_t id, const char *err) {
    item_ref_t *ref = ctx;
    batch_t *b = ref->batch;
    if (status == 0) {
        FR_BUMP(b->metrics->published[ref->prio], 1);
        b->ids[ref->index] = id;
    } else if (b->status == 0 || status == FR_PUB_UNCERTAIN ||
               (status == FR_PUB_UNAVAILABLE && b->status != FR_PUB_UNCERTAIN)) {
        b->status = status;
        snprintf(b->err, sizeof b->err, "%s", err ? err : "not published");
    }
    batch_done(b);
}

/* The hook's refusal (nil, status, message) at r, answered. Returns -1; a result that is no
 * table and no refusal is the script's mistake (500, logged). */
static int answer_refusal(lua_State *L, fr_exchange_t *x, const fr_route_t *route, int r) {
    if (lua_toboolean(L, r)) {
        fr_error("route %s: publish must return an event table, a list of them, or nil, "
                 "status, message; got %s",
                 route->pattern.source, luaL_typename(L, r));
        fr_exchange_respond_error(x, 500, "internal error");
        return -1;
    }
    int status = lua_isnumber(L, r + 1) ? (int)lua_tointeger(L, r + 1) : 400;
    if (status < 400 || status > 599)
        status = 400;
    fr_exchange_respond_error(x, status,
                          lua_isstring(L, r + 2) ? lua_tostring(L, r + 2) : "not published");
    return -1;
}

/* Reads the events the hook returned at r (one table, or a list of them) into *items, every
 * one checked before any is published, so a bad one publishes none of them. Returns 0, or
 * the status to answer: 400 with *msg, 500 for a script mistake (logged). The strings stay
 * on the Lua stack, borrowed by the items. */
static int read_events(fr_vm_t *vm, const fr_route_t *route, int r, pub_item_t **items,
                       size_t *nitems, int *many, const char **msg) {
    lua_State *L = vm->L;
    lua_getfield(L, r, "topic");
    *many = lua_isnil(L, -1);
    lua_pop(L, 1);
    size_t n = *many ? lua_objlen(L, r) : 1;
    if (n == 0 || n > FR_MAX_PUBLISH) {
        fr_error("route %s: publish returned %zu events (1 to %d allowed)",
                 route->pattern.source, n, FR_MAX_PUBLISH);
        return 500;
    }
    *items = fr_calloc(n, sizeof **items);
    *nitems = n;
    lua_checkstack(L, (int)n * 5 + 10);
    for (size_t i = 0; i < n; i++) {
        int idx = r;
        if (*many) {
            lua_rawgeti(L, r, (int)i + 1);
            idx = lua_gettop(L);
            if (!lua_istable(L, idx)) {
                fr_error("route %s: publish: item %zu is a %s, not a table",
                         route->pattern.source, i + 1, luaL_typename(L, idx));
                return 500;
            }
        }
        int status = read_item(vm, route, idx, &(*items)[i], msg);
        if (status)
            return status;
    }
    return 0;
}

/* Hands every event to the broker; the answer waits until it stored them all (at once for
 * memory). */
static void publish_all(fr_app_t *app, fr_exchange_t *x, const pub_item_t *items, size_t n,
                        int many) {
    batch_t *b = fr_calloc(1, sizeof *b);
    b->x = x;
    b->metrics = app->metrics;
    b->ids = fr_calloc(n, sizeof *b->ids);
    b->n = b->pending = n;
    b->many = many;
    b->refs = fr_calloc(n, sizeof *b->refs);
    x->ops->hold(x);
    b->pending++; /* the loop's own reference, so a synchronous broker cannot finish early */
    for (size_t i = 0; i < n; i++) {
        b->refs[i].batch = b;
        b->refs[i].index = i;
        b->refs[i].prio = items[i].prio;
        fr_pub_t ev = {items[i].topic, items[i].name, items[i].data, items[i].data_len,
                       items[i].prio, items[i].json};
        app->broker->ops->publish(app->broker, &ev, on_item_published, &b->refs[i]);
    }
    batch_done(b);
}

/* One publish request on its way through its hooks. */
typedef struct {
    fr_app_t *app;
    fr_exchange_t *x;        /* held until the hooks are done */
    fr_vm_t *vm;             /* one reference: a reload lets the request finish on its scripts */
    const fr_route_t *route; /* borrowed from vm */
    int req_ref;             /* owned */
    int who_ref;             /* owned */
    const fr_tier_t *tier;
    fr_hooksteps_t seq;
} pubreq_t;

static int push_auth(void *owner) {
    pubreq_t *p = owner;
    int nargs = fr_hook_push_auth(p->vm, p->route, p->req_ref);
    if (!nargs)
        p->who_ref = fr_hook_anonymous(p->vm);
    return nargs;
}

static int read_auth(void *owner) {
    pubreq_t *p = owner;
    char msg[256];
    int status = fr_hook_read_auth(p->vm, p->route, &p->who_ref, msg, sizeof msg);
    if (status) {
        fr_exchange_respond_error(p->x, status, msg);
        return -1;
    }
    return 0;
}

static int push_tier(void *owner) {
    pubreq_t *p = owner;
    return fr_hook_push_tier(p->vm, p->route, p->req_ref, p->who_ref);
}

static int read_tier(void *owner) {
    pubreq_t *p = owner;
    if (fr_hook_read_tier(p->vm, p->route, p->app->config, &p->tier) < 0) {
        fr_exchange_respond_error(p->x, 500, "internal error");
        return -1;
    }
    return 0;
}

/* publish(req, body, who); a body route that is not JSON is answered 400 here. */
static int push_publish(void *owner) {
    pubreq_t *p = owner;
    fr_vm_t *vm = p->vm;
    lua_State *L = vm->L;
    fr_exchange_t *x = p->x;
    fr_vm_push_hook(vm, p->route, FR_HOOK_PUBLISH);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->req_ref);
    const char *body = x->req.body ? x->req.body : "";
    if (p->route->body_json) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->decode_ref);
        lua_pushlstring(L, body, x->req.body_len);
        if (x->req.body_len == 0 || lua_pcall(L, 1, 1, 0) != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "invalid JSON body: %s",
                     x->req.body_len == 0 ? "the body is empty" : lua_tostring(L, -1));
            lua_pop(L, 3);
            fr_exchange_respond_error(x, 400, msg);
            return -1;
        }
    } else {
        lua_pushlstring(L, body, x->req.body_len);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->who_ref);
    return 3;
}

/* The tier's publish bucket (critical events bypass it: alerts must get through a flood).
 * Returns 0, or -1 after answering 429. */
static int take_tokens(pubreq_t *p, const pub_item_t *items, size_t n) {
    if (!p->tier)
        return 0;
    double cost = 0;
    for (size_t i = 0; i < n; i++)
        cost += items[i].prio != FR_PRIO_CRITICAL;
    char client[300];
    unsigned retry_after;
    fr_hook_client_id(p->vm, p->who_ref, p->x->remote, client, sizeof client);
    if (cost > 0 && fr_ratelimit_take(p->app->limits, FR_RL_PUBLISH, p->tier, client, cost,
                                      fr_mono_ms(), &retry_after) < 0) {
        fr_app_count_limited(p->app, p->tier);
        fr_app_too_many(p->x, retry_after, "publishes");
        return -1;
    }
    return 0;
}

/* The events publish returned (its three results on the top of the stack), checked, counted
 * against the tier and handed to the broker. Always answers: returns -1. */
static int read_publish(void *owner) {
    pubreq_t *p = owner;
    fr_vm_t *vm = p->vm;
    lua_State *L = vm->L;
    fr_exchange_t *x = p->x;
    int r = lua_gettop(L) - 2, base = r - 1;
    pub_item_t *items = NULL;
    if (!lua_istable(L, r)) {
        answer_refusal(L, x, p->route, r);
        goto out;
    }
    lua_settop(L, r);
    size_t n = 0;
    int many = 0;
    const char *msg = NULL;
    int status = read_events(vm, p->route, r, &items, &n, &many, &msg);
    if (status) {
        fr_exchange_respond_error(x, status, status == 500 ? "internal error" : msg);
        goto out;
    }
    if (take_tokens(p, items, n) < 0)
        goto out;
    if (!p->app->broker->ops->ready(p->app->broker)) {
        fr_exchange_respond(x, 503, "application/json", "Retry-After: 2\r\n",
                            "{\"error\":\"the broker is unavailable: nothing was published\"}",
                            60);
        goto out;
    }
    publish_all(p->app, x, items, n, many);
out:
    free(items);
    lua_settop(L, base);
    return -1;
}

static const fr_hookstep_t steps[] = {{"auth", 3, push_auth, read_auth},
                                      {"tier", 1, push_tier, read_tier},
                                      {"publish", 3, push_publish, read_publish}};

static void pubreq_free(void *owner) {
    pubreq_t *p = owner;
    lua_State *L = p->vm->L;
    luaL_unref(L, LUA_REGISTRYINDEX, p->req_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, p->who_ref);
    fr_vm_release(p->vm);
    p->x->ops->release(p->x);
    free(p);
}

void fr_app_publish(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref) {
    pubreq_t *p = fr_calloc(1, sizeof *p);
    p->app = app;
    p->x = x;
    x->ops->hold(x);
    p->vm = app->vm;
    fr_vm_retain(p->vm);
    p->route = route;
    p->req_ref = req_ref;
    p->who_ref = LUA_NOREF;
    p->seq = (fr_hooksteps_t){.hc.x = x, .steps = steps, .nsteps = FR_ARRAY_LEN(steps),
                              .vm = p->vm, .route = route, .owner = p, .finish = pubreq_free};
    fr_hooksteps_run(&p->seq);
}
