/* freshet.sleep(ms), and core.can_wait. Sleep is the simplest waiting function, and the pattern of the others: find the
 * task, start the operation, park the task on it, yield; the operation's callback resumes the
 * task, or the task's cancel stops the operation. */
#include <lauxlib.h>
#include <stdlib.h>
#include <uv.h>

#include "base/util.h"
#include "lua/api.h"
#include "lua/task.h"

typedef struct {
    uv_timer_t timer;
    fr_task_t *task;
} sleep_t;

static void on_closed(uv_handle_t *h) {
    free(FR_CONTAINER_OF((uv_timer_t *)h, sleep_t, timer));
}

static void on_wake(uv_timer_t *h) {
    sleep_t *s = FR_CONTAINER_OF(h, sleep_t, timer);
    fr_task_t *t = s->task;
    uv_close((uv_handle_t *)h, on_closed);
    fr_task_resume(t, 0);
}

static void cancel(void *op) {
    sleep_t *s = op;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

/* core.can_wait() → true, or false and why not: init.lua raises the error at the script's
 * line before calling a waiting function. */
int fr_lua_can_wait(lua_State *L) {
    if (fr_task_current(L)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushliteral(L, FR_TASK_CANNOT_WAIT);
    return 2;
}

/* core.sleep(ms): arguments are checked by init.lua. */
int fr_lua_sleep(lua_State *L) {
    double ms = luaL_checknumber(L, 1);
    fr_task_t *t = fr_task_current(L);
    if (!t)
        return luaL_error(L, "freshet.sleep: " FR_TASK_CANNOT_WAIT);
    fr_vm_t *vm = fr_lua_get_vm(L);
    sleep_t *s = fr_calloc(1, sizeof *s);
    s->task = t;
    uv_timer_init(vm->host->loop, &s->timer);
    uv_timer_start(&s->timer, on_wake, (uint64_t)(ms + 0.5), 0);
    fr_task_wait(t, cancel, s);
    return lua_yield(L, 0);
}
