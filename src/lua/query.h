/* req.query: a query string as a Lua table, the same for the server's `req` and for the
 * route-test harness (freshet.native). */
#ifndef FR_LUA_QUERY_H
#define FR_LUA_QUERY_H

#include <lua.h>
#include <stddef.h>

/* Pushes {key = value, …} with both decoded ('+' is a space); the first value of a repeated
 * key wins, as most frameworks do. Returns 0, or -1 (the table still pushed, maybe partly
 * filled) when the query's percent-encoding is malformed. */
int fr_lua_push_query(lua_State *L, const char *query, size_t len);

#endif
