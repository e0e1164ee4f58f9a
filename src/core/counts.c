#include "core/counts.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void fr_counts_init(fr_counts_t *c) {
    pthread_mutex_init(&c->mu, NULL);
    c->head = NULL;
}

void fr_counts_free(fr_counts_t *c) {
    fr_count_t *k = c->head;
    while (k) {
        fr_count_t *next = k->next;
        free(k);
        k = next;
    }
    c->head = NULL;
    pthread_mutex_destroy(&c->mu);
}

void fr_counts_add(fr_counts_t *c, const char *name, unsigned long n) {
    pthread_mutex_lock(&c->mu);
    fr_count_t *k = c->head;
    while (k && strcmp(k->name, name) != 0)
        k = k->next;
    if (!k) {
        size_t size = strlen(name) + 1;
        k = fr_calloc(1, sizeof *k + size);
        memcpy(k->name, name, size);
        k->next = c->head;
        c->head = k;
    }
    FR_BUMP(k->n, n);
    pthread_mutex_unlock(&c->mu);
}

void fr_counts_each(fr_counts_t *c, void (*fn)(void *ctx, const char *name, unsigned long n),
                    void *ctx) {
    pthread_mutex_lock(&c->mu);
    for (fr_count_t *k = c->head; k; k = k->next)
        fn(ctx, k->name, __atomic_load_n(&k->n, __ATOMIC_RELAXED));
    pthread_mutex_unlock(&c->mu);
}
