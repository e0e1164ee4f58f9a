#include "lua/modules.h"

#include <stddef.h>

#include "lua/api.h"
#include "lua/crypto.h"
#include "lua/native.h"

int luaopen_cjson(lua_State *L);
int luaopen_freshet_presence(lua_State *L);
int luaopen_freshet_position(lua_State *L);

const fr_lua_module_t fr_lua_modules[] = {
    {"cjson", luaopen_cjson},
    {"freshet.core", fr_lua_open_core},
    {"freshet.crypto", luaopen_freshet_crypto},
    {"freshet.native", luaopen_freshet_native},
    {"freshet.presence", luaopen_freshet_presence},
    {"freshet.position", luaopen_freshet_position},
    {NULL, NULL},
};
