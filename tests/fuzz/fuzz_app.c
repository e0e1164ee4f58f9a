/* Fuzz target: the app-file loader (fr_vm_new: lua/freshet/app.lua's checks, src/vm.c reading
 * the settings and routes, loading route scripts and taking their hooks).
 *
 * The contract: whatever an app file and its route scripts hold, fr_vm_new either returns a VM
 * whose routes are usable, or NULL with at least one error string, each one non-empty and
 * naming where the problem is; it never crashes, never leaks, never prints "(null)". This is
 * what `freshet --check` and SIGHUP rely on.
 *
 * Input: [mode][rest]. The files are written to a temp dir and fr_vm_new(app, NULL) runs, as
 * `freshet --check` does.
 *   mode 0-1  structured: the rest drives a generator of Lua source: settings with values of
 *             every type, routes of every kind with patterns and targets of every type, and
 *             statements that rewrite app.config / app.routes after freshet.app has checked
 *             them (an app file is Lua, so it can); three route scripts with hooks of every
 *             shape, load-time errors and syntax errors.
 *   mode 2    the rest is the app file itself (after a line that requires freshet), with the
 *             route scripts fixed.
 *   mode 3    the rest is the text of two route scripts (split at "@@ROUTE@@") of a fixed app.
 * Raw text runs only when it cannot reach the OS or allocate without bound (see raw_allowed):
 * the point is the loader, not the Lua interpreter. */
#include <ctype.h>
#include <dlfcn.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "fuzz_common.h"
#include "base/log.h"
#include "lua/vm.h"

static char root[256];


/* ---- Lua panics ---------------------------------------------------------------------------- */

/* A Lua error raised outside any protected call makes LuaJIT call the state's panic function
 * and then exit the process: for the server, a SIGHUP with such an app file would kill it. The
 * harness interposes luaL_newstate (the executable's definition wins over the shared library's
 * for fr_vm_new's call) to install a panic function that jumps back here, so the finding is
 * reported with its message and the input is saved (finding F2 in docs/RELIABILITY.md was
 * found this way). The server may install a panic function of its own; it is replaced here
 * only for the VM under test. */
static jmp_buf panic_jmp;
static int panic_armed;
static char panic_msg[512];
static lua_State *panic_L;

static int on_panic(lua_State *L) {
    const char *m = lua_tostring(L, -1);
    snprintf(panic_msg, sizeof panic_msg, "%s", m ? m : "(no message)");
    if (panic_armed)
        longjmp(panic_jmp, 1);
    return 0;
}

lua_State *luaL_newstate(void) {
    static lua_State *(*real)(void);
    if (!real)
        real = (lua_State * (*)(void)) dlsym(RTLD_NEXT, "luaL_newstate");
    if (!real)
        abort();
    lua_State *L = real();
    if (L)
        lua_atpanic(L, on_panic);
    panic_L = L;
    return L;
}


static void write_file(const char *rel, const char *text, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(text, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

static void rm_tree(void) {
    char cmd[600];
    if (root[0] && strncmp(root, "/tmp/fr-fuzz-app-", 17) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz_app: could not remove %s\n", root);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(root, sizeof root, "/tmp/fr-fuzz-app-XXXXXX");
    if (!mkdtemp(root))
        abort();
    atexit(rm_tree);
    char dir[512];
    const char *dirs[] = {"routes", "routes/dir.lua", "public", "public/sub"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", root, dirs[i]);
        mkdir(dir, 0700);
    }
    if (!getenv("FR_FUZZ_LOG"))
        fr_log_set_level((fr_log_level_t)(FR_LOG_ERROR + 1));
    return 0;
}

/* ---- generating Lua ---------------------------------------------------------------------- */

typedef struct {
    fz_reader_t *r;
    fz_buf_t *out;
} gen_t;

static void put(gen_t *g, const char *s) {
    fz_put(g->out, s, strlen(s));
}

static const char *pick(gen_t *g, const char *const *list, size_t n) {
    return list[fz_u8(g->r) % n];
}
#define PICK(g, list) pick((g), (list), sizeof(list) / sizeof((list)[0]))

/* A Lua string literal of arbitrary bytes: printable ASCII as is, the rest as \ddd. */
static void put_quoted(gen_t *g, const uint8_t *p, size_t n) {
    fz_putc(g->out, '"');
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            fz_putc(g->out, (char)c);
        } else {
            char esc[8];
            snprintf(esc, sizeof esc, "\\%03u", c);
            put(g, esc);
        }
    }
    fz_putc(g->out, '"');
}

static const char *const words[] = {
    "memory", "redis://127.0.0.1:1", "unix:///nonexistent", "redis://", "127.0.0.1:0",
    "[::1]:8080", "host:port", "0.0.0.0:99999", ":80", "json", "raw", "reset", "416", "drop",
    "conflate", "disconnect", "text", "debug", "warn", "*", "/", "/a/:b", "/:x/:x", "/a//b",
    "/:", "/:1", "routes/r1.lua", "routes/r2.lua", "routes/r3.lua", "routes/none.lua",
    "routes/dir.lua", "public", "public/sub", "nowhere", "/tmp", "app.lua", "", "stream",
    "publish", "static", "freshet.app", "http://a.example", "%s%s%n", "\\0"};

static const char *const setting_keys[] = {
    "listen", "heartbeat", "retry", "budget", "jit", "replay", "broker", "tiers", "cors",
    "timeouts", "poll_timeout", "drain", "log", "limits", "bogus", "events", "seconds", "rate",
    "burst", "queue", "bytes", "lag", "headers", "idle", "level", "format", "body", "streams_at"};

static const char *const numbers[] = {
    "0", "-1", "1", "0.5", "1e308", "-1e308", "1/0", "-1/0", "0/0", "2^31", "2^31-1", "2^32",
    "2^53", "2^63", "2^64", "1e-9", "1000", "999", "1024", "65536", "-0.0", "3.5", "1e15"};

static void gen_value(gen_t *g, int depth);

static void gen_table(gen_t *g, int depth) {
    int n = fz_u8(g->r) % 5;
    put(g, "{");
    for (int i = 0; i < n && fz_left(g->r); i++) {
        switch (fz_u8(g->r) % 4) {
        case 0: /* a setting name */
            put(g, PICK(g, setting_keys));
            put(g, " = ");
            break;
        case 1: /* a list item */
            break;
        case 2: {
            put(g, "[");
            gen_value(g, depth + 1);
            put(g, "] = ");
            break;
        }
        default: {
            size_t got;
            const uint8_t *p = fz_take(g->r, fz_u8(g->r) % 12, &got);
            put(g, "[");
            put_quoted(g, p, got);
            put(g, "] = ");
        }
        }
        gen_value(g, depth + 1);
        put(g, ", ");
    }
    put(g, "}");
}

/* The shape of a route record as freshet.app stores it, with fields of any type. */
static void gen_route_record(gen_t *g, int depth) {
    static const char *const kinds[] = {"\"stream\"", "\"publish\"", "\"static\"", "\"other\"",
                                        "nil", "1", "{}"};
    put(g, "{ kind = ");
    put(g, PICK(g, kinds));
    const char *fields[] = {", pattern = ", ", target = ", ", source = ", ", line = "};
    for (size_t i = 0; i < 4; i++) {
        if (fz_u8(g->r) % 4 == 0)
            continue;
        put(g, fields[i]);
        gen_value(g, depth + 1);
    }
    put(g, " }");
}

static void gen_value(gen_t *g, int depth) {
    if (depth > 4 || !fz_left(g->r)) {
        put(g, "nil");
        return;
    }
    switch (fz_u8(g->r) % 14) {
    case 0: put(g, "nil"); break;
    case 1: put(g, "true"); break;
    case 2: put(g, "false"); break;
    case 3: {
        char num[32];
        int v = (int16_t)(fz_u8(g->r) << 8 | fz_u8(g->r));
        snprintf(num, sizeof num, "%d", v);
        put(g, num);
        break;
    }
    case 4: put(g, "("); put(g, PICK(g, numbers)); put(g, ")"); break;
    case 5: {
        size_t got;
        const uint8_t *p = fz_take(g->r, fz_u8(g->r) % 40, &got);
        put_quoted(g, p, got);
        break;
    }
    case 6:
    case 7: {
        const char *w = PICK(g, words);
        put_quoted(g, (const uint8_t *)w, strlen(w));
        break;
    }
    case 8:
    case 9: gen_table(g, depth); break;
    case 10:
        put(g, "function(...) return ");
        gen_value(g, depth + 1);
        put(g, " end");
        break;
    case 11:
        put(g, "function() error(");
        gen_value(g, depth + 1);
        put(g, ") end");
        break;
    case 12: {
        static const char *const refs[] = {"app", "freshet", "freshet.app", "app.routes",
                                           "app.config", "{}", "print", "coroutine.create(print)",
                                           "newproxy(true)"};
        put(g, PICK(g, refs));
        break;
    }
    default: gen_route_record(g, depth); break;
    }
}

static void gen_settings(gen_t *g) {
    int n = fz_u8(g->r) % 6;
    put(g, "{\n");
    for (int i = 0; i < n && fz_left(g->r); i++) {
        const char *key = PICK(g, setting_keys);
        put(g, "  ");
        put(g, key);
        put(g, " = ");
        gen_value(g, 1);
        put(g, ",\n");
    }
    put(g, "}");
}

/* One statement of the app file after freshet.app{...}; some wrapped in pcall so the ones after
 * them still run. */
static void gen_statement(gen_t *g) {
    int protect = fz_u8(g->r) % 3 == 0;
    if (protect)
        put(g, "pcall(function() ");
    switch (fz_u8(g->r) % 9) {
    case 0:
    case 1:
    case 2: {
        static const char *const methods[] = {"stream", "publish", "static", "stream",
                                               "publish", "bogus"};
        static const char *const patterns[] = {"\"/s/:topics\"", "\"/p/:topic\"", "\"/files\"",
                                               "\"/files/\"", "\"/\"", "\"/a/:b/:c\""};
        static const char *const targets[] = {"\"routes/r1.lua\"", "\"routes/r2.lua\"",
                                              "\"routes/r3.lua\"", "\"public\"", "\"public/sub\""};
        put(g, "app:");
        put(g, PICK(g, methods));
        put(g, "(");
        if (fz_u8(g->r) % 2)
            put(g, PICK(g, patterns));
        else
            gen_value(g, 2);
        put(g, ", ");
        if (fz_u8(g->r) % 2)
            put(g, PICK(g, targets));
        else
            gen_value(g, 2);
        put(g, ")");
        break;
    }
    case 3:
        put(g, "app.config.");
        put(g, PICK(g, setting_keys));
        put(g, " = ");
        gen_value(g, 1);
        break;
    case 4: {
        char idx[32];
        snprintf(idx, sizeof idx, "app.routes[%d] = ", fz_u8(g->r) % 4);
        put(g, idx);
        if (fz_u8(g->r) % 2)
            gen_route_record(g, 1);
        else
            gen_value(g, 1);
        break;
    }
    case 5: {
        static const char *const fields[] = {"kind", "pattern", "target", "source", "line"};
        char idx[64];
        snprintf(idx, sizeof idx, "app.routes[%d].%s = ", fz_u8(g->r) % 3 + 1, PICK(g, fields));
        put(g, idx);
        gen_value(g, 1);
        break;
    }
    case 6:
        put(g, "app.config = ");
        gen_value(g, 1);
        break;
    case 7:
        put(g, fz_u8(g->r) % 2 ? "app.routes = " : "app.kind = ");
        gen_value(g, 1);
        break;
    default:
        put(g, "local _ = ");
        gen_value(g, 1);
        break;
    }
    if (protect)
        put(g, " end)");
    put(g, "\n");
}

static void gen_app(fz_reader_t *r, fz_buf_t *out) {
    gen_t g = {r, out};
    put(&g, "local freshet = require \"freshet\"\n");
    put(&g, "local app = freshet.app ");
    if (fz_u8(r) % 8)
        gen_settings(&g);
    else {
        put(&g, "(");
        gen_value(&g, 1);
        put(&g, ")");
    }
    put(&g, "\n");
    int n = fz_u8(r) % 8;
    for (int i = 0; i < n && fz_left(r); i++)
        gen_statement(&g);
    if (fz_u8(r) % 8)
        put(&g, "return app\n");
    else {
        put(&g, "return ");
        gen_value(&g, 1);
        put(&g, "\n");
    }
}

static void gen_route(fz_reader_t *r, fz_buf_t *out) {
    gen_t g = {r, out};
    static const char *const hooks[] = {"auth", "topics", "tier", "filter", "on_gap", "on_slow",
                                        "message", "publish", "body", "bogus", "topics",
                                        "publish"};
    static const char *const broken[] = {"local = 1\n", "return return\n", "end\n", "(\n",
                                         "x = \"unterminated\n", "--[[ open comment\n",
                                         "goto nowhere\n", "local t = {\n"};
    put(&g, "local r = {}\n");
    int n = fz_u8(r) % 6;
    for (int i = 0; i < n && fz_left(r); i++) {
        put(&g, "r.");
        put(&g, PICK(&g, hooks));
        put(&g, " = ");
        if (fz_u8(r) % 2)
            put(&g, "function(...) return {\"t\"} end");
        else
            gen_value(&g, 1);
        put(&g, "\n");
    }
    switch (fz_u8(r) % 8) {
    case 0:
        put(&g, "error(");
        gen_value(&g, 1);
        put(&g, ")\n");
        break;
    case 1:
        put(&g, PICK(&g, broken));
        break;
    case 2:
        put(&g, "return ");
        gen_value(&g, 1);
        put(&g, "\n");
        return;
    default:
        break;
    }
    put(&g, "return r\n");
}

/* ---- raw text ----------------------------------------------------------------------------- */

/* Raw Lua runs only if it cannot reach the OS, the shared dictionary or the debug library, and
 * cannot build large strings: identifiers that would reach them are refused (by name, anywhere
 * in the text, strings included), and so are '[' (computed keys could name them anyway) and
 * "..". Loops are bounded by the instruction budget, so "budget" is refused too. */
static int raw_allowed(const uint8_t *p, size_t n) {
    static const char *const banned[] = {
        "os", "io", "require", "package", "debug", "load", "loadstring", "loadfile", "dofile",
        "getfenv", "setfenv", "rawset", "rawget", "_G", "shared", "string", "jit", "ffi",
        "collectgarbage", "gcinfo", "module", "newproxy", "getmetatable", "setmetatable", "print",
        "rep", "format", "gsub", "concat", "char", "budget"};
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '[' || p[i] == '\0' || (p[i] == '.' && i + 1 < n && p[i + 1] == '.'))
            return 0;
        if (!(isalpha(p[i]) || p[i] == '_') || (i > 0 && (isalnum(p[i - 1]) || p[i - 1] == '_')))
            continue;
        size_t k = i;
        while (k < n && (isalnum(p[k]) || p[k] == '_'))
            k++;
        for (size_t b = 0; b < sizeof banned / sizeof banned[0]; b++) {
            if (strlen(banned[b]) == k - i && strncasecmp((const char *)p + i, banned[b], k - i) == 0)
                return 0;
        }
    }
    return 1;
}

static const char fixed_r1[] = "local r = {}\n"
                               "function r.topics(req) return { req.params.topics } end\n"
                               "function r.auth(req) return {} end\n"
                               "return r\n";
static const char fixed_r2[] = "return { publish = function(req, body) return nil end,\n"
                               "         body = \"json\" }\n";
static const char fixed_r3[] = "return { topics = 1 }\n";
static const char fixed_app[] = "local freshet = require \"freshet\"\n"
                                "local app = freshet.app { budget = 100000 }\n"
                                "app:stream(\"/s/:topics\", \"routes/raw1.lua\")\n"
                                "app:publish(\"/p/:topic\", \"routes/raw2.lua\")\n"
                                "return app\n";

/* ---- checking the result ------------------------------------------------------------------ */

/* Set when the input itself spells "(null)", so an error quoting it is not a NULL printed. */
static int input_says_null;

static void check(fr_vm_t *vm, const fr_errors_t *errs) {
    if (!vm) {
        fz_expect(errs->n > 0, "fr_vm_new failed without an error");
        for (size_t i = 0; i < errs->n; i++) {
            const char *e = errs->items[i];
            fz_expect(e && *e, "an empty error string");
            if (strstr(e, "(null)") && !input_says_null) {
                fz_dump("error", e, strlen(e));
                fz_fail("an error message printed a NULL string");
            }
        }
        return;
    }
    fz_expect(errs->n == 0, "fr_vm_new succeeded with %zu errors", errs->n);
    for (size_t i = 0; i < vm->nroutes; i++) {
        const fr_route_t *r = &vm->routes[i];
        fz_expect(r->script && r->path, "route %zu without script or path", i);
        switch (r->kind) {
        case FR_ROUTE_STREAM:
            fz_expect(r->hooks[FR_HOOK_TOPICS] != LUA_NOREF, "a stream route without topics");
            fz_expect(r->pattern.source && r->pattern.source[0] == '/', "stream route pattern");
            break;
        case FR_ROUTE_PUBLISH:
            fz_expect(r->hooks[FR_HOOK_PUBLISH] != LUA_NOREF, "a publish route without publish");
            fz_expect(r->pattern.source && r->pattern.source[0] == '/', "publish route pattern");
            break;
        case FR_ROUTE_STATIC: {
            struct stat st;
            fz_expect(r->prefix && stat(r->path, &st) == 0 && S_ISDIR(st.st_mode),
                      "a static route whose directory is not one");
            break;
        }
        default:
            fz_fail("route %zu of kind %d", i, (int)r->kind);
        }
    }
    fz_expect(vm->config.port >= 0 && vm->config.port <= 65535, "port %d", vm->config.port);
    fz_expect(vm->config.broker != NULL, "no broker setting");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader_t r = {data, size, 0};
    int mode = fz_u8(&r) % 4;
    fz_buf_t app = {0}, routes[3] = {{0}, {0}, {0}};
    const char *route_names[3] = {"routes/r1.lua", "routes/r2.lua", "routes/r3.lua"};

    if (mode <= 1) {
        gen_app(&r, &app);
        for (int i = 0; i < 3; i++)
            gen_route(&r, &routes[i]);
    } else if (mode == 2) {
        size_t n = fz_left(&r), got;
        const uint8_t *p = fz_take(&r, n, &got);
        if (!raw_allowed(p, got))
            return 0;
        /* On the first line, so the raw text keeps its own line numbers. */
        static const char prefix[] = "local freshet = require \"freshet\"; ";
        fz_put(&app, prefix, sizeof prefix - 1);
        fz_put(&app, p, got);
        fz_put(&routes[0], fixed_r1, sizeof fixed_r1 - 1);
        fz_put(&routes[1], fixed_r2, sizeof fixed_r2 - 1);
        fz_put(&routes[2], fixed_r3, sizeof fixed_r3 - 1);
    } else {
        size_t n = fz_left(&r), got;
        const uint8_t *p = fz_take(&r, n, &got);
        if (!raw_allowed(p, got))
            return 0;
        const uint8_t *sep = NULL;
        for (size_t i = 0; i + 9 <= got; i++) {
            if (memcmp(p + i, "@@ROUTE@@", 9) == 0) {
                sep = p + i;
                break;
            }
        }
        size_t a = sep ? (size_t)(sep - p) : got;
        fz_put(&app, fixed_app, sizeof fixed_app - 1);
        fz_put(&routes[0], p, a);
        if (sep)
            fz_put(&routes[1], sep + 9, got - a - 9);
        route_names[0] = "routes/raw1.lua";
        route_names[1] = "routes/raw2.lua";
    }

    write_file("app.lua", app.p ? app.p : "", app.len);
    for (int i = 0; i < 3; i++)
        write_file(route_names[i], routes[i].p ? routes[i].p : "", routes[i].len);
    if (getenv("FR_FUZZ_SHOW")) {
        fprintf(stderr, "---- app.lua\n%s", app.p ? app.p : "");
        for (int i = 0; i < 3; i++)
            fprintf(stderr, "---- %s\n%s", route_names[i], routes[i].p ? routes[i].p : "");
    }

    input_says_null = memmem(data, size, "(null)", 6) != NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/app.lua", root);
    fr_errors_t errs = {0};
    panic_L = NULL;
    panic_armed = 1;
    if (setjmp(panic_jmp)) {
        panic_armed = 0;
        fz_fail("a Lua error outside a protected call (the process would exit): %s", panic_msg);
    }
    fr_vm_t *vm = fr_vm_new(path, NULL, &errs);
    panic_armed = 0;
    check(vm, &errs);
    if (getenv("FR_FUZZ_SHOW"))
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "error: %s\n", errs.items[i]);
    if (vm)
        fr_vm_release(vm);
    fr_errors_free(&errs);
    fz_buf_free(&app);
    for (int i = 0; i < 3; i++)
        fz_buf_free(&routes[i]);
    return 0;
}
