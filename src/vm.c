#include "vm.h"

#include <lauxlib.h>
#include <libgen.h>
#include <limits.h>
#include <luajit.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embedded.h"
#include "lua_api.h"
#include "lua_modules.h"
#include "server.h"
#include "log.h"
#include "util.h"

const char *const fr_hook_names[FR_HOOK_COUNT] = {"auth",   "topics",  "tier",
                                                  "filter", "publish", "message"};

void fr_errors_add(fr_errors_t *e, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    e->items = fr_realloc(e->items, (e->n + 1) * sizeof *e->items);
    e->items[e->n++] = fr_strdup(buf);
}

void fr_errors_free(fr_errors_t *e) {
    for (size_t i = 0; i < e->n; i++)
        free(e->items[i]);
    free(e->items);
    e->items = NULL;
    e->n = 0;
}

/* ---- the call path -------------------------------------------------------------------- */

typedef struct {
    char src[256];
    int line;
} err_where_t;

static void on_budget(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "instruction budget exceeded (the hook ran too long)");
}

/* Message handler: remembers where the error happened (the innermost Lua frame) so the log line
 * can name file:line even when a C function raised it. */
static int on_error(lua_State *L) {
    err_where_t *w = lua_touserdata(L, lua_upvalueindex(1));
    lua_Debug ar;
    w->src[0] = '\0';
    w->line = 0;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0) {
            snprintf(w->src, sizeof w->src, "%s", ar.short_src);
            w->line = ar.currentline;
            break;
        }
    }
    if (!lua_isstring(L, 1)) {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        return 1;
    }
    lua_settop(L, 1);
    return 1;
}

/* Splits "file:line: rest" into its parts; returns rest, or NULL when msg has no location. */
static const char *split_location(const char *msg, char *src, size_t srclen, int *line) {
    for (const char *p = strchr(msg, ':'); p; p = strchr(p + 1, ':')) {
        const char *d = p + 1;
        int n = 0, digits = 0;
        while (*d >= '0' && *d <= '9' && digits < 9) {
            n = n * 10 + (*d++ - '0');
            digits++;
        }
        if (digits == 0 || d[0] != ':' || d[1] != ' ')
            continue;
        size_t len = (size_t)(p - msg);
        if (len == 0 || len >= srclen)
            return NULL;
        memcpy(src, msg, len);
        src[len] = '\0';
        *line = n;
        return d + 2;
    }
    return NULL;
}

int fr_vm_call(fr_vm_t *vm, const fr_route_t *route, const char *what, int nargs, int nresults) {
    lua_State *L = vm->L;
    int base = lua_gettop(L) - nargs;
    err_where_t where;
    lua_pushlightuserdata(L, &where);
    lua_pushcclosure(L, on_error, 1);
    lua_insert(L, base);
    if (vm->call_depth++ == 0)
        lua_sethook(L, on_budget, LUA_MASKCOUNT, (int)(vm->config.budget > INT_MAX ? INT_MAX : vm->config.budget));
    int rc = lua_pcall(L, nargs, nresults, base);
    if (--vm->call_depth == 0)
        lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    if (rc == 0)
        return 0;
    const char *msg = lua_tostring(L, -1);
    if (!msg)
        msg = "(no message)";
    /* Lua starts messages with "file:line: " at the level the raiser chose (error(msg, 2)
     * blames the caller); that beats the innermost frame, which may be a library helper. */
    const char *src = where.src[0] ? where.src : (route ? route->script : vm->app_path);
    int line = where.line;
    char msg_src[256];
    int msg_line;
    const char *rest = split_location(msg, msg_src, sizeof msg_src, &msg_line);
    if (rest) {
        src = msg_src;
        line = msg_line;
        msg = rest;
    }
    vm->lua_errors++;
    if (vm->worker)
        vm->worker->metrics.lua_errors++;
    if (vm->collecting) {
        snprintf(vm->last_error, sizeof vm->last_error, "%s:%d: %s", src, line, msg);
    } else if (route && route->kind != FR_ROUTE_STATIC)
        fr_error("lua error in %s:%d (%s) route %s: %s", src, line, what, route->pattern.source,
                 msg);
    else
        fr_error("lua error in %s:%d (%s): %s", src, line, what, msg);
    lua_pop(L, 1);
    return -1;
}

int fr_vm_push_hook(fr_vm_t *vm, const fr_route_t *route, fr_hook_t hook) {
    if (route->hooks[hook] == LUA_NOREF)
        return 0;
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, route->hooks[hook]);
    return 1;
}

void fr_vm_push_event(fr_vm_t *vm, fr_event_t *ev) {
    lua_State *L = vm->L;
    if (vm->ev_cached == ev) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ev_cached_ref);
        return;
    }
    lua_createtable(L, 0, 6);
    lua_pushstring(L, ev->topic);
    lua_setfield(L, -2, "topic");
    char id[FR_ID_MAX_LEN];
    fr_id_format(ev->id, id);
    lua_pushstring(L, id);
    lua_setfield(L, -2, "id");
    if (ev->name) {
        lua_pushstring(L, ev->name);
        lua_setfield(L, -2, "event");
    }
    lua_pushstring(L, fr_priority_name(ev->priority));
    lua_setfield(L, -2, "priority");
    lua_pushnumber(L, (lua_Number)ev->published_at);
    lua_setfield(L, -2, "published_at");
    int decoded = 0;
    if (ev->json) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->decode_ref);
        lua_pushlstring(L, ev->data, ev->data_len);
        decoded = lua_pcall(L, 1, 1, 0) == 0;
        if (!decoded)
            lua_pop(L, 1);
    }
    if (!decoded)
        lua_pushlstring(L, ev->data, ev->data_len);
    lua_setfield(L, -2, "data");

    if (vm->ev_cached) {
        fr_event_release(vm->ev_cached);
        luaL_unref(L, LUA_REGISTRYINDEX, vm->ev_cached_ref);
    }
    fr_event_retain(ev);
    vm->ev_cached = ev;
    lua_pushvalue(L, -1);
    vm->ev_cached_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ---- building ----------------------------------------------------------------------- */

static void vm_preload(fr_vm_t *vm) {
    lua_State *L = vm->L;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (const fr_lua_module_t *m = fr_lua_modules; m->name; m++) {
        lua_pushcfunction(L, m->open);
        lua_setfield(L, -2, m->name);
    }
    for (const fr_embedded_t *m = fr_embedded_lua; m->module; m++) {
        if (luaL_loadbuffer(L, m->code, m->len, m->chunkname) != 0) {
            /* The embedded modules are tested; a failure here is a build defect. */
            fprintf(stderr, "fatal: embedded module %s: %s\n", m->module, lua_tostring(L, -1));
            abort();
        }
        lua_setfield(L, -2, m->module);
    }
    lua_pop(L, 1);
    /* Route scripts may require modules that sit beside the app file. */
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", vm->app_dir, vm->app_dir);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    vm->encode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "decode");
    vm->decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
}

static uint64_t field_num(lua_State *L, int t, const char *k, uint64_t def, double scale) {
    lua_getfield(L, t, k);
    uint64_t v = lua_isnumber(L, -1) ? (uint64_t)(lua_tonumber(L, -1) * scale) : def;
    lua_pop(L, 1);
    return v;
}

static double field_double(lua_State *L, int t, const char *k, double def) {
    lua_getfield(L, t, k);
    double v = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

/* Reads the settings table (already checked key by key in lua/freshet/app.lua). */
static int vm_read_config(fr_vm_t *vm, int t, fr_errors_t *errs) {
    lua_State *L = vm->L;
    fr_config_t *c = &vm->config;
    lua_getfield(L, t, "listen");
    if (lua_isstring(L, -1) &&
        fr_config_parse_listen(lua_tostring(L, -1), c->host, sizeof c->host, &c->port) < 0) {
        fr_errors_add(errs, "%s: listen: cannot parse \"%s\"", vm->app_path, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    c->heartbeat_ms = field_num(L, t, "heartbeat", c->heartbeat_ms, 1000.0);
    c->retry_ms = field_num(L, t, "retry", c->retry_ms, 1.0);
    c->budget = field_num(L, t, "budget", c->budget, 1.0);
    lua_getfield(L, t, "jit");
    c->jit = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "replay");
    if (lua_istable(L, -1)) {
        c->replay_events = field_num(L, -1, "events", c->replay_events, 1.0);
        c->replay_ms = field_num(L, -1, "seconds", c->replay_ms, 1000.0);
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "limits");
    if (lua_istable(L, -1)) {
        c->max_body = field_num(L, -1, "body", c->max_body, 1.0);
        c->max_headers = field_num(L, -1, "headers", c->max_headers, 1.0);
        c->streams_at = field_double(L, -1, "streams_at", c->streams_at);
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "timeouts");
    if (lua_istable(L, -1)) {
        c->header_timeout_ms = field_num(L, -1, "headers", c->header_timeout_ms, 1000.0);
        c->idle_timeout_ms = field_num(L, -1, "idle", c->idle_timeout_ms, 1000.0);
    }
    lua_pop(L, 1);
    c->drain_ms = field_num(L, t, "drain", c->drain_ms, 1000.0);
    c->poll_timeout_ms = field_num(L, t, "poll_timeout", c->poll_timeout_ms, 1000.0);
    lua_getfield(L, t, "log");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "format");
        c->log_json = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "json") == 0;
        lua_pop(L, 1);
        lua_getfield(L, -1, "level");
        fr_log_level_t level;
        if (lua_isstring(L, -1) && fr_log_parse_level(lua_tostring(L, -1), &level) == 0)
            c->log_level = (int)level;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "broker");
    c->broker = fr_strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "memory");
    lua_pop(L, 1);
    lua_getfield(L, t, "cors");
    if (lua_isstring(L, -1)) {
        c->cors = fr_calloc(1, sizeof *c->cors);
        c->cors[c->ncors++] = fr_strdup(lua_tostring(L, -1));
    } else if (lua_istable(L, -1)) {
        size_t n = lua_objlen(L, -1);
        c->cors = fr_calloc(n, sizeof *c->cors);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            c->cors[c->ncors++] = fr_strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "tiers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            c->tiers = fr_realloc(c->tiers, (c->ntiers + 1) * sizeof *c->tiers);
            fr_tier_t *tier = &c->tiers[c->ntiers++];
            tier->name = fr_strdup(lua_tostring(L, -2));
            tier->rate = field_double(L, -1, "rate", 0);
            tier->burst = field_double(L, -1, "burst", 0);
            tier->queue = field_num(L, -1, "queue", c->default_tier.queue, 1.0);
            tier->bytes = field_num(L, -1, "bytes", c->default_tier.bytes, 1.0);
            tier->lag = field_num(L, -1, "lag", c->default_tier.lag, 1.0);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return 0;
}

static char *resolve_path(const char *dir, const char *rel) {
    if (rel[0] == '/')
        return fr_strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = fr_malloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static const char *const stream_keys[] = {"auth",   "topics",  "tier",    "filter",
                                           "on_gap", "on_slow", "message", NULL};

int fr_slow_parse(const char *s, fr_slow_t *out) {
    static const char *const names[] = {"drop", "conflate", "disconnect"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (fr_slow_t)i;
            return 0;
        }
    }
    return -1;
}
static const char *const publish_keys[] = {"auth", "publish", "tier", "body", NULL};

static int key_allowed(const char *const *keys, const char *k) {
    for (; *keys; keys++) {
        if (strcmp(*keys, k) == 0)
            return 1;
    }
    return 0;
}

/* Loads one route script and takes references to its hooks. */
static int vm_load_route(fr_vm_t *vm, fr_route_t *r, const char *where, fr_errors_t *errs) {
    lua_State *L = vm->L;
    r->path = resolve_path(vm->app_dir, r->script);
    if (luaL_loadfile(L, r->path) != 0) {
        const char *m = lua_tostring(L, -1);
        if (strncmp(m, "cannot open", 11) == 0)
            fr_errors_add(errs, "%s: %s", where, m);
        else
            fr_errors_add(errs, "%s", m);
        lua_pop(L, 1);
        return -1;
    }
    int top = lua_gettop(L) - 1;
    if (fr_vm_call(vm, r, "load", 0, 1) != 0) {
        fr_errors_add(errs, "%s", vm->last_error);
        return -1;
    }
    if (!lua_istable(L, -1)) {
        fr_errors_add(errs, "%s:1: a route script must return a table of hooks, got %s", r->path,
                      luaL_typename(L, -1));
        lua_settop(L, top);
        return -1;
    }
    int ok = 0;
    const char *const *keys = r->kind == FR_ROUTE_STREAM ? stream_keys : publish_keys;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || !key_allowed(keys, k)) {
            fr_errors_add(errs, "%s:1: unknown field '%s' in a %s route script", r->path,
                          k ? k : luaL_typename(L, -2),
                          r->kind == FR_ROUTE_STREAM ? "stream" : "publish");
            ok = -1;
        }
        lua_pop(L, 1);
    }
    for (int h = 0; h < FR_HOOK_COUNT; h++) {
        lua_getfield(L, -1, fr_hook_names[h]);
        if (lua_isfunction(L, -1) && key_allowed(keys, fr_hook_names[h])) {
            r->hooks[h] = luaL_ref(L, LUA_REGISTRYINDEX);
        } else {
            /* A function under a name this kind of route does not use was reported above. */
            if (!lua_isnil(L, -1) && !lua_isfunction(L, -1)) {
                fr_errors_add(errs, "%s:1: hook '%s' must be a function, got %s", r->path,
                              fr_hook_names[h], luaL_typename(L, -1));
                ok = -1;
            }
            lua_pop(L, 1);
        }
    }
    lua_getfield(L, -1, "on_gap");
    if (!lua_isnil(L, -1)) {
        const char *g = lua_tostring(L, -1);
        if (g && strcmp(g, "reset") == 0)
            r->on_gap_reset = 1;
        else if (!g || strcmp(g, "416") != 0) {
            fr_errors_add(errs, "%s:1: on_gap must be \"reset\" or \"416\"", r->path);
            ok = -1;
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "on_slow");
    if (lua_isfunction(L, -1)) {
        r->slow_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pushnil(L);
    } else if (!lua_isnil(L, -1)) {
        fr_slow_t slow;
        if (lua_type(L, -1) != LUA_TSTRING || fr_slow_parse(lua_tostring(L, -1), &slow) < 0) {
            fr_errors_add(errs, "%s:1: on_slow must be \"drop\", \"conflate\", \"disconnect\" "
                                "or a function(topic, who) returning one of them", r->path);
            ok = -1;
        } else {
            r->slow = (int)slow;
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "body");
    if (!lua_isnil(L, -1)) {
        const char *b = lua_tostring(L, -1);
        if (b && strcmp(b, "json") == 0)
            r->body_json = 1;
        else if (!b || strcmp(b, "raw") != 0) {
            fr_errors_add(errs, "%s:1: body must be \"json\" or \"raw\"", r->path);
            ok = -1;
        }
    }
    lua_pop(L, 1);
    if (r->kind == FR_ROUTE_STREAM && r->hooks[FR_HOOK_TOPICS] == LUA_NOREF) {
        fr_errors_add(errs, "%s:1: a stream route needs a topics(req, who) hook", r->path);
        ok = -1;
    }
    if (r->kind == FR_ROUTE_PUBLISH && r->hooks[FR_HOOK_PUBLISH] == LUA_NOREF) {
        fr_errors_add(errs, "%s:1: a publish route needs a publish(req, body, who) hook", r->path);
        ok = -1;
    }
    lua_settop(L, top);
    return ok;
}

static int vm_read_routes(fr_vm_t *vm, int app, fr_errors_t *errs) {
    lua_State *L = vm->L;
    lua_getfield(L, app, "routes");
    size_t n = lua_objlen(L, -1);
    vm->routes = fr_calloc(n, sizeof *vm->routes);
    int rc = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (int)i);
        lua_getfield(L, -1, "kind");
        lua_getfield(L, -2, "pattern");
        lua_getfield(L, -3, "target");
        lua_getfield(L, -4, "source");
        lua_getfield(L, -5, "line");
        const char *kind = lua_tostring(L, -5), *pattern = lua_tostring(L, -4);
        const char *target = lua_tostring(L, -3);
        char where[512];
        snprintf(where, sizeof where, "%s:%d", lua_tostring(L, -2) ? lua_tostring(L, -2) : "?",
                 (int)lua_tointeger(L, -1));
        fr_route_t *r = &vm->routes[vm->nroutes++];
        for (int h = 0; h < FR_HOOK_COUNT; h++)
            r->hooks[h] = LUA_NOREF;
        r->slow_ref = LUA_NOREF;
        r->script = fr_strdup(target);
        const char *perr;
        if (strcmp(kind, "static") == 0) {
            r->kind = FR_ROUTE_STATIC;
            size_t pl = strlen(pattern);
            while (pl > 0 && pattern[pl - 1] == '/')
                pl--;
            r->prefix = fr_strndup(pattern, pl);
            char *dir = resolve_path(vm->app_dir, target);
            char real[PATH_MAX];
            struct stat st;
            if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
                fr_errors_add(errs, "%s: app:static: %s is not a directory", where, dir);
                rc = -1;
            } else {
                r->path = fr_strdup(real);
            }
            free(dir);
        } else {
            r->kind = strcmp(kind, "stream") == 0 ? FR_ROUTE_STREAM : FR_ROUTE_PUBLISH;
            if (fr_pattern_compile(pattern, &r->pattern, &perr) < 0) {
                fr_errors_add(errs, "%s: app:%s: %s in \"%s\"", where, kind, perr, pattern);
                rc = -1;
            } else if (vm_load_route(vm, r, where, errs) < 0) {
                rc = -1;
            }
        }
        lua_pop(L, 6);
    }
    lua_pop(L, 1);
    return rc;
}

static void vm_free(fr_vm_t *vm) {
    fr_vm_retire(vm);
    if (vm->ev_cached)
        fr_event_release(vm->ev_cached);
    if (vm->L)
        lua_close(vm->L);
    for (size_t i = 0; i < vm->nroutes; i++) {
        fr_route_t *r = &vm->routes[i];
        fr_pattern_free(&r->pattern);
        free(r->prefix);
        free(r->script);
        free(r->path);
    }
    free(vm->routes);
    fr_config_free(&vm->config);
    free(vm->app_path);
    free(vm->app_dir);
    free(vm);
}

fr_vm_t *fr_vm_new(const char *app_path, struct fr_worker_s *worker, fr_errors_t *errs) {
    fr_vm_t *vm = fr_calloc(1, sizeof *vm);
    vm->refs = 1;
    vm->worker = worker;
    vm->app_path = fr_strdup(app_path);
    char *tmp = fr_strdup(app_path);
    vm->app_dir = fr_strdup(dirname(tmp));
    free(tmp);
    fr_config_defaults(&vm->config);
    vm->ev_cached_ref = LUA_NOREF;

    vm->L = luaL_newstate();
    if (!vm->L) {
        fr_errors_add(errs, "%s: cannot create a Lua state (out of memory)", app_path);
        goto fail;
    }
    lua_State *L = vm->L;
    luaL_openlibs(L);
    /* LuaJIT's count hook does not fire inside compiled traces, so the instruction budget
     * holds only while the compiler is off. The interpreter stays fast for short hooks. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    fr_lua_set_vm(L, vm);
    vm_preload(vm);
    vm->collecting = 1;

    if (luaL_loadfile(L, app_path) != 0) {
        fr_errors_add(errs, "%s", lua_tostring(L, -1));
        goto fail;
    }
    if (fr_vm_call(vm, NULL, "app", 0, 1) != 0) {
        fr_errors_add(errs, "%s", vm->last_error);
        goto fail;
    }
    int app = lua_gettop(L);
    int is_app = 0;
    if (lua_istable(L, app)) {
        lua_getfield(L, app, "kind");
        is_app = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "freshet.app") == 0;
        lua_pop(L, 1);
    }
    if (!is_app) {
        fr_errors_add(errs, "%s: the app file must return the app (return freshet.app{...})",
                      app_path);
        goto fail;
    }
    lua_getfield(L, app, "config");
    int rc = vm_read_config(vm, lua_gettop(L), errs);
    lua_pop(L, 1);
    if (vm->config.jit)
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
    if (vm_read_routes(vm, app, errs) < 0 || rc < 0)
        goto fail;
    lua_settop(L, 0);
    vm->collecting = 0;
    return vm;
fail:
    vm_free(vm);
    return NULL;
}

void fr_vm_retain(fr_vm_t *vm) {
    vm->refs++;
}

void fr_vm_release(fr_vm_t *vm) {
    if (vm && --vm->refs == 0)
        vm_free(vm);
}

void fr_vm_retire(fr_vm_t *vm) {
    vm->retired = 1;
    fr_lua_stop_timers(vm);
}
