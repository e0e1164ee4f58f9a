/* freshet.native: the server's own rules as a Lua module, for the route-test harness
 * (lua/freshet/test.lua), so that a spec and the server refuse the same input with the same
 * words: each function calls the C the server runs. (Only the words for a path or a query
 * that does not decode are the request dispatcher's, repeated here; a test compares them.)
 *
 *   native.event_check(topic, name, data) → true | nil, err   what a publish checks
 *   native.priority_check(priority)        → name | nil, err   critical, normal, telemetry
 *   native.timer_check(kind, ms, fn)       → whole ms; raises as freshet.every / after do
 *   native.log_check(level)                → level; raises as freshet.log does
 *   native.shared(clock)                   → a freshet.shared object (lua/shared.h) with a
 *                                            dictionary of its own, expiring by clock() → ms
 *   native.pattern(source)                 → pattern | nil, err   a route pattern
 *     pattern:match(path)                  → params | false | nil, err   (path %-encoded)
 *   native.decode_path(path)               → text | nil, err
 *   native.decode_query(query)             → table | nil, err  (a repeated key: the first)
 *
 * A wrong argument type raises; input the server would refuse returns nil and the message the
 * server gives for it. The server preloads the module (lua/modules.c) and its freshet.core
 * (lua/api.c) makes the timer and log checks through the functions below. The file uses only
 * the Lua 5.1 C API and no libuv, so it also builds as freshet/native.so for lua5.1 and luajit
 * (tests/integration/16_busted.sh, rockspec/freshet-scm-1.rockspec). */
#ifndef FR_LUA_NATIVE_H
#define FR_LUA_NATIVE_H

#include <lua.h>
#include <stdint.h>

#include "base/log.h"

/* Pushes the module table. */
int luaopen_freshet_native(lua_State *L);

/* The arguments of core.timer(kind, ms, fn) at stack indices 1 to 3, checked as freshet.every
 * and freshet.after promise: raises for a bad one, naming the position of the function `level`
 * frames up (1: the caller of the running C function; 0: no position). Returns the period in
 * whole ms; *repeat is 1 for "every". */
uint64_t fr_lua_timer_args(lua_State *L, int level, int *repeat);

/* The level argument of core.log(level, ...) at stack index 1: raises for an unknown one, with
 * the position as above. */
fr_log_level_t fr_lua_log_level(lua_State *L, int level);

#endif
