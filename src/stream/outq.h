/* A stream's out-queue: what is still to be written, in order, and the policy that keeps it
 * bounded when the client reads slower than events arrive.
 *
 *   items (a ring, oldest first):  [retry] [ev 7] [hole] [ev 9] [":\n\n"] [ev 12]
 *                                    bytes   event   dropped  event  bytes   event
 *
 * An item is bytes the stream owns, bytes it borrows (static, or an event's frame), or both: an
 * event item holds one reference to its event, which keeps the borrowed frame alive. A dropped
 * or conflated event leaves a hole that the writer passes over; holes are compacted away once
 * they outnumber the live items.
 *
 * Budgets come from the stream's tier: `queue` events, `bytes` (counting what the sink still
 * holds), `lag` (events queued plus dropped in a row) before the stream is given up. Past the
 * budget, telemetry goes first, then normal; a critical event is never dropped silently (the
 * stream is ended instead, and its client gets it again from replay). No I/O, no Lua: the
 * policy is tested on its own (tests/unit/test_outq.c). */
#ifndef FR_OUTQ_H
#define FR_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/event.h"

typedef enum { FR_ITEM_BYTES = 0, FR_ITEM_EVENT = 1 } fr_item_kind_t;

typedef struct {
    fr_event_t *ev;     /* EVENT: one reference; NULL once dropped (a hole) */
    char *own;          /* owned bytes written first, or NULL */
    const char *shared; /* borrowed bytes written after own: static, or inside ev */
    uint32_t own_len, shared_len;
    uint64_t seq;       /* position in the queue since the stream opened */
    uint32_t topic;     /* EVENT: index of its topic in the stream */
    uint8_t kind;       /* fr_item_kind_t */
} fr_item_t;

/* Counts are 32 bits: a queue is bounded by its tier long before (an idle stream's size is
 * what a server with 100,000 streams pays for). Owned by the stream layer; transports and
 * /metrics read live, unreported, streak and dropped. */
typedef struct {
    fr_item_t *q;              /* owned ring, cap a power of two; NULL while idle */
    uint32_t cap, head, len;   /* len counts holes until they are passed or compacted */
    uint32_t live;             /* events queued and still to be written */
    uint32_t by_prio[3];       /* live events per fr_priority_t */
    uint32_t unreported;       /* drops the client has not been told about */
    uint64_t next_seq;         /* seq of the next item pushed */
    size_t bytes;              /* bytes of the queued items */
    size_t streak;             /* events dropped since the queue was last empty */
    unsigned long dropped[3];  /* events dropped per priority since the stream opened */
} fr_outq_t;

/* What fr_outq_admit did with an event. */
typedef enum {
    FR_ADMIT_QUEUED = 0,   /* pushed */
    FR_ADMIT_REPLACED,     /* took the place of its topic's unsent newest event (conflation) */
    FR_ADMIT_DROPPED,      /* not queued: the queue is full and it mattered least */
    FR_ADMIT_EVICT_SLOW,   /* the topic's policy is disconnect and the queue is full */
    FR_ADMIT_EVICT_DROP,   /* a critical event found nothing less important to drop */
    FR_ADMIT_EVICT_LAG     /* queued or not, the stream is more than `lag` events behind */
} fr_admit_t;

/* Side effects of an admission that the stream counts (per topic, in metrics). */
typedef struct {
    int queued;                 /* the item was taken (pushed, or put in place of another) */
    int self_dropped;           /* the offered event itself was dropped */
    int victim;                 /* an older queued event was dropped to make room */
    uint32_t victim_topic;
    fr_priority_t victim_prio;
    int conflated;              /* an older unsent event of the topic was superseded */
} fr_admit_info_t;

void fr_outq_init(fr_outq_t *q);
/* Releases every item and the ring. */
void fr_outq_close(fr_outq_t *q);

/* The i-th item, oldest first. (Inline, as the next two: the writer runs them per item.) */
static inline fr_item_t *fr_outq_at(fr_outq_t *q, size_t i) {
    return &q->q[(q->head + i) & (q->cap - 1)];
}

/* Bytes the item puts on the wire (0 for a hole). */
static inline size_t fr_item_size(const fr_item_t *it) {
    if (it->kind == FR_ITEM_EVENT && !it->ev)
        return 0;
    return (size_t)it->own_len + it->shared_len;
}

/* Fills bufs with the item's bytes (at most 2); returns how many. */
static inline size_t fr_item_bufs(const fr_item_t *it, uv_buf_t *bufs) {
    size_t n = 0;
    if (it->kind == FR_ITEM_EVENT && !it->ev)
        return 0;
    /* Not uv_buf_init: a call into libuv per buffer, per delivery. */
    if (it->own_len)
        bufs[n++] = (uv_buf_t){.base = it->own, .len = it->own_len};
    if (it->shared_len)
        bufs[n++] = (uv_buf_t){.base = (char *)it->shared, .len = it->shared_len};
    return n;
}
/* Releases what the item holds (event reference, owned bytes). */
void fr_item_release(fr_item_t *it);

/* Appends bytes: owned (freed with the item) or static (borrowed for as long as queued). */
void fr_outq_push_owned(fr_outq_t *q, char *bytes, size_t len);
void fr_outq_push_static(fr_outq_t *q, const char *bytes, size_t len);

/* Offers an event item (`it` holds no reference yet: admission takes one). `slow` is the policy
 * of its topic and *last_seq the seq of that topic's newest queued event (0: none), updated
 * here. `held` counts bytes the sink still holds. When info->queued is 0 the caller still owns
 * it->own. */
fr_admit_t fr_outq_admit(fr_outq_t *q, fr_item_t *it, fr_slow_t slow, uint64_t *last_seq,
                         const fr_tier_t *budget, size_t held, fr_admit_info_t *info);

/* Grows the ring by one slot's worth (doubling); the slow half of the push below. */
void fr_outq_grow(fr_outq_t *q);

/* The common case of fr_outq_admit, inline because it runs for every delivery: nothing to
 * conflate, room in the budget, no lag. Returns 1 when it queued the item (with a reference),
 * 0 when fr_outq_admit must decide. */
static inline int fr_outq_admit_fast(fr_outq_t *q, const fr_item_t *it, fr_slow_t slow,
                                     uint64_t *last_seq, const fr_tier_t *budget, size_t held) {
    size_t size = (size_t)it->own_len + it->shared_len;
    if ((slow == FR_SLOW_CONFLATE && *last_seq) || q->live >= budget->queue ||
        q->bytes + held + size > budget->bytes || q->live + 1 + q->streak > budget->lag)
        return 0;
    if (q->len == q->cap)
        fr_outq_grow(q);
    fr_item_t *slot = &q->q[(q->head + q->len) & (q->cap - 1)];
    *slot = *it;
    slot->seq = q->next_seq++;
    *last_seq = slot->seq;
    q->len++;
    q->bytes += size;
    q->live++;
    q->by_prio[it->ev->priority]++;
    fr_event_retain(it->ev);
    return 1;
}

/* Drops every queued event (a stream being given up); bytes items stay. */
void fr_outq_drop_events(fr_outq_t *q);
/* Drops one queued event, leaving a hole. */
void fr_outq_drop(fr_outq_t *q, fr_item_t *it);

/* Passes over holes at the front. */
static inline void fr_outq_skip_holes(fr_outq_t *q) {
    while (q->len > 0) {
        const fr_item_t *it = fr_outq_at(q, 0);
        if (it->kind != FR_ITEM_EVENT || it->ev)
            break;
        q->head = (q->head + 1) & (q->cap - 1);
        q->len--;
    }
}
/* Removes the n oldest items, which the caller has taken (their references move with them). */
void fr_outq_take(fr_outq_t *q, size_t n);
/* Removes the n oldest items, which were written: their references and bytes go. */
void fr_outq_release_front(fr_outq_t *q, size_t n);
/* A write has left: a queue that emptied ends its streak of drops. */
void fr_outq_written(fr_outq_t *q);
/* An empty queue that carried no events lately gives its ring back: idle streams hold none. */
void fr_outq_trim(fr_outq_t *q);

/* Over budget with `incoming` more bytes: as many events as the tier allows, or more bytes
 * waiting (queued here plus `held` by the sink) than its byte budget. */
int fr_outq_over(const fr_outq_t *q, const fr_tier_t *budget, size_t held, size_t incoming);

#endif
