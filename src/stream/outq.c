#include "stream/outq.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void fr_outq_init(fr_outq_t *q) {
    memset(q, 0, sizeof *q);
    q->next_seq = 1; /* 0 means "none" in a topic's last_seq */
}

void fr_item_release(fr_item_t *it) {
    if (it->ev)
        fr_event_release(it->ev);
    free(it->own);
    it->ev = NULL;
    it->own = NULL;
    it->own_len = it->shared_len = 0;
    it->shared = NULL;
}

void fr_outq_close(fr_outq_t *q) {
    for (size_t i = 0; i < q->len; i++)
        fr_item_release(fr_outq_at(q, i));
    free(q->q);
    q->q = NULL;
    q->cap = q->head = q->len = 0;
}

void fr_outq_grow(fr_outq_t *q) {
    size_t cap = q->cap ? q->cap * 2 : 4;
    fr_item_t *ring = fr_malloc(cap * sizeof *ring);
    for (size_t i = 0; i < q->len; i++)
        ring[i] = *fr_outq_at(q, i);
    free(q->q);
    q->q = ring;
    q->cap = (uint32_t)cap;
    q->head = 0;
}

static fr_item_t *push(fr_outq_t *q, const fr_item_t *it) {
    if (q->len == q->cap)
        fr_outq_grow(q);
    fr_item_t *slot = &q->q[(q->head + q->len) & (q->cap - 1)];
    *slot = *it;
    slot->seq = q->next_seq++;
    q->len++;
    q->bytes += fr_item_size(slot);
    if (slot->kind == FR_ITEM_EVENT) {
        q->live++;
        q->by_prio[slot->ev->priority]++;
    }
    return slot;
}

void fr_outq_push_owned(fr_outq_t *q, char *bytes, size_t len) {
    fr_item_t it = {.kind = FR_ITEM_BYTES, .own = bytes, .own_len = (uint32_t)len};
    push(q, &it);
}

void fr_outq_push_static(fr_outq_t *q, const char *bytes, size_t len) {
    fr_item_t it = {.kind = FR_ITEM_BYTES, .shared = bytes, .shared_len = (uint32_t)len};
    push(q, &it);
}

/* The queued item with this seq, or NULL (items are in seq order: a binary search). */
static fr_item_t *find(fr_outq_t *q, uint64_t seq) {
    size_t lo = 0, hi = q->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        fr_item_t *it = fr_outq_at(q, mid);
        if (it->seq == seq)
            return it;
        if (it->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Drops the holes that dropped and conflated events leave, once they outnumber the live
 * items: a reader that is stuck must not grow the queue with holes. */
static void compact(fr_outq_t *q) {
    size_t holes = 0;
    for (size_t i = 0; i < q->len; i++) {
        const fr_item_t *it = fr_outq_at(q, i);
        holes += it->kind == FR_ITEM_EVENT && !it->ev;
    }
    if (holes < 64 || holes < q->len / 2)
        return;
    size_t k = 0;
    for (size_t i = 0; i < q->len; i++) {
        fr_item_t it = *fr_outq_at(q, i);
        if (it.kind == FR_ITEM_EVENT && !it.ev)
            continue;
        *fr_outq_at(q, k++) = it;
    }
    q->len = k;
}

void fr_outq_drop(fr_outq_t *q, fr_item_t *it) {
    q->bytes -= fr_item_size(it);
    q->live--;
    q->by_prio[it->ev->priority]--;
    fr_item_release(it);
}

void fr_outq_drop_events(fr_outq_t *q) {
    for (size_t i = 0; i < q->len; i++) {
        fr_item_t *it = fr_outq_at(q, i);
        if (it->kind == FR_ITEM_EVENT && it->ev)
            fr_outq_drop(q, it);
    }
}

/* The oldest queued event of a priority, or NULL. */
static fr_item_t *oldest(fr_outq_t *q, fr_priority_t prio) {
    if (q->by_prio[prio] == 0)
        return NULL;
    for (size_t i = 0; i < q->len; i++) {
        fr_item_t *it = fr_outq_at(q, i);
        if (it->kind == FR_ITEM_EVENT && it->ev && it->ev->priority == prio)
            return it;
    }
    return NULL;
}

int fr_outq_over(const fr_outq_t *q, const fr_tier_t *budget, size_t held, size_t incoming) {
    return q->live >= budget->queue || q->bytes + held + incoming > budget->bytes;
}

static void count_drop(fr_outq_t *q, fr_priority_t prio) {
    q->dropped[prio]++;
    q->unreported++;
    q->streak++;
}

static int lagging(const fr_outq_t *q, const fr_tier_t *budget) {
    return q->live + q->streak > budget->lag;
}

fr_admit_t fr_outq_admit(fr_outq_t *q, fr_item_t *it, fr_slow_t slow, uint64_t *last_seq,
                         const fr_tier_t *budget, size_t held, fr_admit_info_t *info) {
    memset(info, 0, sizeof *info);
    fr_event_t *ev = it->ev;
    size_t size = fr_item_size(it);
    fr_item_t *old = slow == FR_SLOW_CONFLATE && *last_seq ? find(q, *last_seq) : NULL;
    if (old && old->kind == FR_ITEM_EVENT && old->ev && old->topic == it->topic) {
        info->conflated = 1;
        if (old == fr_outq_at(q, q->len - 1)) {
            /* The newest item: replace it where it stands, so a single topic never grows the
             * queue however fast it is published. */
            q->bytes = q->bytes - fr_item_size(old) + size;
            q->by_prio[old->ev->priority]--;
            q->by_prio[ev->priority]++;
            uint64_t seq = old->seq;
            fr_item_release(old);
            *old = *it;
            old->seq = seq;
            fr_event_retain(ev);
            info->queued = 1;
            return FR_ADMIT_REPLACED;
        }
        fr_outq_drop(q, old);
        compact(q);
    }
    if (fr_outq_over(q, budget, held, size)) {
        if (slow == FR_SLOW_DISCONNECT)
            return FR_ADMIT_EVICT_SLOW;
        fr_item_t *victim = NULL;
        if (ev->priority != FR_PRIO_TELEMETRY)
            victim = oldest(q, FR_PRIO_TELEMETRY);
        if (!victim && ev->priority == FR_PRIO_CRITICAL)
            victim = oldest(q, FR_PRIO_NORMAL);
        if (victim) {
            info->victim = 1;
            info->victim_topic = victim->topic;
            info->victim_prio = victim->ev->priority;
            count_drop(q, victim->ev->priority);
            fr_outq_drop(q, victim);
        } else if (ev->priority != FR_PRIO_CRITICAL) {
            count_drop(q, ev->priority);
            info->self_dropped = 1;
            return lagging(q, budget) ? FR_ADMIT_EVICT_LAG : FR_ADMIT_DROPPED;
        } else {
            return FR_ADMIT_EVICT_DROP;
        }
    }
    fr_event_retain(ev);
    *last_seq = push(q, it)->seq;
    info->queued = 1;
    return lagging(q, budget) ? FR_ADMIT_EVICT_LAG : FR_ADMIT_QUEUED;
}

void fr_outq_take(fr_outq_t *q, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const fr_item_t *it = fr_outq_at(q, i);
        q->bytes -= fr_item_size(it);
        if (it->kind == FR_ITEM_EVENT && it->ev) {
            q->live--;
            q->by_prio[it->ev->priority]--;
        }
    }
    q->head = q->cap ? (q->head + n) & (q->cap - 1) : 0;
    q->len -= n;
}

void fr_outq_release_front(fr_outq_t *q, size_t n) {
    for (size_t i = 0; i < n; i++) {
        fr_item_t *it = fr_outq_at(q, i);
        q->bytes -= fr_item_size(it);
        if (it->ev) {
            q->live -= it->kind == FR_ITEM_EVENT;
            q->by_prio[it->ev->priority] -= it->kind == FR_ITEM_EVENT;
            fr_event_release(it->ev);
        }
        if (it->own) /* most items own nothing: no call for them */
            free(it->own);
    }
    q->head = q->cap ? (q->head + n) & (q->cap - 1) : 0;
    q->len -= n;
}

void fr_outq_written(fr_outq_t *q) {
    if (q->live == 0)
        q->streak = 0;
}

void fr_outq_trim(fr_outq_t *q) {
    if (q->len > 0)
        return;
    free(q->q);
    q->q = NULL;
    q->cap = q->head = 0;
}
