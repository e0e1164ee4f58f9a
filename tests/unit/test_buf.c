/* The growable byte buffer: puts, printf past the room there is, take and free. */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "fr_test.h"

static void test_put_keeps_a_nul_after_the_bytes(void) {
    fr_buf_t b = {0};
    fr_buf_put(&b, "ab", 2);
    fr_buf_putc(&b, 'c');
    fr_buf_puts(&b, "de");
    fr_buf_put(&b, "", 0);
    CHECK_EQ_UINT(b.len, 5);
    CHECK_EQ_STR(b.p, "abcde");
    CHECK(b.cap > b.len);
    /* Bytes are bytes: a NUL inside is held and counted. */
    fr_buf_put(&b, "x\0y", 3);
    CHECK_MEM_LIT(b.p, b.len, "abcdex\0y");
    CHECK_EQ_INT(b.p[b.len], '\0');
    fr_buf_free(&b);
    CHECK(b.p == NULL);
    CHECK_EQ_UINT(b.len, 0);
    CHECK_EQ_UINT(b.cap, 0);
}

static void test_many_small_puts(void) {
    fr_buf_t b = {0};
    size_t reallocs = 0, cap = 0;
    for (int i = 0; i < 100000; i++) {
        fr_buf_putc(&b, (char)('a' + i % 26));
        if (b.cap != cap) {
            reallocs++;
            cap = b.cap;
        }
    }
    CHECK_EQ_UINT(b.len, 100000);
    CHECK(reallocs < 40); /* the capacity doubles */
    CHECK_EQ_INT(b.p[99999], 'a' + 99999 % 26);
    fr_buf_free(&b);
}

static void test_reserve_then_fill_without_growing(void) {
    fr_buf_t b = {0};
    fr_buf_reserve(&b, 100);
    char *p = b.p;
    size_t cap = b.cap;
    for (int i = 0; i < 100; i++)
        fr_buf_putc(&b, 'z');
    CHECK(b.p == p);
    CHECK_EQ_UINT(b.cap, cap);
    fr_buf_free(&b);
}

static void test_printf_past_the_room(void) {
    fr_buf_t b = {0};
    fr_buf_printf(&b, "%d-%s", 42, "x");
    CHECK_EQ_STR(b.p, "42-x");
    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    fr_buf_printf(&b, "[%s]", big);
    CHECK_EQ_UINT(b.len, 4 + 2 + sizeof big - 1);
    CHECK_EQ_INT(b.p[4], '[');
    CHECK_EQ_INT(b.p[b.len - 1], ']');
    CHECK_EQ_INT(b.p[b.len], '\0');
    fr_buf_printf(&b, "%s", "");
    CHECK_EQ_UINT(b.len, 4 + 2 + sizeof big - 1);
    fr_buf_free(&b);
}

static void test_take(void) {
    fr_buf_t b = {0};
    size_t len = 99;
    char *s = fr_buf_take(&b, &len); /* an empty buffer gives an empty string */
    CHECK_EQ_STR(s, "");
    CHECK_EQ_UINT(len, 0);
    free(s);
    fr_buf_puts(&b, "hello");
    s = fr_buf_take(&b, &len);
    CHECK_EQ_STR(s, "hello");
    CHECK_EQ_UINT(len, 5);
    CHECK(b.p == NULL);
    CHECK_EQ_UINT(b.len, 0);
    free(s);
    /* The buffer is usable again after a take. */
    fr_buf_puts(&b, "again");
    CHECK_EQ_STR(b.p, "again");
    fr_buf_free(&b);
    fr_buf_free(&b); /* freeing an empty buffer is harmless */
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_put_keeps_a_nul_after_the_bytes);
    FR_RUN(test_many_small_puts);
    FR_RUN(test_reserve_then_fill_without_growing);
    FR_RUN(test_printf_past_the_room);
    FR_RUN(test_take);
    return FR_TEST_END();
}
