/* Fuzz target: messages on a topic's Redis channel (src/codec/chanmsg.h), which any client of
 * the Redis server can publish.
 *
 * The input is the message. Checked:
 *   - every piece of every event lies inside the message, and the events come in order without
 *     overlapping;
 *   - a message the parser accepts is exactly what writing its events back in the same form
 *     gives (a batch: "*<ms>\n" then id, name, priority, json, data length and data per event;
 *     one event: its five lines and the data), so nothing in it was skipped or read twice. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "base/util.h"
#include "codec/chanmsg.h"

typedef struct {
    const char *msg;
    size_t len;
    const char *next; /* where the next event may start */
    char *out;        /* the events written back */
    size_t out_len, out_cap;
    size_t n;
} seen_t;

static void put(seen_t *s, const char *p, size_t n) {
    if (s->out_len + n > s->out_cap) {
        s->out_cap = (s->out_len + n) * 2 + 64;
        s->out = realloc(s->out, s->out_cap);
        if (!s->out)
            abort();
    }
    if (n == 0)
        return; /* nothing to copy, and out may still be NULL */
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
}

static void inside(seen_t *s, const char *p, size_t n, const char *what) {
    if (p < s->next || p + n > s->msg + s->len) {
        fz_dump("message", s->msg, s->len);
        fprintf(stderr, "  %s of event %zu lies outside the message or before the previous one\n",
                what, s->n);
        abort();
    }
    s->next = p + n;
}

static void on_event(void *ctx, const fr_chanmsg_event_t *ev) {
    seen_t *s = ctx;
    char num[20];
    inside(s, ev->id, ev->id_len, "id");
    inside(s, ev->name, ev->name_len, "name");
    inside(s, ev->prio, ev->prio_len, "priority");
    inside(s, ev->json, ev->json_len, "json");
    inside(s, ev->data, ev->data_len, "data");
    int batch = s->msg[0] == '*';
    if (batch && s->n == 0) {
        put(s, "*", 1);
        put(s, num, fr_u64_format(num, ev->ms));
        put(s, "\n", 1);
    }
    put(s, ev->id, ev->id_len);
    put(s, "\n", 1);
    put(s, ev->name, ev->name_len);
    put(s, "\n", 1);
    put(s, ev->prio, ev->prio_len);
    put(s, "\n", 1);
    put(s, ev->json, ev->json_len);
    put(s, "\n", 1);
    put(s, num, fr_u64_format(num, batch ? ev->data_len : ev->ms));
    put(s, "\n", 1);
    put(s, ev->data, ev->data_len);
    s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    seen_t s = {(const char *)data, size, (const char *)data, NULL, 0, 0, 0};
    int rc = fr_chanmsg_parse(s.msg, size, on_event, &s);
    /* A batch without events ("*<ms>\n") writes nothing back. */
    int empty_batch = rc == 0 && s.n == 0 && size > 0 && s.msg[0] == '*';
    if (rc == 0 && !empty_batch && (s.out_len != size || memcmp(s.out, s.msg, size) != 0)) {
        fz_dump("message", s.msg, size);
        fz_dump("its events written back", s.out, s.out_len);
        fprintf(stderr, "  an accepted message is not what its %zu event(s) make\n", s.n);
        abort();
    }
    if (rc == 0 && !empty_batch && s.msg[0] != '*' && s.n != 1) {
        fz_dump("message", s.msg, size);
        fprintf(stderr, "  a single-event message gave %zu events\n", s.n);
        abort();
    }
    free(s.out);
    return 0;
}
