#include "lua/query.h"

#include "codec/url.h"

static void on_pair(void *ctx, const char *k, size_t kl, const char *v, size_t vl) {
    lua_State *L = ctx;
    lua_pushlstring(L, k, kl);
    lua_rawget(L, -2);
    int seen = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (seen)
        return;
    lua_pushlstring(L, k, kl);
    lua_pushlstring(L, v, vl);
    lua_rawset(L, -3);
}

int fr_lua_push_query(lua_State *L, const char *query, size_t len) {
    lua_newtable(L);
    if (!query)
        return 0;
    return fr_url_each_query(query, len, on_pair, L) < 0 ? -1 : 0;
}
