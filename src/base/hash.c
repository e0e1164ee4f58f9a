#include "base/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MIN_BUCKETS 16

/* ---- SipHash ---------------------------------------------------------------------------------
 * SipHash-c-d as Aumasson and Bernstein describe it ("SipHash: a fast short-input PRF", 2012):
 * four 64-bit words of state initialised from the key, c rounds per 8-byte block of input, the
 * last block padded with the input length in its top byte, then d rounds. The table uses c = 1,
 * d = 3, the variant hash tables settled on (Python, Rust): short keys are the common case and
 * the flooding defence needs the key secret, not the full PRF margin of SipHash-2-4. */

static inline uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

typedef struct {
    uint64_t v0, v1, v2, v3;
} sip_t;

static inline void sip_round(sip_t *s) {
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

static inline void sip_block(sip_t *s, uint64_t m, int crounds) {
    s->v3 ^= m;
    for (int r = 0; r < crounds; r++)
        sip_round(s);
    s->v0 ^= m;
}

static inline uint64_t siphash(const uint8_t key[16], const void *data, size_t n, int crounds,
                               int drounds) {
    const uint8_t *p = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    /* "somepseudorandomlygeneratedbytes", the constants of the paper. */
    sip_t s = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
               k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    size_t blocks = n / 8;
    for (size_t i = 0; i < blocks; i++)
        sip_block(&s, load_le64(p + 8 * i), crounds);
    uint64_t last = (uint64_t)(n & 0xff) << 56;
    for (size_t i = 0; i < n % 8; i++)
        last |= (uint64_t)p[8 * blocks + i] << (8 * i);
    sip_block(&s, last, crounds);
    s.v2 ^= 0xff;
    for (int r = 0; r < drounds; r++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

/* ---- the process's key ------------------------------------------------------------------- */

static uint8_t process_key[16];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static int fill_random(uint8_t *p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got == n)
        return 0;
    /* Kernels before 3.17 have no getrandom. */
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return got == n ? 0 : -1;
}

static void key_seed(void) {
    if (fill_random(process_key, sizeof process_key) == 0)
        return;
    /* No source of randomness at all: a key from the clock and the pid still differs from run
     * to run, which is more than a fixed one would. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t b = ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&ts;
    memcpy(process_key, &a, 8);
    memcpy(process_key + 8, &b, 8);
}

static inline void key_ready(void) {
    pthread_once(&key_once, key_seed);
}

uint64_t fr_hash_keyed(const uint8_t key[16], const void *p, size_t n) {
    return siphash(key, p, n, 1, 3);
}

uint64_t fr_hash(const void *p, size_t n) {
    key_ready();
    return siphash(process_key, p, n, 1, 3);
}

void fr_hash_set_key(const uint8_t key[16]) {
    key_ready(); /* so that a later first use does not draw a key over this one */
    memcpy(process_key, key, sizeof process_key);
}

/* ---- the table -------------------------------------------------------------------------------
 * Every table operation hashes under process_key without key_ready: fr_htable_init ran it, and
 * whatever hands a table to another thread orders that thread after the init. */

static inline uint64_t table_hash(const void *key, size_t klen) {
    return siphash(process_key, key, klen, 1, 3);
}

void fr_htable_init(fr_htable_t *t) {
    key_ready();
    t->nbuckets = MIN_BUCKETS;
    t->buckets = fr_calloc(t->nbuckets, sizeof *t->buckets);
    t->count = 0;
}

void fr_htable_close(fr_htable_t *t) {
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

fr_hnode_t *fr_htable_find(const fr_htable_t *t, const void *key, size_t klen) {
    uint64_t h = table_hash(key, klen);
    for (fr_hnode_t *n = t->buckets[h & (t->nbuckets - 1)]; n; n = n->next) {
        if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0)
            return n;
    }
    return NULL;
}

static void grow(fr_htable_t *t) {
    size_t nb = t->nbuckets * 2;
    fr_hnode_t **b = fr_calloc(nb, sizeof *b);
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (fr_hnode_t *n = t->buckets[i], *next; n; n = next) {
            next = n->next;
            fr_hnode_t **head = &b[n->hash & (nb - 1)];
            n->next = *head;
            *head = n;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

void fr_htable_insert(fr_htable_t *t, fr_hnode_t *node, const void *key, size_t klen) {
    /* One entry per bucket on average before doubling: chains stay a node or two long. */
    if (t->count >= t->nbuckets)
        grow(t);
    node->hash = table_hash(key, klen);
    node->key = key;
    node->klen = klen;
    fr_hnode_t **head = &t->buckets[node->hash & (t->nbuckets - 1)];
    node->next = *head;
    *head = node;
    t->count++;
}

void fr_htable_remove(fr_htable_t *t, fr_hnode_t *node) {
    fr_hnode_t **pp = &t->buckets[node->hash & (t->nbuckets - 1)];
    while (*pp && *pp != node)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = node->next;
    node->next = NULL;
    t->count--;
}

/* The first node of the next bucket that has one, or NULL past the last. */
static fr_hnode_t *iter_next_bucket(fr_htable_iter_t *it) {
    while (it->_bucket < it->_t->nbuckets) {
        fr_hnode_t *n = it->_t->buckets[it->_bucket++];
        if (n)
            return n;
    }
    return NULL;
}

void fr_htable_iter_init(fr_htable_t *t, fr_htable_iter_t *it) {
    it->_t = t;
    it->_bucket = 0;
    it->_next = iter_next_bucket(it);
}

fr_hnode_t *fr_htable_iter_next(fr_htable_iter_t *it) {
    fr_hnode_t *n = it->_next;
    if (!n)
        return NULL;
    /* Read the successor now: the caller may remove and free n before asking again. */
    it->_next = n->next ? n->next : iter_next_bucket(it);
    return n;
}
