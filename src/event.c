#include "event.h"

#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "util.h"

#define ID_PREFIX "id: "

int fr_event_validate(const char *topic, const char *name, const char *data, size_t data_len,
                      const char **err) {
    if (!topic || !*topic) {
        *err = "topic must be a non-empty string";
        return -1;
    }
    if (!fr_sse_field_ok(topic, strlen(topic)) || !fr_utf8_valid(topic, strlen(topic))) {
        *err = "topic must be UTF-8 without CR, LF or NUL";
        return -1;
    }
    if (name && (!fr_sse_field_ok(name, strlen(name)) || !fr_utf8_valid(name, strlen(name)))) {
        *err = "event name must be UTF-8 without CR, LF or NUL";
        return -1;
    }
    if (!fr_utf8_valid(data, data_len)) {
        *err = "data must be valid UTF-8";
        return -1;
    }
    return 0;
}

fr_event_t *fr_event_new(const char *topic, fr_id_t id, const char *name, const char *data,
                         size_t data_len, fr_priority_t priority, int json, uint64_t published_at,
                         const char **err) {
    if (fr_event_validate(topic, name, data, data_len, err) < 0)
        return NULL;
    if (name && !*name)
        name = NULL;
    fr_event_t *ev = fr_calloc(1, sizeof *ev);
    ev->refs = 1;
    ev->id = id;
    ev->published_at = published_at;
    ev->priority = priority;
    ev->json = json;
    ev->topic = fr_strdup(topic);
    ev->name = name ? fr_strdup(name) : NULL;
    ev->data = fr_strndup(data, data_len);
    ev->data_len = data_len;

    char idbuf[FR_ID_MAX_LEN];
    size_t idlen = fr_id_format(id, idbuf);
    size_t name_len = name ? strlen(name) : 0;
    ev->body_off = strlen(ID_PREFIX) + idlen + 1;
    ev->frame_len = ev->body_off + fr_sse_body_size(name, name_len, data, data_len);
    ev->frame = fr_malloc(ev->frame_len);
    memcpy(ev->frame, ID_PREFIX, strlen(ID_PREFIX));
    memcpy(ev->frame + strlen(ID_PREFIX), idbuf, idlen);
    ev->frame[ev->body_off - 1] = '\n';
    fr_sse_body_write(ev->frame + ev->body_off, name, name_len, data, data_len);
    return ev;
}

void fr_event_retain(fr_event_t *ev) {
    __atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED);
}

void fr_event_release(fr_event_t *ev) {
    if (!ev || __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(ev->topic);
    free(ev->name);
    free(ev->data);
    free(ev->frame);
    free(ev->ws_frame);
    free(ev);
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
