#include "codec/chanmsg.h"

#include <string.h>

#include "base/util.h"

/* The next line from *p (up to a '\n', which *p then follows); -1 when there is none. */
static int line(const char **p, const char *end, const char **s, size_t *n) {
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return -1;
    *s = *p;
    *n = (size_t)(nl - *p);
    *p = nl + 1;
    return 0;
}

/* The four lines every event starts with, and the fifth (<ms> or <len>) as a number. */
static int event_head(const char **p, const char *end, fr_chanmsg_event_t *ev, uint64_t *fifth) {
    const char *s;
    size_t n;
    if (line(p, end, &ev->id, &ev->id_len) < 0 || line(p, end, &ev->name, &ev->name_len) < 0 ||
        line(p, end, &ev->prio, &ev->prio_len) < 0 || line(p, end, &ev->json, &ev->json_len) < 0 ||
        line(p, end, &s, &n) < 0)
        return -1;
    return fr_u64_parse(s, n, fifth);
}

int fr_chanmsg_parse(const char *msg, size_t len, fr_chanmsg_cb cb, void *ctx) {
    const char *p = msg, *end = msg + len;
    fr_chanmsg_event_t ev;
    if (len == 0 || msg[0] != '*') {
        if (event_head(&p, end, &ev, &ev.ms) < 0)
            return -1;
        ev.data = p;
        ev.data_len = (size_t)(end - p);
        cb(ctx, &ev);
        return 0;
    }
    p++;
    const char *s;
    size_t n;
    uint64_t ms, dlen;
    if (line(&p, end, &s, &n) < 0 || fr_u64_parse(s, n, &ms) < 0)
        return -1;
    while (p < end) {
        if (event_head(&p, end, &ev, &dlen) < 0 || dlen > (uint64_t)(end - p))
            return -1;
        ev.ms = ms;
        ev.data = p;
        ev.data_len = (size_t)dlen;
        p += dlen;
        cb(ctx, &ev);
    }
    return 0;
}
