#include "broker/broker.h"

#include <stdlib.h>

void fr_join_free(fr_join_t *res) {
    if (!res)
        return;
    for (size_t i = 0; i < res->ntopics; i++) {
        for (size_t k = 0; k < res->topics[i].nevents; k++)
            fr_event_release(res->topics[i].events[k]);
        free(res->topics[i].events);
    }
    free(res->topics);
    free(res);
}

