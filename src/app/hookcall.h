/* A hook call on behalf of a request: runs the hook as a task (lua/task.h) and, while it
 * waits, is the exchange's writer, so a client that leaves cancels what the hook waits on
 * (a backend request, a sleep) instead of leaving it to finish for nobody.
 *
 *   fr_hookcall_run ──finished──► FR_TASK_OK / FR_TASK_ERROR: the caller reads on at once
 *          │
 *          └─ waits ──► FR_TASK_WAIT ── later: done(hc, status), results on the VM's stack
 *                                    └─ or the client leaves: the task is cancelled, then
 *                                       dropped(hc) once the exchange is closed
 *
 * Embedded in what waits (an open, a publish); the caller holds the exchange throughout. */
#ifndef FR_HOOKCALL_H
#define FR_HOOKCALL_H

#include "http/exchange.h"
#include "lua/task.h"

typedef struct fr_hookcall_s fr_hookcall_t;

struct fr_hookcall_s {
    fr_exchange_t *x;                           /* borrowed: held by the caller */
    void (*done)(fr_hookcall_t *hc, int status); /* a task that waited ended */
    void (*dropped)(fr_hookcall_t *hc);          /* the client left while it waited */
    fr_task_t *task;                            /* while it waits */
    unsigned cancelled : 1;                     /* the client left; dropped() comes */
};

/* Runs the function below nargs arguments on the VM's stack as the hook `what` (static). */
int fr_hookcall_run(fr_hookcall_t *hc, fr_vm_t *vm, const fr_route_t *route, const char *what,
                    int nargs, int nresults);

/* The answer to a hook that failed (status FR_TASK_ERROR or FR_TASK_TIMEOUT). */
void fr_hookcall_refuse(fr_exchange_t *x, int status, const char *what);

/* A request's hooks in order (a publish: auth, tier, publish; an http route: auth, tier,
 * handle). Each step pushes its hook and arguments (returns how many arguments; 0 when the
 * route has no such hook, -1 after answering), then reads the results (0 to go on, -1 after
 * answering). A hook that waits resumes the sequence from its callback; when the sequence
 * ends (answered, or the client left) finish(owner) frees the owner. */
typedef struct {
    const char *what;
    int nresults;
    int (*push)(void *owner);
    int (*read)(void *owner);
} fr_hookstep_t;

typedef struct {
    fr_hookcall_t hc;            /* hc.x set by the owner */
    const fr_hookstep_t *steps;  /* static */
    size_t nsteps, step;
    fr_vm_t *vm;                 /* borrowed: the owner holds a reference */
    const fr_route_t *route;
    void *owner;
    void (*finish)(void *owner);
} fr_hooksteps_t;

/* Runs the steps from the current one. */
void fr_hooksteps_run(fr_hooksteps_t *s);

#endif
