#include "lua/task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "lua/api.h"
#include "lua/vm_build.h"

struct fr_task_s {
    fr_vm_t *vm;             /* one reference: a reload lets the task finish on its scripts */
    const fr_route_t *route; /* borrowed from vm */
    const char *what;        /* static: the hook's name, for log lines */
    lua_State *co;           /* the coroutine */
    int co_ref;              /* keeps it from the collector */
    int nresults;
    unsigned calls;          /* backend calls made, against limits.calls_per_hook */
    fr_task_cb cb;
    void *ctx;
    void (*cancel)(void *op); /* what it waits on, while it waits */
    void *op;
    uv_timer_t *limit;       /* owned: the wall-clock limit, set at its first wait */
    uint64_t started_ms;     /* the loop's clock when the hook began */
    fr_list_t link;          /* in vm->tasks while a task nobody owns waits; in vm->idle_tasks
                              * once finished and kept for reuse */
};

/* The registry maps a coroutine (light userdata key) to its task, so a waiting function finds
 * the task it runs in. */
static void task_bind(lua_State *L, lua_State *co, fr_task_t *t) {
    lua_pushlightuserdata(L, co);
    if (t)
        lua_pushlightuserdata(L, t);
    else
        lua_pushnil(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

fr_task_t *fr_task_current(lua_State *L) {
    lua_pushlightuserdata(L, L);
    lua_rawget(L, LUA_REGISTRYINDEX);
    fr_task_t *t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return t;
}

unsigned fr_task_count_call(fr_task_t *t) {
    return ++t->calls;
}

const fr_vm_t *fr_task_vm(const fr_task_t *t) {
    return t->vm;
}

lua_State *fr_task_thread(fr_task_t *t) {
    return t->co;
}

static void on_limit_closed(uv_handle_t *h) {
    free(h);
}

/* Finished tasks keep their coroutine for the next hook call, up to this many per VM. Making
 * one per call (a new Lua thread, a registry slot, and a fresh registry key binding it, so the
 * registry rehashes as keys come and go) cost more than a short hook itself. */
#define TASK_IDLE_MAX 32

static fr_task_t *task_take(fr_vm_t *vm) {
    fr_list_t *l = fr_list_first(&vm->idle_tasks);
    if (l) {
        fr_list_remove(l);
        vm->nidle_tasks--;
        return FR_LIST_ENTRY(l, fr_task_t, link);
    }
    lua_State *L = vm->L;
    fr_task_t *t = fr_calloc(1, sizeof *t);
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    task_bind(L, t->co, t);
    return t;
}

static void task_free(fr_task_t *t) {
    fr_vm_t *vm = t->vm;
    lua_State *L = vm->L;
    fr_list_remove(&t->link);
    if (t->limit) {
        uv_timer_stop(t->limit);
        uv_close((uv_handle_t *)t->limit, on_limit_closed);
        t->limit = NULL;
    }
    /* Only a coroutine that returned can run again: one that failed or was dropped while
     * parked keeps its dead frames. */
    if (!vm->retired && lua_status(t->co) == 0 && vm->nidle_tasks < TASK_IDLE_MAX) {
        lua_settop(t->co, 0);
        fr_list_insert_head(&vm->idle_tasks, &t->link);
        vm->nidle_tasks++;
    } else {
        task_bind(L, t->co, NULL);
        luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
        free(t);
    }
    fr_vm_release(vm);
}

void fr_task_free_idle(fr_vm_t *vm) {
    for (fr_list_t *l; (l = fr_list_first(&vm->idle_tasks));) {
        fr_list_remove(l);
        free(FR_LIST_ENTRY(l, fr_task_t, link));
    }
    vm->nidle_tasks = 0;
}

/* Runs the coroutine until it finishes or parks; nargs values are on its stack. */
static int run(fr_task_t *t, int nargs) {
    fr_vm_t *vm = t->vm;
    lua_State *L = vm->L, *co = t->co;
    fr_vm_budget_begin(vm, co);
    int rc = lua_resume(co, nargs);
    fr_vm_budget_end(vm, co);
    if (rc == LUA_YIELD)
        return FR_TASK_WAIT;
    if (rc != 0) {
        /* The coroutine's frames are still there to say where it failed. */
        char src[256];
        int line;
        fr_vm_where(co, src, sizeof src, &line);
        const char *msg = lua_isstring(co, -1) ? lua_tostring(co, -1) : NULL;
        char other[96];
        if (!msg) {
            snprintf(other, sizeof other, "(error object is a %s value)",
                     luaL_typename(co, -1));
            msg = other;
        }
        fr_vm_report(vm, t->route, t->what, msg, src, line, rc);
        return FR_TASK_ERROR;
    }
    /* Exactly nresults values on the VM's stack, as lua_pcall leaves them. */
    int n = lua_gettop(co);
    if (n > t->nresults) {
        lua_pop(co, n - t->nresults);
        n = t->nresults;
    }
    lua_xmove(co, L, n);
    for (; n < t->nresults; n++)
        lua_pushnil(L);
    return FR_TASK_OK;
}

int fr_task_start(fr_vm_t *vm, const fr_route_t *route, const char *what, int nargs,
                  int nresults, fr_task_cb cb, void *ctx, fr_task_t **task) {
    lua_State *L = vm->L;
    fr_task_t *t = task_take(vm);
    t->vm = vm;
    fr_vm_retain(vm);
    t->route = route;
    t->what = what;
    t->nresults = nresults;
    t->calls = 0;
    t->cancel = NULL;
    t->op = NULL;
    t->started_ms = vm->host ? uv_now(vm->host->loop) : 0;
    t->cb = cb;
    t->ctx = ctx;
    lua_xmove(L, t->co, nargs + 1);
    int rc = run(t, nargs);
    if (rc == FR_TASK_WAIT) {
        if (task)
            *task = t;
        else
            fr_list_insert_head(&vm->tasks, &t->link);
        return FR_TASK_WAIT;
    }
    task_free(t);
    return rc;
}

/* A task that waited ends: its callback hears how, with the results on the VM's stack. */
static void finish(fr_task_t *t, int status) {
    fr_task_cb cb = t->cb;
    void *ctx = t->ctx;
    /* The task goes first (the callback may free what its context points to); the VM, whose
     * stack holds the results, stays until the callback has taken them. */
    fr_vm_t *vm = t->vm;
    fr_vm_retain(vm);
    task_free(t);
    if (cb)
        cb(ctx, status);
    fr_vm_release(vm);
}

/* The script line a parked task waits on: the innermost frame outside freshet's own Lua
 * (the Lua files under lua/freshet wrap the waiting functions). */
static void waited_where(lua_State *co, char *src, size_t len, int *line) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(co, level, &ar); level++) {
        lua_getinfo(co, "Sl", &ar);
        if (ar.currentline > 0 && strncmp(ar.short_src, "lua/freshet/", 12) != 0) {
            snprintf(src, len, "%s", ar.short_src);
            *line = ar.currentline;
            return;
        }
    }
    fr_vm_where(co, src, len, line);
}

static void on_limit(uv_timer_t *h) {
    fr_task_t *t = h->data;
    char src[256];
    int line;
    waited_where(t->co, src, sizeof src, &line);
    if (t->cancel)
        t->cancel(t->op);
    t->cancel = NULL;
    char msg[160];
    snprintf(msg, sizeof msg, "the hook waited longer than its limit (timeouts.hook, %llu ms)",
             (unsigned long long)t->vm->config.hook_timeout_ms);
    fr_vm_report(t->vm, t->route, t->what, msg, src, line, LUA_ERRRUN);
    finish(t, FR_TASK_TIMEOUT);
}

void fr_task_wait(fr_task_t *t, void (*cancel)(void *op), void *op) {
    t->cancel = cancel;
    t->op = op;
    if (t->limit || !t->vm->host)
        return;
    t->limit = fr_malloc(sizeof *t->limit);
    uv_loop_t *loop = t->vm->host->loop;
    uv_timer_init(loop, t->limit);
    t->limit->data = t;
    /* The limit counts from the hook's start, not from its first wait. */
    uint64_t spent = uv_now(loop) - t->started_ms, limit = t->vm->config.hook_timeout_ms;
    uv_timer_start(t->limit, on_limit, spent < limit ? limit - spent : 0, 0);
}

void fr_task_resume(fr_task_t *t, int nvalues) {
    t->cancel = NULL;
    t->op = NULL;
    int rc = run(t, nvalues);
    if (rc != FR_TASK_WAIT)
        finish(t, rc);
}

static __thread const void *current_answer;

void fr_task_resume_with(fr_task_t *t, const void *answer) {
    const void *outer = current_answer;
    current_answer = answer;
    lua_pushlightuserdata(t->co, (void *)answer);
    fr_task_resume(t, 1);
    current_answer = outer;
}

const void *fr_task_answer(lua_State *L, int idx) {
    const void *a = lua_touserdata(L, idx);
    return a && a == current_answer ? a : NULL;
}

void fr_task_cancel(fr_task_t *t) {
    if (t->cancel)
        t->cancel(t->op);
    task_free(t);
}

void fr_task_cancel_unowned(fr_vm_t *vm) {
    for (fr_list_t *l; (l = fr_list_first(&vm->tasks));)
        fr_task_cancel(FR_LIST_ENTRY(l, fr_task_t, link));
}
