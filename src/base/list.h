/* The one intrusive doubly linked list: circular, around a head node that the list's owner
 * embeds. An element embeds an fr_list_t too and is its own link; FR_LIST_ENTRY gets the
 * element back. Nothing is allocated.
 *
 *        ┌───────────────────────────────────────────────┐
 *        ▼                                               │
 *   ┌────────┐ next ┌──────────┐ next ┌──────────┐ next  │
 *   │  head  │ ───► │ elem.link│ ───► │ elem.link│ ──────┘
 *   └────────┘ ◄─── └──────────┘ ◄─── └──────────┘  (prev links mirror the next ones)
 *
 * A head must be fr_list_init'ed before use (an empty list points at itself). A link that is
 * in no list is all zero, as calloc leaves it and as fr_list_remove leaves it (a self-linked
 * one counts as in no list too): removing such a link does nothing, so unlinking twice is
 * harmless, and a walk that reaches a link someone else removed under it ends there instead of
 * going round forever. The list takes no lock. */
#ifndef FR_LIST_H
#define FR_LIST_H

#include <stddef.h>

#include "base/util.h"

typedef struct fr_list_s {
    struct fr_list_s *prev, *next;
} fr_list_t;

#define FR_LIST_ENTRY(link, type, field) FR_CONTAINER_OF(link, type, field)

/* Makes head an empty list. */
static inline void fr_list_init(fr_list_t *head) {
    head->prev = head->next = head;
}

static inline int fr_list_empty(const fr_list_t *head) {
    return head->next == head;
}

/* 1 when link is in a list. */
static inline int fr_list_linked(const fr_list_t *link) {
    return link->next != NULL && link->next != link;
}

/* Adds link (in no list) right after `at`, a head or a link in a list. */
static inline void fr_list_insert_after(fr_list_t *at, fr_list_t *link) {
    link->prev = at;
    link->next = at->next;
    at->next->prev = link;
    at->next = link;
}

/* Adds link (in no list) at the front. */
static inline void fr_list_insert_head(fr_list_t *head, fr_list_t *link) {
    fr_list_insert_after(head, link);
}

/* Adds link (in no list) at the back. */
static inline void fr_list_insert_tail(fr_list_t *head, fr_list_t *link) {
    fr_list_insert_after(head->prev, link);
}

/* Takes link out of its list and zeroes it; a link in no list is left as it is. */
static inline void fr_list_remove(fr_list_t *link) {
    if (!fr_list_linked(link))
        return;
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = NULL;
}

/* The first link, or NULL when the list is empty. */
static inline fr_list_t *fr_list_first(const fr_list_t *head) {
    return head->next == head ? NULL : head->next;
}

/* The link after `link`, or NULL when it is the last (or was removed: see above). To remove
 * (or free) the current element while walking, read its successor first:
 *
 *   for (fr_list_t *l = fr_list_first(&h), *next; l; l = next) {
 *       next = fr_list_next(&h, l);
 *       ... may fr_list_remove(l) ...
 *   }
 */
static inline fr_list_t *fr_list_next(const fr_list_t *head, const fr_list_t *link) {
    return link->next == head ? NULL : link->next;
}

#endif
