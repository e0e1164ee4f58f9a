/* Presence: how many streams follow a topic, and who (the `id` of each identity from auth).
 * On the memory broker it is read from this worker's subscribers; with Redis every node
 * writes its own part into one hash per topic (fr:{topic}:p, field = node, value = expiry,
 * count and ids) and reads the others' parts: a node that dies stops refreshing its part and
 * drops out when it expires. */
#ifndef FR_PRESENCE_H
#define FR_PRESENCE_H

#include <stddef.h>

struct fr_hub_s;

#define FR_PRESENCE_MAX_IDS 1000

/* An answer, owned by whoever asked (fr_presence_free). */
typedef struct {
    size_t count;   /* streams following the topic */
    char **ids;     /* owned, distinct identity ids (at most FR_PRESENCE_MAX_IDS) */
    size_t nids;
    size_t nodes;   /* nodes that reported (1 on the memory broker) */
} fr_presence_t;

void fr_presence_free(fr_presence_t *p);

/* This node's own part: the hub's subscribers of `topic` (every worker's, under the hub's lock). */
void fr_presence_local(struct fr_hub_s *hub, const char *topic, fr_presence_t *out);

/* dst (not initialised) becomes a copy of src. */
void fr_presence_copy(fr_presence_t *dst, const fr_presence_t *src);

/* Adds id to p unless it is there already (or p is full). */
void fr_presence_add_id(fr_presence_t *p, const char *id);

/* "<count>\n<id>\n<id>…": a node's part as stored in Redis. Caller frees. */
char *fr_presence_encode(const fr_presence_t *p, size_t *len);
/* Merges a stored part into p; returns -1 when it is malformed. */
int fr_presence_merge(fr_presence_t *p, const char *s, size_t len);

#endif
