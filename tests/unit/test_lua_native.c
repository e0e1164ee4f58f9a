/* freshet.native (src/lua/native.c) and freshet.shared (src/lua/shared.c) from a bare Lua state:
 * the server's messages for bad events, a dictionary on a Lua clock (and freed with its object:
 * the sanitizer build counts leaks), patterns and percent-decoding, and the argument errors.
 * tests/lua/harness_spec.lua covers the same module through the harness, under busted. */
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "fr_test.h"
#include "lua/modules.h"
#include "lua/native.h"

static lua_State *new_state(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, luaopen_freshet_native);
    lua_call(L, 0, 1);
    lua_setglobal(L, "native");
    return L;
}

/* Runs code, which returns one value; checks that its tostring() is want. An error is
 * compared as "error: <message>". */
static void expect(lua_State *L, const char *code, const char *want, int line) {
    int rc = luaL_loadstring(L, code);
    if (rc == 0)
        rc = lua_pcall(L, 0, 1, 0);
    lua_getglobal(L, "tostring");
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    const char *got = lua_tostring(L, -1);
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", rc ? "error: " : "", got ? got : "?");
    if (strcmp(buf, want) != 0)
        printf("  (line %d: %s)\n", line, code);
    CHECK_EQ_STR(buf, want);
    lua_settop(L, 0);
}
#define EXPECT(code, want) expect(L, code, want, __LINE__)

static void test_registered_for_every_vm(void) {
    int found = 0;
    for (const fr_lua_module_t *m = fr_lua_modules; m->name; m++)
        found += strcmp(m->name, "freshet.native") == 0 && m->open == luaopen_freshet_native;
    CHECK_EQ_INT(found, 1);
}

static void test_event_check(void) {
    lua_State *L = new_state();
    EXPECT("return native.event_check('a', nil, 'x')", "true");
    EXPECT("return select(2, native.event_check('', nil, 'x'))", "topic must be a non-empty string");
    /* A NUL inside a Lua string is seen, where a C string would end at it. */
    EXPECT("return select(2, native.event_check('a\\0b', nil, 'x'))",
           "topic must be UTF-8 without CR, LF or NUL");
    EXPECT("return select(2, native.event_check('a\\rb', nil, 'x'))",
           "topic must be UTF-8 without CR, LF or NUL");
    EXPECT("return select(2, native.event_check('\\237\\160\\128', nil, 'x'))",
           "topic must be UTF-8 without CR, LF or NUL");
    EXPECT("return select(2, native.event_check('a', 'n\\0', 'x'))",
           "event name must be UTF-8 without CR, LF or NUL");
    EXPECT("return select(2, native.event_check('a', 'n', 'ok \\195\\40'))",
           "data must be valid UTF-8");
    EXPECT("return native.event_check('a', '', 'nul \\0 in data is fine')", "true");
    EXPECT("return native.event_check(1, nil, 'x')",
           "error: freshet.native.event_check: bad argument #1 'topic' (string expected, got "
           "number)");
    EXPECT("return native.event_check('a', {}, 'x')",
           "error: freshet.native.event_check: bad argument #2 'name' (string expected, got "
           "table)");
    EXPECT("return native.priority_check('telemetry')", "telemetry");
    EXPECT("return native.priority_check('normal\\0x')", "normal");
    EXPECT("return select(2, native.priority_check('urgent'))",
           "priority must be critical, normal or telemetry");
    EXPECT("return native.priority_check(nil)", "nil");
    lua_close(L);
}

static void test_timer_and_log_checks(void) {
    lua_State *L = new_state();
    EXPECT("return native.timer_check('every', 1000.9, print)", "1000");
    EXPECT("return native.timer_check('after', 0, print)", "0");
    EXPECT("return native.timer_check('every', 0, print)",
           "error: freshet.every: bad argument #1 'ms' (a number of milliseconds >= 1, got 0)");
    EXPECT("return native.timer_check('after', '10', print)",
           "error: freshet.after: bad argument #1 'ms' (a number of milliseconds >= 0, got "
           "string)");
    EXPECT("return (select(2, pcall(native.timer_check, 'after', 0/0, print)):match('got %a+'))",
           "got nan");
    EXPECT("return native.timer_check('after', 1, 'f')",
           "error: freshet.after: bad argument #2 'fn' (function expected, got string)");
    EXPECT("return native.log_check('warn')", "warn");
    EXPECT("return native.log_check('loud')",
           "error: freshet.log: bad argument #1 'level' (debug, info, warn or error, got 'loud')");
    EXPECT("return native.log_check()",
           "error: freshet.log: bad argument #1 'level' (debug, info, warn or error, got no "
           "value)");
    lua_close(L);
}

static void test_shared_on_a_lua_clock(void) {
    lua_State *L = new_state();
    luaL_dostring(L, "now = 5000.5; shared = native.shared(function() return now end)");
    EXPECT("return shared:set('k', 'v', 2)", "true");
    /* The clock is read in whole ms, as the server's is: set at 5000, due at 7000. */
    EXPECT("now = 6999.9; return shared:get('k')", "v");
    EXPECT("now = 7000; return shared:get('k')", "nil");
    EXPECT("return select(2, shared:incr('n'))", "not found");
    EXPECT("shared:incr('n', 1, 0); return shared:incr('n', 2.5)", "3.5");
    EXPECT("shared:set('b', false); return select(2, shared:incr('b'))", "not a number");
    EXPECT("return shared:get('b')", "false");
    EXPECT("return shared:delete('b') and not shared:delete('b')", "true");
    /* A positive ttl under a millisecond still expires; math.huge never does. */
    EXPECT("shared:set('tiny', 1, 0.0001); now = now + 1; return shared:get('tiny')", "nil");
    EXPECT("shared:set('long', 1, math.huge); now = 1e15; return shared:get('long')", "1");
    EXPECT("now = -5; shared:set('neg', 1, 1); now = 999; return shared:get('neg')", "1");
    EXPECT("now = 1000; return shared:get('neg')", "nil");
    EXPECT("return shared.get('k')",
           "error: freshet.shared:get: call it with ':' (freshet.shared:get(key, ...))");
    EXPECT("return shared:set(1, 'v')",
           "error: freshet.shared:set: bad argument #1 'key' (string expected, got number)");
    EXPECT("return shared:set('k', {})", "error: freshet.shared:set: bad argument #2 'value' "
                                         "(string, number or boolean expected, got table)");
    EXPECT("return shared:set('k', 1, 0/0)",
           "error: freshet.shared:set: bad argument 'ttl' (seconds >= 0 expected, got number)");
    EXPECT("return shared:incr('n', 1, 'x')",
           "error: freshet.shared:incr: bad argument #3 'init' (number expected, got string)");
    EXPECT("return native.shared(native.shared(print))",
           "error: freshet.native.shared: bad argument #1 'clock' (function expected, got "
           "userdata)");
    EXPECT("now = 'late'; return shared:get('k')",
           "error: freshet.shared: the clock returned string, not a number of milliseconds");
    /* Each object owns its dictionary, and frees it when collected. */
    EXPECT("local a = native.shared(function() return 0 end); a:set('x', ('y'):rep(100)); "
           "return a:get('x') ~= nil and native.shared(function() return 0 end):get('x')",
           "nil");
    EXPECT("shared = nil; collectgarbage(); collectgarbage(); return 'collected'", "collected");
    lua_close(L);
}

static void test_patterns_and_decoding(void) {
    lua_State *L = new_state();
    EXPECT("local p = native.pattern('/rooms/:room/events'); "
           "return p:match('/rooms/a%20b+c/events').room",
           "a b+c");
    EXPECT("return native.pattern('/rooms/:room'):match('/rooms/')", "false");
    EXPECT("return native.pattern('/rooms/:room'):match('/halls/x')", "false");
    EXPECT("return select(2, native.pattern('/rooms/:room'):match('/rooms/%zz'))",
           "invalid percent-encoding in the path");
    EXPECT("return select(2, native.pattern('/rooms/:room'):match('/rooms/a%00'))",
           "invalid percent-encoding in the path");
    EXPECT("return select(2, native.pattern('rooms'))", "pattern must start with '/'");
    EXPECT("return select(2, native.pattern('/:1x'))",
           "parameter names are letters, digits and '_' after ':'");
    EXPECT("return select(2, native.pattern('/:a/:a'))", "parameter name used twice");
    EXPECT("return native.pattern('/x').match(1, '/x')",
           "error: bad argument #1 to '?' (freshet.pattern expected, got number)");
    EXPECT("return native.decode_path('/a%2Fb+c')", "/a/b+c");
    EXPECT("return select(2, native.decode_path('/a%4'))", "invalid percent-encoding in the path");
    EXPECT("local q = native.decode_query('user=ann+s&x&user=bob&=v'); "
           "return q.user .. '|' .. q.x .. '|' .. q['']",
           "ann s||v");
    EXPECT("return select(2, native.decode_query('a=%zz'))",
           "invalid percent-encoding in the query string");
    EXPECT("return native.decode_query(nil)",
           "error: freshet.native.decode_query: bad argument #1 'query' (string expected, got "
           "nil)");
    lua_close(L);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_registered_for_every_vm);
    FR_RUN(test_event_check);
    FR_RUN(test_timer_and_log_checks);
    FR_RUN(test_shared_on_a_lua_clock);
    FR_RUN(test_patterns_and_decoding);
    return FR_TEST_END();
}
