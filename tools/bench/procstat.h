/* The server's figures, read from /proc when --server-pid is given: resident memory and CPU
 * time (user + system, all threads). Reading is cheap and done a handful of times per run. */
#ifndef FR_PROCSTAT_H
#define FR_PROCSTAT_H

#include <stdint.h>

typedef struct fr_procstat_s {
    int ok;       /* both files were read */
    long rss_kb;  /* VmRSS */
    double cpu_s; /* utime + stime, seconds */
    uint64_t at;  /* monotonic ns when sampled */
} fr_procstat_t;

/* Samples process `pid`. Returns 0, or -1 (out->ok = 0) when it cannot be read. */
int fr_procstat_sample(int pid, fr_procstat_t *out);

#endif
