/* freshet.http.request's C half (core.http_request, core.http_response): a backend call made
 * through the worker's client (client/http_client.h) while the hook's task waits.
 *
 *   http.lua ──core.http_request──► fr_hclient_request ──► yield
 *   … the answer ──► resume with one light userdata (the answer) ──► http.lua calls
 *   core.http_response(it) at once ──► res table, or nil, err
 *
 * The table is built by the resumed coroutine itself (fr_task_resume_with). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "client/http_client.h"
#include "lua/api.h"
#include "lua/task.h"
#include "lua/vm_build.h"

#define FR_HTTP_MAX_HEADERS 64

/* What the task is resumed with; valid while the coroutine runs on from the resume. */
typedef struct {
    const fr_hresponse_t *res;
    const char *err;
} answer_t;

/* ctx is the task; the call is what it waits on. */
static void on_answer(void *ctx, const fr_hresponse_t *res, const char *err) {
    answer_t a = {res, err};
    fr_task_resume_with(ctx, &a);
}

static void cancel(void *call) {
    fr_hcall_cancel(call);
}

/* Header table {name = value} at idx → out[]; the strings stay on the coroutine's stack (the
 * arguments of a yielded call remain there until it resumes). */
static int read_headers(lua_State *L, int idx, fr_hheader_t *out, size_t *n) {
    *n = 0;
    if (lua_isnil(L, idx))
        return 0;
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "headers must map names to strings");
        if (*n == FR_HTTP_MAX_HEADERS)
            return luaL_error(L, "at most %d headers", FR_HTTP_MAX_HEADERS);
        fr_hheader_t *h = &out[(*n)++];
        h->name = lua_tolstring(L, -2, &h->name_len);
        h->value = lua_tolstring(L, -1, &h->value_len);
    }
    return 0;
}

/* core.http_request(method, url, headers|nil, body|nil, timeout_ms, ca|nil, verify): the
 * arguments are checked by http.lua; yields, or returns nil, err when the call cannot start.
 * ca is a PEM file, relative to the app file's directory unless absolute. */
int fr_lua_http_request(lua_State *L) {
    const char *method = luaL_checkstring(L, 1);
    const char *url = luaL_checkstring(L, 2);
    fr_hheader_t headers[FR_HTTP_MAX_HEADERS];
    size_t nheaders;
    read_headers(L, 3, headers, &nheaders);
    size_t body_len = 0;
    const char *body = lua_isnil(L, 4) ? NULL : luaL_checklstring(L, 4, &body_len);
    double timeout = luaL_checknumber(L, 5);
    const char *ca = luaL_optstring(L, 6, NULL);
    int verify = lua_isnone(L, 7) || lua_toboolean(L, 7);
    fr_task_t *t = fr_task_current(L);
    if (!t)
        return luaL_error(L, "%s", FR_TASK_CANNOT_WAIT);
    const fr_vm_t *vm = fr_task_vm(t);
    if (!vm->host || !vm->host->backend) {
        lua_pushnil(L);
        lua_pushliteral(L, "no backend client in this process");
        return 2;
    }
    if (fr_task_count_call(t) > vm->config.calls_per_hook) {
        lua_pushnil(L);
        lua_pushfstring(L, "too many backend calls in one hook (limits.calls_per_hook = %d)",
                        (int)vm->config.calls_per_hook);
        return 2;
    }
    /* Without a timeout of its own a call has no deadline but the hook's (timeouts.hook),
     * which answers 504. */
    uint64_t timeout_ms = timeout > 0 ? (uint64_t)timeout : 0;
    char *ca_path = ca && verify ? fr_vm_resolve(vm->app_dir, ca) : NULL;
    fr_hrequest_t req = {method, url, headers, nheaders, body, body_len, timeout_ms, ca_path, !verify};
    fr_hcall_t *call;
    const char *err;
    int rc = fr_hclient_request(vm->host->backend, &req, on_answer, t, &call, &err);
    free(ca_path);
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    fr_task_wait(t, cancel, call);
    return lua_yield(L, 0);
}

/* core.http_response(answer) → {status=, headers=, body=}, or nil, err. Duplicate response
 * headers are joined with ", " (as HTTP allows for all but Set-Cookie, which keeps the
 * last one). */
int fr_lua_http_response(lua_State *L) {
    const answer_t *a = fr_task_answer(L, 1);
    if (!a)
        return luaL_error(L, "core.http_response: no answer to read here");
    if (a->err) {
        lua_pushnil(L);
        lua_pushstring(L, a->err);
        return 2;
    }
    const fr_hresponse_t *res = a->res;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, res->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, (int)res->nheaders);
    for (size_t i = 0; i < res->nheaders; i++) {
        const fr_hheader_t *h = &res->headers[i];
        lua_pushlstring(L, h->name, h->name_len);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        int joined = !lua_isnil(L, -1) && strcmp(lua_tostring(L, -2), "set-cookie") != 0;
        if (joined) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, h->value, h->value_len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->value_len);
        }
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, res->body ? res->body : "", res->body_len);
    lua_setfield(L, -2, "body");
    return 1;
}
