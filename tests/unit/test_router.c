/* Route patterns: compiling and matching raw request paths. */
#include <string.h>

#include "fr_test.h"
#include "codec/router.h"

static void check_compile_error(const char *src, const char *file, int line) {
    fr_pattern_t p;
    const char *err = NULL;
    int rc = fr_pattern_compile(src, &p, &err);
    if (!fr_t_eq_int(rc, -1, "fr_pattern_compile", "-1", file, line))
        printf("    pattern: \"%s\"\n", src);
    if (!fr_t_check(err != NULL && *err != '\0', "compile error has a message", file, line))
        printf("    pattern: \"%s\"\n", src);
    if (rc == 0)
        fr_pattern_free(&p);
}

#define COMPILE_ERROR(src) check_compile_error((src), __FILE__, __LINE__)

static void test_compile_errors(void) {
    COMPILE_ERROR("");
    COMPILE_ERROR("rooms");
    COMPILE_ERROR("rooms/:id");
    COMPILE_ERROR("/rooms/:");
    COMPILE_ERROR("/:/x");
    COMPILE_ERROR("/rooms/:1abc");
    COMPILE_ERROR("/rooms/:a-b");
    COMPILE_ERROR("/rooms/:a b");
    COMPILE_ERROR("/rooms/:a.b");
    COMPILE_ERROR("/:id/:id");
    COMPILE_ERROR("/:a/x/:b/:a");

    fr_pattern_t p;
    const char *err = NULL;
    CHECK_EQ_INT(fr_pattern_compile("/:a/:a", &p, &err), -1);
    CHECK_CONTAINS(err, "twice");
    CHECK_EQ_INT(fr_pattern_compile("x", &p, &err), -1);
    CHECK_CONTAINS(err, "'/'");

    /* FR_MAX_PARAMS parameters are fine; one more is not. */
    char src[512] = "";
    for (int i = 0; i < FR_MAX_PARAMS; i++) {
        char seg[16];
        snprintf(seg, sizeof seg, "/:p%d", i);
        strcat(src, seg);
    }
    err = NULL;
    CHECK_EQ_INT(fr_pattern_compile(src, &p, &err), 0);
    CHECK_EQ_UINT(p.nsegs, FR_MAX_PARAMS);
    fr_pattern_free(&p);
    strcat(src, "/:extra");
    COMPILE_ERROR(src);
}

static void test_compile_segments(void) {
    fr_pattern_t p;
    const char *err = NULL;
    REQUIRE(fr_pattern_compile("/rooms/:room/events", &p, &err) == 0);
    CHECK_EQ_STR(p.source, "/rooms/:room/events");
    REQUIRE(p.nsegs == 3);
    CHECK_EQ_STR(p.segs[0].text, "rooms");
    CHECK_EQ_INT(p.segs[0].is_param, 0);
    CHECK_EQ_STR(p.segs[1].text, "room");
    CHECK_EQ_INT(p.segs[1].is_param, 1);
    CHECK_EQ_STR(p.segs[2].text, "events");
    CHECK_EQ_INT(p.segs[2].is_param, 0);
    fr_pattern_free(&p);

    REQUIRE(fr_pattern_compile("/:_x9/A_1", &p, &err) == 0);
    CHECK_EQ_UINT(p.nsegs, 2);
    fr_pattern_free(&p);

    REQUIRE(fr_pattern_compile("/", &p, &err) == 0);
    CHECK_EQ_UINT(p.nsegs, 0);
    fr_pattern_free(&p);
}

/* Compiles pat and matches path; returns the match result and fills params. */
static int match(const char *pat, const char *path, fr_param_t *params, size_t *n) {
    fr_pattern_t p;
    const char *err = NULL;
    if (fr_pattern_compile(pat, &p, &err) != 0) {
        printf("    cannot compile \"%s\": %s\n", pat, err);
        *n = 0;
        return -99;
    }
    int rc = fr_pattern_match(&p, path, strlen(path), params, n);
    /* Parameter names are borrowed from the pattern: keep a copy-free check here. */
    for (size_t i = 0; i < *n; i++) {
        if (params[i].name == NULL)
            printf("    param %zu without a name\n", i);
    }
    fr_pattern_free(&p);
    for (size_t i = 0; i < *n; i++)
        params[i].name = NULL; /* the pattern that owned them is gone */
    return rc;
}

static void test_match_literal(void) {
    fr_param_t params[FR_MAX_PARAMS];
    size_t n = 99;
    CHECK_EQ_INT(match("/health", "/health", params, &n), 1);
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_INT(match("/a/b/c", "/a/b/c", params, &n), 1);
    CHECK_EQ_INT(match("/health", "/healthz", params, &n), 0);
    CHECK_EQ_INT(match("/health", "/Health", params, &n), 0);
    CHECK_EQ_INT(match("/a/b", "/a/c", params, &n), 0);
    CHECK_EQ_INT(match("/a/b", "/a", params, &n), 0);
    CHECK_EQ_INT(match("/a", "/a/b", params, &n), 0);
    CHECK_EQ_INT(match("/a", "a", params, &n), 0);
    CHECK_EQ_INT(match("/a", "", params, &n), 0);
}

static void test_match_params(void) {
    fr_param_t params[FR_MAX_PARAMS];
    size_t n = 0;
    fr_pattern_t p;
    const char *err = NULL;
    REQUIRE(fr_pattern_compile("/rooms/:room/users/:user", &p, &err) == 0);
    const char *path = "/rooms/lobby/users/ann";
    CHECK_EQ_INT(fr_pattern_match(&p, path, strlen(path), params, &n), 1);
    REQUIRE(n == 2);
    CHECK_EQ_STR(params[0].name, "room");
    CHECK_EQ_STR(params[0].value, "lobby");
    CHECK_EQ_STR(params[1].name, "user");
    CHECK_EQ_STR(params[1].value, "ann");
    fr_params_free(params, n);
    CHECK(params[0].value == NULL);

    /* Only len bytes of the path are matched. */
    const char *longer = "/rooms/a/users/b?x=1";
    CHECK_EQ_INT(fr_pattern_match(&p, longer, strlen("/rooms/a/users/b"), params, &n), 1);
    if (n == 2)
        CHECK_EQ_STR(params[1].value, "b");
    fr_params_free(params, n);

    /* A literal mismatch after a parameter matched frees that parameter and reports none. */
    path = "/rooms/lobby/admins/ann";
    CHECK_EQ_INT(fr_pattern_match(&p, path, strlen(path), params, &n), 0);
    CHECK_EQ_UINT(n, 0);
    /* An empty segment does not fill a parameter. */
    path = "/rooms//users/ann";
    CHECK_EQ_INT(fr_pattern_match(&p, path, strlen(path), params, &n), 0);
    CHECK_EQ_UINT(n, 0);
    fr_pattern_free(&p);
}

static void test_match_decoding(void) {
    fr_param_t params[FR_MAX_PARAMS];
    size_t n = 0;
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a%20b", params, &n), 1);
    if (CHECK_EQ_UINT(n, 1))
        CHECK_EQ_STR(params[0].value, "a b");
    fr_params_free(params, n);

    CHECK_EQ_INT(match("/rooms/:room", "/rooms/caf%C3%A9", params, &n), 1);
    if (n == 1)
        CHECK_EQ_STR(params[0].value, "caf\xc3\xa9");
    fr_params_free(params, n);

    /* In a path '+' is a plus, not a space. */
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a+b", params, &n), 1);
    if (n == 1)
        CHECK_EQ_STR(params[0].value, "a+b");
    fr_params_free(params, n);

    /* An encoded slash stays inside its segment. */
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a%2Fb", params, &n), 1);
    if (n == 1)
        CHECK_EQ_STR(params[0].value, "a/b");
    fr_params_free(params, n);

    /* Bad encodings are an error, with nothing left to free. */
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a%zz", params, &n), -1);
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a%2", params, &n), -1);
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a%00b", params, &n), -1);
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_INT(match("/:a/:b", "/ok/bad%", params, &n), -1);
    CHECK_EQ_UINT(n, 0);
}

static void test_match_segments_and_slashes(void) {
    fr_param_t params[FR_MAX_PARAMS];
    size_t n = 0;
    CHECK_EQ_INT(match("/rooms/:room", "/rooms", params, &n), 0);
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a/b", params, &n), 0);
    CHECK_EQ_UINT(n, 0);
    /* A trailing slash is another (empty) segment. */
    CHECK_EQ_INT(match("/rooms/:room", "/rooms/a/", params, &n), 0);
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_INT(match("/rooms", "/rooms/", params, &n), 0);
    CHECK_EQ_INT(match("/rooms/", "/rooms", params, &n), 0);
    CHECK_EQ_INT(match("/rooms/", "/rooms/", params, &n), 1);

    /* The root pattern matches only the root. */
    CHECK_EQ_INT(match("/", "/", params, &n), 1);
    CHECK_EQ_UINT(n, 0);
    CHECK_EQ_INT(match("/", "/a", params, &n), 0);
    CHECK_EQ_INT(match("/", "//", params, &n), 0);
    CHECK_EQ_INT(match("/", "", params, &n), 0);
    CHECK_EQ_INT(match("/a", "/", params, &n), 0);
    CHECK_EQ_INT(match("/:x", "/", params, &n), 0);
    CHECK_EQ_UINT(n, 0);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_compile_errors);
    FR_RUN(test_compile_segments);
    FR_RUN(test_match_literal);
    FR_RUN(test_match_params);
    FR_RUN(test_match_decoding);
    FR_RUN(test_match_segments_and_slashes);
    return FR_TEST_END();
}
