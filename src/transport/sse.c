#include "transport/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/util.h"

static const char heartbeat_frame[] = ":\n\n";

/* 1 when the Accept list names text/event-stream, or (wildcards) a text or any-type range. */
static int accept_names(const char *accept, int wildcards) {
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - start);
        if ((n == 17 && strncasecmp(start, "text/event-stream", 17) == 0) ||
            (wildcards && n == 6 && strncasecmp(start, "text/*", 6) == 0) ||
            (wildcards && n == 3 && strncmp(start, "*/*", 3) == 0))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

int fr_sse_accepts(const char *accept) {
    return !accept || accept_names(accept, 1);
}

int fr_sse_asks(const char *accept) {
    return accept && accept_names(accept, 0);
}

/* The first frame: "retry: <ms>\nid: <positions>\n\n". An id with no data sets the client's
 * last event id and dispatches no event (WHATWG HTML, "dispatch the event": the id is taken
 * before an empty data buffer returns), so a client that drops before its first event still
 * resumes exactly where its stream started. */
static void sse_begin(fr_stream_t *s) {
    fr_head_t head = {200, "text/event-stream; charset=utf-8",
                      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n", -1};
    fr_stream_head(s, &head);
    size_t rlen = s->env->retry_frame_len - 1; /* without its blank line */
    char *f = fr_malloc(rlen + 6 + fr_stream_positions_max(s));
    memcpy(f, s->env->retry_frame, rlen);
    memcpy(f + rlen, "id: ", 4);
    size_t n = rlen + 4 + fr_stream_positions(s, f + rlen + 4);
    f[n++] = '\n';
    f[n++] = '\n';
    fr_stream_send(s, f, n);
}

static void poll_begin(fr_stream_t *s) {
    (void)s; /* the answer's head goes out with its body */
}

/* "id: <pos1>,<pos2>,…\n": a stream of several topics resumes from all of them at once. */
static char *id_line(fr_stream_t *s, size_t *len) {
    char *buf = fr_malloc(5 + fr_stream_positions_max(s));
    memcpy(buf, "id: ", 4);
    size_t n = 4 + fr_stream_positions(s, buf + 4);
    buf[n++] = '\n';
    *len = n;
    return buf;
}

/* One topic: the event's own frame, shared by every stream. Several: an id line of this
 * stream's positions, then the shared body. */
static void sse_frame(fr_stream_t *s, size_t index, fr_event_t *ev, fr_item_t *it) {
    (void)index;
    if (s->ntopics == 1) {
        it->shared = ev->frame;
        it->shared_len = (uint32_t)ev->frame_len;
        return;
    }
    size_t len;
    it->own = id_line(s, &len);
    it->own_len = (uint32_t)len;
    it->shared = ev->frame + ev->body_off;
    it->shared_len = (uint32_t)(ev->frame_len - ev->body_off);
}

/* "event: dropped" with counts: EventSource clients see it as a named event and learn that
 * they have a gap; it carries no id, so their Last-Event-ID is unchanged. */
static char *sse_dropped(fr_stream_t *s, size_t *len) {
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "event: dropped\ndata: {\"dropped\":%lu,\"total\":{\"telemetry\":%lu,"
                     "\"normal\":%lu}}\n\n",
                     (unsigned long)s->out.unreported, s->out.dropped[FR_PRIO_TELEMETRY],
                     s->out.dropped[FR_PRIO_NORMAL]);
    s->out.unreported = 0;
    *len = (size_t)n;
    return fr_strndup(buf, (size_t)n);
}

/* The `reset` event: the client's id is too old, it should reload its state; the id line
 * carries the current positions so its next resume starts from now. */
static void sse_reset(fr_stream_t *s) {
    static const char body[] =
        "event: reset\ndata: {\"reason\":\"Last-Event-ID is older than the replay window\"}\n\n";
    size_t idlen;
    char *line = id_line(s, &idlen);
    char *frame = fr_malloc(idlen + sizeof body - 1);
    memcpy(frame, line, idlen);
    memcpy(frame + idlen, body, sizeof body - 1);
    free(line);
    fr_stream_send(s, frame, idlen + sizeof body - 1);
}

static void sse_heartbeat(fr_stream_t *s) {
    fr_stream_send_static(s, heartbeat_frame, sizeof heartbeat_frame - 1);
    FR_BUMP(s->env->metrics->heartbeats, 1);
}

static void sse_finish(fr_stream_t *s, uint64_t retry_ms) {
    if (!retry_ms)
        return;
    char buf[48];
    int n = snprintf(buf, sizeof buf, "retry: %llu\n\n", (unsigned long long)retry_ms);
    fr_stream_send(s, fr_strndup(buf, (size_t)n), (size_t)n);
}

const fr_transport_t fr_transport_sse = {
    .name = "sse",
    .whole = 0,
    .reuse = 0,
    .begin = sse_begin,
    .frame = sse_frame,
    .dropped = sse_dropped,
    .reset = sse_reset,
    .heartbeat = sse_heartbeat,
    .finish = sse_finish,
    .free = NULL,
};

const fr_transport_t fr_transport_poll = {
    .name = "poll",
    .whole = 1,
    .reuse = 1,
    .begin = poll_begin,
    .frame = sse_frame,
    .dropped = sse_dropped,
    .reset = sse_reset,
    .heartbeat = sse_heartbeat,
    .finish = sse_finish,
    .free = NULL,
};
