#include "core/event.h"

#include <stdlib.h>
#include <string.h>

#include "codec/sse.h"
#include "base/utf8.h"
#include "base/util.h"

#define ID_PREFIX "id: "

int fr_event_check(const char *topic, size_t topic_len, const char *name, size_t name_len,
                   const char *data, size_t data_len, const char **err) {
    if (!topic || topic_len == 0) {
        *err = "topic must be a non-empty string";
        return -1;
    }
    if (!fr_sse_field_ok(topic, topic_len) || !fr_utf8_valid(topic, topic_len)) {
        *err = "topic must be UTF-8 without CR, LF or NUL";
        return -1;
    }
    if (name && (!fr_sse_field_ok(name, name_len) || !fr_utf8_valid(name, name_len))) {
        *err = "event name must be UTF-8 without CR, LF or NUL";
        return -1;
    }
    if (!fr_utf8_valid(data, data_len)) {
        *err = "data must be valid UTF-8";
        return -1;
    }
    return 0;
}

int fr_event_validate(const char *topic, const char *name, const char *data, size_t data_len,
                      const char **err) {
    return fr_event_check(topic, topic ? strlen(topic) : 0, name, name ? strlen(name) : 0, data,
                          data_len, err);
}

fr_event_t *fr_event_new(const char *topic, fr_id_t id, const char *name, const char *data,
                         size_t data_len, fr_priority_t priority, int json, uint64_t published_at,
                         const char **err) {
    if (fr_event_validate(topic, name, data, data_len, err) < 0)
        return NULL;
    return fr_event_build(topic, id, name, data, data_len, priority, json, published_at);
}

fr_event_t *fr_event_build(const char *topic, fr_id_t id, const char *name, const char *data,
                           size_t data_len, fr_priority_t priority, int json,
                           uint64_t published_at) {
    if (name && !*name)
        name = NULL;
    /* One block: the struct, then topic, name, data (each NUL-terminated) and the frame. A
     * publish costs one allocation, and the last release one free (and the WebSocket frame's,
     * when one was built). */
    size_t topic_len = strlen(topic), name_len = name ? strlen(name) : 0;
    char idbuf[FR_ID_MAX_LEN];
    size_t idlen = fr_id_format(id, idbuf);
    size_t body_off = strlen(ID_PREFIX) + idlen + 1;
    size_t frame_len = body_off + fr_sse_body_size(name, name_len, data, data_len);
    size_t size = sizeof(fr_event_t) + topic_len + 1 + (name ? name_len + 1 : 0) + data_len + 1 +
                  frame_len;
    fr_event_t *ev = fr_malloc(size);
    memset(ev, 0, sizeof *ev);
    char *p = (char *)(ev + 1);
    ev->refs = 1;
    ev->id = id;
    ev->published_at = published_at;
    ev->priority = priority;
    ev->json = json;
    ev->topic = p;
    memcpy(p, topic, topic_len + 1);
    p += topic_len + 1;
    if (name) {
        ev->name = p;
        memcpy(p, name, name_len + 1);
        p += name_len + 1;
    }
    ev->data = p;
    memcpy(p, data, data_len);
    p[data_len] = '\0';
    p += data_len + 1;
    ev->data_len = data_len;
    ev->body_off = body_off;
    ev->frame_len = frame_len;
    ev->frame = p;
    memcpy(ev->frame, ID_PREFIX, strlen(ID_PREFIX));
    memcpy(ev->frame + strlen(ID_PREFIX), idbuf, idlen);
    ev->frame[body_off - 1] = '\n';
    fr_sse_body_write(ev->frame + body_off, name, name_len, data, data_len);
    return ev;
}

void fr_event_retain(fr_event_t *ev) {
    __atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED);
}

void fr_event_release(fr_event_t *ev) {
    if (!ev || __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(ev->ws);
    free(ev); /* topic, name, data and frame live in the same block */
}

static const char *const prio_names[] = {"telemetry", "normal", "critical"};

int fr_priority_parse(const char *s, fr_priority_t *out) {
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, prio_names[i]) == 0) {
            *out = (fr_priority_t)i;
            return 0;
        }
    }
    return -1;
}

const char *fr_priority_name(fr_priority_t p) {
    return prio_names[p];
}
