/* freshet.crypto (src/lua/crypto.c) from a bare Lua state: known-answer vectors, every
 * decoder branch with hostile input (the sanitizer build watches the buffer arithmetic), and
 * the argument errors. tests/lua/crypto_spec.lua covers the same module from busted. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "lua/crypto.h"
#include "lua/modules.h"
#include "base/util.h"

static lua_State *new_state(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_freshet_crypto);
    lua_call(L, 0, 1);
    lua_setglobal(L, "crypto");
    return L;
}

/* Runs `code`; leaves its results on the stack and returns how many, or -1 with the error
 * message on the stack. */
static int run(lua_State *L, const char *code) {
    int top = lua_gettop(L);
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, LUA_MULTRET, 0) != 0)
        return -1;
    return lua_gettop(L) - top;
}

/* Calls crypto.<fn>(arg) with one string argument (len bytes). */
static int call1(lua_State *L, const char *fn, const char *arg, size_t len) {
    int top = lua_gettop(L);
    lua_getglobal(L, "crypto");
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_pushlstring(L, arg, len);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != 0)
        return -1;
    return lua_gettop(L) - top;
}

static void hex_to_bytes(const char *hex, unsigned char *out) {
    for (size_t i = 0; hex[2 * i]; i++) {
        char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
        out[i] = (unsigned char)strtoul(b, NULL, 16);
    }
}

static void test_registered_for_every_vm(void) {
    int found = 0;
    for (const fr_lua_module_t *m = fr_lua_modules; m->name; m++)
        found += strcmp(m->name, "freshet.crypto") == 0 && m->open == luaopen_freshet_crypto;
    CHECK_EQ_INT(found, 1);
}

static void test_hmac_sha256_vectors(void) {
    lua_State *L = new_state();
    unsigned char want[32];
    /* RFC 4231 test case 2. */
    hex_to_bytes("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want);
    REQUIRE(run(L, "return crypto.hmac_sha256('Jefe', 'what do ya want for nothing?')") == 1);
    size_t len;
    const char *mac = lua_tolstring(L, -1, &len);
    CHECK_MEM(mac, len, want, 32);
    lua_settop(L, 0);
    /* RFC 4231 test case 6: a key longer than the block is hashed first. */
    hex_to_bytes("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", want);
    REQUIRE(run(L, "return crypto.hmac_sha256(('\\170'):rep(131), "
                   "'Test Using Larger Than Block-Size Key - Hash Key First')") == 1);
    mac = lua_tolstring(L, -1, &len);
    CHECK_MEM(mac, len, want, 32);
    lua_close(L);
}

static void test_sha256_vectors(void) {
    lua_State *L = new_state();
    unsigned char want[32];
    hex_to_bytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
    REQUIRE(call1(L, "sha256", "abc", 3) == 1);
    size_t len;
    const char *md = lua_tolstring(L, -1, &len);
    CHECK_MEM(md, len, want, 32);
    lua_settop(L, 0);
    hex_to_bytes("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
    REQUIRE(call1(L, "sha256", "", 0) == 1);
    md = lua_tolstring(L, -1, &len);
    CHECK_MEM(md, len, want, 32);
    lua_close(L);
}

/* Every length from 0 to 200 with every byte value represented: encode has no '=', '+' or
 * '/', and decode gives the bytes back exactly. */
static void test_base64url_round_trip(void) {
    lua_State *L = new_state();
    unsigned char buf[200];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 73 + 11);
    for (size_t n = 0; n <= sizeof buf; n++) {
        REQUIRE(call1(L, "base64url_encode", (const char *)buf, n) == 1);
        size_t tlen;
        const char *text = lua_tolstring(L, -1, &tlen);
        CHECK_EQ_UINT(tlen, (n * 4 + 2) / 3);
        CHECK(strpbrk(text, "=+/") == NULL);
        char *copy = malloc(tlen + 1);
        memcpy(copy, text, tlen + 1);
        lua_settop(L, 0);
        REQUIRE(call1(L, "base64url_decode", copy, tlen) == 1);
        size_t dlen;
        const char *back = lua_tolstring(L, -1, &dlen);
        CHECK_MEM(back, dlen, buf, n);
        lua_settop(L, 0);
        free(copy);
    }
    lua_close(L);
}

static void test_base64url_decode_refuses(void) {
    static const struct {
        const char *text;
        const char *err;
    } cases[] = {
        {"A", "impossible length"},
        {"AAAAA", "impossible length"},
        {"=", "misplaced '=' padding"},
        {"==", "misplaced '=' padding"},
        {"===", "misplaced '=' padding"},
        {"====", "misplaced '=' padding"},
        {"A===", "misplaced '=' padding"},
        {"AA=", "misplaced '=' padding"},
        {"AAA==", "misplaced '=' padding"},
        {"AA=A", "misplaced '=' padding"},
        {"AAAA=", "misplaced '=' padding"},
        {"AB", "non-zero trailing bits"},
        {"AAB", "non-zero trailing bits"},
        {"AB==", "non-zero trailing bits"},
        {"A+AA", "unexpected character at position 2"},
        {"AAA/", "unexpected character at position 4"},
        {"AA\nA", "unexpected character at position 3"},
        {"\xff\xff\xff\xff", "unexpected character at position 1"},
    };
    lua_State *L = new_state();
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        REQUIRE(call1(L, "base64url_decode", cases[i].text, strlen(cases[i].text)) == 2);
        CHECK(lua_isnil(L, -2));
        CHECK_CONTAINS(lua_tostring(L, -1), cases[i].err);
        lua_settop(L, 0);
    }
    /* A NUL inside the text is a character like any other, not an end. */
    REQUIRE(call1(L, "base64url_decode", "AA\0A", 4) == 2);
    CHECK_CONTAINS(lua_tostring(L, -1), "unexpected character at position 3");
    lua_settop(L, 0);
    /* Correct padding is accepted. */
    REQUIRE(call1(L, "base64url_decode", "Zg==", 4) == 1);
    CHECK_EQ_STR(lua_tostring(L, -1), "f");
    lua_close(L);
}

static void test_constant_time_equal(void) {
    lua_State *L = new_state();
    int n =
        run(L, "local eq = crypto.constant_time_equal "
               "return eq('a\\0b', 'a\\0b'), eq('a\\0b', 'a\\0c'), eq('abc', 'ab'), eq('', '')");
    REQUIRE(n == 4);
    CHECK(lua_toboolean(L, 1));
    CHECK(!lua_toboolean(L, 2));
    CHECK(!lua_toboolean(L, 3));
    CHECK(lua_toboolean(L, 4));
    lua_close(L);
}

static void test_random_bytes(void) {
    lua_State *L = new_state();
    int n = run(L, "local r = crypto.random_bytes return r(0), r(64), r(64)");
    REQUIRE(n == 3);
    CHECK_EQ_UINT(lua_objlen(L, 1), 0);
    CHECK_EQ_UINT(lua_objlen(L, 2), 64);
    CHECK(!lua_rawequal(L, 2, 3));
    lua_close(L);
}

/* Misuse raises, and the message names the function, the argument, and the caller's line. */
static void test_argument_errors(void) {
    static const struct {
        const char *code;
        const char *msg;
    } cases[] = {
#define RANGE                                                                                      \
    "freshet.crypto.random_bytes: bad argument #1 'n' (an integer from 0 to 1048576 expected)"
        {"crypto.hmac_sha256(nil, 'm')",
         "freshet.crypto.hmac_sha256: bad argument #1 'key' (string expected, got nil)"},
        {"crypto.hmac_sha256('k', {})",
         "freshet.crypto.hmac_sha256: bad argument #2 'msg' (string expected, got table)"},
        {"crypto.sha256(1)",
         "freshet.crypto.sha256: bad argument #1 'msg' (string expected, got number)"},
        {"crypto.base64url_encode()",
         "freshet.crypto.base64url_encode: bad argument #1 'data' (string expected, got no value)"},
        {"crypto.base64url_decode(false)",
         "freshet.crypto.base64url_decode: bad argument #1 'text' (string expected, got boolean)"},
        {"crypto.constant_time_equal('a')",
         "freshet.crypto.constant_time_equal: bad argument #2 'b' (string expected, got no value)"},
        {"crypto.random_bytes('1')",
         "freshet.crypto.random_bytes: bad argument #1 'n' (number expected, got string)"},
        {"crypto.random_bytes(-1)", RANGE},
        {"crypto.random_bytes(0/0)", RANGE},
        {"crypto.random_bytes(1e300)", RANGE},
        {"crypto.random_bytes(2.5)", RANGE},
#undef RANGE
    };
    lua_State *L = new_state();
    for (size_t i = 0; i < FR_ARRAY_LEN(cases); i++) {
        char code[256];
        snprintf(code, sizeof code, "\n%s", cases[i].code);
        REQUIRE(run(L, code) == -1);
        const char *msg = lua_tostring(L, -1);
        CHECK_CONTAINS(msg, cases[i].msg);
        CHECK_CONTAINS(msg, ":2: freshet.crypto.");
        lua_settop(L, 0);
    }
    lua_close(L);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_registered_for_every_vm);
    FR_RUN(test_hmac_sha256_vectors);
    FR_RUN(test_sha256_vectors);
    FR_RUN(test_base64url_round_trip);
    FR_RUN(test_base64url_decode_refuses);
    FR_RUN(test_constant_time_equal);
    FR_RUN(test_random_bytes);
    FR_RUN(test_argument_errors);
    return FR_TEST_END();
}
