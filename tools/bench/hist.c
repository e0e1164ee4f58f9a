/* Logarithmic histogram; see hist.h for the bucket layout and its precision. */
#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v) {
    if (v < 2 * FR_HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);         /* >= SUB_BITS + 1 */
    unsigned mant = (unsigned)(v >> (e - FR_HIST_SUB_BITS)); /* SUB .. 2*SUB-1 */
    return 2 * FR_HIST_SUB + (e - FR_HIST_SUB_BITS - 1) * FR_HIST_SUB + (mant - FR_HIST_SUB);
}

/* Lowest value of bucket i and its width. */
static void bucket_range(unsigned i, uint64_t *low, uint64_t *width) {
    if (i < 2 * FR_HIST_SUB) {
        *low = i;
        *width = 1;
        return;
    }
    unsigned k = i - 2 * FR_HIST_SUB;
    unsigned e = k / FR_HIST_SUB + FR_HIST_SUB_BITS + 1;
    uint64_t mant = k % FR_HIST_SUB + FR_HIST_SUB;
    *low = mant << (e - FR_HIST_SUB_BITS);
    *width = (uint64_t)1 << (e - FR_HIST_SUB_BITS);
}

void fr_hist_reset(fr_hist_t *h) {
    memset(h, 0, sizeof *h);
}

void fr_hist_record(fr_hist_t *h, uint64_t value) {
    h->buckets[bucket_of(value)]++;
    h->count++;
    if (value > h->max)
        h->max = value;
}

void fr_hist_merge(fr_hist_t *a, const fr_hist_t *b) {
    for (unsigned i = 0; i < FR_HIST_BUCKETS; i++)
        a->buckets[i] += b->buckets[i];
    a->count += b->count;
    if (b->max > a->max)
        a->max = b->max;
}

uint64_t fr_hist_quantile(const fr_hist_t *h, double q) {
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    /* The rank is 1-based: p50 of {a, b} is a, as with a sorted array's ceil(q * n)-th item. */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < FR_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t low, width;
            bucket_range(i, &low, &width);
            uint64_t mid = low + width / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
