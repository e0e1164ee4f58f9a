/* The server's figures, read from /proc when --server-pid is given: resident memory and CPU
 * time (user + system, all threads), summed over every PID given so that a server made of a
 * master and workers counts whole. Reading is cheap and done a handful of times per run. */
#ifndef FR_PROCSTAT_H
#define FR_PROCSTAT_H

#include <stdint.h>

typedef struct fr_procstat_s {
    int ok;       /* every file of every PID was read (Pss aside) */
    long rss_kb;  /* VmRSS, summed: pages shared by several PIDs count once per PID */
    long pss_kb;  /* Pss, summed: shared pages divided among their users; -1 if unreadable */
    double cpu_s; /* utime + stime, seconds, summed */
    uint64_t at;  /* monotonic ns when sampled */
} fr_procstat_t;

/* Samples processes `pids[0 .. n-1]`. Returns 0, or -1 (out->ok = 0) when one cannot be
 * read. */
int fr_procstat_sample(const int *pids, uint32_t n, fr_procstat_t *out);

#endif
