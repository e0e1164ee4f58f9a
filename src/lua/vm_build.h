/* What the files that build a VM share, and nobody else: lua/vm.c runs the app file and calls
 * lua/settings.c for its settings and lua/routes.c for its routes. Other code sees a built VM
 * through lua/vm.h only.
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

#endif
