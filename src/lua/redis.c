/* freshet.redis's C half (core.redis, core.redis_reply): a command on the app's Redis through
 * the worker's client (client/redis_client.h) while the hook's task waits.
 *
 *   redis.lua ──core.redis──► fr_rclient_command ──► yield
 *   … the reply ──► resume with one light userdata (the answer) ──► redis.lua calls
 *   core.redis_reply(it) at once ──► the reply as Lua values, or nil, err
 *
 * As with freshet.http, the resumed coroutine builds the Lua values itself
 * (fr_task_resume_with). */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "client/redis_client.h"
#include "lua/api.h"
#include "lua/task.h"

/* Arguments of one command held on the C stack; longer commands allocate. */
#define ARGS_ON_STACK 16
/* Room for a number's text: "%.17g" of any double, or a whole number below 2^53. */
#define NUM_TEXT 32

/* What the task is resumed with; valid while the coroutine runs on from the resume. */
typedef struct {
    const redisReply *reply;
    const char *err;
} answer_t;

/* ctx is the task; the call is what it waits on. */
static void on_answer(void *ctx, const redisReply *reply, const char *err) {
    answer_t a = {reply, err};
    fr_task_resume_with(ctx, &a);
}

static void cancel(void *call) {
    fr_rcall_cancel(call);
}

/* A number as Redis reads it: whole numbers without an exponent (INCRBY 1e15 would fail),
 * others with every digit. lua/freshet/fakecore.lua writes them the same way. */
static size_t number_text(double v, char *buf) {
    int n;
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        n = snprintf(buf, NUM_TEXT, "%lld", (long long)v);
    else
        n = snprintf(buf, NUM_TEXT, "%.17g", v);
    return (size_t)n;
}

/* core.redis(command, args, n): args[1..n] are strings or numbers (checked by redis.lua);
 * yields, or returns nil, err when the call cannot start. */
int fr_lua_redis(lua_State *L) {
    size_t cmd_len;
    const char *cmd = luaL_checklstring(L, 1, &cmd_len);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)luaL_checkinteger(L, 3);
    fr_task_t *t = fr_task_current(L);
    if (!t)
        return luaL_error(L, "freshet.redis: %s", FR_TASK_CANNOT_WAIT);
    const fr_vm_t *vm = fr_task_vm(t);
    if (!vm->host || !vm->host->redis) {
        lua_pushnil(L);
        lua_pushliteral(L, "no redis configured");
        return 2;
    }
    if (n < 0 || n > 1000000)
        return luaL_error(L, "freshet.redis: too many arguments");
    if (fr_task_count_call(t) > vm->config.calls_per_hook) {
        lua_pushnil(L);
        lua_pushfstring(L, "too many backend calls in one hook (limits.calls_per_hook = %d)",
                        (int)vm->config.calls_per_hook);
        return 2;
    }
    const char *argv_s[ARGS_ON_STACK];
    size_t len_s[ARGS_ON_STACK];
    char nums_s[ARGS_ON_STACK][NUM_TEXT];
    int argc = n + 1;
    const char **argv = argv_s;
    size_t *lens = len_s;
    char (*nums)[NUM_TEXT] = nums_s;
    if (argc > ARGS_ON_STACK) {
        argv = fr_malloc((size_t)argc * sizeof *argv);
        lens = fr_malloc((size_t)argc * sizeof *lens);
        nums = fr_malloc((size_t)argc * sizeof *nums);
    }
    argv[0] = cmd;
    lens[0] = cmd_len;
    /* The strings stay alive in the args table while hiredis copies them. */
    for (int i = 1; i < argc; i++) {
        lua_rawgeti(L, 2, i);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            lens[i] = number_text(lua_tonumber(L, -1), nums[i]);
            argv[i] = nums[i];
        } else {
            argv[i] = lua_tolstring(L, -1, &lens[i]);
            if (!argv[i]) {
                argv[i] = "";
                lens[i] = 0;
            }
        }
        lua_pop(L, 1);
    }
    fr_rcall_t *call;
    const char *err;
    int rc = fr_rclient_command(vm->host->redis, argc, argv, lens, vm->config.redis_timeout_ms,
                                on_answer, t, &call, &err);
    if (argv != argv_s) {
        free(argv);
        free(lens);
        free(nums);
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    fr_task_wait(t, cancel, call);
    return lua_yield(L, 0);
}

/* One reply as a Lua value: status and bulk strings as strings, integers as numbers, a nil
 * bulk as freshet.null (cjson.null: a NULL light userdata), arrays as sequences, and an error
 * inside an array as { err = "..." }. hiredis bounds the nesting. */
static void push_reply(lua_State *L, const redisReply *r) {
    luaL_checkstack(L, 4, "redis reply nested too deep");
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, r->str, (size_t)r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushnumber(L, (lua_Number)r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case REDIS_REPLY_ERROR:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, r->str, (size_t)r->len);
        lua_setfield(L, -2, "err");
        break;
    default: /* REDIS_REPLY_NIL */
        lua_pushlightuserdata(L, NULL);
        break;
    }
}

/* core.redis_reply(answer) → the reply, or nil, err (a failed call, or an error reply). */
int fr_lua_redis_reply(lua_State *L) {
    const answer_t *a = fr_task_answer(L, 1);
    if (!a)
        return luaL_error(L, "core.redis_reply: no answer to read here");
    if (a->err || a->reply->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        if (a->err)
            lua_pushstring(L, a->err);
        else
            lua_pushlstring(L, a->reply->str, (size_t)a->reply->len);
        return 2;
    }
    push_reply(L, a->reply);
    return 1;
}
