/* HTTP/2 streams open per client address, counted over every worker of a process. SETTINGS
 * bound the streams of one connection; limits.h2_streams_per_client bounds a client that
 * opens many connections, and the kernel spreads a client's connections over the workers'
 * listeners (SO_REUSEPORT), so the count is the process's. An entry lives while its address
 * has a stream open: client churn does not grow the table. */
#ifndef FR_H2_CLIENTS_H
#define FR_H2_CLIENTS_H

#include <pthread.h>

#include "base/hash.h"

/* Shared by the workers: the mutex guards the table (a stream's open and close are rare next
 * to its events). */
typedef struct {
    pthread_mutex_t mu;
    fr_htable_t table; /* address → its count, owned through the table */
} fr_h2_clients_t;

void fr_h2_clients_init(fr_h2_clients_t *cs);
/* Frees what is left (nothing once every connection is closed). */
void fr_h2_clients_close(fr_h2_clients_t *cs);

/* Counts one more stream for `remote`: 1, or 0 (nothing counted) when it has `limit` open. */
int fr_h2_clients_take(fr_h2_clients_t *cs, const char *remote, unsigned limit);
/* One of `remote`'s counted streams closed. */
void fr_h2_clients_give(fr_h2_clients_t *cs, const char *remote);

#endif
