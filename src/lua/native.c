#include "lua/native.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <string.h>

#include "codec/router.h"
#include "codec/url.h"
#include "core/event.h"
#include "core/shared_dict.h"
#include "lua/query.h"
#include "lua/shared.h"

#define PATTERN_MT "freshet.pattern"

/* The answers src/app/dispatch.c gives a request whose path or query does not decode;
 * tests/integration/43_harness_parity.py holds the two to the same words. */
#define BAD_PATH "invalid percent-encoding in the path"
#define BAD_QUERY "invalid percent-encoding in the query string"

/* Raises "freshet.native.<fn>: bad argument #<idx> '<name>' (<expected> expected, got <type>)". */
static int arg_error(lua_State *L, const char *fn, int idx, const char *name,
                     const char *expected) {
    return luaL_error(L, "freshet.native.%s: bad argument #%d '%s' (%s expected, got %s)", fn, idx,
                      name, expected, luaL_typename(L, idx));
}

static const char *check_string(lua_State *L, const char *fn, int idx, const char *name,
                                size_t *len) {
    if (lua_type(L, idx) != LUA_TSTRING)
        arg_error(L, fn, idx, name, "string");
    return lua_tolstring(L, idx, len);
}

static int push_failure(lua_State *L, const char *msg) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* ---- the checks freshet.core makes -------------------------------------------------------- */

/* luaL_error with the position of the function `level` frames up (1: the caller of the running
 * C function, as luaL_error has it); none for level 0. */
static int raise_at(lua_State *L, int level, const char *fmt, ...) {
    if (level > 0)
        luaL_where(L, level);
    else
        lua_pushliteral(L, "");
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

uint64_t fr_lua_timer_args(lua_State *L, int level, int *repeat) {
    const char *kind = luaL_checkstring(L, 1);
    *repeat = strcmp(kind, "every") == 0;
    const char *bound = *repeat ? ">= 1" : ">= 0";
    if (lua_type(L, 2) != LUA_TNUMBER)
        raise_at(L, level, "freshet.%s: bad argument #1 'ms' (a number of milliseconds %s, got %s)",
                 kind, bound, luaL_typename(L, 2));
    lua_Number ms = lua_tonumber(L, 2);
    /* Written so that NaN is refused too. */
    if (!(ms >= (*repeat ? 1 : 0) && ms <= 86400000.0 * 365))
        raise_at(L, level, "freshet.%s: bad argument #1 'ms' (a number of milliseconds %s, got %f)",
                 kind, bound, ms);
    if (!lua_isfunction(L, 3))
        raise_at(L, level, "freshet.%s: bad argument #2 'fn' (function expected, got %s)", kind,
                 luaL_typename(L, 3));
    return (uint64_t)ms;
}

fr_log_level_t fr_lua_log_level(lua_State *L, int level) {
    fr_log_level_t out = FR_LOG_INFO;
    const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    if (!name)
        raise_at(L, level,
                 "freshet.log: bad argument #1 'level' (debug, info, warn or error, got %s)",
                 luaL_typename(L, 1));
    if (fr_log_parse_level(name, &out) < 0)
        raise_at(L, level,
                 "freshet.log: bad argument #1 'level' (debug, info, warn or error, got '%s')",
                 name);
    return out;
}

/* event_check(topic, name|nil, data) → true | nil, err */
static int l_native_event_check(lua_State *L) {
    size_t tlen, nlen = 0, dlen;
    const char *topic = check_string(L, "event_check", 1, "topic", &tlen);
    const char *name = NULL;
    if (!lua_isnoneornil(L, 2))
        name = check_string(L, "event_check", 2, "name", &nlen);
    const char *data = check_string(L, "event_check", 3, "data", &dlen);
    const char *err;
    if (fr_event_check(topic, tlen, name, nlen, data, dlen, &err) < 0)
        return push_failure(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* priority_check(value) → the priority's name | nil, err. Any value: as the server reads a
 * priority, a number is taken as its text and the name ends at a NUL. */
static int l_native_priority_check(lua_State *L) {
    int t = lua_type(L, 1);
    const char *name = t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(L, 1) : NULL;
    fr_priority_t prio;
    if (!name || fr_priority_parse(name, &prio) < 0)
        return push_failure(L, FR_PRIORITY_ERROR);
    lua_pushstring(L, fr_priority_name(prio));
    return 1;
}

/* timer_check(kind, ms, fn) → whole ms. Raises without a position: the harness blames the
 * script line that called freshet.every or freshet.after, as the server does. */
static int l_native_timer_check(lua_State *L) {
    int repeat;
    lua_pushnumber(L, (lua_Number)fr_lua_timer_args(L, 0, &repeat));
    return 1;
}

/* log_check(level) → level. Raises without a position, as timer_check does. */
static int l_native_log_check(lua_State *L) {
    fr_lua_log_level(L, 0);
    lua_settop(L, 1);
    return 1;
}

/* ---- the shared dictionary ---------------------------------------------------------------- */

/* shared(clock) → a freshet.shared object over a dictionary of its own, as large as the
 * server's, whose entries expire by clock(), a function returning milliseconds. */
static int l_native_shared(lua_State *L) {
    if (!lua_isfunction(L, 1))
        return arg_error(L, "shared", 1, "clock", "function");
    fr_lua_shared_push(L, fr_shared_new(FR_SHARED_MAX_ENTRIES), 1, NULL, 1);
    return 1;
}

/* ---- route patterns and request targets ----------------------------------------------------- */

typedef struct {
    fr_pattern_t pattern; /* compiled; freed by __gc */
} pattern_box_t;

/* pattern(source) → pattern | nil, err. The source is read as the server reads an app's
 * patterns: as a C string. */
static int l_native_pattern(lua_State *L) {
    size_t len;
    const char *source = check_string(L, "pattern", 1, "source", &len);
    pattern_box_t *box = lua_newuserdata(L, sizeof *box);
    memset(box, 0, sizeof *box);
    const char *err;
    if (fr_pattern_compile(source, &box->pattern, &err) < 0)
        return push_failure(L, err);
    luaL_getmetatable(L, PATTERN_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* pattern:match(path) → params | false | nil, err */
static int l_pattern_match(lua_State *L) {
    pattern_box_t *box = luaL_checkudata(L, 1, PATTERN_MT);
    size_t len;
    const char *path = check_string(L, "pattern:match", 2, "path", &len);
    fr_param_t params[FR_MAX_PARAMS];
    size_t n;
    int m = fr_pattern_match(&box->pattern, path, len, params, &n);
    if (m < 0)
        return push_failure(L, BAD_PATH);
    if (m == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, params[i].value);
        lua_setfield(L, -2, params[i].name);
    }
    fr_params_free(params, n);
    return 1;
}

static int l_pattern_gc(lua_State *L) {
    pattern_box_t *box = luaL_checkudata(L, 1, PATTERN_MT);
    fr_pattern_free(&box->pattern);
    return 0;
}

/* decode_path(path) → text | nil, err ('+' stays '+', as in a path) */
static int l_native_decode_path(lua_State *L) {
    size_t len;
    const char *path = check_string(L, "decode_path", 1, "path", &len);
    char *out = lua_newuserdata(L, len + 1); /* GC-owned: nothing to free on an error */
    long n = fr_url_decode(path, len, out, 0);
    if (n < 0)
        return push_failure(L, BAD_PATH);
    lua_pushlstring(L, out, (size_t)n);
    return 1;
}

/* decode_query(query) → table | nil, err (without the '?'; '+' is a space) */
static int l_native_decode_query(lua_State *L) {
    size_t len;
    const char *query = check_string(L, "decode_query", 1, "query", &len);
    if (fr_lua_push_query(L, query, len) < 0)
        return push_failure(L, BAD_QUERY);
    return 1;
}

int luaopen_freshet_native(lua_State *L) {
    if (luaL_newmetatable(L, PATTERN_MT)) {
        lua_newtable(L);
        lua_pushcfunction(L, l_pattern_match);
        lua_setfield(L, -2, "match");
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_pattern_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"event_check", l_native_event_check},
                                   {"priority_check", l_native_priority_check},
                                   {"timer_check", l_native_timer_check},
                                   {"log_check", l_native_log_check},
                                   {"shared", l_native_shared},
                                   {"pattern", l_native_pattern},
                                   {"decode_path", l_native_decode_path},
                                   {"decode_query", l_native_decode_query},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
