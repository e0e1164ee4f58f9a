/* A VM: its Lua state with the allocator that holds the memory limit, the one call path from
 * C into Lua (instruction budget, message handler, the log line), building it from the app
 * file, and its lifetime. The app's settings are read in lua/settings.c, the route scripts
 * loaded and checked in lua/routes.c. */
#include "lua/vm.h"

#include <lauxlib.h>
#include <libgen.h>
#include <luajit.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/embedded.h"
#include "lua/api.h"
#include "lua/modules.h"
#include "lua/task.h"
#include "lua/vm_build.h"
#include "base/log.h"
#include "base/util.h"

const char *const fr_hook_names[FR_HOOK_COUNT] = {"auth",   "topics",  "tier",   "filter",
                                                  "publish", "message", "handle"};

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

/* Every allocation of a VM goes through here, so its memory limit holds even for one huge
 * allocation (string.rep of a gigabyte) that no instruction count would catch: past the limit
 * the allocation fails and Lua raises "not enough memory" inside the protected call. */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    fr_vm_t *vm = ud;
    if (nsize == 0) {
        vm->mem_used -= osize;
        return vm->base_alloc(vm->base_ud, ptr, osize, 0);
    }
    /* The limit holds while a script runs (where running out is a Lua error the hook's caller
     * catches); what C does around hooks (references, request tables) must not fail. */
    if (nsize > osize && vm->mem_limit && vm->call_depth > 0 &&
        vm->mem_used + (nsize - osize) > vm->mem_limit)
        return NULL;
    void *q = vm->base_alloc(vm->base_ud, ptr, osize, nsize);
    if (q)
        vm->mem_used = vm->mem_used - osize + nsize;
    return q;
}

static int on_panic(lua_State *L) {
    fprintf(stderr, "fatal: unprotected Lua error: %s\n",
            lua_tostring(L, -1) ? lua_tostring(L, -1) : "(no message)");
    abort();
}

static void count_memory_stop(fr_vm_t *vm) {
    vm->memory_stops++;
    if (vm->host)
        FR_BUMP(vm->host->metrics->lua_memory_stops, 1);
}

/* The hook fires every FR_HOOK_SLICE instructions and counts them against the budget. (The
 * memory limit is the allocator's.) */
#define FR_HOOK_SLICE 10000

static void on_budget(lua_State *L, lua_Debug *ar) {
    fr_vm_t *vm = fr_lua_get_vm(L);
    vm->slices++;
    if ((uint64_t)vm->slices * FR_HOOK_SLICE >= vm->config.budget) {
        lua_sethook(L, NULL, 0, 0);
        vm->budget_stops++;
        if (vm->host)
            FR_BUMP(vm->host->metrics->lua_budget_stops, 1);
        /* The line is known only here: once a coroutine has unwound, its frame says -1. */
        lua_getinfo(L, "Sl", ar);
        if (ar->currentline > 0)
            luaL_error(L, "%s:%d: instruction budget exceeded (the hook ran too long)",
                       ar->short_src, ar->currentline);
        luaL_error(L, "instruction budget exceeded (the hook ran too long)");
    }
}

/* Message handler: remembers where the error happened (the innermost Lua frame) so the log line
 * can name file:line even when a C function raised it. */
static int on_error(lua_State *L) {
    err_where_t *w = lua_touserdata(L, lua_upvalueindex(1));
    fr_vm_where(L, w->src, sizeof w->src, &w->line);
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

void fr_vm_budget_begin(fr_vm_t *vm, lua_State *L) {
    if (vm->call_depth++ == 0) {
        vm->slices = 0;
        lua_sethook(L, on_budget, LUA_MASKCOUNT, FR_HOOK_SLICE);
        /* Garbage near the limit is collected before the call rather than failing it; what
         * is still held after that (a script that keeps everything) refuses the call. */
        if (vm->mem_limit && vm->mem_used > vm->mem_limit / 4 * 3)
            lua_gc(L, LUA_GCCOLLECT, 0);
    }
}

void fr_vm_budget_end(fr_vm_t *vm, lua_State *L) {
    if (--vm->call_depth == 0)
        lua_sethook(L, NULL, 0, 0);
}

void fr_vm_where(lua_State *L, char *src, size_t len, int *line) {
    lua_Debug ar;
    src[0] = '\0';
    *line = 0;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        lua_getinfo(L, "Sl", &ar);
        if (ar.currentline > 0) {
            snprintf(src, len, "%s", ar.short_src);
            *line = ar.currentline;
            return;
        }
    }
}

void fr_vm_report(fr_vm_t *vm, const fr_route_t *route, const char *what, const char *msg,
                  const char *where_src, int where_line, int rc) {
    if (!msg)
        msg = "(no message)";
    char memmsg[96];
    if (rc == LUA_ERRMEM) {
        count_memory_stop(vm);
        snprintf(memmsg, sizeof memmsg, "memory limit exceeded (the VM may hold %d MB)",
                 (int)(vm->mem_limit >> 20));
        msg = memmsg;
    }
    /* Lua starts messages with "file:line: " at the level the raiser chose (error(msg, 2)
     * blames the caller); that beats the innermost frame, which may be a library helper. */
    const char *src = where_src && where_src[0] ? where_src
                                                : (route ? route->script : vm->app_path);
    int line = where_line;
    char msg_src[256];
    int msg_line;
    const char *rest = split_location(msg, msg_src, sizeof msg_src, &msg_line);
    if (rest) {
        src = msg_src;
        line = msg_line;
        msg = rest;
    }
    vm->lua_errors++;
    if (vm->host)
        FR_BUMP(vm->host->metrics->lua_errors, 1);
    if (vm->collecting) {
        snprintf(vm->last_error, sizeof vm->last_error, "%s:%d: %s", src, line, msg);
    } else if (route && route->kind != FR_ROUTE_STATIC)
        fr_error("lua error in %s:%d (%s) route %s: %s", src, line, what, route->pattern.source,
                 msg);
    else
        fr_error("lua error in %s:%d (%s): %s", src, line, what, msg);
}

int fr_vm_call(fr_vm_t *vm, const fr_route_t *route, const char *what, int nargs, int nresults) {
    lua_State *L = vm->L;
    int base = lua_gettop(L) - nargs;
    /* Lua runs no message handler for a memory error: where stays as set here. */
    err_where_t where = {"", 0};
    lua_pushlightuserdata(L, &where);
    lua_pushcclosure(L, on_error, 1);
    lua_insert(L, base);
    fr_vm_budget_begin(vm, L);
    int rc = lua_pcall(L, nargs, nresults, base);
    fr_vm_budget_end(vm, L);
    lua_remove(L, base);
    if (rc == 0)
        return 0;
    fr_vm_report(vm, route, what, lua_tostring(L, -1), where.src, where.line, rc);
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

static void vm_free(fr_vm_t *vm) {
    fr_vm_retire(vm);
    if (vm->ev_cached)
        fr_event_release(vm->ev_cached);
    fr_task_free_idle(vm);
    if (vm->L) {
        /* LuaJIT's own allocator again, so that closing releases its arena as a whole. */
        lua_setallocf(vm->L, vm->base_alloc, vm->base_ud);
        lua_close(vm->L);
    }
    fr_routes_free(vm);
    fr_config_free(&vm->config);
    free(vm->app_path);
    free(vm->app_dir);
    free(vm);
}

/* Creates the VM's Lua state: the standard libraries, the interpreter only, the embedded
 * modules preloaded. */
static int vm_open_state(fr_vm_t *vm, fr_errors_t *errs) {
    /* LuaJIT's own arena allocator does the work (faster than malloc for Lua's many small
     * objects, and it keeps them out of the C heap); vm_alloc in front of it counts bytes
     * for the memory limit, starting from what the new state already holds. */
    vm->L = luaL_newstate();
    if (!vm->L) {
        fr_errors_add(errs, "%s: cannot create a Lua state (out of memory)", vm->app_path);
        return -1;
    }
    vm->base_alloc = lua_getallocf(vm->L, &vm->base_ud);
    vm->mem_used = (size_t)lua_gc(vm->L, LUA_GCCOUNT, 0) * 1024 +
                   (size_t)lua_gc(vm->L, LUA_GCCOUNTB, 0);
    lua_setallocf(vm->L, vm_alloc, vm);
    lua_State *L = vm->L;
    lua_atpanic(L, on_panic);
    luaL_openlibs(L);
    /* LuaJIT's count hook does not fire inside compiled traces, so the instruction budget
     * holds only while the compiler is off. The interpreter stays fast for short hooks. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    fr_lua_set_vm(L, vm);
    vm_preload(vm);
    return 0;
}

/* Runs the app file and reads what it returned: its settings (lua/settings.c), then its routes
 * (lua/routes.c). The routes are read even when the settings are wrong: the error list then
 * holds the problems of both. */
static int vm_run_app(fr_vm_t *vm, fr_errors_t *errs) {
    lua_State *L = vm->L;
    if (luaL_loadfile(L, vm->app_path) != 0) {
        fr_errors_add(errs, "%s", lua_tostring(L, -1));
        return -1;
    }
    if (fr_vm_call(vm, NULL, "app", 0, 1) != 0) {
        fr_errors_add(errs, "%s", vm->last_error);
        return -1;
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
                      vm->app_path);
        return -1;
    }
    lua_getfield(L, app, "config");
    int rc;
    if (!lua_istable(L, -1)) {
        fr_errors_add(errs, "%s: the app's settings were replaced by a %s", vm->app_path,
                      luaL_typename(L, -1));
        rc = -1;
    } else {
        rc = fr_settings_read(vm, lua_gettop(L), errs);
    }
    lua_pop(L, 1);
    if (vm->config.jit)
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
    vm->mem_limit = vm->config.memory_kb * 1024;
    if (fr_routes_read(vm, app, errs) < 0 || rc < 0)
        return -1;
    return 0;
}

fr_vm_t *fr_vm_new(const char *app_path, fr_vm_host_t *host, fr_errors_t *errs) {
    fr_vm_t *vm = fr_calloc(1, sizeof *vm);
    fr_list_init(&vm->timers);
    fr_list_init(&vm->tasks);
    fr_list_init(&vm->idle_tasks);
    vm->refs = 1;
    vm->host = host;
    vm->app_path = fr_strdup(app_path);
    char *tmp = fr_strdup(app_path);
    vm->app_dir = fr_strdup(dirname(tmp));
    free(tmp);
    fr_config_defaults(&vm->config);
    vm->ev_cached_ref = LUA_NOREF;

    /* The app file runs under the default limit; its own `memory` applies from then on. */
    vm->mem_limit = vm->config.memory_kb * 1024;
    if (vm_open_state(vm, errs) < 0)
        goto fail;
    vm->collecting = 1;
    if (vm_run_app(vm, errs) < 0)
        goto fail;
    lua_settop(vm->L, 0);
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
    fr_task_cancel_unowned(vm);
}
