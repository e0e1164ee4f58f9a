/* /proc/PID/status and /proc/PID/stat readers; see procstat.h. */
#include "procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static long read_rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* Pss from smaps_rollup: the process's share of every page it maps, so the sum over a master
 * and its workers counts a shared page (nchan's shared memory zone, the master's pages its
 * forked workers still share) once in total. */
static long read_pss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Pss:", 4) == 0) {
            kb = strtol(line + 4, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* utime and stime are fields 14 and 15; the command name (field 2) may hold spaces and
 * parentheses, so counting starts after the last ')'. */
static double read_cpu_s(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long utime = 0, stime = 0;
    /* After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15). */
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}

int fr_procstat_sample(const int *pids, uint32_t n, fr_procstat_t *out) {
    memset(out, 0, sizeof *out);
    out->at = fr_now_mono();
    out->ok = n > 0;
    for (uint32_t i = 0; i < n; i++) {
        long rss = read_rss_kb(pids[i]), pss = read_pss_kb(pids[i]);
        double cpu = read_cpu_s(pids[i]);
        if (rss < 0 || cpu < 0)
            out->ok = 0;
        out->rss_kb += rss > 0 ? rss : 0;
        out->cpu_s += cpu > 0 ? cpu : 0;
        if (pss < 0 || out->pss_kb < 0)
            out->pss_kb = -1;
        else
            out->pss_kb += pss;
    }
    if (!out->ok) {
        out->rss_kb = 0;
        out->cpu_s = 0;
    }
    return out->ok ? 0 : -1;
}
