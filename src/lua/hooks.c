#include "lua/hooks.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "core/event.h"
#include "lua/task.h"

int fr_hook_push_auth(fr_vm_t *vm, const fr_route_t *route, int req_ref) {
    if (!fr_vm_push_hook(vm, route, FR_HOOK_AUTH))
        return 0;
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, req_ref);
    return 1;
}

int fr_hook_read_auth(fr_vm_t *vm, const fr_route_t *route, int *who_ref, char *msg,
                      size_t msglen) {
    lua_State *L = vm->L;
    if (lua_istable(L, -3)) {
        lua_pop(L, 2);
        *who_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 0;
    }
    if (lua_toboolean(L, -3)) {
        fr_error("route %s: auth must return an identity table, or nil, status, message; got %s",
                 route->pattern.source, luaL_typename(L, -3));
        lua_pop(L, 3);
        snprintf(msg, msglen, "internal error");
        return 500;
    }
    int status = lua_isnumber(L, -2) ? (int)lua_tointeger(L, -2) : 403;
    if (status < 400 || status > 599)
        status = 403;
    snprintf(msg, msglen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "not allowed");
    lua_pop(L, 3);
    return status;
}

int fr_hook_anonymous(fr_vm_t *vm) {
    lua_newtable(vm->L);
    return luaL_ref(vm->L, LUA_REGISTRYINDEX);
}

char *fr_hook_who_id(fr_vm_t *vm, int who_ref) {
    lua_State *L = vm->L;
    char *id = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, who_ref);
    lua_getfield(L, -1, "id");
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
        id = fr_strdup(lua_tostring(L, -1));
    lua_pop(L, 2);
    return id;
}

const char *fr_hook_client_id(fr_vm_t *vm, int who_ref, const char *remote, char *buf,
                              size_t len) {
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, who_ref);
    lua_getfield(L, -1, "id");
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
        snprintf(buf, len, "id:%s", lua_tostring(L, -1));
    else
        snprintf(buf, len, "addr:%s", remote);
    lua_pop(L, 2);
    return buf;
}

int fr_hook_push_tier(fr_vm_t *vm, const fr_route_t *route, int req_ref, int who_ref) {
    if (!fr_vm_push_hook(vm, route, FR_HOOK_TIER))
        return 0;
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, req_ref);
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, who_ref);
    return 2;
}

int fr_hook_read_tier(fr_vm_t *vm, const fr_route_t *route, const fr_config_t *cfg,
                      const fr_tier_t **tier) {
    lua_State *L = vm->L;
    int rc = 0;
    *tier = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        *tier = fr_config_tier(cfg, lua_tostring(L, -1));
        if (!*tier) {
            fr_error("route %s: tier hook returned unknown tier '%s'", route->pattern.source,
                     lua_tostring(L, -1));
            rc = -1;
        }
    } else if (!lua_isnil(L, -1)) {
        fr_error("route %s: tier hook must return a tier name or nil, got %s",
                 route->pattern.source, luaL_typename(L, -1));
        rc = -1;
    }
    lua_pop(L, 1);
    return rc;
}

void fr_topics_free(char **topics, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(topics[i]);
    free(topics);
}

/* Reads the list on the top of the stack. */
static fr_topics_result_t read_topics(lua_State *L, const fr_route_t *route, char ***out,
                                      size_t *nout, const char **msg) {
    if (!lua_istable(L, -1)) {
        fr_error("route %s: topics hook must return a list of topic names, got %s",
                 route->pattern.source, luaL_typename(L, -1));
        *msg = "internal error";
        return FR_TOPICS_ERROR;
    }
    size_t n = lua_objlen(L, -1);
    if (n == 0 || n > FR_MAX_TOPICS) {
        fr_error("route %s: topics hook must return between 1 and %d topics, got %zu",
                 route->pattern.source, FR_MAX_TOPICS, n);
        *msg = "a stream follows between 1 and 64 topics";
        return FR_TOPICS_ERROR;
    }
    char **topics = fr_calloc(n, sizeof *topics);
    size_t m = 0;
    fr_topics_result_t rc = FR_TOPICS_OK;
    for (size_t i = 0; i < n && rc == FR_TOPICS_OK; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        size_t len;
        const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        const char *err;
        if (!t) {
            fr_error("route %s: topics hook: topic %zu is invalid: not a string",
                     route->pattern.source, i + 1);
            *msg = "the topics hook returned an invalid topic";
            rc = FR_TOPICS_ERROR;
        } else if (strlen(t) != len || fr_event_validate(t, NULL, "", 0, &err) < 0) {
            *msg = "the topics hook returned an invalid topic";
            rc = FR_TOPICS_BAD_NAME;
        } else {
            for (size_t k = 0; k < m && rc == FR_TOPICS_OK; k++) {
                if (strcmp(topics[k], t) == 0) {
                    fr_error("route %s: topics hook: topic %zu is invalid: listed twice",
                             route->pattern.source, i + 1);
                    *msg = "the topics hook listed a topic twice";
                    rc = FR_TOPICS_ERROR;
                }
            }
            if (rc == FR_TOPICS_OK)
                topics[m++] = fr_strdup(t);
        }
        lua_pop(L, 1);
    }
    if (rc != FR_TOPICS_OK) {
        fr_topics_free(topics, m);
        return rc;
    }
    *out = topics;
    *nout = m;
    return FR_TOPICS_OK;
}

int fr_hook_push_topics(fr_vm_t *vm, const fr_route_t *route, int req_ref, int who_ref,
                        int change_ref) {
    lua_State *L = vm->L;
    fr_vm_push_hook(vm, route, FR_HOOK_TOPICS);
    lua_rawgeti(L, LUA_REGISTRYINDEX, req_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, who_ref);
    if (change_ref == LUA_NOREF)
        return 2;
    lua_rawgeti(L, LUA_REGISTRYINDEX, change_ref);
    return 3;
}

fr_topics_result_t fr_hook_read_topics(fr_vm_t *vm, const fr_route_t *route, char ***topics,
                                       size_t *n, const char **msg) {
    *topics = NULL;
    *n = 0;
    fr_topics_result_t rc = read_topics(vm->L, route, topics, n, msg);
    lua_pop(vm->L, 1);
    return rc;
}

int fr_hook_slow(fr_vm_t *vm, const fr_route_t *route, char *const *topics, size_t n,
                 int who_ref, uint8_t **out) {
    lua_State *L = vm->L;
    uint8_t *slow = fr_calloc(n ? n : 1, sizeof *slow);
    for (size_t i = 0; i < n; i++) {
        slow[i] = (uint8_t)route->slow;
        if (route->slow_ref == LUA_NOREF)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, route->slow_ref);
        lua_pushstring(L, topics[i]);
        lua_rawgeti(L, LUA_REGISTRYINDEX, who_ref);
        if (fr_vm_call(vm, route, "on_slow", 2, 1) != 0)
            goto fail;
        fr_slow_t policy;
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING ||
                fr_slow_parse(lua_tostring(L, -1), &policy) < 0) {
                fr_error("route %s: on_slow must return drop, conflate or disconnect, got %s",
                         route->pattern.source,
                         lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
                lua_pop(L, 1);
                goto fail;
            }
            slow[i] = (uint8_t)policy;
        }
        lua_pop(L, 1);
    }
    *out = slow;
    return 0;
fail:
    free(slow);
    return -1;
}
