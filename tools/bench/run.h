/* The two sides of a run. The parent publishes, samples the server, prints the progress line
 * and the report; subscribers run in the parent itself (one process) or in children (--procs),
 * each child with its own loop, reporting over a socketpair (ipc.h):
 *
 *   parent:  [connect phase] -> publisher: warmup | measured -> tail -> end -> report
 *   child:   [connect phase] -> READY, SNAP ... WINDOW, SNAP ... EOF -> FINAL -> exit
 *
 * The run ends itself after warmup + duration + tail (the tail ends early once every expected
 * event arrived), so it is bounded in time whatever the server does. */
#ifndef FR_RUN_H
#define FR_RUN_H

#include <stdint.h>
#include <sys/types.h>

#include "bench.h"

typedef struct fr_child_s {
    pid_t pid;
    int fd;         /* the parent's end of the socketpair */
    uint32_t first; /* global index of the child's first subscriber */
    uint32_t count;
} fr_child_t;

/* Runs the parent side. With no children the parent runs all subscribers itself. Returns the
 * exit status: 0 when the run took place, 1 when it could not (nothing connected, the
 * publisher could not connect). */
int fr_run_parent(const fr_opts_t *opts, const fr_child_t *children, uint32_t nchildren);

/* Runs one child's subscribers until the parent closes `fd` (or the child's own deadline).
 * Returns the exit status. */
int fr_run_child(const fr_opts_t *opts, int fd, uint32_t first, uint32_t count);

/* Seconds after which a run ends itself whatever happens. */
double fr_run_bound_s(const fr_opts_t *opts);

#endif
