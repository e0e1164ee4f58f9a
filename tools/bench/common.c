/* Counters arithmetic and allocation helpers shared by every part of the tool. */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void *fr_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "freshet-bench: out of memory (%zu bytes) at %s:%d\n", n, file, line);
        abort();
    }
    return p;
}

void *fr_xcalloc(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "freshet-bench: out of memory (%zu x %zu bytes) at %s:%d\n", n, size, file,
                line);
        abort();
    }
    return p;
}

void fr_counters_add(fr_counters_t *a, const fr_counters_t *b) {
    a->conns += b->conns;
    a->ready += b->ready;
    a->connect_failed += b->connect_failed;
    a->http_errors += b->http_errors;
    a->disconnects += b->disconnects;
    a->parse_errors += b->parse_errors;
    a->delivered += b->delivered;
    a->warmup_delivered += b->warmup_delivered;
    a->expected += b->expected;
    a->gaps += b->gaps;
    a->duplicates += b->duplicates;
    a->out_of_order += b->out_of_order;
    a->wrong_topic += b->wrong_topic;
    a->dropped_notices += b->dropped_notices;
    a->other_events += b->other_events;
    a->heartbeats += b->heartbeats;
    a->bytes += b->bytes;
    a->reads += b->reads;
    a->windows += b->windows;
    a->storm_dropped += b->storm_dropped;
    a->storm_no_id += b->storm_no_id;
    a->storm_live += b->storm_live;
    a->storm_failed += b->storm_failed;
    a->storm_caught_up += b->storm_caught_up;
    a->storm_gaps += b->storm_gaps;
    a->storm_duplicates += b->storm_duplicates;
    a->storm_out_of_order += b->storm_out_of_order;
    if (b->storm_live_max > a->storm_live_max)
        a->storm_live_max = b->storm_live_max;
    if (b->storm_catchup_max > a->storm_catchup_max)
        a->storm_catchup_max = b->storm_catchup_max;
    if (b->last_delivery_rt > a->last_delivery_rt)
        a->last_delivery_rt = b->last_delivery_rt;
    if (b->interval_lat_max > a->interval_lat_max)
        a->interval_lat_max = b->interval_lat_max;
    if (!a->first_error[0] && b->first_error[0])
        snprintf(a->first_error, sizeof a->first_error, "%s", b->first_error);
}

void fr_counters_error(fr_counters_t *c, const char *fmt, ...) {
    if (c->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->first_error, sizeof c->first_error, fmt, ap);
    va_end(ap);
}
