/* Request dispatch: /health, CORS preflight, route matching, and the hooks every route shares
 * (building `req`, running `auth`). */
#ifndef FR_DISPATCH_H
#define FR_DISPATCH_H

#include "lua/vm.h"

struct fr_conn_s;

/* Answers (or starts streaming) the request just parsed on c. */
void fr_dispatch(struct fr_conn_s *c);

/* Runs the route's auth hook with the request table. Returns 0 with a registry ref to the
 * identity table in *who_ref, or -1 after answering the request (rejection or Lua error). */
int fr_dispatch_auth(struct fr_conn_s *c, fr_vm_t *vm, const fr_route_t *route, int req_ref,
                     int *who_ref);

/* The client a rate limit counts against: the identity's `id` when auth gave one, else the
 * peer address. Writes into buf. */
const char *fr_dispatch_client_id(struct fr_conn_s *c, fr_vm_t *vm, int who_ref, char *buf,
                                  size_t len);

/* Runs the route's tier hook; returns 0 with *tier (NULL: none), or -1 after answering 500. */
int fr_dispatch_tier(struct fr_conn_s *c, fr_vm_t *vm, const fr_route_t *route, int req_ref,
                     int who_ref, const fr_tier_t **tier);

/* Answers 429 with Retry-After. */
void fr_dispatch_too_many(struct fr_conn_s *c, unsigned retry_after, const char *what);

/* Handles a POST on a publish route. */
void fr_publish_handle(struct fr_conn_s *c, fr_vm_t *vm, const fr_route_t *route, int req_ref);

/* Serves a file under a static route's directory. */
void fr_static_serve(struct fr_conn_s *c, const fr_route_t *route, const char *path,
                     size_t path_len);

#endif
