/* A task: one hook call that may wait. The hook runs as a coroutine of the VM; a waiting
 * function (freshet.sleep, freshet.http.request, freshet.redis) parks it and returns to the
 * loop, and resumes it when its answer comes. The request waits; the worker does not.
 *
 *   fr_task_start ──resume──► hook runs ──returns──► FR_TASK_OK, results on the VM's stack
 *                                 │
 *                                 └─ waiting function: fr_task_wait + lua_yield ──► FR_TASK_WAIT
 *   … a later loop turn: the answer ──fr_task_resume──► hook runs on ──► cb(ctx, status)
 *
 * The instruction budget applies to each resume; a wall-clock limit (timeouts.hook) applies to
 * the whole call and ends it with FR_TASK_TIMEOUT. A task holds a reference to its VM, so a
 * reload lets it finish on the scripts it started with. fr_task_cancel drops a task whose
 * client went away: what it waits on is cancelled and its callback never runs. */
#ifndef FR_TASK_H
#define FR_TASK_H

#include <lua.h>

#include "lua/vm.h"

typedef struct fr_task_s fr_task_t;

enum {
    FR_TASK_OK = 0,       /* finished; its results are on the VM's stack */
    FR_TASK_ERROR = -1,   /* a Lua error, logged with file:line */
    FR_TASK_TIMEOUT = -2, /* past its wall-clock limit, logged with the line it waited on */
    FR_TASK_WAIT = 1      /* (fr_task_start only) parked: the callback comes later */
};

/* Told how a task that waited ended; with FR_TASK_OK its nresults results are on the VM's
 * stack (the callee pops them). */
typedef void (*fr_task_cb)(void *ctx, int status);

/* Runs the function below nargs arguments on the VM's stack (both are taken) as a task named
 * `what` (for log lines). Returns FR_TASK_OK (nresults results pushed), FR_TASK_ERROR (nothing
 * pushed) when it finished without waiting, or FR_TASK_WAIT with *task set: cb runs later,
 * unless the task is cancelled. With task NULL (a timer's run, which nobody waits for) the
 * VM owns the task and cancels it when it is retired; cb may then be NULL. */
int fr_task_start(fr_vm_t *vm, const fr_route_t *route, const char *what, int nargs,
                  int nresults, fr_task_cb cb, void *ctx, fr_task_t **task);

/* Drops a waiting task: what it waits on is cancelled; its callback never runs. */
void fr_task_cancel(fr_task_t *t);

/* Drops the waiting tasks the VM owns (fr_vm_retire: a reload or a shutdown). */
void fr_task_cancel_unowned(fr_vm_t *vm);

/* Frees the finished tasks kept for reuse (their coroutines go with the Lua state). */
void fr_task_free_idle(fr_vm_t *vm);

/* ---- for waiting functions ------------------------------------------------------------ */

/* The task L runs in, or NULL when the code cannot wait there (a filter, the app file). */
fr_task_t *fr_task_current(lua_State *L);

/* Counts one more backend call of the task; returns how many it made. */
unsigned fr_task_count_call(fr_task_t *t);

/* The VM the task runs on (the one it started on, even after a reload). */
const fr_vm_t *fr_task_vm(const fr_task_t *t);

/* Parks the task on an operation: cancel(op) is called if the task is dropped or times out
 * before fr_task_resume. The C function then returns lua_yield(L, 0). */
void fr_task_wait(fr_task_t *t, void (*cancel)(void *op), void *op);

/* The operation's answer: push nvalues values on fr_task_thread(t), then resume the task
 * (they become the waiting function's results). */
lua_State *fr_task_thread(fr_task_t *t);
void fr_task_resume(fr_task_t *t, int nvalues);

/* The operation's answer as C data: resumes the task with one light userdata, `answer`, which
 * the waiting function's Lua half hands straight back to a C function that builds the Lua
 * values (building allocates: past the VM's memory limit that must fail inside the hook, as
 * a Lua error, not in the callback). fr_task_answer(L, idx) returns the answer at idx while
 * the coroutine runs on from this resume, and NULL for anything else. */
void fr_task_resume_with(fr_task_t *t, const void *answer);
const void *fr_task_answer(lua_State *L, int idx);

/* The message of a waiting function called where nothing may wait. */
#define FR_TASK_CANNOT_WAIT                                                                     \
    "cannot wait here: waiting functions work in auth, topics, tier, publish, message and "   \
    "timers, not in filter (it runs per delivery) or while the app file loads"

#endif
