#include "core/presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "core/hub.h"

void fr_presence_free(fr_presence_t *p) {
    for (size_t i = 0; i < p->nids; i++)
        free(p->ids[i]);
    free(p->ids);
    memset(p, 0, sizeof *p);
}

void fr_presence_add_id(fr_presence_t *p, const char *id) {
    /* Linear: a topic's watchers are listed for people to see, so the list is short. */
    for (size_t i = 0; i < p->nids; i++) {
        if (strcmp(p->ids[i], id) == 0)
            return;
    }
    if (p->nids >= FR_PRESENCE_MAX_IDS)
        return;
    p->ids = fr_realloc(p->ids, (p->nids + 1) * sizeof *p->ids);
    p->ids[p->nids++] = fr_strdup(id);
}

/* Every worker's subscribers of the topic: the hub's lock covers the lists of other
 * workers, and a sub carries what presence needs (its streams belong to other threads). */
void fr_presence_local(fr_hub_t *hub, const char *topic, fr_presence_t *out) {
    memset(out, 0, sizeof *out);
    out->nodes = 1;
    fr_hub_lock(hub);
    fr_topic_t *t = fr_hub_find(hub, topic);
    for (size_t k = 0; t && k < hub->nslots; k++) {
        const fr_list_t *subs = &t->slot[k].subs;
        for (fr_list_t *l = fr_list_first(subs); l; l = fr_list_next(subs, l)) {
            const fr_sub_t *s = FR_LIST_ENTRY(l, fr_sub_t, link);
            if (s->away)
                continue;
            out->count++;
            if (s->who)
                fr_presence_add_id(out, s->who);
        }
    }
    fr_hub_unlock(hub);
}

char *fr_presence_encode(const fr_presence_t *p, size_t *len) {
    size_t cap = 32;
    for (size_t i = 0; i < p->nids; i++)
        cap += strlen(p->ids[i]) + 1;
    char *buf = fr_malloc(cap);
    size_t n = (size_t)snprintf(buf, cap, "%zu", p->count);
    for (size_t i = 0; i < p->nids; i++) {
        /* An id holding a newline would split into two: such ids are left out. */
        if (strchr(p->ids[i], '\n'))
            continue;
        buf[n++] = '\n';
        size_t l = strlen(p->ids[i]);
        memcpy(buf + n, p->ids[i], l);
        n += l;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int fr_presence_merge(fr_presence_t *p, const char *s, size_t len) {
    const char *end = s + len, *nl = memchr(s, '\n', len);
    const char *count_end = nl ? nl : end;
    size_t count = 0;
    if (count_end == s)
        return -1;
    for (const char *c = s; c < count_end; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        count = count * 10 + (size_t)(*c - '0');
    }
    p->count += count;
    p->nodes++;
    for (const char *q = nl ? nl + 1 : end; q < end;) {
        const char *e = memchr(q, '\n', (size_t)(end - q));
        if (!e)
            e = end;
        if (e > q) {
            char *id = fr_strndup(q, (size_t)(e - q));
            fr_presence_add_id(p, id);
            free(id);
        }
        q = e + 1;
    }
    return 0;
}

void fr_presence_copy(fr_presence_t *dst, const fr_presence_t *src) {
    memset(dst, 0, sizeof *dst);
    dst->count = src->count;
    dst->nodes = src->nodes;
    for (size_t i = 0; i < src->nids; i++)
        fr_presence_add_id(dst, src->ids[i]);
}
