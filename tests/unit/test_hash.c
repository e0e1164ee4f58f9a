/* The hash table and its keyed hash. The file includes hash.c to reach SipHash with other round
 * counts: SipHash-2-4 has published test vectors, and the same code with 1 and 3 rounds must
 * give what CPython's hash() of bytes gives (SipHash-1-3) under an all-zero key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "../../src/base/hash.c"

static const uint8_t key_0_15[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void test_siphash24_reference_vectors(void) {
    /* The paper's appendix and the reference implementation's vectors: key 00..0f, message
     * 00 01 02 … of each length. */
    uint8_t msg[15];
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    CHECK_EQ_UINT(siphash(key_0_15, msg, 0, 2, 4), 0x726fdb47dd0e0e31ull);
    CHECK_EQ_UINT(siphash(key_0_15, msg, 1, 2, 4), 0x74f839c593dc67fdull);
    CHECK_EQ_UINT(siphash(key_0_15, msg, 15, 2, 4), 0xa129ca6149be45e5ull);
}

static void test_siphash13_matches_cpython(void) {
    /* PYTHONHASHSEED=0 python3 -c 'print(hash(b"abc") & (2**64 - 1))' and so on: CPython 3.11
     * hashes bytes with SipHash-1-3, and seed 0 makes its key all zeros. */
    static const uint8_t zero[16] = {0};
    uint8_t msg[15];
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    CHECK_EQ_UINT(fr_hash_keyed(zero, "a", 1), 4644417185603328019ull);
    CHECK_EQ_UINT(fr_hash_keyed(zero, "abc", 3), 13851880170939887858ull);
    CHECK_EQ_UINT(fr_hash_keyed(zero, "topic", 5), 13355357285401611836ull);
    CHECK_EQ_UINT(fr_hash_keyed(zero, "0123456789abcdef0123", 20), 6201128165018579354ull);
    CHECK_EQ_UINT(fr_hash_keyed(zero, msg, 15), 17514137373579004394ull);
    CHECK_EQ_UINT(fr_hash_keyed(zero, "room\0evil", 9), 10747739078738031798ull);
}

static void test_keys_change_hashes(void) {
    uint8_t k1[16] = {1}, k2[16] = {2};
    const char *words[] = {"", "a", "room", "a much longer topic name that spans blocks"};
    for (size_t i = 0; i < FR_ARRAY_LEN(words); i++) {
        size_t n = strlen(words[i]);
        CHECK(fr_hash_keyed(k1, words[i], n) != fr_hash_keyed(k2, words[i], n));
        CHECK_EQ_UINT(fr_hash_keyed(k1, words[i], n), fr_hash_keyed(k1, words[i], n));
    }
    /* The process key is one of those keys once a test sets it. */
    fr_hash_set_key(k1);
    CHECK_EQ_UINT(fr_hash("room", 4), fr_hash_keyed(k1, "room", 4));
    fr_hash_set_key(k2);
    CHECK_EQ_UINT(fr_hash("room", 4), fr_hash_keyed(k2, "room", 4));
    /* Every byte counts, NUL bytes and the length included. */
    CHECK(fr_hash("a\0b", 3) != fr_hash("a\0c", 3));
    CHECK(fr_hash("a", 1) != fr_hash("a\0", 2));
    CHECK(fr_hash("", 0) != fr_hash("\0", 1));
}

/* ---- the table ------------------------------------------------------------------------------ */

typedef struct {
    fr_hnode_t node;
    char key[24];
    size_t klen;
    int value;
} item_t;

static item_t *item_new(fr_htable_t *t, const char *key, size_t klen, int value) {
    item_t *it = calloc(1, sizeof *it);
    memcpy(it->key, key, klen);
    it->klen = klen;
    it->value = value;
    fr_htable_insert(t, &it->node, it->key, it->klen);
    return it;
}

static item_t *find(fr_htable_t *t, const char *key, size_t klen) {
    fr_hnode_t *n = fr_htable_find(t, key, klen);
    return n ? FR_HTABLE_ENTRY(n, item_t, node) : NULL;
}

static size_t key_of(int i, char *buf) {
    return (size_t)snprintf(buf, 24, "topic-%d", i);
}

static size_t longest_chain(const fr_htable_t *t) {
    size_t longest = 0;
    for (size_t b = 0; b < t->nbuckets; b++) {
        size_t n = 0;
        for (fr_hnode_t *x = t->buckets[b]; x; x = x->next)
            n++;
        longest = n > longest ? n : longest;
    }
    return longest;
}

/* Removes and frees every entry through a walk. */
static size_t drain(fr_htable_t *t) {
    fr_htable_iter_t it;
    size_t n = 0;
    fr_htable_iter_init(t, &it);
    for (fr_hnode_t *x; (x = fr_htable_iter_next(&it));) {
        fr_htable_remove(t, x);
        free(FR_HTABLE_ENTRY(x, item_t, node));
        n++;
    }
    return n;
}

static void test_insert_find_remove(void) {
    fr_htable_t t;
    fr_htable_init(&t);
    CHECK(find(&t, "nothing", 7) == NULL);
    item_t *a = item_new(&t, "alpha", 5, 1);
    item_t *b = item_new(&t, "beta", 4, 2);
    CHECK_EQ_UINT(t.count, 2);
    CHECK(find(&t, "alpha", 5) == a);
    CHECK(find(&t, "beta", 4) == b);
    CHECK(find(&t, "alph", 4) == NULL); /* a prefix is another key */
    CHECK(find(&t, "alphaa", 6) == NULL);
    fr_htable_remove(&t, &a->node);
    CHECK_EQ_UINT(t.count, 1);
    CHECK(find(&t, "alpha", 5) == NULL);
    CHECK(find(&t, "beta", 4) == b);
    /* Removing again, or removing what was never in, changes nothing. */
    fr_htable_remove(&t, &a->node);
    item_t stray;
    memset(&stray, 0, sizeof stray);
    fr_htable_remove(&t, &stray.node);
    CHECK_EQ_UINT(t.count, 1);
    CHECK(find(&t, "beta", 4) == b);
    /* A removed entry can go back in. */
    fr_htable_insert(&t, &a->node, a->key, a->klen);
    CHECK(find(&t, "alpha", 5) == a);
    CHECK_EQ_UINT(drain(&t), 2);
    CHECK_EQ_UINT(t.count, 0);
    fr_htable_close(&t);
    CHECK(t.buckets == NULL);
}

static void test_keys_with_nul_bytes(void) {
    fr_htable_t t;
    fr_htable_init(&t);
    item_t *x = item_new(&t, "a\0b", 3, 1);
    item_t *y = item_new(&t, "a\0c", 3, 2);
    item_t *z = item_new(&t, "a", 1, 3);
    item_t *e = item_new(&t, "", 0, 4);
    item_t *nul = item_new(&t, "\0", 1, 5);
    CHECK(find(&t, "a\0b", 3) == x);
    CHECK(find(&t, "a\0c", 3) == y);
    CHECK(find(&t, "a", 1) == z);
    CHECK(find(&t, "", 0) == e);
    CHECK(find(&t, "\0", 1) == nul);
    CHECK(find(&t, "a\0", 2) == NULL);
    CHECK_EQ_UINT(drain(&t), 5);
    fr_htable_close(&t);
}

static void test_grows_and_keeps_chains_short(void) {
    fr_htable_t t;
    fr_htable_init(&t);
    enum { N = 20000 };
    char k[24];
    for (int i = 0; i < N; i++)
        item_new(&t, k, key_of(i, k), i);
    CHECK_EQ_UINT(t.count, N);
    CHECK(t.nbuckets >= N);
    CHECK_EQ_UINT(t.nbuckets & (t.nbuckets - 1), 0);
    CHECK(longest_chain(&t) <= 12);
    size_t missing = 0;
    for (int i = 0; i < N; i++) {
        item_t *it = find(&t, k, key_of(i, k));
        missing += !it || it->value != i;
    }
    CHECK_EQ_UINT(missing, 0);
    /* Every other one out: the rest are still found, the removed ones are not. */
    for (int i = 0; i < N; i += 2) {
        item_t *it = find(&t, k, key_of(i, k));
        fr_htable_remove(&t, &it->node);
        free(it);
    }
    CHECK_EQ_UINT(t.count, N / 2);
    size_t wrong = 0;
    for (int i = 0; i < N; i++) {
        item_t *it = find(&t, k, key_of(i, k));
        wrong += i % 2 ? !it || it->value != i : it != NULL;
    }
    CHECK_EQ_UINT(wrong, 0);
    CHECK_EQ_UINT(drain(&t), N / 2);
    fr_htable_close(&t);
}

static void test_iterate_sees_each_once_and_may_remove_current(void) {
    fr_htable_t t;
    fr_htable_init(&t);
    enum { N = 1000 };
    char k[24];
    for (int i = 0; i < N; i++)
        item_new(&t, k, key_of(i, k), i);
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    fr_htable_iter_t it;
    fr_htable_iter_init(&t, &it);
    size_t visits = 0;
    for (fr_hnode_t *x; (x = fr_htable_iter_next(&it));) {
        seen[FR_HTABLE_ENTRY(x, item_t, node)->value]++;
        visits++;
    }
    CHECK_EQ_UINT(visits, N);
    size_t not_once = 0;
    for (int i = 0; i < N; i++)
        not_once += seen[i] != 1;
    CHECK_EQ_UINT(not_once, 0);
    /* A walk that removes (and frees) every third entry as it meets it: the others are all
     * met, the walk goes on past each removal. */
    memset(seen, 0, sizeof seen);
    fr_htable_iter_init(&t, &it);
    for (fr_hnode_t *x; (x = fr_htable_iter_next(&it));) {
        item_t *e = FR_HTABLE_ENTRY(x, item_t, node);
        seen[e->value]++;
        if (e->value % 3 == 0) {
            fr_htable_remove(&t, x);
            free(e);
        }
    }
    not_once = 0;
    for (int i = 0; i < N; i++)
        not_once += seen[i] != 1;
    CHECK_EQ_UINT(not_once, 0);
    CHECK_EQ_UINT(t.count, N - (N + 2) / 3);
    CHECK(find(&t, k, key_of(3, k)) == NULL);
    CHECK(find(&t, k, key_of(4, k)) != NULL);
    CHECK_EQ_UINT(drain(&t), N - (N + 2) / 3);
    /* An empty table: the walk ends at once. */
    fr_htable_iter_init(&t, &it);
    CHECK(fr_htable_iter_next(&it) == NULL);
    fr_htable_close(&t);
}

/* Inserting during a walk may grow the table under it: the walk must stay within the new
 * bucket array (the sanitizer build checks the memory), and every entry that was there before
 * and after is still found. */
static void test_insert_during_walk_is_safe(void) {
    fr_htable_t t;
    fr_htable_init(&t);
    char k[24];
    for (int i = 0; i < 16; i++)
        item_new(&t, k, key_of(i, k), i);
    fr_htable_iter_t it;
    fr_htable_iter_init(&t, &it);
    int next = 16, steps = 0;
    for (fr_hnode_t *x; (x = fr_htable_iter_next(&it)) && steps < 10000; steps++) {
        (void)x;
        if (next < 200) {
            item_new(&t, k, key_of(next, k), next);
            next++;
        }
    }
    CHECK(steps < 10000);
    size_t missing = 0;
    for (int i = 0; i < next; i++)
        missing += find(&t, k, key_of(i, k)) == NULL;
    CHECK_EQ_UINT(missing, 0);
    CHECK_EQ_UINT(drain(&t), (size_t)next);
    fr_htable_close(&t);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_siphash24_reference_vectors);
    FR_RUN(test_siphash13_matches_cpython);
    FR_RUN(test_keys_change_hashes);
    FR_RUN(test_insert_find_remove);
    FR_RUN(test_keys_with_nul_bytes);
    FR_RUN(test_grows_and_keeps_chains_short);
    FR_RUN(test_iterate_sees_each_once_and_may_remove_current);
    FR_RUN(test_insert_during_walk_is_safe);
    return FR_TEST_END();
}
