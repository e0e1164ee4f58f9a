/* The one hash table: intrusive and chained, keyed by SipHash-1-3 under a random per-process
 * key. Topic names, shared-dictionary keys and rate-limit clients come from URLs and scripts:
 * with a keyed hash an attacker who does not know the key cannot pick keys that all land in
 * one chain and turn every lookup into a walk over all of them.
 *
 *   fr_htable_t                   an entry (owned by its module, not by the table)
 *   ┌─────────┐                   ┌──────────────────────────────┐
 *   │ buckets ─┼─► [0] ─────────► │ fr_hnode_t hnode ────────────┼─► next entry in the chain
 *   │ nbuckets│    [1] NULL       │   hash, key, klen            │
 *   │ count   │    [2] ─► …       │ … the module's own fields …  │
 *   └─────────┘                   └──────────────────────────────┘
 *
 * An entry embeds an fr_hnode_t; FR_HTABLE_ENTRY gets the entry back from its node. The node
 * points at the key, which the entry owns and must keep unchanged while it is in the table.
 * The table owns only its bucket array and doubles it when entries outnumber buckets, so
 * chains stay short. It takes no lock: each user guards its table as it guards the rest of
 * its state. */
#ifndef FR_HASH_H
#define FR_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct fr_hnode_s {
    struct fr_hnode_s *next; /* the chain */
    uint64_t hash;           /* of the key, kept so lookups and growth need not hash again */
    const void *key;         /* borrowed from the entry */
    size_t klen;             /* keys are bytes: they may hold NUL */
} fr_hnode_t;

typedef struct {
    fr_hnode_t **buckets; /* owned; nbuckets is a power of two */
    size_t nbuckets;
    size_t count;         /* entries in the table */
} fr_htable_t;

/* A walk over every entry, bucket by bucket, in no useful order. */
typedef struct {
    fr_htable_t *_t;
    size_t _bucket;    /* the bucket after the one _next is in */
    fr_hnode_t *_next; /* the node the next call returns */
} fr_htable_iter_t;

#define FR_HTABLE_ENTRY(node, type, field) FR_CONTAINER_OF(node, type, field)

/* SipHash-1-3 of p[0..n) under the process's key, which is drawn from getrandom(2) the first
 * time any hash or table needs it (once, thread-safe). */
uint64_t fr_hash(const void *p, size_t n);
/* SipHash-1-3 of p[0..n) under a given 128-bit key (16 bytes, read little-endian). */
uint64_t fr_hash_keyed(const uint8_t key[16], const void *p, size_t n);
/* Replaces the process's key: for tests that want hashes they can repeat. Call it before any
 * table exists; a table filled under another key cannot find its entries. */
void fr_hash_set_key(const uint8_t key[16]);

void fr_htable_init(fr_htable_t *t);
/* Frees the bucket array. The entries are the caller's: free them first (an iteration that
 * removes each one as it goes does that). */
void fr_htable_close(fr_htable_t *t);

/* The node whose key is key[0..klen), or NULL. */
fr_hnode_t *fr_htable_find(const fr_htable_t *t, const void *key, size_t klen);
/* Adds node under key[0..klen) (borrowed: the entry keeps it alive and unchanged). The key must
 * not be in the table already. May grow the bucket array. */
void fr_htable_insert(fr_htable_t *t, fr_hnode_t *node, const void *key, size_t klen);
/* Takes node out of the table; a node that is not in it is left alone. */
void fr_htable_remove(fr_htable_t *t, fr_hnode_t *node);

/* Starts a walk. fr_htable_iter_next returns each node once, then NULL. The node it returned
 * last may be removed (and freed) before the next call; no other may. An insert during a walk
 * is safe, but the walk may then miss entries or return one twice. */
void fr_htable_iter_init(fr_htable_t *t, fr_htable_iter_t *it);
fr_hnode_t *fr_htable_iter_next(fr_htable_iter_t *it);

#endif
