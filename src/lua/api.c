#include "lua/api.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#include "base/log.h"
#include "broker/broker.h"
#include "core/shared_dict.h"
#include "base/util.h"
#include "lua/native.h"
#include "lua/shared.h"
#include "lua/task.h"
#include "lua/vm.h"

#define VM_KEY "freshet.vm"
#define TIMER_MT "freshet.timer"

typedef struct fr_ltimer_s {
    uv_timer_t handle;
    fr_vm_t *vm;       /* NULL once stopped */
    int fn_ref;        /* the callback */
    int box_ref;       /* keeps the Lua handle alive while the timer can fire */
    int repeat;
    fr_list_t link;    /* in vm->timers while it can fire */
} fr_ltimer_t;

typedef struct {
    fr_ltimer_t *t; /* NULL once stopped (or when created outside a server) */
} timer_box_t;

void fr_lua_set_vm(lua_State *L, fr_vm_t *vm) {
    lua_pushlightuserdata(L, vm);
    lua_setfield(L, LUA_REGISTRYINDEX, VM_KEY);
}

fr_vm_t *fr_lua_get_vm(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, VM_KEY);
    fr_vm_t *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return vm;
}

/* ---- publish / encode ----------------------------------------------------------------- */

typedef struct {
    int done, async, status;
    fr_id_t id;
    char err[200];
    char *topic; /* owned, for the log line of a failure reported later */
    fr_metrics_t *metrics;
    fr_priority_t prio;
} lua_pub_t;

static void on_lua_published(void *ctx, int status, fr_id_t id, const char *err) {
    lua_pub_t *p = ctx;
    if (status == 0)
        FR_BUMP(p->metrics->published[p->prio], 1);
    if (p->async) {
        if (status < 0)
            fr_error("freshet.publish to '%s' failed: %s", p->topic, err);
        free(p->topic);
        free(p);
        return;
    }
    p->done = 1;
    p->status = status;
    p->id = id;
    snprintf(p->err, sizeof p->err, "%s", err ? err : "");
}

/* core.publish(topic, data, event|nil, priority, json) → id | true (stored later) | nil, err */
static int l_core_publish(lua_State *L) {
    size_t tlen, nlen = 0;
    const char *topic = luaL_checklstring(L, 1, &tlen);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    const char *name = luaL_optlstring(L, 3, NULL, &nlen);
    if (strlen(topic) != tlen || (name && strlen(name) != nlen)) {
        /* A NUL would cut the C string short on its way to the worker: refused here, in the
         * words the checks use for it (the other checks run in the worker). */
        const char *err = "topic and event name must not hold NUL";
        fr_event_check(topic, tlen, name, nlen, data, len, &err);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    const char *pname = luaL_checkstring(L, 4);
    int json = lua_toboolean(L, 5);
    fr_priority_t prio;
    if (fr_priority_parse(pname, &prio) < 0)
        return luaL_argerror(L, 4, FR_PRIORITY_ERROR);
    fr_vm_t *vm = fr_lua_get_vm(L);
    if (!vm->host) {
        lua_pushnil(L);
        lua_pushliteral(L, "not available while only checking the app");
        return 2;
    }
    if (!vm->host->broker) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot publish while the app file is loading (publish from a hook or "
                           "a timer)");
        return 2;
    }
    if (vm->filtering) {
        /* A filter runs in the middle of a fan-out; publishing there would deliver inside
         * the delivery. */
        lua_pushnil(L);
        lua_pushliteral(L, "cannot publish from a filter (it runs during a delivery): use "
                           "freshet.after(0, function() … end)");
        return 2;
    }
    lua_pub_t *p = fr_calloc(1, sizeof *p);
    p->topic = fr_strdup(topic);
    p->metrics = vm->host->metrics;
    p->prio = prio;
    fr_pub_t ev = {topic, name, data, len, prio, json};
    vm->host->broker->ops->publish(vm->host->broker, &ev, on_lua_published, p);
    if (!p->done) {
        /* The broker answers later: the script gets true now; a failure is logged. */
        p->async = 1;
        lua_pushboolean(L, 1);
        return 1;
    }
    int rc = p->status;
    fr_id_t id = p->id;
    char err[256];
    snprintf(err, sizeof err, "%s", p->err);
    free(p->topic);
    free(p);
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    char buf[FR_ID_MAX_LEN];
    lua_pushlstring(L, buf, fr_id_format(id, buf));
    return 1;
}

/* core.encode(table) → JSON text; raises a clear error for what JSON cannot hold. */
static int l_core_encode(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    fr_vm_t *vm = fr_lua_get_vm(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->encode_ref);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, 1, 0) != 0)
        return luaL_error(L, "data cannot be sent as JSON: %s", lua_tostring(L, -1));
    return 1;
}

/* ---- timers ------------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h) {
    free(FR_CONTAINER_OF((uv_timer_t *)h, fr_ltimer_t, handle));
}

static void timer_stop(fr_ltimer_t *t) {
    fr_vm_t *vm = t->vm;
    if (!vm)
        return;
    fr_list_remove(&t->link);
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, t->box_ref);
    timer_box_t *box = lua_touserdata(vm->L, -1);
    if (box)
        box->t = NULL;
    lua_pop(vm->L, 1);
    luaL_unref(vm->L, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(vm->L, LUA_REGISTRYINDEX, t->box_ref);
    t->vm = NULL;
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, on_timer_closed);
}

void fr_lua_stop_timers(fr_vm_t *vm) {
    for (fr_list_t *l; (l = fr_list_first(&vm->timers));)
        timer_stop(FR_LIST_ENTRY(l, fr_ltimer_t, link));
}

static void on_timer(uv_timer_t *h) {
    fr_ltimer_t *t = FR_CONTAINER_OF(h, fr_ltimer_t, handle);
    fr_vm_t *vm = t->vm;
    if (!vm)
        return;
    lua_rawgeti(vm->L, LUA_REGISTRYINDEX, t->fn_ref);
    /* A run may wait (freshet.http.request): it goes on by itself, owned by the VM. */
    fr_task_start(vm, NULL, t->repeat ? "every" : "after", 0, 0, NULL, NULL, NULL);
    /* The callback may have cancelled its own timer; t stays allocated until its close. */
    if (!t->repeat)
        timer_stop(t);
}

/* core.timer("every"|"after", ms, fn) → timer */
static int l_core_timer(lua_State *L) {
    /* Level 1 is the script: init.lua reaches this through a tail call. */
    int repeat;
    uint64_t period = fr_lua_timer_args(L, 1, &repeat);
    fr_vm_t *vm = fr_lua_get_vm(L);
    timer_box_t *box = lua_newuserdata(L, sizeof *box);
    box->t = NULL;
    luaL_getmetatable(L, TIMER_MT);
    lua_setmetatable(L, -2);
    if (!vm->host || vm->retired)
        return 1;
    fr_ltimer_t *t = fr_calloc(1, sizeof *t);
    uv_timer_init(vm->host->loop, &t->handle);
    t->vm = vm;
    t->repeat = repeat;
    lua_pushvalue(L, 3);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    fr_list_insert_head(&vm->timers, &t->link);
    box->t = t;
    uv_timer_start(&t->handle, on_timer, period, repeat ? period : 0);
    return 1;
}

static int l_timer_cancel(lua_State *L) {
    timer_box_t *box = luaL_checkudata(L, 1, TIMER_MT);
    if (box->t)
        timer_stop(box->t);
    return 0;
}

/* ---- log / now ------------------------------------------------------------------------ */

static int l_core_log(lua_State *L) {
    /* Level 2 is the script that called freshet.log (level 1 is the wrapper in init.lua). */
    fr_log_level_t level = fr_lua_log_level(L, 2);
    if (!fr_log_enabled(level))
        return 0;
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Debug ar;
    /* Level 2: the script that called freshet.log (level 1 is the Lua wrapper in init.lua). */
    if (lua_getstack(L, 2, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
        luaL_addvalue(&b);
    }
    lua_getglobal(L, "tostring");
    for (int i = 2; i <= n; i++) {
        if (i > 2)
            luaL_addchar(&b, ' ');
        lua_pushvalue(L, -1);
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    fr_log(level, "%s", lua_tostring(L, -1));
    return 0;
}

static int l_core_now(lua_State *L) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (lua_Number)tv.tv_sec * 1000.0 + (lua_Number)tv.tv_usec / 1000.0);
    return 1;
}

/* ---- metrics -------------------------------------------------------------------------- */

static void set_num(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* A {telemetry, normal, critical} table from counters indexed by fr_priority_t. */
static void set_by_priority(lua_State *L, const char *k, const unsigned long *v) {
    lua_createtable(L, 0, 3);
    for (int p = 0; p < 3; p++)
        set_num(L, fr_priority_name((fr_priority_t)p), (double)v[p]);
    lua_setfield(L, -2, k);
}

/* core.metrics() → a table of this worker's counters (what GET /metrics reports, as numbers),
 * or nil, err where there is no running worker to read them from. */
static int l_core_metrics(lua_State *L) {
    fr_vm_t *vm = fr_lua_get_vm(L);
    fr_vm_host_t *w = vm->host;
    if (!w) {
        lua_pushnil(L);
        lua_pushliteral(L, "freshet.metrics: not available while only checking the app");
        return 2;
    }
    if (!w->config || !w->broker) {
        /* The app file runs before the worker has its settings, hub and listener. */
        lua_pushnil(L);
        lua_pushliteral(L, "freshet.metrics: not available while the server is starting (call "
                           "it from a hook or a timer)");
        return 2;
    }
    fr_totals_t totals;
    unsigned long *tier_rejected = fr_calloc(w->config->ntiers + 1, sizeof *tier_rejected);
    w->totals(w->ctx, &totals, tier_rejected);
    const fr_metrics_t *m = &totals.m;
    lua_createtable(L, 0, 28);
    set_num(L, "connections", (double)totals.nconns);
    set_num(L, "streams", (double)totals.nstreams);
    set_num(L, "topics", (double)totals.ntopics);
    set_num(L, "connections_total", (double)m->connections);
    set_num(L, "streams_total", (double)m->streams);
    set_num(L, "requests", (double)totals.requests);
    set_by_priority(L, "published", m->published);
    set_num(L, "delivered", (double)m->delivered);
    set_by_priority(L, "dropped", m->dropped);
    set_num(L, "conflated", (double)m->conflated);
    set_num(L, "replayed", (double)m->replayed);
    set_num(L, "resumes", (double)m->resumes);
    set_num(L, "resets", (double)m->resume_reset);
    lua_createtable(L, 0, 3);
    set_num(L, "lag", (double)m->evicted_lag);
    set_num(L, "drop", (double)m->evicted_drop);
    set_num(L, "slow", (double)m->evicted_slow);
    lua_setfield(L, -2, "evicted");
    set_num(L, "bytes_written", (double)m->bytes_written);
    set_num(L, "heartbeats", (double)m->heartbeats);
    set_num(L, "lua_errors", (double)m->lua_errors);
    unsigned long limited = 0;
    for (size_t t = 0; t < w->config->ntiers; t++)
        limited += tier_rejected[t];
    free(tier_rejected);
    set_num(L, "rate_limited", (double)limited);
    set_num(L, "timeouts", (double)m->timeouts);
    set_num(L, "reloads", (double)totals.reloads);
    set_num(L, "uptime", (double)(fr_mono_ms() - w->started_ms) / 1000.0);
    size_t rss = 0;
    if (uv_resident_set_memory(&rss) != 0)
        rss = 0;
    set_num(L, "rss", (double)rss);
    lua_pushstring(L, w->broker->ops->kind);
    lua_setfield(L, -2, "broker");
    return 1;
}

int fr_lua_open_core(lua_State *L) {
    luaL_newmetatable(L, TIMER_MT);
    lua_pushcfunction(L, l_timer_cancel);
    lua_setfield(L, -2, "cancel");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    static const luaL_Reg core[] = {{"publish", l_core_publish}, {"encode", l_core_encode},
                                    {"timer", l_core_timer},     {"log", l_core_log},
                                    {"now", l_core_now},         {"metrics", l_core_metrics},
                                    {"sleep", fr_lua_sleep},     {"can_wait", fr_lua_can_wait},
                                    {"http_request", fr_lua_http_request},
                                    {"http_response", fr_lua_http_response},
                                    {"redis", fr_lua_redis},
                                    {"redis_reply", fr_lua_redis_reply},
                                    {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, core);
    lua_pushliteral(L, FR_VERSION);
    lua_setfield(L, -2, "version");
    /* Which worker thread this VM belongs to (0 when there is one, and under --check). */
    fr_vm_t *vm = fr_lua_get_vm(L);
    lua_pushinteger(L, vm && vm->host ? (lua_Integer)vm->host->worker : 0);
    lua_setfield(L, -2, "worker");
    /* freshet.shared: the process-wide dictionary, expiring by the monotonic clock. */
    fr_lua_shared_push(L, fr_shared_global(), 0, fr_mono_ms, 0);
    lua_setfield(L, -2, "shared");
    return 1;
}
