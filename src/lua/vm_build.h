/* What the files that build a VM share, and nobody else: lua/vm.c runs the app file and calls
 * lua/settings.c for its settings and lua/routes.c for its routes. Other code sees a built VM
 * through lua/vm.h only; lua/task.c runs hooks as coroutines with the call path's pieces.
 *
 * Both readers add every problem to the error list as "file:line: message" (or "file:
 * message") and return -1 when there was one; what they could read stays in the VM, which
 * vm.c frees on failure. */
#ifndef FR_VM_BUILD_H
#define FR_VM_BUILD_H

#include "lua/vm.h"

/* Reads the settings table at stack index t (already checked key by key in
 * lua/freshet/app.lua) into vm->config. Stops at the first value it cannot use. */
int fr_settings_read(fr_vm_t *vm, int t, fr_errors_t *errs);

/* Reads the app's routes (the app table at stack index app) into vm->routes: compiles each
 * pattern, runs each route script, checks what it returned and takes references to its hooks.
 * Goes on after a bad route, so one run reports them all. */
int fr_routes_read(fr_vm_t *vm, int app, fr_errors_t *errs);

/* A path the app file names (a route script, a static dir, a TLS file), relative to the app
 * file's directory dir unless absolute. Returns a malloc'd string. */
char *fr_vm_resolve(const char *dir, const char *rel);

/* Frees what fr_routes_read allocated (the hooks' references go with the Lua state). */
void fr_routes_free(fr_vm_t *vm);

/* The call path's pieces, for lua/task.c (a hook that runs as a coroutine).
 * The instruction budget around a run of Lua on L (nested runs share the outermost's). */
void fr_vm_budget_begin(fr_vm_t *vm, lua_State *L);
void fr_vm_budget_end(fr_vm_t *vm, lua_State *L);
/* The innermost Lua frame of L with a line (src "" and line 0 when none). */
void fr_vm_where(lua_State *L, char *src, size_t len, int *line);
/* Logs and counts a Lua error of `what` (rc: lua_pcall's or lua_resume's code), located at
 * where_src:where_line unless msg starts with its own "file:line: ". */
void fr_vm_report(fr_vm_t *vm, const fr_route_t *route, const char *what, const char *msg,
                  const char *where_src, int where_line, int rc);

#endif
