/* Events: immutable once published, shared by reference count.
 *
 *   publisher ──fr_event_new──► event (refs=1, owned by the publisher until handed on)
 *                                 │
 *            ┌────────────────────┼─────────────────────┐
 *            ▼                    ▼                     ▼
 *      replay ring slot     out-queue item        out-queue item      … one ref each
 *      (released when       (released when the    (released when the
 *       overwritten/expired) write completes)      write completes)
 *
 *   frame: "id: <id>\n" "event: <name>\n" "data: …\n" … "\n" — built once in fr_event_new.
 *          Streams that follow one topic send frame[0..frame_len); streams that follow several
 *          send an id line of their own and then frame[body_off..frame_len).
 *
 * Refcounts are atomic: an event may be held by several worker threads. */
#ifndef FR_EVENT_H
#define FR_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "codec/id.h"

typedef enum { FR_PRIO_TELEMETRY = 0, FR_PRIO_NORMAL = 1, FR_PRIO_CRITICAL = 2 } fr_priority_t;

/* Every field is read-only once fr_event_new / fr_event_build returns, but refs (through
 * retain / release) and ws (published once, by compare-and-swap, by transport/ws.c). */
typedef struct fr_event_s {
    int refs; /* atomic; the event is freed when it drops to zero */
    fr_id_t id;
    uint64_t published_at; /* wall-clock ms */
    fr_priority_t priority;
    int json;       /* 1 when data is JSON text (published from a Lua table) */
    /* topic, name, data and frame point into the event's own allocation (one block). */
    char *topic;    /* NUL-terminated */
    char *name;     /* NULL when the event has no name */
    char *data;     /* NUL-terminated copy of the payload */
    size_t data_len;
    char *frame;    /* SSE bytes, see the picture above */
    size_t frame_len;
    size_t body_off; /* where the frame's body starts, after its id line */
    /* owned: the WebSocket envelope frame, built on first use by whichever worker needs it
     * first and published with a compare-and-swap; the length travels with the bytes. */
    struct fr_ws_blob_s *ws;
} fr_event_t;

typedef struct fr_ws_blob_s {
    size_t len;
    char bytes[];
} fr_ws_blob_t;

/* Validates and builds an event; returns NULL and sets *err (a static message) when topic or
 * name hold CR/LF/NUL, a field is empty, or data is not valid UTF-8. The caller owns the
 * one reference of the result. */
fr_event_t *fr_event_new(const char *topic, fr_id_t id, const char *name, const char *data,
                         size_t data_len, fr_priority_t priority, int json, uint64_t published_at,
                         const char **err);

/* fr_event_new without the checks, for a caller that has just made them. */
fr_event_t *fr_event_build(const char *topic, fr_id_t id, const char *name, const char *data,
                           size_t data_len, fr_priority_t priority, int json,
                           uint64_t published_at);

/* Checks what fr_event_new would check, without building anything. */
int fr_event_validate(const char *topic, const char *name, const char *data, size_t data_len,
                      const char **err);

/* fr_event_validate for counted topic and name, as they come from Lua (where a string may
 * hold a NUL): a NUL inside either is refused with the message CR and LF get. name may be
 * NULL. The one place the rules and their messages live. */
int fr_event_check(const char *topic, size_t topic_len, const char *name, size_t name_len,
                   const char *data, size_t data_len, const char **err);

void fr_event_retain(fr_event_t *ev);
void fr_event_release(fr_event_t *ev);

/* "critical" | "normal" | "telemetry" → 0; anything else → -1. */
int fr_priority_parse(const char *s, fr_priority_t *out);
/* What to tell whoever gave a priority fr_priority_parse refuses. */
#define FR_PRIORITY_ERROR "priority must be critical, normal or telemetry"
const char *fr_priority_name(fr_priority_t p);

#endif
