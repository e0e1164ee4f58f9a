/* Replay ring: the last `max_events` events of one topic, oldest first, each slot holding one
 * reference. Grows on demand up to max_events, so quiet topics cost little.
 *
 *   slots: [ . . e5 e6 e7 e8 e3 e4 ]     head → e3 (oldest), count = 6
 *   evicted_upto: id of the newest event that has left the ring (valid when has_evicted)
 *
 * Every event with an id greater than evicted_upto is still in the ring, which is what lets a
 * resume be exact. */
#ifndef FR_RING_H
#define FR_RING_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

/* Private to core/ring.c; count, evicted_upto and has_evicted are read by the hub. */
typedef struct {
    fr_event_t **slots; /* owned array; each non-empty slot owns one event reference */
    size_t cap;         /* allocated slots */
    size_t max_events;  /* the configured bound */
    size_t head;        /* index of the oldest event */
    size_t count;
    fr_id_t evicted_upto;
    int has_evicted;
} fr_ring_t;

void fr_ring_init(fr_ring_t *ring, size_t max_events);
/* Releases every held event and the slot array. */
void fr_ring_close(fr_ring_t *ring);

/* Appends ev (takes one new reference); evicts the oldest when full. ev's id must be greater
 * than every id already held. */
void fr_ring_push(fr_ring_t *ring, fr_event_t *ev);

/* Evicts events published before cutoff_ms (wall clock). Returns how many left. */
size_t fr_ring_expire(fr_ring_t *ring, uint64_t cutoff_ms);

/* The i-th event, oldest first (borrowed). */
fr_event_t *fr_ring_at(const fr_ring_t *ring, size_t i);

/* Index of the first event whose id is greater than `after` (count when none). */
size_t fr_ring_after(const fr_ring_t *ring, fr_id_t after);

/* 1 when an event with exactly this id is held. */
int fr_ring_contains(const fr_ring_t *ring, fr_id_t id);

#endif
