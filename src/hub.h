/* The hub: topic name → topic (replay ring, last id, subscribers). One per worker; the
 * in-memory broker. A publish stores the event in the topic's ring and hands it to every
 * subscriber's deliver callback in the same call, so a resume that replays from the ring and
 * then subscribes, within one loop iteration, sees every event exactly once. */
#ifndef FR_HUB_H
#define FR_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "ring.h"

typedef struct fr_topic_s fr_topic_t;
typedef struct fr_sub_s fr_sub_t;

/* Called for each event published on a subscribed topic; borrows ev for the call. */
typedef void (*fr_deliver_cb)(fr_sub_t *sub, fr_event_t *ev);

/* A subscription: one stream following one topic. Embedded in its owner (the stream). */
struct fr_sub_s {
    fr_topic_t *topic;  /* NULL while not subscribed */
    fr_sub_t *prev, *next;
    fr_deliver_cb deliver;
    void *owner;        /* the stream */
    size_t index;       /* which of the owner's topics this is */
};

struct fr_topic_s {
    char *name;          /* owned */
    fr_ring_t ring;
    fr_id_t last;        /* the newest id issued (or `born` while none was) */
    fr_id_t born;        /* ids at or below this predate what this topic remembers */
    fr_sub_t *subs;      /* intrusive list of subscriptions */
    size_t nsubs;
    uint64_t published;  /* events published since the topic was created */
    uint64_t dropped;    /* deliveries dropped by slow streams */
    int delivering;      /* set while a publish walks subs: the topic must not be freed */
    fr_topic_t *hnext;   /* hash chain */
};

/* Told when a topic gains its first local subscriber (follow = 1) or loses its last (0): a
 * broker that spans nodes subscribes this node to the topic only while someone follows it. */
typedef void (*fr_follow_cb)(void *ctx, const char *topic, int follow);

typedef struct {
    fr_topic_t **buckets; /* owned; topics are owned through their chains */
    fr_follow_cb on_follow;
    void *follow_ctx;
    size_t nbuckets;
    size_t ntopics;
    size_t replay_events;
    uint64_t replay_ms;
    /* Every id the hub ever issued or forgot is at or below this floor for new topics: the
     * start of this process, raised to the last id of each topic it deletes. */
    fr_id_t floor;
    uint64_t published;   /* events published, all topics */
    /* Stored but not yet handed to subscribers: a publish is answered as soon as its event is
     * in the ring, and fan-out happens once per loop iteration (fr_hub_flush), so a publisher
     * never waits for thousands of streams, and events stored in one iteration leave
     * together. One reference each. */
    fr_event_t **pending;
    size_t npending, cap_pending;
} fr_hub_t;

typedef enum {
    FR_RESUME_OK = 0,      /* every event after the id is held: replay is exact */
    FR_RESUME_STALE = -1,  /* events after it are gone (evicted, or before this process): 416 */
    FR_RESUME_INVALID = -2 /* the id was never issued on this topic: 400 */
} fr_resume_t;

void fr_hub_init(fr_hub_t *hub, size_t replay_events, uint64_t replay_ms, uint64_t start_ms);
/* Frees every topic and ring; subscriptions must be gone. */
void fr_hub_close(fr_hub_t *hub);

/* Stores an event (its id, the ring) and queues it for fr_hub_flush. On success returns 0 and
 * the id; on invalid input returns -1 with a static *err and publishes nothing. */
int fr_hub_publish(fr_hub_t *hub, const char *topic, const char *name, const char *data,
                   size_t data_len, fr_priority_t prio, int json, fr_id_t *id_out,
                   const char **err);

/* Hands every event stored since the last flush to its topic's subscribers, in order. A
 * stream that joined in between skips what its position already covers. */
void fr_hub_flush(fr_hub_t *hub);

/* The topic's current position: events with greater ids are "new" for a fresh subscriber. */
fr_id_t fr_hub_position(fr_hub_t *hub, const char *topic);

/* Whether a stream that last saw `after` on `topic` can be resumed exactly. */
fr_resume_t fr_hub_check_resume(fr_hub_t *hub, const char *topic, fr_id_t after);

/* Calls fn for each held event of `topic` with an id greater than `after`, oldest first. */
typedef void (*fr_replay_cb)(void *ctx, size_t index, fr_event_t *ev);
/* Replays several topics at once, merged in id order (per-topic order is exact). */
void fr_hub_replay(fr_hub_t *hub, const char *const *topics, const fr_id_t *after, size_t n,
                   fr_replay_cb fn, void *ctx);

/* Attaches sub (deliver, owner and index set by the caller) to topic, creating it. */
void fr_hub_subscribe(fr_hub_t *hub, fr_sub_t *sub, const char *topic);
/* Detaches; a topic with no subscribers and nothing to replay is forgotten. */
void fr_hub_unsubscribe(fr_hub_t *hub, fr_sub_t *sub);

/* Delivers an event that another node published (through the broker) to this node's
 * subscribers of its topic. Events at or below the topic's last delivered id are skipped, so
 * a broker may hand over the same event twice (live and refill) without a duplicate. */
void fr_hub_deliver(fr_hub_t *hub, fr_event_t *ev);

/* Raises the topic's last delivered id (a joining stream saw the broker's position). */
void fr_hub_note_position(fr_hub_t *hub, const char *topic, fr_id_t id);

/* Drops events older than the time window and forgets idle empty topics. */
void fr_hub_sweep(fr_hub_t *hub);

fr_topic_t *fr_hub_find(fr_hub_t *hub, const char *topic);

#endif
