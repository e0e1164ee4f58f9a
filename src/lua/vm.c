#include "lua/vm.h"

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

#include "lua/embedded.h"
#include "lua/api.h"
#include "lua/modules.h"
#include "base/log.h"
#include "base/util.h"

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

/* Every allocation of a VM goes through here, so its memory limit holds even for one huge
 * allocation (string.rep of a gigabyte) that no instruction count would catch: past the limit
 * the allocation fails and Lua raises "not enough memory" inside the protected call. */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    fr_vm_t *vm = ud;
    if (nsize == 0) {
        vm->mem_used -= osize;
        return vm->base_alloc(vm->base_ud, ptr, osize, 0);
    }
    if (nsize > osize && vm->mem_limit && vm->mem_used + (nsize - osize) > vm->mem_limit)
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
    (void)ar;
    fr_vm_t *vm = fr_lua_get_vm(L);
    vm->slices++;
    if ((uint64_t)vm->slices * FR_HOOK_SLICE >= vm->config.budget) {
        lua_sethook(L, NULL, 0, 0);
        vm->budget_stops++;
        if (vm->host)
            FR_BUMP(vm->host->metrics->lua_budget_stops, 1);
        luaL_error(L, "instruction budget exceeded (the hook ran too long)");
    }
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
    /* Lua runs no message handler for a memory error: where stays as set here. */
    err_where_t where = {"", 0};
    lua_pushlightuserdata(L, &where);
    lua_pushcclosure(L, on_error, 1);
    lua_insert(L, base);
    if (vm->call_depth++ == 0) {
        vm->slices = 0;
        lua_sethook(L, on_budget, LUA_MASKCOUNT, FR_HOOK_SLICE);
        /* Garbage near the limit is collected before the call rather than failing it; what
         * is still held after that (a script that keeps everything) refuses the call. */
        if (vm->mem_limit && vm->mem_used > vm->mem_limit / 4 * 3)
            lua_gc(L, LUA_GCCOLLECT, 0);
    }
    int rc = lua_pcall(L, nargs, nresults, base);
    if (--vm->call_depth == 0)
        lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    if (rc == 0)
        return 0;
    const char *msg = lua_tostring(L, -1);
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
    if (vm->host)
        FR_BUMP(vm->host->metrics->lua_errors, 1);
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

/* Numbers from the app file are checked in lua/freshet/app.lua, but a script can still rewrite
 * the table afterwards: anything not a finite number >= 0 falls back to the default, and huge
 * values are capped (1e300 seconds must not wrap to 0 ms). */
#define FR_NUM_CAP 1e15

static double clamp_num(double d, double def) {
    if (!(d >= 0) || d != d)
        return def;
    return d > FR_NUM_CAP ? FR_NUM_CAP : d;
}

static uint64_t field_num(lua_State *L, int t, const char *k, uint64_t def, double scale) {
    lua_getfield(L, t, k);
    uint64_t v = lua_type(L, -1) == LUA_TNUMBER
                     ? (uint64_t)clamp_num((double)lua_tonumber(L, -1) * scale, (double)def)
                     : def;
    lua_pop(L, 1);
    return v;
}

static double field_double(lua_State *L, int t, const char *k, double def) {
    lua_getfield(L, t, k);
    double v = lua_type(L, -1) == LUA_TNUMBER ? clamp_num((double)lua_tonumber(L, -1), def) : def;
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
    if (c->heartbeat_ms < 100)
        c->heartbeat_ms = 100; /* a heartbeat every few microseconds would be a flood */
    c->retry_ms = field_num(L, t, "retry", c->retry_ms, 1.0);
    c->budget = field_num(L, t, "budget", c->budget, 1.0);
    c->memory_kb = field_num(L, t, "memory", c->memory_kb / 1024, 1.0) * 1024;
    lua_getfield(L, t, "jit");
    c->jit = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "workers");
    if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "auto") == 0)
        c->workers = 0;
    else if (lua_isnumber(L, -1))
        c->workers = (int)lua_tonumber(L, -1); /* app.lua checked 1..64 */
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
    if (lua_type(L, -1) == LUA_TSTRING) {
        c->cors = fr_calloc(1, sizeof *c->cors);
        c->cors[c->ncors++] = fr_strdup(lua_tostring(L, -1));
    } else if (lua_istable(L, -1)) {
        size_t n = lua_objlen(L, -1);
        c->cors = fr_calloc(n ? n : 1, sizeof *c->cors);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            if (lua_type(L, -1) != LUA_TSTRING) {
                fr_errors_add(errs, "%s: cors[%zu] must be an origin string, got %s",
                              vm->app_path, i, luaL_typename(L, -1));
                lua_pop(L, 2);
                return -1;
            }
            c->cors[c->ncors++] = fr_strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "tiers");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            /* lua_tostring on a number key would change it under lua_next: strings only. */
            if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1)) {
                fr_errors_add(errs, "%s: tiers: each tier is a table under a name", vm->app_path);
                lua_pop(L, 3);
                return -1;
            }
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
    /* An app file given as "app.lua" has the directory "."; its scripts are then named as the
     * app file names them ("routes/room.lua:3: …"), which reads better than "./routes/…". */
    if (rel[0] == '/' || strcmp(dir, ".") == 0)
        return fr_strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = fr_malloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* ---- route scripts: loading and checking ---------------------------------------------- */

/* The fields each kind of route script may hold, and for each hook the arguments it gets (the
 * messages about a hook of the wrong type show the signature to write). */
static const char *const stream_keys[] = {"auth",   "topics",  "tier",    "filter",
                                          "on_gap", "on_slow", "message", NULL};
static const char *const publish_keys[] = {"auth", "publish", "tier", "body", NULL};
static const char *const hook_args[FR_HOOK_COUNT] = {
    "req", "req, who[, change]", "req, who", "event, who", "req, body, who", "conn, msg, who"};

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

/* Reads a whole file; NULL when it cannot (the caller falls back to line 1). */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = fr_malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            if (cap >= (8u << 20))
                break;
            cap *= 2;
            buf = fr_realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Length of a long bracket opening at s ("[[", "[=[", …), or 0; *level gets the '=' count. */
static size_t long_bracket(const char *s, int *level) {
    if (s[0] != '[')
        return 0;
    size_t i = 1;
    while (s[i] == '=')
        i++;
    if (s[i] != '[')
        return 0;
    *level = (int)(i - 1);
    return i + 1;
}

/* Blanks out comments and long strings in Lua source (newlines are kept, so line numbers
 * stay right), leaving code and short strings for the field search below. Best effort: the
 * script has already compiled, so the source is well formed. */
static void blank_comments(char *s) {
    char quote = 0;
    for (char *p = s; *p; p++) {
        if (quote) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == quote || *p == '\n')
                quote = 0;
            continue;
        }
        if (*p == '"' || *p == '\'') {
            quote = *p;
            continue;
        }
        int comment = p[0] == '-' && p[1] == '-';
        char *start = p;
        if (comment)
            p += 2;
        int level;
        size_t open = long_bracket(p, &level);
        if (open) {
            /* A long comment or a long string: find its closing bracket. */
            char *q = p + open;
            for (; *q; q++) {
                if (*q != ']')
                    continue;
                int k = 1;
                while (q[k] == '=')
                    k++;
                if (q[k] == ']' && k - 1 == level) {
                    q += k;
                    break;
                }
            }
            for (char *r = start; *r && r <= q; r++)
                if (*r != '\n')
                    *r = ' ';
            p = *q ? q : q - 1;
        } else if (comment) {
            while (*p && *p != '\n')
                *p++ = ' ';
            start[0] = start[1] = ' ';
            p--;
        } else {
            p = start;
        }
    }
}

static int ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The line on which a route script defines the field `name`: `route.name = …`,
 * `function route.name(…)`, `name = …` inside the table constructor or `["name"] = …`. The
 * returned table is usually built up that way, so this finds the line in practice; when it
 * does not, line 1 is at least the right file. */
static int field_line(const char *src, const char *name) {
    if (!src)
        return 1;
    size_t n = strlen(name);
    int weak = 0;
    int line = 1;
    for (const char *p = src; *p; p++) {
        if (*p == '\n') {
            line++;
            continue;
        }
        const char *key = NULL;
        if ((p[0] == '"' || p[0] == '\'') && strncmp(p + 1, name, n) == 0 && p[n + 1] == p[0] &&
            p > src && p[-1] == '[')
            key = p + 1; /* ["name"] */
        else if (strncmp(p, name, n) == 0 && !ident_char(p[n]) && (p == src || !ident_char(p[-1])))
            key = p;
        if (!key)
            continue;
        const char *after = key + n + (key != p ? 2 : 0);
        while (*after == ' ' || *after == '\t')
            after++;
        int assigns = after[0] == '=' && after[1] != '=';
        const char *before = p;
        while (before > src && (before[-1] == ' ' || before[-1] == '\t'))
            before--;
        char prev = before > src ? before[-1] : '\n';
        if ((prev == '.' || prev == ':' || key != p) && assigns)
            return line;
        if (prev == '.' || prev == ':') {
            /* function route.name(...) */
            const char *q = before - 1;
            while (q > src && ident_char(q[-1]))
                q--;
            while (q > src && (q[-1] == ' ' || q[-1] == '\t'))
                q--;
            if (q - src >= 8 && strncmp(q - 8, "function", 8) == 0)
                return line;
        }
        if (assigns && (prev == '{' || prev == ',' || prev == ';' || prev == '\n' || prev == '[') &&
            !weak) {
            /* `name = …` in a constructor (or a plain assignment): keep looking for a surer
             * match, but remember this one. */
            weak = line;
        }
    }
    return weak ? weak : 1;
}

/* field_line on the script's source, which is read (with its comments blanked) the first time
 * a message needs a line. */
static int script_line(const char *path, char **src, int *read, const char *name) {
    if (!*read) {
        *read = 1;
        *src = slurp(path);
        if (*src)
            blank_comments(*src);
    }
    return field_line(*src, name);
}

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

/* Checks one field of a script's table that the route kind does not know. */
static void report_unknown(const fr_route_t *r, const char *const *keys, const char *k,
                           int is_function, int line, fr_errors_t *errs) {
    const char *kind = r->kind == FR_ROUTE_STREAM ? "stream" : "publish";
    const char *what = is_function ? "hook" : "field";
    const char *const *other = r->kind == FR_ROUTE_STREAM ? publish_keys : stream_keys;
    const char *near = suggest(keys, k);
    if (key_allowed(other, k))
        fr_errors_add(errs,
                      "%s:%d: unknown %s '%s' in a %s route script (it belongs in a %s "
                      "route script)",
                      r->path, line, what, k, kind,
                      r->kind == FR_ROUTE_STREAM ? "publish" : "stream");
    else if (near)
        fr_errors_add(errs, "%s:%d: unknown %s '%s' (did you mean '%s'?)", r->path, line, what, k,
                      near);
    else
        fr_errors_add(errs,
                      "%s:%d: unknown %s '%s' in a %s route script (a %s route script "
                      "may have: %s)",
                      r->path, line, what, k, kind, kind,
                      r->kind == FR_ROUTE_STREAM
                          ? "auth, topics, tier, filter, message, on_gap, on_slow"
                          : "auth, publish, tier, body");
}

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

static int vm_check_route(fr_vm_t *vm, fr_route_t *r, fr_errors_t *errs);

/* Loads one route script and takes references to its hooks; problems are reported in the
 * order of the lines they are on. */
static int vm_load_route(fr_vm_t *vm, fr_route_t *r, const char *where, fr_errors_t *errs) {
    r->path = resolve_path(vm->app_dir, r->script);
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

/* Runs the script and checks what it returned. The script's top level runs in a proxy
 * environment that notes the globals it assigns (see on_global_set). */
static int vm_check_route(fr_vm_t *vm, fr_route_t *r, fr_errors_t *errs) {
    lua_State *L = vm->L;
    if (luaL_loadfile(L, r->path) != 0) {
        fr_errors_add(errs, "%s", lua_tostring(L, -1));
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
        fr_errors_add(errs, "%s", vm->last_error);
        lua_settop(L, top);
        return -1;
    }
    /* From here on a global assignment through the proxy lands in _G unrecorded. */
    lua_getmetatable(L, proxy);
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    lua_setfield(L, -2, "__newindex");
    lua_pop(L, 1);
    int ok = report_globals(vm, r, record, errs);
    lua_replace(L, top + 1); /* the returned table takes the chunk's slot */
    lua_settop(L, top + 2);  /* result, proxy */
    int t = top + 1;
    if (!lua_istable(L, t)) {
        fr_errors_add(errs, "%s:1: a route script must return a table of hooks, got %s", r->path,
                      luaL_typename(L, t));
        lua_settop(L, top);
        return -1;
    }
    lua_newtable(L); /* functions already pointed back at _G */
    int seen = lua_gettop(L);
    char *src = NULL; /* the source text, read once if a message needs a line */
    int src_read = 0;
#define FIELD_LINE(name) script_line(r->path, &src, &src_read, name)
    const char *const *keys = r->kind == FR_ROUTE_STREAM ? stream_keys : publish_keys;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_isfunction(L, -1))
            restore_env(L, lua_gettop(L), proxy, seen, 0);
        int is_string = lua_type(L, -2) == LUA_TSTRING;
        const char *k = is_string ? lua_tostring(L, -2) : NULL;
        if (!k) {
            fr_errors_add(errs,
                          "%s:1: a route script's table may only have named fields, got a "
                          "%s key",
                          r->path, luaL_typename(L, -2));
            ok = -1;
        } else if (!key_allowed(keys, k)) {
            report_unknown(r, keys, k, lua_isfunction(L, -1), FIELD_LINE(k), errs);
            ok = -1;
        }
        lua_pop(L, 1);
    }
    for (int h = 0; h < FR_HOOK_COUNT; h++) {
        if (!key_allowed(keys, fr_hook_names[h]))
            continue; /* reported above if present */
        lua_getfield(L, t, fr_hook_names[h]);
        if (lua_isfunction(L, -1)) {
            r->hooks[h] = luaL_ref(L, LUA_REGISTRYINDEX);
            continue;
        }
        if (!lua_isnil(L, -1)) {
            fr_errors_add(errs, "%s:%d: hook '%s' must be a function(%s), got %s", r->path,
                          FIELD_LINE(fr_hook_names[h]), fr_hook_names[h], hook_args[h],
                          luaL_typename(L, -1));
            ok = -1;
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, t, "on_gap");
    if (!lua_isnil(L, -1) && key_allowed(keys, "on_gap")) {
        const char *g = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (g && strcmp(g, "reset") == 0)
            r->on_gap_reset = 1;
        else if (!g || strcmp(g, "416") != 0) {
            fr_errors_add(errs, "%s:%d: on_gap must be \"reset\" or \"416\", got %s%s%s", r->path,
                          FIELD_LINE("on_gap"), g ? "\"" : "", g ? g : luaL_typename(L, -1),
                          g ? "\"" : "");
            ok = -1;
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "on_slow");
    if (lua_isfunction(L, -1) && key_allowed(keys, "on_slow")) {
        r->slow_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pushnil(L);
    } else if (!lua_isnil(L, -1) && key_allowed(keys, "on_slow")) {
        fr_slow_t slow;
        if (lua_type(L, -1) != LUA_TSTRING || fr_slow_parse(lua_tostring(L, -1), &slow) < 0) {
            fr_errors_add(
                errs,
                "%s:%d: on_slow must be \"drop\", \"conflate\", \"disconnect\" "
                "or a function(topic, who) returning one of them, got %s%s%s",
                r->path, FIELD_LINE("on_slow"), lua_type(L, -1) == LUA_TSTRING ? "\"" : "",
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1),
                lua_type(L, -1) == LUA_TSTRING ? "\"" : "");
            ok = -1;
        } else {
            r->slow = (int)slow;
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "body");
    if (!lua_isnil(L, -1) && key_allowed(keys, "body")) {
        const char *b = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (b && strcmp(b, "json") == 0)
            r->body_json = 1;
        else if (!b || strcmp(b, "raw") != 0) {
            fr_errors_add(errs, "%s:%d: body must be \"json\" or \"raw\", got %s%s%s", r->path,
                          FIELD_LINE("body"), b ? "\"" : "", b ? b : luaL_typename(L, -1),
                          b ? "\"" : "");
            ok = -1;
        }
    }
    lua_pop(L, 1);
#undef FIELD_LINE
    if (r->kind == FR_ROUTE_STREAM && r->hooks[FR_HOOK_TOPICS] == LUA_NOREF) {
        fr_errors_add(errs, "%s:1: a stream route needs a topics(req, who) hook", r->path);
        ok = -1;
    }
    if (r->kind == FR_ROUTE_PUBLISH && r->hooks[FR_HOOK_PUBLISH] == LUA_NOREF) {
        fr_errors_add(errs, "%s:1: a publish route needs a publish(req, body, who) hook", r->path);
        ok = -1;
    }
    free(src);
    lua_settop(L, top);
    return ok;
}

static int vm_read_routes(fr_vm_t *vm, int app, fr_errors_t *errs) {
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
        if (!lua_istable(L, -1)) {
            fr_errors_add(errs, "%s: route %zu was replaced by a %s", vm->app_path, i,
                          luaL_typename(L, -1));
            lua_pop(L, 1);
            rc = -1;
            continue;
        }
        lua_getfield(L, -1, "kind");
        lua_getfield(L, -2, "pattern");
        lua_getfield(L, -3, "target");
        lua_getfield(L, -4, "source");
        lua_getfield(L, -5, "line");
        const char *kind = lua_type(L, -5) == LUA_TSTRING ? lua_tostring(L, -5) : NULL;
        const char *pattern = lua_type(L, -4) == LUA_TSTRING ? lua_tostring(L, -4) : NULL;
        const char *target = lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : NULL;
        if (!kind || !pattern || !target ||
            (strcmp(kind, "stream") && strcmp(kind, "publish") && strcmp(kind, "static"))) {
            fr_errors_add(errs, "%s: route %zu lacks its kind, pattern or script", vm->app_path, i);
            lua_pop(L, 6);
            rc = -1;
            continue;
        }
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
    if (vm->L) {
        /* LuaJIT's own allocator again, so that closing releases its arena as a whole. */
        lua_setallocf(vm->L, vm->base_alloc, vm->base_ud);
        lua_close(vm->L);
    }
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

fr_vm_t *fr_vm_new(const char *app_path, fr_vm_host_t *host, fr_errors_t *errs) {
    fr_vm_t *vm = fr_calloc(1, sizeof *vm);
    fr_list_init(&vm->timers);
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
    /* LuaJIT's own arena allocator does the work (faster than malloc for Lua's many small
     * objects, and it keeps them out of the C heap); vm_alloc in front of it counts bytes
     * for the memory limit, starting from what the new state already holds. */
    vm->L = luaL_newstate();
    if (!vm->L) {
        fr_errors_add(errs, "%s: cannot create a Lua state (out of memory)", app_path);
        goto fail;
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
    int rc;
    if (!lua_istable(L, -1)) {
        fr_errors_add(errs, "%s: the app's settings were replaced by a %s", app_path,
                      luaL_typename(L, -1));
        rc = -1;
    } else {
        rc = vm_read_config(vm, lua_gettop(L), errs);
    }
    lua_pop(L, 1);
    if (vm->config.jit)
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
    vm->mem_limit = vm->config.memory_kb * 1024;
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
