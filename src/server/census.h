/* What /metrics says about the present: connections by route and state, and histograms of
 * stream queue depths, counted from a worker's own lists (server/metrics.c). */
#ifndef FR_CENSUS_H
#define FR_CENSUS_H

#include <stddef.h>


/* A worker's connections by (route, transport, state) and its streams' queue histograms. With several
 * workers each refreshes its census under its own lock once per heartbeat tick, and /metrics
 * merges the others' with a live one of its own: another worker's connection list is never
 * walked from this thread. Route patterns are copied, since a reload frees the old ones. */
#define FR_CENSUS_GROUPS 64u
#define FR_CENSUS_BOUNDS 8u
typedef struct {
    char route[96];
    const char *transport; /* static string: "sse", "ws", "poll", or "http" (no stream) */
    const char *state;     /* static string */
    unsigned long n;
} fr_census_group_t;

typedef struct {
    unsigned long counts[FR_CENSUS_BOUNDS];
    unsigned long total;
    double sum;
} fr_census_hist_t;

typedef struct {
    fr_census_group_t groups[FR_CENSUS_GROUPS];
    size_t ngroups;
    fr_census_hist_t depth, lag;
} fr_census_t;


#endif
