#include "core/ring.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void fr_ring_init(fr_ring_t *ring, size_t max_events) {
    memset(ring, 0, sizeof *ring);
    ring->max_events = max_events;
}

void fr_ring_close(fr_ring_t *ring) {
    for (size_t i = 0; i < ring->count; i++)
        fr_event_release(fr_ring_at(ring, i));
    free(ring->slots);
    memset(ring, 0, sizeof *ring);
}

fr_event_t *fr_ring_at(const fr_ring_t *ring, size_t i) {
    return ring->slots[(ring->head + i) % ring->cap];
}

static void ring_evict_oldest(fr_ring_t *ring) {
    fr_event_t *old = ring->slots[ring->head];
    ring->slots[ring->head] = NULL;
    ring->evicted_upto = old->id;
    ring->has_evicted = 1;
    ring->head = (ring->head + 1) % ring->cap;
    ring->count--;
    fr_event_release(old);
}

static void ring_grow(fr_ring_t *ring) {
    size_t cap = ring->cap ? ring->cap * 2 : 8;
    if (cap > ring->max_events)
        cap = ring->max_events;
    fr_event_t **slots = fr_calloc(cap, sizeof *slots);
    for (size_t i = 0; i < ring->count; i++)
        slots[i] = fr_ring_at(ring, i);
    free(ring->slots);
    ring->slots = slots;
    ring->cap = cap;
    ring->head = 0;
}

void fr_ring_push(fr_ring_t *ring, fr_event_t *ev) {
    if (ring->max_events == 0) {
        /* No replay: the event is evicted as soon as it is published. */
        ring->evicted_upto = ev->id;
        ring->has_evicted = 1;
        return;
    }
    if (ring->count == ring->cap && ring->cap < ring->max_events)
        ring_grow(ring);
    if (ring->count == ring->cap)
        ring_evict_oldest(ring);
    fr_event_retain(ev);
    ring->slots[(ring->head + ring->count) % ring->cap] = ev;
    ring->count++;
}

size_t fr_ring_expire(fr_ring_t *ring, uint64_t cutoff_ms) {
    size_t n = 0;
    while (ring->count > 0 && ring->slots[ring->head]->published_at < cutoff_ms) {
        ring_evict_oldest(ring);
        n++;
    }
    if (ring->count == 0 && ring->cap > 8) {
        /* A topic that went quiet gives its slots back. */
        free(ring->slots);
        ring->slots = NULL;
        ring->cap = 0;
        ring->head = 0;
    }
    return n;
}

size_t fr_ring_after(const fr_ring_t *ring, fr_id_t after) {
    size_t lo = 0, hi = ring->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fr_id_cmp(fr_ring_at(ring, mid)->id, after) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int fr_ring_contains(const fr_ring_t *ring, fr_id_t id) {
    size_t i = fr_ring_after(ring, id);
    return i > 0 && fr_id_cmp(fr_ring_at(ring, i - 1)->id, id) == 0;
}
