/* hiredis on a worker's libuv loop (broker/redis_io.c says how): the broker's connections and
 * freshet.redis's. */
#ifndef FR_BROKER_REDIS_IO_H
#define FR_BROKER_REDIS_IO_H

#include <hiredis/async.h>
#include <uv.h>

/* Drives ac from loop until hiredis lets go of it (its cleanup closes the poll handle).
 * before_write, when not NULL, runs right before each batched write (to add the commands a
 * loop turn gathered). Returns 0, or -1 when the descriptor cannot be polled (ac is untouched:
 * free it). */
int fr_redis_io_attach(redisAsyncContext *ac, uv_loop_t *loop,
                       void (*before_write)(redisAsyncContext *ac));

/* Asks for the batched write after this loop iteration's poll, as a new command would. */
void fr_redis_io_want_write(redisAsyncContext *ac);

/* Replies read on an attached ac, handed over one by one and freed after cb returns. */
typedef void (*fr_redis_raw_cb)(redisAsyncContext *ac, redisReply *rep);

/* From now on every reply read on ac goes to cb in the order it arrives, and none to hiredis'
 * callbacks: hiredis 0.14 does not know sharded pub/sub (SSUBSCRIBE, smessage, sunsubscribe),
 * so a Redis Cluster subscriber reads its replies itself. cb may free ac. Commands sent before
 * this keep their callbacks but never get a reply (they get NULL when ac is freed). */
void fr_redis_io_raw(redisAsyncContext *ac, fr_redis_raw_cb cb);

/* Appends a command to ac's output without a callback (for a raw context) and schedules the
 * write. Returns 0, or -1 when ac is going away. */
int fr_redis_io_send(redisAsyncContext *ac, int argc, const char **argv, const size_t *lens);

#endif
