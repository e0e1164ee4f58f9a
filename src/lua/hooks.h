/* What route hooks return, read once: auth's identity or refusal, tier names, topic lists,
 * on_slow policies, the client a rate limit counts against. Every caller (opening a stream,
 * a publish, a WebSocket changing its topics) reads hooks through here, so the conventions
 * and their error messages are the same everywhere. A script's mistake is logged here with
 * its route; what the client should hear is returned. */
#ifndef FR_HOOKS_H
#define FR_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "lua/vm.h"

#define FR_MAX_TOPICS 64

/* Hooks may wait (lua/task.h), so each is two steps: push the hook and its arguments (returns
 * how many arguments, 0 when the route has no such hook and nothing was pushed), run it as a
 * task, then read its results from the stack. */

/* auth(req) → identity table, or nil, status, message. Reads 3 results: returns 0 with a
 * registry ref to the identity in *who_ref; else the status to answer, with the message in
 * msg: the script's 4xx/5xx (403 when it gave none), or 500 for what is no answer (logged). */
int fr_hook_push_auth(fr_vm_t *vm, const fr_route_t *route, int req_ref);
int fr_hook_read_auth(fr_vm_t *vm, const fr_route_t *route, int *who_ref, char *msg,
                      size_t msglen);
/* The identity of a route without auth: an empty table (a registry ref). */
int fr_hook_anonymous(fr_vm_t *vm);

/* The identity's `id` (a string or number) as an owned string, or NULL. */
char *fr_hook_who_id(fr_vm_t *vm, int who_ref);

/* The client a rate limit counts against: "id:<who.id>", else "addr:<remote>". */
const char *fr_hook_client_id(fr_vm_t *vm, int who_ref, const char *remote, char *buf,
                              size_t len);

/* tier(req, who) → a tier name or nil. Reads 1 result: returns 0 with *tier (NULL: none), or
 * -1 after logging the script's mistake (an unknown tier, not a string). */
int fr_hook_push_tier(fr_vm_t *vm, const fr_route_t *route, int req_ref, int who_ref);
int fr_hook_read_tier(fr_vm_t *vm, const fr_route_t *route, const fr_config_t *cfg,
                      const fr_tier_t **tier);

/* How a topic list read from a hook came out. */
typedef enum {
    FR_TOPICS_OK = 0,
    FR_TOPICS_ERROR,    /* the hook failed or returned what is no list of 1..64 distinct
                         * strings: the script's mistake (logged) */
    FR_TOPICS_BAD_NAME  /* a string that is no topic name (CR, LF, NUL, not UTF-8): most
                         * likely from the request (a path parameter), the client's mistake */
} fr_topics_result_t;

/* topics(req, who[, change]) — change is the registry ref of a table, or LUA_NOREF. The
 * route always has the hook. Reads 1 result into owned names (*topics, *n); on failure *msg
 * says what was wrong in words a client may read. */
int fr_hook_push_topics(fr_vm_t *vm, const fr_route_t *route, int req_ref, int who_ref,
                        int change_ref);
fr_topics_result_t fr_hook_read_topics(fr_vm_t *vm, const fr_route_t *route, char ***topics,
                                       size_t *n, const char **msg);
void fr_topics_free(char **topics, size_t n);

/* The policy of each topic for a slow client: the route's on_slow string, or its function
 * on_slow(topic, who) per topic. Returns 0 with an owned array of fr_slow_t, or -1 after
 * logging the script's mistake. */
int fr_hook_slow(fr_vm_t *vm, const fr_route_t *route, char *const *topics, size_t n,
                 int who_ref, uint8_t **slow);

#endif
