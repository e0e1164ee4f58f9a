/* RESP command encoding: the bytes Redis expects, for empty, binary and long arguments. */
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "codec/resp.h"

static void check_command(size_t argc, const char *const *argv, const size_t *lens,
                          const char *want, size_t want_len) {
    size_t n = fr_resp_command_size(argc, argv, lens);
    CHECK_EQ_UINT(n, want_len);
    char *out = malloc(n + 1);
    out[n] = 'X'; /* nothing is written past the size */
    CHECK_EQ_UINT(fr_resp_command_write(out, argc, argv, lens), n);
    CHECK(memcmp(out, want, want_len) == 0);
    CHECK(out[n] == 'X');
    free(out);
}

static void test_simple(void) {
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    static const char want[] = "*1\r\n$4\r\nPING\r\n";
    check_command(1, argv, lens, want, sizeof want - 1);
}

static void test_empty_and_binary(void) {
    /* An empty argument is "$0\r\n\r\n"; bytes are copied as they are, NUL and CR LF too. */
    const char *argv[] = {"FCALL", "", "a\0b\r\nc"};
    size_t lens[] = {5, 0, 6};
    static const char want[] = "*3\r\n$5\r\nFCALL\r\n$0\r\n\r\n$6\r\na\0b\r\nc\r\n";
    check_command(3, argv, lens, want, sizeof want - 1);
}

static void test_many_and_long(void) {
    /* Ten arguments (a two-digit count) and one of 12,345 bytes (a five-digit length). */
    const char *argv[10];
    size_t lens[10];
    char *big = malloc(12345);
    memset(big, 'z', 12345);
    for (int i = 0; i < 9; i++) {
        argv[i] = "k";
        lens[i] = 1;
    }
    argv[9] = big;
    lens[9] = 12345;
    size_t want_len = 5 + 9 * 7 + 8 + 12345 + 2;
    char *want = malloc(want_len);
    size_t at = 0;
    memcpy(want + at, "*10\r\n", 5);
    at += 5;
    for (int i = 0; i < 9; i++) {
        memcpy(want + at, "$1\r\nk\r\n", 7);
        at += 7;
    }
    memcpy(want + at, "$12345\r\n", 8);
    at += 8;
    memcpy(want + at, big, 12345);
    at += 12345;
    memcpy(want + at, "\r\n", 2);
    at += 2;
    CHECK_EQ_UINT(at, want_len);
    check_command(10, argv, lens, want, at);
    free(want);
    free(big);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_simple);
    FR_RUN(test_empty_and_binary);
    FR_RUN(test_many_and_long);
    return FR_TEST_END();
}
