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

#endif
