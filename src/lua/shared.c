#include "lua/shared.h"

#include <lauxlib.h>
#include <stdlib.h>

#define SHARED_MT "freshet.shared"

/* A ttl at or past this many ms (about 146 million years, and math.huge) means no expiry: it
 * keeps now + ttl from wrapping around to a time already past. */
#define TTL_FOREVER_MS 4.6e18

typedef struct {
    fr_shared_t *dict;
    uint64_t (*now_ms)(void); /* NULL: the clock is the function in the object's environment */
    int owned;                /* 1: dict is freed with the object */
} shared_box_t;

/* The box at idx when it is a freshet.shared object, else NULL (luaL_testudata is Lua 5.2). */
static shared_box_t *shared_box(lua_State *L, int idx) {
    shared_box_t *box = lua_touserdata(L, idx);
    if (!box || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, SHARED_MT);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? box : NULL;
}

/* Every method's first checks: called with ':' on a shared object, and a string key. */
static shared_box_t *shared_self(lua_State *L, const char *fn, const char **key, size_t *klen) {
    shared_box_t *box = shared_box(L, 1);
    if (!box)
        luaL_error(L, "freshet.shared:%s: call it with ':' (freshet.shared:%s(key, ...))", fn, fn);
    if (lua_type(L, 2) != LUA_TSTRING)
        luaL_error(L, "freshet.shared:%s: bad argument #1 'key' (string expected, got %s)", fn,
                   luaL_typename(L, 2));
    *key = lua_tolstring(L, 2, klen);
    return box;
}

/* The ttl argument at idx in ms: 0 for none (nil, 0 or too far off to matter); a positive ttl
 * under a millisecond counts as one, so it still expires. */
static uint64_t shared_ttl(lua_State *L, int idx, const char *fn) {
    if (lua_isnoneornil(L, idx))
        return 0;
    lua_Number seconds = lua_tonumber(L, idx);
    /* Written so that NaN is refused too. */
    if (lua_type(L, idx) != LUA_TNUMBER || !(seconds >= 0))
        luaL_error(L, "freshet.shared:%s: bad argument 'ttl' (seconds >= 0 expected, got %s)", fn,
                   luaL_typename(L, idx));
    lua_Number ms = seconds * 1000.0;
    if (ms >= TTL_FOREVER_MS)
        return 0;
    if (ms > 0 && ms < 1)
        return 1;
    return (uint64_t)ms;
}

/* The object's clock, in ms. A Lua clock may raise; nothing is held yet when this runs. */
static uint64_t shared_now(lua_State *L, shared_box_t *box) {
    if (box->now_ms)
        return box->now_ms();
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "clock");
    lua_call(L, 0, 1);
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "freshet.shared: the clock returned %s, not a number of milliseconds",
                   luaL_typename(L, -1));
    lua_Number ms = lua_tonumber(L, -1);
    lua_pop(L, 2);
    if (!(ms > 0))
        return 0;
    return ms >= TTL_FOREVER_MS ? (uint64_t)TTL_FOREVER_MS : (uint64_t)ms;
}

static int l_shared_get(lua_State *L) {
    const char *key;
    size_t klen;
    shared_box_t *box = shared_self(L, "get", &key, &klen);
    uint64_t now = shared_now(L, box);
    fr_sv_t v;
    if (!fr_shared_get(box->dict, key, klen, &v, now)) {
        lua_pushnil(L);
        return 1;
    }
    switch (v.type) {
    case FR_SV_STRING:
        lua_pushlstring(L, v.str, v.len);
        free(v.str);
        break;
    case FR_SV_NUMBER:
        lua_pushnumber(L, v.num);
        break;
    default:
        lua_pushboolean(L, v.num != 0);
        break;
    }
    return 1;
}

static int l_shared_set(lua_State *L) {
    const char *key;
    size_t klen;
    shared_box_t *box = shared_self(L, "set", &key, &klen);
    uint64_t ttl = shared_ttl(L, 4, "set");
    fr_sv_t v = {0};
    switch (lua_type(L, 3)) {
    case LUA_TNIL:
        fr_shared_delete(box->dict, key, klen);
        lua_pushboolean(L, 1);
        return 1;
    case LUA_TSTRING:
        v.type = FR_SV_STRING;
        v.str = (char *)lua_tolstring(L, 3, &v.len);
        break;
    case LUA_TNUMBER:
        v.type = FR_SV_NUMBER;
        v.num = lua_tonumber(L, 3);
        break;
    case LUA_TBOOLEAN:
        v.type = FR_SV_BOOL;
        v.num = lua_toboolean(L, 3);
        break;
    default:
        return luaL_error(L,
                          "freshet.shared:set: bad argument #2 'value' "
                          "(string, number or boolean expected, got %s)",
                          luaL_typename(L, 3));
    }
    if (fr_shared_set(box->dict, key, klen, &v, ttl, shared_now(L, box)) < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "full");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_shared_incr(lua_State *L) {
    const char *key;
    size_t klen;
    shared_box_t *box = shared_self(L, "incr", &key, &klen);
    lua_Number delta = 1;
    if (!lua_isnoneornil(L, 3)) {
        if (lua_type(L, 3) != LUA_TNUMBER)
            return luaL_error(L,
                              "freshet.shared:incr: bad argument #2 'n' (number expected, got %s)",
                              luaL_typename(L, 3));
        delta = lua_tonumber(L, 3);
    }
    int has_init = !lua_isnoneornil(L, 4);
    if (has_init && lua_type(L, 4) != LUA_TNUMBER)
        return luaL_error(L,
                          "freshet.shared:incr: bad argument #3 'init' "
                          "(number expected, got %s)",
                          luaL_typename(L, 4));
    uint64_t ttl = shared_ttl(L, 5, "incr");
    double out;
    int rc = fr_shared_incr(box->dict, key, klen, delta, has_init,
                            has_init ? lua_tonumber(L, 4) : 0, ttl, shared_now(L, box), &out);
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, rc == -1 ? "not found" : rc == -2 ? "not a number" : "full");
        return 2;
    }
    lua_pushnumber(L, out);
    return 1;
}

static int l_shared_delete(lua_State *L) {
    const char *key;
    size_t klen;
    shared_box_t *box = shared_self(L, "delete", &key, &klen);
    lua_pushboolean(L, fr_shared_delete(box->dict, key, klen));
    return 1;
}

static int l_shared_gc(lua_State *L) {
    shared_box_t *box = shared_box(L, 1);
    if (box && box->owned && box->dict) {
        fr_shared_free(box->dict);
        box->dict = NULL;
    }
    return 0;
}

void fr_lua_shared_push(lua_State *L, fr_shared_t *d, int owned, uint64_t (*now_ms)(void),
                        int clock) {
    if (!now_ms && clock < 0 && clock > LUA_REGISTRYINDEX)
        clock = lua_gettop(L) + clock + 1; /* a relative index would move as we push */
    shared_box_t *box = lua_newuserdata(L, sizeof *box);
    box->dict = d;
    box->now_ms = now_ms;
    box->owned = owned;
    if (luaL_newmetatable(L, SHARED_MT)) {
        static const luaL_Reg methods[] = {{"get", l_shared_get},
                                           {"set", l_shared_set},
                                           {"incr", l_shared_incr},
                                           {"delete", l_shared_delete},
                                           {NULL, NULL}};
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_shared_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    if (!now_ms) {
        /* The clock lives in the object's environment table, which the GC keeps with it. */
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, clock);
        lua_setfield(L, -2, "clock");
        lua_setfenv(L, -2);
    }
}
