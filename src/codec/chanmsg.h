/* A message on a topic's Redis channel (docs/REDIS.md, "The channel"): one event,
 *
 *   <id>\n<event>\n<priority>\n<json>\n<ms>\n<data>          (the data is the rest)
 *
 * or a node's batch, the events of one publish call:
 *
 *   *<ms>\n  then  <id>\n<event>\n<priority>\n<json>\n<len>\n<data>  per event (<len> bytes)
 *
 * Only the framing is read here; the broker checks each event's fields (id, priority, UTF-8). */
#ifndef FR_CODEC_CHANMSG_H
#define FR_CODEC_CHANMSG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *id, *name, *prio, *json, *data; /* inside the message, not NUL-terminated */
    size_t id_len, name_len, prio_len, json_len, data_len;
    uint64_t ms; /* the publish time */
} fr_chanmsg_event_t;

typedef void (*fr_chanmsg_cb)(void *ctx, const fr_chanmsg_event_t *ev);

/* Calls cb for each event of msg, in order. Returns 0, or -1 at the first malformed part (the
 * events before it were passed on). */
int fr_chanmsg_parse(const char *msg, size_t len, fr_chanmsg_cb cb, void *ctx);

#endif
