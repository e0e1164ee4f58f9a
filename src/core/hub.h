/* The hub: topic name → topic (replay ring, last id, subscribers); the in-memory broker.
 *
 * With the memory broker one hub serves every worker thread of the process: ids, rings and
 * topics are shared under the hub's lock, and each worker has a slot of its own — its
 * subscribers of each topic and its queue of events still to fan out:
 *
 *   publish (any worker) ──lock──► ring push ──► slot k pending += event (one reference)
 *                                                for every slot with subscribers, then
 *                                                wake worker k (uv_async)
 *   worker k, once per loop iteration: fr_hub_flush(hub, k) hands its pending events to
 *   its own subscribers, outside the lock; the payload is never copied.
 *
 * A slot's subscriber lists are only touched by its own worker, so a fan-out walks them
 * unlocked. With the Redis broker each worker is a node of its own with a one-slot hub.
 * The lock is recursive: a filter hook run during a replay may read the hub again. */
#ifndef FR_HUB_H
#define FR_HUB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"
#include "base/list.h"
#include "core/event.h"
#include "core/ring.h"

typedef struct fr_topic_s fr_topic_t;
typedef struct fr_sub_s fr_sub_t;

/* What a subscription's owner is told. */
typedef struct {
    /* An event published on the topic; ev is borrowed for the call. */
    void (*deliver)(fr_sub_t *sub, fr_event_t *ev);
    /* The broker cannot vouch for the topic's events any more (some were lost while it was
     * cut off): the owner should make its client come back through Last-Event-ID. */
    void (*lost)(fr_sub_t *sub);
} fr_sub_ops_t;

/* A subscription: one stream following one topic. Embedded in its owner (the stream), which
 * sets ops, owner, index, slot and who before fr_hub_subscribe; the hub owns the rest and
 * writes away and topic only under its lock. */
struct fr_sub_s {
    /* Private. First: a fan-out reads link, ops, owner and index of every subscriber, and
     * they share one cache line. */
    fr_list_t link;     /* in topic->slot[slot].subs while subscribed */
    /* Set by the owner. */
    const fr_sub_ops_t *ops;
    void *owner;        /* the stream */
    size_t index;       /* which of the owner's topics this is */
    unsigned slot;      /* the owner's worker */
    /* Read-only to the owner. */
    int away;           /* the owner is ending: presence no longer counts it */
    fr_topic_t *topic;  /* NULL while not subscribed */
    /* Set by the owner. */
    const char *who;    /* borrowed: the owner's presence id (NULL: anonymous) */
};

/* One worker's subscribers of one topic. */
typedef struct {
    fr_list_t subs;     /* fr_sub_t.link, the newest first */
    size_t nsubs;
} fr_topic_slot_t;

/* A topic: owned by the hub, read-only to everyone else, and only under the hub's lock (its
 * `dropped` counter excepted: a slow stream bumps it, and a figure may lag). */
struct fr_topic_s {
    char *name;          /* owned */
    fr_ring_t ring;
    fr_id_t last;        /* the newest id issued (or `born` while none was) */
    fr_id_t born;        /* ids at or below this predate what this topic remembers */
    size_t nsubs;        /* over every slot */
    uint64_t published;  /* events published since the topic was created */
    uint64_t dropped;    /* deliveries dropped by slow streams */
    int delivering;      /* fan-outs walking this topic's subs: it must not be freed */
    fr_hnode_t hnode;    /* in hub->topics, keyed by name */
    fr_topic_slot_t slot[]; /* one per worker (hub->nslots) */
};

/* Told when a topic gains its first local subscriber (follow = 1) or loses its last (0): a
 * broker that spans nodes subscribes this node to the topic only while someone follows it. */
typedef void (*fr_follow_cb)(void *ctx, const char *topic, int follow);

/* A worker's queue of stored events still to hand to its subscribers. */
typedef struct {
    fr_event_t **pending; /* owned array, one reference per event */
    size_t npending, cap;
    fr_event_t **spare;   /* owned: the array a flush handed back, reused */
    size_t spare_cap;
    void (*wake)(void *ctx); /* called (outside the lock) when pending stops being empty */
    void *wake_ctx;
} fr_hub_slot_t;

/* Private to core/hub.c but for on_follow and follow_ctx, which the broker that spans nodes
 * sets once before any stream subscribes and clears when it goes. */
typedef struct fr_hub_s {
    pthread_mutex_t mu;   /* recursive; guards everything below but the slots' sub lists */
    fr_hub_slot_t *slots; /* owned, nslots */
    size_t nslots;
    fr_htable_t topics;   /* name → fr_topic_t (owned through the table) */
    fr_follow_cb on_follow;
    void *follow_ctx;
    size_t replay_events;
    uint64_t replay_ms;
    /* Every id the hub ever issued or forgot is at or below this floor for new topics: the
     * start of this process, raised to the last id of each topic it deletes. */
    fr_id_t floor;
    uint64_t published;   /* events published, all topics */
    /* Events are stored at once and fanned out later: a publish is answered as soon as its
     * event is in the ring, and fan-out happens once per loop iteration (fr_hub_flush), so a
     * publisher never waits for thousands of streams, and events stored in one iteration
     * leave together. */
} fr_hub_t;

typedef enum {
    FR_RESUME_OK = 0,      /* every event after the id is held: replay is exact */
    FR_RESUME_STALE = -1,  /* events after it are gone (evicted, or before this process): 416 */
    FR_RESUME_INVALID = -2 /* the id was never issued on this topic: 400 */
} fr_resume_t;

/* A hub with `nslots` worker slots (at least 1). */
void fr_hub_init(fr_hub_t *hub, size_t nslots, size_t replay_events, uint64_t replay_ms,
                 uint64_t start_ms);
/* 1 between fr_hub_init and fr_hub_close; 0 for a zeroed hub. */
int fr_hub_ready(const fr_hub_t *hub);
/* Who to wake when events wait in `slot` (a worker on another thread). */
void fr_hub_set_wake(fr_hub_t *hub, size_t slot, void (*wake)(void *ctx), void *ctx);

/* Held across a sequence that must see no publish in between (position, replay, subscribe),
 * and around any use of a topic pointer from fr_hub_find. */
void fr_hub_lock(fr_hub_t *hub);
void fr_hub_unlock(fr_hub_t *hub);

/* Topics held and events published, read under the lock. */
void fr_hub_stats(fr_hub_t *hub, size_t *ntopics, uint64_t *published);
/* Frees every topic and ring; subscriptions must be gone. */
void fr_hub_close(fr_hub_t *hub);

/* Stores an event (its id, the ring) and queues it for fr_hub_flush. On success returns 0 and
 * the id; on invalid input returns -1 with a static *err and publishes nothing. */
int fr_hub_publish(fr_hub_t *hub, const char *topic, const char *name, const char *data,
                   size_t data_len, fr_priority_t prio, int json, fr_id_t *id_out,
                   const char **err);

/* Hands every event stored since the last flush to the topic's subscribers on `slot`, in
 * order. A stream that joined in between skips what its position already covers. Called by
 * the slot's own worker only. */
void fr_hub_flush(fr_hub_t *hub, size_t slot);

/* The topic's current position: events with greater ids are "new" for a fresh subscriber. */
fr_id_t fr_hub_position(fr_hub_t *hub, const char *topic);

/* Whether a stream that last saw `after` on `topic` can be resumed exactly. */
fr_resume_t fr_hub_check_resume(fr_hub_t *hub, const char *topic, fr_id_t after);

/* Copies references to the held events of `topic` with ids greater than `after` (at most max,
 * the newest if more are held), oldest first, into a malloc'd array the caller owns. */
void fr_hub_events_after(fr_hub_t *hub, const char *topic, fr_id_t after, size_t max,
                         fr_event_t ***out, size_t *n);

/* Attaches sub (ops, owner, index, slot and who set by the caller) to topic, creating it.
 * Called by the slot's own worker. */
void fr_hub_subscribe(fr_hub_t *hub, fr_sub_t *sub, const char *topic);
/* Detaches; a topic with no subscribers and nothing to replay is forgotten. */
void fr_hub_unsubscribe(fr_hub_t *hub, fr_sub_t *sub);

/* Marks the sub as no longer counted by presence (its stream is ending). */
void fr_hub_set_away(fr_hub_t *hub, fr_sub_t *sub);

/* Delivers an event that another node published (through the broker) to this node's
 * subscribers of its topic (a one-slot hub). Events at or below the topic's last delivered id are skipped, so
 * a broker may hand over the same event twice (live and refill) without a duplicate. */
void fr_hub_deliver(fr_hub_t *hub, fr_event_t *ev);

/* Tells every subscriber of the topic on this node that its events cannot be vouched for. */
void fr_hub_lose(fr_hub_t *hub, const char *topic);

/* Drops events older than the time window and forgets idle empty topics. */
void fr_hub_sweep(fr_hub_t *hub);

/* The topic, or NULL; the pointer is good while the caller holds the lock. */
fr_topic_t *fr_hub_find(fr_hub_t *hub, const char *topic);

#endif
