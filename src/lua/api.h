/* The C half of the Lua API, required as "freshet.core" by lua/freshet/init.lua: publish,
 * timers, log, now, JSON encode, and the shared dictionary (its methods are in lua/shared.c). */
#ifndef FR_LUA_API_H
#define FR_LUA_API_H

#include <lua.h>

struct fr_vm_s;

int fr_lua_open_core(lua_State *L);
/* Binds L to its VM (stored in the registry), so API functions find their worker. */
void fr_lua_set_vm(lua_State *L, struct fr_vm_s *vm);
struct fr_vm_s *fr_lua_get_vm(lua_State *L);
/* core.sleep and core.can_wait (lua/sleep.c). */
int fr_lua_sleep(lua_State *L);
int fr_lua_can_wait(lua_State *L);
/* core.http_request and core.http_response (lua/http.c). */
int fr_lua_http_request(lua_State *L);
int fr_lua_http_response(lua_State *L);
/* core.redis and core.redis_reply (lua/redis.c). */
int fr_lua_redis(lua_State *L);
int fr_lua_redis_reply(lua_State *L);
/* Stops and frees every timer of the VM. */
void fr_lua_stop_timers(struct fr_vm_s *vm);

#endif
