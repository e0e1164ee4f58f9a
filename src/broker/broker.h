/* The broker: where events are stored, given their ids and carried between nodes. One
 * interface, several implementations behind a table of functions:
 *
 *   memory (broker/memory.c)  one process: the hub's rings are the store; one hub with a slot
 *                             per worker thread
 *   redis  (broker/redis.c)   many nodes: a Redis Stream per topic and a channel per topic;
 *                             each worker is a node with its own one-slot hub
 *
 * Streams never see which one is in use. They subscribe through the hub the broker names (the
 * hub fans events out to this worker's subscribers) and ask the broker to join them: the
 * broker makes sure live events of the topics reach the hub from then on, and reads each
 * topic's position and the events a resuming stream missed. The broker never ends a stream:
 * when it cannot vouch for a topic (events lost while it was cut off from Redis), it tells the
 * hub, and the hub tells the topic's subscribers (fr_hub_lose). */
#ifndef FR_BROKER_H
#define FR_BROKER_H

#include <stddef.h>

#include "core/event.h"
#include "core/hub.h"
#include "core/presence.h"

typedef struct fr_broker_s fr_broker_t;

/* An event to publish; the strings are borrowed for the call. */
typedef struct {
    const char *topic, *name; /* name may be NULL */
    const char *data;
    size_t len;
    fr_priority_t prio;
    int json;                 /* data is JSON text */
} fr_pub_t;

/* Told once the event is stored: status 0 with its id; FR_PUB_UNAVAILABLE when the broker
 * cannot take it (answer 503: nothing was stored); FR_PUB_INVALID with a message (400);
 * FR_PUB_UNCERTAIN with a message when the event was stored but not confirmed as durable as
 * asked (Redis ?replicas=N: fewer replicas had it in time), so it may still be delivered or
 * be lost (503 with the message: never a 201). */
enum { FR_PUB_UNAVAILABLE = -1, FR_PUB_INVALID = -2, FR_PUB_UNCERTAIN = -3 };
typedef void (*fr_published_cb)(void *ctx, int status, fr_id_t id, const char *err);

/* What a join found for one topic. */
typedef enum { FR_JOIN_OK = 0, FR_JOIN_STALE = 1, FR_JOIN_INVALID = 2 } fr_join_status_t;

typedef struct {
    fr_join_status_t status; /* of the requested id (OK for a fresh stream) */
    fr_id_t last;            /* the topic's newest id: the position of a fresh stream */
    fr_event_t **events;     /* owned references: the events after the requested id, oldest first */
    size_t nevents;
} fr_join_topic_t;

typedef struct {
    int error;               /* the broker is unreachable or answered badly: 503 */
    size_t ntopics;
    fr_join_topic_t *topics; /* owned */
} fr_join_t;

/* Called once per join with a result the callee owns (free it with fr_join_free). */
typedef void (*fr_join_cb)(void *ctx, fr_join_t *res);
void fr_join_free(fr_join_t *res);

typedef struct {
    const char *kind; /* "memory", "redis": for /health, metrics and logs */
    /* Stores an event; cb may run before publish returns (memory) or later (redis). */
    void (*publish)(fr_broker_t *b, const fr_pub_t *ev, fr_published_cb cb, void *ctx);
    /* Attaches subs[i] to topics[i] in the hub (their owner, deliver and slot set by the
     * caller), then calls cb with each topic's position and, where after is not NULL, whether
     * after[i] can be resumed and the events after it (at most max_events per topic). Live
     * events may reach the subs before cb runs; cb may run before join returns. Returns -1
     * (nothing attached, cb not called) when the broker is unavailable. */
    int (*join)(fr_broker_t *b, fr_sub_t *subs, char *const *topics, const fr_id_t *after,
                size_t n, size_t max_events, fr_join_cb cb, void *ctx);
    /* Like join for topics the subs already follow: positions and the events after `after`
     * (an open stream resuming, a WebSocket `resume`). NULL when the broker cannot. */
    int (*replay)(fr_broker_t *b, char *const *topics, const fr_id_t *after, size_t n,
                  size_t max_events, fr_join_cb cb, void *ctx);
    /* The newest id of a topic, as far as this node knows (a topic added to an open stream
     * starts there). */
    fr_id_t (*position)(fr_broker_t *b, const char *topic);
    /* The topic's newest id as the broker itself holds it (freshet.position): resuming from it
     * gets every event published after the answer. cb gets 0 and the id, or
     * FR_PUB_UNAVAILABLE; it may run before locate returns. NULL when position() is exact
     * (memory: the hub is the broker). */
    void (*locate)(fr_broker_t *b, const char *topic, fr_published_cb cb, void *ctx);
    /* Who follows a topic: this process (memory) or every node (redis). Fills out. */
    void (*presence)(fr_broker_t *b, const char *topic, fr_presence_t *out);
    /* 1 while publishes and joins can succeed. */
    int (*ready)(const fr_broker_t *b);
    /* What /health shows of this broker beyond kind and status: JSON members, each preceded
     * by a comma (",\"primary\":\"h:6379\""), into buf; returns their length (< cap).
     * NULL when there is nothing more to say. */
    size_t (*health)(const fr_broker_t *b, char *buf, size_t cap);
    /* Periodic upkeep (the time window of replay). */
    void (*sweep)(fr_broker_t *b);
    /* Stops: pending joins and publishes are told of the failure; the memory is freed once
     * every handle it has on the loop is closed. */
    void (*free)(fr_broker_t *b);
} fr_broker_ops_t;

/* Read-only to everyone but its implementation. */
struct fr_broker_s {
    const fr_broker_ops_t *ops;
    fr_hub_t *hub; /* where this worker's streams subscribe (borrowed or owned by the broker) */
    unsigned slot; /* this worker's slot in it */
};

#endif
