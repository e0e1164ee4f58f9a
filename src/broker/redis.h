/* The Redis broker: events are appended to a Redis Stream per topic and announced on a
 * channel per topic, in one atomic step (a Redis function, see broker_redis_lib.c), so every
 * node sees the same ids and the same order, and any node can replay any topic.
 *
 *   publish ── FCALL freshet_publish ──► XADD fr:{topic}:s + trim + PUBLISH fr:{topic}:c
 *   node ◄── SUBSCRIBE fr:{topic}:c (only while a local stream follows the topic)
 *   resume ── FCALL freshet_resume ──► per topic: ok | stale | invalid, last id, events after
 *
 * Two connections per worker: one for commands, one in subscribe mode. Both reconnect with
 * exponential backoff and jitter; when the subscriber comes back, each followed topic is
 * filled from its Stream from the last id this node delivered, so local streams see no gap. */
#ifndef FR_BROKER_REDIS_H
#define FR_BROKER_REDIS_H

#include <stddef.h>

#include "core/event.h"
#include "core/presence.h"

struct fr_worker_s;
typedef struct fr_redis_s fr_redis_t;

/* Parses redis://[user:password@]host:port[/db] or unix:///path and starts connecting.
 * Returns NULL with a message in err for a malformed URL. */
fr_redis_t *fr_redis_new(struct fr_worker_s *w, const char *url, char *err, size_t errlen);
/* Disconnects; pending callbacks run with an error first. */
void fr_redis_free(fr_redis_t *r);

/* 1 while commands can be sent (connected, functions loaded). */
int fr_redis_ready(const fr_redis_t *r);
/* 1 while the subscriber connection is up. */
int fr_redis_subscribed(const fr_redis_t *r);

/* Called with the stored event's id, or status < 0 and a message. */
typedef void (*fr_redis_published_cb)(void *ctx, int status, fr_id_t id, const char *err);
/* Returns -1 at once (nothing sent) when Redis is not reachable. */
int fr_redis_publish(fr_redis_t *r, const char *topic, const char *name, const char *data,
                     size_t len, fr_priority_t prio, int json, fr_redis_published_cb cb,
                     void *ctx);

/* What a join found for one topic. */
typedef enum { FR_JOIN_OK = 0, FR_JOIN_STALE = 1, FR_JOIN_INVALID = 2 } fr_join_status_t;

typedef struct {
    fr_join_status_t status;
    fr_id_t last;          /* the topic's newest id (the position of a fresh stream) */
    fr_event_t **events;   /* owned references: the events after the requested id */
    size_t nevents;
} fr_join_topic_t;

typedef struct {
    int error;             /* Redis unreachable or a bad reply: answer 503 */
    size_t ntopics;
    fr_join_topic_t *topics; /* owned */
} fr_join_t;

typedef void (*fr_redis_join_cb)(void *ctx, fr_join_t *res);
/* Subscribes this node to every topic (if it is not already), waits until Redis confirms it,
 * then reads each topic's position and the events after after[i] (NULL: a fresh stream). The
 * callback owns res (free it with fr_join_free). Returns -1 at once when Redis is down. */
int fr_redis_join(fr_redis_t *r, char *const *topics, const fr_id_t *after, size_t n,
                  size_t max_events, fr_redis_join_cb cb, void *ctx);
void fr_join_free(fr_join_t *res);

/* Presence across nodes: the last merged answer for the topic (refreshed every second while
 * someone asks), or, the first time, this node's own part. Fills out (caller frees). */
void fr_redis_presence(fr_redis_t *r, const char *topic, fr_presence_t *out);

/* The hub's follow callback: subscribe / unsubscribe this node to a topic's channel. */
void fr_redis_on_follow(void *ctx, const char *topic, int follow);

/* The Redis function library that every node loads (FUNCTION LOAD REPLACE). */
extern const char fr_redis_library[];

#endif
