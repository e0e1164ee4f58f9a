/* The intrusive list: order at both ends, removal anywhere, removal twice, walks that remove
 * the element they stand on. */
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "base/list.h"

typedef struct {
    int value;
    fr_list_t link;
} node_t;

/* The values in list order, as a string of digits ("" when empty). */
static const char *order(const fr_list_t *head) {
    static char buf[64];
    size_t n = 0;
    for (fr_list_t *l = fr_list_first(head); l && n + 1 < sizeof buf; l = fr_list_next(head, l))
        buf[n++] = (char)('0' + FR_LIST_ENTRY(l, node_t, link)->value);
    buf[n] = '\0';
    /* The prev links must mirror the next ones. */
    size_t back = 0;
    for (const fr_list_t *l = head->prev; l != head; l = l->prev)
        back++;
    return back == n ? buf : "prev links broken";
}

static void test_insert_both_ends(void) {
    fr_list_t head;
    fr_list_init(&head);
    CHECK(fr_list_empty(&head));
    CHECK(fr_list_first(&head) == NULL);
    CHECK_EQ_STR(order(&head), "");
    node_t n[5];
    memset(n, 0, sizeof n);
    for (int i = 0; i < 5; i++) {
        n[i].value = i;
        CHECK(!fr_list_linked(&n[i].link));
    }
    fr_list_insert_tail(&head, &n[1].link);
    fr_list_insert_tail(&head, &n[2].link);
    fr_list_insert_head(&head, &n[0].link);
    fr_list_insert_after(&n[2].link, &n[4].link);
    fr_list_insert_after(&n[2].link, &n[3].link);
    CHECK(!fr_list_empty(&head));
    CHECK(fr_list_linked(&n[3].link));
    CHECK_EQ_STR(order(&head), "01234");
    CHECK(FR_LIST_ENTRY(fr_list_first(&head), node_t, link) == &n[0]);
    CHECK(fr_list_next(&head, &n[4].link) == NULL);
}

static void test_remove_anywhere_and_twice(void) {
    fr_list_t head;
    fr_list_init(&head);
    node_t n[4];
    for (int i = 0; i < 4; i++) {
        n[i].value = i;
        fr_list_insert_tail(&head, &n[i].link);
    }
    fr_list_remove(&n[2].link); /* middle */
    CHECK_EQ_STR(order(&head), "013");
    fr_list_remove(&n[2].link); /* again: nothing happens */
    CHECK_EQ_STR(order(&head), "013");
    CHECK(!fr_list_linked(&n[2].link));
    fr_list_remove(&n[0].link); /* first */
    fr_list_remove(&n[3].link); /* last */
    CHECK_EQ_STR(order(&head), "1");
    fr_list_remove(&n[1].link);
    CHECK(fr_list_empty(&head));
    /* A zeroed link was never in a list: removing it is harmless too. */
    node_t z;
    memset(&z, 0, sizeof z);
    CHECK(!fr_list_linked(&z.link));
    fr_list_remove(&z.link);
    /* A self-linked one neither. */
    fr_list_init(&z.link);
    CHECK(!fr_list_linked(&z.link));
    fr_list_remove(&z.link);
    /* A removed link can go in again. */
    fr_list_insert_head(&head, &n[2].link);
    CHECK_EQ_STR(order(&head), "2");
}

/* A walk standing on a link that is taken out under it (by a callback, say) stops there. */
static void test_walk_ends_at_a_link_removed_under_it(void) {
    fr_list_t head;
    fr_list_init(&head);
    node_t n[4];
    memset(n, 0, sizeof n);
    for (int i = 0; i < 4; i++) {
        n[i].value = i;
        fr_list_insert_tail(&head, &n[i].link);
    }
    int visited = 0;
    for (fr_list_t *l = fr_list_first(&head), *next; l && visited < 100; l = next) {
        next = fr_list_next(&head, l);
        visited++;
        if (l == &n[0].link)
            fr_list_remove(&n[1].link); /* the successor the walk already holds */
    }
    CHECK_EQ_INT(visited, 2);
    CHECK_EQ_STR(order(&head), "023");
}

static void test_walk_that_removes_and_frees(void) {
    /* On the heap like the elements: GCC cannot tell the head from an element and would warn
     * that free() might be handed the head, which lives on the stack otherwise. */
    fr_list_t *head = malloc(sizeof *head);
    fr_list_init(head);
    for (int i = 0; i < 10; i++) {
        node_t *x = malloc(sizeof *x);
        x->value = i;
        fr_list_insert_tail(head, &x->link);
    }
    int visited = 0;
    for (fr_list_t *l = fr_list_first(head), *next; l; l = next) {
        next = fr_list_next(head, l);
        node_t *x = FR_LIST_ENTRY(l, node_t, link);
        visited++;
        if (x->value % 2 == 0) {
            fr_list_remove(l);
            free(x);
        }
    }
    CHECK_EQ_INT(visited, 10);
    CHECK_EQ_STR(order(head), "13579");
    for (fr_list_t *l = fr_list_first(head), *next; l; l = next) {
        next = fr_list_next(head, l);
        fr_list_remove(l);
        free(FR_LIST_ENTRY(l, node_t, link));
    }
    CHECK(fr_list_empty(head));
    free(head);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_insert_both_ends);
    FR_RUN(test_remove_anywhere_and_twice);
    FR_RUN(test_walk_that_removes_and_frees);
    FR_RUN(test_walk_ends_at_a_link_removed_under_it);
    return FR_TEST_END();
}
