/* freshet.position(topic) → id: where a client that subscribes to `topic` from now on starts,
 * as a Last-Event-ID (or ?lastEventId=) it can resume from exactly. A page renders its state
 * and this id together; its stream then starts after the id, so nothing published between the
 * render and the subscribe is lost, and nothing is sent twice.
 *
 * Memory broker: the hub is the broker, the answer is immediate. Redis: the topic's newest id
 * is read from Redis itself (the node's own view may lag), so the call waits like
 * freshet.http.request: it works where hooks may wait. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "broker/broker.h"
#include "codec/id.h"
#include "core/event.h"
#include "lua/api.h"
#include "lua/task.h"
#include "lua/vm.h"

typedef struct {
    fr_task_t *task; /* NULL once cancelled */
    int parked;      /* the task waits for the answer */
    int finished;    /* the answer came before the task was parked */
    int status;
    fr_id_t id;
} locate_op_t;

static int push_answer(lua_State *L, int status, fr_id_t id) {
    if (status != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "the broker is unavailable");
        return 2;
    }
    char buf[FR_ID_MAX_LEN];
    lua_pushlstring(L, buf, fr_id_format(id, buf));
    return 1;
}

static void on_located(void *ctx, int status, fr_id_t id, const char *err) {
    (void)err;
    locate_op_t *op = ctx;
    if (!op->task) { /* cancelled meanwhile: nobody waits */
        free(op);
        return;
    }
    if (op->parked) {
        fr_task_t *t = op->task;
        int n = push_answer(fr_task_thread(t), status, id);
        free(op);
        fr_task_resume(t, n);
        return;
    }
    op->finished = 1;
    op->status = status;
    op->id = id;
}

static void cancel(void *ctx) {
    locate_op_t *op = ctx;
    op->task = NULL; /* the broker's answer frees it */
}

static int l_position(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "freshet.position: bad argument #1 'topic' (string expected, got %s)",
                          luaL_typename(L, 1));
    size_t len;
    const char *topic = lua_tolstring(L, 1, &len);
    const char *why;
    if (len != strlen(topic) || fr_event_validate(topic, NULL, "", 0, &why) < 0)
        return luaL_error(L, "freshet.position: bad argument #1 'topic' (%s)",
                          len != strlen(topic) ? "a topic holds no NUL" : why);
    fr_vm_t *vm = fr_lua_get_vm(L);
    if (!vm->host) {
        lua_pushnil(L);
        lua_pushliteral(L, "not available while only checking the app");
        return 2;
    }
    fr_broker_t *b = vm->host->broker;
    if (!b) {
        lua_pushnil(L);
        lua_pushliteral(L, "not available while the app file is loading");
        return 2;
    }
    if (!b->ops->locate)
        return push_answer(L, 0, b->ops->position(b, topic));
    fr_task_t *t = fr_task_current(L);
    if (!t)
        return luaL_error(L, "freshet.position: with the %s broker it asks the broker and %s",
                          b->ops->kind, FR_TASK_CANNOT_WAIT);
    locate_op_t *op = fr_calloc(1, sizeof *op);
    op->task = t;
    b->ops->locate(b, topic, on_located, op);
    if (op->finished) { /* answered at once (the broker is down) */
        int n = push_answer(L, op->status, op->id);
        free(op);
        return n;
    }
    op->parked = 1;
    fr_task_wait(t, cancel, op);
    return lua_yield(L, 0);
}

/* require "freshet.position" is the function itself (freshet.position in init.lua). */
int luaopen_freshet_position(lua_State *L) {
    lua_pushcfunction(L, l_position);
    return 1;
}
