/* C-backed Lua modules preloaded into every VM, beside "cjson" and "freshet.core". Adding a
 * module means adding one line to the table in lua_modules.c. */
#ifndef FR_LUA_MODULES_H
#define FR_LUA_MODULES_H

#include <lua.h>

typedef struct {
    const char *name;      /* what scripts require */
    lua_CFunction open;    /* luaopen-style: pushes the module table */
} fr_lua_module_t;

extern const fr_lua_module_t fr_lua_modules[]; /* ends with a NULL name */

#endif
