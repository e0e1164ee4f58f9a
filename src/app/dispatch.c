#include "app/dispatch.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/conn.h"
#include "base/log.h"
#include "app/metrics.h"
#include "server/worker.h"
#include "stream/stream.h"
#include "codec/url.h"
#include "base/util.h"

/* The browser client (client/freshet.js), embedded at build time. */
extern const char fr_client_js[];
extern const size_t fr_client_js_len;

/* ---- the `req` table -------------------------------------------------------------------- */

static void on_query_pair(void *ctx, const char *k, size_t kl, const char *v, size_t vl) {
    lua_State *L = ctx;
    /* The first occurrence of a repeated key wins, as most frameworks do. */
    lua_pushlstring(L, k, kl);
    lua_rawget(L, -2);
    int seen = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (seen)
        return;
    lua_pushlstring(L, k, kl);
    lua_pushlstring(L, v, vl);
    lua_rawset(L, -3);
}

/* Pushes {method, path, params, query, headers, remote} and returns a registry ref, or
 * LUA_NOREF when the query is malformed. */
static int push_request(fr_conn_t *c, lua_State *L, const char *path, fr_param_t *params,
                        size_t nparams, const char *query, size_t qlen) {
    lua_createtable(L, 0, 6);
    lua_pushstring(L, c->req.method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, c->remote);
    lua_setfield(L, -2, "remote");
    lua_createtable(L, 0, (int)nparams);
    for (size_t i = 0; i < nparams; i++) {
        lua_pushstring(L, params[i].value);
        lua_setfield(L, -2, params[i].name);
    }
    lua_setfield(L, -2, "params");
    lua_newtable(L);
    if (query && fr_url_each_query(query, qlen, on_query_pair, L) < 0) {
        lua_pop(L, 2);
        return LUA_NOREF;
    }
    lua_setfield(L, -2, "query");
    lua_createtable(L, 0, (int)c->req.nheaders);
    for (size_t i = 0; i < c->req.nheaders; i++) {
        fr_header_t *h = &c->req.headers[i];
        if (!h->name)
            continue;
        lua_getfield(L, -1, h->name);
        if (lua_isstring(L, -1)) {
            /* Repeated headers are joined with ", " (RFC 9110 field combination). */
            lua_pushliteral(L, ", ");
            lua_pushstring(L, h->value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, h->value);
        }
        lua_setfield(L, -2, h->name);
    }
    lua_setfield(L, -2, "headers");
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

int fr_dispatch_auth(fr_conn_t *c, fr_vm_t *vm, const fr_route_t *route, int req_ref,
                     int *who_ref) {
    lua_State *L = vm->L;
    if (!fr_vm_push_hook(vm, route, FR_HOOK_AUTH)) {
        lua_newtable(L);
        *who_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    if (fr_vm_call(vm, route, "auth", 1, 3) != 0) {
        fr_conn_respond_error(c, 500, "internal error");
        return -1;
    }
    if (lua_istable(L, -3)) {
        lua_pop(L, 2);
        *who_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 0;
    }
    if (lua_toboolean(L, -3)) {
        fr_error("route %s: auth must return an identity table, or nil, status, message; got %s",
                 route->pattern.source, luaL_typename(L, -3));
        lua_pop(L, 3);
        fr_conn_respond_error(c, 500, "internal error");
        return -1;
    }
    int status = lua_isnumber(L, -2) ? (int)lua_tointeger(L, -2) : 403;
    if (status < 400 || status > 599)
        status = 403;
    const char *msg = lua_isstring(L, -1) ? lua_tostring(L, -1) : "not allowed";
    fr_conn_respond_error(c, status, msg);
    lua_pop(L, 3);
    return -1;
}

const char *fr_dispatch_client_id(fr_conn_t *c, fr_vm_t *vm, int who_ref, char *buf,
                                  size_t len) {
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, who_ref);
    lua_getfield(L, -1, "id");
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
        snprintf(buf, len, "id:%s", lua_tostring(L, -1));
    else
        snprintf(buf, len, "addr:%s", c->remote);
    lua_pop(L, 2);
    return buf;
}

int fr_dispatch_tier(fr_conn_t *c, fr_vm_t *vm, const fr_route_t *route, int req_ref,
                     int who_ref, const fr_tier_t **tier) {
    lua_State *L = vm->L;
    *tier = NULL;
    if (!fr_vm_push_hook(vm, route, FR_HOOK_TIER))
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, who_ref);
    if (fr_vm_call(vm, route, "tier", 2, 1) != 0)
        goto fail;
    if (lua_type(L, -1) == LUA_TSTRING) {
        *tier = fr_config_tier(c->worker->config, lua_tostring(L, -1));
        if (!*tier) {
            fr_error("route %s: tier hook returned unknown tier '%s'", route->pattern.source,
                     lua_tostring(L, -1));
            lua_pop(L, 1);
            goto fail;
        }
    } else if (!lua_isnil(L, -1)) {
        fr_error("route %s: tier hook must return a tier name or nil, got %s",
                 route->pattern.source, luaL_typename(L, -1));
        lua_pop(L, 1);
        goto fail;
    }
    lua_pop(L, 1);
    return 0;
fail:
    fr_conn_respond_error(c, 500, "internal error");
    return -1;
}

void fr_dispatch_too_many(fr_conn_t *c, unsigned retry_after, const char *what) {
    char headers[64], msg[128];
    snprintf(headers, sizeof headers, "Retry-After: %u\r\n", retry_after);
    snprintf(msg, sizeof msg, "{\"error\":\"too many %s: retry in %u s\"}", what, retry_after);
    fr_conn_respond(c, 429, "application/json", headers, msg, strlen(msg));
}

/* ---- /health and preflight --------------------------------------------------------------- */

static void respond_health(fr_conn_t *c) {
    fr_worker_t *w = c->worker;
    char body[320];
    int ok = fr_worker_broker_ok(w);
    fr_totals_t t;
    fr_worker_totals(w, &t, NULL);
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"broker\":{\"kind\":\"%s\",\"status\":\"%s\"},"
                     "\"connections\":%zu,\"streams\":%zu,\"topics\":%zu,"
                     "\"published\":%llu,\"uptime\":%llu}",
                     ok ? "ok" : "degraded", w->broker_remote ? "redis" : "memory",
                     ok ? "ok" : "unavailable", t.nconns, t.nstreams, t.ntopics,
                     (unsigned long long)t.published,
                     (unsigned long long)((fr_mono_ms() - w->started_ms) / 1000));
    fr_conn_respond(c, 200, "application/json", "Cache-Control: no-cache\r\n", body, (size_t)n);
}

static void respond_preflight(fr_conn_t *c, const char *allow) {
    char headers[512];
    snprintf(headers, sizeof headers,
             "Allow: %s\r\n"
             "Access-Control-Allow-Methods: %s\r\n"
             "Access-Control-Allow-Headers: Last-Event-ID, Content-Type, Authorization, "
             "X-Event, X-Priority\r\n"
             "Access-Control-Max-Age: 600\r\n",
             allow, allow);
    fr_conn_respond(c, 204, NULL, headers, NULL, 0);
}

static const char *route_methods(const fr_route_t *r) {
    switch (r->kind) {
    case FR_ROUTE_STREAM: return "GET, OPTIONS";
    case FR_ROUTE_PUBLISH: return "POST, OPTIONS";
    default: return "GET, HEAD, OPTIONS";
    }
}

static int route_accepts(const fr_route_t *r, const char *method) {
    switch (r->kind) {
    case FR_ROUTE_STREAM: return strcmp(method, "GET") == 0;
    case FR_ROUTE_PUBLISH: return strcmp(method, "POST") == 0;
    default: return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    }
}

/* ---- dispatch ------------------------------------------------------------------------------ */

void fr_dispatch(fr_conn_t *c) {
    fr_worker_t *w = c->worker;
    fr_vm_t *vm = w->vm;
    size_t path_len, qlen;
    const char *query;
    if (c->req.url[0] != '/') {
        fr_conn_respond_error(c, 400, "request target must be an absolute path");
        return;
    }
    fr_url_split(c->req.url, c->req.url_len, &path_len, &query, &qlen);
    const char *raw_path = c->req.url;

    if (path_len == 7 && memcmp(raw_path, "/health", 7) == 0) {
        static const char body[] = "{\"error\":\"/health answers GET and HEAD\"}";
        if (strcmp(c->req.method, "GET") == 0 || strcmp(c->req.method, "HEAD") == 0)
            respond_health(c);
        else
            fr_conn_respond(c, 405, "application/json", "Allow: GET, HEAD\r\n", body,
                            sizeof body - 1);
        return;
    }
    static const char client_path[] = "/_freshet/freshet.js";
    if (path_len == sizeof client_path - 1 && memcmp(raw_path, client_path, path_len) == 0 &&
        (strcmp(c->req.method, "GET") == 0 || strcmp(c->req.method, "HEAD") == 0)) {
        fr_conn_respond(c, 200, "text/javascript; charset=utf-8", "Cache-Control: no-cache\r\n",
                        fr_client_js, fr_client_js_len);
        return;
    }
    if (path_len == 8 && memcmp(raw_path, "/metrics", 8) == 0 &&
        (strcmp(c->req.method, "GET") == 0 || strcmp(c->req.method, "HEAD") == 0)) {
        fr_metrics_respond(c);
        return;
    }

    /* Stream and publish routes first, in the order the app declared them; then the static
     * route with the longest matching prefix. A path that matches only with another method
     * answers 405 with the methods it does take. */
    fr_param_t params[FR_MAX_PARAMS];
    size_t nparams = 0;
    const fr_route_t *match = NULL, *path_match = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < vm->nroutes && !match; i++) {
        const fr_route_t *r = &vm->routes[i];
        if (r->kind == FR_ROUTE_STATIC)
            continue;
        int m = fr_pattern_match(&r->pattern, raw_path, path_len, params, &nparams);
        if (m < 0) {
            fr_conn_respond_error(c, 400, "invalid percent-encoding in the path");
            return;
        }
        if (m == 0)
            continue;
        if (route_accepts(r, c->req.method) || strcmp(c->req.method, "OPTIONS") == 0) {
            match = r;
            break;
        }
        if (!path_match) {
            path_match = r;
            snprintf(allow, sizeof allow, "%s", route_methods(r));
        } else if (r->kind != path_match->kind) {
            snprintf(allow, sizeof allow, "GET, POST, OPTIONS");
        }
        fr_params_free(params, nparams);
        nparams = 0;
    }
    if (!match && !path_match) {
        size_t best = 0;
        for (size_t i = 0; i < vm->nroutes; i++) {
            const fr_route_t *r = &vm->routes[i];
            if (r->kind != FR_ROUTE_STATIC || !r->path)
                continue;
            size_t pl = strlen(r->prefix);
            if (path_len >= pl && memcmp(raw_path, r->prefix, pl) == 0 &&
                (path_len == pl || raw_path[pl] == '/') && (!match || pl > best)) {
                match = r;
                best = pl;
            }
        }
        if (match && !route_accepts(match, c->req.method) && strcmp(c->req.method, "OPTIONS") != 0) {
            path_match = match;
            match = NULL;
            snprintf(allow, sizeof allow, "%s", route_methods(path_match));
        }
    }
    if (!match) {
        if (path_match) {
            char h[96];
            snprintf(h, sizeof h, "Allow: %s\r\n", allow);
            char msg[128];
            snprintf(msg, sizeof msg, "{\"error\":\"method %s is not allowed here\"}", c->req.method);
            fr_conn_respond(c, 405, "application/json", h, msg, strlen(msg));
        } else {
            fr_conn_respond_error(c, 404, "no route for this path");
        }
        return;
    }
    if (strcmp(c->req.method, "OPTIONS") == 0) {
        fr_params_free(params, nparams);
        respond_preflight(c, route_methods(match));
        return;
    }
    if (match->kind == FR_ROUTE_STATIC) {
        size_t pl = strlen(match->prefix);
        fr_static_serve(c, match, raw_path + pl, path_len - pl);
        return;
    }

    char *path = fr_malloc(path_len + 1);
    if (fr_url_decode(raw_path, path_len, path, 0) < 0) {
        free(path);
        fr_params_free(params, nparams);
        fr_conn_respond_error(c, 400, "invalid percent-encoding in the path");
        return;
    }
    lua_State *L = vm->L;
    int req_ref = push_request(c, L, path, params, nparams, query, qlen);
    free(path);
    fr_params_free(params, nparams);
    if (req_ref == LUA_NOREF) {
        fr_conn_respond_error(c, 400, "invalid percent-encoding in the query string");
        return;
    }
    if (match->kind == FR_ROUTE_STREAM && w->stopping)
        fr_conn_respond(c, 503, "application/json", "Retry-After: 1\r\n",
                        "{\"error\":\"shutting down\"}", 25);
    else if (match->kind == FR_ROUTE_STREAM)
        fr_stream_open(c, vm, match, req_ref);
    else
        fr_publish_handle(c, vm, match, req_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, req_ref);
}
