/* Http routes (app:http): auth → tier → handle(req, body, who) → status, body[, headers].
 * A table body is sent as JSON. Each hook may wait (app/hookcall.h): handle may call
 * freshet.http.request, freshet.sleep, freshet.position, and publish with freshet.publish.
 * The request is held until the answer is out. */
#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "app/hookcall.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "lua/hooks.h"

typedef struct {
    fr_app_t *app;
    fr_exchange_t *x;        /* held until the answer */
    fr_vm_t *vm;             /* one reference: a reload lets the request finish on its scripts */
    const fr_route_t *route; /* borrowed from vm */
    int req_ref, who_ref;    /* owned */
    fr_hooksteps_t seq;
} httpreq_t;

static int push_auth(void *owner) {
    httpreq_t *h = owner;
    int nargs = fr_hook_push_auth(h->vm, h->route, h->req_ref);
    if (!nargs)
        h->who_ref = fr_hook_anonymous(h->vm);
    return nargs;
}

static int read_auth(void *owner) {
    httpreq_t *h = owner;
    char msg[256];
    int status = fr_hook_read_auth(h->vm, h->route, &h->who_ref, msg, sizeof msg);
    if (status) {
        fr_exchange_respond_error(h->x, status, msg);
        return -1;
    }
    return 0;
}

static int push_tier(void *owner) {
    httpreq_t *h = owner;
    return fr_hook_push_tier(h->vm, h->route, h->req_ref, h->who_ref);
}

/* The tier's request bucket: an http request costs what a publish does (one token). */
static int read_tier(void *owner) {
    httpreq_t *h = owner;
    const fr_tier_t *tier;
    if (fr_hook_read_tier(h->vm, h->route, h->app->config, &tier) < 0) {
        fr_exchange_respond_error(h->x, 500, "internal error");
        return -1;
    }
    if (!tier)
        return 0;
    char client[300];
    unsigned retry_after;
    fr_hook_client_id(h->vm, h->who_ref, h->x->remote, client, sizeof client);
    if (fr_ratelimit_take(h->app->limits, FR_RL_PUBLISH, tier, client, 1, fr_mono_ms(),
                          &retry_after) < 0) {
        fr_app_count_limited(h->app, tier);
        fr_app_too_many(h->x, retry_after, "requests");
        return -1;
    }
    return 0;
}

/* handle(req, body, who): body is the raw text, or with body = "json" the decoded value
 * (nil when the request has no body; 400 when it is not JSON). */
static int push_handle(void *owner) {
    httpreq_t *h = owner;
    fr_vm_t *vm = h->vm;
    lua_State *L = vm->L;
    fr_exchange_t *x = h->x;
    fr_vm_push_hook(vm, h->route, FR_HOOK_HANDLE);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->req_ref);
    const char *body = x->req.body ? x->req.body : "";
    if (h->route->body_json && x->req.body_len == 0) {
        lua_pushnil(L);
    } else if (h->route->body_json) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->decode_ref);
        lua_pushlstring(L, body, x->req.body_len);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "invalid JSON body: %s", lua_tostring(L, -1));
            lua_pop(L, 3);
            fr_exchange_respond_error(x, 400, msg);
            return -1;
        }
    } else {
        lua_pushlstring(L, body, x->req.body_len);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->who_ref);
    return 3;
}

/* A header the script may set: a token name, a value without CR, LF or NUL, and none of the
 * ones that frame the message (the server's own). */
static const char *check_header(const char *name, size_t nlen, const char *value, size_t vlen) {
    static const char *const reserved[] = {"content-length", "transfer-encoding", "connection",
                                           NULL};
    if (nlen == 0)
        return "an empty header name";
    for (size_t i = 0; i < nlen; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!isalnum(ch) && !strchr("!#$%&'*+-.^_`|~", ch))
            return "a header name that is not a token";
    }
    for (size_t i = 0; i < vlen; i++) {
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
            return "CR, LF or NUL in a header value";
    }
    for (const char *const *r = reserved; *r; r++) {
        if (strlen(*r) == nlen && strncasecmp(name, *r, nlen) == 0)
            return "a header the server sets itself (Content-Length, Transfer-Encoding, "
                   "Connection)";
    }
    return NULL;
}

/* Reads the headers table at idx into b ("Name: value\r\n" lines) and *ctype (kept on the
 * stack at the caller's slot). Returns NULL or what was wrong. */
static const char *read_headers(lua_State *L, int idx, fr_buf_t *b, int ctype_slot) {
    if (lua_isnil(L, idx))
        return NULL;
    if (!lua_istable(L, idx))
        return "headers must be a table of name = value";
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING ||
            (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
            lua_pop(L, 2);
            return "headers must be a table of name = string";
        }
        size_t nlen, vlen;
        const char *name = lua_tolstring(L, -2, &nlen);
        lua_pushvalue(L, -1); /* tolstring on a copy: a number key must stay a number */
        const char *value = lua_tolstring(L, -1, &vlen);
        const char *bad = check_header(name, nlen, value, vlen);
        if (bad) {
            lua_pop(L, 3);
            return bad;
        }
        if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0) {
            lua_replace(L, ctype_slot);
        } else {
            fr_buf_put(b, name, nlen);
            fr_buf_put(b, ": ", 2);
            fr_buf_put(b, value, vlen);
            fr_buf_put(b, "\r\n", 2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return NULL;
}

/* status, body[, headers] on the top of the stack: the answer. Always answers: returns -1. */
static int read_handle(void *owner) {
    httpreq_t *h = owner;
    lua_State *L = h->vm->L;
    int r = lua_gettop(L) - 2, base = r - 1;
    const char *bad = NULL;
    fr_buf_t headers = {0};
    lua_pushnil(L); /* the content type's slot */
    int ctype_slot = lua_gettop(L);
    int status = lua_type(L, r) == LUA_TNUMBER ? (int)lua_tointeger(L, r) : 0;
    if (lua_type(L, r) != LUA_TNUMBER || lua_tonumber(L, r) != status || status < 200 ||
        status > 599) {
        bad = lua_type(L, r) == LUA_TNUMBER ? "the status must be an integer from 200 to 599"
                                            : "the first result must be the status (a number)";
    } else if (lua_istable(L, r + 1)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->vm->encode_ref);
        lua_pushvalue(L, r + 1);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            fr_error("route %s: handle: the body table cannot be sent as JSON: %s",
                     h->route->pattern.source, lua_tostring(L, -1));
            bad = "";
        } else {
            lua_replace(L, r + 1);
            lua_pushliteral(L, "application/json");
            lua_replace(L, ctype_slot);
        }
    } else if (lua_isnil(L, r + 1)) {
        lua_pushliteral(L, "");
        lua_replace(L, r + 1);
    } else if (lua_type(L, r + 1) == LUA_TSTRING) {
        lua_pushliteral(L, "text/plain; charset=utf-8");
        lua_replace(L, ctype_slot);
    } else {
        bad = "the body must be a string, a table (sent as JSON) or nil";
    }
    if (!bad)
        bad = read_headers(L, r + 2, &headers, ctype_slot);
    if (bad) {
        if (*bad)
            fr_error("route %s: handle must return status, body[, headers]: %s (got %s, %s)",
                     h->route->pattern.source, bad, luaL_typename(L, r),
                     luaL_typename(L, r + 1));
        fr_exchange_respond_error(h->x, 500, "internal error");
    } else {
        size_t len;
        const char *body = lua_tolstring(L, r + 1, &len);
        const char *ctype = lua_isstring(L, ctype_slot) && len ? lua_tostring(L, ctype_slot)
                                                                : NULL;
        fr_buf_putc(&headers, '\0');
        fr_exchange_respond(h->x, status, ctype, headers.p, body, len);
    }
    fr_buf_free(&headers);
    lua_settop(L, base);
    return -1;
}

static const fr_hookstep_t steps[] = {{"auth", 3, push_auth, read_auth},
                                      {"tier", 1, push_tier, read_tier},
                                      {"handle", 3, push_handle, read_handle}};

static void httpreq_free(void *owner) {
    httpreq_t *h = owner;
    lua_State *L = h->vm->L;
    luaL_unref(L, LUA_REGISTRYINDEX, h->req_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, h->who_ref);
    fr_vm_release(h->vm);
    h->x->ops->release(h->x);
    free(h);
}

void fr_app_http(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, int req_ref) {
    httpreq_t *h = fr_calloc(1, sizeof *h);
    h->app = app;
    h->x = x;
    x->ops->hold(x);
    h->vm = app->vm;
    fr_vm_retain(h->vm);
    h->route = route;
    h->req_ref = req_ref;
    h->who_ref = LUA_NOREF;
    h->seq = (fr_hooksteps_t){.hc.x = x, .steps = steps, .nsteps = FR_ARRAY_LEN(steps),
                              .vm = h->vm, .route = route, .owner = h, .finish = httpreq_free};
    fr_hooksteps_run(&h->seq);
}
