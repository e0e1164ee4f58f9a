#include "app/hookcall.h"

#include <stdio.h>

#include "base/util.h"

static void on_gone(void *owner, const char *reason) {
    (void)reason;
    fr_hookcall_t *hc = owner;
    if (!hc->task)
        return;
    fr_task_cancel(hc->task);
    hc->task = NULL;
    hc->cancelled = 1;
}

static void on_closed(void *owner) {
    fr_hookcall_t *hc = owner;
    on_gone(hc, NULL);
    if (hc->cancelled)
        hc->dropped(hc);
}

static void on_data(void *owner, const char *bytes, size_t len) {
    (void)owner, (void)bytes, (void)len; /* nothing reads before the answer */
}

static const fr_sink_owner_ops_t hookcall_owner_ops = {on_gone, on_closed, on_data};

static void on_task_done(void *ctx, int status) {
    fr_hookcall_t *hc = ctx;
    hc->task = NULL;
    fr_sink_attach(&hc->x->sink, NULL, NULL);
    hc->done(hc, status);
}

int fr_hookcall_run(fr_hookcall_t *hc, fr_vm_t *vm, const fr_route_t *route, const char *what,
                    int nargs, int nresults) {
    int rc = fr_task_start(vm, route, what, nargs, nresults, on_task_done, hc, &hc->task);
    if (rc == FR_TASK_WAIT)
        fr_sink_attach(&hc->x->sink, &hookcall_owner_ops, hc);
    return rc;
}

void fr_hookcall_refuse(fr_exchange_t *x, int status, const char *what) {
    if (status != FR_TASK_TIMEOUT) {
        fr_exchange_respond_error(x, 500, "internal error");
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "the route's %s hook did not answer in time", what);
    fr_exchange_respond_error(x, 504, msg);
}

static void on_step_done(fr_hookcall_t *hc, int status) {
    fr_hooksteps_t *s = FR_CONTAINER_OF(hc, fr_hooksteps_t, hc);
    const fr_hookstep_t *st = &s->steps[s->step];
    if (status != FR_TASK_OK)
        fr_hookcall_refuse(hc->x, status, st->what);
    else if (st->read(s->owner) == 0) {
        s->step++;
        fr_hooksteps_run(s);
        return;
    }
    s->finish(s->owner);
}

static void on_step_dropped(fr_hookcall_t *hc) {
    fr_hooksteps_t *s = FR_CONTAINER_OF(hc, fr_hooksteps_t, hc);
    s->finish(s->owner);
}

void fr_hooksteps_run(fr_hooksteps_t *s) {
    s->hc.done = on_step_done;
    s->hc.dropped = on_step_dropped;
    for (; s->step < s->nsteps; s->step++) {
        const fr_hookstep_t *st = &s->steps[s->step];
        int nargs = st->push(s->owner);
        if (nargs < 0)
            break;
        if (nargs == 0)
            continue;
        int rc = fr_hookcall_run(&s->hc, s->vm, s->route, st->what, nargs, st->nresults);
        if (rc == FR_TASK_WAIT)
            return;
        if (rc != FR_TASK_OK) {
            fr_hookcall_refuse(s->hc.x, rc, st->what);
            break;
        }
        if (st->read(s->owner) < 0)
            break;
    }
    s->finish(s->owner);
}
