/* The memory broker: one process. The hub is the store (its rings hold the replay window and
 * it issues the ids); every worker thread has a slot in it. */
#ifndef FR_BROKER_MEMORY_H
#define FR_BROKER_MEMORY_H

#include "broker/broker.h"

/* A broker for the worker whose slot in `hub` (borrowed: the process owns it) is `slot`. */
fr_broker_t *fr_memory_broker_new(fr_hub_t *hub, unsigned slot);

#endif
