/* A Lua VM built from an app file: its settings, its routes with their hooks, its timers.
 *
 * Ownership: the worker holds one reference to the current VM; every open stream holds one to
 * the VM it was opened under (its identity table and filter live there). SIGHUP builds a new
 * VM; the old one is retired (its timers stop) and freed when its last stream closes. */
#ifndef FR_VM_H
#define FR_VM_H

#include <lua.h>
#include <stddef.h>

#include <uv.h>

#include "base/list.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/event.h"
#include "codec/router.h"

struct fr_broker_s;

/* What a VM's API needs from the worker that runs it. Owned by the worker; filled as the
 * worker starts (broker and config are NULL while the app file first runs). */
typedef struct fr_vm_host_s {
    uv_loop_t *loop;             /* timers */
    fr_metrics_t *metrics;       /* Lua errors and stops, events published */
    struct fr_broker_s *broker;  /* freshet.publish, freshet.presence */
    struct fr_hclient_s *backend; /* freshet.http.request: the worker's client, or NULL */
    struct fr_rclient_s *redis;   /* freshet.redis: the worker's client, or NULL: none set */
    const fr_config_t *config;   /* the settings in force */
    unsigned worker;             /* the worker's index (freshet.worker) */
    uint64_t started_ms;         /* monotonic */
    /* freshet.metrics(): the process's totals; tier_rejected has config->ntiers + 1 slots. */
    void (*totals)(void *ctx, fr_totals_t *t, unsigned long *tier_rejected);
    void *ctx;
} fr_vm_host_t;

typedef enum { FR_ROUTE_STREAM, FR_ROUTE_PUBLISH, FR_ROUTE_STATIC, FR_ROUTE_HTTP } fr_route_kind_t;

typedef enum {
    FR_HOOK_AUTH,
    FR_HOOK_TOPICS,
    FR_HOOK_TIER,
    FR_HOOK_FILTER,
    FR_HOOK_PUBLISH,
    FR_HOOK_MESSAGE,
    FR_HOOK_HANDLE,
    FR_HOOK_COUNT
} fr_hook_t;

/* A route of the app: read-only once the VM is built, and lives as long as its VM. */
typedef struct {
    fr_route_kind_t kind;
    fr_pattern_t pattern;      /* stream and publish routes */
    char *prefix;              /* static routes: owned, without a trailing '/' */
    char *script;              /* owned: the script (or dir) as the app file names it */
    char *path;                /* owned: resolved path of the script, or real path of the dir */
    int hooks[FR_HOOK_COUNT];  /* registry refs, LUA_NOREF when the script has no such hook */
    int on_gap_reset;          /* stale Last-Event-ID → `reset` event instead of 416 */
    int slow;                  /* fr_slow_t for every topic, unless slow_ref decides per topic */
    int slow_ref;              /* on_slow(topic, who) → policy name; LUA_NOREF when a string */
    int body_json;             /* publish and http bodies are decoded as JSON before the hook */
    /* Static routes: Cache-Control max-age in seconds (-1: "no-cache", revalidate each time)
     * and whether the files never change under their names (immutable). */
    int64_t max_age;
    int immutable;
    /* Stream and publish routes with `deprecated`: owned header lines (Deprecation, Sunset,
     * Link) added to every answer of the route, or NULL. */
    char *deprecation;
    char method[16];           /* http routes: the method they answer (GET also answers HEAD) */
} fr_route_t;

/* Read-only to other modules: L (on the VM's own thread, through fr_vm_call), config, routes,
 * encode_ref and decode_ref; filtering is set around a filter call by the stream layer. The
 * rest is the VM's own. */
typedef struct fr_vm_s {
    lua_State *L;
    int refs;
    fr_vm_host_t *host;         /* borrowed; NULL when only checking */
    fr_config_t config;
    fr_route_t *routes;         /* owned array */
    size_t nroutes;
    char *app_path;             /* owned */
    char *app_dir;              /* owned */
    int encode_ref, decode_ref; /* cjson.encode / cjson.decode */
    int call_depth;             /* nested hook calls share the outermost budget */
    int filtering;              /* a filter hook runs (inside a delivery: no publishing) */
    fr_list_t timers;           /* live timers (fr_ltimer_t), stopped when the VM is retired */
    fr_list_t tasks;            /* waiting tasks nobody owns (a timer's run), likewise */
    fr_list_t idle_tasks;       /* finished tasks kept with their coroutines for reuse (task.c) */
    unsigned nidle_tasks;
    int retired;
    /* The Lua table of the event last passed to a filter: fan-out builds it once per VM. */
    fr_event_t *ev_cached;      /* one reference while cached */
    int ev_cached_ref;
    unsigned long lua_errors;
    unsigned long slices;       /* hook slices run by the current outermost call */
    size_t mem_used;            /* bytes the VM holds (its allocator counts them) */
    lua_Alloc base_alloc;       /* LuaJIT's own allocator, which vm_alloc calls */
    void *base_ud;
    size_t mem_limit;           /* bytes it may hold; 0: no limit */
    unsigned long budget_stops, memory_stops;
    /* While the VM is being built, errors are kept here for the error list, not logged. */
    int collecting;
    char last_error[1024];
} fr_vm_t;

/* Error list filled while building a VM: "file:line: message" strings. */
typedef struct {
    char **items; /* owned */
    size_t n;
} fr_errors_t;

void fr_errors_add(fr_errors_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fr_errors_free(fr_errors_t *e);

/* Builds a VM: runs the app file, reads its settings and loads every route script. Returns NULL
 * with every problem found in errs. host may be NULL (checking only). */
fr_vm_t *fr_vm_new(const char *app_path, fr_vm_host_t *host, fr_errors_t *errs);
void fr_vm_retain(fr_vm_t *vm);
void fr_vm_release(fr_vm_t *vm);
/* Stops the VM's timers; streams that still hold it keep using its filters. */
void fr_vm_retire(fr_vm_t *vm);

/* The one call path from C into Lua. The function and its nargs arguments are on the stack.
 * Runs under the instruction budget; on error logs "lua error in FILE:LINE (what) route
 * PATTERN: message", counts it, leaves nothing on the stack and returns -1. On success leaves
 * nresults values and returns 0. */
int fr_vm_call(fr_vm_t *vm, const fr_route_t *route, const char *what, int nargs, int nresults);

/* Pushes the hook's function, or returns 0 (pushing nothing) when the route has none. */
int fr_vm_push_hook(fr_vm_t *vm, const fr_route_t *route, fr_hook_t hook);

/* Pushes the Lua table for an event ({topic, id, event, data, priority, published_at}), shared
 * by every filter call of one fan-out. */
void fr_vm_push_event(fr_vm_t *vm, fr_event_t *ev);

extern const char *const fr_hook_names[FR_HOOK_COUNT];

#endif
