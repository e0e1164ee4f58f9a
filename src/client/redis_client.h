/* The app's Redis client: commands from hooks (freshet.redis) on one connection per worker,
 * on the worker's loop, never blocking it.
 *
 *   fr_rclient_command ──► the connection (opened at the first call) ──► hiredis' output
 *        buffer: every command of a loop turn leaves in one write (a pipeline)
 *   … replies come back in order ──► cb(ctx, reply, NULL), or cb(ctx, NULL, "why")
 *
 * Replies are parsed by hiredis; nothing here reads RESP. A call has a deadline: past it,
 * cb hears "timeout" and its reply, when it comes, is dropped. A connection that answers
 * nothing for a whole call's timeout while calls wait is given up (a stopped or unreachable
 * server) and, like one that fails, is tried again after a backoff (50 ms doubling to 2 s);
 * until then calls fail at once with the reason, so a Redis that is down costs a hook no
 * time. The callback never runs inside fr_rclient_command. */
#ifndef FR_REDIS_CLIENT_H
#define FR_REDIS_CLIENT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/redis_url.h"

typedef struct fr_rclient_s fr_rclient_t;
typedef struct fr_rcall_s fr_rcall_t;

/* Where to connect now (a Sentinel-followed primary moves): 0 with *addr filled, or -1 when
 * nobody knows yet. Asked before each connect. */
typedef int (*fr_rclient_where_cb)(void *ctx, fr_redis_addr_t *addr);

/* reply is borrowed for the callback's duration; an error reply (-ERR …) comes as a reply
 * of type REDIS_REPLY_ERROR. err is NULL with a reply, else a static text: "timeout",
 * "connection refused", "connection reset", "connection closed", "host not found",
 * "redis primary unknown", "shutting down" or "connection failed". */
typedef void (*fr_rcall_cb)(void *ctx, const redisReply *reply, const char *err);

/* A client for url (redis:// or unix://, with credentials and db: broker/redis_url.h; a
 * redis-sentinel:// URL needs `where`, which names the primary). Connects at the first call.
 * max_in_flight bounds the calls waiting for a reply, counting those given up (their replies
 * are still due). NULL with a message in err for a URL it cannot use. */
fr_rclient_t *fr_rclient_new(uv_loop_t *loop, const char *url, fr_rclient_where_cb where,
                             void *where_ctx, unsigned max_in_flight, char *err,
                             size_t errlen);

/* Closes the connection; calls in flight are answered "shutting down" first. The memory goes
 * once libuv has closed the client's handles (the loop must run on). */
void fr_rclient_close(fr_rclient_t *c);

/* Sends argv[0..argc) (argv[0] the command name; the strings are copied). Returns 0 with *call
 * set (cb comes later, once, unless cancelled), or -1 with *err (static) when it cannot start:
 * "too many redis calls in flight", "shutting down", or the reason the connection is down
 * while it waits to try again. timeout_ms 0: no deadline but the caller's. *call is valid
 * until cb has returned or fr_rcall_cancel was called. */
int fr_rclient_command(fr_rclient_t *c, int argc, const char **argv, const size_t *argvlen,
                       uint64_t timeout_ms, fr_rcall_cb cb, void *ctx, fr_rcall_t **call,
                       const char **err);

/* Drops a call: cb never comes (its reply, still due, is discarded). */
void fr_rcall_cancel(fr_rcall_t *call);

/* Counters: calls started, answered with a transport error, of which "timeout", connections
 * made; calls in flight now (counting those given up). */
typedef struct {
    unsigned long calls, failures, timeouts, connects, in_flight;
} fr_rclient_stats_t;
void fr_rclient_stats(const fr_rclient_t *c, fr_rclient_stats_t *out);

#endif
