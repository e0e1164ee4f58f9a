/* hiredis on a libuv loop, for every hiredis context outside the broker's own connections
 * (client/redis_client.c). Unlike hiredis' bundled adapter it hands a poll error to hiredis
 * as a read, so a connection that fails (a refused connect, a reset) is reported at once
 * instead of looking alive. */
#ifndef FR_BROKER_REDIS_IO_H
#define FR_BROKER_REDIS_IO_H

#include <hiredis/async.h>
#include <uv.h>

/* Drives ac from loop until hiredis lets go of it (its cleanup closes the poll handle).
 * Returns 0, or -1 when the descriptor cannot be polled (ac is untouched: free it). */
int fr_redis_io_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
