/* A fixed-size histogram of durations in ns with logarithmic buckets, in the spirit of HDR
 * histograms: recording is an index computation and an increment, so the hot path allocates
 * nothing, and histograms from several processes merge by adding their buckets.
 *
 * Values below 2 * FR_HIST_SUB are exact; above, each power of two is split into FR_HIST_SUB
 * buckets, so a reported percentile is within 1/FR_HIST_SUB (1.6%) of the true value. The
 * maximum is kept exactly. */
#ifndef FR_HIST_H
#define FR_HIST_H

#include <stdint.h>

#define FR_HIST_SUB_BITS 6
#define FR_HIST_SUB (1u << FR_HIST_SUB_BITS)
/* 2*SUB exact values, then SUB buckets for each exponent from SUB_BITS+1 to 63. */
#define FR_HIST_BUCKETS (2 * FR_HIST_SUB + (63 - FR_HIST_SUB_BITS) * FR_HIST_SUB)

typedef struct fr_hist_s {
    uint64_t count; /* values recorded */
    uint64_t max;   /* largest value, exact */
    uint64_t buckets[FR_HIST_BUCKETS];
} fr_hist_t;

void fr_hist_reset(fr_hist_t *h);
void fr_hist_record(fr_hist_t *h, uint64_t value);
/* Adds every bucket of `b` into `a`. */
void fr_hist_merge(fr_hist_t *a, const fr_hist_t *b);
/* The value at quantile q (0..1): the midpoint of the bucket holding that rank, never above
 * the maximum. 0 when the histogram is empty. */
uint64_t fr_hist_quantile(const fr_hist_t *h, double q);

#endif
