/* A tiny assertion kit for the unit tests: one header, no library.
 *
 *   static void test_something(void) {
 *       CHECK_EQ_INT(f(1), 2);
 *       REQUIRE(p != NULL);          // stops this test function on failure
 *   }
 *   int main(int argc, char **argv) {
 *       FR_TEST_BEGIN(argc, argv);   // optional argv[1]: run only tests whose name contains it
 *       FR_RUN(test_something);
 *       return FR_TEST_END();        // prints "N passed, N failed"; non-zero when any failed
 *   }
 *
 * A failed check prints file:line, the expression and both values, counts the failure and lets
 * the test go on, so one run shows every broken expectation, not just the first. */
#ifndef FR_TEST_H
#define FR_TEST_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Failed checks in the whole run, and in the test function now running. */
static int fr_t_failed_checks __attribute__((unused));
static int fr_t_checks __attribute__((unused));
static int fr_t_tests_passed __attribute__((unused));
static int fr_t_tests_failed __attribute__((unused));
static const char *fr_t_filter __attribute__((unused));

static inline void fr_t_fail_head(const char *file, int line, const char *what) {
    fr_t_failed_checks++;
    printf("  %s:%d: FAILED %s\n", file, line, what);
}

/* Prints bytes as a quoted C string literal so CR, LF and NUL are visible. */
static inline void fr_t_print_bytes(const char *label, const void *p, size_t n) {
    const unsigned char *s = p;
    printf("    %s (%zu bytes): ", label, n);
    if (!p) {
        printf("NULL\n");
        return;
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '\n')
            printf("\\n");
        else if (c == '\r')
            printf("\\r");
        else if (c == '\t')
            printf("\\t");
        else if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf("\"\n");
}

static inline int fr_t_check(int ok, const char *expr, const char *file, int line) {
    fr_t_checks++;
    if (!ok)
        fr_t_fail_head(file, line, expr);
    return ok;
}

static inline int fr_t_eq_int(intmax_t a, intmax_t b, const char *ea, const char *eb,
                              const char *file, int line) {
    fr_t_checks++;
    if (a == b)
        return 1;
    char what[512];
    snprintf(what, sizeof what, "%s == %s", ea, eb);
    fr_t_fail_head(file, line, what);
    printf("    left:  %" PRIdMAX "\n    right: %" PRIdMAX "\n", a, b);
    return 0;
}

static inline int fr_t_eq_uint(uintmax_t a, uintmax_t b, const char *ea, const char *eb,
                               const char *file, int line) {
    fr_t_checks++;
    if (a == b)
        return 1;
    char what[512];
    snprintf(what, sizeof what, "%s == %s", ea, eb);
    fr_t_fail_head(file, line, what);
    printf("    left:  %" PRIuMAX "\n    right: %" PRIuMAX "\n", a, b);
    return 0;
}

static inline int fr_t_eq_dbl(double a, double b, const char *ea, const char *eb,
                              const char *file, int line) {
    fr_t_checks++;
    if (a == b)
        return 1;
    char what[512];
    snprintf(what, sizeof what, "%s == %s", ea, eb);
    fr_t_fail_head(file, line, what);
    printf("    left:  %.17g\n    right: %.17g\n", a, b);
    return 0;
}

static inline int fr_t_eq_str(const char *a, const char *b, const char *ea, const char *eb,
                              const char *file, int line) {
    fr_t_checks++;
    if ((a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0))
        return 1;
    char what[512];
    snprintf(what, sizeof what, "%s == %s", ea, eb);
    fr_t_fail_head(file, line, what);
    fr_t_print_bytes("left ", a, a ? strlen(a) : 0);
    fr_t_print_bytes("right", b, b ? strlen(b) : 0);
    return 0;
}

static inline int fr_t_mem(const void *a, size_t alen, const void *b, size_t blen,
                           const char *ea, const char *eb, const char *file, int line) {
    fr_t_checks++;
    if (alen == blen && (alen == 0 || (a && b && memcmp(a, b, alen) == 0)))
        return 1;
    char what[512];
    snprintf(what, sizeof what, "bytes of %s == bytes of %s", ea, eb);
    fr_t_fail_head(file, line, what);
    fr_t_print_bytes("left ", a, alen);
    fr_t_print_bytes("right", b, blen);
    return 0;
}

static inline int fr_t_contains(const char *hay, const char *needle, const char *eh,
                                const char *file, int line) {
    fr_t_checks++;
    if (hay && strstr(hay, needle))
        return 1;
    char what[512];
    snprintf(what, sizeof what, "%s contains \"%s\"", eh, needle);
    fr_t_fail_head(file, line, what);
    fr_t_print_bytes("text", hay, hay ? strlen(hay) : 0);
    return 0;
}

/* Each evaluates its arguments once and returns 1 when the check held, so a test can guard
 * later steps: if (CHECK(p)) use(p); */
#define CHECK(cond) fr_t_check((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define CHECK_EQ_INT(a, b) fr_t_eq_int((intmax_t)(a), (intmax_t)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_UINT(a, b) \
    fr_t_eq_uint((uintmax_t)(a), (uintmax_t)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_DBL(a, b) fr_t_eq_dbl((double)(a), (double)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_STR(a, b) fr_t_eq_str((a), (b), #a, #b, __FILE__, __LINE__)
#define CHECK_MEM(a, alen, b, blen) \
    fr_t_mem((a), (size_t)(alen), (b), (size_t)(blen), #a, #b, __FILE__, __LINE__)
/* Compares a buffer against a string literal, NUL excluded. */
#define CHECK_MEM_LIT(a, alen, lit) CHECK_MEM((a), (alen), (lit), sizeof(lit) - 1)
#define CHECK_CONTAINS(hay, needle) fr_t_contains((hay), (needle), #hay, __FILE__, __LINE__)

/* Stops the current test function (which must return void) when cond is false: for checks
 * whose failure would make the following steps crash (a NULL result, a short array). */
#define REQUIRE(cond)        \
    do {                     \
        if (!CHECK(cond))    \
            return;          \
    } while (0)

#define FR_TEST_BEGIN(argc, argv) (fr_t_filter = (argc) > 1 ? (argv)[1] : NULL)

#define FR_RUN(fn)                                                                 \
    do {                                                                           \
        if (fr_t_filter && !strstr(#fn, fr_t_filter))                              \
            break;                                                                 \
        int before_ = fr_t_failed_checks;                                          \
        printf("[ RUN  ] %s\n", #fn);                                              \
        fflush(stdout);                                                            \
        fn();                                                                      \
        if (fr_t_failed_checks == before_) {                                       \
            fr_t_tests_passed++;                                                   \
            printf("[   OK ] %s\n", #fn);                                          \
        } else {                                                                   \
            fr_t_tests_failed++;                                                   \
            printf("[ FAIL ] %s (%d failed checks)\n", #fn, fr_t_failed_checks - before_); \
        }                                                                          \
        fflush(stdout);                                                            \
    } while (0)

static inline int fr_t_end(void) {
    printf("%d passed, %d failed (%d checks, %d failed)\n", fr_t_tests_passed, fr_t_tests_failed,
           fr_t_checks, fr_t_failed_checks);
    fflush(stdout);
    /* A filter that matched nothing is a mistake, not a pass. */
    if (fr_t_tests_passed + fr_t_tests_failed == 0)
        return 1;
    return fr_t_tests_failed ? 1 : 0;
}

#define FR_TEST_END() fr_t_end()

#endif
