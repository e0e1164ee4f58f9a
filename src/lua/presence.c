/* freshet.presence(topic) → {count = N, ids = {…}, nodes = K}: who follows a topic, on this
 * worker (memory broker) or across every node (Redis; refreshed every second). */
#include <lauxlib.h>
#include <lua.h>

#include "broker/broker.h"
#include "core/presence.h"
#include "lua/api.h"
#include "lua/vm.h"

static int l_presence(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "freshet.presence: bad argument #1 'topic' (string expected, got %s)",
                          luaL_typename(L, 1));
    const char *topic = lua_tostring(L, 1);
    fr_vm_t *vm = fr_lua_get_vm(L);
    if (!vm->host) {
        lua_pushnil(L);
        lua_pushliteral(L, "not available while only checking the app");
        return 2;
    }
    if (!vm->host->broker) {
        lua_pushnil(L);
        lua_pushliteral(L, "not available while the app file is loading");
        return 2;
    }
    fr_presence_t p;
    vm->host->broker->ops->presence(vm->host->broker, topic, &p);
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, (lua_Number)p.count);
    lua_setfield(L, -2, "count");
    lua_pushnumber(L, (lua_Number)p.nodes);
    lua_setfield(L, -2, "nodes");
    lua_createtable(L, (int)p.nids, 0);
    for (size_t i = 0; i < p.nids; i++) {
        lua_pushstring(L, p.ids[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "ids");
    fr_presence_free(&p);
    return 1;
}

/* require "freshet.presence" is the function itself (freshet.presence in lua/freshet/init.lua). */
int luaopen_freshet_presence(lua_State *L) {
    lua_pushcfunction(L, l_presence);
    return 1;
}
