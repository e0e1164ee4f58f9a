/* Request dispatch: route matching, CORS preflight, the built-in paths, and the `req` table
 * every hook gets. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "base/log.h"
#include "base/util.h"
#include "codec/url.h"
#include "lua/query.h"

/* The browser client (client/freshet.js), embedded at build time. */
extern const char fr_client_js[];
extern const size_t fr_client_js_len;

/* ---- the `req` table -------------------------------------------------------------------- */

/* Pushes the headers table: one value per lower-case name, repeated headers joined with ", "
 * (RFC 9110 §5.3). In linear time: a repeated name first collects its values in a list, and
 * each list is joined once, so thousands of repeats cost what their bytes cost. */
static void push_headers(lua_State *L, const fr_request_t *req) {
    lua_createtable(L, 0, (int)req->nheaders);
    int t = lua_gettop(L), repeated = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const fr_header_t *h = &req->headers[i];
        if (!h->name)
            continue;
        lua_getfield(L, t, h->name);
        if (lua_isnil(L, -1)) {
            lua_pushstring(L, h->value);
            lua_setfield(L, t, h->name);
        } else if (lua_isstring(L, -1)) {
            lua_createtable(L, 4, 0);
            lua_pushvalue(L, -2);
            lua_rawseti(L, -2, 1);
            lua_pushstring(L, h->value);
            lua_rawseti(L, -2, 2);
            lua_setfield(L, t, h->name);
            repeated = 1;
        } else {
            lua_pushstring(L, h->value);
            lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
        }
        lua_pop(L, 1);
    }
    for (size_t i = 0; repeated && i < req->nheaders; i++) {
        const char *name = req->headers[i].name;
        if (!name)
            continue;
        lua_getfield(L, t, name);
        if (lua_istable(L, -1)) {
            luaL_Buffer b;
            int list = lua_gettop(L);
            size_t n = lua_objlen(L, list);
            luaL_buffinit(L, &b);
            for (size_t k = 1; k <= n; k++) {
                if (k > 1)
                    luaL_addlstring(&b, ", ", 2);
                lua_rawgeti(L, list, (int)k);
                luaL_addvalue(&b);
            }
            luaL_pushresult(&b);
            lua_setfield(L, t, name);
        }
        lua_pop(L, 1);
    }
}

/* Pushes {method, path, params, query, headers, remote} and returns a registry ref, or
 * LUA_NOREF when the query is malformed. */
static int push_request(fr_exchange_t *x, lua_State *L, const char *path, fr_param_t *params,
                        size_t nparams, const char *query, size_t qlen) {
    lua_createtable(L, 0, 6);
    lua_pushstring(L, x->req.method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, x->remote);
    lua_setfield(L, -2, "remote");
    lua_createtable(L, 0, (int)nparams);
    for (size_t i = 0; i < nparams; i++) {
        lua_pushstring(L, params[i].value);
        lua_setfield(L, -2, params[i].name);
    }
    lua_setfield(L, -2, "params");
    if (fr_lua_push_query(L, query, qlen) < 0) {
        lua_pop(L, 2);
        return LUA_NOREF;
    }
    lua_setfield(L, -2, "query");
    push_headers(L, &x->req);
    lua_setfield(L, -2, "headers");
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

void fr_app_too_many(fr_exchange_t *x, unsigned retry_after, const char *what) {
    char headers[64], msg[128];
    snprintf(headers, sizeof headers, "Retry-After: %u\r\n", retry_after);
    snprintf(msg, sizeof msg, "{\"error\":\"too many %s: retry in %u s\"}", what, retry_after);
    fr_exchange_respond(x, 429, "application/json", headers, msg, strlen(msg));
}

void fr_app_count_limited(fr_app_t *app, const fr_tier_t *tier) {
    if (tier)
        FR_BUMP(app->tier_rejected[tier - app->config->tiers], 1);
}

/* ---- preflight ---------------------------------------------------------------------------- */

static void respond_preflight(fr_exchange_t *x, const char *allow) {
    char headers[512];
    snprintf(headers, sizeof headers,
             "Allow: %s\r\n"
             "Access-Control-Allow-Methods: %s\r\n"
             "Access-Control-Allow-Headers: Last-Event-ID, Content-Type, Authorization, "
             "X-Event, X-Priority\r\n"
             "Access-Control-Max-Age: 600\r\n",
             allow, allow);
    fr_exchange_respond(x, 204, NULL, headers, NULL, 0);
}

static const char *route_methods(const fr_route_t *r, char *buf, size_t len) {
    switch (r->kind) {
    case FR_ROUTE_STREAM: return "GET, OPTIONS";
    case FR_ROUTE_PUBLISH: return "POST, OPTIONS";
    case FR_ROUTE_HTTP:
        snprintf(buf, len, "%s%s, OPTIONS", r->method,
                 strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
        return buf;
    default: return "GET, HEAD, OPTIONS";
    }
}

static int route_accepts(const fr_route_t *r, const char *method) {
    switch (r->kind) {
    case FR_ROUTE_STREAM: return strcmp(method, "GET") == 0;
    case FR_ROUTE_PUBLISH: return strcmp(method, "POST") == 0;
    case FR_ROUTE_HTTP:
        return strcmp(method, r->method) == 0 ||
               (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
    default: return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    }
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static int is_get(const char *method) {
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* The paths the server answers itself. Returns 1 when it answered. */
static int answer_builtin(fr_app_t *app, fr_exchange_t *x, const char *path, size_t len) {
    static const char client_path[] = "/_freshet/freshet.js";
    if (!app->builtins_elsewhere && fr_app_answer_probe(app->host, app->host_ctx, x, path, len))
        return 1;
    if (len == sizeof client_path - 1 && memcmp(path, client_path, len) == 0 &&
        is_get(x->req.method)) {
        fr_exchange_respond(x, 200, "text/javascript; charset=utf-8", "Cache-Control: no-cache\r\n",
                        fr_client_js, fr_client_js_len);
        return 1;
    }
    return 0;
}

int fr_app_answer_probe(const fr_app_host_t *host, void *ctx, fr_exchange_t *x,
                        const char *path, size_t len) {
    static const struct {
        const char *path;
        size_t len;
    } probes[] = {{"/health", 7}, {"/readyz", 7}, {"/metrics", 8}};
    size_t i = 0;
    while (i < 3 && !(len == probes[i].len && memcmp(path, probes[i].path, len) == 0))
        i++;
    if (i == 3)
        return 0;
    if (!is_get(x->req.method)) {
        char body[96];
        int n = snprintf(body, sizeof body, "{\"error\":\"%s answers GET and HEAD\"}",
                         probes[i].path);
        fr_exchange_respond(x, 405, "application/json", "Allow: GET, HEAD\r\n", body, (size_t)n);
        return 1;
    }
    if (i == 0)
        host->health(ctx, x);
    else if (i == 1)
        host->ready(ctx, x);
    else
        host->metrics(ctx, x);
    return 1;
}

/* What matching found: the route to run, or one that matches the path with another method
 * (405, with the methods it takes). */
typedef struct {
    const fr_route_t *match, *path_match;
    char allow[64];
    fr_param_t params[FR_MAX_PARAMS]; /* the match's, owned */
    size_t nparams;
} match_t;

/* Stream, publish and http routes, in the order the app declared them. Returns -1 on a path whose
 * percent-encoding is malformed. */
static int match_patterns(const fr_vm_t *vm, const char *method, const char *path, size_t len,
                          match_t *m) {
    for (size_t i = 0; i < vm->nroutes; i++) {
        const fr_route_t *r = &vm->routes[i];
        if (r->kind == FR_ROUTE_STATIC)
            continue;
        int found = fr_pattern_match(&r->pattern, path, len, m->params, &m->nparams);
        if (found < 0)
            return -1;
        if (found == 0)
            continue;
        if (route_accepts(r, method) || strcmp(method, "OPTIONS") == 0) {
            m->match = r;
            return 0;
        }
        char methods[64];
        if (!m->path_match) {
            m->path_match = r;
            snprintf(m->allow, sizeof m->allow, "%s", route_methods(r, methods, sizeof methods));
        } else if (r->kind == FR_ROUTE_HTTP || r->kind != m->path_match->kind) {
            /* Several routes on one path: every method any of them takes. */
            const char *more = route_methods(r, methods, sizeof methods);
            size_t mlen = strcspn(more, ",");
            size_t have = strlen(m->allow) - strlen(", OPTIONS");
            char token[24];
            snprintf(token, sizeof token, "%.*s,", (int)mlen, more);
            if (!strstr(m->allow, token) && have + mlen + 11 < sizeof m->allow)
                snprintf(m->allow + have, sizeof m->allow - have, ", %.*s, OPTIONS", (int)mlen,
                         more);
        }
        fr_params_free(m->params, m->nparams);
        m->nparams = 0;
    }
    return 0;
}

/* The static route with the longest prefix of the path. */
static void match_static(const fr_vm_t *vm, const char *method, const char *path, size_t len,
                         match_t *m) {
    size_t best = 0;
    for (size_t i = 0; i < vm->nroutes; i++) {
        const fr_route_t *r = &vm->routes[i];
        if (r->kind != FR_ROUTE_STATIC || !r->path)
            continue;
        size_t pl = strlen(r->prefix);
        if (len >= pl && memcmp(path, r->prefix, pl) == 0 && (len == pl || path[pl] == '/') &&
            (!m->match || pl > best)) {
            m->match = r;
            best = pl;
        }
    }
    if (m->match && !route_accepts(m->match, method) && strcmp(method, "OPTIONS") != 0) {
        m->path_match = m->match;
        m->match = NULL;
        char methods[64];
        snprintf(m->allow, sizeof m->allow, "%s",
                 route_methods(m->path_match, methods, sizeof methods));
    }
}

static void answer_unmatched(fr_exchange_t *x, const match_t *m) {
    if (!m->path_match) {
        fr_exchange_respond_error(x, 404, "no route for this path");
        return;
    }
    char h[96], msg[128];
    snprintf(h, sizeof h, "Allow: %s\r\n", m->allow);
    snprintf(msg, sizeof msg, "{\"error\":\"method %s is not allowed here\"}", x->req.method);
    fr_exchange_respond(x, 405, "application/json", h, msg, strlen(msg));
}

/* A stream or publish route: the `req` table, then the route's own handling. */
static void run_script_route(fr_app_t *app, fr_exchange_t *x, match_t *m, const char *raw_path,
                             size_t path_len, const char *query, size_t qlen) {
    const fr_route_t *r = m->match;
    if (r->deprecation) {
        /* Every answer of the route says so, refusals included, and operators can see who
         * still calls it. */
        x->route_headers = r->deprecation;
        fr_counts_bump(app->deprecated, r->pattern.source);
    }
    char *path = fr_malloc(path_len + 1);
    if (fr_url_decode(raw_path, path_len, path, 0) < 0) {
        free(path);
        fr_exchange_respond_error(x, 400, "invalid percent-encoding in the path");
        return;
    }
    lua_State *L = app->vm->L;
    int req_ref = push_request(x, L, path, m->params, m->nparams, query, qlen);
    free(path);
    if (req_ref == LUA_NOREF) {
        fr_exchange_respond_error(x, 400, "invalid percent-encoding in the query string");
        return;
    }
    if (r->kind == FR_ROUTE_STREAM) {
        fr_app_open(app, x, r, req_ref);
    } else if (r->kind == FR_ROUTE_HTTP) {
        fr_app_http(app, x, r, req_ref);
    } else {
        fr_app_publish(app, x, r, req_ref);
    }
}

void fr_app_handle(void *ctx, fr_exchange_t *x) {
    fr_app_t *app = ctx;
    if (x->req.url[0] != '/') {
        fr_exchange_respond_error(x, 400, "request target must be an absolute path or URL");
        return;
    }
    size_t path_len, qlen;
    const char *query;
    fr_url_split(x->req.url, x->req.url_len, &path_len, &query, &qlen);
    const char *path = x->req.url;
    if (answer_builtin(app, x, path, path_len))
        return;
    /* Stream and publish routes first; then the static route with the longest matching
     * prefix. A path that matches only with another method answers 405 with the methods it
     * does take. */
    match_t m;
    memset(&m, 0, sizeof m);
    if (match_patterns(app->vm, x->req.method, path, path_len, &m) < 0) {
        fr_exchange_respond_error(x, 400, "invalid percent-encoding in the path");
        return;
    }
    if (!m.match && !m.path_match)
        match_static(app->vm, x->req.method, path, path_len, &m);
    if (!m.match)
        answer_unmatched(x, &m);
    else if (strcmp(x->req.method, "OPTIONS") == 0) {
        char methods[64];
        respond_preflight(x, route_methods(m.match, methods, sizeof methods));
    }
    else if (m.match->kind == FR_ROUTE_STATIC)
        fr_app_static(app, x, m.match, path + strlen(m.match->prefix),
                      path_len - strlen(m.match->prefix));
    else
        run_script_route(app, x, &m, path, path_len, query, qlen);
    fr_params_free(m.params, m.nparams);
}
