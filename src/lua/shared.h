/* freshet.shared: the Lua face of a shared dictionary (core/shared_dict.h).
 *
 *   shared:get(key)                   → the value, or nil
 *   shared:set(key, value, ttl?)      → true | nil, "full"            (value nil deletes the key)
 *   shared:incr(key, n?, init?, ttl?) → the new number | nil, "not found" | "not a number" | "full"
 *   shared:delete(key)                → true when the key was there
 *
 * Values are strings, numbers and booleans; ttl is in seconds (nil or 0: no expiry). Misuse
 * raises ("freshet.shared:set: bad argument #1 'key' (string expected, got number)"); the
 * expected failures above return nil, err.
 *
 * An object is bound to one dictionary and one clock. The server binds the process-wide
 * dictionary to the monotonic clock (lua/api.c); the route-test harness gives each fake server
 * a dictionary of its own that follows the fake server's clock (freshet.native, lua/native.c).
 * The file uses only the Lua 5.1 C API, so it also builds into freshet/native.so. */
#ifndef FR_LUA_SHARED_H
#define FR_LUA_SHARED_H

#include <lua.h>
#include <stdint.h>

#include "core/shared_dict.h"

/* Pushes a freshet.shared object for d. Its entries expire by now_ms() when now_ms is given;
 * when it is NULL, by the Lua function at stack index clock, called with no arguments on each
 * operation and returning milliseconds (a fraction is dropped, a negative reads as 0).
 * owned 1: the object takes d and frees it when collected; owned 0: d is borrowed and must
 * outlive L. */
void fr_lua_shared_push(lua_State *L, fr_shared_t *d, int owned, uint64_t (*now_ms)(void),
                        int clock);

#endif
