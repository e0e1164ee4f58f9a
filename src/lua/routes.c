/* The app's routes: the route table the app file built (app:stream, app:publish, app:http,
 * app:static),
 * and the route scripts it names. Each script is run once, when the VM is built; what it
 * returns is checked field by field (unknown names with a suggestion, hooks of the wrong type,
 * bad policy strings, missing hooks) and its hooks are kept as registry references. Problems
 * are reported as "file:line: message", in the order of the lines they are on. */
#include "lua/vm_build.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/buf.h"
#include "codec/http_date.h"
#include "lua/script_text.h"
#include "base/log.h"
#include "base/util.h"

char *fr_vm_resolve(const char *dir, const char *rel) {
    /* An app file given as "app.lua" has the directory "."; its scripts are then named as the
     * app file names them ("routes/room.lua:3: …"), which reads better than "./routes/…". */
    if (rel[0] == '/' || strcmp(dir, ".") == 0)
        return fr_strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = fr_malloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* ---- the fields a route script may hold -------------------------------------------------- */

/* The fields each kind of route script may hold, and for each hook the arguments it gets (the
 * messages about a hook of the wrong type show the signature to write). */
static const char *const stream_keys[] = {"auth",    "topics",  "tier",       "filter", "on_gap",
                                          "on_slow", "message", "deprecated", NULL};
static const char *const publish_keys[] = {"auth", "publish", "tier", "body", "deprecated", NULL};
static const char *const http_keys[] = {"auth", "handle", "tier", "body", "deprecated", NULL};
static const char *const hook_args[FR_HOOK_COUNT] = {
    "req", "req, who[, change]", "req, who", "event, who", "req, body, who", "conn, msg, who",
    "req, body, who"};

static const char *kind_name(fr_route_kind_t k) {
    return k == FR_ROUTE_STREAM ? "stream" : k == FR_ROUTE_PUBLISH ? "publish" : "http";
}

static const char *const *kind_keys(fr_route_kind_t k) {
    return k == FR_ROUTE_STREAM ? stream_keys : k == FR_ROUTE_PUBLISH ? publish_keys : http_keys;
}

static int key_allowed(const char *const *keys, const char *k) {
    for (; *keys; keys++) {
        if (strcmp(*keys, k) == 0)
            return 1;
    }
    return 0;
}

/* Levenshtein distance, capped: anything above `cap` is reported as cap + 1. Field names are
 * short, so the two-row table fits on the stack; longer names are never "close". */
static size_t edit_distance(const char *a, const char *b, size_t cap) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32 || (la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    size_t prev[33], cur[33];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb] > cap ? cap + 1 : prev[lb];
}

/* The allowed name nearest to k within an edit distance of 2, or NULL. */
static const char *suggest(const char *const *keys, const char *k) {
    const char *best = NULL;
    size_t best_d = 3;
    for (; *keys; keys++) {
        size_t d = edit_distance(k, *keys, 2);
        if (d < best_d) {
            best = *keys;
            best_d = d;
        }
    }
    return best;
}

/* Checks one field of a script's table that the route kind does not know. */
static void report_unknown(const fr_route_t *r, const char *const *keys, const char *k,
                           int is_function, int line, fr_errors_t *errs) {
    const char *kind = kind_name(r->kind);
    const char *what = is_function ? "hook" : "field";
    const char *near = suggest(keys, k);
    static const fr_route_kind_t kinds[] = {FR_ROUTE_STREAM, FR_ROUTE_PUBLISH, FR_ROUTE_HTTP};
    const char *belongs = NULL;
    for (size_t i = 0; i < 3 && !belongs; i++) {
        if (kinds[i] != r->kind && key_allowed(kind_keys(kinds[i]), k))
            belongs = kind_name(kinds[i]);
    }
    if (belongs)
        fr_errors_add(errs,
                      "%s:%d: unknown %s '%s' in a %s route script (it belongs in a %s "
                      "route script)",
                      r->path, line, what, k, kind, belongs);
    else if (near)
        fr_errors_add(errs, "%s:%d: unknown %s '%s' (did you mean '%s'?)", r->path, line, what, k,
                      near);
    else
        fr_errors_add(errs,
                      "%s:%d: unknown %s '%s' in a %s route script (a %s route script "
                      "may have: %s)",
                      r->path, line, what, k, kind, kind,
                      r->kind == FR_ROUTE_STREAM
                          ? "auth, topics, tier, filter, message, on_gap, on_slow, deprecated"
                      : r->kind == FR_ROUTE_PUBLISH ? "auth, publish, tier, body, deprecated"
                                                    : "auth, handle, tier, body, deprecated");
}

/* ---- the environment a script loads in --------------------------------------------------- */

/* A global a route script assigned while it loaded. */
typedef struct {
    char *name; /* owned */
    int line;
} global_set_t;

/* __newindex of the environment a route script loads in: notes the name and the line of the
 * first assignment to each global (upvalue 1 is the record table), then stores into the real
 * globals table, so the script behaves exactly as without the check. */
static int on_global_set(lua_State *L) {
    if (lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        if (lua_isnil(L, -1)) {
            lua_Debug ar;
            int line = 0;
            if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar))
                line = ar.currentline;
            lua_pushvalue(L, 2);
            lua_pushinteger(L, line > 0 ? line : 1);
            lua_rawset(L, lua_upvalueindex(1));
        }
        lua_pop(L, 1);
    }
    lua_settop(L, 3);
    lua_settable(L, LUA_GLOBALSINDEX);
    return 0;
}

/* Pushes the proxy environment {} with __index = _G and __newindex = on_global_set, and the
 * record table it fills; the proxy is below the record. */
static void push_load_env(lua_State *L) {
    lua_newtable(L); /* proxy */
    lua_newtable(L); /* its metatable */
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_setfield(L, -2, "__index");
    lua_newtable(L); /* record: name -> line */
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, on_global_set, 1);
    lua_setfield(L, -3, "__newindex");
    lua_insert(L, -2); /* proxy, record, metatable */
    lua_setmetatable(L, -3);
}

/* Functions created while the script loaded (its hooks and the helpers they call through
 * upvalues) inherited the proxy as their environment. Points them back at the real globals,
 * so hook calls pay nothing for the check. Functions that cannot be reached from the hooks
 * keep the proxy, which by then passes every access straight through. */
static void restore_env(lua_State *L, int fn, int proxy, int seen, int depth) {
    if (depth > 16 || !lua_isfunction(L, fn) || lua_iscfunction(L, fn))
        return;
    lua_pushvalue(L, fn);
    lua_rawget(L, seen);
    int visited = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (visited)
        return;
    lua_pushvalue(L, fn);
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);
    lua_getfenv(L, fn);
    if (lua_rawequal(L, -1, proxy)) {
        lua_pushvalue(L, LUA_GLOBALSINDEX);
        lua_setfenv(L, fn);
    }
    lua_pop(L, 1);
    for (int i = 1; lua_getupvalue(L, fn, i); i++) {
        restore_env(L, lua_gettop(L), proxy, seen, depth + 1);
        lua_pop(L, 1);
    }
}

static int cmp_global(const void *a, const void *b) {
    const global_set_t *x = a, *y = b;
    return x->line != y->line ? x->line - y->line : strcmp(x->name, y->name);
}

/* Reports the globals recorded in the table at `record`, in line order: errors under
 * --check (no host), warnings in a running server (the script works, but a global shared by
 * every script of the VM is rarely what was meant). Returns -1 when they are errors. */
static int report_globals(fr_vm_t *vm, const fr_route_t *r, int record, fr_errors_t *errs) {
    lua_State *L = vm->L;
    global_set_t *list = NULL;
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, record)) {
        list = fr_realloc(list, (n + 1) * sizeof *list);
        list[n].name = fr_strdup(lua_tostring(L, -2));
        list[n++].line = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    if (n > 1)
        qsort(list, n, sizeof *list, cmp_global);
    for (size_t i = 0; i < n; i++) {
        if (vm->host)
            fr_warn("%s:%d: global '%s' assigned (use local)", r->path, list[i].line, list[i].name);
        else
            fr_errors_add(errs, "%s:%d: global '%s' assigned (use local)", r->path, list[i].line,
                          list[i].name);
        free(list[i].name);
    }
    free(list);
    return n > 0 && !vm->host ? -1 : 0;
}

/* ---- checking what a script returned ------------------------------------------------------ */

/* What the checks of one script share. */
typedef struct {
    fr_vm_t *vm;
    fr_route_t *r;
    fr_errors_t *errs;
    const char *const *keys; /* the fields a script of this kind may hold */
    int t;                   /* stack index of the table the script returned */
    int proxy;               /* stack index of the environment it loaded in */
    char *src;               /* owned: the source text, read once if a message needs a line */
    int src_read;
    int ok;                  /* -1 once a problem was reported */
} check_t;

/* fr_script_text_line on the script's source, which is read (with its comments blanked) the
 * first time a message needs a line. */
static int check_line(check_t *c, const char *name) {
    if (!c->src_read) {
        c->src_read = 1;
        c->src = fr_script_text_read(c->r->path);
    }
    return fr_script_text_line(c->src, name);
}

/* Runs the script. Its top level runs in a proxy environment that notes the globals it assigns
 * (see on_global_set); they are reported here. Leaves the table the script returned at c->t and
 * the proxy above it. Returns -1, with the stack as it found it, when the script does not
 * compile, raises an error or returns something else than a table. */
static int run_script(check_t *c) {
    fr_vm_t *vm = c->vm;
    fr_route_t *r = c->r;
    lua_State *L = vm->L;
    if (luaL_loadfile(L, r->path) != 0) {
        fr_errors_add(c->errs, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    int top = lua_gettop(L) - 1;
    push_load_env(L); /* chunk, proxy, record */
    int proxy = top + 2, record = top + 3;
    lua_pushvalue(L, proxy);
    lua_setfenv(L, top + 1);
    lua_pushvalue(L, top + 1);
    if (fr_vm_call(vm, r, "load", 0, 1) != 0) {
        fr_errors_add(c->errs, "%s", vm->last_error);
        lua_settop(L, top);
        return -1;
    }
    /* From here on a global assignment through the proxy lands in _G unrecorded. */
    lua_getmetatable(L, proxy);
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_setfield(L, -2, "__newindex");
    lua_pop(L, 1);
    c->ok = report_globals(vm, r, record, c->errs);
    lua_replace(L, top + 1); /* the returned table takes the chunk's slot */
    lua_settop(L, top + 2);  /* result, proxy */
    c->t = top + 1;
    c->proxy = proxy;
    if (!lua_istable(L, c->t)) {
        fr_errors_add(c->errs, "%s:1: a route script must return a table of hooks, got %s",
                      r->path, luaL_typename(L, c->t));
        lua_settop(L, top);
        return -1;
    }
    return 0;
}

/* Every field of the table must be one its kind of route knows. Functions found on the way are
 * pointed back at the real globals (restore_env). */
static void check_names(check_t *c) {
    lua_State *L = c->vm->L;
    lua_newtable(L); /* functions already pointed back at _G */
    int seen = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, c->t)) {
        if (lua_isfunction(L, -1))
            restore_env(L, lua_gettop(L), c->proxy, seen, 0);
        int is_string = lua_type(L, -2) == LUA_TSTRING;
        const char *k = is_string ? lua_tostring(L, -2) : NULL;
        if (!k) {
            fr_errors_add(c->errs,
                          "%s:1: a route script's table may only have named fields, got a "
                          "%s key",
                          c->r->path, luaL_typename(L, -2));
            c->ok = -1;
        } else if (!key_allowed(c->keys, k)) {
            report_unknown(c->r, c->keys, k, lua_isfunction(L, -1), check_line(c, k), c->errs);
            c->ok = -1;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* seen */
}

/* Takes a registry reference to each hook the script defines. */
static void take_hooks(check_t *c) {
    lua_State *L = c->vm->L;
    fr_route_t *r = c->r;
    for (int h = 0; h < FR_HOOK_COUNT; h++) {
        if (!key_allowed(c->keys, fr_hook_names[h]))
            continue; /* reported by check_names if present */
        lua_getfield(L, c->t, fr_hook_names[h]);
        if (lua_isfunction(L, -1)) {
            r->hooks[h] = luaL_ref(L, LUA_REGISTRYINDEX);
            continue;
        }
        if (!lua_isnil(L, -1)) {
            fr_errors_add(c->errs, "%s:%d: hook '%s' must be a function(%s), got %s", r->path,
                          check_line(c, fr_hook_names[h]), fr_hook_names[h], hook_args[h],
                          luaL_typename(L, -1));
            c->ok = -1;
        }
        lua_pop(L, 1);
    }
}

/* on_gap = "reset" | "416" (stream routes). */
static void read_on_gap(check_t *c) {
    lua_State *L = c->vm->L;
    fr_route_t *r = c->r;
    lua_getfield(L, c->t, "on_gap");
    if (!lua_isnil(L, -1) && key_allowed(c->keys, "on_gap")) {
        const char *g = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (g && strcmp(g, "reset") == 0)
            r->on_gap_reset = 1;
        else if (!g || strcmp(g, "416") != 0) {
            fr_errors_add(c->errs, "%s:%d: on_gap must be \"reset\" or \"416\", got %s%s%s",
                          r->path, check_line(c, "on_gap"), g ? "\"" : "",
                          g ? g : luaL_typename(L, -1), g ? "\"" : "");
            c->ok = -1;
        }
    }
    lua_pop(L, 1);
}

/* on_slow = a policy name, or a function(topic, who) returning one (stream routes). */
static void read_on_slow(check_t *c) {
    lua_State *L = c->vm->L;
    fr_route_t *r = c->r;
    lua_getfield(L, c->t, "on_slow");
    if (lua_isfunction(L, -1) && key_allowed(c->keys, "on_slow")) {
        r->slow_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pushnil(L);
    } else if (!lua_isnil(L, -1) && key_allowed(c->keys, "on_slow")) {
        fr_slow_t slow;
        if (lua_type(L, -1) != LUA_TSTRING || fr_slow_parse(lua_tostring(L, -1), &slow) < 0) {
            fr_errors_add(
                c->errs,
                "%s:%d: on_slow must be \"drop\", \"conflate\", \"disconnect\" "
                "or a function(topic, who) returning one of them, got %s%s%s",
                r->path, check_line(c, "on_slow"), lua_type(L, -1) == LUA_TSTRING ? "\"" : "",
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1),
                lua_type(L, -1) == LUA_TSTRING ? "\"" : "");
            c->ok = -1;
        } else {
            r->slow = (int)slow;
        }
    }
    lua_pop(L, 1);
}

/* body = "json" | "raw" (publish routes). */
static void read_body(check_t *c) {
    lua_State *L = c->vm->L;
    fr_route_t *r = c->r;
    lua_getfield(L, c->t, "body");
    if (!lua_isnil(L, -1) && key_allowed(c->keys, "body")) {
        const char *b = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (b && strcmp(b, "json") == 0)
            r->body_json = 1;
        else if (!b || strcmp(b, "raw") != 0) {
            fr_errors_add(c->errs, "%s:%d: body must be \"json\" or \"raw\", got %s%s%s", r->path,
                          check_line(c, "body"), b ? "\"" : "", b ? b : luaL_typename(L, -1),
                          b ? "\"" : "");
            c->ok = -1;
        }
    }
    lua_pop(L, 1);
}

/* One string field of `deprecated`: NULL when absent, else its value, or "" after reporting a
 * value that is not a string or holds bytes a header cannot. */
static const char *deprecated_field(check_t *c, const char *k) {
    lua_State *L = c->vm->L;
    lua_getfield(L, -1, k);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int bad = !lua_isnil(L, -1) && (!v || strpbrk(v, "\r\n<>") || !*v);
    if (bad) {
        fr_errors_add(c->errs, "%s:%d: deprecated.%s must be a non-empty string without CR, LF, "
                      "'<' or '>', got %s", c->r->path, check_line(c, "deprecated"), k,
                      v ? "an unusable string" : luaL_typename(L, -1));
        c->ok = -1;
    }
    lua_pop(L, 1);
    return bad ? "" : v;
}

/* A date field of `deprecated` (an IMF-fixdate): 0 and *t, 1 when absent, -1 when reported. */
static int deprecated_date(check_t *c, const char *k, int64_t *t) {
    const char *v = deprecated_field(c, k);
    if (!v)
        return 1;
    if (*v && fr_http_date_parse(v, t) == 0)
        return 0;
    if (*v) {
        fr_errors_add(c->errs, "%s:%d: deprecated.%s must be an HTTP-date such as \"Sun, 06 Nov "
                      "1994 08:49:37 GMT\", got \"%s\"", c->r->path, check_line(c, "deprecated"),
                      k, v);
        c->ok = -1;
    }
    return -1;
}

/* deprecated = {sunset = HTTP-date, link = URL, since = HTTP-date}: the header lines every
 * answer of the route carries (RFC 9745 Deprecation, RFC 8594 Sunset, Link rel=deprecation).
 * Without `since` the route counts as deprecated from the moment the script was loaded. */
static void read_deprecated(check_t *c) {
    lua_State *L = c->vm->L;
    fr_route_t *r = c->r;
    lua_getfield(L, c->t, "deprecated");
    if (lua_isnil(L, -1) || !key_allowed(c->keys, "deprecated")) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1)) {
        fr_errors_add(c->errs, "%s:%d: deprecated must be a table {sunset = HTTP-date, link = "
                      "URL, since = HTTP-date}, got %s", r->path, check_line(c, "deprecated"),
                      luaL_typename(L, -1));
        c->ok = -1;
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || (strcmp(k, "sunset") && strcmp(k, "link") && strcmp(k, "since"))) {
            fr_errors_add(c->errs, "%s:%d: deprecated: unknown key '%s' (sunset, link, since)",
                          r->path, check_line(c, "deprecated"), k ? k : "?");
            c->ok = -1;
        }
        lua_pop(L, 1);
    }
    int64_t since = (int64_t)time(NULL), sunset = 0;
    int has_since = deprecated_date(c, "since", &since);
    int has_sunset = deprecated_date(c, "sunset", &sunset);
    const char *link = deprecated_field(c, "link");
    lua_pop(L, 1);
    if (has_since < 0 || has_sunset < 0 || (link && !*link))
        return;
    fr_buf_t b = {0};
    fr_buf_printf(&b, "Deprecation: @%lld\r\n", (long long)since);
    if (has_sunset == 0) {
        char date[FR_HTTP_DATE_LEN + 1];
        fr_http_date_format(sunset, date);
        fr_buf_printf(&b, "Sunset: %s\r\n", date);
    }
    if (link)
        fr_buf_printf(&b, "Link: <%s>; rel=\"deprecation\"\r\n", link);
    size_t len;
    r->deprecation = fr_buf_take(&b, &len);
}

/* The hook each kind of route cannot do without. */
static void check_required_hooks(check_t *c) {
    fr_route_t *r = c->r;
    if (r->kind == FR_ROUTE_STREAM && r->hooks[FR_HOOK_TOPICS] == LUA_NOREF) {
        fr_errors_add(c->errs, "%s:1: a stream route needs a topics(req, who) hook", r->path);
        c->ok = -1;
    }
    if (r->kind == FR_ROUTE_PUBLISH && r->hooks[FR_HOOK_PUBLISH] == LUA_NOREF) {
        fr_errors_add(c->errs, "%s:1: a publish route needs a publish(req, body, who) hook",
                      r->path);
        c->ok = -1;
    }
    if (r->kind == FR_ROUTE_HTTP && r->hooks[FR_HOOK_HANDLE] == LUA_NOREF) {
        fr_errors_add(c->errs, "%s:1: an http route needs a handle(req, body, who) hook",
                      r->path);
        c->ok = -1;
    }
}

/* Runs the script and checks what it returned. */
static int vm_check_route(fr_vm_t *vm, fr_route_t *r, fr_errors_t *errs) {
    int top = lua_gettop(vm->L);
    check_t c = {.vm = vm,
                 .r = r,
                 .errs = errs,
                 .keys = kind_keys(r->kind)};
    if (run_script(&c) < 0)
        return -1;
    check_names(&c);
    take_hooks(&c);
    read_on_gap(&c);
    read_on_slow(&c);
    read_body(&c);
    read_deprecated(&c);
    check_required_hooks(&c);
    free(c.src);
    lua_settop(vm->L, top);
    return c.ok;
}

/* ---- loading a script ---------------------------------------------------------------------- */

/* The line number in "path:line: message". */
static int problem_line(const char *msg, size_t path_len) {
    return strlen(msg) > path_len ? atoi(msg + path_len + 1) : 0;
}

/* Moves one script's problems into errs, in line order (a stable sort: a handful of items). */
static void add_sorted(fr_errors_t *errs, fr_errors_t *mine, const char *path) {
    size_t plen = strlen(path);
    for (size_t i = 1; i < mine->n; i++) {
        char *item = mine->items[i];
        int line = problem_line(item, plen);
        size_t j = i;
        while (j > 0 && problem_line(mine->items[j - 1], plen) > line) {
            mine->items[j] = mine->items[j - 1];
            j--;
        }
        mine->items[j] = item;
    }
    for (size_t i = 0; i < mine->n; i++)
        fr_errors_add(errs, "%s", mine->items[i]);
    fr_errors_free(mine);
}

/* Loads one route script and takes references to its hooks; problems are reported in the
 * order of the lines they are on. */
static int vm_load_route(fr_vm_t *vm, fr_route_t *r, const char *where, fr_errors_t *errs) {
    r->path = fr_vm_resolve(vm->app_dir, r->script);
    fr_errors_t mine = {0};
    int rc = vm_check_route(vm, r, &mine);
    if (rc < 0 && mine.n == 0)
        fr_errors_add(errs, "%s: cannot load %s", where, r->path);
    /* A script that cannot be opened is named by the app file line that declared it. */
    if (mine.n == 1 && strncmp(mine.items[0], "cannot open", 11) == 0) {
        fr_errors_add(errs, "%s: %s", where, mine.items[0]);
        fr_errors_free(&mine);
    }
    add_sorted(errs, &mine, r->path);
    return rc;
}

/* ---- the route table ---------------------------------------------------------------------- */

/* A static route: its prefix without a trailing '/', and the real path of its directory. */
static int read_static(fr_vm_t *vm, fr_route_t *r, const char *pattern, const char *target,
                       const char *where, fr_errors_t *errs) {
    r->kind = FR_ROUTE_STATIC;
    /* app.lua checked the options: max_age a whole number >= 0, immutable a boolean. The
     * record is below the five fields read_route pushed. */
    lua_State *L = vm->L;
    lua_getfield(L, -6, "max_age");
    r->max_age = lua_isnumber(L, -1) ? (int64_t)lua_tonumber(L, -1) : -1;
    lua_getfield(L, -7, "immutable");
    r->immutable = lua_toboolean(L, -1);
    lua_pop(L, 2);
    size_t pl = strlen(pattern);
    while (pl > 0 && pattern[pl - 1] == '/')
        pl--;
    r->prefix = fr_strndup(pattern, pl);
    char *dir = fr_vm_resolve(vm->app_dir, target);
    char real[PATH_MAX];
    struct stat st;
    int rc = 0;
    if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fr_errors_add(errs, "%s: app:static: %s is not a directory", where, dir);
        rc = -1;
    } else {
        r->path = fr_strdup(real);
    }
    free(dir);
    return rc;
}

/* A stream or publish route: its pattern compiled, its script loaded. */
static int read_scripted(fr_vm_t *vm, fr_route_t *r, const char *kind, const char *pattern,
                         const char *where, fr_errors_t *errs) {
    r->kind = strcmp(kind, "stream") == 0    ? FR_ROUTE_STREAM
              : strcmp(kind, "publish") == 0 ? FR_ROUTE_PUBLISH
                                             : FR_ROUTE_HTTP;
    const char *perr;
    if (fr_pattern_compile(pattern, &r->pattern, &perr) < 0) {
        fr_errors_add(errs, "%s: app:%s: %s in \"%s\"", where, kind, perr, pattern);
        return -1;
    }
    return vm_load_route(vm, r, where, errs);
}

/* Reads route number i, the record on top of the stack (kind, pattern, target, and the source
 * and line of the app file call that declared it), into the next slot of vm->routes. Leaves
 * the stack as it found it. */
static int read_route(fr_vm_t *vm, size_t i, fr_errors_t *errs) {
    lua_State *L = vm->L;
    if (!lua_istable(L, -1)) {
        fr_errors_add(errs, "%s: route %zu was replaced by a %s", vm->app_path, i,
                      luaL_typename(L, -1));
        return -1;
    }
    lua_getfield(L, -1, "method");
    const char *method = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    char method_copy[16];
    snprintf(method_copy, sizeof method_copy, "%s", method);
    lua_pop(L, 1);
    lua_getfield(L, -1, "kind");
    lua_getfield(L, -2, "pattern");
    lua_getfield(L, -3, "target");
    lua_getfield(L, -4, "source");
    lua_getfield(L, -5, "line");
    const char *kind = lua_type(L, -5) == LUA_TSTRING ? lua_tostring(L, -5) : NULL;
    const char *pattern = lua_type(L, -4) == LUA_TSTRING ? lua_tostring(L, -4) : NULL;
    const char *target = lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : NULL;
    if (!kind || !pattern || !target ||
        (strcmp(kind, "stream") && strcmp(kind, "publish") && strcmp(kind, "static") &&
         strcmp(kind, "http"))) {
        fr_errors_add(errs, "%s: route %zu lacks its kind, pattern or script", vm->app_path, i);
        lua_pop(L, 5);
        return -1;
    }
    char where[512];
    snprintf(where, sizeof where, "%s:%d", lua_tostring(L, -2) ? lua_tostring(L, -2) : "?",
             (int)lua_tointeger(L, -1));
    fr_route_t *r = &vm->routes[vm->nroutes++];
    for (int h = 0; h < FR_HOOK_COUNT; h++)
        r->hooks[h] = LUA_NOREF;
    r->slow_ref = LUA_NOREF;
    r->max_age = -1;
    r->script = fr_strdup(target);
    memcpy(r->method, method_copy, sizeof r->method);
    int rc = strcmp(kind, "static") == 0 ? read_static(vm, r, pattern, target, where, errs)
                                         : read_scripted(vm, r, kind, pattern, where, errs);
    lua_pop(L, 5);
    return rc;
}

int fr_routes_read(fr_vm_t *vm, int app, fr_errors_t *errs) {
    lua_State *L = vm->L;
    lua_getfield(L, app, "routes");
    if (!lua_istable(L, -1)) {
        fr_errors_add(errs, "%s: the app's routes were replaced by a %s", vm->app_path,
                      luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    size_t n = lua_objlen(L, -1);
    vm->routes = fr_calloc(n ? n : 1, sizeof *vm->routes);
    int rc = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (int)i);
        if (read_route(vm, i, errs) < 0)
            rc = -1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

void fr_routes_free(fr_vm_t *vm) {
    for (size_t i = 0; i < vm->nroutes; i++) {
        fr_route_t *r = &vm->routes[i];
        fr_pattern_free(&r->pattern);
        free(r->prefix);
        free(r->deprecation);
        free(r->script);
        free(r->path);
    }
    free(vm->routes);
}
