/* The final report: everything a run measured, printed as text (like redis-benchmark) or as one
 * JSON object (--json). Field meanings are documented in docs/BENCH_TOOL.md. */
#ifndef FR_REPORT_H
#define FR_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "bench.h"
#include "hist.h"
#include "procstat.h"

typedef struct fr_result_s {
    const fr_opts_t *opts;
    uint32_t procs;            /* processes that ran subscribers */
    fr_counters_t c;           /* all subscribers together */
    fr_hist_t latency;         /* measured deliveries */
    fr_hist_t connect;         /* connect until the stream's first frame */
    fr_hist_t ack;             /* publish written until answered */
    fr_hist_t storm;           /* --storm: the drop until each stream's first frame after it */
    uint64_t published;        /* events sent after warmup (the measured window) */
    uint64_t warmup_published; /* events sent during warmup */
    uint64_t publish_ok;       /* 2xx answers (warmup included) */
    uint64_t publish_errors;   /* other answers and requests lost with the connection */
    uint64_t publish_unsent;   /* events the timetable held that were never sent */
    uint64_t lag_max_ns;       /* the most the publisher was behind its timetable */
    double connect_s;          /* how long the connect phase took */
    double measured_s;         /* measure start until the last measured delivery (or the end
                                  of publishing, if later): the span of deliveries_per_s */
    int server;                /* --server-pid given */
    fr_procstat_t srv_start;   /* before connecting */
    fr_procstat_t srv_ready;   /* after the connect phase */
    fr_procstat_t srv_measure; /* when measurement started */
    fr_procstat_t srv_end;     /* at the end of the tail */
    char first_error[96];
    int interrupted; /* stopped early by SIGINT */
} fr_result_t;

/* Every error class summed: the "errors" figure. */
uint64_t fr_result_errors(const fr_result_t *r);
void fr_report_text(FILE *out, const fr_result_t *r);
void fr_report_json(FILE *out, const fr_result_t *r);

#endif
