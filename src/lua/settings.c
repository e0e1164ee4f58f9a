/* The app's settings table → fr_config_t. lua/freshet/app.lua has checked every key when the
 * app file called freshet.app{...}; what is read here is what the table holds after the app
 * file finished, which a script may have rewritten since. */
#include "lua/vm_build.h"

#include <lauxlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

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

/* listen = "host:port" (IPv4 or [IPv6]:port). */
static int read_listen(fr_vm_t *vm, int t, fr_errors_t *errs) {
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
    return 0;
}

/* admin = "host:port"; access_log = {path, format}. */
static int read_operations(fr_vm_t *vm, int t, fr_errors_t *errs) {
    lua_State *L = vm->L;
    fr_config_t *c = &vm->config;
    lua_getfield(L, t, "admin");
    if (lua_isstring(L, -1) && fr_config_parse_listen(lua_tostring(L, -1), c->admin_host,
                                                      sizeof c->admin_host, &c->admin_port) < 0) {
        fr_errors_add(errs, "%s: admin: cannot parse \"%s\"", vm->app_path, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "access_log");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "path");
        if (lua_isstring(L, -1))
            c->access_log = fr_strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        lua_getfield(L, -1, "format");
        c->access_log_json = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "json") == 0;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* The streams' heartbeat and retry, the hooks' budget, memory and jit, the worker count. */
static void read_runtime(lua_State *L, int t, fr_config_t *c) {
    c->heartbeat_ms = field_num(L, t, "heartbeat", c->heartbeat_ms, 1000.0);
    if (c->heartbeat_ms < 100)
        c->heartbeat_ms = 100; /* a heartbeat every few microseconds would be a flood */
    c->retry_ms = field_num(L, t, "retry", c->retry_ms, 1.0);
    c->budget = field_num(L, t, "budget", c->budget, 1.0);
    c->memory_kb = field_num(L, t, "memory", c->memory_kb / 1024, 1.0) * 1024;
    lua_getfield(L, t, "h2c");
    c->h2c = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "jit");
    c->jit = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "workers");
    if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "auto") == 0)
        c->workers = 0;
    else if (lua_isnumber(L, -1))
        c->workers = (int)lua_tonumber(L, -1); /* app.lua checked 1..64 */
    lua_pop(L, 1);
}

/* Sizes and times: replay = {events, seconds}, limits = {body, headers, header_lines,
 * streams_at}, timeouts = {headers, idle, hook, ack, redis}, drain, poll_timeout. */
static void read_limits(lua_State *L, int t, fr_config_t *c) {
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
        c->max_header_lines = field_num(L, -1, "header_lines", c->max_header_lines, 1.0);
        c->streams_at = field_double(L, -1, "streams_at", c->streams_at);
        c->backend_response =
            field_num(L, -1, "backend_response", c->backend_response, 1.0);
        c->backend_calls = field_num(L, -1, "backend_calls", c->backend_calls, 1.0);
        c->backend_idle = field_num(L, -1, "backend_idle", c->backend_idle, 1.0);
        c->calls_per_hook = field_num(L, -1, "calls_per_hook", c->calls_per_hook, 1.0);
        uint64_t h2s = field_num(L, -1, "h2_streams", c->h2_streams, 1.0);
        c->h2_streams = h2s < 1 ? 1 : h2s > 100000 ? 100000 : (unsigned)h2s;
        uint64_t h2c = field_num(L, -1, "h2_streams_per_client", c->h2_streams_per_client, 1.0);
        c->h2_streams_per_client = h2c > 1000000 ? 1000000 : (unsigned)h2c;
        c->redis_calls = field_num(L, -1, "redis_calls", c->redis_calls, 1.0);
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "timeouts");
    if (lua_istable(L, -1)) {
        c->header_timeout_ms = field_num(L, -1, "headers", c->header_timeout_ms, 1000.0);
        c->idle_timeout_ms = field_num(L, -1, "idle", c->idle_timeout_ms, 1000.0);
        c->hook_timeout_ms = field_num(L, -1, "hook", c->hook_timeout_ms, 1000.0);
        c->ack_timeout_ms = field_num(L, -1, "ack", c->ack_timeout_ms, 1000.0);
        c->redis_timeout_ms = field_num(L, -1, "redis", c->redis_timeout_ms, 1000.0);
    }
    lua_pop(L, 1);
    c->drain_ms = field_num(L, t, "drain", c->drain_ms, 1000.0);
    c->poll_timeout_ms = field_num(L, t, "poll_timeout", c->poll_timeout_ms, 1000.0);
}

/* log = {format = "text" | "json", level = "debug" | "info" | "warn" | "error"}. */
static void read_log(lua_State *L, int t, fr_config_t *c) {
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
}

/* cors = one origin or a list of them. */
static int read_cors(fr_vm_t *vm, int t, fr_errors_t *errs) {
    lua_State *L = vm->L;
    fr_config_t *c = &vm->config;
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
    return 0;
}

/* tiers = {name = {rate, burst, queue, bytes, lag}, …}. */
static int read_tiers(fr_vm_t *vm, int t, fr_errors_t *errs) {
    lua_State *L = vm->L;
    fr_config_t *c = &vm->config;
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

/* tls = {cert, key}: PEM files, relative to the app file's directory as route scripts are.
 * Whether they load is the http layer's to say (at start, under --check, on SIGHUP). */
static int read_tls(fr_vm_t *vm, int t, fr_errors_t *errs) {
    lua_State *L = vm->L;
    fr_config_t *c = &vm->config;
    lua_getfield(L, t, "tls");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    int ok = lua_istable(L, -1);
    if (ok) {
        lua_getfield(L, -1, "cert");
        lua_getfield(L, -2, "key");
        ok = lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
             lua_objlen(L, -2) > 0 && lua_objlen(L, -1) > 0;
        if (ok) {
            c->tls_cert = fr_vm_resolve(vm->app_dir, lua_tostring(L, -2));
            c->tls_key = fr_vm_resolve(vm->app_dir, lua_tostring(L, -1));
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    if (!ok)
        fr_errors_add(errs, "%s: tls must be { cert = \"….pem\", key = \"….pem\" }",
                      vm->app_path);
    return ok ? 0 : -1;
}

int fr_settings_read(fr_vm_t *vm, int t, fr_errors_t *errs) {
    lua_State *L = vm->L;
    fr_config_t *c = &vm->config;
    if (read_listen(vm, t, errs) < 0)
        return -1;
    read_runtime(L, t, c);
    read_limits(L, t, c);
    read_log(L, t, c);
    if (read_operations(vm, t, errs) < 0)
        return -1;
    lua_getfield(L, t, "broker");
    c->broker = fr_strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "memory");
    lua_pop(L, 1);
    lua_getfield(L, t, "redis");
    c->redis = lua_isstring(L, -1) ? fr_strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    if (read_cors(vm, t, errs) < 0 || read_tls(vm, t, errs) < 0)
        return -1;
    return read_tiers(vm, t, errs);
}
