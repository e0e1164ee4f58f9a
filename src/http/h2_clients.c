/* HTTP/2 streams per client address, shared by a process's workers; see h2_clients.h. */
#include "http/h2_clients.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"

typedef struct {
    fr_hnode_t hnode;
    unsigned open;
    char remote[48]; /* the key: an address, INET6_ADDRSTRLEN fits */
} client_t;

void fr_h2_clients_init(fr_h2_clients_t *cs) {
    pthread_mutex_init(&cs->mu, NULL);
    fr_htable_init(&cs->table);
}

void fr_h2_clients_close(fr_h2_clients_t *cs) {
    fr_htable_iter_t it;
    fr_htable_iter_init(&cs->table, &it);
    for (fr_hnode_t *n; (n = fr_htable_iter_next(&it));) {
        fr_htable_remove(&cs->table, n);
        free(FR_HTABLE_ENTRY(n, client_t, hnode));
    }
    fr_htable_close(&cs->table);
    pthread_mutex_destroy(&cs->mu);
}

static size_t key_len(const char *remote) {
    size_t n = strlen(remote);
    return n < sizeof ((client_t *)0)->remote ? n : sizeof ((client_t *)0)->remote - 1;
}

int fr_h2_clients_take(fr_h2_clients_t *cs, const char *remote, unsigned limit) {
    size_t n = key_len(remote);
    int ok = 0;
    pthread_mutex_lock(&cs->mu);
    fr_hnode_t *node = fr_htable_find(&cs->table, remote, n);
    client_t *cl = node ? FR_HTABLE_ENTRY(node, client_t, hnode) : NULL;
    if (!cl && limit > 0) {
        cl = fr_calloc(1, sizeof *cl);
        memcpy(cl->remote, remote, n);
        fr_htable_insert(&cs->table, &cl->hnode, cl->remote, n);
    }
    if (cl && cl->open < limit) {
        cl->open++;
        ok = 1;
    }
    pthread_mutex_unlock(&cs->mu);
    return ok;
}

void fr_h2_clients_give(fr_h2_clients_t *cs, const char *remote) {
    size_t n = key_len(remote);
    pthread_mutex_lock(&cs->mu);
    fr_hnode_t *node = fr_htable_find(&cs->table, remote, n);
    client_t *cl = node ? FR_HTABLE_ENTRY(node, client_t, hnode) : NULL;
    if (cl && --cl->open == 0) {
        fr_htable_remove(&cs->table, &cl->hnode);
        free(cl);
    }
    pthread_mutex_unlock(&cs->mu);
    if (!cl)
        fr_error("HTTP/2: a stream of %s closed that was never counted", remote);
}
